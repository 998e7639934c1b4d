#!/usr/bin/env python3
"""Generate tests/data/normal_vectors.json: reference values of `--random normal`.

mmrun's normal stream is Box–Muller on pairs of raw Philox4x64-10 draws
(see python/mmrun/reference.py). For pair m, with a = raw[2m], b = raw[2m+1]:

    u1 = fl((a >> 11) + 0.5) * 2**-53      (IEEE f64 add; the scale is exact)
    u2 = (b >> 11) * 2**-53                (exact)
    r  = sqrt(-2 * ln(u1))
    t  = fl(2pi_f64 * u2)                  (IEEE f64 multiply)
    element 2m = fl(r * cos t), element 2m+1 = fl(r * sin t)

This script computes that pipeline with every elementary function (ln, sqrt,
sin, cos) correctly rounded to f64, using mpmath at 256 bits, and the plain
IEEE operations with Python floats. The raw words come from NumPy's
`Philox(seed)`, which tests/data/philox.json already checks mmrun against.
The f32 value is the f64 value rounded to nearest f32, as mmrun casts it.
Floats are stored as hex bit patterns.

Run:  python tests/data/gen_normal_vectors.py   (needs numpy and mpmath)
"""

import json
import math
import os
import struct

import mpmath
import numpy as np

mpmath.mp.prec = 256

SEEDS = [0, 1, 12345, 2**64 + 7, 2**127 - 1]
# Flat element indexes: both members of a pair, a block boundary, and far
# offsets whose counters carry across 64-bit words.
INDEXES = [0, 1, 2, 3, 4, 5, 1001, 2**20 + 6, 2**32 + 3, 2**40 + 1, 2**53 + 2, 2**63 + 5,
           2**64 - 2, 2**64 - 1]


def raw_pair(seed, index):
    first = 2 * (index // 2)
    bits = np.random.Philox(seed)
    block, skip = divmod(first, 4)
    if block:
        bits.advance(block)
    words = bits.random_raw(skip + 2)[skip:]
    return int(words[0]), int(words[1])


def rounded(x):
    """mpf -> nearest f64 (256 bits leave no double-rounding risk here)."""
    return float(mpmath.mpf(x))


def f64_hex(v):
    return f"{struct.unpack('<Q', struct.pack('<d', v))[0]:016x}"


def f32_hex(v):
    return f"{int(np.float32(v).view(np.uint32)):08x}"


def normal(a, b, second):
    u1 = (float(a >> 11) + 0.5) * 2.0**-53
    u2 = float(b >> 11) * 2.0**-53
    r = math.sqrt(-2.0 * rounded(mpmath.log(mpmath.mpf(u1))))  # math.sqrt is IEEE
    t = (2.0 * math.pi) * u2
    trig = mpmath.sin(mpmath.mpf(t)) if second else mpmath.cos(mpmath.mpf(t))
    return r * rounded(trig)


def main():
    cases = []
    for seed in SEEDS:
        for index in INDEXES:
            a, b = raw_pair(seed, index)
            v = normal(a, b, index % 2 == 1)
            cases.append({
                "seed": str(seed),
                "index": str(index),
                "raw": [f"{a:016x}", f"{b:016x}"],
                "f64": f64_hex(v),
                "f32": f32_hex(v),
            })
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "normal_vectors.json")
    with open(out, "w") as f:
        json.dump({"numpy": np.__version__, "mpmath": mpmath.__version__, "cases": cases}, f,
                  indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
