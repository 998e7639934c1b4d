//! Failing and interrupted workers: exit codes, nothing published, the
//! partial file and journal kept, a busy target, signals, no orphans.
//!
//! Workers are made to fail with the debug-build hook
//! `__MMRUN_TEST_WORKER_FAULT=W:ACTION`. Races are resolved by polling for a
//! condition with a deadline, never by a fixed sleep.

use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bad_input::{refused, unchanged, Tmpfs};
use crate::util::{all_pids, assert_refused, proc_stat, stderr, Dir};

const HOOK: &str = "__MMRUN_TEST_WORKER_FAULT";
/// 300 rows of 4096 bytes: with `-w 3`, workers own rows 0..100, 100..200
/// and 200..300 (every boundary is page aligned).
const SHAPE: &str = "300,1024";
const ROW_BYTES: usize = 4096;
const DATA_OFFSET: usize = 4096;

fn fill_args<'a>(name: &'a str, spawn: &'a str, value: &'a str) -> Vec<&'a str> {
    vec![
        "fill", name, "--shape", SHAPE, "--dtype", "f4", "--value", value, "-w", "3", "--spawn",
        spawn,
    ]
}

/// A worker dies of `action`; the run fails with exit 1 and an error naming
/// worker 1, its rows and `needle`; nothing is published; the partial file
/// and journal stay; the next run is refused as stale; `--force` recovers.
fn worker_failure(action: &str, spawn: &str, needle: &str) {
    let d = Dir::new();
    let out = d
        .cmd(&fill_args("x.npy", spawn, "1.5"))
        .env(HOOK, format!("1:{action}"))
        .output()
        .unwrap();
    assert_refused(&out, 1, needle);
    let err = stderr(&out);
    assert!(err.contains("worker 1"), "{err}");
    assert!(err.contains("100..200"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");
    assert!(!d.join("x.npy").exists(), "the target was published");
    assert!(d.join(".x.npy.mmrun-partial").exists(), "partial file gone");
    assert!(d.join(".x.npy.mmrun-journal").exists(), "journal gone");
    assert_eq!(
        d.names(),
        vec![".x.npy.mmrun-journal", ".x.npy.mmrun-partial"],
        "unexpected leftovers"
    );

    // A later run on the same target: refused, nothing changed.
    let before = d.snapshot();
    let out = d.run(&fill_args("x.npy", spawn, "1.5"));
    refused(&out, 2, "stale");
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    unchanged(&d, &before);

    // --force discards them and builds a complete file.
    let mut args = fill_args("x.npy", spawn, "1.5");
    args.push("--force");
    d.ok(&args);
    assert_eq!(d.names(), vec!["x.npy"]);
    assert_all_f32(&fs::read(d.join("x.npy")).unwrap(), 300 * 1024, 1.5);
}

#[test]
fn worker_killed_by_sigkill_fork() {
    worker_failure("kill", "fork", "KILL");
}

#[test]
fn worker_killed_by_sigkill_exec() {
    worker_failure("kill", "exec", "KILL");
}

#[test]
fn worker_aborts_fork() {
    worker_failure("abort", "fork", "ABRT");
}

#[test]
fn worker_aborts_exec() {
    worker_failure("abort", "exec", "ABRT");
}

#[test]
fn worker_exits_with_code_7_fork() {
    worker_failure("exit:7", "fork", "code 7");
}

#[test]
fn worker_exits_with_code_7_exec() {
    worker_failure("exit:7", "exec", "code 7");
}

/// The error line itself (not only the panic hook's output above it)
/// carries the panic's text with the worker and its rows.
fn worker_panics(spawn: &str) {
    worker_failure("panic", spawn, "worker 1");
    let d = Dir::new();
    let out = d
        .cmd(&fill_args("x.npy", spawn, "1.5"))
        .env(HOOK, "1:panic")
        .output()
        .unwrap();
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with("mmrun: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"));
    assert!(
        line.contains("worker 1 (rows 100..200) failed: panicked: test fault"),
        "{line}"
    );
}

#[test]
fn worker_panics_fork() {
    worker_panics("fork");
}

#[test]
fn worker_panics_exec() {
    worker_panics("exec");
}

/// In place: exit 1, the header and the failed worker's rows as they were;
/// the journal makes the next run stale until `--force`.
#[test]
fn in_place_failure() {
    let d = Dir::new();
    d.ok(&fill_args("x.npy", "fork", "1"));
    let old = fs::read(d.join("x.npy")).unwrap();
    let out = d
        .cmd(&["fill", "x.npy", "--value", "2", "-w", "3"])
        .env(HOOK, "1:kill")
        .output()
        .unwrap();
    assert_refused(&out, 1, "KILL");
    assert!(stderr(&out).contains("worker 1"), "{}", stderr(&out));
    let now = fs::read(d.join("x.npy")).unwrap();
    assert_eq!(now.len(), old.len());
    assert!(now[..DATA_OFFSET] == old[..DATA_OFFSET], "header changed");
    let w1 = DATA_OFFSET + 100 * ROW_BYTES..DATA_OFFSET + 200 * ROW_BYTES;
    assert!(
        now[w1.clone()] == old[w1],
        "the killed worker's rows changed"
    );

    let before = d.snapshot();
    let out = d.run(&["fill", "x.npy", "--value", "2", "-w", "3"]);
    refused(&out, 2, "--force");
    unchanged(&d, &before);
    d.ok(&["fill", "x.npy", "--value", "2", "-w", "3", "--force"]);
    assert_eq!(d.names(), vec!["x.npy"]);
    let now = fs::read(d.join("x.npy")).unwrap();
    assert!(now[..DATA_OFFSET] == old[..DATA_OFFSET], "header changed");
    assert_all_f32(&now, 300 * 1024, 2.0);
}

/// A second mmrun on a target whose journal is held: exit 75 at once,
/// naming the holder; the first run is undisturbed.
#[test]
fn busy_target() {
    let d = Dir::new();
    let first = Running::start(&d, &fill_args("x.npy", "fork", "1"), "0:hang");
    first.wait_for_hang(&d, "x.npy", ".x.npy.mmrun-partial", 1.0);
    let before = d.snapshot();

    let out = d.run(&fill_args("x.npy", "fork", "2"));
    refused(&out, 75, &format!("in use by pid {}", first.pid()));
    assert!(stderr(&out).contains("on host"), "{}", stderr(&out));
    // With --force too: busy, not stale.
    let mut args = fill_args("x.npy", "fork", "2");
    args.push("--force");
    refused(&d.run(&args), 75, "in use by pid");
    unchanged(&d, &before);

    let (status, err) = first.signal_and_wait(Signal::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {err}");
}

/// An in-place run holds the journal lock too: other in-place runs and
/// `--force` replacements get exit 75.
#[test]
fn busy_in_place() {
    let d = Dir::new();
    d.ok(&fill_args("x.npy", "fork", "1"));
    let first = Running::start(&d, &["fill", "x.npy", "--value", "2", "-w", "3"], "0:hang");
    first.wait_for_hang(&d, "x.npy", "x.npy", 2.0);
    let before = d.snapshot();
    for args in [
        &["fill", "x.npy", "--value", "3"][..],
        &["fill", "x.npy", "--value", "3", "--rows", "0:1", "--force"],
        &[
            "fill", "x.npy", "--shape", "4", "--dtype", "f4", "--value", "3", "--force",
        ],
    ] {
        let out = d.run(args);
        refused(&out, 75, &format!("in use by pid {}", first.pid()));
        unchanged(&d, &before);
    }
    let (status, err) = first.signal_and_wait(Signal::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}: {err}");
    assert!(d.join("x.npy").exists());
}

/// The lock identity is the real file: a run through a symlink and a run
/// on the real path exclude each other.
#[test]
fn busy_through_a_symlink() {
    let d = Dir::new();
    fs::create_dir(d.join("real")).unwrap();
    d.ok(&fill_args("real/x.npy", "fork", "1"));
    std::os::unix::fs::symlink("real/x.npy", d.join("link.npy")).unwrap();
    let first = Running::start(
        &d,
        &["fill", "link.npy", "--value", "2", "-w", "3"],
        "0:hang",
    );
    first.wait_for_hang(&d, "real/x.npy", "real/x.npy", 2.0);
    let out = d.run(&["fill", "real/x.npy", "--value", "3"]);
    refused(&out, 75, &format!("in use by pid {}", first.pid()));
    let (status, _) = first.signal_and_wait(Signal::SIGTERM);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

/// With `--prealloc none` nothing is reserved: a full file system stops the
/// workers with SIGBUS, reported as an I/O error on their rows (exit 1).
#[test]
fn sigbus_on_a_full_file_system_is_an_io_error() {
    let d = Dir::new();
    let small = d.join("small");
    fs::create_dir(&small).unwrap();
    let Some(_mount) = Tmpfs::mount("sigbus_on_a_full_file_system_is_an_io_error", &small, "1m")
    else {
        return;
    };
    let out = d.run(&[
        "fill",
        "small/big.npy",
        "--shape",
        "1024,1024",
        "--dtype",
        "f4",
        "--value",
        "1",
        "--prealloc",
        "none",
        "-w",
        "2",
    ]);
    assert_refused(&out, 1, "I/O error on rows");
    assert!(!small.join("big.npy").exists(), "the target was published");
}

/// The coordinator receives `sig`: it stops its workers, keeps the partial
/// file and journal, publishes nothing and dies of the same signal.
fn interrupted_by(sig: Signal, spawn: &str) {
    let d = Dir::new();
    let run = Running::start(&d, &fill_args("x.npy", spawn, "1"), "0:hang");
    let workers = run.wait_for_hang(&d, "x.npy", ".x.npy.mmrun-partial", 1.0);
    let (status, err) = run.signal_and_wait(sig);
    assert_eq!(
        status.signal(),
        Some(sig as i32),
        "want death by {sig}, got {status:?}\n{err}"
    );
    for pgid in workers {
        assert!(
            group_members(pgid, true).is_empty(),
            "worker group {pgid} outlived its coordinator: {:?}",
            group_members(pgid, true)
        );
    }
    assert!(err.contains("interrupted"), "{err}");
    assert!(!d.join("x.npy").exists(), "the target was published");
    assert_eq!(
        d.names(),
        vec![".x.npy.mmrun-journal", ".x.npy.mmrun-partial"]
    );
    // The leftovers are stale, not busy: the lock died with the coordinator.
    let before = d.snapshot();
    let out = d.run(&fill_args("x.npy", spawn, "1"));
    refused(&out, 2, "stale");
    unchanged(&d, &before);
}

#[test]
fn sigint_stops_workers_and_reraises() {
    interrupted_by(Signal::SIGINT, "fork");
}

#[test]
fn sigterm_stops_workers_and_reraises() {
    interrupted_by(Signal::SIGTERM, "fork");
}

#[test]
fn sighup_stops_workers_and_reraises() {
    interrupted_by(Signal::SIGHUP, "fork");
}

#[test]
fn sigterm_stops_exec_workers_and_reraises() {
    interrupted_by(Signal::SIGTERM, "exec");
}

/// A SIGKILLed coordinator cannot clean up: its workers die of
/// `PR_SET_PDEATHSIG` instead of running on.
fn coordinator_killed(spawn: &str) {
    let d = Dir::new();
    let run = Running::start(&d, &fill_args("x.npy", spawn, "1"), "0:hang");
    let workers = run.wait_for_hang(&d, "x.npy", ".x.npy.mmrun-partial", 1.0);
    let (status, _) = run.signal_and_wait(Signal::SIGKILL);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // Orphans are reaped by init (or become zombies where it does not reap):
    // what must not remain is a live process.
    poll_until(
        Duration::from_secs(5),
        "workers to die with their coordinator",
        || workers.iter().all(|&g| group_members(g, false).is_empty()),
    );
    assert!(!d.join("x.npy").exists(), "the target was published");
}

#[test]
fn sigkilled_coordinator_takes_fork_workers_with_it() {
    coordinator_killed("fork");
}

#[test]
fn sigkilled_coordinator_takes_exec_workers_with_it() {
    coordinator_killed("exec");
}

// ---------------------------------------------------------------- helpers --

fn assert_all_f32(file: &[u8], elements: usize, want: f32) {
    assert_eq!(file.len(), DATA_OFFSET + elements * 4, "file size");
    let bad = file[DATA_OFFSET..]
        .chunks_exact(4)
        .position(|c| f32::from_le_bytes(c.try_into().unwrap()) != want);
    assert_eq!(bad, None, "element differs from {want}");
}

/// Polls `cond` every 10 ms until it holds; panics after `limit`.
pub(crate) fn poll_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Live children of `pid` (zombies excluded).
fn children_of(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| proc_stat(p).is_some_and(|(s, ppid, _)| ppid == pid && s != 'Z'))
        .collect()
}

/// Processes in process group `pgid`, zombies included or not.
fn group_members(pgid: i32, zombies: bool) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| {
            proc_stat(p).is_some_and(|(s, _, g)| g == pgid && (zombies || (s != 'Z' && s != 'X')))
        })
        .collect()
}

