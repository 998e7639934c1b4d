"""mmrun for NumPy users: parallel work over one memory-mapped ``.npy`` file.

::

    import mmrun, numpy as np
    a = mmrun.fill("data.npy", shape=(10000, 1000), dtype="f4", random="uniform", seed=3)
    mmrun.reduce("data.npy", "mean")                  # np.float32(0.49998...)
    means = mmrun.map_rows(lambda b, start, stop: b.mean(axis=1), "data.npy")

Your own function as the workers: :func:`map_rows` (workers forked from
this interpreter, every mmrun guarantee: atomic publish, journal and
resume, retries, progress, seeded Philox streams). The command line:
:func:`create`, :func:`fill`, :func:`info`, :func:`apply`,
:func:`reduce`, :func:`convert`, :func:`verify`, :func:`exec_` (also
``mmrun.exec``), :func:`commit`, and :func:`open_array` to map a file.
Errors: :class:`MmrunError` and its subclasses :class:`RunFailedError`
(exit 1), :class:`RefusedError` (2), :class:`BusyError` (75).

Submodules: ``mmrun.worker`` (the worker side of ``mmrun exec`` for Python
scripts), ``mmrun.reference`` (every stream mmrun writes, recomputed with
NumPy), ``mmrun.cli`` (the command wrappers).

NumPy is imported when an API function is first used, so the ``mmrun``
command this package installs starts without it.
"""

from .errors import BusyError, MmrunError, RefusedError, RunFailedError, WorkerFailure

__all__ = [
    "map_rows", "create", "fill", "info", "apply", "reduce", "convert", "verify",
    "exec_", "exec", "commit", "open_array", "run", "binary",
    "MmrunError", "RunFailedError", "RefusedError", "BusyError", "WorkerFailure",
]

_CLI = {"create", "fill", "info", "apply", "reduce", "convert", "verify", "exec_", "exec",
        "commit", "open_array", "run", "binary"}


def __getattr__(name):
    if name == "map_rows":
        from ._map import map_rows

        return map_rows
    if name in _CLI:
        from . import cli

        return getattr(cli, name)
    raise AttributeError(f"module 'mmrun' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
