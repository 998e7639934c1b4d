"""Reference implementation of every number stream mmrun writes.

mmrun's fills are deterministic functions of (seed, dtype, global element
index); which worker wrote which rows never changes a byte. This module
recomputes each stream with NumPy alone, so anyone can check a file mmrun
wrote without trusting mmrun (see design.md, "Determinism and NumPy
semantics"). ``n`` below is the flat C-order index of an element in the
whole array, and ``raw`` is ``np.random.Philox(seed).random_raw(N)``
(Philox4x64-10, key ``SeedSequence(seed).generate_state(2, uint64)``, first
block at counter 1, four u64 per block).

``uniform``
    f8, f4: ``np.random.Generator(np.random.Philox(seed)).random(shape,
    dtype=...)``; that is f8 = ``(raw[n] >> 11) * 2**-53`` and f4 takes a u32
    stream made of the low then the high 32 bits of each raw u64,
    ``(u32[n] >> 8) * 2**-24``.
    f2: the same u32 stream, ``(u32[n] >> 21) * 2**-11`` (exact in f16).
    Integers: ``raw[n]`` cast to the dtype (its low bits). b1: ``raw[n] & 1``.
``normal`` (float dtypes)
    Box-Muller on pairs: for pair m, ``a = raw[2m]``, ``b = raw[2m+1]``,
    ``u1 = ((a >> 11) + 0.5) * 2**-53``, ``u2 = (b >> 11) * 2**-53``,
    ``r = sqrt(-2 ln u1)``, ``t = 2 pi u2``; element 2m = ``r cos t``,
    element 2m+1 = ``r sin t``; computed in f64, then cast to the dtype.
    This is *not* ``Generator.standard_normal``. mmrun takes log/sqrt/sin/cos
    from the Rust ``libm`` crate (the same bytes on every host, within one
    ulp of correctly rounded); here they are NumPy's ``np.log``/``np.sin``/
    ``np.cos``, whose results depend on the platform and NumPy's SIMD loops,
    so f8 values can differ from mmrun's by an ulp or so (``verify`` allows
    rtol 1e-12 for f8, one ulp for f4/f2), not bit for bit.
``arange``
    ``np.arange(prod(shape)).astype(dtype).reshape(shape)`` (wrapping).
``value``
    ``np.full(shape, v, dtype)`` with ``v`` read as a Python literal would be:
    integer dtypes take integer literals within range, float dtypes any
    decimal, ``nan`` or ``inf``, b1 ``0 1 true false``.

Every generator has a ``*_flat(..., start, count)`` form that computes only
elements ``[start, start + count)`` by seeking the Philox counter, as mmrun's
workers do; ``rows()`` uses it for a row range. ``verify()`` checks a file.

Command line::

    python -m mmrun.reference FILE (--random uniform|normal --seed S | --arange | --value V)
        [--raw --dtype T [--shape R,C] [--offset B]]

prints ``ok`` or the first differing row and exits 0 or 1.
"""

import argparse
import math
import sys

import numpy as np

__all__ = [
    "raw_u64",
    "uniform",
    "uniform_flat",
    "normal",
    "normal_flat",
    "arange",
    "arange_flat",
    "value",
    "expected",
    "rows",
    "open_array",
    "verify",
]

KINDS = ("uniform", "normal", "arange", "value")

# mmrun's Rust-style float spellings; everything else is NumPy's own.
_SPELLINGS = {"f16": "f2", "f32": "f4", "f64": "f8"}


def dtype(spec):
    """The NumPy dtype for an mmrun dtype spelling (``f4``, ``float32``, ``f32``, ``<f4``, ``b1``)."""
    if isinstance(spec, np.dtype):
        dt = spec
    elif spec in _SPELLINGS:
        dt = np.dtype(_SPELLINGS[spec])
    else:
        dt = np.dtype(spec)
    if dt.kind not in "biuf" or dt.itemsize not in (1, 2, 4, 8):
        raise ValueError(f"mmrun writes no dtype {dt!r}")
    return dt.newbyteorder("=") if dt.byteorder not in "=|" else dt


def _size(shape):
    return math.prod(_shape(shape))


def _shape(shape):
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


# ---------------------------------------------------------------------------
# Philox streams


def raw_u64(seed, start, count):
    """``Philox(seed).random_raw(start + count)[start:]``, seeking to ``start``."""
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    bits = np.random.Philox(seed)
    block, skip = divmod(start, 4)
    if block:
        bits.advance(block)
    return bits.random_raw(skip + count)[skip:]


