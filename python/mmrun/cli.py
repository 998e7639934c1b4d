"""The ``mmrun`` command line from Python, with NumPy-typed results.

Every function runs the ``mmrun`` command (``$MMRUN_BIN``, else the one
installed beside this interpreter, else ``mmrun`` on ``PATH``) as a
subprocess, without a shell, and returns what NumPy users want back::

    import mmrun

    a = mmrun.fill("data.npy", shape=(10000, 10000), dtype="f4",
                   random="uniform", seed=3, workers=8)
    # a is np.load("data.npy", mmap_mode="r"): equal to
    # np.random.Generator(np.random.Philox(3)).random((10000, 10000), dtype=np.float32)

    mmrun.info("data.npy")["shape"]           # [10000, 10000]
    mmrun.exec_("means.npy", ["python", "row_means.py", "--input", "data.npy"],
                shape=10000, dtype="f8", workers=8)

A failed command raises :class:`MmrunError` carrying mmrun's one-line message
and its exit code (1: the run failed, 2: refused before any work, 75: the file
is busy; see the README). Keyword options not named in a signature are passed
as long options: ``npy_header="compact"`` becomes ``--npy-header compact``,
``no_lock=True`` becomes ``--no-lock``, ``False``/``None`` are left out.
"""

from __future__ import annotations

import json as _json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any, Dict, Optional, Union

import numpy as np

from .errors import MmrunError, make as _make_error

__all__ = ["MmrunError", "binary", "run", "create", "fill", "info", "open_array", "exec_",
           "apply", "reduce", "convert", "verify", "commit"]

PathLike = Union[str, "os.PathLike[str]"]


def binary() -> str:
    """The mmrun executable: ``$MMRUN_BIN``, else the ``mmrun`` installed
    beside this interpreter (the package's command), else ``mmrun`` on ``PATH``."""
    b = os.environ.get("MMRUN_BIN")
    if b:
        return b
    here = os.path.join(os.path.dirname(sys.executable), "mmrun")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("mmrun")
    if found is None:
        raise MmrunError("mmrun not found: set MMRUN_BIN or put mmrun on PATH", 127)
    return found


def _error_message(stderr, code):
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("mmrun: error:"):
            return line[len("mmrun: error:"):].strip()
    if lines:
        return lines[-1].strip()
    return f"mmrun exited with status {code}"


def _opt_name(key):
    return "--" + key.replace("_", "-")


def _shape_text(shape):
    if isinstance(shape, str):
        return shape
    if isinstance(shape, (int, np.integer)):
        return str(int(shape))
    shape = tuple(int(s) for s in shape)
    if not shape:
        raise ValueError("mmrun's command line has no spelling for a 0-d shape")
    return ",".join(str(s) for s in shape)


def _dtype_text(dtype):
    if isinstance(dtype, str):
        return dtype  # mmrun spellings (f32, float32, <f4, ...) pass through
    return np.dtype(dtype).str


def _rows_text(rows):
    if isinstance(rows, str):
        return rows
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError("rows: mmrun takes contiguous rows (no step)")
        a, b = rows.start, rows.stop
    else:
        a, b = rows
    return f"{'' if a is None else int(a)}:{'' if b is None else int(b)}"


def _value_text(value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))  # nan, inf, -inf, 1e+300: all mmrun spellings
    return str(value)


def _options(opts):
    """Long options from keyword arguments (None/False left out)."""
    argv = []
    for key, v in opts.items():
        if v is None or (v is False and key != "value"):
            continue
        if key == "shape":
            argv += ["--shape", _shape_text(v)]
        elif key == "dtype":
            argv += ["--dtype", _dtype_text(v)]
        elif key in ("rows", "cols"):
            argv += [_opt_name(key), _rows_text(v)]
        elif key == "value":
            argv += ["--value", _value_text(v)]
        elif v is True:
            argv.append(_opt_name(key))
        elif isinstance(v, (list, tuple)):
            argv += [_opt_name(key), ",".join(str(x) for x in v)]
        else:
            argv += [_opt_name(key), str(v)]
    return argv


def run(argv, check=True):
    """Runs ``mmrun ARGV...`` (stdin /dev/null) and returns ``CompletedProcess`` (text).

    Raises :class:`MmrunError` on a non-zero exit when ``check``.
    """
    cmd = [binary()] + [os.fspath(a) for a in argv]
    with subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            out, err = proc.communicate()
        except BaseException:
            _stop(proc)
            raise
    p = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and p.returncode != 0:
        raise _make_error(_error_message(p.stderr, p.returncode), p.returncode, p.stderr, cmd)
    return p


