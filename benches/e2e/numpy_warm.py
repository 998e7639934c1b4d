#!/usr/bin/env python3
"""NumPy's chunked loops, timed inside the interpreter: what a user with a
warm Python session (NumPy already imported) sees, without the start-up
that a whole-process timing would count. Prints the loop's wall seconds
and its CPU seconds (time.process_time).

    numpy_warm.py mean1|meanall|rmw|rmw-nosync FILE ROWS COLS [OUT]

  mean1       row means of a raw float32 memmap, 1000 rows at a time, into
              one result array (saved to OUT as .npy when given)
  meanall     the mean of every element: chunk.sum() per 1000 rows
  rmw         x = x * 2 + 1 in place, 1000 rows at a time, then flush()
              (msync: the data is on disk, as with mmrun --sync full)
  rmw-nosync  the same without the flush
"""
import sys
import time

import numpy as np


def main():
    mode, filename = sys.argv[1], sys.argv[2]
    rows, cols = int(sys.argv[3]), int(sys.argv[4])
    out = sys.argv[5] if len(sys.argv) > 5 else None
    chunk_size = 1000
    t0, c0 = time.perf_counter(), time.process_time()
    if mode == "mean1":
        fp = np.memmap(filename, dtype=np.float32, mode="r", shape=(rows, cols))
        result = np.empty(rows, dtype=np.float32)
        for i in range(0, rows, chunk_size):
            np.mean(fp[i:i + chunk_size, :], axis=1, out=result[i:i + chunk_size])
        if out:
            np.save(out, result)
    elif mode == "meanall":
        fp = np.memmap(filename, dtype=np.float32, mode="r", shape=(rows, cols))
        total = 0.0
        for i in range(0, rows, chunk_size):
            total += float(fp[i:i + chunk_size, :].sum())
        result = total / (rows * cols)
    elif mode in ("rmw", "rmw-nosync"):
        fp = np.memmap(filename, dtype=np.float32, mode="r+", shape=(rows, cols))
        for i in range(0, rows, chunk_size):
            chunk = fp[i:i + chunk_size, :]
            chunk *= 2
            chunk += 1
        if mode == "rmw":
            fp.flush()
    else:
        sys.exit(f"unknown mode {mode}")
    del fp
    print(f"{time.perf_counter() - t0:.6f} {time.process_time() - c0:.6f}")


if __name__ == "__main__":
    main()
