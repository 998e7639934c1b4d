"""Zero a sub-block in place, the reference text's "Reading and writing" workflow.

The text opens an existing array r+ and does ``fp[100:200, 100:200] = 0``.
Here mmrun opens the existing file in place and each worker zeroes the part
of the block that lies inside its own rows (and nothing else)::

    mmrun exec large_array.npy -w 4 -- python workers/examples/zero_block.py

``--rows A:B`` and ``--cols A:B`` choose another block (Python slices over
axes 0 and 1; default 100:200 for both). The result equals
``a[100:200, 100:200] = 0`` on the whole array.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import mmrun.worker as mmrun_worker  # noqa: E402


def parse_slice(text):
    a, _, b = text.partition(":")
    return slice(int(a) if a.strip() else None, int(b) if b.strip() else None)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=parse_slice, default=slice(100, 200))
    p.add_argument("--cols", type=parse_slice, default=slice(100, 200))
    args = p.parse_args()

    w = mmrun_worker.info()
    if len(w["shape"]) < 2:
        sys.exit(f"zero_block: needs a 2-D (or more) array, not shape {w['shape']}")
    # The block's rows in global indices, intersected with ours.
    r0, r1, _ = args.rows.indices(w["shape"][0])
    lo, hi = max(r0, w["row_start"]), min(r1, w["row_end"])
    if lo < hi:
        mine = mmrun_worker.rows()
        mine[lo - w["row_start"] : hi - w["row_start"], args.cols] = 0
    mmrun_worker.progress(w["row_end"] - w["row_start"])
    print(f"rows {w['row_start']}..{w['row_end']}: zeroed {max(hi - lo, 0)} rows of the block")


if __name__ == "__main__":
    try:
        main()
    except mmrun_worker.ProtocolError as e:
        sys.exit(f"zero_block: {e}")
