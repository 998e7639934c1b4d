/*
 * fill_c.c - an mmrun exec worker in C (protocol version 1).
 *
 * Maps MMRUN_FILE at MMRUN_DATA_OFFSET for this worker's rows and writes
 * element n (the flat C-order index in the whole array) as n converted to the
 * file's dtype: the same bytes as
 *
 *     np.arange(prod(shape)).astype(dtype).reshape(shape)
 *
 * (C's conversion of a 64-bit integer: nearest for floats, the low bits for
 * integers, as NumPy casts) - so the result also equals `mmrun fill --arange`.
 * Supported dtypes: <f4 <f8 and |i1 <i2 <i4 <i8 |u1 <u2 <u4 <u8 on a
 * little-endian machine (native byte order).
 *
 *     cc -O2 -o fill_c workers/examples/fill_c.c
 *     mmrun exec out.npy --shape 1000,1000 --dtype f4 -w 4 -- ./fill_c
 *
 * mmap offsets must be multiples of the page size, so the mapping starts at
 * the page holding the first byte and the pointer is moved forward by the
 * remainder. Elements are stored with memcpy, so a data offset that is not a
 * multiple of the itemsize is fine. The worker writes only its own rows; mmrun
 * syncs the file once after every worker exited 0, so there is no msync here.
 * Exit status: 0 on success, 1 on an error (printed on stderr).
 */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "fill_c: %s\n", what);
    exit(1);
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    if (v == NULL) {
        fprintf(stderr, "fill_c: %s is not set: run me under mmrun exec\n", name);
        exit(1);
    }
    return v;
}

static uint64_t env_u64(const char *name) {
    const char *v = env(name);
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
        fprintf(stderr, "fill_c: %s=%s is not a non-negative integer\n", name, v);
        exit(1);
    }
    return (uint64_t)n;
}

/* Writes element value n at p in the dtype (kind, size). */
static void store(unsigned char *p, char kind, int size, uint64_t n) {
    union {
        float f4;
        double f8;
        uint8_t u1;
        uint16_t u2;
        uint32_t u4;
        uint64_t u8;
    } v;
    if (kind == 'f' && size == 4)
        v.f4 = (float)(int64_t)n;
    else if (kind == 'f' && size == 8)
        v.f8 = (double)(int64_t)n;
    else if (size == 1)
        v.u1 = (uint8_t)n;
    else if (size == 2)
        v.u2 = (uint16_t)n;
    else if (size == 4)
        v.u4 = (uint32_t)n;
    else
        v.u8 = n;
    memcpy(p, &v, (size_t)size);
}

int main(void) {
    if (strcmp(env("MMRUN_PROTOCOL"), "1") != 0)
        die("unsupported MMRUN_PROTOCOL (this worker speaks 1)");

    /* dtype: a NumPy descr such as <f4 or |u1. */
    const char *descr = env("MMRUN_DTYPE");
    const uint16_t one = 1;
    const int little = *(const unsigned char *)&one == 1;
    if (strlen(descr) != 3 || !(descr[0] == '|' || (descr[0] == '<' && little)))
        die("only native little-endian dtypes like <f4 or |u1 are supported");
    char kind = descr[1];
    int size = descr[2] - '0';
    if (!((kind == 'f' && (size == 4 || size == 8)) ||
          ((kind == 'i' || kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8))))
        die("dtype must be f4, f8, i1..i8 or u1..u8");

    /* Elements per row: the product of every axis but the first ("" = 0-d). */
    const char *shape = env("MMRUN_SHAPE");
    uint64_t per_row = 1;
    if (*shape != '\0') {
        const char *s = strchr(shape, ',');
        while (s != NULL) {
            char *end;
            uint64_t d = strtoull(s + 1, &end, 10);
            if (end == s + 1)
                die("MMRUN_SHAPE is malformed");
            per_row *= d;
            s = strchr(s + 1, ',');
        }
    }

    uint64_t offset = env_u64("MMRUN_DATA_OFFSET");
    uint64_t start = env_u64("MMRUN_ROW_START");
    uint64_t end = env_u64("MMRUN_ROW_END");
    if (end < start)
        die("MMRUN_ROW_END is below MMRUN_ROW_START");
    uint64_t count = (end - start) * per_row;
    if (count == 0)
        return 0;

    int fd = open(env("MMRUN_FILE"), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror("fill_c: open MMRUN_FILE");
        return 1;
    }
    /* The first byte of our rows, and the page it lies in. */
    uint64_t first = offset + start * per_row * (uint64_t)size;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t map_at = first - first % page;
    size_t len = (size_t)(first - map_at + count * (uint64_t)size);
    unsigned char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map_at);
    if (base == MAP_FAILED) {
        perror("fill_c: mmap");
        return 1;
    }
    close(fd);

    unsigned char *p = base + (first - map_at);
    uint64_t n0 = start * per_row;
    for (uint64_t k = 0; k < count; k++)
        store(p + k * (uint64_t)size, kind, size, n0 + k);

    munmap(base, len);
    printf("fill_c: rows %llu..%llu done\n", (unsigned long long)start, (unsigned long long)end);
    return 0;
}
