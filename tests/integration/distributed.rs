//! Rank mode under real launchers: Open MPI's `mpirun` and a single-node
//! Slurm cluster on this machine (`scripts/launchers.sh setup` starts it and
//! writes `$MMRUN_SLURM_DIR/env`, default `/tmp/mmrun-slurm/env`; a test that
//! finds no running cluster runs the script itself).
//!
//! Every test is the three-step batch flow — `create --pending`, ranks under
//! a launcher, `commit` — and checks the published bytes against a local
//! `mmrun fill` (or the worker's known pattern). Launcher tests run one at a
//! time (`LOCK`) and every command has a deadline: a launcher that hangs
//! (a drained node, a queued step) fails the test instead of the whole run.
//! Rank detection from each launcher's variables, the sbatch-body trap and
//! alignment refusal are unit-tested in `src/distributed.rs`; here the
//! variables come from the real launchers.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::util::{self, mmrun_bin, Dir};

/// Launchers share the machine (and Slurm its two CPUs): one test at a time.
static LOCK: Mutex<()> = Mutex::new(());

pub(crate) fn serial() -> MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Deadline of one launcher command (a job here takes a few seconds).
pub(crate) const STEP: Duration = Duration::from_secs(60);

/// Slurm job name of every job these tests submit (`scancel -n` on a timeout).
pub(crate) const JOB_NAME: &str = "mmrun-test";

/// The 64 KiB rank alignment of design.md.
const ALIGN: u64 = 64 * 1024;

/// A finished command.
pub(crate) struct Run {
    pub(crate) what: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub(crate) fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the command's output unless it exited 0.
    pub(crate) fn ok(self) -> Self {
        assert!(self.success(), "{} failed: {}", self.what, self.describe());
        self
    }

    pub(crate) fn describe(&self) -> String {
        let how = match (self.status.code(), self.status.signal()) {
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => format!("{:?}", self.status),
        };
        format!(
            "{how}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

fn read_back(mut f: File) -> String {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    s.push_str(&String::from_utf8_lossy(&bytes));
    s
}

/// Runs `cmd` in its own process group with a deadline; on timeout kills the
/// group (and this suite's Slurm jobs) and panics with what it printed.
pub(crate) fn run(what: &str, mut cmd: Command, timeout: Duration) -> Run {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > timeout {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            if let Some(conf) = SLURM.get().and_then(|s| s.as_ref().ok()) {
                let mut c = Command::new("scancel");
                clean_env(&mut c);
                let _ = c.env("SLURM_CONF", conf).args(["-n", JOB_NAME]).status();
            }
            panic!(
                "{what}: still running after {timeout:?}, killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                read_back(out),
                read_back(err)
            );
        }
        sleep(Duration::from_millis(20));
    };
    Run {
        what: what.to_string(),
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

/// Removes every variable that would make a process believe it already is a
/// rank (or change mmrun's behaviour) from what `cmd` inherits.
pub(crate) fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if ["SLURM_", "OMPI_", "PMI_", "PMIX_", "MMRUN_", "__MMRUN_"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            cmd.env_remove(k);
        }
    }
}

/// `mmrun ARGS` in `dir`, outside any launcher (with the NFS lock shim
/// when the test runs [`under_nfs_locks`]).
pub(crate) fn mmrun(dir: &Dir, args: &[&str]) -> Run {
    let mut c = dir.cmd(args);
    clean_env(&mut c);
    if let Some(shim) = nfs_shim() {
        c.env("LD_PRELOAD", shim);
    }
    run(&format!("mmrun {}", args.join(" ")), c, STEP)
}

/// `mmrun create --pending FILE --shape SHAPE --dtype DTYPE`.
pub(crate) fn create_pending(dir: &Dir, file: &str, shape: &str, dtype: &str) {
    mmrun(
        dir,
        &[
            "create",
            "--pending",
            file,
            "--shape",
            shape,
            "--dtype",
            dtype,
        ],
    )
    .ok();
}

/// Commits and checks that nothing of the pending run is left beside FILE.
pub(crate) fn commit(dir: &Dir, file: &str) {
    mmrun(dir, &["commit", file]).ok();
    for leftover in [
        format!(".{file}.mmrun-partial"),
        format!(".{file}.mmrun-journal"),
        format!(".{file}.mmrun-journal.d"),
    ] {
        assert!(
            !dir.join(&leftover).exists(),
            "{leftover} is left after mmrun commit {file}: {:?}",
            dir.names()
        );
    }
}

/// Asserts that `file` is byte for byte what a local `mmrun fill --random
/// uniform --seed SEED` writes.
pub(crate) fn assert_same_as_local_fill(
    dir: &Dir,
    file: &str,
    shape: &str,
    dtype: &str,
    seed: &str,
) {
    let local = format!("local-{file}");
    mmrun(
        dir,
        &[
            "fill", &local, "--shape", shape, "--dtype", dtype, "--random", "uniform", "--seed",
            seed,
        ],
    )
    .ok();
    let got = fs::read(dir.join(file)).unwrap();
    let want = fs::read(dir.join(&local)).unwrap();
    assert_eq!(
        got.len(),
        want.len(),
        "{file}: size differs from a local fill"
    );
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("{file}: byte {i} differs from a local fill of the same seed (and maybe more)");
    }
}

/// The rows a rank's record (`.FILE.mmrun-journal.d/rank-R-of-N`) says are done.
fn rank_done(dir: &Dir, file: &str, rank: u64, ranks: u64) -> Option<(u64, u64)> {
    let path = dir.join(&format!(".{file}.mmrun-journal.d/rank-{rank}-of-{ranks}"));
    let text = fs::read_to_string(&path).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let d = v.get("done")?;
        Some((d.get("start")?.as_u64()?, d.get("end")?.as_u64()?))
    })
}

