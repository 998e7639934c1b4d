"""NumPy as the reference text (shared/reference/numpy-memmap-notes.txt,
"Sharing data between processes") writes it: np.memmap w+, then workers
that each open the file r+ and assign `chunk[:] = np.random.rand(...)`
(float64 drawn, converted to float32 on store). One fsync at the end, which
the text leaves out, so every contender ends with durable data.

    python numpy_reference.py PATH ROWS COLS WORKERS
"""
import multiprocessing as mp
import os
import sys

import numpy as np


def worker(offset, chunk_size, filename, shape):
    dtype = np.float32
    fp = np.memmap(filename, dtype=dtype, mode="r+", shape=shape)
    chunk = fp[offset:offset + chunk_size, :]
    chunk[:] = np.random.rand(*chunk.shape)
    del fp


def main():
    filename, rows, cols, workers = sys.argv[1], *map(int, sys.argv[2:5])
    shape = (rows, cols)
    fp = np.memmap(filename, dtype=np.float32, mode="w+", shape=shape)
    del fp
    ctx = mp.get_context("fork")
    chunk_size = -(-rows // workers)
    processes = []
    for i in range(0, rows, chunk_size):
        p = ctx.Process(target=worker, args=(i, chunk_size, filename, shape))
        processes.append(p)
        p.start()
    for p in processes:
        p.join()
        if p.exitcode != 0:
            sys.exit(1)
    fd = os.open(filename, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


if __name__ == "__main__":
    main()
