#!/usr/bin/env python3
"""End-to-end benchmark of issue 7: mmrun against a plain writer and NumPy.

Every contender writes the same 400 MB float32 array (10000 x 10000) into a
new file on the same disk with 2 worker processes and ends with the data
durable (fsync). Contenders run interleaved: each round runs every one of
them once, in an order rotated from round to round, so a change in the
machine's state hits all of them alike. Timings are whole-process wall
time; figures are ratios against the plain writer of the same session.

    benches/e2e/run.py [--suite fill|apply|exec|reduce|mapped|cold] [--rounds 7] [--dir DIR]
                       [--scaling] [--alt NAME=COMMAND ...] [--json OUT] [--markdown OUT]

Contenders:
  plain        benches/e2e/plain_writer.c (built here with `cc -O2`):
               fallocate + N forked first-touch writers of 1.0f + one fsync
  value        mmrun fill --value 1 -w N
  uniform      mmrun fill --random uniform -w N
  numpy-good   benches/e2e/numpy_good.py: rng.random(dtype=float32, out=slice)
  numpy-ref    benches/e2e/numpy_reference.py: fp[a:b] = np.random.rand(...)
  c-pwrite     benches/e2e/mapped_ref.c pwrite: N forked workers pwrite 1 MiB
               blocks of 1.0f and stream writeback (sync_file_range), one
               fsync: the best hand-written fill on mmrun fill's own path
  fio-write    fio --rw=write --direct=1 --bs=1M --numjobs=N --end_fsync=1:
               the device's intake (each job's bytes rounded down to whole
               MiB; in the default cases when fio is installed)
--scaling adds the same at 1 worker (plain-w1, value-w1, uniform-w1).
--alt NAME=COMMAND adds `value`/`uniform` runs of another mmrun binary (A/B
of a change); COMMAND is split like a shell line, so `env K=V path/mmrun`
works.

--suite apply (baseline: closure): a warm 400 MB float32 file made once
(untimed) by mmrun fill, then in place, with `sync` before every run:
  closure         target/release/examples/closure_apply FILE -w N
                  (examples/closure_apply.rs: x * 2 + 1 as a Rust closure
                  through the library's Runner; `cargo build --release
                  --example closure_apply`)
  expr            mmrun apply FILE --expr 'x * 2 + 1' -w N
  closure-nosync, expr-nosync   the same with --sync none (compute, not
                  the disk)
  and prints the expression's throughput as a fraction of the closure's.

--suite exec (baseline: fill-uniform), new files as in the fill suite:
  fill-uniform    mmrun fill --random uniform --seed 7 -w N
  exec-python     mmrun exec FILE --shape .. --dtype f4 --seed 7 -w N --
                  python workers/examples/random_fill.py
                  (mmrun_worker.fill_uniform(), one interpreter per worker)
  numpy-good      as above
  python-startup  python -c 'import numpy' (what each exec worker pays
                  before it starts, timed in the same rounds)
--suite reduce (baseline: numpy-chunked): a warm 400 MB raw float32 file
made once (untimed) by mmrun fill, read by every contender:
  numpy-chunked   benches/e2e/numpy_chunked_mean.py: the reference text's
                  loop (np.memmap, np.mean(chunk, axis=1) per 1000 rows,
                  print dropped), one process
  reduce          mmrun reduce FILE --raw --dtype f4 --shape R,C --op mean
                  --axis 1 --out OUT -w N (OUT new, fsynced, published)
  reduce-all      the same with --axis all (the dyadic tree; no OUT)
--suite mapped (baseline c-mean1): the kernels that run on the mapping, on
a warm 400 MB raw float32 file (made once, untimed; `sync` before every
run), each against benches/e2e/mapped_ref.c doing the same work on the same
path (built here with cc -O3 -march=native) and against NumPy's chunked
loop timed inside the interpreter (benches/e2e/numpy_warm.py: wall and CPU
seconds of the loop alone, NumPy already imported):
  reduce1 / c-mean1 / np-mean1         reduce --op mean --axis 1 --out OUT
  reduceall / c-meanall / np-meanall   reduce --op mean --axis all
  apply / c-rmw / np-rmw               apply --expr 'x * 2 + 1' in place,
                                       --sync full (NumPy: flush())
  apply-nosync / c-rmw-nosync / np-rmw-nosync   the same, nothing synced
  The C readers fault their pages in, the C read-modify-write populates
  them (MADV_POPULATE_WRITE), whichever measured faster; --variants adds
  the other ones. --alt NAME=COMMAND adds the mmrun cases of another binary.
--suite cold (baseline fio-read): the same file with its pages dropped
(POSIX_FADV_DONTNEED) before every run:
  fio-read     fio --rw=read --bs=1M --numjobs=N, buffered
  reduce1, reduceall, c-meanall   as above, from a cold page cache
--alt-helper NAME=DIR adds exec-python with the mmrun_worker.py in DIR
(A/B of a change to the helper).

Needs: Linux, cc, fio for the cold suite, a release build of mmrun (`cargo build --release`), and
for the NumPy contenders a Python with NumPy (--python; default: the one
running this script, e.g. .venv/bin/python). Results and how to read them:
PERFORMANCE.md.
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def build_plain_writer(out_dir):
    exe = os.path.join(out_dir, "plain_writer")
    src = os.path.join(HERE, "plain_writer.c")
    subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    return exe


def machine(dir_):
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = line.split()
                    flags = " ".join(x for x in ("avx2", "avx512f") if x in fl)
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "simd": flags,
        "kernel": platform.release(),
        "fs": sh(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", dir_]),
        "mem_total": sh(["sh", "-c", "grep MemTotal /proc/meminfo"]),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def timed(argv, env=None, inproc=False):
    """Runs argv; returns (wall seconds, max RSS KiB of the process tree,
    user + system CPU seconds of the tree). With inproc the seconds are
    the two numbers the process prints last (its own wall and CPU timing
    of the work, as a warm interpreter would see it) instead of the
    process's."""
    err = tempfile.TemporaryFile()
    outf = tempfile.TemporaryFile() if inproc else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=outf,
                         stderr=err, env=env)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        err.seek(0)
        sys.exit(f"{argv[0]} failed ({p.returncode}):\n{err.read().decode(errors='replace')}")
    cpu = ru.ru_utime + ru.ru_stime
    if inproc:
        outf.seek(0)
        wall, cpu = (float(x) for x in outf.read().decode().split()[-2:])
    return wall, ru.ru_maxrss, cpu