/// Before commit: every rank's record says its partition is done, the
/// partitions tile `0..rows` in rank order, and every inner boundary is at a
/// 64 KiB-aligned byte offset (`data_offset + k * row_bytes`).
fn assert_partitions(
    dir: &Dir,
    file: &str,
    ranks: u64,
    rows: u64,
    data_offset: u64,
    row_bytes: u64,
) {
    let mut next = 0;
    for r in 0..ranks {
        let (start, end) = rank_done(dir, file, r, ranks)
            .unwrap_or_else(|| panic!("rank {r} of {ranks} has no done record: {:?}", dir.names()));
        assert_eq!(
            start, next,
            "rank {r} of {ranks} starts at row {start}, want {next}"
        );
        assert!(end >= start, "rank {r}: rows {start}..{end}");
        if start != 0 {
            assert_eq!(
                (data_offset + start * row_bytes) % ALIGN,
                0,
                "rank {r} of {ranks} starts at row {start}: byte {} is not 64 KiB-aligned",
                data_offset + start * row_bytes
            );
        }
        next = end;
    }
    assert_eq!(
        next, rows,
        "the ranks' partitions end at row {next}, not {rows}"
    );
}

// ---------------------------------------------------------------- workers

/// Rows of the exec tests: 4096 one-byte elements each, so 16 rows are 64 KiB.
const EXEC_ROWS: u64 = 192;
pub(crate) const EXEC_SHAPE: &str = "192,4096";

/// A `sh` worker for a `u1` file of 4096-byte rows: writes byte `row % 251`
/// over each of its rows (with `dd` at `MMRUN_DATA_OFFSET`) and logs
/// `rank ranks worker start end` to `$1`. With `$2`, it first creates
/// `$2.started.<pid>` and waits (at most 60 s) for the file `$2` to appear.
const SH_WORKER: &str = r#"
echo "${MMRUN_RANK-unset} ${MMRUN_RANKS-unset} $MMRUN_WORKER $MMRUN_ROW_START $MMRUN_ROW_END" >> "$1"
if [ -n "${2-}" ]; then
    : > "$2.started.$$"
    i=0
    while [ ! -e "$2" ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 1200 ] || exit 3
    done
fi
r=$MMRUN_ROW_START
while [ "$r" -lt "$MMRUN_ROW_END" ]; do
    head -c 4096 /dev/zero | tr '\000' "\\$(printf %03o $((r % 251)))" |
        dd of="$MMRUN_FILE" bs=4096 oflag=seek_bytes seek=$((MMRUN_DATA_OFFSET + r * 4096)) conv=notrunc status=none || exit 4
    r=$((r + 1))
done
"#;

/// Writes the sh worker into `dir`; returns its path and its log's path.
fn sh_worker(dir: &Dir) -> (String, String) {
    let script = dir.join("worker.sh");
    fs::write(&script, SH_WORKER).unwrap();
    (
        script.to_string_lossy().into_owned(),
        dir.join("workers.log").to_string_lossy().into_owned(),
    )
}

/// The published exec file holds byte `row % 251` in every row.
pub(crate) fn assert_exec_pattern(dir: &Dir, file: &str) {
    let bytes = fs::read(dir.join(file)).unwrap();
    let data = &bytes[bytes.len() - (EXEC_ROWS as usize) * 4096..];
    for (r, row) in data.chunks(4096).enumerate() {
        if let Some(c) = row.iter().position(|&b| b != (r % 251) as u8) {
            panic!(
                "{file}: row {r} column {c} is {}, the worker wrote {}",
                row[c],
                r % 251
            );
        }
    }
}

/// The workers' log: their row ranges tile `0..rows`, and each worker saw
/// `MMRUN_RANK`/`MMRUN_RANKS` (workers/README.md: set under `--distributed`).
fn assert_worker_log(log: &str, ranks: u64, rows: u64) {
    let text = fs::read_to_string(log).unwrap();
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    lines.sort_by_key(|f| f[3].parse::<u64>().unwrap());
    let mut next = 0;
    for f in &lines {
        let (start, end): (u64, u64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        assert_eq!(start, next, "worker ranges do not tile the rows:\n{text}");
        next = end;
    }
    assert_eq!(
        next, rows,
        "worker ranges end at {next}, not {rows}:\n{text}"
    );
    let mut seen: Vec<u64> = Vec::new();
    for f in &lines {
        let rank: u64 = f[0].parse().unwrap_or_else(|_| {
            panic!(
                "an exec worker under --distributed has MMRUN_RANK={} MMRUN_RANKS={} \
                 (workers/README.md documents both under --distributed):\n{text}",
                f[0], f[1]
            )
        });
        assert_eq!(f[1], ranks.to_string(), "MMRUN_RANKS in the log:\n{text}");
        seen.push(rank);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        (0..ranks).collect::<Vec<_>>(),
        "ranks in the log:\n{text}"
    );
}

// ---------------------------------------------------------------- Open MPI

/// Whether Open MPI's `mpirun` is here (else reports it missing).
pub(crate) fn open_mpi(test: &str) -> bool {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && (String::from_utf8_lossy(&o.stdout).contains("Open MPI")
                    || String::from_utf8_lossy(&o.stderr).contains("Open MPI"))
        });
    if !found {
        util::missing_tool(
            test,
            "Open MPI's mpirun (scripts/launchers.sh setup installs it)",
        );
    }
    found
}

