/* The C references of benches/e2e/run.py: the same work as an mmrun kernel,
 * hand-written, on the same I/O path, with N forked workers over disjoint
 * row ranges. No error recovery beyond "exit non-zero": a benchmark tool.
 *
 *   mapped_ref mean1   FILE ROWS COLS OFFSET WORKERS [fault|populate] [OUT]
 *       row means (f64 accumulation in 8 lanes, like mmrun's reduce) of a
 *       float32 file read through a shared mapping; with OUT, the ROWS
 *       float32 means are written to OUT and fsynced (as `reduce --out`).
 *   mapped_ref meanall FILE ROWS COLS OFFSET WORKERS [fault|populate]
 *       the mean of every element, same accumulation; printed.
 *   mapped_ref rmw     FILE ROWS COLS OFFSET WORKERS [fault|populate] [sync|nosync]
 *       x = x * 2 + 1 in place through a MAP_SHARED mapping, then (sync)
 *       one fsync, as `apply --expr 'x * 2 + 1' --sync full|none`.
 *   mapped_ref pwrite  FILE ROWS COLS 0 WORKERS
 *       a new file of 1.0f: each worker pwrite()s 1 MiB blocks of its rows
 *       and streams writeback (sync_file_range WRITE per 8 MiB window, the
 *       window two back waited for), then one fsync: the best hand-written
 *       fill on the write path mmrun's fill uses.
 *
 * populate (the default) maps each worker's rows with MADV_POPULATE_READ /
 * MADV_POPULATE_WRITE in 8 MiB windows just ahead of the loop (one
 * madvise per window; kernel >= 5.14), fault lets every page fault in.
 * Build: cc -O3 -march=native -o mapped_ref mapped_ref.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

#define WINDOW (8u << 20)
#define PAGE 4096u

static void die(const char *what) {
    perror(what);
    _exit(2);
}

/* Sum of n floats in f64, eight lanes (the compiler vectorises this). */
static double sum_row(const float *x, size_t n) {
    double acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (double)x[i + k];
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++)
        s += (double)x[i];
    return s;
}

struct part {
    size_t r0, r1;
};

static struct part part_of(size_t rows, int w, int workers) {
    struct part p = {rows * w / workers, rows * (w + 1) / workers};
    return p;
}

/* Maps bytes [off, off+len) of fd; returns the pointer to off. */
static char *map_range(int fd, uint64_t off, size_t len, int prot, char **base, size_t *blen) {
    uint64_t a = off / PAGE * PAGE;
    *blen = len + (off - a);
    *base = mmap(NULL, *blen, prot, MAP_SHARED, fd, (off_t)a);
    if (*base == MAP_FAILED)
        die("mmap");
    return *base + (off - a);
}

