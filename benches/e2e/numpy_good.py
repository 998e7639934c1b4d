"""NumPy written well: 2 (or N) multiprocessing workers, each generating
float32 straight into its slice of a memory-mapped .npy file
(`rng.random(dtype=np.float32, out=fp[a:b])`), then one fsync.

    python numpy_good.py PATH ROWS COLS WORKERS
"""
import multiprocessing as mp
import os
import sys

import numpy as np


def worker(path, a, b, w):
    fp = np.load(path, mmap_mode="r+")
    rng = np.random.Generator(np.random.Philox([12345, w]))
    rng.random(dtype=np.float32, out=fp[a:b])
    fp.flush()
    del fp


def main():
    path, rows, cols, workers = sys.argv[1], *map(int, sys.argv[2:5])
    fp = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
    del fp
    ctx = mp.get_context("fork")
    bounds = [rows * w // workers for w in range(workers + 1)]
    procs = [ctx.Process(target=worker, args=(path, bounds[w], bounds[w + 1], w))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(1)
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


if __name__ == "__main__":
    main()
