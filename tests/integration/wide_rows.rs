//! Rows wider than a block: blocks are bounded in bytes whatever the shape.
//!
//! A worker's block is at most about 1 MiB; a row wider than that is worked
//! on a block of elements at a time (an element-wise kernel runs over the
//! flat view of its rows; a reduction reads the row in parts and combines
//! them as it would combine the pieces of a whole row). These tests check that the values are NumPy's,
//! byte for byte, for every shape and variant of `apply`, and that the
//! issue's own file — (2, 2 000 000 000) — is filled, rewritten in place
//! and reduced inside a 256 MiB memory cgroup with every worker's resident
//! set bounded by its windows.

use std::fs;
use std::process::Output;

use crate::memory::{disk_dir, run_limited, Cgroup, LIMIT};
use crate::util::*;

/// Indices NumPy-side: `i j k n` of the file's shape, as `mmrun apply`
/// defines them (axis-0 index, axis-1 index, flat index in the row, flat
/// index in the file), all int64.
const INDEX_PY: &str = "import numpy as np\n\
def idx(shape):\n\
\x20   n = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)\n\
\x20   rl = int(np.prod(shape[1:]))\n\
\x20   inner = int(np.prod(shape[2:]))\n\
\x20   k = n % rl\n\
\x20   return n // rl, k // inner, k, n\n";

/// `apply` on rows wider than a block, in place and with `--out` (where
/// either file's rows are the wide ones), on 2- and 3-dimensional arrays,
/// with 1 to 3 workers, with EXPR reading every index variable, with and
/// without `--rows`/`--cols`: the bytes equal NumPy's evaluation of the
/// same assignment.
#[test]
fn apply_on_rows_wider_than_a_block_equals_numpy() {
    let Some(py) = require_numpy("wide_rows::apply_on_rows_wider_than_a_block_equals_numpy") else {
        return;
    };
    let d = Dir::new();
    // (shape, dtype, workers, mmrun options, NumPy: `want` from `x` and
    // `i j k n`). Each row of the file read or written is over 1 MiB.
    let cases: &[(&str, &str, &str, &[&str], &str)] = &[
        (
            "3,300007",
            "f4",
            "2",
            &["--expr", "x * 2 + i - j + k % 7 + n % 5"],
            "want = x.copy(); want[...] = x * np.float32(2) + i - j + k % 7 + n % 5",
        ),
        (
            "3,300007",
            "f4",
            "3",
            &["--expr", "x * 2 + 1"],
            "want = x * np.float32(2) + np.float32(1)",
        ),
        (
            "2,3,100003",
            "f8",
            "2",
            &["--expr", "x * 3 - j + k % 11 + n % 13"],
            "want = x * 3.0 - j + k % 11 + n % 13",
        ),
        // Both rows wide; the output's dtype differs from EXPR's.
        (
            "2,1500001",
            "u1",
            "2",
            &["--expr", "x / 3 + n % 7", "--out", "o.npy", "--dtype", "f4"],
            "want = (x / 3 + n % 7).astype(np.float32)",
        ),
        // Only the output's rows are wide (400 KB in, 3.2 MB out).
        (
            "3,400000",
            "u1",
            "2",
            &["--expr", "x.astype('f8') * 2 - i", "--out", "o.npy"],
            "want = x.astype(np.float64) * 2 - i",
        ),
        // A selection: not element-wise (only some elements are written
        // in place), but rows and columns come from the flat index, so
        // wide rows are split all the same.
        (
            "3,300007",
            "f4",
            "2",
            &["--cols", "100:200000", "--expr", "x + j"],
            "want = x.copy(); want[:, 100:200000] = (x + j)[:, 100:200000]",
        ),
        (
            "2,3,100003",
            "f4",
            "3",
            &[
                "--rows",
                "1:2",
                "--cols",
                "1:3",
                "--expr",
                "x * 2 - k",
                "--out",
                "o.npy",
                "--dtype",
                "f8",
            ],
            "want = x.astype(np.float64); want[1:2, 1:3] = (x * np.float32(2) - k)[1:2, 1:3]",
        ),
        (
            "3,300007",
            "f4",
            "2",
            &["--rows", "1:3", "--expr", "0"],
            "want = x.copy(); want[1:3] = 0",
        ),
    ];
    for (case, (shape, dtype, workers, opts, numpy)) in cases.iter().enumerate() {
        let _ = fs::remove_file(d.join("o.npy"));
        python(
            &py,
            d.path(),
            &format!(
                "import numpy as np\n\
                 g = np.random.default_rng(5)\n\
                 t = np.dtype('{dtype}')\n\
                 shape = ({shape},)\n\
                 x = g.random(shape).astype(t) if t.kind == 'f' else g.integers(0, 256, shape, dtype=t)\n\
                 np.save('a.npy', x)\n\
                 np.save('orig.npy', x)\n"
            ),
        );
        let mut apply = vec!["apply", "a.npy", "-w", workers];
        apply.extend(opts.iter());
        d.ok(&apply);
        let result = if opts.contains(&"--out") {
            "o.npy"
        } else {
            "a.npy"
        };
        python(
            &py,
            d.path(),
            &format!(
                "{INDEX_PY}\
                 x = np.load('orig.npy')\n\
                 i, j, k, n = idx(x.shape)\n\
                 {numpy}\n\
                 got = np.load('{result}')\n\
                 assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape)\n\
                 bad = np.flatnonzero(got.view(np.uint8) != want.view(np.uint8))\n\
                 assert bad.size == 0, ({case}, bad[:5], bad.size)\n"
            ),
        );
    }
}