_LAYOUT_KEYS = ("raw", "dtype", "shape", "offset")


def _stop(proc):
    """An exception (Ctrl-C) in the caller while mmrun runs: interrupt it as
    Ctrl-C in a terminal would (its workers stop, nothing is published, the
    journal is kept for ``--resume``) and wait for it, so nothing runs on."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGINT)
        except ProcessLookupError:
            pass
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:  # a second Ctrl-C: still wait for it
                continue


def _layout(opts):
    return {k: opts[k] for k in _LAYOUT_KEYS if opts.get(k) not in (None, False)}


def info(path, **opts):
    """``mmrun info PATH --json`` as a dict (``raw=True, dtype=..`` for raw files)."""
    return _json.loads(run(["info", path, "--json"] + _options(opts)).stdout)


def open_array(path, mode="r", **layout):
    """Opens an mmrun file with NumPy: ``np.load(path, mmap_mode=mode)`` or, for
    a raw file (``raw=True`` with ``dtype`` and optionally ``shape``/``offset``),
    ``np.memmap`` with the layout mmrun reports."""
    if not layout.get("raw"):
        return np.load(path, mmap_mode=mode)
    d = info(path, **_layout(layout))
    return np.memmap(path, dtype=np.dtype(d["dtype"]), mode=mode,
                     offset=d["data_offset"], shape=tuple(d["shape"]))


def create(path, shape, dtype=None, force=False, **opts):
    """``mmrun create``: a zero-filled file; returns it opened read-only."""
    run(["create", path] + _options(dict(shape=shape, dtype=dtype, force=force, **opts)))
    return open_array(path, **_layout(dict(shape=shape, dtype=dtype, **opts)))


def fill(path, shape=None, dtype=None, value=None, arange=False, random=None, seed=None,
         rows=None, workers=None, force=False, **opts):
    """``mmrun fill``: exactly one of ``value``, ``arange=True`` or ``random``
    (``"uniform"``/``"normal"``). Without ``shape`` an existing file is filled in
    place (``rows=slice(a, b)`` or ``"a:b"`` for part of it). Returns the file
    opened read-only (``np.load(mmap_mode="r")``, or ``np.memmap`` for raw)."""
    given = sum([value is not None, bool(arange), random is not None])
    if given != 1:
        raise ValueError("fill needs exactly one of value=, arange=True, random=")
    argv = ["fill", path] + _options(dict(
        shape=shape, dtype=dtype, value=value, arange=arange, random=random, seed=seed,
        rows=rows, workers=workers, force=force, **opts))
    run(argv)
    return open_array(path, **_layout(dict(shape=shape, dtype=dtype, **opts)))


def _pump(src, dst, keep):
    for line in iter(src.readline, ""):
        keep.append(line)
        if dst is not None:
            dst.write(line)
            dst.flush()
    src.close()


def exec_(path, program_args, shape=None, dtype=None, workers=None, seed=None, force=False,
          echo=True, **opts):
    """``mmrun exec PATH [options] --json -- PROGRAM ARGS...``; returns the run report (dict).

    ``program_args`` is the worker's argv (``{file} {start} {end} {worker}
    {workers} {seed}`` are replaced per worker by mmrun). Worker output
    (tagged ``[wN]``) is copied to ``sys.stderr`` as it arrives when ``echo``;
    it is also in the report's exception on failure (``MmrunError.stderr``).
    """
    program_args = [os.fspath(a) for a in program_args]
    if not program_args:
        raise ValueError("exec_ needs a program to run")
    cmd = [binary(), "exec", os.fspath(path)] + _options(dict(
        shape=shape, dtype=dtype, workers=workers, seed=seed, force=force, **opts))
    cmd += ["--json", "--"] + program_args
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = [], []
    try:
        t = threading.Thread(target=_pump, args=(p.stdout, None, out), daemon=True)
        t.start()
        _pump(p.stderr, sys.stderr if echo else None, err)
        t.join()
        code = p.wait()
    except BaseException:
        _stop(p)
        raise
    stderr = "".join(err)
    if code != 0:
        raise _make_error(_error_message(stderr, code), code, stderr, cmd)
    return _json.loads("".join(out))


exec = exec_  # noqa: A001 - ``mmrun.exec(...)`` reads as the command's name


def apply(path: PathLike, expr: str, *, out: Optional[PathLike] = None, dtype: Any = None,
          rows: Any = None, cols: Any = None, workers: Optional[int] = None, force: bool = False,
          **opts: Any) -> np.ndarray:
    """``mmrun apply PATH --expr EXPR``: the expression over every element,
    in place or into a new file ``out`` (``x.astype(dtype)`` of the
    selection); returns the written file opened read-only
    (``np.load(mmap_mode="r")``)."""
    run(["apply", path, "--expr", expr] + _options(dict(
        out=out, dtype=dtype, rows=rows, cols=None if cols is None else _rows_text(cols),
        workers=workers, force=force, **opts)))
    return np.load(out if out is not None else path, mmap_mode="r")


def reduce(path: PathLike, op: str, axis: Union[int, str, None] = None, *, ddof: int = 0,
           dtype: Any = None, out: Optional[PathLike] = None, workers: Optional[int] = None,
           force: bool = False, **opts: Any) -> Any:
    """``mmrun reduce PATH --op OP --axis AXIS``: ``sum``, ``mean``, ``min``,
    ``max``, ``std``, ``var``, ``prod``, ``any``, ``all``, ``argmin``,
    ``argmax`` or a ``nan*`` variant as NumPy computes it; ``rows=`` and
    ``cols=`` (slices) reduce ``a[rows, cols]``; a tuple ``axis`` is NumPy's.

    ``axis=None`` (or ``"all"``) returns a NumPy scalar of NumPy's result
    dtype (e.g. ``np.float32`` for the mean of float32), bit for bit what
    mmrun computed. Another axis returns an array: the file ``out`` opened
    read-only when given, else an in-memory ``np.ndarray``."""
    ax = "all" if axis is None else str(axis)
    opts = dict(ddof=ddof or None, dtype=dtype, workers=workers, **opts)
    if ax == "all" and out is None:
        report = _json.loads(run(["reduce", path, "--op", op, "--axis", ax, "--json", "-q"]
                                 + _options(opts)).stdout)
        r = report["results"]
        raw = bytes.fromhex(r["bytes_hex"])
        return np.frombuffer(raw, dtype=np.dtype(r["dtype"])).reshape(r["shape"])[()]
    if out is not None:
        run(["reduce", path, "--op", op, "--axis", ax, "--out", out, "-q"]
            + _options(dict(force=force, **opts)))
        return np.load(out, mmap_mode="r")
    with tempfile.TemporaryDirectory(prefix="mmrun-reduce-") as d:
        tmp = os.path.join(d, "result.npy")
        run(["reduce", path, "--op", op, "--axis", ax, "--out", tmp, "-q"] + _options(opts))
        return np.load(tmp)


def convert(src: PathLike, out: PathLike, dtype: Any = None, *, force: bool = False,
            **opts: Any) -> np.ndarray:
    """``mmrun convert SRC OUT``: ``SRC.astype(dtype)`` as a native
    little-endian C-order file, published atomically; returns it opened
    read-only (``np.load(mmap_mode="r")``)."""
    run(["convert", src, out] + _options(dict(dtype=dtype, force=force, **opts)))
    return np.load(out, mmap_mode="r")


def verify(path: PathLike, *, value: Any = None, arange: bool = False,
           random: Optional[str] = None, seed: Optional[int] = None, rows: Any = None,
           **opts: Any) -> Dict[str, Any]:
    """``mmrun verify PATH --json``: whether the file holds ``value``,
    ``arange=True`` or the ``random`` stream of ``seed``. Returns the
    verdict (``ok``, ``first_row``, ``first_element``, ...): a mismatch is
    ``ok == False``, a refused check raises."""
    p = run(["verify", path, "--json"] + _options(dict(
        value=value, arange=arange, random=random, seed=seed, rows=rows, **opts)), check=False)
    if p.stdout.strip():
        return _json.loads(p.stdout)
    raise _make_error(_error_message(p.stderr, p.returncode), p.returncode, p.stderr,
                      ["verify", os.fspath(path)])


def commit(path: PathLike) -> Dict[str, Any]:
    """``mmrun commit PATH --json``: publishes a pending distributed run's
    file once every rank succeeded; returns what was published."""
    return _json.loads(run(["commit", path, "--json"]).stdout)
