/* LD_PRELOAD shim with the locking semantics of the Linux NFS client, for
 * mmrun's tests (tests/integration/clusters.rs builds it with cc).
 *
 * - flock(2) becomes a whole-file fcntl lock owned by the open file
 *   description, as fs/nfs/file.c:nfs_flock emulates it ("We're simulating
 *   flock() locks using posix locks on the server"): so a flock(LOCK_SH)
 *   conflicts with another open file's fcntl lock on any byte.
 * - With MMRUN_SHIM_NOLOCK=1 every lock request fails with ENOLCK, as on an
 *   NFS v3 mount whose lock manager (rpc.statd / lockd) does not answer, or
 *   (ENOSYS) Lustre mounted without -o flock.
 * - With MMRUN_SHIM_LOADED_DIR=DIR every process it is loaded into leaves
 *   an empty DIR/loaded-PID, so a test can check its ranks ran under it.
 *
 * Everything else passes straight to the kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void mark_loaded(void) {
    const char *dir = getenv("MMRUN_SHIM_LOADED_DIR");
    char path[4096];
    if (!dir || !*dir)
        return;
    snprintf(path, sizeof path, "%s/loaded-%ld", dir, (long)getpid());
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

static int nolock(void) {
    const char *v = getenv("MMRUN_SHIM_NOLOCK");
    return v && strcmp(v, "1") == 0;
}

static int is_lock_cmd(int cmd) {
    return cmd == F_SETLK || cmd == F_SETLKW || cmd == F_GETLK || cmd == F_OFD_SETLK ||
           cmd == F_OFD_SETLKW || cmd == F_OFD_GETLK;
}

static int shim_fcntl(int fd, int cmd, void *arg) {
    if (nolock() && is_lock_cmd(cmd)) {
        errno = ENOLCK;
        return -1;
    }
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return shim_fcntl(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return shim_fcntl(fd, cmd, arg);
}

int flock(int fd, int op) {
    if (nolock()) {
        errno = ENOLCK;
        return -1;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0; /* the whole file */
    if (op & LOCK_SH)
        fl.l_type = F_RDLCK;
    else if (op & LOCK_EX)
        fl.l_type = F_WRLCK;
    else if (op & LOCK_UN)
        fl.l_type = F_UNLCK;
    else {
        errno = EINVAL;
        return -1;
    }
    int cmd = (op & LOCK_NB) ? F_OFD_SETLK : F_OFD_SETLKW;
    long r = syscall(SYS_fcntl, fd, cmd, &fl);
    if (r < 0 && (errno == EAGAIN || errno == EACCES))
        errno = EWOULDBLOCK;
    return r < 0 ? -1 : 0;
}
