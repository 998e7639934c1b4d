#!/usr/bin/env python3
"""Generate tests/data/expr_cases.json: NumPy's answers for `mmrun apply --expr`.

mmrun's expression engine (src/expr) promises what NumPy >= 2 gives for
`out[...] = EXPR`, with `x` the file's elements and `i j k n` int64 index
arrays. This script evaluates a table of expressions with NumPy itself, for
every dtype mmrun supports, on inputs full of edge values (0, -0.0, +-1,
min/max of the type, NaN, inf, subnormals), and records:

* the result dtype and the result's bytes (little-endian hex);
* for expressions whose result can be stored back into x's dtype without
  platform-specific casts, the bytes of `out = x.copy(); out[...] = EXPR`;
* "refused" with NumPy's message when NumPy raises.

"tol" is the ULP tolerance the Rust test applies to float results: 4 for
transcendental functions and `**` with a non-integer or array exponent
(NumPy's SIMD loops and libm differ there), 0 otherwise.

Run with NumPy 2.x:  python tests/data/gen_expr_cases.py
"""

import json
import os
import re
import warnings

import numpy as np

DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
    "uint64", "float16", "float32", "float64",
]
SHAPE = (8, 5)
N = SHAPE[0] * SHAPE[1]

NAMESPACE = {
    "abs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
    "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "floor": np.floor, "ceil": np.ceil, "round": np.round,
    "min": np.minimum, "max": np.maximum, "clip": np.clip, "where": np.where,
    "nan": float("nan"), "inf": float("inf"),
    # NumPy's own spellings: the module under both names, and the ufuncs and
    # scalar types reached without a prefix.
    "np": np, "numpy": np, "pi": np.pi,
    "tanh": np.tanh, "sign": np.sign, "isnan": np.isnan, "isfinite": np.isfinite,
    "isinf": np.isinf, "arctan2": np.arctan2, "hypot": np.hypot,
    "minimum": np.minimum, "maximum": np.maximum, "absolute": np.absolute, "rint": np.rint,
    **{t: getattr(np, t) for t in ["float16", "float32", "float64", "int8", "int16", "int32",
                                   "int64", "uint8", "uint16", "uint32", "uint64", "bool_"]},
}

TRANSCENDENTAL = re.compile(r"\b(sqrt|exp|log|log2|log10|sin|cos|tan|tanh|arctan2|hypot)\(")
# A float-to-integer cast of NaN, inf or an out-of-range value is
# platform-specific in NumPy: such expressions are only checked on integer
# and bool inputs (the float ones clip first).
INT_CAST = re.compile(r"u?int(8|16|32|64)\(|astype\((int|'(u1|i4|int16)')\)")
INT_EXPONENT = re.compile(r"\*\* *\(?-?\d+\)?$")


