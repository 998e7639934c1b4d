//! Files larger than memory: `fill`, `apply` (in place and `--out`) and
//! `reduce` on a 1 GiB file run inside a memory cgroup
//! limited to 256 MiB, on a disk file system.
//!
//! A worker's resident set must be bounded by its writeback window, not by
//! its partition, and page cache it dirties must be written back early
//! enough that the cgroup can reclaim it. If either fails, the kernel's OOM
//! killer ends the run with SIGKILL: the tests check each command's exit
//! status and the cgroup's own OOM-kill counter, then check the data
//! (`mmrun verify` for the fill, NumPy reading a few rows for the rest).
//!
//! The cgroup is made as root: cgroup v1 (`memory.limit_in_bytes`) or v2
//! (`memory.max`), whichever has the memory controller. It is created
//! below the cgroup this test runs in where that works (so it stays inside
//! whatever accounts for this process), else below the hierarchy's root,
//! and removed afterwards. Only the spawned mmrun (and its workers) run in
//! it. Without root or a memory controller the test prints `SKIP` locally
//! and fails under `CI=true`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::*;

/// The cgroup's memory limit. The file is four times this.
pub(crate) const LIMIT: u64 = 256 << 20;
/// 16384 × 16384 float32: 1 GiB.
const SIDE: u64 = 16384;
const SEED: &str = "11";
/// Bound on a worker's peak resident set (see `assert_bounded_workers`).
const RSS_BOUND_KIB: i64 = 96 << 10;

/// A memory cgroup of our own, removed on drop.
pub(crate) struct Cgroup {
    dir: PathBuf,
    v2: bool,
}

impl Cgroup {
    /// Creates a cgroup limited to `limit` bytes, or says why it cannot.
    pub(crate) fn create(limit: u64) -> Result<Cgroup, String> {
        Self::create_of(limit, None)
    }

    /// One cgroup limited to `limit` bytes for each cgroup version whose
    /// memory controller is usable here (v1, v2 or both), or why there is
    /// none.
    pub(crate) fn each(limit: u64) -> Result<Vec<Cgroup>, String> {
        let mut made = Vec::new();
        let mut why = Vec::new();
        for v2 in [false, true] {
            match Self::create_of(limit, Some(v2)) {
                Ok(cg) => made.push(cg),
                Err(e) => why.push(e),
            }
        }
        if made.is_empty() {
            return Err(why.join("; "));
        }
        Ok(made)
    }