def _u32(seed, start, count):
    """The u32 stream: low then high 32 bits of each raw u64, elements [start, start+count)."""
    if count <= 0:
        return np.empty(0, dtype=np.uint32)
    first = start // 2
    last = (start + count - 1) // 2
    words = raw_u64(seed, first, last - first + 1)
    halves = np.empty(2 * words.size, dtype=np.uint32)
    halves[0::2] = (words & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    halves[1::2] = (words >> np.uint64(32)).astype(np.uint32)
    skip = start - 2 * first
    return halves[skip : skip + count]


def uniform_flat(seed, dtype_, start, count):
    """Elements [start, start+count) of mmrun's ``--random uniform`` stream."""
    dt = dtype(dtype_)
    if dt.kind == "f":
        if dt.itemsize == 8:
            u = raw_u64(seed, start, count) >> np.uint64(11)
            return (u.astype(np.float64) * 2.0**-53).astype(dt)
        if dt.itemsize == 4:
            u = _u32(seed, start, count) >> np.uint32(8)
            return (u.astype(np.float32) * np.float32(2.0**-24)).astype(dt)
        u = _u32(seed, start, count) >> np.uint32(21)
        return (u.astype(np.float16) * np.float16(2.0**-11)).astype(dt)
    words = raw_u64(seed, start, count)
    if dt.kind == "b":
        return (words & np.uint64(1)).astype(dt)
    # Keep the low bits: view the u64 as bytes and take the dtype's width.
    return words.view(np.uint8).reshape(-1, 8)[:, : dt.itemsize].copy().view(dt).reshape(-1)


def uniform(seed, shape, dtype_):
    """The whole ``--random uniform`` array; f4/f8 straight from NumPy's Generator."""
    dt = dtype(dtype_)
    shape = _shape(shape)
    if dt.kind == "f" and dt.itemsize in (4, 8):
        gen = np.random.Generator(np.random.Philox(seed))
        return gen.random(shape, dtype=dt.type)
    return uniform_flat(seed, dt, 0, _size(shape)).reshape(shape)


def normal_flat(seed, dtype_, start, count):
    """Elements [start, start+count) of mmrun's ``--random normal`` (Box-Muller) stream."""
    dt = dtype(dtype_)
    if dt.kind != "f":
        raise ValueError("normal is defined for float dtypes only")
    if count <= 0:
        return np.empty(0, dtype=dt)
    first_pair = start // 2
    pairs = (start + count - 1) // 2 - first_pair + 1
    words = raw_u64(seed, 2 * first_pair, 2 * pairs)
    a = words[0::2] >> np.uint64(11)
    b = words[1::2] >> np.uint64(11)
    u1 = (a.astype(np.float64) + 0.5) * 2.0**-53
    u2 = b.astype(np.float64) * 2.0**-53
    r = np.sqrt(-2.0 * np.log(u1))
    t = 2.0 * np.pi * u2
    out = np.empty(2 * pairs, dtype=np.float64)
    out[0::2] = r * np.cos(t)
    out[1::2] = r * np.sin(t)
    skip = start - 2 * first_pair
    return out[skip : skip + count].astype(dt)


def normal(seed, shape, dtype_):
    shape = _shape(shape)
    return normal_flat(seed, dtype_, 0, _size(shape)).reshape(shape)


def arange_flat(dtype_, start, count):
    return np.arange(start, start + max(count, 0), dtype=np.int64).astype(dtype(dtype_))


def arange(shape, dtype_):
    """``np.arange(prod(shape)).astype(dtype).reshape(shape)``."""
    shape = _shape(shape)
    return np.arange(_size(shape)).astype(dtype(dtype_)).reshape(shape)


def scalar(text, dtype_):
    """The Python scalar ``--value TEXT`` stands for, refused as mmrun refuses it."""
    dt = dtype(dtype_)
    if not isinstance(text, str):
        text = str(text)
    t = text.strip().lower()
    if dt.kind == "b":
        if t in ("1", "true"):
            return True
        if t in ("0", "false"):
            return False
        raise ValueError(f"bool takes 0 1 true false, not {text!r}")
    if dt.kind in "iu":
        try:
            v = int(t, 10)
        except ValueError:
            raise ValueError(f"{dt} takes an integer literal, not {text!r}") from None
        info = np.iinfo(dt)
        if not info.min <= v <= info.max:
            raise ValueError(f"{text} is out of range for {dt}")
        return v
    v = float(t)
    if math.isfinite(v) and not np.isfinite(np.array(v).astype(dt)):
        raise ValueError(f"{text} overflows {dt}")
    return v


def value(v, shape, dtype_):
    """``np.full(shape, v, dtype)`` with ``v`` converted as NumPy converts a Python scalar."""
    dt = dtype(dtype_)
    return np.full(_shape(shape), scalar(v, dt), dtype=dt)


def _flat(kind, seed, dtype_, start, count, v=None):
    if kind == "uniform":
        return uniform_flat(seed, dtype_, start, count)
    if kind == "normal":
        return normal_flat(seed, dtype_, start, count)
    if kind == "arange":
        return arange_flat(dtype_, start, count)
    if kind == "value":
        return value(v, (max(count, 0),), dtype_)
    raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")


def expected(kind, shape, dtype_, seed=None, v=None):
    """The whole array a fill of ``kind`` writes."""
    shape = _shape(shape)
    return _flat(kind, seed, dtype_, 0, _size(shape), v).reshape(shape)


def rows(kind, shape, dtype_, start, end, seed=None, v=None):
    """Rows ``[start:end]`` (Python slice semantics) of a full fill, computed alone.

    A 0-d array has one row, the scalar itself.
    """
    shape = _shape(shape)
    nrows = shape[0] if shape else 1
    start, end, _ = slice(start, end).indices(nrows)
    end = max(start, end)
    per_row = math.prod(shape[1:]) if shape else 1
    flat = _flat(kind, seed, dtype_, start * per_row, (end - start) * per_row, v)
    return flat.reshape((end - start,) + shape[1:]) if shape else flat.reshape(())


# ---------------------------------------------------------------------------
# Checking a file


def open_array(path, raw=False, dtype_=None, shape=None, offset=0):
    """A read-only view of an mmrun file: ``np.load(mmap_mode="r")`` or ``np.memmap``."""
    if not raw:
        with open(path, "rb") as f:
            raw = f.read(6) != b"\x93NUMPY"
    if not raw:
        return np.load(path, mmap_mode="r")
    if dtype_ is None:
        raise ValueError(f"{path} is not a .npy file: give its dtype")
    return np.memmap(path, dtype=dtype(dtype_), mode="r", offset=offset, shape=shape)


def _ulps(dt):
    return {8: None, 4: 1, 2: 1}[dt.itemsize]


def _same(got, want, kind):
    """Indexes (along axis 0) of rows of ``got`` that differ from ``want``."""
    dt = want.dtype
    if got.dtype != dt:
        raise ValueError(f"file dtype {got.dtype} is not {dt}")
    g = np.ascontiguousarray(got).reshape(got.shape[0] if got.ndim else 1, -1)
    w = np.ascontiguousarray(want).reshape(g.shape)
    if kind == "normal":
        if dt.itemsize == 8:
            ok = np.isclose(g, w, rtol=1e-12, atol=0.0)
        else:
            ints = np.dtype(f"i{dt.itemsize}")
            ok = np.abs(g.view(ints).astype(np.int64) - w.view(ints).astype(np.int64)) <= _ulps(dt)
    else:
        # Bit for bit (NaN included).
        ints = np.dtype(f"u{dt.itemsize}")
        ok = g.view(ints) == w.view(ints)
    return np.flatnonzero(~ok.all(axis=1)) if g.size else np.empty(0, dtype=np.intp)


def verify(path, seed=None, kind="uniform", v=None, raw=False, dtype_=None, shape=None,
           offset=0, block_elements=1 << 20):
    """Compares a file with the stream it should hold.

    Returns ``None`` when every element matches, else the index of the first
    differing row (axis 0; 0 for a 0-d array). ``normal`` allows rtol 1e-12
    for f8 and one ulp for f4/f2; every other kind is compared bit for bit.
    """
    a = open_array(path, raw=raw, dtype_=dtype_, shape=shape, offset=offset)
    if a.dtype.byteorder == ">" or (a.ndim > 1 and not a.flags.c_contiguous):
        raise ValueError(f"{path}: mmrun writes native-endian C-order files only")
    dt = dtype(a.dtype)
    if a.ndim == 0:
        bad = _same(a, rows(kind, (), dt, 0, 1, seed, v), kind)
        return 0 if bad.size else None
    per_row = max(math.prod(a.shape[1:]), 1)
    step = max(block_elements // per_row, 1)
    for r0 in range(0, a.shape[0], step):
        r1 = min(r0 + step, a.shape[0])
        want = rows(kind, a.shape, dt, r0, r1, seed, v)
        bad = _same(a[r0:r1], want, kind)
        if bad.size:
            return r0 + int(bad[0])
    return None


def _main(argv=None):
    p = argparse.ArgumentParser(description="Check a file mmrun filled against NumPy.")
    p.add_argument("file")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--random", choices=("uniform", "normal"))
    how.add_argument("--arange", action="store_true")
    how.add_argument("--value")
    p.add_argument("--seed", type=int)
    p.add_argument("--raw", action="store_true")
    p.add_argument("--dtype")
    p.add_argument("--shape", type=lambda s: tuple(int(x) for x in s.split(",") if x.strip()))
    p.add_argument("--offset", type=int, default=0)
    args = p.parse_args(argv)
    kind = args.random or ("arange" if args.arange else "value")
    if args.random and args.seed is None:
        p.error("--random needs --seed")
    row = verify(args.file, seed=args.seed, kind=kind, v=args.value, raw=args.raw,
                 dtype_=args.dtype, shape=args.shape, offset=args.offset)
    if row is None:
        print("ok")
        return 0
    print(f"{args.file}: row {row} differs from the reference")
    return 1


if __name__ == "__main__":
    sys.exit(_main())
