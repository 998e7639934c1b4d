//! The mapped path over many windows: `apply` in place and into `--out`,
//! and `reduce` across and along rows, on files whose workers each cover
//! several populate/release windows (8 MiB), checked against NumPy; and,
//! under `strace`, that a worker populates what it stores to a window at a
//! time and issues no `madvise` per block.

use std::process::Command;

use crate::util::*;

/// 3000 × 4000 float32: 48 MB, so each of 2 workers covers 3 windows.
const SHAPE: &str = "3000,4000";
const BYTES: u64 = 3000 * 4000 * 4;
const WINDOW: u64 = 8 << 20;

/// A seeded raw float32 file `x.dat` of [`SHAPE`] and a copy `orig.dat`.
fn seeded(d: &Dir) {
    d.ok(&[
        "fill", "x.dat", "--raw", "--dtype", "f4", "--shape", SHAPE, "--random", "uniform",
        "--seed", "11",
    ]);
    std::fs::copy(d.join("x.dat"), d.join("orig.dat")).unwrap();
}

const RAW: [&str; 5] = ["--raw", "--dtype", "f4", "--shape", SHAPE];

fn args<'a>(head: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
    let mut v = head.to_vec();
    v.extend_from_slice(&RAW);
    v.extend_from_slice(tail);
    v
}

#[test]
fn apply_over_many_windows_matches_numpy() {
    let Some(py) = require_numpy("mapped_path") else {
        return;
    };
    let d = Dir::new();
    seeded(&d);
    for sync in ["full", "none"] {
        std::fs::copy(d.join("orig.dat"), d.join("x.dat")).unwrap();
        d.ok(&args(
            &["apply", "x.dat"],
            &["--expr", "x * 2 + 1", "-w", "2", "--sync", sync],
        ));
        python(
            &py,
            d.path(),
            "import numpy as np\n\
             x = np.fromfile('orig.dat', dtype=np.float32)\n\
             got = np.fromfile('x.dat', dtype=np.float32)\n\
             assert np.array_equal(got, x * np.float32(2) + np.float32(1))\n",
        );
    }
    // Into a new file: the input is read through a read-only mapping, the
    // output stored through a populated one.
    d.ok(&args(
        &["apply", "orig.dat"],
        &["--expr", "x * 3 - 1", "--out", "y.npy", "-w", "2"],
    ));
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         x = np.fromfile('orig.dat', dtype=np.float32).reshape(3000, 4000)\n\
         got = np.load('y.npy')\n\
         assert np.array_equal(got, x * np.float32(3) - np.float32(1))\n",
    );
}

#[test]
fn reduce_over_many_windows_matches_numpy() {
    let Some(py) = require_numpy("mapped_path") else {
        return;
    };
    let d = Dir::new();
    seeded(&d);
    d.ok(&args(
        &["reduce", "x.dat"],
        &["--op", "mean", "--axis", "1", "--out", "m1.npy", "-w", "2"],
    ));
    let all = d.ok(&args(
        &["reduce", "x.dat"],
        &["--op", "sum", "--axis", "all", "-w", "2"],
    ));
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             x = np.fromfile('x.dat', dtype=np.float32).reshape(3000, 4000)\n\
             got = np.load('m1.npy')\n\
             assert np.array_equal(got, x.astype(np.float64).mean(axis=1).astype(np.float32))\n\
             total = float({:?})\n\
             want = x.astype(np.float64).sum()\n\
             assert abs(total - want) <= 1e-6 * abs(want), (total, want)\n",
            stdout(&all).trim()
        ),
    );
}

/// `madvise` calls of a traced run, one line each (strace's "resumed"
/// halves of interrupted calls left out).
fn traced_madvise(d: &Dir, test: &str, argv: &[&str]) -> Option<Vec<String>> {
    if Command::new("strace").arg("-V").output().is_err() {
        missing_tool(test, "strace");
        return None;
    }
    let log = d.join("strace.log");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=madvise", "-o"])
        .arg(&log)
        .arg(mmrun_bin())
        .args(argv)
        .current_dir(d.path())
        .output()
        .expect("run strace");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    Some(
        text.lines()
            .filter(|l| l.contains("madvise("))
            .map(str::to_owned)
            .collect(),
    )
}

/// Before: every page of an in-place `apply` was a write fault in the
/// block loop (no populate at all). Now one `MADV_POPULATE_WRITE` per
/// window of each worker's rows.
#[test]
fn apply_in_place_populates_a_window_at_a_time() {
    let d = Dir::new();
    seeded(&d);
    let Some(calls) = traced_madvise(
        &d,
        "apply_in_place_populates_a_window_at_a_time",
        &args(
            &["apply", "x.dat"],
            &["--expr", "x * 2 + 1", "-w", "2", "--sync", "none"],
        ),
    ) else {
        return;
    };
    let populate = calls
        .iter()
        .filter(|l| l.contains("MADV_POPULATE_WRITE"))
        .count() as u64;
    let per_worker = (BYTES / 2).div_ceil(WINDOW);
    assert!(
        (2..=2 * per_worker).contains(&populate),
        "{populate} MADV_POPULATE_WRITE calls, want at most {per_worker} per worker and at least one:\n{}",
        calls.join("\n")
    );
}

/// Before: a scan released its rows with one `MADV_DONTNEED` per 1 MiB
/// block (23 per worker here); now one per window.
#[test]
fn reduce_issues_no_madvise_per_block() {
    let d = Dir::new();
    seeded(&d);
    let Some(calls) = traced_madvise(
        &d,
        "reduce_issues_no_madvise_per_block",
        &args(
            &["reduce", "x.dat"],
            &["--op", "mean", "--axis", "all", "-w", "2"],
        ),
    ) else {
        return;
    };
    let per_worker = (BYTES / 2).div_ceil(WINDOW);
    // Per worker: a release and a read-ahead hint per window at most.
    assert!(
        calls.len() as u64 <= 2 * 2 * per_worker,
        "{} madvise calls for {per_worker} windows per worker:\n{}",
        calls.len(),
        calls.join("\n")
    );
}
