"""Chunked per-row means, the reference text's "Working with large datasets".

The text walks a large array 1000 rows at a time and prints ``np.mean(chunk,
axis=1)``. Here the means go to a file, and mmrun splits the rows among
workers: the FILE that mmrun exec manages is the output, shape ``(R,)``
float64; the input is given as an argument::

    mmrun exec means.npy --shape 10000 --dtype f8 -w 8 \\
        -- python workers/examples/row_means.py --input huge_array.npy

Each worker reads rows ``[ROW_START, ROW_END)`` of the input (read-only, in
chunks of ``--chunk-rows`` rows) and writes the same rows of the output:
``out[i] = input[i].mean(dtype=float64)`` (every axis but 0 is averaged), the
same numbers as ``np.load(input).reshape(R, -1).mean(axis=1, dtype=np.float64)``.
A raw input needs ``--dtype`` (and ``--shape R,C`` / ``--offset`` as
``numpy.memmap`` takes them).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import numpy as np  # noqa: E402

import mmrun.worker as mmrun_worker  # noqa: E402


def open_input(args):
    with open(args.input, "rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    if is_npy and not args.raw:
        return np.load(args.input, mmap_mode="r")
    if args.dtype is None:
        sys.exit(f"row_means: {args.input} is not a .npy file: give --dtype")
    shape = tuple(int(s) for s in args.shape.split(",")) if args.shape else None
    return np.memmap(args.input, dtype=args.dtype, mode="r", offset=args.offset, shape=shape)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", required=True, help="the array whose row means are computed")
    p.add_argument("--chunk-rows", type=int, default=1000)
    p.add_argument("--raw", action="store_true", help="the input is a headerless file")
    p.add_argument("--dtype", help="dtype of a raw input")
    p.add_argument("--shape", help="shape of a raw input, R,C,...")
    p.add_argument("--offset", type=int, default=0, help="data offset of a raw input")
    args = p.parse_args()

    w = mmrun_worker.info()
    if len(w["shape"]) != 1 or w["dtype"].kind != "f":
        sys.exit(f"row_means: the output must be 1-D float, not {w['dtype']} {w['shape']}")
    x = open_input(args)
    if x.ndim == 0 or x.shape[0] != w["shape"][0]:
        sys.exit(f"row_means: input has shape {x.shape}, output has {w['shape'][0]} rows")

    out = mmrun_worker.rows()
    start, end = w["row_start"], w["row_end"]
    for a in range(start, end, max(args.chunk_rows, 1)):
        b = min(a + args.chunk_rows, end)
        chunk = x[a:b].reshape(b - a, -1)
        out[a - start : b - start] = chunk.mean(axis=1, dtype=np.float64)
        mmrun_worker.progress(b - start)
    print(f"rows {start}..{end}: {end - start} means")


if __name__ == "__main__":
    try:
        main()
    except mmrun_worker.ProtocolError as e:
        sys.exit(f"row_means: {e}")