def build_mapped_ref(out_dir):
    exe = os.path.join(out_dir, "mapped_ref")
    src = os.path.join(HERE, "mapped_ref.c")
    subprocess.run(["cc", "-O3", "-march=native", "-o", exe, src], check=True)
    return exe


def drop_cache(path):
    """Writes back and drops the cached pages of path (a cold start for
    the next reader)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["fill", "apply", "exec", "reduce", "mapped", "cold"], default="fill")
    ap.add_argument("--closure-apply",
                    default=os.path.join(ROOT, "target", "release", "examples", "closure_apply"))
    ap.add_argument("--alt-helper", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "e2e"),
                    help="where the files are written (default target/e2e: the project's disk)")
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--cols", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mmrun", default=os.path.join(ROOT, "target", "release", "mmrun"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--cases", default=None,
                    help="fill suite only (default plain,value,uniform,c-pwrite,numpy-good,"
                         "numpy-ref, and fio-write when fio is installed)")
    ap.add_argument("--scaling", action="store_true", help="also run 1-worker cases")
    ap.add_argument("--alt", action="append", default=[], metavar="NAME=COMMAND")
    ap.add_argument("--variants", action="store_true",
                    help="mapped suite: also each C reference's other variant (populate for "
                         "the readers, page faults for the read-modify-write)")
    ap.add_argument("--fio", default="fio", help="fio binary (cold suite; fill cases fio-write)")
    ap.add_argument("--json", help="write raw samples and statistics here")
    ap.add_argument("--markdown", help="write the table here")
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    exe = build_plain_writer(args.dir)
    shape = f"{args.rows},{args.cols}"
    nbytes = args.rows * args.cols * 4
    w = args.workers
    out = lambda name: os.path.join(args.dir, name)

    def mmrun(binary, what, workers):
        kind = ["--value", "1"] if what == "value" else ["--random", "uniform", "--seed", "7"]
        return [*shlex.split(binary), "fill", out("m.npy"), "--shape", shape, "--dtype", "f4", *kind,
                "-w", str(workers)]

    cases = {}
    baseline = "plain"
    # Pairs (a, b) whose per-round ratio b/a is printed as "a's throughput
    # as a fraction of b's".
    pairs = []
    warm = None
    cold = False
    # Cases whose time is the one the process prints (timed inside a warm
    # interpreter), not its wall time.
    inproc = set()
    ref = build_mapped_ref(args.dir)
    geo = lambda path: [path, str(args.rows), str(args.cols), "0", str(w)]
    npw = [args.python, os.path.join(HERE, "numpy_warm.py")]
    per_job = nbytes // w // (1 << 20) * (1 << 20)
    fio = lambda name, path, rw, direct: [
        args.fio, f"--name={name}", f"--filename={path}", f"--rw={rw}", "--bs=1M",
        f"--direct={direct}", f"--numjobs={w}", f"--size={per_job}",
        f"--offset_increment={per_job}", "--ioengine=psync", "--group_reporting",
        "--output=/dev/null"]
    default_fill = "plain,value,uniform,c-pwrite,numpy-good,numpy-ref"
    if shutil.which(args.fio):
        default_fill += ",fio-write"
    wanted = (args.cases or default_fill).split(",")
    if args.suite != "fill":
        wanted = []
    if args.suite == "apply":
        baseline = "closure"
        warm = out("a.npy")
        if not os.access(args.closure_apply, os.X_OK):
            sys.exit(f"{args.closure_apply} is missing: cargo build --release --example closure_apply")
        for sync, suffix in (("full", ""), ("none", "-nosync")):
            cases["closure" + suffix] = [args.closure_apply, warm, "-w", str(w), "--sync", sync]
            cases["expr" + suffix] = [*shlex.split(args.mmrun), "apply", warm, "--expr", "x * 2 + 1",
                                      "-w", str(w), "--sync", sync]
            pairs.append(("expr" + suffix, "closure" + suffix))
    elif args.suite == "exec":
        baseline = "fill-uniform"
        cases["fill-uniform"] = mmrun(args.mmrun, "uniform", w)
        exec_head = [*shlex.split(args.mmrun), "exec", out("e.npy"), "--shape", shape, "--dtype", "f4",
                     "--seed", "7", "-w", str(w), "--", args.python]
        cases["exec-python"] = exec_head + [os.path.join(ROOT, "workers", "examples", "random_fill.py")]
        cases["numpy-good"] = [args.python, os.path.join(HERE, "numpy_good.py"), out("g.npy"),
                               str(args.rows), str(args.cols), str(w)]
        cases["python-startup"] = [args.python, "-c", "import numpy"]
        for alt in args.alt_helper:
            name, d = alt.split("=", 1)
            code = (f"import sys; sys.path.insert(0, {os.path.abspath(d)!r}); "
                    "import mmrun_worker; mmrun_worker.fill_uniform()")
            cases[f"exec-python:{name}"] = exec_head + ["-c", code]
            pairs.append((f"exec-python:{name}", "exec-python"))
        pairs.append(("exec-python", "numpy-good"))
        pairs.append(("exec-python", "fill-uniform"))
    elif args.suite == "reduce":
        baseline = "numpy-chunked"
        warm = out("h.dat")
        raw = ["--raw", "--dtype", "f4", "--shape", shape]
        cases["numpy-chunked"] = [args.python, os.path.join(HERE, "numpy_chunked_mean.py"), warm,
                                  str(args.rows), str(args.cols)]
        cases["reduce"] = [*shlex.split(args.mmrun), "reduce", warm, *raw, "--op", "mean",
                           "--axis", "1", "--out", out("rm.npy"), "-w", str(w)]
        cases["reduce-all"] = [*shlex.split(args.mmrun), "reduce", warm, *raw, "--op", "mean",
                               "--axis", "all", "-w", str(w)]
        pairs.append(("reduce", "numpy-chunked"))
        pairs.append(("reduce-all", "numpy-chunked"))
    elif args.suite == "mapped":
        baseline = "c-mean1"
        warm = out("h.dat")
        raw = ["--raw", "--dtype", "f4", "--shape", shape]

        def mapped_cases(prefix, binary):
            head = shlex.split(binary)
            cases[prefix + "reduce1"] = [*head, "reduce", warm, *raw, "--op", "mean", "--axis", "1",
                                         "--out", out("rm.npy"), "-w", str(w)]
            cases[prefix + "reduceall"] = [*head, "reduce", warm, *raw, "--op", "mean", "--axis",
                                           "all", "-w", str(w)]
            for sync, suffix in (("full", ""), ("none", "-nosync")):
                cases[prefix + "apply" + suffix] = [*head, "apply", warm, *raw, "--expr",
                                                    "x * 2 + 1", "-w", str(w), "--sync", sync]

        mapped_cases("", args.mmrun)
        if args.scaling:
            for n in ("reduce1", "reduceall", "apply", "apply-nosync"):
                argv = list(cases[n])
                argv[argv.index("-w") + 1] = "1"
                cases[n + "-w1"] = argv
        # The C readers fault (faster than MADV_POPULATE_READ here); the
        # read-modify-write populates (much faster than write faults).
        cases["c-mean1"] = [ref, "mean1", *geo(warm), "fault", out("c1.f4")]
        cases["np-mean1"] = [*npw, "mean1", warm, str(args.rows), str(args.cols), out("n1.npy")]
        cases["c-meanall"] = [ref, "meanall", *geo(warm), "fault"]
        cases["np-meanall"] = [*npw, "meanall", warm, str(args.rows), str(args.cols)]
        for suffix, sync in (("", "sync"), ("-nosync", "nosync")):
            cases["c-rmw" + suffix] = [ref, "rmw", *geo(warm), "populate", sync]
            cases["np-rmw" + suffix] = [*npw, "rmw" + suffix, warm, str(args.rows), str(args.cols)]
        if args.variants:
            cases["c-mean1-populate"] = [ref, "mean1", *geo(warm), "populate", out("c1.f4")]
            cases["c-meanall-populate"] = [ref, "meanall", *geo(warm), "populate"]
            cases["c-rmw-nosync-fault"] = [ref, "rmw", *geo(warm), "fault", "nosync"]
        inproc.update(n for n in cases if n.startswith("np-"))
        for a, c, n in (("reduce1", "c-mean1", "np-mean1"), ("reduceall", "c-meanall", "np-meanall"),
                        ("apply", "c-rmw", "np-rmw"),
                        ("apply-nosync", "c-rmw-nosync", "np-rmw-nosync")):
            pairs.append((a, c))
            pairs.append((a, n))
        for alt in args.alt:
            name, path = alt.split("=", 1)
            mapped_cases(name + ":", path)
            for a in ("reduce1", "reduceall", "apply", "apply-nosync"):
                pairs.append((f"{name}:{a}", a))
        args.alt = []
    elif args.suite == "cold":
        baseline = "fio-read"
        warm = out("h.dat")
        cold = True
        raw = ["--raw", "--dtype", "f4", "--shape", shape]
        cases["fio-read"] = fio("read", warm, "read", 0)
        cases["reduce1"] = [*shlex.split(args.mmrun), "reduce", warm, *raw, "--op", "mean",
                            "--axis", "1", "--out", out("rm.npy"), "-w", str(w)]
        cases["reduceall"] = [*shlex.split(args.mmrun), "reduce", warm, *raw, "--op", "mean",
                              "--axis", "all", "-w", str(w)]
        cases["c-meanall"] = [ref, "meanall", *geo(warm), "fault"]
        for alt in args.alt:
            name, path = alt.split("=", 1)
            cases[f"{name}:reduceall"] = [*shlex.split(path), "reduce", warm, *raw, "--op", "mean",
                                          "--axis", "all", "-w", str(w)]
            pairs.append((f"{name}:reduceall", "fio-read"))
        args.alt = []
        for a in ("reduce1", "reduceall", "c-meanall"):
            pairs.append((a, "fio-read"))
    if args.suite == "fill" and "plain" not in wanted:
        wanted.insert(0, "plain")
    for c in wanted:
        if c == "plain":
            cases["plain"] = [exe, out("p.raw"), str(nbytes), str(w)]
        elif c in ("value", "uniform"):
            cases[c] = mmrun(args.mmrun, c, w)
        elif c == "numpy-good":
            cases[c] = [args.python, os.path.join(HERE, "numpy_good.py"), out("g.npy"),
                        str(args.rows), str(args.cols), str(w)]
        elif c == "c-pwrite":
            cases[c] = [ref, "pwrite", *geo(out("c.raw"))]
            pairs.append(("value", c))
            pairs.append(("uniform", c))
        elif c == "fio-write":
            cases[c] = fio("write", out("f.raw"), "write", 1)
            pairs.append(("value", c))
            pairs.append(("uniform", c))
        elif c == "numpy-ref":
            cases[c] = [args.python, os.path.join(HERE, "numpy_reference.py"), out("r.dat"),
                        str(args.rows), str(args.cols), str(w)]
        else:
            sys.exit(f"unknown case {c}")
    for alt in args.alt:
        name, path = alt.split("=", 1)
        cases[f"{name}:value"] = mmrun(path, "value", w)
        cases[f"{name}:uniform"] = mmrun(path, "uniform", w)
    if args.scaling and args.suite == "fill":
        cases["plain-w1"] = [exe, out("p.raw"), str(nbytes), "1"]
        cases["value-w1"] = mmrun(args.mmrun, "value", 1)
        cases["uniform-w1"] = mmrun(args.mmrun, "uniform", 1)

    files = [out(n) for n in ("p.raw", "m.npy", "g.npy", "r.dat", "e.npy", "c.raw", "f.raw")]

    def clean():
        try:
            os.unlink(out("rm.npy"))
        except FileNotFoundError:
            pass
        if warm is not None:
            # The apply suite works in place on one file kept in the page
            # cache: only make every run start with nothing dirty. The cold
            # suite drops its pages too.
            os.sync()
            if cold:
                drop_cache(warm)
            return
        for f in files:
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        os.sync()

    if warm is not None:
        raw = ["--raw"] if warm.endswith(".dat") else []
        subprocess.run([*shlex.split(args.mmrun), "fill", warm, *raw, "--shape", shape, "--dtype", "f4",
                        "--random", "uniform", "--seed", "7", "--force", "-w", str(w)],
                       check=True, stderr=subprocess.DEVNULL)
    load_before = open("/proc/loadavg").read().split()[:3]
    names = list(cases)
    samples = {n: [] for n in names}
    loads = []
    rss = {n: [] for n in names}
    cpu = {n: [] for n in names}
    env = dict(os.environ)
    env.pop("MMRUN_DEFAULT_WORKERS", None)
    # One untimed warm-up of each, so page cache, binaries and Python
    # modules start in the same state for the first round.
    for n in names:
        clean()
        timed(cases[n], env, n in inproc)
    for r in range(args.rounds):
        loads.append(open("/proc/loadavg").read().split()[0])
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            clean()
            t, m, c = timed(cases[n], env, n in inproc)
            samples[n].append(t)
            rss[n].append(m)
            cpu[n].append(c)
        print(f"round {r + 1}/{args.rounds} (load {loads[-1]}): " +
              " ".join(f"{n}={samples[n][-1]:.3f}" for n in names), file=sys.stderr)
    clean()

    pairs = [(a, b) for a, b in pairs if a in samples and b in samples]
    base = samples[baseline]
    stats = {}
    for n in names:
        s = samples[n]
        paired = [a / b for a, b in zip(s, base)]
        stats[n] = {
            "median_s": statistics.median(s),
            "min_s": min(s),
            "max_s": max(s),
            "ratio_of_medians": statistics.median(s) / statistics.median(base),
            "median_paired_ratio": statistics.median(paired),
            "faster_rounds": sum(1 for p in paired if p < 1.0),
            "median_paired_ratio_vs": {b: statistics.median(x / y for x, y in zip(s, samples[b]))
                                       for a, b in pairs if a == n},
            "max_rss_kib": max(rss[n]),
            "median_cpu_s": statistics.median(cpu[n]),
        }
    info = machine(args.dir)
    lines = [
        f"{args.rounds} interleaved rounds, {nbytes / 1e6:.0f} MB float32 ({shape}), "
        f"-w {w}, files in {args.dir}, suite {args.suite} (baseline {baseline})",
        f"machine: {info['nproc']} CPUs ({info['cpu']}; {info['simd']}), kernel {info['kernel']}, "
        f"fs {info['fs']}",
        f"load average before/after: {' '.join(load_before)} / {' '.join(info['loadavg'])}; "
        f"1-minute load at each round: {' '.join(loads)}",
        *([f"timed inside the process (warm interpreter): {', '.join(sorted(inproc))}; "
           "the rest: whole-process wall time"] if inproc else []),
        "",
        f"| contender | median s | min s | max s | ratio to {baseline} (medians) "
        f"| median of per-round ratios | rounds faster than {baseline} | max RSS MiB | median CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n in names:
        st = stats[n]
        lines.append(
            f"| {n} | {st['median_s']:.3f} | {st['min_s']:.3f} | {st['max_s']:.3f} | "
            f"{st['ratio_of_medians']:.2f}x | {st['median_paired_ratio']:.2f}x | "
            f"{st['faster_rounds']}/{args.rounds} | {st['max_rss_kib'] / 1024:.0f} | "
            f"{st['median_cpu_s']:.3f} |")
    if pairs:
        lines.append("")
        for a, b in pairs:
            r = stats[a]["median_paired_ratio_vs"][b]
            lines.append(f"{a} against {b}: time {r:.2f}x (median of per-round ratios), "
                         f"throughput {1 / r:.2f}x; medians {stats[a]['median_s']:.3f} s / "
                         f"{stats[b]['median_s']:.3f} s; CPU {stats[a]['median_cpu_s']:.3f} s / "
                         f"{stats[b]['median_cpu_s']:.3f} s")
    if args.scaling:
        lines.append("")
        for n in names:
            if f"{n}-w1" in stats:
                sc = stats[f"{n}-w1"]["median_s"] / stats[n]["median_s"]
                lines.append(f"scaling 1 -> {w} workers, {n}: {sc:.2f}x")
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "commands": cases, "samples": samples, "loads": loads,
                       "inproc": sorted(inproc),
                       "max_rss_kib": rss, "cpu_s": cpu, "stats": stats}, f, indent=1)


if __name__ == "__main__":
    main()
