//! Distributed runs on clusters as they are: NFS's lock semantics, shapes
//! whose rows cannot be split at 64 KiB, many ranks.
//!
//! NFS cannot be mounted here, so `tests/data/nfs_lock_shim.c` (built with
//! `cc`, loaded with `LD_PRELOAD`) gives processes the Linux NFS client's
//! lock semantics: `flock` becomes a whole-file `fcntl` lock of the open
//! file description, and `MMRUN_SHIM_NOLOCK=1` makes every lock request
//! fail with ENOLCK (an NFS v3 mount whose lock manager does not answer;
//! Lustre without `-o flock` fails with ENOSYS alike). `tests/data/lock_probe.c` holds and probes locks from outside
//! mmrun. The launcher helpers and their one-at-a-time lock come from
//! [`super::distributed`].

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::distributed::{
    assert_same_as_local_fill, commit, create_pending, mmrun, mpirun, nfs_variants, open_mpi, run,
    serial, STEP,
};
use crate::util::{self, mmrun_bin, Dir};

/// The shim and the probe, built once: `None` (reported) without `cc`.
struct Tools {
    shim: PathBuf,
    probe: PathBuf,
}

fn tools(test: &str) -> Option<&'static Tools> {
    static TOOLS: OnceLock<Option<Tools>> = OnceLock::new();
    let t = TOOLS.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?.keep();
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        let shim = dir.join("nfs_lock_shim.so");
        let probe = dir.join("lock_probe");
        let built = |args: &[&std::ffi::OsStr]| {
            Command::new("cc")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        let ok = built(&[
            "-shared".as_ref(),
            "-fPIC".as_ref(),
            "-O".as_ref(),
            "-o".as_ref(),
            shim.as_os_str(),
            data.join("nfs_lock_shim.c").as_os_str(),
        ]) && built(&[
            "-O".as_ref(),
            "-o".as_ref(),
            probe.as_os_str(),
            data.join("lock_probe.c").as_os_str(),
        ]);
        ok.then_some(Tools { shim, probe })
    });
    if t.is_none() {
        util::missing_tool(test, "a C compiler (cc) to build the NFS lock shim");
    }
    t.as_ref()
}

/// The NFS lock shim's library, built once (`None`, reported, without `cc`).
pub(crate) fn nfs_shim_lib(test: &str) -> Option<PathBuf> {
    tools(test).map(|t| t.shim.clone())
}

/// `mmrun ARGS` in `dir` with the shim preloaded (`nolock`: every lock
/// request fails with ENOLCK).
fn shimmed(dir: &Dir, t: &Tools, nolock: bool, args: &[&str]) -> std::process::Output {
    let mut c = dir.cmd(args);
    c.env("LD_PRELOAD", &t.shim);
    if nolock {
        c.env("MMRUN_SHIM_NOLOCK", "1");
    }
    c.output().expect("run mmrun")
}

/// `mpirun -n N` with the shim preloaded into every rank (not mpirun).
fn mpirun_shimmed(dir: &Dir, t: &Tools, n: u32) -> Command {
    let mut c = mpirun(dir, n);
    c.arg("-x").arg(format!("LD_PRELOAD={}", t.shim.display()));
    c
}

/// A lock held by `lock_probe hold` until dropped.
struct Held(Child);

