"""Random fill, the reference text's "Sharing data between processes" workflow.

The text forks workers that each call ``np.random.rand`` on their chunk: every
forked child inherits the same global RNG state, so all chunks hold the same
numbers, and giving each worker its own seed would make the file depend on
the worker count. Here each worker draws its part of ONE stream::

    mmrun exec shared_array.npy --shape 1000,1000 --dtype f4 --seed 3 -w 5 \\
        -- python workers/examples/random_fill.py

The file equals ``np.random.Generator(np.random.Philox(3)).random((1000, 1000),
dtype=np.float32)`` and ``mmrun fill --random uniform --seed 3``, byte for
byte, for any ``-w``.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import mmrun.worker as mmrun_worker  # noqa: E402


def main():
    r = mmrun_worker.fill_uniform()
    i = mmrun_worker.info()
    print(f"rows {i['row_start']}..{i['row_end']}: {r.size} values")


if __name__ == "__main__":
    try:
        main()
    except mmrun_worker.ProtocolError as e:
        sys.exit(f"random_fill: {e}")