/// The issue's own shape: `fill --shape 2,2000000000`. `u1` makes it a
/// 4 GB file (the issue's f8 would be 32 GB, more than CI's disk and time
/// allow); each row is still 2 GB, 8 times the cgroup's 256 MiB limit.
const WIDE: &str = "2,2000000000";
const COLS: u64 = 2_000_000_000;

/// A bound on a worker's peak resident set on such a file: a block, a few
/// 8 MiB writeback windows and the binary (a fill peaks at a few MiB, an
/// apply at about 3 windows of its mapping). A worker holding a whole row
/// reaches the cgroup's limit instead.
const WIDE_RSS_KIB: i64 = 96 << 10;

fn assert_workers_bounded(what: &str, out: &Output) {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let workers = report["workers"].as_array().expect("workers");
    assert!(!workers.is_empty(), "{what}: no workers");
    for w in workers {
        let rss = w["usage"]["max_rss_kib"].as_i64().expect("max_rss_kib");
        eprintln!("{what}: worker {} peaked at {} MiB", w["worker"], rss >> 10);
        assert!(
            rss < WIDE_RSS_KIB,
            "{what}: worker {} peaked at {} MiB resident (bound {} MiB)",
            w["worker"],
            rss >> 10,
            WIDE_RSS_KIB >> 10
        );
    }
}

/// The cgroups to run in (v1 and v2 where each has a memory controller),
/// a disk directory and NumPy, or `None` after reporting what is missing.
fn limited(test: &str) -> Option<(Vec<Cgroup>, std::path::PathBuf)> {
    let cgs = match Cgroup::each(LIMIT) {
        Ok(c) => c,
        Err(what) => {
            missing_tool(test, &what);
            return None;
        }
    };
    let base = match disk_dir() {
        Ok(b) => b,
        Err(what) => {
            missing_tool(test, &what);
            return None;
        }
    };
    Some((cgs, base))
}

/// Fills the issue's file with ones in `cg`: every fill worker bounded.
fn fill_wide(cg: &Cgroup, d: &Dir) {
    let out = run_limited(
        cg,
        d,
        &[
            "fill", "w.npy", "--shape", WIDE, "--dtype", "u1", "--value", "1", "-w", "2", "--json",
        ],
    );
    assert_workers_bounded("fill", &out);
}

/// The issue's test, its fill and apply: `fill --shape 2,2000000000`, then
/// an in-place `apply` reading `x` and the flat index, inside a 256 MiB
/// memory cgroup (v1 and v2 where present). Every command exits 0 with no
/// OOM kill, every worker stays bounded, and NumPy reads the expected
/// values at the ends of both rows, across a block boundary and in the
/// middle of a row. Before, an apply block was a whole 2 GB row, and its
/// worker's resident set grew with the row until the cgroup's limit.
#[test]
fn the_issues_wide_file_fills_and_applies_under_a_memory_limit() {
    let test = "wide_rows::the_issues_wide_file_fills_and_applies_under_a_memory_limit";
    let Some((cgs, base)) = limited(test) else {
        return;
    };
    let Some(py) = require_numpy(test) else {
        return;
    };
    for cg in &cgs {
        eprintln!("cgroup {}", cg.version());
        let d = Dir::new_in(&base);
        fill_wide(cg, &d);
        let out = run_limited(
            cg,
            &d,
            &[
                "apply",
                "w.npy",
                "--expr",
                "x + n % 251",
                "-w",
                "2",
                "--json",
            ],
        );
        assert_workers_bounded("apply", &out);
        // (row, first column, last column + 1).
        let slices = [
            (0, 0, 4096),
            (0, (1 << 20) - 100, (1 << 20) + 100),
            (0, COLS / 2 - 1000, COLS / 2 + 1000),
            (0, COLS - 4096, COLS),
            (1, 0, 4096),
            (1, COLS - 4096, COLS),
        ];
        python(
            &py,
            d.path(),
            &format!(
                "import numpy as np\n\
                 a = np.load('w.npy', mmap_mode='r')\n\
                 assert a.shape == (2, {COLS}) and a.dtype == np.uint8, (a.shape, a.dtype)\n\
                 for r, c0, c1 in {slices:?}:\n\
                 \x20   n = r * {COLS} + np.arange(c0, c1, dtype=np.int64)\n\
                 \x20   want = (1 + n % 251).astype(np.uint8)\n\
                 \x20   assert np.array_equal(a[r, c0:c1], want), (r, c0, c1)\n"
            ),
        );
    }
}