/// `mpirun -n N --oversubscribe` (allowed as root) in `dir`, running mmrun;
/// every rank preloads the NFS lock shim when the test runs
/// [`under_nfs_locks`].
pub(crate) fn mpirun(dir: &Dir, n: u32) -> Command {
    let mut c = Command::new("mpirun");
    clean_env(&mut c);
    c.current_dir(dir.path())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["-n", &n.to_string(), "--oversubscribe"]);
    if let Some((shim, marks)) = nfs_shim_marked() {
        c.arg("-x").arg(format!("LD_PRELOAD={}", shim.display()));
        c.arg("-x")
            .arg(format!("MMRUN_SHIM_LOADED_DIR={}", marks.display()));
    }
    c
}

thread_local! {
    /// The NFS lock shim this test's mmrun processes preload, in the
    /// `under_nfs_locks` variant of an mpirun test, and the directory where
    /// the ranks it is loaded into leave their marks.
    static NFS_SHIM: std::cell::RefCell<Option<(PathBuf, PathBuf)>> =
        const { std::cell::RefCell::new(None) };
}

/// The NFS lock shim, when this test runs under NFS lock semantics.
pub(crate) fn nfs_shim() -> Option<PathBuf> {
    nfs_shim_marked().map(|(s, _)| s)
}

fn nfs_shim_marked() -> Option<(PathBuf, PathBuf)> {
    NFS_SHIM.with(|s| s.borrow().clone())
}

/// Runs the mpirun test `test` with the Linux NFS client's lock semantics:
/// its ranks ([`mpirun`]) and the `create --pending`/`commit` it runs
/// through [`mmrun`] preload `tests/data/nfs_lock_shim.c` (see
/// [`super::clusters`]). Every mpirun test has this variant, defined by
/// [`nfs_variants`].
pub(crate) fn under_nfs_locks(name: &str, test: fn()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NFS_SHIM.with(|s| *s.borrow_mut() = None);
        }
    }
    let Some(shim) = crate::clusters::nfs_shim_lib(&format!("{name} (under NFS locks)")) else {
        return;
    };
    if !open_mpi(name) {
        return;
    }
    let marks = tempfile::tempdir().unwrap();
    NFS_SHIM.with(|s| *s.borrow_mut() = Some((shim, marks.path().to_path_buf())));
    let _reset = Reset;
    test();
    // The ranks really ran under the shim.
    let loaded = fs::read_dir(marks.path()).unwrap().count();
    assert!(loaded > 0, "{name}: no rank loaded the NFS lock shim");
}

/// `mod under_nfs_locks` with one test per name given, each running that
/// mpirun test again [`under_nfs_locks`]: so every mpirun test runs both
/// with local lock semantics and with NFS's.
macro_rules! nfs_variants {
    ($($test:ident),* $(,)?) => {
        /// The mpirun tests of this file again, every rank under the NFS
        /// lock shim.
        mod under_nfs_locks {
            $(
                #[test]
                fn $test() {
                    crate::distributed::under_nfs_locks(stringify!($test), super::$test)
                }
            )*
        }
    };
}
pub(crate) use nfs_variants;

nfs_variants!(
    mpirun_four_ranks_fill_then_commit_equals_a_local_fill,
    mpirun_three_ranks_exec_a_shell_worker,
    mpirun_rank_with_a_failed_worker_fails_the_job_and_commit_then_resume_completes,
    mpirun_reductions_across_ranks_equal_a_local_reduce,
    mpirun_apply_in_place_and_into_a_pending_output,
    mpirun_reduce_job_example_script,
);

#[test]
fn mpirun_four_ranks_fill_then_commit_equals_a_local_fill() {
    let _g = serial();
    let test = "mpirun_four_ranks_fill_then_commit_equals_a_local_fill";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    let (shape, dtype, seed) = ("512,1024", "f4", "11");
    create_pending(&dir, "a.npy", shape, dtype);
    let mut c = mpirun(&dir, 4);
    c.arg(mmrun_bin()).args([
        "fill",
        "a.npy",
        "--distributed",
        "--random",
        "uniform",
        "--seed",
        seed,
        "-w",
        "2",
    ]);
    run("mpirun -n 4 mmrun fill --distributed", c, STEP).ok();
    assert!(!dir.join("a.npy").exists(), "a rank published a.npy");
    assert_partitions(&dir, "a.npy", 4, 512, 4096, 4096);
    commit(&dir, "a.npy");
    assert_same_as_local_fill(&dir, "a.npy", shape, dtype, seed);
}

#[test]
fn mpirun_three_ranks_exec_a_shell_worker() {
    let _g = serial();
    let test = "mpirun_three_ranks_exec_a_shell_worker";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    let (script, log) = sh_worker(&dir);
    create_pending(&dir, "e.npy", EXEC_SHAPE, "u1");
    let mut c = mpirun(&dir, 3);
    c.arg(mmrun_bin()).args([
        "exec",
        "e.npy",
        "--distributed",
        "-w",
        "2",
        "--seed",
        "1",
        "--",
        "sh",
        &script,
        &log,
    ]);
    run("mpirun -n 3 mmrun exec --distributed", c, STEP).ok();
    assert_partitions(&dir, "e.npy", 3, EXEC_ROWS, 4096, 4096);
    commit(&dir, "e.npy");
    assert_exec_pattern(&dir, "e.npy");
    assert_worker_log(&log, 3, EXEC_ROWS);
}

