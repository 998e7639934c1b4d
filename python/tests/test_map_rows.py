"""``mmrun.map_rows``: Python functions as mmrun's workers, checked against
NumPy, with returns, errors, retries, interrupt and resume."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mmrun
from conftest import run_py


def row_sums(block, start, stop):
    """A top-level function: per-block partial sums."""
    return block.sum(axis=1)


def test_in_place_with_returns_in_row_order(cwd):
    mmrun.fill("a.npy", shape=(3000, 40), dtype="f8", arange=True)

    def double(block, start, stop):
        block *= 2
        return (start, stop)

    got = mmrun.map_rows(double, "a.npy", workers=3, progress=False)
    want = np.arange(120000, dtype="f8").reshape(3000, 40) * 2
    assert np.array_equal(np.load("a.npy"), want)
    assert got[0][0] == 0 and got[-1][1] == 3000
    assert all(a[1] == b[0] for a, b in zip(got, got[1:]))  # row order, no gaps
    sums = np.concatenate(mmrun.map_rows(row_sums, "a.npy", workers=2, progress=False))
    assert np.array_equal(sums, want.sum(axis=1))
    assert not [n for n in os.listdir(".") if n.startswith(".a.npy")]


def test_new_file_rng_matches_numpy_for_any_worker_count(cwd):
    def fill(block, start, stop, rng):
        block[:] = rng.random(block.shape, dtype=block.dtype)

    want = np.random.Generator(np.random.Philox(9)).random((777, 31), dtype=np.float32)
    for w in (1, 3):
        r = mmrun.map_rows(fill, f"r{w}.npy", shape=(777, 31), dtype="f4", seed=9, workers=w,
                           progress=False)
        assert r == []
        assert np.load(f"r{w}.npy").tobytes() == want.tobytes()


def test_out_reads_src_and_lambda_works(cwd):
    mmrun.fill("in.npy", shape=(500, 20), dtype="i4", arange=True)
    k = 3
    mmrun.map_rows(lambda b, s, e, src: np.multiply(src, k, out=b, casting="unsafe"),
                   "in.npy", out="out.npy", dtype="f8", workers=2, progress=False)
    out = np.load("out.npy")
    assert out.dtype == np.float64 and np.array_equal(out, np.arange(10000).reshape(500, 20) * 3)
    with pytest.raises(TypeError, match="src= keyword"):
        mmrun.map_rows(lambda b, s, e: None, "in.npy", out="o2.npy")
    assert not os.path.exists("o2.npy")


def test_rows_subset(cwd):
    mmrun.create("z.npy", shape=(100, 5), dtype="i8")
    got = mmrun.map_rows(lambda b, s, e: b.fill(7) or (s, e), "z.npy", rows=slice(10, 30),
                         workers=2, progress=False)
    z = np.load("z.npy")
    assert (z[10:30] == 7).all() and not z[:10].any() and not z[30:].any()
    assert got[0][0] == 10 and got[-1][1] == 30


def test_worker_exception_is_a_run_failure_and_nothing_is_published(cwd):
    def bad(block, start, stop):
        if start <= 250 < stop:
            raise ValueError("row 250 is cursed")
        block[:] = 1

    with pytest.raises(mmrun.RunFailedError) as e:
        mmrun.map_rows(bad, "n.npy", shape=(300, 1024), dtype="f4", workers=3, progress=False)
    assert e.value.code == 1
    assert e.value.worker == 2 and e.value.rows == (200, 300)
    assert "ValueError: row 250 is cursed" in e.value.cause
    assert "nothing was published" in e.value.message
    assert not os.path.exists("n.npy")


def test_refusals_raise_before_work(cwd):
    with pytest.raises(mmrun.RefusedError) as e:
        mmrun.map_rows(lambda b, s, e: None, "n.npy", shape=(10, 2), dtype="f4", workers=0)
    assert e.value.code == 2
    assert os.listdir(".") == []
    with pytest.raises(FileNotFoundError):
        mmrun.map_rows(lambda b, s, e: None, "missing.npy")
    mmrun.create("p.npy", shape=(10, 2), dtype="f4")
    with pytest.raises(mmrun.RefusedError, match="out="):
        mmrun.map_rows(lambda b, s, e: None, "p.npy", retries=1)
    with pytest.raises(TypeError):
        mmrun.map_rows("not callable", "p.npy")


def test_retries_run_a_failed_block_again(cwd):
    marker = cwd / "failed-once"

    def flaky(block, start, stop):
        if start == 0 and not marker.exists():
            marker.write_text("x")
            os._exit(9)  # the worker dies
        block[:] = start
        return start

    got = mmrun.map_rows(flaky, "f.npy", shape=(200, 1024), dtype="f4", workers=2, retries=1,
                         progress=False)
    assert marker.exists() and got[0] == 0 and got == sorted(got)
    f = np.load("f.npy")
    assert f[0, 0] == 0 and f[199, 0] != 0


INTERRUPTED = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import mmrun

    def slow(block, start, stop):
        if start >= 200:
            open(f"started-{os.getpid()}", "w").close()
            while True:
                time.sleep(0.05)
        block[:] = 1
        return start

    try:
        mmrun.map_rows(slow, "big.npy", shape=(400, 1024), dtype="f4", workers=2,
                       progress=False)
    except KeyboardInterrupt:
        pids = [int(n.split("-")[1]) for n in os.listdir(".") if n.startswith("started-")]
        assert pids
        for p in pids:  # every worker is gone before the exception arrives
            try:
                os.kill(p, 0)
                sys.exit(f"worker {p} still runs")
            except ProcessLookupError:
                pass
        assert not os.path.exists("big.npy"), "published after an interrupt"
        assert os.path.exists(".big.npy.mmrun-journal"), os.listdir(".")
        print("interrupted cleanly")
        sys.exit(0)
    sys.exit("map_rows returned")
""")


def test_ctrl_c_stops_the_job_and_resume_finishes_it(cwd):
    p = subprocess.Popen([sys.executable, "-c", INTERRUPTED], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    # Wait (without a time limit of its own) until a worker sits in the slow block.
    while not [n for n in os.listdir(cwd) if n.startswith("started-")]:
        if p.poll() is not None:
            break
        try:
            p.wait(0.05)
        except subprocess.TimeoutExpired:
            pass
    p.send_signal(signal.SIGINT)
    out, err = p.communicate()
    assert p.returncode == 0 and "interrupted cleanly" in out, (out, err)
    # resume=True finishes the rows the interrupted run left.
    got = run_py(textwrap.dedent("""
        import mmrun, numpy as np
        got = mmrun.map_rows(lambda b, s, e: b.fill(2) or s, "big.npy", shape=(400, 1024),
                             dtype="f4", workers=2, resume=True, progress=False)
        a = np.load("big.npy")
        assert a.shape == (400, 1024)
        assert (a[:200] == 1).all() and (a[200:] == 2).all(), a[:, 0]
        assert got[0] == 0 and got == sorted(got), got
        print("resumed")
    """), cwd)
    assert "resumed" in got.stdout


def test_help_reads_well():
    doc = mmrun.map_rows.__doc__
    assert "func(block, start, stop" in doc and "KeyboardInterrupt" in doc
    assert "map_rows" in mmrun.__doc__ and "reduce" in dir(mmrun)
    from mmrun import reference, worker
    assert worker.PROTOCOL == 1 and callable(reference.verify)
