#!/usr/bin/env python3
"""The reference text's chunked loop, its print dropped: row means of a
raw float32 memmap, 1000 rows at a time, one process.

    numpy_chunked_mean.py FILE ROWS COLS
"""
import sys

import numpy as np


def main():
    filename, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    fp = np.memmap(filename, dtype=np.float32, mode="r", shape=(rows, cols))
    chunk_size = 1000
    for i in range(0, rows, chunk_size):
        chunk = fp[i:i + chunk_size, :]
        result = np.mean(chunk, axis=1)
    del fp, result


if __name__ == "__main__":
    main()