    /// `v1` or `v2`.
    pub(crate) fn version(&self) -> &'static str {
        if self.v2 {
            "v2"
        } else {
            "v1"
        }
    }

    /// A cgroup of version `v2` (`None`: either), as [`Cgroup::create`].
    fn create_of(limit: u64, want_v2: Option<bool>) -> Result<Cgroup, String> {
        if !is_root() {
            return Err("a memory cgroup (needs root)".into());
        }
        // Tests of one binary run in parallel in one process: one name each.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("mmrun-memory-test-{}-{n}", std::process::id());
        let mut why = Vec::new();
        for (parent, v2) in candidate_parents() {
            if want_v2.is_some_and(|w| w != v2) {
                continue;
            }
            let dir = parent.join(&name);
            if let Err(e) = fs::create_dir(&dir) {
                why.push(format!("{}: {e}", dir.display()));
                continue;
            }
            let cg = Cgroup { dir, v2 };
            let file = if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            // v2 only shows memory.max when the parent delegates the memory
            // controller; v1 has it everywhere in the memory hierarchy.
            match fs::write(cg.dir.join(file), limit.to_string()) {
                Ok(()) => {
                    let set: u64 = fs::read_to_string(cg.dir.join(file))
                        .ok()
                        .and_then(|t| t.trim().parse().ok())
                        .unwrap_or(u64::MAX);
                    if set > limit {
                        why.push(format!(
                            "{}/{file} reads {set} after writing {limit}",
                            cg.dir.display()
                        ));
                        continue;
                    }
                    if !v2 {
                        // Swap counts too (where it is accounted): a run
                        // must fit, not page out.
                        let _ = fs::write(
                            cg.dir.join("memory.memsw.limit_in_bytes"),
                            limit.to_string(),
                        );
                    }
                    return Ok(cg);
                }
                Err(e) => why.push(format!("{}/{file}: {e}", cg.dir.display())),
            }
        }
        Err(format!(
            "a usable memory cgroup (v1 memory.limit_in_bytes or v2 memory.max): {}",
            if why.is_empty() {
                "no memory controller is mounted".to_string()
            } else {
                why.join("; ")
            }
        ))
    }

    /// `mmrun ARGS` started inside this cgroup: a shell moves itself in and
    /// then execs mmrun, so nothing runs outside it and nothing else inside.
    fn mmrun(&self, dir: &Dir, args: &[&str]) -> Command {
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
            .arg(&self.dir)
            .arg(mmrun_bin())
            .args(args)
            .current_dir(dir.path());
        // The same clean environment as `Dir::cmd`.
        for (k, _) in std::env::vars() {
            if k.starts_with("MMRUN_") || k.starts_with("__MMRUN_") || k.starts_with("SLURM_") {
                sh.env_remove(k);
            }
        }
        sh
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// `key value` lines of a cgroup file, as a number for `key`.
    fn field(&self, file: &str, key: &str) -> Option<u64> {
        self.read(file).lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
    }

    /// Processes the kernel's OOM killer killed in this cgroup.
    fn oom_kills(&self) -> u64 {
        if self.v2 {
            self.field("memory.events", "oom_kill").unwrap_or(0)
        } else {
            // `oom_kill` in memory.oom_control exists since Linux 4.13;
            // `under_oom` catches an OOM in progress on older kernels.
            self.field("memory.oom_control", "oom_kill").unwrap_or(0)
                + self.field("memory.oom_control", "under_oom").unwrap_or(0)
        }
    }

    /// Peak charge and the number of times the limit was hit (v1), or the
    /// `max` events (v2), for the log: hitting the limit is expected (page
    /// cache is reclaimed there), being OOM-killed is not.
    fn pressure(&self) -> String {
        if self.v2 {
            format!(
                "peak {} MiB, max events {}",
                self.read("memory.peak").trim().parse::<u64>().unwrap_or(0) >> 20,
                self.field("memory.events", "max").unwrap_or(0)
            )
        } else {
            format!(
                "peak {} MiB, failcnt {}",
                self.read("memory.max_usage_in_bytes")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0)
                    >> 20,
                self.read("memory.failcnt").trim()
            )
        }
    }

    /// Resets the v1 peak and failure counters between commands.
    fn reset(&self) {
        if !self.v2 {
            let _ = fs::write(self.dir.join("memory.max_usage_in_bytes"), "0");
            let _ = fs::write(self.dir.join("memory.failcnt"), "0");
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The last process may still be leaving; rmdir fails with EBUSY
        // until it has.
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::NotFound => return,
                Err(e) if Instant::now() > until => {
                    eprintln!("could not remove cgroup {}: {e}", self.dir.display());
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// Where a cgroup could be made, best first: below this process's own
/// cgroup, then below the root of the hierarchy holding the memory
/// controller (v1's `memory` mount, or a v2 mount whose root delegates
/// `memory`).
fn candidate_parents() -> Vec<(PathBuf, bool)> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for line in mounts.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(root), Some(mnt), Some(fstype)) = (pre.get(3), pre.get(4), post.first()) else {
            continue;
        };
        let mnt = PathBuf::from(mnt);
        let opts = post.get(2).copied().unwrap_or("");
        // The path of this process's cgroup in that hierarchy, made
        // relative to what the mount shows (`root` is "/" unless the
        // mount is itself a sub-tree, as in a container).
        let own_path = |wanted: &dyn Fn(&str) -> bool| {
            own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                wanted(ctrls).then(|| path.to_string())
            })
        };
        let v2 = match *fstype {
            "cgroup" if opts.split(',').any(|o| o == "memory") => false,
            "cgroup2" => {
                let ctrls = fs::read_to_string(mnt.join("cgroup.controllers")).unwrap_or_default();
                if !ctrls.split_whitespace().any(|c| c == "memory") {
                    continue;
                }
                true
            }
            _ => continue,
        };
        let path = if v2 {
            own_path(&|c: &str| c.is_empty())
        } else {
            own_path(&|c: &str| c.split(',').any(|c| c == "memory"))
        };
        if let Some(p) = path {
            if let Ok(rel) = Path::new(&p).strip_prefix(root) {
                let dir = mnt.join(rel);
                if dir != mnt {
                    out.push((dir, v2));
                }
            }
        }
        out.push((mnt, v2));
    }
    out
}

/// A directory for 2 GiB of files on a disk: under the target directory,
/// checked not to be tmpfs (whose pages cannot be reclaimed without swap,
/// so a file there could never be bigger than the limit).
pub(crate) fn disk_dir() -> Result<PathBuf, String> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(base).map_err(|e| format!("{}: {e}", base.display()))?;
    let st = nix::sys::statfs::statfs(base).map_err(|e| format!("{}: {e}", base.display()))?;
    if st.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC {
        return Err(format!("a disk file system ({} is tmpfs)", base.display()));
    }
    Ok(base.to_path_buf())
}

/// Runs one mmrun command in the cgroup and asserts it was not OOM-killed
/// and succeeded.
pub(crate) fn run_limited(cg: &Cgroup, d: &Dir, args: &[&str]) -> Output {
    cg.reset();
    let before = cg.oom_kills();
    let t = Instant::now();
    let out = cg.mmrun(d, args).output().expect("run mmrun in the cgroup");
    let kills = cg.oom_kills() - before;
    eprintln!(
        "mmrun {}: {:?} in {:.1} s; cgroup {}, OOM kills {kills}",
        args.join(" "),
        out.status,
        t.elapsed().as_secs_f64(),
        cg.pressure()
    );
    assert_eq!(
        kills,
        0,
        "mmrun {args:?} was OOM-killed under a {} MiB limit: {}",
        LIMIT >> 20,
        stderr(&out)
    );
    assert!(
        out.status.success(),
        "mmrun {args:?} failed under a {} MiB limit: {:?}\n{}",
        LIMIT >> 20,
        out.status,
        stderr(&out)
    );
    out
}