/// The issue's test, its reductions: `reduce --op sum` along axis 1 and
/// over all of the (2, 2 000 000 000) file of ones, in the same cgroups:
/// each exits 0 with no OOM kill and NumPy's sums, 2e9 per row and 4e9 in
/// all (uint64, NumPy's sum dtype for uint8), with every worker bounded.
/// Before, a reduction's block was a whole 2 GB row read through the
/// mapping, and its workers peaked at 132–147 MiB (the clean pages of the
/// row, reclaimed only under the cgroup's pressure); a row is now read in
/// parts of about a block.
#[test]
fn the_issues_wide_file_reduces_under_a_memory_limit() {
    let test = "wide_rows::the_issues_wide_file_reduces_under_a_memory_limit";
    let Some((cgs, base)) = limited(test) else {
        return;
    };
    for cg in &cgs {
        eprintln!("cgroup {}", cg.version());
        let d = Dir::new_in(&base);
        fill_wide(cg, &d);
        let out = run_limited(
            cg,
            &d,
            &[
                "reduce", "w.npy", "--op", "sum", "--axis", "1", "--out", "s.npy", "-w", "2",
                "--json",
            ],
        );
        assert_workers_bounded("reduce --axis 1", &out);
        let s = fs::read(d.join("s.npy")).unwrap();
        let sums: Vec<u64> = s[s.len() - 16..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(sums, vec![COLS, COLS]);
        let out = run_limited(
            cg,
            &d,
            &[
                "reduce", "w.npy", "--op", "sum", "--axis", "all", "-w", "2", "--json",
            ],
        );
        assert_workers_bounded("reduce --axis all", &out);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["results"]["value"].as_str().map(str::to_owned),
            Some((2 * COLS).to_string()),
            "{report}"
        );
    }
}

/// Reductions of rows wider than a block, which workers read in parts of
/// about a block: every op on every axis form that reduces runs of a row
/// (`1`, `all`, `rows`, `-1`, `1,2`, `0,2` of a 3-D file), on f4 rows of
/// 1.2 MB and f8 rows of 3.6 MB, gives NumPy's dtypes, shapes and values
/// (floats accumulate in float64, as the README says) and the same bytes
/// for any worker count, schedule and spawn mode.
#[test]
fn reductions_of_rows_wider_than_a_block_agree_with_numpy_for_any_split() {
    let Some(py) = require_numpy("wide_rows") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         rng = np.random.default_rng(18)\n\
         f = rng.standard_normal((3, 300001)).astype(np.float32)\n\
         f[rng.random(f.shape) < 0.01] = np.nan\n\
         f[1] = np.abs(f[1])\n\
         f[1, 250000] = 1e6\n\
         f[1, 290000] = 1e6\n\
         np.save('f.npy', f)\n\
         g = rng.standard_normal((2, 3, 150001))\n\
         g[0, 2, 140000] = -1e9\n\
         np.save('g.npy', g)\n\
         np.save('i.npy', rng.integers(-9, 9, (2, 400001), dtype=np.int32))\n",
    );
    let configs: &[&[&str]] = &[
        &["-w", "1"],
        &["-w", "2", "--spawn", "exec"],
        &["-w", "3", "--schedule", "dynamic", "--chunk-rows", "1"],
    ];
    let mut cases = Vec::new();
    for (f, axes) in [
        ("f.npy", &["1", "all", "rows"][..]),
        ("g.npy", &["2", "-1", "1,2", "0,2", "all"][..]),
        ("i.npy", &["1", "all"][..]),
    ] {
        for axis in axes {
            for op in [
                "sum", "mean", "var", "std", "min", "max", "prod", "any", "all", "argmin",
                "argmax", "nansum", "nanmean", "nanvar", "nanmin", "nanmax",
            ] {
                let tuple = axis.contains(',') || (*axis == "rows" && f == "g.npy");
                if op.starts_with("arg") && tuple {
                    continue;
                }
                let out = format!("{}_{op}_{}.npy", &f[..1], axis.replace(['-', ','], "m"));
                let args = [
                    "reduce", f, "--op", op, "--axis", axis, "--out", &out, "--force",
                ];
                same_bytes_for_each(&d, &args, &out, configs);
                cases.push(format!("('{f}', '{op}', '{axis}', '{out}')"));
            }
        }
    }
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             warnings.simplefilter('ignore')\n\
             for f, op, axis, out in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, x.ndim)) if axis == 'rows' else eval('(' + axis + ',)'))\n\
             \x20   if op.startswith('arg') and ax is not None: ax = ax[0]\n\
             \x20   want = np.asarray(getattr(np, op)(x, axis=ax))\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis, got.dtype, got.shape, want.dtype, want.shape)\n\
             \x20   if want.dtype.kind == 'f':\n\
             \x20       want = np.asarray(getattr(np, op)(x.astype(np.float64), axis=ax))\n\
             \x20       ok = np.isclose(got, want, rtol=2e-7 if x.dtype == np.float32 else 1e-12, atol=0, equal_nan=True)\n\
             \x20       assert ok.all(), (f, op, axis, got[~ok] if got.ndim else got, want[~ok] if got.ndim else want)\n\
             \x20   else:\n\
             \x20       assert np.array_equal(got, want), (f, op, axis, got, want)\n",
            cases.join(", ")
        ),
    );
}
