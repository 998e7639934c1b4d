#!/usr/bin/env python3
"""Start-up time and coordinator resident set of mmrun.

    benches/e2e/startup.py [--rounds 30] [--dir DIR] [--mmrun PATH]

Start-up: wall time of `mmrun fill --shape 1,4 --value 1 --sync none` of a
new one-row file (the file removed, untimed, before each run), interleaved
with `/bin/true` (the cost of starting any process from here) and `mmrun
--version` (loading the binary, no work). Medians and minimums in ms.

Coordinator peak RSS: `VmHWM` of the mmrun process itself, polled from
/proc every 0.5 ms until it exits (the last value read: it only grows), for
a `fill --value 1 -w 2` of a 4 MiB and a 1 GiB file. `wait4`'s (and
`/usr/bin/time -v`'s) maximum RSS would be the largest of the coordinator
and its workers, so it cannot tell them apart. Results: PERFORMANCE.md.
"""
import argparse
import os
import statistics
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def hwm_kib(argv):
    """Runs argv; returns the last VmHWM (KiB) read from its /proc status."""
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hwm = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM"):
                        hwm = int(line.split()[1])
        except (OSError, ValueError):
            pass
        time.sleep(0.0005)
    if p.returncode != 0:
        raise SystemExit(f"{argv} failed ({p.returncode})")
    return hwm


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "e2e"))
    ap.add_argument("--mmrun", default=os.path.join(ROOT, "target", "release", "mmrun"))
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    f = os.path.join(args.dir, "one.npy")
    b = args.mmrun
    cases = {
        "/bin/true": ["/bin/true"],
        "mmrun --version": [b, "--version"],
        "mmrun fill 1 row --sync none": [b, "fill", f, "--shape", "1,4", "--dtype", "f4",
                                         "--value", "1", "--sync", "none"],
        "mmrun fill 1 row (--sync full)": [b, "fill", f, "--shape", "1,4", "--dtype", "f4",
                                           "--value", "1"],
    }
    samples = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, argv in cases.items():
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
            t = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            samples[k].append(time.perf_counter() - t)
    print(f"{args.rounds} interleaved rounds; load average {open('/proc/loadavg').read().split()[:3]}")
    print("| command | median ms | min ms |\n|---|---|---|")
    for k, v in samples.items():
        print(f"| {k} | {statistics.median(v) * 1e3:.2f} | {min(v) * 1e3:.2f} |")
    print("\n| file | coordinator peak RSS (VmHWM) |\n|---|---|")
    for name, shape in (("4 MiB", "1024,1024"), ("1 GiB", "16384,16384")):
        path = os.path.join(args.dir, "rss.npy")
        hwms = []
        for _ in range(3):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            hwms.append(hwm_kib([b, "fill", path, "--shape", shape, "--dtype", "f4",
                                 "--value", "1", "-w", "2"]))
        os.unlink(path)
        print(f"| {name} | {max(hwms) / 1024:.1f} MiB (3 runs: {', '.join(str(h) for h in hwms)} KiB) |")
    os.unlink(f)


if __name__ == "__main__":
    main()
