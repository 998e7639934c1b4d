/*
 * The plain writer: the baseline mmrun is measured against (issue 7).
 *
 * What a careful programmer writes by hand, with no mmrun code anywhere:
 * create the file, fallocate it, fork N processes that each map their own
 * contiguous slice MAP_SHARED and store 1.0f into every element (first
 * touch), wait for them, fsync once, close.
 *
 *   plain_writer PATH BYTES WORKERS
 *
 * BYTES is rounded down to a multiple of 4 and split on 4096-byte
 * boundaries. Exit status 0 on success. Built by benches/e2e/run.py with
 * `cc -O2`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int die(const char *what) {
    fprintf(stderr, "plain_writer: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: plain_writer PATH BYTES WORKERS\n");
        return 2;
    }
    const char *path = argv[1];
    long long bytes = atoll(argv[2]) / 4 * 4;
    int workers = atoi(argv[3]);
    if (bytes <= 0 || workers <= 0) return 2;

    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return die("open");
    if (fallocate(fd, 0, 0, bytes) != 0) return die("fallocate");

    long long pages = (bytes + 4095) / 4096;
    for (int w = 0; w < workers; w++) {
        long long lo = pages * w / workers * 4096;
        long long hi = pages * (w + 1) / workers * 4096;
        if (hi > bytes) hi = bytes;
        pid_t pid = fork();
        if (pid < 0) return die("fork");
        if (pid == 0) {
            if (hi <= lo) _exit(0);
            size_t len = (size_t)(hi - lo);
            float *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, lo);
            if (p == MAP_FAILED) _exit(die("mmap"));
            size_t n = len / 4;
            for (size_t i = 0; i < n; i++) p[i] = 1.0f;
            _exit(0);
        }
    }
    int failed = 0, status;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    if (failed) {
        fprintf(stderr, "plain_writer: a worker failed\n");
        return 1;
    }
    if (fsync(fd) != 0) return die("fsync");
    if (close(fd) != 0) return die("close");
    return 0;
}