/// Asserts every worker of a run (its `--json` report on stdout) kept its
/// resident set bounded by its writeback windows, far below its 512 MiB
/// partition: a kernel on the mapping holds about three 8 MiB windows of
/// output and as many of input (≈ 55 MiB measured, binary included); a
/// worker that kept every page it touched reached 108 MiB here even with
/// the cgroup reclaiming behind it, and its whole partition without one.
fn assert_bounded_workers(out: &Output) {
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let workers = report["workers"].as_array().expect("workers");
    assert!(!workers.is_empty());
    for w in workers {
        let rss = w["usage"]["max_rss_kib"].as_i64().expect("max_rss_kib");
        assert!(
            rss < RSS_BOUND_KIB,
            "worker {} peaked at {} MiB resident (bound {} MiB)",
            w["worker"],
            rss >> 10,
            RSS_BOUND_KIB >> 10
        );
    }
}

fn skip(what: &str) {
    missing_tool("memory::bigger_than_memory", what);
}

/// fill, apply (`--out`, then in place) and reduce on a file 4× the
/// memory limit of their cgroup.
#[test]
fn commands_on_a_file_four_times_the_memory_limit() {
    let cg = match Cgroup::create(LIMIT) {
        Ok(cg) => cg,
        Err(what) => return skip(&what),
    };
    let base = match disk_dir() {
        Ok(b) => b,
        Err(what) => return skip(&what),
    };
    let Some(py) = require_numpy("memory::bigger_than_memory") else {
        return;
    };
    let d = Dir::new_in(&base);
    let shape = format!("{SIDE},{SIDE}");
    eprintln!(
        "cgroup {} ({}), limit {} MiB, file {} MiB in {}",
        cg.dir.display(),
        if cg.v2 { "v2" } else { "v1" },
        LIMIT >> 20,
        (SIDE * SIDE * 4) >> 20,
        d.path().display()
    );

    let out = run_limited(
        &cg,
        &d,
        &[
            "fill", "x.npy", "--shape", &shape, "--dtype", "f4", "--random", "uniform", "--seed",
            SEED, "-w", "2", "--json",
        ],
    );
    assert_bounded_workers(&out);
    // verify exits 1 naming the first differing row when the data is wrong.
    run_limited(
        &cg,
        &d,
        &["verify", "x.npy", "--seed", SEED, "--random", "uniform"],
    );

    // A few rows (first, both sides of the worker boundary, last) before
    // the in-place apply changes them.
    let rows = [0, SIDE / 2 - 1, SIDE / 2, SIDE - 1];
    let rows_py = format!("{rows:?}");
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             x = np.load('x.npy', mmap_mode='r')\n\
             np.save('rows.npy', np.array(x[{rows_py}]))\n"
        ),
    );

    let out = run_limited(
        &cg,
        &d,
        &[
            "apply",
            "x.npy",
            "--expr",
            "x * 2 + 1",
            "--out",
            "y.npy",
            "-w",
            "2",
            "--json",
        ],
    );
    assert_bounded_workers(&out);
    let out = run_limited(
        &cg,
        &d,
        &["apply", "x.npy", "--expr", "x * 2 + 1", "-w", "2", "--json"],
    );
    assert_bounded_workers(&out);
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             want = np.load('rows.npy') * np.float32(2) + np.float32(1)\n\
             for name in ('x.npy', 'y.npy'):\n\
             \x20   a = np.load(name, mmap_mode='r')\n\
             \x20   assert a.dtype == np.float32 and a.shape == ({SIDE}, {SIDE}), (name, a.dtype, a.shape)\n\
             \x20   got = np.array(a[{rows_py}])\n\
             \x20   assert np.array_equal(got, want), name\n"
        ),
    );
    fs::remove_file(d.join("y.npy")).unwrap();

    run_limited(
        &cg,
        &d,
        &[
            "reduce", "x.npy", "--op", "mean", "--axis", "1", "--out", "m.npy", "-w", "2",
        ],
    );
    // A scan across rows (the dyadic tree) reads the whole file too.
    run_limited(
        &cg,
        &d,
        &[
            "reduce", "x.npy", "--op", "max", "--axis", "0", "--out", "c.npy", "-w", "2",
        ],
    );
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             x = np.load('x.npy', mmap_mode='r')\n\
             m = np.load('m.npy', mmap_mode='r')\n\
             assert m.shape == ({SIDE},), m.shape\n\
             rows = {rows_py}\n\
             want = np.array(x[rows]).astype(np.float64).mean(axis=1)\n\
             assert np.allclose(np.asarray(m[rows], dtype=np.float64), want, rtol=1e-5), (m[rows], want)\n\
             c = np.load('c.npy')\n\
             assert c.shape == ({SIDE},) and c.dtype == np.float32, (c.shape, c.dtype)\n\
             assert np.array_equal(c[:64], np.asarray(x[:, :64]).max(axis=0)), 'axis-0 max'\n"
        ),
    );
}