#[test]
fn mpirun_rank_with_a_failed_worker_fails_the_job_and_commit_then_resume_completes() {
    let _g = serial();
    let test = "mpirun_rank_with_a_failed_worker_fails_the_job_and_commit_then_resume_completes";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    let (shape, dtype, seed) = ("512,1024", "f4", "5");
    create_pending(&dir, "a.npy", shape, dtype);
    let fill = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["fill", "a.npy", "--distributed", "--random", "uniform"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(["--seed", seed, "-w", "2"].iter().map(|s| s.to_string()));
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // Rank 2's local worker 1 is SIGKILLed on its first attempt.
    let mut c = mpirun(&dir, 4);
    let line =
        "if [ \"$OMPI_COMM_WORLD_RANK\" = 2 ]; then export __MMRUN_TEST_WORKER_FAULT=1:kill; fi; \
                exec \"$0\" \"$@\"";
    c.args(["sh", "-c", line]).arg(mmrun_bin()).args(fill(&[]));
    let job = run(
        "mpirun -n 4 mmrun fill --distributed (rank 2 fails)",
        c,
        STEP,
    );
    assert!(
        !job.success(),
        "mpirun succeeded although rank 2's worker was killed: {}",
        job.describe()
    );
    assert!(
        job.stderr.contains("rank 2 of 4"),
        "rank 2's error should name it: {}",
        job.describe()
    );
    assert!(
        !dir.join("a.npy").exists(),
        "a failed distributed run published a.npy"
    );

    // commit refuses, naming rank 2 (mpirun may also have stopped others).
    let refused = mmrun(&dir, &["commit", "a.npy"]);
    assert_eq!(refused.code(), Some(1), "commit: {}", refused.describe());
    assert!(
        refused.stderr.contains('2'),
        "commit should name rank 2: {}",
        refused.describe()
    );
    assert!(
        !dir.join("a.npy").exists(),
        "a refused commit published a.npy"
    );
    let missing: Vec<u64> = (0..4)
        .filter(|&r| rank_done(&dir, "a.npy", r, 4).is_none())
        .collect();
    assert!(
        missing.contains(&2),
        "rank 2 is recorded done: {:?}",
        missing
    );

    // Without --resume an interrupted rank is refused; with it, it finishes.
    let again = mmrun(
        &dir,
        &fill(&["--shard", "2/4"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        again.code(),
        Some(2),
        "rank 2 rerun without --resume: {}",
        again.describe()
    );
    assert!(again.stderr.contains("--resume"), "{}", again.describe());
    for r in 0..4 {
        let shard = format!("{r}/4");
        // A rank already done exits 0 at once; the others finish.
        mmrun(
            &dir,
            &fill(&["--shard", &shard, "--resume"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .ok();
    }
    assert_partitions(&dir, "a.npy", 4, 512, 4096, 4096);
    commit(&dir, "a.npy");
    assert_same_as_local_fill(&dir, "a.npy", shape, dtype, seed);
}

// ---------------------------------------------------------------- Slurm

/// `SLURM_CONF` of the running test cluster, or why there is none.
static SLURM: OnceLock<Result<PathBuf, String>> = OnceLock::new();

fn slurm_dir() -> PathBuf {
    std::env::var_os("MMRUN_SLURM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/mmrun-slurm"))
}

/// `SLURM_CONF` from the env file `scripts/launchers.sh setup` writes.
fn conf_from_env_file() -> Option<PathBuf> {
    let text = fs::read_to_string(slurm_dir().join("env")).ok()?;
    text.lines().find_map(|l| {
        let v = l
            .trim()
            .strip_prefix("export ")?
            .strip_prefix("SLURM_CONF=")?;
        Some(PathBuf::from(v.trim_matches(|c| c == '"' || c == '\'')))
    })
}

pub(crate) fn slurm_cmd(conf: &Path, prog: &str) -> Command {
    let mut c = Command::new(prog);
    clean_env(&mut c);
    c.env("SLURM_CONF", conf);
    c
}

/// Whether the cluster answers and its node can run a job now.
fn node_ready(conf: &Path) -> bool {
    let mut c = slurm_cmd(conf, "sinfo");
    c.args(["-h", "-N", "-o", "%T"]);
    let Ok(out) = c.stdin(Stdio::null()).output() else {
        return false;
    };
    let s = String::from_utf8_lossy(&out.stdout);
    out.status.success()
        && !s.trim().is_empty()
        && s.lines()
            .all(|l| matches!(l.trim(), "idle" | "mixed" | "allocated" | "completing"))
}

fn start_slurm() -> Result<PathBuf, String> {
    if let Some(conf) = conf_from_env_file() {
        if node_ready(&conf) {
            return Ok(conf);
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/launchers.sh");
    let mut c = Command::new("bash");
    clean_env(&mut c);
    c.arg(&script).arg("setup");
    let setup = run("scripts/launchers.sh setup", c, Duration::from_secs(300));
    if !setup.success() {
        return Err(format!(
            "a single-node Slurm cluster (scripts/launchers.sh setup: {})",
            setup.describe()
        ));
    }
    let conf = conf_from_env_file()
        .ok_or_else(|| "a Slurm cluster (setup wrote no SLURM_CONF to its env file)".to_string())?;
    if !node_ready(&conf) {
        return Err("a Slurm cluster with an idle node (setup finished, sinfo disagrees)".into());
    }
    Ok(conf)
}

/// The test cluster's `SLURM_CONF`, starting it once if needed; `None` after
/// reporting it missing.
pub(crate) fn slurm(test: &str) -> Option<PathBuf> {
    match SLURM.get_or_init(start_slurm) {
        Ok(conf) => Some(conf.clone()),
        Err(why) => {
            util::missing_tool(test, why);
            None
        }
    }
}

/// `srun -J mmrun-test -D DIR --time 5 ARGS` (then the program).
fn srun(conf: &Path, dir: &Dir, args: &[&str]) -> Command {
    let mut c = slurm_cmd(conf, "srun");
    c.current_dir(dir.path())
        .args(["-J", JOB_NAME, "-t", "5", "-D"])
        .arg(dir.path())
        .args(args);
    c
}

fn srun_fill(test: &str, ranks: u32, launcher_args: &[&str]) {
    let _g = serial();
    let Some(conf) = slurm(test) else {
        return;
    };
    let dir = Dir::new();
    let (shape, dtype, seed) = ("512,1024", "f4", "23");
    create_pending(&dir, "s.npy", shape, dtype);
    let n = ranks.to_string();
    let mut args = vec!["-n", n.as_str()];
    args.extend_from_slice(launcher_args);
    let mut c = srun(&conf, &dir, &args);
    c.arg(mmrun_bin()).args([
        "fill",
        "s.npy",
        "--distributed",
        "--random",
        "uniform",
        "--seed",
        seed,
    ]);
    run(
        &format!("srun {} mmrun fill --distributed", args.join(" ")),
        c,
        STEP,
    )
    .ok();
    assert!(!dir.join("s.npy").exists(), "a rank published s.npy");
    assert_partitions(&dir, "s.npy", ranks as u64, 512, 4096, 4096);
    commit(&dir, "s.npy");
    assert_same_as_local_fill(&dir, "s.npy", shape, dtype, seed);
}

#[test]
fn srun_two_ranks_fill_equals_a_local_fill() {
    srun_fill("srun_two_ranks_fill_equals_a_local_fill", 2, &[]);
}

#[test]
fn srun_four_overcommitted_ranks_fill_equals_a_local_fill() {
    // -O: four tasks on fewer CPUs would otherwise queue forever.
    srun_fill(
        "srun_four_overcommitted_ranks_fill_equals_a_local_fill",
        4,
        &["-O"],
    );
}

/// The three-step flow for a common shape: 2048 `f4` columns are 8 KiB rows.
/// With `create --pending`'s page header (data at byte 4096) no row starts
/// at a 64 KiB-aligned offset, so the ranks cannot split the file; mmrun's own
/// `create --pending` must lay out a file its rank mode can run. The published
/// array (header aside) must equal a local fill's.
#[test]
fn srun_fill_of_a_pending_file_with_8_kib_rows() {
    let _g = serial();
    let test = "srun_fill_of_a_pending_file_with_8_kib_rows";
    let Some(conf) = slurm(test) else {
        return;
    };
    let dir = Dir::new();
    let (shape, dtype, seed) = ("256,2048", "f4", "29");
    create_pending(&dir, "p.npy", shape, dtype);
    let mut c = srun(&conf, &dir, &["-n", "2"]);
    c.arg(mmrun_bin()).args([
        "fill",
        "p.npy",
        "--distributed",
        "--random",
        "uniform",
        "--seed",
        seed,
    ]);
    run("srun -n 2 mmrun fill --distributed (8 KiB rows)", c, STEP).ok();
    commit(&dir, "p.npy");
    mmrun(
        &dir,
        &[
            "fill",
            "local.npy",
            "--shape",
            shape,
            "--dtype",
            dtype,
            "--random",
            "uniform",
            "--seed",
            seed,
        ],
    )
    .ok();
    let got = fs::read(dir.join("p.npy")).unwrap();
    let want = fs::read(dir.join("local.npy")).unwrap();
    let data = 256 * 2048 * 4;
    assert!(got.len() >= data, "p.npy has {} bytes", got.len());
    assert!(
        got[got.len() - data..] == want[want.len() - data..],
        "p.npy's data differs from a local fill of the same seed"
    );
    let info = mmrun(&dir, &["info", "p.npy", "--json"]).ok();
    assert!(
        info.stdout.contains("256") && info.stdout.contains("2048"),
        "p.npy's shape: {}",
        info.stdout
    );
}

#[test]
fn srun_mpi_pmix_takes_slurms_rank_and_size() {
    let test = "srun_mpi_pmix_takes_slurms_rank_and_size";
    {
        let _g = serial();
        let Some(conf) = slurm(test) else {
            return;
        };
        let mut c = slurm_cmd(&conf, "srun");
        c.arg("--mpi=list");
        let list = run("srun --mpi=list", c, STEP);
        if !format!("{}{}", list.stdout, list.stderr).contains("pmix") {
            util::missing_tool(test, "Slurm's PMIx plugin (srun --mpi=list)");
            return;
        }
        // Under --mpi=pmix every task also has PMIX_RANK, which mmrun
        // cross-checks against SLURM_PROCID.
        let dir = Dir::new();
        let mut c = srun(&conf, &dir, &["--mpi=pmix", "-n", "2"]);
        c.args(["sh", "-c", "echo \"$SLURM_PROCID=${PMIX_RANK-unset}\""]);
        let env = run("srun --mpi=pmix -n 2 sh", c, STEP).ok();
        let mut seen: Vec<&str> = env.stdout.split_whitespace().collect();
        seen.sort();
        assert_eq!(
            seen,
            ["0=0", "1=1"],
            "SLURM_PROCID=PMIX_RANK per task: {}",
            env.describe()
        );
    }
    srun_fill(test, 2, &["--mpi=pmix"]);
}

/// A 2-rank `srun` step of `mmrun exec` with the sh worker, whose workers
/// wait at a gate once started.
struct GatedStep {
    handle: std::thread::JoinHandle<Run>,
    gate: Gate,
    /// The rank's command line after `mmrun` (to run a rank again).
    args: Vec<String>,
    log: String,
}

impl GatedStep {
    /// Starts the step (in a thread) and waits until every rank's worker
    /// waits at the gate.
    fn start(conf: &Path, dir: &Dir, seed: &str) -> GatedStep {
        let (script, log) = sh_worker(dir);
        let gate = dir.join("go").to_string_lossy().into_owned();
        create_pending(dir, "e.npy", EXEC_SHAPE, "u1");
        let args: Vec<String> = [
            "exec",
            "e.npy",
            "--distributed",
            "-w",
            "1",
            "--seed",
            seed,
            "--",
            "sh",
            &script,
            &log,
            &gate,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut c = srun(conf, dir, &["-n", "2"]);
        c.arg(mmrun_bin()).args(&args);
        // `Gate` opens the gate when dropped, so a failing test ends the step.
        let gate = Gate(gate);
        let handle = std::thread::spawn(move || run("srun -n 2 mmrun exec --distributed", c, STEP));
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = || {
            fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("go.started."))
                .count()
        };
        while started() < 2 {
            if Instant::now() > deadline || handle.is_finished() {
                drop(gate);
                let r = handle.join().unwrap();
                panic!("both ranks' workers did not start: {}", r.describe());
            }
            sleep(Duration::from_millis(20));
        }
        GatedStep {
            handle,
            gate,
            args,
            log,
        }
    }

    /// Opens the gate and waits for the step.
    fn finish(self) -> (Run, String) {
        drop(self.gate);
        (self.handle.join().unwrap(), self.log)
    }
}

#[test]
fn srun_exec_ranks_hold_their_partitions_until_they_finish() {
    let _g = serial();
    let test = "srun_exec_ranks_hold_their_partitions_until_they_finish";
    let Some(conf) = slurm(test) else {
        return;
    };
    let dir = Dir::new();
    let step = GatedStep::start(&conf, &dir, "2");
    // While the ranks run: commit waits for them (75), and the same rank
    // started twice — the very same command — is refused (75).
    let early = mmrun(&dir, &["commit", "e.npy"]);
    assert_eq!(
        early.code(),
        Some(75),
        "commit while ranks run: {}",
        early.describe()
    );
    assert!(
        !dir.join("e.npy").exists(),
        "commit published e.npy while ranks ran"
    );
    let mut args: Vec<&str> = step.args.iter().map(String::as_str).collect();
    args.splice(3..3, ["--shard", "0/2"]);
    let mut again = dir.cmd(&args);
    clean_env(&mut again);
    let twice = run("rank 0 of 2 a second time", again, Duration::from_secs(20));
    assert_eq!(
        twice.code(),
        Some(75),
        "rank 0 started twice: {}",
        twice.describe()
    );
    let (step, log) = step.finish();
    step.ok();
    assert_partitions(&dir, "e.npy", 2, EXEC_ROWS, 4096, 4096);
    commit(&dir, "e.npy");
    assert_exec_pattern(&dir, "e.npy");
    assert_worker_log(&log, 2, EXEC_ROWS);
}

/// Slurm's checkpoint signal reaches every process of a step — with
/// `srun --signal=USR1@60`, `scancel -s USR1`, or srun passing on the USR1
/// that `#SBATCH --signal=B:USR1@60` sent the batch shell (the example
/// script): slurmstepd signals the whole step, so mmrun's workers get it
/// too. design.md: SIGUSR1 makes the journal durable; it must not fail the run.
#[test]
fn srun_step_wide_usr1_checkpoint_does_not_fail_the_ranks() {
    let _g = serial();
    let test = "srun_step_wide_usr1_checkpoint_does_not_fail_the_ranks";
    let Some(conf) = slurm(test) else {
        return;
    };
    let dir = Dir::new();
    let step = GatedStep::start(&conf, &dir, "4");
    let mut c = slurm_cmd(&conf, "scancel");
    c.args(["-s", "USR1", "-n", JOB_NAME]);
    run("scancel -s USR1 (every process of the step)", c, STEP).ok();
    // Delivery is asynchronous (slurmctld -> slurmd -> slurmstepd).
    sleep(Duration::from_secs(1));
    let (step, _log) = step.finish();
    assert!(
        step.success(),
        "a step-wide SIGUSR1 (Slurm's checkpoint signal) failed the ranks: {}",
        step.describe()
    );
    commit(&dir, "e.npy");
    assert_exec_pattern(&dir, "e.npy");
}

/// Creates the file the sh worker waits for when dropped.
struct Gate(String);

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = fs::write(&self.0, b"");
    }
}

/// `sbatch --wait -J mmrun-test -D DIR -o DIR/job.out ARGS`; returns the run
/// and the job's output.
fn sbatch(conf: &Path, dir: &Dir, logs: &Dir, args: &[&str]) -> (Run, String) {
    let out = logs.join("job.out");
    let mut c = slurm_cmd(conf, "sbatch");
    c.current_dir(dir.path())
        .args(["--wait", "-J", JOB_NAME, "-t", "5", "-D"])
        .arg(dir.path())
        .arg("-o")
        .arg(&out)
        .args(args);
    let r = run(
        &format!("sbatch --wait {}", args.join(" ")),
        c,
        Duration::from_secs(90),
    );
    let text = fs::read_to_string(&out).unwrap_or_default();
    (r, text)
}

#[test]
fn sbatch_example_script_creates_fills_and_commits() {
    let _g = serial();
    let test = "sbatch_example_script_creates_fills_and_commits";
    let Some(conf) = slurm(test) else {
        return;
    };
    let dir = Dir::new();
    let logs = Dir::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/slurm/fill.sbatch");
    let (shape, dtype, seed) = ("512,1024", "f4", "31");
    let bin = mmrun_bin();
    let export = format!("--export=ALL,MMRUN={}", bin.display());
    // The script asks for 2 nodes of 1 task with 8 CPUs; this cluster has
    // one node of `nproc` CPUs (2 here; --ntasks-per-node above the CPUs is
    // refused even with -O), so: 2 tasks of 1 CPU on 1 node.
    let (job, out) = sbatch(
        &conf,
        &dir,
        &logs,
        &[
            &export,
            "-N",
            "1",
            "-n",
            "2",
            "--ntasks-per-node=2",
            "-c",
            "1",
            script.to_str().unwrap(),
            "b.npy",
            shape,
            dtype,
            seed,
        ],
    );
    assert!(
        job.success(),
        "sbatch --wait of the example failed: {}\njob output:\n{out}",
        job.describe()
    );
    assert!(
        out.contains("published"),
        "the job should commit b.npy:\n{out}"
    );
    for leftover in [
        ".b.npy.mmrun-partial",
        ".b.npy.mmrun-journal",
        ".b.npy.mmrun-journal.d",
    ] {
        assert!(
            !dir.join(leftover).exists(),
            "{leftover} left after the job:\n{out}"
        );
    }
    assert_same_as_local_fill(&dir, "b.npy", shape, dtype, seed);
}

#[test]
fn sbatch_body_outside_srun_is_refused() {
    let _g = serial();
    let test = "sbatch_body_outside_srun_is_refused";
    let Some(conf) = slurm(test) else {
        return;
    };
    let dir = Dir::new();
    let logs = Dir::new();
    create_pending(&dir, "t.npy", "512,1024", "f4");
    let before = dir.snapshot();
    // Two tasks: the batch body has SLURM_PROCID=0 and SLURM_NTASKS=2, and
    // trusting them would silently fill half of the rows.
    let body = format!(
        "'{}' fill t.npy --distributed --random uniform --seed 1; echo $? > '{}'",
        mmrun_bin().display(),
        logs.join("rc").display()
    );
    let (job, out) = sbatch(&conf, &dir, &logs, &["-n", "2", "-O", "--wrap", &body]);
    job.ok();
    let rc = fs::read_to_string(logs.join("rc")).unwrap_or_default();
    assert_eq!(
        rc.trim(),
        "2",
        "--distributed in an sbatch body: exit {rc:?}\njob output:\n{out}"
    );
    assert!(
        out.contains("srun"),
        "the error should say to run under srun:\n{out}"
    );
    assert_eq!(
        dir.snapshot(),
        before,
        "a refused rank changed the pending run"
    );
}

/// The data bytes of a `.npy` file in `dir`, after its own header (files
/// built by `create --pending` and by a local run may place data apart).
fn npy_data(dir: &Dir, f: &str) -> Vec<u8> {
    let b = fs::read(dir.join(f)).unwrap();
    let header = u16::from_le_bytes([b[8], b[9]]) as usize + 10;
    b[header..].to_vec()
}

/// `mpirun -n 3` reductions: `--axis 1` ranks write their rows of a pending
/// output that `commit` publishes; `--axis 0` and `all` ranks leave exact
/// partials in `--report out-{rank}.json` that `report merge` combines —
/// both bit for bit what one machine computes.
#[test]
fn mpirun_reductions_across_ranks_equal_a_local_reduce() {
    let _g = serial();
    let test = "mpirun_reductions_across_ranks_equal_a_local_reduce";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    dir.ok(&[
        "fill", "x.npy", "--shape", "40000,24", "--random", "uniform", "--seed", "5",
    ]);

    create_pending(&dir, "rowmean.npy", "40000", "f4");
    let mut c = mpirun(&dir, 3);
    c.arg(mmrun_bin()).args([
        "reduce",
        "x.npy",
        "--op",
        "mean",
        "--axis",
        "1",
        "--out",
        "rowmean.npy",
        "--distributed",
        "-w",
        "2",
    ]);
    run("mpirun -n 3 mmrun reduce --axis 1 --distributed", c, STEP).ok();
    commit(&dir, "rowmean.npy");
    dir.ok(&[
        "reduce",
        "x.npy",
        "--op",
        "mean",
        "--axis",
        "1",
        "--out",
        "local1.npy",
    ]);

    for (op, axis, tag) in [("var", "0", "v0"), ("sum", "all", "sall")] {
        let mut c = mpirun(&dir, 3);
        let report = format!("{tag}-{{rank}}.json");
        c.arg(mmrun_bin()).args([
            "reduce",
            "x.npy",
            "--op",
            op,
            "--axis",
            axis,
            "--distributed",
            "-w",
            "2",
            "--report",
            &report,
        ]);
        run(
            "mpirun -n 3 mmrun reduce --axis 0|all --distributed",
            c,
            STEP,
        )
        .ok();
    }
    let reports =
        |tag: &str| -> Vec<String> { (0..3).map(|r| format!("{tag}-{r}.json")).collect() };
    let mut merge = vec!["report", "merge", "--out", "merged0.npy"];
    let v0 = reports("v0");
    merge.extend(v0.iter().map(String::as_str));
    dir.ok(&merge);
    dir.ok(&[
        "reduce",
        "x.npy",
        "--op",
        "var",
        "--axis",
        "0",
        "--out",
        "local0.npy",
        "-w",
        "1",
    ]);
    let mut merge = vec!["report", "merge"];
    let sall = reports("sall");
    merge.extend(sall.iter().rev().map(String::as_str));
    let merged_all = dir.ok(&merge);
    let local_all = dir.ok(&["reduce", "x.npy", "--op", "sum", "--axis", "all", "-w", "3"]);
    assert_eq!(
        merged_all.stdout, local_all.stdout,
        "the merged sum differs from the local one"
    );

    assert!(
        npy_data(&dir, "rowmean.npy") == npy_data(&dir, "local1.npy"),
        "axis 1 across ranks differs"
    );
    assert!(
        npy_data(&dir, "merged0.npy") == npy_data(&dir, "local0.npy"),
        "axis 0 across ranks differs"
    );

    // A missing rank's report is named, and no result is given.
    let out = dir
        .cmd(&[
            "report",
            "merge",
            "v0-0.json",
            "v0-2.json",
            "--out",
            "partial.npy",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("rank(s) 1"));
    assert!(!dir.join("partial.npy").exists());
}

/// `mpirun -n 3 mmrun apply --distributed`, in place on a pending file and
/// into a pending output of another dtype: the same bytes as a local apply.
#[test]
fn mpirun_apply_in_place_and_into_a_pending_output() {
    let _g = serial();
    let test = "mpirun_apply_in_place_and_into_a_pending_output";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    create_pending(&dir, "a.npy", "40000,8", "f4");
    let mut c = mpirun(&dir, 3);
    c.arg(mmrun_bin()).args([
        "apply",
        "a.npy",
        "--expr",
        "i * 8 + j",
        "--distributed",
        "-w",
        "2",
    ]);
    run("mpirun -n 3 mmrun apply --distributed (in place)", c, STEP).ok();
    commit(&dir, "a.npy");
    create_pending(&dir, "half.npy", "40000,8", "f8");
    let mut c = mpirun(&dir, 3);
    c.arg(mmrun_bin()).args([
        "apply",
        "a.npy",
        "--expr",
        "x / 2",
        "--out",
        "half.npy",
        "--distributed",
    ]);
    run("mpirun -n 3 mmrun apply --out --distributed", c, STEP).ok();
    commit(&dir, "half.npy");
    dir.ok(&["fill", "local.npy", "--shape", "40000,8", "--arange"]);
    dir.ok(&[
        "apply",
        "local.npy",
        "--expr",
        "x / 2",
        "--out",
        "local-half.npy",
        "--dtype",
        "f8",
    ]);
    assert!(
        npy_data(&dir, "a.npy") == npy_data(&dir, "local.npy"),
        "in-place apply across ranks differs"
    );
    assert!(
        npy_data(&dir, "half.npy") == npy_data(&dir, "local-half.npy"),
        "apply --out across ranks differs"
    );
}

/// `examples/mpi/reduce-job.sh` end to end under mpirun, as a user would run
/// it: fill across 4 ranks, commit, mean over axis 0 from the ranks'
/// reports, mean of each row into a pending output. The launcher's flags
/// come through the script's `MPIRUN` override (`--allow-run-as-root` only
/// when the tests run as root), mmrun through `MMRUN`. Every output is
/// checked bit for bit against a local mmrun, and against NumPy.
#[test]
fn mpirun_reduce_job_example_script() {
    let _g = serial();
    let test = "mpirun_reduce_job_example_script";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mpi/reduce-job.sh");
    let (shape, dtype, seed) = ("40000,24", "f4", "13");
    let mut launcher = "mpirun --oversubscribe".to_string();
    if util::is_root() {
        launcher.push_str(" --allow-run-as-root");
    }
    let mut c = Command::new("bash");
    clean_env(&mut c);
    if let Some((shim, marks)) = nfs_shim_marked() {
        launcher.push_str(&format!(
            " -x LD_PRELOAD={} -x MMRUN_SHIM_LOADED_DIR={}",
            shim.display(),
            marks.display()
        ));
        c.env("LD_PRELOAD", shim);
    }
    c.current_dir(dir.path())
        .env("MMRUN", mmrun_bin())
        .env("MPIRUN", &launcher)
        .env("RANKS", "4")
        .env("WORKERS", "1")
        .arg(&script)
        .args(["job.npy", shape, dtype, seed]);
    let job = run("examples/mpi/reduce-job.sh", c, Duration::from_secs(240)).ok();
    assert!(job.stderr.contains("done: job.npy"), "{}", job.describe());
    let mut names = dir.names();
    names.sort();
    assert_eq!(
        names,
        vec![
            "job.mean0-0.json",
            "job.mean0-1.json",
            "job.mean0-2.json",
            "job.mean0-3.json",
            "job.mean0.npy",
            "job.npy",
            "job.rowmean.npy",
        ],
        "what the job left (no partial file or journal may remain)"
    );
    assert_same_as_local_fill(&dir, "job.npy", shape, dtype, seed);

    for (axis, out) in [("0", "local0.npy"), ("1", "local1.npy")] {
        mmrun(
            &dir,
            &[
                "reduce", "job.npy", "--op", "mean", "--axis", axis, "--out", out, "-w", "2",
            ],
        )
        .ok();
    }
    assert!(
        npy_data(&dir, "job.mean0.npy") == npy_data(&dir, "local0.npy"),
        "the merged axis-0 mean differs from a local mmrun reduce"
    );
    assert!(
        npy_data(&dir, "job.rowmean.npy") == npy_data(&dir, "local1.npy"),
        "the ranks' per-row means differ from a local mmrun reduce"
    );

    let Some(py) = util::require_numpy(test) else {
        return;
    };
    let out = util::python(
        &py,
        dir.path(),
        r#"
import numpy as np
a = np.load("job.npy").astype(np.float64)
m = np.load("job.mean0.npy")
r = np.load("job.rowmean.npy")
assert m.dtype == np.float32 and m.shape == (24,), (m.dtype, m.shape)
assert r.dtype == np.float32 and r.shape == (40000,), (r.dtype, r.shape)
# float32 results of float64 sums: within float32 rounding of NumPy's.
assert np.allclose(m, a.mean(axis=0), rtol=1e-6, atol=0), abs(m - a.mean(axis=0)).max()
assert np.allclose(r, a.mean(axis=1), rtol=1e-6, atol=0), abs(r - a.mean(axis=1)).max()
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}
