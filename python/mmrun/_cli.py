"""The ``mmrun`` command installed by the Python package: the Rust command
line, run in this process by the extension module.

Re-executed workers (``--spawn exec``) start this same launcher as
``mmrun __worker``, named to the coordinator by ``MMRUN_WORKER_EXE``.
"""

import os
import sys


def main() -> None:
    """Entry point of the ``mmrun`` command."""
    from . import _native

    if len(sys.argv) > 1 and sys.argv[1] == "__worker":
        code = _native.worker_main()
        sys.stdout.flush()
        os._exit(code)
    exe = os.path.abspath(sys.argv[0])
    if os.access(exe, os.X_OK) and not exe.endswith(".py") and not os.environ.get("MMRUN_WORKER_EXE"):
        os.environ["MMRUN_WORKER_EXE"] = exe
    code = _native.cli(["mmrun"] + sys.argv[1:])
    sys.stdout.flush()
    sys.exit(code)
