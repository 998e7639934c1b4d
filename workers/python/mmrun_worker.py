"""The worker side of ``mmrun exec`` for Python and NumPy (protocol version 1).

mmrun creates (or opens) the array file, splits its rows into disjoint ranges
and starts one process per range with the range in its environment (see
``workers/README.md``). This module reads that environment and hands your
code exactly its own rows::

    # mmrun exec data.npy --shape 10000,10000 --dtype f4 -w 8 -- python my_worker.py
    import mmrun_worker as w

    rows = w.rows()              # numpy.memmap of rows [ROW_START, ROW_END), mode r+
    rows[:] = compute(w.row_start, w.row_end)
    w.progress(len(rows))        # optional: rows done so far (no-op without a slot)

mmrun flushes the file once after every worker has exited 0; a worker need
not call ``flush()`` (it is there for workers that want their own msync).
A worker that writes outside its rows corrupts another worker's data: that
is the worker's bug, and mmrun cannot stop it.

Random numbers: ``rng()`` is ``np.random.Generator(np.random.Philox(seed))``
advanced to this worker's first element, so ``fill_uniform()`` writes exactly
what ``mmrun fill --random uniform --seed S`` writes, whatever ``-w`` is.

Metadata is available from ``info()`` (a dict) and as module attributes,
read from the environment when first used: ``file``, ``format``, ``dtype``
(a ``numpy.dtype``), ``shape`` (a tuple), ``data_offset``, ``row_start``,
``row_end``, ``worker``, ``workers``, ``seed``, ``progress_file``,
``progress_slot``.

Only the standard library and NumPy are needed.
"""

import math
import os

import numpy as np

__all__ = [
    "PROTOCOL",
    "ProtocolError",
    "info",
    "rows",
    "rng",
    "first_element",
    "fill_uniform",
    "progress",
    "flush",
]

#: The protocol version this module speaks (``MMRUN_PROTOCOL``).
PROTOCOL = 1

#: Elements generated per call in ``fill_uniform`` (bounds the resident set
#: of files larger than memory and gives progress a granularity).
BLOCK_ELEMENTS = 1 << 20

#: Bytes between two progress slots (one cache line pair, as in design.md).
PROGRESS_STRIDE = 128


class ProtocolError(RuntimeError):
    """The environment is not a valid mmrun protocol-v1 worker environment."""


_info = None
_maps = []
_progress_map = None


def _env(name, required=True):
    v = os.environ.get(name)
    if v is None and required:
        raise ProtocolError(f"{name} is not set: run this program under `mmrun exec`")
    return v


def _int(name, required=True):
    v = _env(name, required)
    if v is None:
        return None
    try:
        n = int(v, 10)
    except ValueError:
        raise ProtocolError(f"{name}={v!r} is not an integer") from None
    if n < 0:
        raise ProtocolError(f"{name}={v!r} is negative")
    return n


def _read_info():
    proto = _env("MMRUN_PROTOCOL")
    if proto != str(PROTOCOL):
        raise ProtocolError(
            f"MMRUN_PROTOCOL={proto!r}: this module speaks protocol {PROTOCOL}"
        )
    fmt = _env("MMRUN_FORMAT")
    if fmt not in ("npy", "raw"):
        raise ProtocolError(f"MMRUN_FORMAT={fmt!r} is neither npy nor raw")
    try:
        dt = np.dtype(_env("MMRUN_DTYPE"))
    except TypeError as e:
        raise ProtocolError(f"MMRUN_DTYPE: {e}") from None
    shape_text = _env("MMRUN_SHAPE").strip()
    try:
        shape = tuple(int(s, 10) for s in shape_text.split(",") if s.strip())
    except ValueError:
        raise ProtocolError(f"MMRUN_SHAPE={shape_text!r} is not R,C,...") from None
    start = _int("MMRUN_ROW_START")
    end = _int("MMRUN_ROW_END")
    nrows = shape[0] if shape else 1
    if not start <= end <= nrows:
        raise ProtocolError(f"row range {start}..{end} is outside 0..{nrows}")
    worker = _int("MMRUN_WORKER")
    workers = _int("MMRUN_WORKERS")
    if worker >= workers:
        raise ProtocolError(f"MMRUN_WORKER={worker} is not below MMRUN_WORKERS={workers}")
    pfile = os.environ.get("MMRUN_PROGRESS_FILE") or None
    pslot = _int("MMRUN_PROGRESS_SLOT", required=pfile is not None)
    return {
        "protocol": PROTOCOL,
        "file": _env("MMRUN_FILE"),
        "format": fmt,
        "dtype": dt,
        "shape": shape,
        "data_offset": _int("MMRUN_DATA_OFFSET"),
        "row_start": start,
        "row_end": end,
        "worker": worker,
        "workers": workers,
        "seed": _int("MMRUN_SEED", required=False),
        "progress_file": pfile,
        "progress_slot": pslot,
    }


def info():
    """This worker's task: a dict read from the environment once.

    Keys: ``file`` (the path to open: for a new target, the partial file),
    ``format`` (``npy``/``raw``), ``dtype`` (``numpy.dtype``), ``shape``
    (tuple; ``()`` for a 0-d array, which has one row), ``data_offset``,
    ``row_start``, ``row_end`` (exclusive), ``worker``, ``workers``, ``seed``
    (int, or ``None`` outside mmrun), ``progress_file``, ``progress_slot``
    (``None`` when mmrun gave none). Raises ``ProtocolError`` when a variable
    is missing or malformed.
    """
    global _info
    if _info is None:
        _info = _read_info()
    return dict(_info)


