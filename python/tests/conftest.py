"""Fixtures for the Python package's tests: they run against the installed
``mmrun`` package and its ``mmrun`` command (scripts/test.sh installs the
wheel into a fresh virtual environment and runs pytest with it)."""

import os
import subprocess
import sys

import pytest


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_py(code, cwd, check=True, **kw):
    """Runs ``code`` with this interpreter in ``cwd``; returns CompletedProcess."""
    p = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                       **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"python failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def mmrun_cmd():
    """The installed ``mmrun`` command (beside this interpreter)."""
    exe = os.path.join(os.path.dirname(sys.executable), "mmrun")
    assert os.access(exe, os.X_OK), f"{exe}: the package's mmrun command is not installed"
    return exe
