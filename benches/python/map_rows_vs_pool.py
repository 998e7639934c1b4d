"""mmrun.map_rows against the user's alternatives on two tasks, 2 workers,
durable output (the output file is fsynced before a run counts as done):

- topk:  per-row top-1000 of an R x 10000 float32 file (np.sort per row)
- rmean: running mean along each row of an R x 3000 float64 file
         (np.cumsum / arange)

Alternatives: multiprocessing.Pool (fork) over np.memmap views, each worker
writing its rows of a pre-created .npy and flushing, the parent fsyncing the
file; joblib.Parallel (its default loky backend) doing the same. Runs are
interleaved (each round runs every method once, in rotated order) and each
round's ratios are reported, with the medians.

    python -m pip install joblib      # in the venv where mmrun is installed
    python benches/python/map_rows_vs_pool.py [--rounds 5] [--topk-rows 4000] [--dir D]

The issue's sizes are --topk-rows 10000 --rmean-rows 2000.
"""

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time

import numpy as np

import mmrun

K = 1000


def topk_rows(src, out):
    out[:] = np.sort(src, axis=1)[:, -K:]


def rmean_rows(src, out):
    np.divide(np.cumsum(src, axis=1), np.arange(1, src.shape[1] + 1), out=out)


TASKS = {"topk": topk_rows, "rmean": rmean_rows}


def out_shape(task, shape):
    return (shape[0], K) if task == "topk" else shape


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_out(path, shape, dtype):
    m = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    del m


def _pool_part(args):
    task, src_path, out_path, a, b = args
    src = np.load(src_path, mmap_mode="r")
    out = np.load(out_path, mmap_mode="r+")
    TASKS[task](src[a:b], out[a:b])
    out.flush()


def ranges(rows, n):
    step = -(-rows // n)
    return [(a, min(a + step, rows)) for a in range(0, rows, step)]


def run_pool(task, src_path, out_path, shape, dtype, workers):
    new_out(out_path, out_shape(task, shape), dtype)
    with mp.get_context("fork").Pool(workers) as p:
        p.map(_pool_part, [(task, src_path, out_path, a, b) for a, b in ranges(shape[0], workers)])
    fsync(out_path)


def run_joblib(task, src_path, out_path, shape, dtype, workers):
    import joblib
    new_out(out_path, out_shape(task, shape), dtype)
    joblib.Parallel(n_jobs=workers)(
        joblib.delayed(_pool_part)((task, src_path, out_path, a, b))
        for a, b in ranges(shape[0], workers))
    fsync(out_path)


def run_mmrun(task, src_path, out_path, shape, dtype, workers):
    f = TASKS[task]
    mmrun.map_rows(lambda block, start, stop, src: f(src, block), src_path, out=out_path,
                   shape=out_shape(task, shape), dtype=dtype, workers=workers,
                   progress=False, force=True)


METHODS = {"map_rows": run_mmrun, "Pool": run_pool, "joblib": run_joblib}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--topk-rows", type=int, default=4000)
    ap.add_argument("--rmean-rows", type=int, default=2000)
    ap.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    args = ap.parse_args()
    try:
        import joblib  # noqa: F401
    except ImportError:
        raise SystemExit("joblib is not installed: python -m pip install joblib")
    d = args.dir or tempfile.mkdtemp(prefix="mmrun-pybench-")
    setups = {"topk": ((args.topk_rows, 10000), np.float32),
              "rmean": ((args.rmean_rows, 3000), np.float64)}
    for task, (shape, dtype) in setups.items():
        src = os.path.join(d, f"{task}-in.npy")
        mmrun.fill(src, shape=shape, dtype=dtype, random="uniform", seed=1, force=True)
        want = None
        times = {m: [] for m in METHODS}
        ratios = {m: [] for m in METHODS if m != "map_rows"}
        names = list(METHODS)
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            got = {}
            for m in order:
                out = os.path.join(d, f"{task}-{m}.npy")
                if os.path.exists(out):
                    os.remove(out)
                t0 = time.perf_counter()
                METHODS[m](task, src, out, shape, dtype, args.workers)
                got[m] = time.perf_counter() - t0
                res = np.load(out, mmap_mode="r")
                if want is None:
                    want = np.asarray(res).copy()
                elif not np.array_equal(res, want):
                    raise SystemExit(f"{task}: {m} computed something else")
            for m in names:
                times[m].append(got[m])
            for m in ratios:
                ratios[m].append(got["map_rows"] / got[m])
            print(f"{task} round {r}: " + ", ".join(f"{m} {got[m]:.3f} s" for m in names)
                  + "; map_rows/" + ", map_rows/".join(f"{m} {ratios[m][-1]:.2f}" for m in ratios),
                  flush=True)
        print(f"{task} {shape} {np.dtype(dtype).name}, {args.workers} workers, median of "
              f"{args.rounds}: " + ", ".join(f"{m} {statistics.median(times[m]):.3f} s"
                                            for m in names)
              + "; median ratio " + ", ".join(f"map_rows/{m} {statistics.median(ratios[m]):.2f}"
                                             for m in ratios), flush=True)


if __name__ == "__main__":
    main()
