"""The command line from Python: every wrapper against NumPy, NumPy-typed
results, and errors as exceptions with mmrun's exit code and message."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mmrun
from conftest import mmrun_cmd


def test_command_on_path_and_exec_spawn(cwd):
    exe = mmrun_cmd()
    assert shutil.which("mmrun", path=os.path.dirname(exe)) == exe
    p = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("mmrun"), p
    # Re-executed workers run the same launcher as `mmrun __worker`.
    p = subprocess.run([exe, "fill", "e.npy", "--shape", "300,7", "--dtype", "f4", "--arange",
                        "-w", "3", "--spawn", "exec", "-q"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.load("e.npy"), np.arange(2100, dtype=np.float32).reshape(300, 7))
    # A refusal: one error line, exit 2, nothing created.
    p = subprocess.run([exe, "fill", "bad.npy", "--shape", "3", "--dtype", "f4"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("mmrun: error:"), p
    assert not os.path.exists("bad.npy")


def test_create_fill_info_open_array(cwd):
    z = mmrun.create("z.npy", shape=(5, 3), dtype="i8")
    assert isinstance(z, np.memmap) and z.dtype == np.int64 and not z.any()
    a = mmrun.fill("a.npy", shape=(40, 9), dtype=np.float32, random="uniform", seed=7, workers=3)
    want = np.random.Generator(np.random.Philox(7)).random((40, 9), dtype=np.float32)
    assert a.tobytes() == want.tobytes()
    i = mmrun.info("a.npy")
    assert i["shape"] == [40, 9] and np.dtype(i["dtype"]) == np.float32
    b = mmrun.fill("a.npy", value=2.5, rows=slice(10, 20))
    assert (b[10:20] == 2.5).all() and b[:10].tobytes() == want[:10].tobytes()
    r = mmrun.fill("r.dat", shape=(4, 3), dtype="u2", arange=True, raw=True, offset=5)
    assert isinstance(r, np.memmap) and r.tolist() == np.arange(12, dtype="u2").reshape(4, 3).tolist()
    assert np.array_equal(mmrun.open_array("a.npy"), np.load("a.npy"))


def test_apply_convert_verify(cwd):
    mmrun.fill("x.npy", shape=(50, 4), dtype="f8", arange=True)
    y = mmrun.apply("x.npy", "x * 2 + 1", out="y.npy", dtype="f4")
    want = (np.arange(200, dtype="f8").reshape(50, 4) * 2 + 1).astype("f4")
    assert y.dtype == np.float32 and np.array_equal(y, want)
    mmrun.apply("x.npy", "x - 1", rows=slice(0, 10))
    x = np.load("x.npy")
    assert x[0, 0] == -1 and x[10, 0] == 40
    c = mmrun.convert("y.npy", "c.npy", dtype="i4")
    assert c.dtype == np.int32 and np.array_equal(c, want.astype("i4"))
    mmrun.fill("u.npy", shape=(30, 3), dtype="f4", random="uniform", seed=3)
    assert mmrun.verify("u.npy", random="uniform", seed=3)["ok"] is True
    bad = mmrun.verify("u.npy", random="uniform", seed=4)
    assert bad["ok"] is False and bad["first_row"] == 0


def test_reduce_numpy_types(cwd):
    a = mmrun.fill("a.npy", shape=(64, 33), dtype="f4", random="normal", seed=1)
    m = mmrun.reduce("a.npy", "mean")
    assert type(m) is np.float32
    assert m == np.asarray(a).mean(dtype=np.float32) or abs(m - a.mean()) < 1e-5
    s = mmrun.reduce("a.npy", "sum", axis=1)
    assert isinstance(s, np.ndarray) and s.dtype == np.float32 and s.shape == (64,)
    np.testing.assert_allclose(s, np.asarray(a, dtype="f8").sum(axis=1), rtol=1e-5, atol=1e-5)
    mx = mmrun.reduce("a.npy", "max", axis=0, out="mx.npy")
    assert isinstance(mx, np.memmap) and np.array_equal(mx, np.asarray(a).max(axis=0))
    mmrun.fill("i.npy", shape=(10, 10), dtype="i2", arange=True)
    t = mmrun.reduce("i.npy", "sum")
    assert type(t) is np.int64 and t == np.arange(100).sum()
    v = mmrun.reduce("a.npy", "var", ddof=1)
    assert abs(float(v) - float(np.asarray(a, dtype="f8").var(ddof=1))) < 1e-4


def test_exec_and_commit(cwd):
    script = cwd / "w.py"
    script.write_text("import mmrun.worker as w\nw.fill_uniform()\n")
    env_bin = os.path.dirname(sys.executable)
    rep = mmrun.exec("e.npy", [sys.executable, str(script)], shape=(30, 4), dtype="f8", seed=11,
                     workers=3, echo=False)
    assert rep["ok"] if "ok" in rep else rep["workers"], rep
    want = np.random.Generator(np.random.Philox(11)).random((30, 4))
    assert np.load("e.npy").tobytes() == want.tobytes()
    assert env_bin  # the worker imported mmrun.worker from the installed package
    with pytest.raises(mmrun.RefusedError) as e:
        mmrun.commit("nothing.npy")
    assert e.value.code == 2 and "nothing.npy" in e.value.message


def test_errors_carry_code_message_and_workers(cwd):
    with pytest.raises(mmrun.RefusedError) as e:
        mmrun.fill("bad.npy", shape=(3, 3), dtype="f4", value=1, force="maybe", raw=None,
                   npy_header="wrong")
    assert e.value.code == 2 and e.value.message and not os.path.exists("bad.npy")
    with pytest.raises(mmrun.MmrunError) as e:
        mmrun.info("missing.npy")
    assert e.value.code == 2 and "missing.npy" in e.value.message
    script = cwd / "fail.py"
    script.write_text("import sys, mmrun.worker as w\n"
                      "sys.exit(3 if w.worker == 1 else 0)\n")
    with pytest.raises(mmrun.RunFailedError) as e:
        mmrun.exec("f.npy", [sys.executable, str(script)], shape=(30, 4), dtype="f8",
                   workers=3, echo=False)
    assert e.value.code == 1
    assert e.value.worker == 1 and e.value.rows == (10, 20), e.value.failures
    assert "3" in e.value.cause
    assert not os.path.exists("f.npy")
