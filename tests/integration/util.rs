//! Test harness: a scratch directory, the real `mmrun` binary, a Python with
//! NumPy, and snapshots to prove a refused command changed nothing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `mmrun` binary under test.
pub fn mmrun_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mmrun"))
}

/// A scratch directory removed at drop.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// A scratch directory inside `base` (e.g. on a chosen file system).
    pub fn new_in(base: &Path) -> Self {
        Dir {
            tmp: tempfile::tempdir_in(base).expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A `Command` for mmrun running in this directory, with a clean
    /// environment as far as mmrun's own variables go.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(mmrun_bin());
        c.args(args).current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("MMRUN_") || k.starts_with("__MMRUN_") || k.starts_with("SLURM_") {
                c.env_remove(k);
            }
        }
        c
    }

    /// Runs mmrun with `args` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run mmrun")
    }

    /// Runs mmrun and asserts it succeeded.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mmrun {args:?} failed: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Every file in the directory (hidden ones included) with its bytes.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut m = BTreeMap::new();
        for e in fs::read_dir(self.path()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = if e.path().is_file() {
                fs::read(e.path()).unwrap_or_default()
            } else {
                Vec::new()
            };
            m.insert(name, bytes);
        }
        m
    }

    /// File names in the directory, sorted.
    pub fn names(&self) -> Vec<String> {
        self.snapshot().into_keys().collect()
    }
}

/// Exit code of a finished process (panics on a signal death).
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {:?}", out.status))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts `out` failed with `want` and a one-line error containing `needle`.
pub fn assert_refused(out: &Output, want: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(code(out), want, "stderr: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("mmrun: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "want exactly one error line, got: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "error should mention {needle:?}: {err}"
    );
}

/// Whether tests run under CI, where a missing tool is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A tool a test needs is missing: fail under CI, print a SKIP line locally.
/// Returns normally (so the caller can `return`) only outside CI.
///
/// The SKIP line goes straight to the process's stderr (`eprintln!` would be
/// captured by libtest and hidden for a passing test), and the test's name
/// is appended to [`skipped_list`], which `scripts/test.sh` prints at the
/// end of the run.
pub fn missing_tool(test: &str, what: &str) {
    use std::io::Write;
    if in_ci() {
        panic!("{test}: {what} is required under CI=true but missing");
    }
    let line = format!("SKIP {test}: {what} is missing (install it, or run scripts/test.sh)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skipped_list())
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The file listing this build's skipped tests, one `SKIP` line each.
pub fn skipped_list() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt")
}

/// A Python interpreter with NumPy: `MMRUN_TEST_PYTHON`, the project's
/// `.venv`, or `python3` — the first that imports numpy.
pub fn numpy_python() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("MMRUN_TEST_PYTHON") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    candidates.push(PathBuf::from("python3"));
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// NumPy's Python, or `None` after reporting it missing (see [`missing_tool`]).
pub fn require_numpy(test: &str) -> Option<PathBuf> {
    let p = numpy_python();
    if p.is_none() {
        missing_tool(test, "Python with NumPy");
    }
    p
}

/// Runs a Python snippet with NumPy in `dir`; panics with its stderr on failure.
/// The `mmrun` Python package (`python/`) is on `PYTHONPATH`. Returns stdout.
pub fn python(py: &Path, dir: &Path, code: &str) -> String {
    let out = Command::new(py)
        .args(["-c", code])
        .current_dir(dir)
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("python"),
        )
        .env("MMRUN_BIN", mmrun_bin())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{code}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether tests run as root (CI does): permission tests then drop to nobody.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `(state, ppid, pgrp)` of a process, from `/proc/PID/stat`.
pub fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything.
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// Every process id in `/proc`.
pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Runs `mmrun ARGS CFG` for each of `configs` (each writing `out`) and
/// asserts every configuration wrote the same bytes: results must not
/// depend on the worker count, spawn mode or schedule.
pub fn same_bytes_for_each(d: &Dir, args: &[&str], out: &str, configs: &[&[&str]]) {
    let mut first: Option<Vec<u8>> = None;
    for cfg in configs {
        let mut all = args.to_vec();
        all.extend_from_slice(cfg);
        d.ok(&all);
        let bytes = std::fs::read(d.join(out)).unwrap();
        match &first {
            None => first = Some(bytes),
            Some(b) => assert!(*b == bytes, "{args:?}: {cfg:?} differs"),
        }
    }
}

/// One `mmrun reduce FILE --op OP --axis AXIS --ddof DDOF`, for
/// [`reductions_agree_with_numpy`].
pub struct ReduceCase<'a> {
    pub file: &'a str,
    pub op: &'a str,
    pub axis: &'a str,
    pub ddof: u32,
}

/// Runs each case with `--out` under every one of `configs`, requiring
/// the same bytes from each ([`same_bytes_for_each`]), then checks every
/// output against live NumPy's `np.OP(x, axis=…, ddof=…)`: the same dtype
/// and shape; integer, bool and index results equal; float results equal
/// to NumPy's float64 answer within 2e-7 (float32 and float16 input) or
/// 1e-12 relative, since mmrun accumulates floats in float64 (README),
/// and for sums and means within that much of the sum of `|x|` where they
/// cancel. `rows` is every axis but 0; `argmin`/`argmax` take one axis.
pub fn reductions_agree_with_numpy(
    py: &Path,
    d: &Dir,
    cases: &[ReduceCase<'_>],
    configs: &[&[&str]],
) {
    let mut listed = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let out = format!("r{i}_{}_{}.npy", c.op, c.axis.replace(['-', ','], "m"));
        let ddof = c.ddof.to_string();
        let args = [
            "reduce", c.file, "--op", c.op, "--axis", c.axis, "--ddof", &ddof, "--out", &out,
            "--force",
        ];
        same_bytes_for_each(d, &args, &out, configs);
        listed.push(format!(
            "('{}', '{}', {}, '{}', '{out}')",
            c.file, c.op, c.ddof, c.axis
        ));
    }
    python(
        py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             warnings.simplefilter('ignore')\n\
             for f, op, ddof, axis, out in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, x.ndim)) if axis == 'rows' else eval('(' + axis + ',)'))\n\
             \x20   if op.startswith('arg') and ax is not None: ax = ax[0]\n\
             \x20   kw = {{'ddof': ddof}} if op in ('std', 'var', 'nanstd', 'nanvar') else {{}}\n\
             \x20   want = np.asarray(getattr(np, op)(x, axis=ax, **kw))\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis, got.dtype, got.shape, want.dtype, want.shape)\n\
             \x20   if want.dtype.kind == 'f':\n\
             \x20       x64 = x.astype(np.float64)\n\
             \x20       want = np.asarray(getattr(np, op)(x64, axis=ax, **kw))\n\
             \x20       rtol = 2e-7 if x.dtype.itemsize <= 4 and x.dtype.kind == 'f' else 1e-12\n\
             \x20       sums = op in ('sum', 'mean', 'nansum', 'nanmean')\n\
             \x20       scale = getattr(np, op)(np.abs(x64), axis=ax) if sums else 0\n\
             \x20       ok = np.isclose(got, want, rtol=rtol, atol=0, equal_nan=True) | (np.abs(got - want) <= rtol * scale)\n\
             \x20       assert ok.all(), (f, op, axis, got[~ok] if got.ndim else got, want[~ok] if got.ndim else want)\n\
             \x20   else:\n\
             \x20       assert np.array_equal(got, want), (f, op, axis, got, want)\n",
            listed.join(", ")
        ),
    );
}