def __getattr__(name):
    # Module attributes (``mmrun_worker.shape``) read lazily, so that merely
    # importing this module outside mmrun does not fail.
    if name in (
        "file", "format", "dtype", "shape", "data_offset", "row_start", "row_end",
        "worker", "workers", "seed", "progress_file", "progress_slot",
    ):
        return info()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _row_elements(shape):
    return math.prod(shape[1:]) if shape else 1


def first_element():
    """Flat C-order index (in the whole array) of this worker's first element."""
    i = info()
    return i["row_start"] * _row_elements(i["shape"])


def rows():
    """A ``numpy.memmap`` (mode ``r+``) of exactly this worker's rows.

    Its shape is ``(row_end - row_start,) + shape[1:]`` (``()`` for a 0-d
    array). Any data offset is handled, including one that is not a multiple
    of the page size or of the itemsize (the array is then unaligned). An
    empty range gives an empty ordinary array: there is nothing to write.
    """
    i = info()
    shape, dt = i["shape"], i["dtype"]
    if shape:
        view_shape = (i["row_end"] - i["row_start"],) + shape[1:]
    else:
        view_shape = ()
    count = math.prod(view_shape)
    if count == 0 or (not shape and i["row_end"] == i["row_start"]):
        return np.empty(view_shape if shape else (0,), dtype=dt)
    offset = i["data_offset"] + i["row_start"] * _row_elements(shape) * dt.itemsize
    m = np.memmap(i["file"], dtype=dt, mode="r+", offset=offset, shape=view_shape)
    _maps.append(m)
    return m


def rng():
    """``np.random.Generator(np.random.Philox(seed))`` advanced to this worker's first element.

    Element ``k`` of ``Generator(Philox(seed)).random(shape, dtype)`` uses
    the ``k``-th raw u64 for float64 and the low (``k`` even) or high (``k``
    odd) half of raw u64 ``k // 2`` for float32; Philox makes four u64 per
    counter block. So this seeks the counter to the right block, consumes
    the remaining u64 of that block, and for float32 with an odd first
    element consumes one float32 (the low half), leaving the high half for
    the first element drawn by the caller. The returned generator is meant
    for ``random(dtype=...)`` with the file's float dtype; other draws are
    valid but are not what ``mmrun fill`` writes.
    """
    i = info()
    if i["seed"] is None:
        raise ProtocolError("MMRUN_SEED is not set")
    dt = i["dtype"]
    k = first_element()
    bits = np.random.Philox(i["seed"])
    gen = np.random.Generator(bits)
    if dt.kind == "f" and dt.itemsize == 4:
        word, odd = divmod(k, 2)
    else:
        word, odd = k, 0
    block, skip = divmod(word, 4)
    if block:
        bits.advance(block)
    if skip:
        bits.random_raw(skip)
    if odd:
        gen.random(1, dtype=np.float32)
    return gen


def _reference():
    import mmrun_reference  # same directory; imported only for f2/integer/bool dtypes

    return mmrun_reference


def fill_uniform(block_elements=BLOCK_ELEMENTS):
    """Fills this worker's rows as ``mmrun fill --random uniform --seed S`` would.

    For float32/float64 this is ``r = rows(); rng().random(dtype=r.dtype,
    out=r)``, done on a flat view block by block (reporting progress per
    block of whole rows); the bytes equal NumPy's
    ``Generator(Philox(seed)).random(shape, dtype)`` for any worker count.
    Other dtypes use ``mmrun_reference`` (the integer, bool and float16
    streams of design.md). Returns the rows.
    """
    r = rows()
    i = info()
    dt = r.dtype
    n = r.size
    if n == 0:
        progress(i["row_end"] - i["row_start"])
        return r
    flat = r.reshape(-1)
    per_row = _row_elements(i["shape"])
    step = max(block_elements // per_row, 1) * per_row
    native_float = dt.kind == "f" and dt.itemsize in (4, 8) and dt.isnative
    gen = rng() if native_float else None
    start = first_element()
    for b in range(0, n, step):
        e = min(b + step, n)
        out = flat[b:e]
        if native_float:
            if out.flags.aligned:
                gen.random(dtype=dt.type, out=out)
            else:
                out[...] = gen.random(e - b, dtype=dt.type)
        else:
            out[...] = _reference().uniform_flat(i["seed"], dt, start + b, e - b)
        progress(e // per_row if i["shape"] else 1)
    return r


def progress(rows_done):
    """Publishes this worker's rows-done count (monotonic) to its progress slot.

    The slot is the native-endian u64 at byte ``128 * MMRUN_PROGRESS_SLOT``
    of ``MMRUN_PROGRESS_FILE``, written with one aligned 8-byte store. A
    no-op when mmrun gave no progress file.
    """
    global _progress_map
    i = info()
    if i["progress_file"] is None:
        return
    if _progress_map is None:
        _progress_map = np.memmap(
            i["progress_file"],
            dtype=np.uint64,
            mode="r+",
            offset=PROGRESS_STRIDE * i["progress_slot"],
            shape=(1,),
        )
    _progress_map[0] = int(rows_done)


def flush():
    """msyncs every mapping ``rows()`` returned (mmrun syncs the file anyway)."""
    for m in _maps:
        m.flush()