/// A coordinator running in the background, SIGKILLed at drop if a test
/// fails while it still runs (its workers follow it by PDEATHSIG).
struct Running {
    child: Option<Child>,
}

impl Running {
    fn start(d: &Dir, args: &[&str], fault: &str) -> Running {
        let child = d
            .cmd(args)
            .env(HOOK, fault)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mmrun");
        Running { child: Some(child) }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Waits until the journal of `name` exists, workers 1 and 2 have
    /// written their rows (100..300) of `data` (the partial file or the
    /// target) with `value` and exited, and the coordinator is left with one
    /// worker — the hanging worker 0 — leading its own process group.
    /// Returns every worker seen on the way.
    fn wait_for_hang(&self, d: &Dir, name: &str, data: &str, value: f32) -> Vec<i32> {
        let target = d.join(name);
        let journal = target.with_file_name(format!(
            ".{}.mmrun-journal",
            target.file_name().unwrap().to_string_lossy()
        ));
        let data = d.join(data);
        let rows = DATA_OFFSET + 100 * ROW_BYTES..DATA_OFFSET + 300 * ROW_BYTES;
        let mut seen: Vec<i32> = Vec::new();
        poll_until(
            Duration::from_secs(10),
            "workers 1 and 2 to finish and worker 0 to hang in its own process group",
            || {
                let now = children_of(self.pid());
                for &c in &now {
                    if !seen.contains(&c) {
                        seen.push(c);
                    }
                }
                let [only] = now[..] else { return false };
                journal.exists()
                    && proc_stat(only).is_some_and(|(_, _, g)| g == only)
                    && fs::read(&data).is_ok_and(|b| {
                        b.len() >= rows.end
                            && b[rows.clone()]
                                .chunks_exact(4)
                                .all(|c| f32::from_le_bytes(c.try_into().unwrap()) == value)
                    })
            },
        );
        seen
    }

    /// Sends `sig` to the coordinator and waits (at most 30 s) for it to end.
    fn signal_and_wait(mut self, sig: Signal) -> (ExitStatus, String) {
        kill(Pid::from_raw(self.pid()), sig).expect("signal the coordinator");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("mmrun did not end within 30 s of {sig}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