impl Held {
    /// Holds an OFD lock on `byte` of `file` (`write`: exclusive).
    fn new(t: &Tools, file: &Path, byte: u64, write: bool) -> Held {
        let mut child = Command::new(&t.probe)
            .arg("hold")
            .arg(file)
            .arg(byte.to_string())
            .arg(if write { "w" } else { "r" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start lock_probe");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "locked",
            "lock_probe could not lock byte {byte}"
        );
        Held(child)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn journal(dir: &Dir, file: &str) -> PathBuf {
    dir.join(&format!(".{file}.mmrun-journal"))
}

/// The shim does what the NFS client does: a `flock` conflicts with another
/// open file's byte lock (without the shim, locally, it does not).
#[test]
fn nfs_shim_turns_flock_into_a_whole_file_byte_lock() {
    let Some(t) = tools("nfs_shim_turns_flock_into_a_whole_file_byte_lock") else {
        return;
    };
    let dir = Dir::new();
    let f = dir.join("f");
    fs::write(&f, b"x").unwrap();
    let _held = Held::new(t, &f, 7, true);
    let probe = |shim: bool| {
        let mut c = Command::new(&t.probe);
        c.arg("flock").arg(&f);
        if shim {
            c.env("LD_PRELOAD", &t.shim);
        }
        String::from_utf8(c.output().unwrap().stdout).unwrap()
    };
    assert_eq!(
        probe(false).trim(),
        "taken",
        "flock and byte locks are separate locally"
    );
    assert_eq!(
        probe(true).trim(),
        "held",
        "under the shim flock is a whole-file byte lock"
    );
}

/// Today: under NFS lock semantics every rank after the first exited 75
/// (its `flock(LOCK_SH)` met the first rank's byte lock). With byte locks
/// only, four ranks fill, three apply in place, and commit publishes the
/// same bytes as a local run.
#[test]
fn mpirun_ranks_under_nfs_lock_semantics_fill_apply_and_commit() {
    let _g = serial();
    let test = "mpirun_ranks_under_nfs_lock_semantics_fill_apply_and_commit";
    let Some(t) = tools(test) else { return };
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    let (shape, dtype, seed) = ("512,1024", "f4", "11");
    create_pending(&dir, "a.npy", shape, dtype);
    let mut c = mpirun_shimmed(&dir, t, 4);
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
    run("mpirun -n 4 mmrun fill --distributed (NFS locks)", c, STEP).ok();
    let out = shimmed(&dir, t, false, &["commit", "a.npy"]);
    assert!(out.status.success(), "commit: {}", util::stderr(&out));
    assert_same_as_local_fill(&dir, "a.npy", shape, dtype, seed);

    // In place on a pending file, three ranks, against a local apply.
    let expr = "i * 1024 + j";
    create_pending(&dir, "b.npy", shape, dtype);
    let mut c = mpirun_shimmed(&dir, t, 3);
    c.arg(mmrun_bin())
        .args(["apply", "b.npy", "--expr", expr, "--distributed"]);
    run("mpirun -n 3 mmrun apply --distributed (NFS locks)", c, STEP).ok();
    commit(&dir, "b.npy");
    mmrun(
        &dir,
        &["create", "c.npy", "--shape", shape, "--dtype", dtype],
    )
    .ok();
    mmrun(&dir, &["apply", "c.npy", "--expr", expr]).ok();
    assert_eq!(
        fs::read(dir.join("b.npy")).unwrap(),
        fs::read(dir.join("c.npy")).unwrap(),
        "3-rank apply in place under NFS locks differs from a local apply"
    );
}

/// The lock protocol, held from outside mmrun: a rank holds the run byte
/// shared and its own rank byte exclusive; commit needs the run byte
/// exclusive. Checked with and without NFS semantics.
#[test]
fn ranks_and_commit_exclude_each_other_by_byte_locks() {
    let Some(t) = tools("ranks_and_commit_exclude_each_other_by_byte_locks") else {
        return;
    };
    for nfs in [false, true] {
        let dir = Dir::new();
        create_pending(&dir, "a.npy", "64,1024", "f4");
        let j = journal(&dir, "a.npy");
        let rank = |r: &str| -> std::process::Output {
            let args = [
                "fill",
                "a.npy",
                "--distributed",
                "--rank",
                r,
                "--ranks",
                "2",
                "--value",
                "3",
            ];
            if nfs {
                shimmed(&dir, t, false, &args)
            } else {
                dir.run(&args)
            }
        };
        {
            // Rank 1 "running" elsewhere: rank 1 again is busy, rank 0 runs.
            let _run = Held::new(t, &j, 0, false);
            let _rank1 = Held::new(t, &j, 2, true);
            util::assert_refused(&rank("1"), 75, "rank 1 of 2 is already running");
            let out = rank("0");
            assert!(
                out.status.success(),
                "rank 0 (nfs {nfs}): {}",
                util::stderr(&out)
            );
            let before = dir.snapshot();
            let out = if nfs {
                shimmed(&dir, t, false, &["commit", "a.npy"])
            } else {
                dir.run(&["commit", "a.npy"])
            };
            util::assert_refused(&out, 75, "still running");
            assert_eq!(before, dir.snapshot(), "a refused commit changed files");
        }
        {
            // commit (or create) holding the run byte: ranks wait their turn.
            let _commit = Held::new(t, &j, 0, true);
            util::assert_refused(&rank("1"), 75, "holds it");
        }
        assert!(rank("1").status.success());
        dir.ok(&["commit", "a.npy"]);
    }
}

/// Today a file system that refuses locks got a warning and the run went
/// on unprotected (ranks silently took "no lock" as "locked"). Now every
/// command that locks refuses — one line naming the file system type and
/// `--no-lock`, nothing created or changed — and `--no-lock` works.
#[test]
fn file_system_refusing_locks_is_refused_naming_it_and_no_lock() {
    let Some(t) = tools("file_system_refusing_locks_is_refused_naming_it_and_no_lock") else {
        return;
    };
    let dir = Dir::new();
    let fs_type = {
        let out = dir.ok(&["fill", "p.npy", "--shape", "8,8", "--value", "1", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["filesystem"].as_str().unwrap().to_string()
    };
    create_pending(&dir, "q.npy", "8,1024", "f4");
    let cases: &[&[&str]] = &[
        &["fill", "new.npy", "--shape", "8,8", "--value", "1"],
        &["fill", "p.npy", "--value", "2"],
        &["create", "--pending", "r.npy", "--shape", "8,8"],
        &[
            "fill",
            "q.npy",
            "--distributed",
            "--rank",
            "0",
            "--ranks",
            "1",
            "--value",
            "1",
        ],
        &["commit", "q.npy"],
    ];
    for args in cases {
        let before = dir.snapshot();
        let out = shimmed(&dir, t, true, args);
        util::assert_refused(&out, 2, "refuses byte-range locks");
        let err = util::stderr(&out);
        assert!(err.contains("--no-lock"), "{args:?}: {err}");
        assert!(
            err.contains(&format!("the {fs_type} file system")),
            "{args:?}: {err}"
        );
        assert_eq!(
            before,
            dir.snapshot(),
            "{args:?} changed files although refused"
        );
    }
    for args in cases {
        let mut args = args.to_vec();
        args.push("--no-lock");
        let out = shimmed(&dir, t, true, &args);
        assert!(out.status.success(), "{args:?}: {}", util::stderr(&out));
    }
    assert!(dir.join("q.npy").exists() && dir.join("new.npy").exists());
}

/// Today `create --pending` made a 1003×257 f4 file that no rank count
/// above 1 could fill ("cannot be split into 4 partitions"); a 7×1000003 u1
/// file neither. Now fill and apply split the elements at 64 KiB
/// boundaries, so any rank count gives the bytes of a local run.
#[test]
fn mpirun_any_shape_on_any_rank_count_fill_and_apply_equal_a_local_run() {
    let _g = serial();
    let test = "mpirun_any_shape_on_any_rank_count_fill_and_apply_equal_a_local_run";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    for (shape, dtype) in [("1003,257", "f4"), ("7,1000003", "u1")] {
        let out = dir.ok(&[
            "create", "l.npy", "--shape", shape, "--dtype", dtype, "--force",
        ]);
        drop(out);
        mmrun(&dir, &["apply", "l.npy", "--expr", "i * 3 + j"]).ok();
        for n in [1u32, 2, 3, 4, 7] {
            let a = format!("a{n}-{dtype}.npy");
            let out = dir.ok(&[
                "create",
                "--pending",
                &a,
                "--shape",
                shape,
                "--dtype",
                dtype,
            ]);
            if n == 1 {
                // It says at creation what whole-row kernels can do.
                assert!(
                    util::stderr(&out).contains("at most 1 rank(s)"),
                    "{}",
                    util::stderr(&out)
                );
            }
            let mut c = mpirun(&dir, n);
            c.arg(mmrun_bin()).args([
                "fill",
                &a,
                "--distributed",
                "--random",
                "uniform",
                "--seed",
                "13",
                "-w",
                "1",
            ]);
            run(
                &format!("mpirun -n {n} mmrun fill {shape} {dtype}"),
                c,
                STEP,
            )
            .ok();
            commit(&dir, &a);
            assert_same_as_local_fill(&dir, &a, shape, dtype, "13");

            let b = format!("b{n}-{dtype}.npy");
            create_pending(&dir, &b, shape, dtype);
            let mut c = mpirun(&dir, n);
            c.arg(mmrun_bin()).args([
                "apply",
                &b,
                "--expr",
                "i * 3 + j",
                "--distributed",
                "-w",
                "1",
            ]);
            run(
                &format!("mpirun -n {n} mmrun apply {shape} {dtype}"),
                c,
                STEP,
            )
            .ok();
            commit(&dir, &b);
            assert!(
                fs::read(dir.join(&b)).unwrap() == fs::read(dir.join("l.npy")).unwrap(),
                "{n}-rank apply of {shape} {dtype} differs from a local apply"
            );
        }
    }
}

/// Today convert had no `--distributed` and its kernel was not
/// element-wise. Now ranks split it like fill and apply: 1003×257 f4 → f8
/// and 7×1000003 u1 → f4 on 1, 2, 3, 4 and 7 ranks, and a big-endian
/// Fortran-order input on 2 and 3, give the bytes of a local convert, which
/// are NumPy's `astype`.
#[test]
fn mpirun_convert_splits_any_shape_on_any_rank_count() {
    let _g = serial();
    let test = "mpirun_convert_splits_any_shape_on_any_rank_count";
    if !open_mpi(test) {
        return;
    }
    let Some(py) = util::require_numpy(test) else {
        return;
    };
    let dir = Dir::new();
    dir.ok(&[
        "fill",
        "in-f4.npy",
        "--shape",
        "1003,257",
        "--dtype",
        "f4",
        "--random",
        "normal",
        "--seed",
        "5",
    ]);
    dir.ok(&[
        "create",
        "in-u1.npy",
        "--shape",
        "7,1000003",
        "--dtype",
        "u1",
    ]);
    mmrun(&dir, &["apply", "in-u1.npy", "--expr", "i * 3 + j"]).ok();
    util::python(
        &py,
        dir.path(),
        "import numpy as np\n\
         a = np.load('in-f4.npy')\n\
         np.save('in-fb.npy', np.asfortranarray(a.astype('>f4') * 3))\n",
    );
    let cases: [(&str, &str, &str, &[u32]); 3] = [
        ("in-f4.npy", "1003,257", "f8", &[1, 2, 3, 4, 7]),
        ("in-u1.npy", "7,1000003", "f4", &[1, 2, 3, 4, 7]),
        ("in-fb.npy", "1003,257", "f8", &[2, 3]),
    ];
    let mut check = String::from("import numpy as np\n");
    for (input, shape, dtype, ranks) in cases {
        let local = format!("local-{input}");
        dir.ok(&["convert", input, &local, "--dtype", dtype]);
        check += &format!(
            "w = np.load('{input}').astype('{dtype}')\n\
             assert np.load('{local}').tobytes() == w.tobytes(), '{local}'\n"
        );
        for &n in ranks {
            let out = format!("r{n}-{input}");
            create_pending(&dir, &out, shape, dtype);
            let mut c = mpirun(&dir, n);
            c.arg(mmrun_bin())
                .args(["convert", input, &out, "--distributed", "-w", "1"]);
            run(&format!("mpirun -n {n} mmrun convert {input}"), c, STEP).ok();
            commit(&dir, &out);
            assert!(
                fs::read(dir.join(&out)).unwrap() == fs::read(dir.join(&local)).unwrap(),
                "{n}-rank convert of {input} ({shape}) to {dtype} differs from a local convert"
            );
        }
    }
    util::python(&py, dir.path(), &check);
}

/// A rank refuses a pending OUT whose shape is not IN's, naming the
/// `create --pending` that makes the right one; nothing changes.
#[test]
fn convert_distributed_refuses_an_output_of_another_shape() {
    let dir = Dir::new();
    dir.ok(&["create", "in.npy", "--shape", "64,2048", "--dtype", "f4"]);
    create_pending(&dir, "out.npy", "64,2,1024", "f8");
    let before = dir.snapshot();
    let out = dir.run(&[
        "convert",
        "in.npy",
        "out.npy",
        "--distributed",
        "--rank",
        "0",
        "--ranks",
        "2",
    ]);
    util::assert_refused(
        &out,
        2,
        "make OUT with mmrun create --pending out.npy --shape 64,2048 --dtype float64 --force",
    );
    assert_eq!(before, dir.snapshot(), "a refused rank changed files");
    // The advice works.
    dir.ok(&[
        "create",
        "--pending",
        "out.npy",
        "--shape",
        "64,2048",
        "--dtype",
        "float64",
        "--force",
    ]);
    for r in ["0", "1"] {
        dir.ok(&[
            "convert",
            "in.npy",
            "out.npy",
            "--distributed",
            "--rank",
            r,
            "--ranks",
            "2",
        ]);
    }
    dir.ok(&["commit", "out.npy"]);
}

/// Kernels that need whole rows are refused at the rank, before any work,
/// naming how many ranks can run them.
#[test]
fn whole_row_kernels_name_the_rank_counts_that_split_the_file() {
    let dir = Dir::new();
    create_pending(&dir, "a.npy", "1003,257", "f4");
    let before = dir.snapshot();
    let out = dir.run(&[
        "exec",
        "a.npy",
        "--distributed",
        "--rank",
        "0",
        "--ranks",
        "2",
        "--seed",
        "1",
        "--",
        "true",
    ]);
    util::assert_refused(&out, 2, "at most 1 rank(s) can run it");
    assert_eq!(before, dir.snapshot(), "a refused rank changed files");
}

/// 64 oversubscribed ranks fill a small file and commit it.
#[test]
fn mpirun_64_ranks_fill_and_commit() {
    let _g = serial();
    let test = "mpirun_64_ranks_fill_and_commit";
    if !open_mpi(test) {
        return;
    }
    let dir = Dir::new();
    let (shape, dtype, seed) = ("1024,1024", "f4", "64");
    create_pending(&dir, "a.npy", shape, dtype);
    let mut c = mpirun(&dir, 64);
    c.arg(mmrun_bin()).args([
        "fill",
        "a.npy",
        "--distributed",
        "--random",
        "uniform",
        "--seed",
        seed,
        "-w",
        "1",
    ]);
    run("mpirun -n 64 mmrun fill --distributed", c, STEP * 3).ok();
    let records = fs::read_dir(dir.join(".a.npy.mmrun-journal.d"))
        .unwrap()
        .count();
    assert_eq!(records, 64, "one record per rank");
    commit(&dir, "a.npy");
    assert_same_as_local_fill(&dir, "a.npy", shape, dtype, seed);
}

// ------------------------------------------------------------ Slurm stops

/// The exec worker of [`JOB`]: writes byte `row % 251` over each of its
/// 4096-byte rows (the pattern `distributed::assert_exec_pattern` checks).
/// With `GATE` set it first creates `$GATE.started.<pid>` and waits for
/// `$GATE` (which these tests never create: Slurm stops the job there).
const GATED_WORKER: &str = r#"
if [ -n "${GATE-}" ]; then
    : > "$GATE.started.$$"
    i=0
    while [ ! -e "$GATE" ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 2400 ] || exit 3
    done
fi
r=$MMRUN_ROW_START
while [ "$r" -lt "$MMRUN_ROW_END" ]; do
    head -c 4096 /dev/zero | tr '\000' "\\$(printf %03o $((r % 251)))" |
        dd of="$MMRUN_FILE" bs=4096 oflag=seek_bytes seek=$((MMRUN_DATA_OFFSET + r * 4096)) conv=notrunc status=none || exit 4
    r=$((r + 1))
done
"#;

/// The batch script: create the pending file once, run two ranks with
/// `--resume` (so a requeued or resubmitted job finishes what a stopped one
/// left), commit. `GATED=1` gates the first run's workers.
const JOB: &str = r#"#!/bin/bash
set -u
echo "run ${SLURM_RESTART_COUNT:-0}"
[ -e .e.npy.mmrun-journal ] || "$MMRUN" create --pending e.npy --shape 192,4096 --dtype u1 || exit 1
if [ "${GATED-}" = 1 ] && [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then export GATE="$PWD/go"; fi
srun -n 2 "$MMRUN" exec e.npy --distributed --resume -w 1 --seed 7 -- sh "$PWD/worker.sh" || exit 1
exec "$MMRUN" commit e.npy
"#;

/// Submits [`JOB`] in `dir` (`extra` sbatch options first); returns its id.
fn submit(conf: &Path, dir: &Dir, extra: &[&str], gated: bool) -> String {
    let mut c = crate::distributed::slurm_cmd(conf, "sbatch");
    c.current_dir(dir.path())
        .args(["--parsable", "-J", crate::distributed::JOB_NAME, "-t", "5"])
        .args(["-n", "2", "-c", "1", "--open-mode=append", "-D"])
        .arg(dir.path())
        .arg("-o")
        .arg(dir.join("job.out"))
        .arg(format!(
            "--export=ALL,MMRUN={},GATED={}",
            mmrun_bin().display(),
            if gated { 1 } else { 0 }
        ))
        .args(extra)
        .arg(dir.join("job.sh"));
    run("sbatch", c, STEP).ok().stdout.trim().to_string()
}

/// Waits until both ranks' workers wait at the gate.
fn wait_gated(dir: &Dir, job: &str) {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let started = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("go.started."))
            .count();
        if started >= 2 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job}: the workers never started:\n{}",
            fs::read_to_string(dir.join("job.out")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Waits until `job` is in `state` (as `squeue -o %T` says).
fn wait_state(conf: &Path, job: &str, state: &str) {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let mut c = crate::distributed::slurm_cmd(conf, "squeue");
        c.args(["-h", "-o", "%T", "-j", job]);
        let out = c.stdin(Stdio::null()).output().unwrap();
        let now = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if now == state {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} is {now:?}, never {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits until `job` has left the queue.
fn wait_gone(conf: &Path, dir: &Dir, job: &str) {
    let deadline = std::time::Instant::now() + STEP * 5;
    loop {
        let mut c = crate::distributed::slurm_cmd(conf, "squeue");
        c.args(["-h", "-j", job]);
        let out = c.stdin(Stdio::null()).output().unwrap();
        if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            let mut c = crate::distributed::slurm_cmd(conf, "scancel");
            let _ = c.arg(job).status();
            panic!(
                "job {job} still queued:\n{}",
                fs::read_to_string(dir.join("job.out")).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Slurm stops a running job (TERM to every task, KILL after KillWait):
/// by `scontrol requeue` of a `--requeue` job, which then runs again and
/// resumes, and by `scancel`, after which the same job submitted again
/// resumes. Both end in a committed file equal to an undisturbed run.
#[test]
fn slurm_requeue_and_scancel_mid_run_then_resume_equal_an_undisturbed_run() {
    let _g = serial();
    let test = "slurm_requeue_and_scancel_mid_run_then_resume_equal_an_undisturbed_run";
    let Some(conf) = crate::distributed::slurm(test) else {
        return;
    };
    for requeue in [true, false] {
        let dir = Dir::new();
        fs::write(dir.join("worker.sh"), GATED_WORKER).unwrap();
        fs::write(dir.join("job.sh"), JOB).unwrap();
        let job = submit(
            &conf,
            &dir,
            if requeue { &["--requeue"] } else { &[] },
            true,
        );
        wait_gated(&dir, &job);
        if requeue {
            let mut c = crate::distributed::slurm_cmd(&conf, "scontrol");
            c.args(["requeue", &job]);
            run("scontrol requeue", c, STEP).ok();
            // A requeued job waits about two minutes before it may start
            // again: once it is pending, let it start now.
            wait_state(&conf, &job, "PENDING");
            let mut c = crate::distributed::slurm_cmd(&conf, "scontrol");
            c.args(["update", &format!("JobId={job}"), "StartTime=now"]);
            run("scontrol update StartTime=now", c, STEP).ok();
            wait_gone(&conf, &dir, &job);
        } else {
            let mut c = crate::distributed::slurm_cmd(&conf, "scancel");
            c.arg(&job);
            run("scancel", c, STEP).ok();
            wait_gone(&conf, &dir, &job);
            assert!(!dir.join("e.npy").exists(), "a cancelled job published");
            assert!(
                dir.join(".e.npy.mmrun-journal").exists(),
                "the pending run is kept"
            );
            let again = submit(&conf, &dir, &[], false);
            wait_gone(&conf, &dir, &again);
        }
        let out = fs::read_to_string(dir.join("job.out")).unwrap_or_default();
        assert!(out.contains("published e.npy"), "requeue {requeue}:\n{out}");
        if requeue {
            assert!(out.contains("run 1"), "the job did not run again:\n{out}");
        }
        crate::distributed::assert_exec_pattern(&dir, "e.npy");
    }
}

/// The fill job of the time-limit test: one rank (of one CPU, so that the
/// minute it holds leaves the shared test node a CPU) under srun in the
/// background, the batch shell passing Slurm's `B:USR1` on to them (as
/// `examples/slurm/fill.sbatch` does). `GATED=1` makes worker 0 of the
/// rank hang once it has finished the block past row 300 (a debug-build
/// test hook), so the job is still running at its time limit.
const FILL_JOB: &str = r#"#!/bin/bash
set -u
[ -e .f.npy.mmrun-journal ] || "$MMRUN" create --pending f.npy --shape 4096,1024 --dtype f4 || exit 1
if [ "${GATED-}" = 1 ]; then export __MMRUN_TEST_WORKER_FAULT=0:hang@300; fi
srun -n 1 "$MMRUN" fill f.npy --distributed --resume -w 2 --random uniform --seed 3 &
step=$!
forward_usr1() { echo "USR1 forwarded"; kill -USR1 "$step" 2>/dev/null || true; }
trap forward_usr1 USR1
while kill -0 "$step" 2>/dev/null; do wait "$step" || true; done
rc=0
wait "$step" || rc=$?
[ "$rc" = 0 ] || exit "$rc"
exec "$MMRUN" commit f.npy
"#;

/// Slurm's whole stop sequence at a time limit: `--signal=B:USR1@100` with
/// `-t 2` sends USR1 (mmrun makes its finished rows durable), then at the
/// limit TERM, then KILL after KillWait. The same job submitted again
/// resumes from the durable rows and commits a file equal to a local fill.
/// Takes a little over two minutes.
#[test]
fn slurm_time_limit_usr1_then_term_then_resubmitted_job_resumes() {
    let _g = serial();
    let test = "slurm_time_limit_usr1_then_term_then_resubmitted_job_resumes";
    let Some(conf) = crate::distributed::slurm(test) else {
        return;
    };
    let dir = Dir::new();
    fs::write(dir.join("job.sh"), FILL_JOB).unwrap();
    let submit = |extra: &[&str], gated: bool| -> String {
        let mut c = crate::distributed::slurm_cmd(&conf, "sbatch");
        c.current_dir(dir.path())
            .args(["--parsable", "-J", crate::distributed::JOB_NAME])
            .args(["-n", "1", "-c", "1", "--open-mode=append", "-D"])
            .arg(dir.path())
            .arg("-o")
            .arg(dir.join("job.out"))
            .arg(format!(
                "--export=ALL,MMRUN={},GATED={}",
                mmrun_bin().display(),
                if gated { 1 } else { 0 }
            ))
            .args(extra)
            .arg(dir.join("job.sh"));
        run("sbatch", c, STEP).ok().stdout.trim().to_string()
    };
    // Slurm checks pending signals and limits on a coarse timer: with the
    // signal due 100 s before a 2-minute limit, several checks fall inside
    // the window (with 45 s before a 1-minute limit, one can miss it).
    let job = submit(&["-t", "2", "--signal=B:USR1@100"], true);
    wait_gone(&conf, &dir, &job);
    let out = fs::read_to_string(dir.join("job.out")).unwrap_or_default();
    assert!(
        out.contains("USR1 forwarded"),
        "no USR1 before the limit:\n{out}"
    );
    assert!(
        out.contains("TIME LIMIT"),
        "the job did not reach its limit:\n{out}"
    );
    assert!(
        !dir.join("f.npy").exists(),
        "a timed-out job published:\n{out}"
    );
    let rec = dir.join(".f.npy.mmrun-journal.d/rank-0-of-1");
    let text = fs::read_to_string(&rec).unwrap_or_default();
    assert!(
        text.contains("\"durable\""),
        "the rank made nothing durable on USR1:\n{text}\njob:\n{out}"
    );
    let again = submit(&["-t", "5"], false);
    wait_gone(&conf, &dir, &again);
    let out = fs::read_to_string(dir.join("job.out")).unwrap_or_default();
    assert!(out.contains("published f.npy"), "{out}");
    assert_same_as_local_fill(&dir, "f.npy", "4096,1024", "f4", "3");
}

nfs_variants!(
    mpirun_any_shape_on_any_rank_count_fill_and_apply_equal_a_local_run,
    mpirun_convert_splits_any_shape_on_any_rank_count,
    mpirun_64_ranks_fill_and_commit,
);