def inputs(dt, rng):
    """40 values of dtype dt: edge values first, then random ones."""
    d = np.dtype(dt)
    if d.kind == "b":
        v = np.array([False, True] * (N // 2))
        rng.shuffle(v[10:])
        return v
    if d.kind in "iu":
        info = np.iinfo(d)
        edge = [0, 1, 2, 3, 7, 100, info.max, info.max - 1, info.min, info.min + 1,
                info.max // 2, 127, 255, 65535, 2**31 - 1, 2**53 + 1]
        if d.kind == "i":
            edge += [-1, -2, -3, -7, -100, -128, info.min // 2, -(2**31)]
        edge = [e for e in edge if info.min <= e <= info.max]
        rest = rng.integers(info.min, info.max, size=N, dtype=d, endpoint=True)
        small = rng.integers(-20 if d.kind == "i" else 0, 20, size=N)
        vals = list(dict.fromkeys(edge))
        vals += [int(s) for s in small[: (N - len(vals)) // 2]]
        vals += [int(r) for r in rest[: N - len(vals)]]
        return np.array(vals[:N], dtype=d)
    info = np.finfo(d)
    edge = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, -7.0, 7.0,
            float("nan"), float("inf"), float("-inf"), float(info.max), -float(info.max),
            float(info.smallest_normal), float(info.smallest_subnormal),
            -float(info.smallest_subnormal), 1e-3, 3.14159, 100.0, 1e10, -1e10,
            0.1, 2049.0, 65504.0, 1e-6, 255.5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vals = np.array(edge, dtype=np.float64).astype(d)
    rest = (rng.standard_normal(N - len(vals)) * 50).astype(d)
    return np.concatenate([vals, rest])


def expressions(dt):
    ops = ["+", "-", "*", "/", "//", "%", "**"]
    lits = ["0", "1", "-1", "3", "-7", "0.5", "-2.5", "300", "nan", "inf", "True"]
    cmps = ["<", "<=", ">", ">=", "==", "!="]
    cmp_lits = ["0", "-1", "300", "0.5", "nan", "2**64", "-2**70", "65519"]
    e = ["x", "-x", "+x", "abs(x)", "sqrt(x)", "exp(x)", "log(x)", "log2(x)", "log10(x)",
         "sin(x)", "cos(x)", "tan(x)", "floor(x)", "ceil(x)", "round(x)"]
    for op in ops:
        e.append(f"x {op} x")
        e += [f"x {op} {lit}" for lit in lits]
        e += [f"{lit} {op} x" for lit in ["0", "-1", "3", "0.5", "300", "nan", "True"]]
        for v in ["i", "n", "(k - 2)"]:
            e.append(f"x {op} {v}")
    for op in cmps:
        e += [f"x {op} x", f"x {op} n", f"n {op} x"]
        e += [f"x {op} {lit}" for lit in cmp_lits]
    e += [
        "min(x, 0)", "max(x, 0)", "min(x, nan)", "max(x, 0.5)", "min(x, -x)", "max(-x, x)",
        "max(x, k)", "min(0, x)", "min(x, x > 0)", "max(x, True)", "min(x, 300)",
        "clip(x, 0, 10)", "clip(x, -1.5, 2)", "clip(x, k, 3)", "clip(x, 0, 300)",
        "clip(x, -300, 5)", "clip(x, 300, 400)", "clip(x, 0.0, -0.0)", "clip(x, -0.0, 0.0)",
        "clip(x, 2, 1)", "clip(x, nan, 1)", "clip(x, -x, x)", "clip(x, i - 3, k)",
        "clip(x, 0, k)", "clip(x, False, True)",
        "where(x > 0, x, 0)", "where(x, 1, 2)", "where(x < 1, x, -x)", "where(k > 2, x, 300)",
        "where(k > 2, x, 1.5)", "where(x, x, 2**63)", "where(n % 2 == 0, x, nan)",
        "where(1, x, 0)",
        "x * 2 + 1", "(x - 1) * (x + 1)", "x ** 2 - 2 * x + 1", "-x ** 2", "x ** 0.5",
        "x ** 2", "x ** -1", "x ** 2.0", "x ** (1/2)", "x ** 3", "x ** 0", "2 ** x",
        "abs(x) ** 0.5", "sqrt(abs(x))", "log(abs(x) + 1)", "exp(-abs(x))",
        "round(x * 10) / 10", "floor(x / 3)", "ceil(x * 0.5)", "round(x + 0.5)",
        "x // 0", "x % 0", "x // -1", "x % -1", "x / 0", "x // 0.0", "x % -0.0",
        "x + sqrt(4)", "x * abs(-3)", "x + min(1, 2.5)", "x + (1 < 2)", "x * True",
        "x + i * 0", "x - i", "x * 1.0", "x + 0.1", "x * 1e10", "x * j", "x * 3.3", "x + 2049.0000001",
        "abs(-128) + x", "x + round(2.5)", "x + floor(-0.5)", "x * where(True, 2, 3)",
        "1 + 2", "7 // -2", "7 % -2", "2 ** -1", "-2**2", "1 / 0", "True + True",
        "3 * 2.5", "sqrt(4)", "min(1, 2.5)", "where(True, 1, 2)", "clip(5, 1, 3)",
        "2 ** 70", "-128", "255", "300", "-1", "1.7", "nan", "inf", "True", "-0.0",
        "abs(2**63)", "min(2**63, 1)", "sqrt(True)", "round(True)", "floor(3)",
        "x ** x", "x ** abs(x)", "x ** (x > 0)", "i ** 2", "k ** k", "-(x > 0)",
        "(x > 0) - (x < 0)", "(x > 0) * (x < 5)", "(x > 0) + (x < 5)",
    ]
    # NumPy's vocabulary: prefixes, more ufuncs, bitwise operators, casts.
    e += [
        "np.sqrt(x)", "numpy.abs(x)", "np.minimum(x, 1)", "np.maximum(x, -x)", "np.absolute(x)",
        "np.rint(x)", "np.where(x > 0, x, np.nan)", "np.clip(x, 0, np.inf)", "x * np.pi",
        "np.e + x", "tanh(x)", "np.tanh(x / 100)", "sign(x)", "np.sign(x - 1)", "np.sign(-x)",
        "isnan(x)", "np.isnan(x / x)", "np.isfinite(x)", "np.isinf(x)", "np.isinf(x * 1e38)",
        "np.isfinite(x * 2.0)", "np.isnan(nan)", "np.isinf(1)",
        "arctan2(x, 1)", "np.arctan2(x, -x)", "np.arctan2(1, x)", "np.arctan2(x, 0.5)",
        "hypot(x, 4)", "np.hypot(x, x)", "np.hypot(3, 4)",
        "x & x", "x | 1", "x ^ -1", "x & 300", "x | True", "x ^ x", "~x", "~(x > 0)",
        "x & 0.5", "x << 1", "x >> 1", "x << 3", "x >> 70", "x << 70", "x << -1",
        "x >> -1", "x << x", "x >> x", "1 << x", "x << True", "(x > 0) << (x > 1)",
        "(x > 0) & (x < 5)", "(x < 0) | (x > 5)", "(x > 0) ^ True", "x & 1 == 0",
        "(x & 1) == 0", "x + 1 << 2", "x & 6 | 1", "x ^ 3 & 5", "~x + 1", "-~x",
        "5 & 3", "~5", "1 << 10", "6 ^ 3", "True & False", "1.5 & 1", "1 << -1",
        "np.float32(x)", "np.float64(x) / 3", "np.int16(x)", "np.uint8(x)", "np.bool_(x)",
        "np.int8(300)", "np.int8(-5) + x", "np.float16(x) + 1", "float32(x) * 2",
        "int64(x) << 40", "np.uint64(x) >> 3",
        "x.astype('f8')", "x.astype('int16')", "x.astype(np.float32)", "x.astype(float)",
        "x.astype(int)", "x.astype(bool)", "x.astype('u1') + 1", "(x * 2).astype('f4')",
        "np.sqrt(x).astype(np.float16)", "x.astype('i4').astype('f2')",
        "np.int32(np.where(np.isfinite(x), np.clip(x, -1e3, 1e3), 0))",
        "np.where(np.isnan(x), 0, np.clip(x, 0, 255)).astype(np.uint8)",
    ]
    return list(dict.fromkeys(e))


def hexbytes(a):
    a = np.ascontiguousarray(a)
    return a.astype(a.dtype.newbyteorder("<")).tobytes().hex()


def tolerance(expr, result_dtype):
    if result_dtype.kind != "f":
        return 0
    if TRANSCENDENTAL.search(expr):
        return 4
    if "**" in expr and not INT_EXPONENT.search(expr):
        return 4
    return 0


def store_is_defined(r, target):
    """Whether `out[...] = r` into `target` is the same on every platform."""
    if target.kind == "b" or r.dtype.kind in "biu":
        return True
    if target.kind == "f":
        return True
    if not np.all(np.isfinite(r)):
        return False
    t = np.trunc(r.astype(np.float64))
    info = np.iinfo(target)
    # Exact bounds: float(info.max) may round up past the range.
    return bool(np.all((t >= float(info.min)) & (t < float(info.max + 1))))


def evaluate(expr, x, shape):
    ns = dict(NAMESPACE)
    idx = np.indices(shape) if len(shape) else []
    n = np.arange(x.size, dtype=np.int64).reshape(shape)
    ns["x"] = x
    ns["n"] = n
    row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    ns["k"] = (n % row).astype(np.int64)
    if len(shape) >= 1:
        ns["i"] = idx[0].astype(np.int64)
    if len(shape) >= 2:
        ns["j"] = idx[1].astype(np.int64)
    return eval(expr, {"__builtins__": __builtins__}, ns)


def case_entry(expr, x, shape, with_store=True):
    if x.dtype.kind == "f" and INT_CAST.search(expr):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = evaluate(expr, x, shape)
    except NameError as exc:
        return {"e": expr, "refused": f"NameError: {exc}"}
    except SyntaxError:
        return None
    except Exception as exc:  # NumPy refuses: OverflowError, TypeError, ValueError...
        return {"e": expr, "refused": f"{type(exc).__name__}: {exc}"}
    weak = isinstance(r, (bool, int, float))
    arr = np.asarray(r)
    if arr.dtype == object:
        return None
    full = np.broadcast_to(arr, shape)
    entry = {"e": expr, "dtype": str(arr.dtype), "r": hexbytes(full),
             "tol": tolerance(expr, arr.dtype)}
    if (arr.dtype != x.dtype and with_store) or weak:
        if weak or store_is_defined(full, x.dtype):
            out = x.copy()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out[...] = r
                entry["store"] = hexbytes(out)
            except Exception as exc:
                entry["store_refused"] = f"{type(exc).__name__}: {exc}"
    return entry


def main():
    rng = np.random.default_rng(20240611)
    cases = []
    for dt in DTYPES:
        x = inputs(dt, rng).reshape(SHAPE)
        # Stores are checked for every literal-only expression and for every
        # other cross-dtype one (enough to cover each cast, and the file small).
        entries = [case_entry(e, x, SHAPE, k % 2 == 0) for k, e in enumerate(expressions(dt))]
        cases.append({"dtype": dt, "shape": list(SHAPE), "x": hexbytes(x),
                      "exprs": [c for c in entries if c is not None]})
    # Index variables on other shapes.
    for dt, shape in [("float64", (40,)), ("int32", (2, 4, 5)), ("uint8", (2, 2, 2, 5))]:
        x = inputs(dt, rng)[: int(np.prod(shape))].reshape(shape)
        exprs = ["i", "j", "k", "n", "i * 100 + j * 10 + k", "x + n", "n - k", "x * j"]
        entries = [case_entry(e, x, shape) for e in exprs]
        cases.append({"dtype": dt, "shape": list(shape), "x": hexbytes(x),
                      "exprs": [c for c in entries if c is not None]})
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "expr_cases.json")
    # Keep the recorded answers of expressions already in the file: a few
    # float results (`x ** 3`) differ in the last bit between NumPy builds,
    # and the file should change only where the table does.
    if os.path.exists(out):
        with open(out) as f:
            old = json.load(f)
        for c, o in zip(cases, old["cases"]):
            if (c["dtype"], c["shape"], c["x"]) != (o["dtype"], o["shape"], o["x"]):
                continue
            recorded = {e["e"]: e for e in o["exprs"]}
            c["exprs"] = [recorded.get(e["e"], e) for e in c["exprs"]]
    with open(out, "w") as f:
        json.dump({"numpy": np.__version__, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    total = sum(len(c["exprs"]) for c in cases)
    print(f"wrote {out}: {len(cases)} cases, {total} expressions, "
          f"{os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
