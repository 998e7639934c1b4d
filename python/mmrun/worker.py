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
    "positioned_generator",
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
    return positioned_generator(i["seed"], first_element(), i["dtype"])


def positioned_generator(seed, element, dtype):
    """``np.random.Generator(np.random.Philox(seed))`` advanced so that its
    next ``random(dtype=dtype)`` draw is element ``element`` (flat C-order
    index) of ``Generator(Philox(seed)).random(shape, dtype)`` (see
    :func:`rng`)."""
    dt = np.dtype(dtype)
    k = int(element)
    bits = np.random.Philox(seed)
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
    from . import reference  # imported only for f2/integer/bool dtypes

    return reference


def fill_uniform(block_elements=BLOCK_ELEMENTS):
    """Fills this worker's rows as ``mmrun fill --random uniform --seed S`` would.

    For native float32/float64 the bytes equal NumPy's
    ``Generator(Philox(seed)).random(shape, dtype)`` for any worker count;
    other dtypes use ``mmrun.reference`` (the integer, bool and float16
    streams of design.md). Progress is reported per block. Returns the rows
    (``rows()``).

    How (each measured, PERFORMANCE.md): float blocks are computed from
    Philox's raw 64-bit words with NumPy array operations (``_uniform``) in
    a buffer that stays in cache, and written with ``os.pwrite``, not stored
    through the mapping: no page fault and no zeroing of a fresh page per
    4 KiB, and a resident set of one block. Under ``MMRUN_SYNC=full`` the
    written windows are handed to the disk as they complete (``_Writeback``),
    so mmrun's final ``fsync`` finds little left.
    """
    r = rows()
    i = info()
    dt = r.dtype
    n = r.size
    if n == 0:
        progress(i["row_end"] - i["row_start"])
        return r
    per_row = _row_elements(i["shape"])
    start = first_element()
    if not (dt.kind == "f" and dt.itemsize in (4, 8) and dt.isnative):
        flat = r.reshape(-1)
        step = max(block_elements // per_row, 1) * per_row
        for b in range(0, n, step):
            e = min(b + step, n)
            flat[b:e] = _reference().uniform_flat(i["seed"], dt, start + b, e - b)
            progress(e // per_row if i["shape"] else 1)
        return r
    if i["seed"] is None:
        raise ProtocolError("MMRUN_SEED is not set")
    base = i["data_offset"] + start * dt.itemsize
    end = base + n * dt.itemsize
    fd = os.open(i["file"], os.O_WRONLY | os.O_CLOEXEC)
    try:
        wb = _Writeback(fd, base, end) if os.environ.get("MMRUN_SYNC") == "full" else None
        done = 0
        for block in _uniform(i["seed"], dt, start, n, max(block_elements, 2)):
            # A pwrite past the end of a file another program truncated would
            # silently extend it again (a store through a mapping would
            # SIGBUS): check the length as mmrun's own workers do.
            if os.fstat(fd).st_size < end:
                raise OSError(f"{i['file']} changed size during the run: another program truncated it")
            data = memoryview(block).cast("B")
            pos = base + done * dt.itemsize
            while data:
                k = os.pwrite(fd, data, pos)
                data, pos = data[k:], pos + k
            done += block.size
            if wb is not None:
                wb.done_to(base + done * dt.itemsize)
            progress(done // per_row if i["shape"] else 1)
    finally:
        os.close(fd)
    return r


def _uniform(seed, dt, start, count, block):
    """Yields ``Generator(Philox(seed)).random(dtype=dt)`` elements
    ``start..start + count`` in arrays of at most ``block`` elements (the
    same buffer each time).

    ``Generator.random`` makes element ``k`` from raw u64 ``k`` (float64:
    ``(u >> 11) * 2**-53``) or from the low (``k`` even) or high (``k``
    odd) half of raw u64 ``k // 2`` (float32: ``(h >> 8) * 2**-24``), one
    call through a function pointer per element. Doing the same shifts and
    scaling on ``random_raw`` words with whole-array operations gives the
    same bits about 1.5x faster (all steps are exact: the shifted values fit
    the float's mantissa and the scale is a power of two).
    """
    f32 = dt.itemsize == 4
    bits = np.random.Philox(seed)
    word = start // 2 if f32 else start
    odd = start % 2 if f32 else 0
    blk, skip = divmod(word, 4)
    if blk:
        bits.advance(blk)
    if skip:
        bits.random_raw(skip)
    out = np.empty(block, dtype=dt)
    ints = np.empty(block, dtype=np.uint32 if f32 else np.uint64)
    shift, scale = (8, dt.type(2.0**-24)) if f32 else (11, dt.type(2.0**-53))
    done = 0
    while done < count:
        m = min(block, count - done)
        if f32 and (odd + m) % 2 and done + m < count:
            m -= 1  # so the next block starts on a whole word
        raw = bits.random_raw((odd + m + 1) // 2 if f32 else m)
        src = raw.view(np.uint32)[odd:odd + m] if f32 else raw
        np.right_shift(src, shift, out=ints[:m])
        o = out[:m]
        o[...] = ints[:m]
        np.multiply(o, scale, out=o)
        yield o
        done += m
        odd = 0


class _Writeback:
    """Streamed writeback of what this worker wrote, as mmrun's own workers
    do it: windows of about 8 MiB cut on 4 KiB file boundaries, each
    window's writeback started as it completes (``sync_file_range(WRITE)``)
    and the window two back waited for. Without the call (not Linux, no
    ``libc``) it does nothing; mmrun's ``fsync`` then does all the work.
    """

    WINDOW = 8 << 20
    ALIGN = 4096
    WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4

    def __init__(self, fd, base, end):
        self.fd, self.start, self.end = fd, base, end
        self.pending = []
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            f = libc.sync_file_range
            f.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            f.restype = ctypes.c_int
            self._call, self._errno = f, ctypes.get_errno
        except (OSError, AttributeError, ImportError):
            self._call = None

    def _sync(self, lo, hi, flags):
        if self._call is not None and self._call(self.fd, lo, hi - lo, flags) != 0:
            e = self._errno()
            raise OSError(e, f"writeback of bytes {lo}..{hi}: {os.strerror(e)}")

    def done_to(self, done):
        cut = self.end if done >= self.end else done // self.ALIGN * self.ALIGN
        if cut < self.end and cut < self.start + self.WINDOW:
            return
        self._sync(self.start, cut, self.WRITE)
        self.pending.append((self.start, cut))
        self.start = cut
        while len(self.pending) > 2:
            lo, hi = self.pending.pop(0)
            self._sync(lo, hi, self.WAIT_BEFORE | self.WRITE | self.WAIT_AFTER)


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