static void populate(char *base, size_t blen, size_t upto, size_t *done, int advice) {
    /* Keep the populated part one window ahead of upto. */
    size_t want = upto + WINDOW;
    if (want > blen)
        want = blen;
    while (*done < want) {
        size_t n = blen - *done < WINDOW ? blen - *done : WINDOW;
        madvise(base + *done, n, advice);
        *done += n;
    }
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: mapped_ref mean1|meanall|rmw|pwrite FILE ROWS COLS OFFSET WORKERS [fault|populate] [OUT|sync|nosync]\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    size_t rows = strtoull(argv[3], 0, 10), cols = strtoull(argv[4], 0, 10);
    uint64_t offset = strtoull(argv[5], 0, 10);
    int workers = atoi(argv[6]);
    int pop = !(argc > 7 && strcmp(argv[7], "fault") == 0);
    const char *extra = argc > 8 ? argv[8] : NULL;
    size_t row_bytes = cols * 4;
    int rmw = strcmp(mode, "rmw") == 0, pw = strcmp(mode, "pwrite") == 0;
    int fd = pw ? open(path, O_RDWR | O_CREAT | O_TRUNC, 0644) : open(path, rmw ? O_RDWR : O_RDONLY);
    if (fd < 0)
        die("open");
    if (pw && fallocate(fd, 0, 0, (off_t)(rows * row_bytes)) != 0 &&
        ftruncate(fd, (off_t)(rows * row_bytes)) != 0)
        die("fallocate");
    /* Results of the children: ROWS means, or one partial sum per worker. */
    size_t res_len = (rows + (size_t)workers) * sizeof(double);
    double *res = mmap(NULL, res_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED)
        die("mmap results");
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid > 0)
            continue;
        struct part p = part_of(rows, w, workers);
        size_t len = (p.r1 - p.r0) * row_bytes;
        uint64_t off = offset + p.r0 * row_bytes;
        if (len == 0)
            _exit(0);
        if (pw) {
            static float block[(1u << 20) / 4];
            for (size_t i = 0; i < sizeof block / 4; i++)
                block[i] = 1.0f;
            uint64_t end = off + len, win = off, pend[3];
            int np = 0;
            for (uint64_t o = off; o < end; o += sizeof block) {
                size_t n = end - o < sizeof block ? end - o : sizeof block;
                if (pwrite(fd, block, n, (off_t)o) != (ssize_t)n)
                    die("pwrite");
                if (o + n - win >= WINDOW || o + n == end) {
                    sync_file_range(fd, (off_t)win, (off_t)(o + n - win), SYNC_FILE_RANGE_WRITE);
                    pend[np++] = win;
                    if (np == 3) {
                        sync_file_range(fd, (off_t)pend[0], WINDOW,
                                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                            SYNC_FILE_RANGE_WAIT_AFTER);
                        pend[0] = pend[1];
                        pend[1] = pend[2];
                        np = 2;
                    }
                    win = o + n;
                }
            }
            _exit(0);
        }
        char *base;
        size_t blen, done = 0;
        char *data = map_range(fd, off, len, rmw ? PROT_READ | PROT_WRITE : PROT_READ, &base, &blen);
        size_t head = (size_t)(data - base);
        int advice = rmw ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
        double total = 0;
        /* Rows in blocks of about 1 MiB, populating a window ahead. */
        size_t block_rows = (1u << 20) / row_bytes ? (1u << 20) / row_bytes : 1;
        for (size_t r = p.r0; r < p.r1; r += block_rows) {
            size_t n = p.r1 - r < block_rows ? p.r1 - r : block_rows;
            float *x = (float *)(data + (r - p.r0) * row_bytes);
            if (pop)
                populate(base, blen, head + (r - p.r0) * row_bytes, &done, advice);
            if (rmw) {
                size_t m = n * cols;
                for (size_t i = 0; i < m; i++)
                    x[i] = x[i] * 2.0f + 1.0f;
            } else {
                for (size_t k = 0; k < n; k++) {
                    double s = sum_row(x + k * cols, cols);
                    if (mode[4] == '1')
                        res[r + k] = s / (double)cols;
                    else
                        total += s;
                }
            }
        }
        res[rows + (size_t)w] = total;
        _exit(0);
    }
    int bad = 0, st;
    for (int w = 0; w < workers; w++) {
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    }
    if (bad) {
        fprintf(stderr, "mapped_ref: a worker failed\n");
        return 1;
    }
    if (rmw || pw) {
        if (!(rmw && extra && strcmp(extra, "nosync") == 0) && fsync(fd) != 0)
            die("fsync");
    } else if (strcmp(mode, "meanall") == 0) {
        double t = 0;
        for (int w = 0; w < workers; w++)
            t += res[rows + (size_t)w];
        printf("%.9g\n", t / (double)(rows * cols));
    } else if (extra) {
        int out = open(extra, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0)
            die("open out");
        float *m = malloc(rows * 4);
        for (size_t r = 0; r < rows; r++)
            m[r] = (float)res[r];
        if (write(out, m, rows * 4) != (ssize_t)(rows * 4) || fsync(out) != 0)
            die("write out");
        close(out);
    }
    return 0;
}
