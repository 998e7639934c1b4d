/* Lock helper for tests/integration/clusters.rs, independent of mmrun:
 *
 *   lock_probe flock FILE            flock(LOCK_SH|LOCK_NB): prints "taken"
 *                                    (exit 0) or "held" (exit 1)
 *   lock_probe hold FILE BYTE r|w    takes an OFD read/write lock on BYTE,
 *                                    prints "locked" (or "held", exit 1) and
 *                                    keeps it until stdin reaches EOF
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    int fd = open(argv[2], O_RDWR);
    if (fd < 0) {
        perror(argv[2]);
        return 2;
    }
    if (strcmp(argv[1], "flock") == 0) {
        int ok = flock(fd, LOCK_SH | LOCK_NB) == 0;
        puts(ok ? "taken" : "held");
        return ok ? 0 : 1;
    }
    if (strcmp(argv[1], "hold") == 0 && argc == 5) {
        struct flock fl;
        memset(&fl, 0, sizeof fl);
        fl.l_type = argv[4][0] == 'w' ? F_WRLCK : F_RDLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = atoll(argv[3]);
        fl.l_len = 1;
        if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
            puts("held");
            return 1;
        }
        puts("locked");
        fflush(stdout);
        char buf[64];
        while (read(0, buf, sizeof buf) > 0) {
        }
        return 0;
    }
    return 2;
}
