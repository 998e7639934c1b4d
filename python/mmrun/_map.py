"""``mmrun.map_rows``: a Python function as mmrun's workers.

The extension (``mmrun._native``) runs the job with mmrun's coordinator:
workers are forked from this interpreter (NumPy already imported: no
interpreter start per worker), each calls ``func`` on its blocks of rows
through a writable NumPy view of the shared mapping, and the file is
published atomically once every worker succeeded. Values the function
returns are pickled by the workers into a directory beside the target
(``.NAME.mmrun-returns``), kept with the journal when a run fails so that a
``resume=True`` run returns every block's value, and returned in row order.
"""

from __future__ import annotations

import inspect
import os
import pickle
import secrets
import shutil
import sys
import traceback
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np

from .errors import MmrunError, make

__all__ = ["map_rows"]


def _accepts(func: Callable, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


def _rows_text(rows: Any) -> Optional[str]:
    if rows is None:
        return None
    if isinstance(rows, str):
        return rows
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError("rows: mmrun takes contiguous rows (no step)")
        a, b = rows.start, rows.stop
    else:
        a, b = rows
    return f"{'' if a is None else int(a)}:{'' if b is None else int(b)}"


def _returns_dir(target: str) -> str:
    d, name = os.path.split(os.path.abspath(target))
    return os.path.join(d, f".{name}.mmrun-returns")


def _journal(target: str) -> str:
    d, name = os.path.split(os.path.abspath(target))
    return os.path.join(d, f".{name}.mmrun-journal")


def _collect(rdir: str) -> List[Any]:
    """The values in ``rdir`` in row order (a block run again after a retry
    or resume with other boundaries is taken once)."""
    entries = []
    for n in os.listdir(rdir):
        if n.endswith(".pkl"):
            a, b = n[:-4].split("-")
            entries.append((int(a), int(b), n))
    entries.sort()
    out, covered = [], -1
    for a, b, n in entries:
        if a < covered:
            continue
        with open(os.path.join(rdir, n), "rb") as f:
            out.append(pickle.load(f))
        covered = b
    return out


def map_rows(func: Callable[..., Any], path: Union[str, "os.PathLike[str]"], *,
             out: Union[str, "os.PathLike[str]", None] = None,
             shape: Optional[Sequence[int]] = None, dtype: Any = None,
             workers: Optional[int] = None, rows: Any = None, retries: int = 0,
             resume: bool = False, progress: bool = True, seed: Optional[int] = None,
             force: bool = False, args: Sequence[Any] = (),
             kwargs: Optional[dict] = None) -> List[Any]:
    """Runs ``func(block, start, stop, *args, **kwargs)`` over the rows of a
    ``.npy`` file with N worker processes, and returns the values ``func``
    returned, one per block (``None`` left out), in row order.

    ``block`` is a writable NumPy view of rows ``[start, stop)`` of the
    file being written (shape ``(stop - start,) + shape[1:]``); every row is
    handed to exactly one call. Three ways to call it:

    - ``map_rows(f, "a.npy")``: ``a.npy`` is updated in place.
    - ``map_rows(f, "new.npy", shape=(R, C), dtype="f4")``: a new file (zeros
      where ``f`` writes nothing), published only when every worker succeeded.
    - ``map_rows(f, "in.npy", out="new.npy")``: a new file (``shape`` and
      ``dtype`` default to the input's); ``f`` must take a ``src=`` keyword:
      the same rows of ``in.npy``, read-only.

    When ``f`` takes an ``rng=`` keyword it gets ``np.random.Generator(
    np.random.Philox(seed))`` positioned at the block's first element, so
    ``block[:] = rng.random(block.shape, dtype=block.dtype)`` writes exactly
    ``Generator(Philox(seed)).random(shape, dtype)`` (what ``mmrun fill
    --random uniform --seed S`` writes) for any worker count.

    ``workers`` (default: the CPUs available), ``rows`` (``slice(a, b)`` or
    ``"a:b"``: only these rows), ``retries`` (run a failed worker's rows
    again), ``resume`` (finish a run that failed or was interrupted: its
    journal records what is done), ``progress`` (a bar on a terminal, log
    lines otherwise), ``force`` (replace an existing new-file target) are
    mmrun's options. In place, ``retries``/``resume`` are refused because a
    block may already have been changed; write to ``out=`` instead.

    Workers are forked from this process, so ``func`` may be any callable,
    lambdas and closures included, and sees the caller's globals as they
    were at the call. A worker's exception fails its worker; the call then
    raises :class:`mmrun.RunFailedError` with ``worker``, ``rows`` and
    ``cause`` (the exception's ``Type: message``; the traceback goes to
    stderr), and nothing is published. Ctrl-C (SIGINT) stops the workers,
    keeps the journal (``resume=True`` finishes the job) and raises
    ``KeyboardInterrupt``. Linux only; see the README for the limits.
    """
    from . import _native

    if not callable(func):
        raise TypeError(f"map_rows: func must be callable, not {type(func).__name__}")
    kwargs = dict(kwargs or {})
    path = os.fspath(path)
    src_path = None
    in_dtype = in_tail = None
    if out is not None:
        src = np.load(path, mmap_mode="r")
        if src.ndim == 0:
            raise ValueError(f"map_rows: {path} holds a 0-d array: there are no rows")
        if not src.flags.c_contiguous:
            raise ValueError(f"map_rows: {path} is in Fortran order: convert it first "
                             f"(mmrun convert {path} OUT.npy)")
        in_dtype, in_tail = src.dtype, src.shape[1:]
        target = os.fspath(out)
        shape = tuple(src.shape) if shape is None else tuple(int(s) for s in np.atleast_1d(shape))
        dt = np.dtype(src.dtype if dtype is None else dtype)
        src_path = path
        del src
        if not _accepts(func, "src"):
            raise TypeError("map_rows: with out=, func must take a src= keyword argument "
                            "(the same rows of the input file)")
        new = True
    elif shape is not None:
        target = path
        shape = tuple(int(s) for s in np.atleast_1d(shape))
        dt = np.dtype(np.float64 if dtype is None else dtype)
        new = True
    else:
        if dtype is not None:
            raise ValueError("map_rows: dtype= is for a new file: give shape= (or out=) too")
        a = np.load(path, mmap_mode="r")
        shape, dt = tuple(a.shape), a.dtype
        if a.ndim == 0:
            raise ValueError(f"map_rows: {path} holds a 0-d array: there are no rows")
        del a
        target = path
        new = False
    tail = tuple(shape[1:])
    row_elements = int(np.prod(tail, dtype=np.int64)) if tail else 1
    wants_rng = _accepts(func, "rng")
    if wants_rng and seed is None:
        seed = secrets.randbits(64)
    rdir = _returns_dir(target)
    if not resume and not os.path.exists(_journal(target)):
        shutil.rmtree(rdir, ignore_errors=True)
    os.makedirs(rdir, exist_ok=True)

    def call(view, start, nrows, src_view):
        stop = start + nrows
        block = np.frombuffer(view, dtype=dt).reshape((nrows,) + tail)
        kw = dict(kwargs)
        if src_view is not None:
            kw["src"] = np.frombuffer(src_view, dtype=in_dtype).reshape((nrows,) + in_tail)
        if wants_rng:
            from .worker import positioned_generator
            kw["rng"] = positioned_generator(seed, start * row_elements, dt)
        try:
            value = func(block, start, stop, *args, **kw)
        except BaseException:
            traceback.print_exc()
            raise
        if value is not None:
            name = os.path.join(rdir, f"{start:020d}-{stop:020d}")
            with open(name + ".tmp", "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(name + ".tmp", name + ".pkl")

    def finish():
        sys.stdout.flush()
        sys.stderr.flush()

    sys.stdout.flush()
    sys.stderr.flush()
    try:
        _native.map_rows(
            call, finish, target,
            shape=list(shape) if new else None,
            dtype=dt.str if new else None,
            src=src_path,
            workers=None if workers is None else int(workers),
            rows=_rows_text(rows),
            retries=int(retries),
            resume=bool(resume),
            progress=bool(progress),
            seed=None if seed is None else int(seed),
            force=bool(force),
        )
    except BaseException as e:
        if not os.path.exists(_journal(target)):
            # Nothing to resume: leave nothing behind.
            shutil.rmtree(rdir, ignore_errors=True)
        if not isinstance(e, MmrunError):
            raise
        if "applied twice" in e.message:
            # The command line's advice, in this function's own words.
            raise make(f"{target} is changed in place and a retried or resumed block would "
                       "be applied twice: write a new file with out= (or shape=) to use "
                       "retries= or resume=", e.code) from None
        raise
    try:
        return _collect(rdir)
    finally:
        shutil.rmtree(rdir, ignore_errors=True)
