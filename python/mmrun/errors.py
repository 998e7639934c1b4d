"""mmrun's errors as Python exceptions.

Every failure of an mmrun command or of :func:`mmrun.map_rows` raises an
:class:`MmrunError` (a subclass picked by the exit code), carrying mmrun's
one-line ``message``, its exit ``code`` (1: the run failed, 2: refused
before any work, 75: the file is busy) and, when workers failed,
``failures``: one :class:`WorkerFailure` (worker, rows, cause) each. A job
stopped by Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` instead, after its
workers are gone and with nothing published.
"""

from __future__ import annotations

import re
import signal as _signal
from typing import List, NamedTuple, Optional, Sequence, Tuple

__all__ = [
    "MmrunError",
    "RunFailedError",
    "RefusedError",
    "BusyError",
    "WorkerFailure",
]


class WorkerFailure(NamedTuple):
    """One failed worker: its number, its rows ``(start, stop)`` and why."""

    worker: int
    rows: Tuple[int, int]
    cause: str


class MmrunError(RuntimeError):
    """An mmrun command or job failed.

    Attributes: ``message`` (mmrun's error line, without ``mmrun: error:``),
    ``code`` (the exit code; negative: killed by that signal, as
    ``subprocess`` reports it), ``failures`` (list of :class:`WorkerFailure`),
    ``stderr`` (everything a command wrote there) and ``argv`` (its command
    line; empty for :func:`mmrun.map_rows`).
    """

    def __init__(self, message: str, code: int, stderr: str = "",
                 argv: Sequence[str] = (), failures: Sequence[WorkerFailure] = ()):
        super().__init__(f"{message} (exit {code})")
        self.message = message
        self.code = code
        self.stderr = stderr
        self.argv = list(argv)
        self.failures: List[WorkerFailure] = list(failures)

    @property
    def worker(self) -> Optional[int]:
        """The first failed worker's number, if a worker failed."""
        return self.failures[0].worker if self.failures else None

    @property
    def rows(self) -> Optional[Tuple[int, int]]:
        """The first failed worker's rows ``(start, stop)``, if a worker failed."""
        return self.failures[0].rows if self.failures else None

    @property
    def cause(self) -> Optional[str]:
        """Why the first failed worker failed, if one did."""
        return self.failures[0].cause if self.failures else None


class RunFailedError(MmrunError):
    """Exit code 1: the run started and failed (a worker failed, I/O error);
    nothing was published."""


class RefusedError(MmrunError):
    """Exit code 2: refused before any work (bad arguments, wrong file);
    nothing was changed."""


class BusyError(MmrunError):
    """Exit code 75: another run holds the file's lock; try again later."""


_BY_CODE = {1: RunFailedError, 2: RefusedError, 75: BusyError}

_WORKER_LINE = re.compile(r"worker (\d+) \(rows (\d+)\.\.(\d+)\) (?:failed: )?([^\n]*)")


def _parse_failures(text: str) -> List[WorkerFailure]:
    out = []
    for m in _WORKER_LINE.finditer(text):
        cause = m.group(4).split("; nothing was published")[0].split("; worker ")[0]
        cause = cause.strip().rstrip(";")
        out.append(WorkerFailure(int(m.group(1)), (int(m.group(2)), int(m.group(3))), cause))
    return out


def make(message: str, code: int, stderr: str = "", argv: Sequence[str] = (),
         failures: Optional[Sequence[WorkerFailure]] = None) -> MmrunError:
    """The exception for exit ``code`` (workers' failures parsed from the
    message when not given)."""
    if failures is None:
        failures = _parse_failures(message)
    return _BY_CODE.get(code, MmrunError)(message, code, stderr, argv, failures)


def from_native(code: int, message: str, failures, sig: Optional[int]) -> BaseException:
    """Used by the extension: mmrun's error as the exception to raise."""
    if sig == _signal.SIGINT:
        return KeyboardInterrupt(message)
    fs = [WorkerFailure(int(w), (int(r[0]), int(r[1])), str(c)) for (w, r, c) in failures]
    return make(message, code, failures=fs)
