//! The library used directly, as a Rust program would: a kernel's `Err` or
//! panic, in a forked or a re-executed worker, reaches the caller of
//! `Runner::run` / `Runner::scan` as an `Error` naming the worker, its rows
//! and the kernel's own message, and nothing is published.
//!
//! `Runner`'s fork path needs a single-threaded caller, and libtest runs
//! tests on threads, so this target has `harness = false`: `main` runs the
//! tests one after another on the main thread. Arguments that are not
//! flags select tests by substring, as libtest does.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mmrun::kernels::values::Values;
use mmrun::kernels::{from_fn, AnyRowsMut, Kernel, KernelSpec, RowsIn};
use mmrun::{DType, ErrorKind, Runner, Spawn, Target, Workers};

/// 300 rows of 4096 bytes: with 3 workers they own rows 0..100, 100..200
/// and 200..300 (page-aligned boundaries), each one block.
const SHAPE: [u64; 2] = [300, 1024];

/// The mmrun binary, which re-executed workers run as `mmrun __worker`.
fn mmrun_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mmrun"))
}

fn new_target(dir: &Path) -> Target {
    Target::new_npy(dir.join("x.npy"), DType::F32, SHAPE.to_vec())
}

/// What a failed run on a new file leaves: the partial file and journal,
/// never the target.
fn assert_nothing_published(dir: &Path) {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![".x.npy.mmrun-journal", ".x.npy.mmrun-partial"],
        "a failed run must leave the target unpublished"
    );
}

/// Asserts a failed run's error: kind `Failed`, every `needle` in the
/// message, and the outcome spelled out.
fn assert_failed(err: &mmrun::Error, needles: &[&str]) {
    assert_eq!(err.kind(), ErrorKind::Failed, "{err}");
    for n in needles {
        assert!(err.message().contains(n), "want {n:?} in: {err}");
    }
}

fn fork_kernel_error_names_worker_rows_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = from_fn(|rows: AnyRowsMut<'_>| {
        let AnyRowsMut::F32(mut rows) = rows else {
            return Err("float32 only".into());
        };
        for (i, row) in rows.rows_mut() {
            if i == 150 {
                return Err(format!("row {i} is cursed"));
            }
            row.fill(i as f32);
        }
        Ok(())
    })
    .overwrites();
    let err = Runner::new(new_target(dir.path()))
        .workers(Workers::Count(3))
        .run(|_| Ok(Some(Box::new(kernel) as Box<dyn Kernel>)))
        .unwrap_err();
    assert_failed(
        &err,
        &[
            "worker 1 (rows 100..200) failed: rows 100..200: row 150 is cursed",
            "nothing was published",
        ],
    );
    assert!(!err.message().contains("worker 0"), "{err}");
    assert!(!err.message().contains("worker 2"), "{err}");
    let summary = err.summary().expect("a failed run carries its summary");
    let failed: Vec<_> = summary
        .workers
        .iter()
        .filter(|w| !w.outcome.succeeded())
        .map(|w| (w.worker, w.failure.clone()))
        .collect();
    assert_eq!(
        failed,
        vec![(1, Some("rows 100..200: row 150 is cursed".to_string()))]
    );
    assert_nothing_published(dir.path());
}

fn fork_kernel_panic_names_worker_rows_and_panic_text() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = from_fn(|rows: AnyRowsMut<'_>| {
        let AnyRowsMut::F32(mut rows) = rows else {
            return Err("float32 only".into());
        };
        for (i, row) in rows.rows_mut() {
            assert!(i != 250, "row {i} broke an invariant");
            row.fill(1.0);
        }
        Ok(())
    })
    .overwrites();
    let err = Runner::new(new_target(dir.path()))
        .workers(Workers::Count(3))
        .run(|_| Ok(Some(Box::new(kernel) as Box<dyn Kernel>)))
        .unwrap_err();
    assert_failed(
        &err,
        &[
            "worker 2 (rows 200..300) failed: panicked: row 250 broke an invariant",
            "nothing was published",
        ],
    );
    assert_nothing_published(dir.path());
}

/// A registered kernel (`values`) whose bytes cover only the first 10
/// rows: workers 1 and 2, re-executed as `mmrun __worker`, fail with its
/// own message. (Its bytes cross exec as hex in one variable, which Linux
/// caps at 128 KiB: hence a small file.)
fn exec_kernel_error_names_worker_rows_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let covered = vec![0u8; 10 * 4096];
    let target = Target::new_npy(dir.path().join("x.npy"), DType::F32, vec![30, 1024]);
    let err = Runner::new(target)
        .workers(Workers::Count(3))
        .spawn(Spawn::Exec)
        .worker_exe(mmrun_exe())
        .run(|_| Ok(Some(Box::new(Values::new(covered)) as Box<dyn Kernel>)))
        .unwrap_err();
    assert_failed(
        &err,
        &[
            "worker 1 (rows 10..20) failed: rows 10..20: the values do not cover the file",
            "worker 2 (rows 20..30) failed: rows 20..30: the values do not cover the file",
            "nothing was published",
        ],
    );
    assert!(!err.message().contains("worker 0"), "{err}");
    assert_nothing_published(dir.path());
}

/// A panic in a re-executed worker, made by the debug-build fault hook
/// (registered kernels do not panic on their own).
fn exec_kernel_panic_names_worker_rows_and_panic_text() {
    if !cfg!(debug_assertions) {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("exec_kernel_panic needs a debug build (its fault hook), and CI=true");
        }
        println!("SKIP exec_kernel_panic: the worker fault hook exists in debug builds only");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Single-threaded here (harness = false), so changing the environment
    // races with nothing; the re-executed workers inherit it.
    std::env::set_var("__MMRUN_TEST_WORKER_FAULT", "1:panic");
    let result = Runner::new(new_target(dir.path()))
        .workers(Workers::Count(3))
        .spawn(Spawn::Exec)
        .worker_exe(mmrun_exe())
        .run(|l| {
            let k = mmrun::Fill::new(mmrun::FillKind::Uniform { seed: 3 }, l.dtype)?;
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        });
    std::env::remove_var("__MMRUN_TEST_WORKER_FAULT");
    let err = result.unwrap_err();
    assert_failed(
        &err,
        &[
            "worker 1 (rows 100..200) failed: panicked: test fault",
            "nothing was published",
        ],
    );
    assert_nothing_published(dir.path());
}

/// A worker that cannot be executed says why, not only "code 127".
fn exec_failure_names_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let err = Runner::new(new_target(dir.path()))
        .workers(Workers::Count(1))
        .spawn(Spawn::Exec)
        .worker_exe(dir.path().join("no-such-mmrun"))
        .run(|l| {
            let k = mmrun::Fill::new(mmrun::FillKind::Arange, l.dtype)?;
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        })
        .unwrap_err();
    assert_failed(
        &err,
        &[
            "worker 0 (rows 0..300) could not be started: ",
            "cannot execute ",
            "no-such-mmrun: No such file or directory",
        ],
    );
    assert_nothing_published(dir.path());
}

/// A closure cannot be rebuilt in a re-executed worker: refused before
/// anything is created.
fn closure_kernel_is_refused_under_exec() {
    let dir = tempfile::tempdir().unwrap();
    let err = Runner::new(new_target(dir.path()))
        .spawn(Spawn::Exec)
        .worker_exe(mmrun_exe())
        .run(|_| {
            let k = from_fn(|_rows: AnyRowsMut<'_>| Ok(()));
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().contains("Spawn::Fork"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A scanning kernel that panics on one row: `Runner::scan` fails with the
/// panic's text and the file is as it was.
struct PanickyScan;

impl Kernel for PanickyScan {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "panicky-scan".into(),
            params: serde_json::Value::Null,
        }
    }
    fn run(&self, _rows: AnyRowsMut<'_>) -> Result<(), String> {
        Err("scans only".into())
    }
    fn scans(&self) -> bool {
        true
    }
    fn scan(&self, input: RowsIn<'_>, rows: u64) -> Result<(), String> {
        let hit = input.first_row..input.first_row + rows;
        assert!(!hit.contains(&42), "row 42 is unreadable");
        Ok(())
    }
}

fn scan_panic_names_worker_rows_and_panic_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    Runner::new(new_target(dir.path()))
        .workers(Workers::Count(1))
        .run(|l| {
            let k = mmrun::Fill::new(mmrun::FillKind::Arange, l.dtype)?;
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        })
        .unwrap();
    let before = fs::read(&path).unwrap();
    let err = Runner::new(Target::existing(&path))
        .workers(Workers::Count(3))
        .scan(|_| Ok(Box::new(PanickyScan) as Box<dyn Kernel>))
        .unwrap_err();
    assert_failed(
        &err,
        &["worker 0 (rows 0..100) failed: panicked: row 42 is unreadable"],
    );
    assert_eq!(fs::read(&path).unwrap(), before, "a scan changed the file");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "leftovers");
}

/// Runs a small fill with 3 forked workers.
fn run_fill(dir: &Path) -> mmrun::Result<mmrun::RunSummary> {
    Runner::new(new_target(dir))
        .workers(Workers::Count(3))
        .run(|l| {
            let k = mmrun::Fill::new(mmrun::FillKind::Arange, l.dtype)?;
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        })
}

/// Found 2: the coordinator reaped any child (`wait4(-1)`), so a caller's
/// own child that exited during the run lost its status (`Child::wait` →
/// ECHILD). Its status is the caller's now.
fn a_callers_own_child_keeps_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("sh")
        .args(["-c", "exit 7"])
        .spawn()
        .unwrap();
    // Wait until it is a zombie, so it has exited before the run starts.
    let stat = format!("/proc/{}/stat", child.id());
    while !fs::read_to_string(&stat)
        .map(|t| t[t.rfind(')').unwrap() + 2..].starts_with('Z'))
        .unwrap_or(true)
    {
        std::thread::yield_now();
    }
    run_fill(dir.path()).unwrap();
    let status = child
        .wait()
        .expect("the caller's child is still its own to wait for");
    assert_eq!(status.code(), Some(7));
}

/// Found 2: SIGXFSZ was left ignored for good after a run. The caller's
/// disposition is back once `Runner::run` returns.
fn no_signal_disposition_is_left_changed() {
    let dir = tempfile::tempdir().unwrap();
    let query = || {
        // SAFETY: a zeroed sigaction is a valid out-parameter; a null `act`
        // only reads the current disposition.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(
                libc::sigaction(libc::SIGXFSZ, std::ptr::null(), &mut old),
                0
            );
            old.sa_sigaction
        }
    };
    assert_eq!(query(), libc::SIG_DFL);
    run_fill(dir.path()).unwrap();
    assert_eq!(query(), libc::SIG_DFL, "SIGXFSZ left changed");
}

/// Found 4: `Runner::run` forked in a multi-threaded caller, whose child
/// could inherit a lock another thread held. It refuses Spawn::Fork there,
/// naming the fix, and changes nothing; Spawn::Exec (which runs no Rust
/// code between fork and exec) works in the same process, and a child of
/// the caller keeps its status across both runs.
fn a_threaded_caller_gets_a_refusal_or_exec_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (up_tx, up_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        up_tx.send(()).unwrap();
        let _ = stop_rx.recv();
    });
    up_rx.recv().unwrap();
    let mut child = std::process::Command::new("sh")
        .args(["-c", "read _; exit 5"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = run_fill(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().contains("threads"), "{err}");
    assert!(err.message().contains("Spawn::Exec"), "{err}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a refusal created files"
    );
    Runner::new(new_target(dir.path()))
        .workers(Workers::Count(3))
        .spawn(Spawn::Exec)
        .worker_exe(mmrun_exe())
        .run(|l| {
            let k = mmrun::Fill::new(mmrun::FillKind::Arange, l.dtype)?;
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        })
        .unwrap();
    let bytes = fs::read(dir.path().join("x.npy")).unwrap();
    let last = &bytes[bytes.len() - 4..];
    assert_eq!(
        f32::from_le_bytes(last.try_into().unwrap()),
        (300 * 1024 - 1) as f32
    );
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(5));
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
}

/// Found 4: the default worker executable was `current_exe()`, a library
/// user's own `main` re-executed with `__worker`. Spawn::Exec without
/// `worker_exe` is refused now, before anything is created.
fn exec_without_a_worker_exe_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Runner::new(new_target(dir.path()))
        .spawn(Spawn::Exec)
        .run(|l| {
            let k = mmrun::Fill::new(mmrun::FillKind::Arange, l.dtype)?;
            Ok(Some(Box::new(k) as Box<dyn Kernel>))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.message().contains("Runner::worker_exe"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

const TESTS: &[(&str, fn())] = &[
    (
        "fork_kernel_error_names_worker_rows_and_message",
        fork_kernel_error_names_worker_rows_and_message,
    ),
    (
        "fork_kernel_panic_names_worker_rows_and_panic_text",
        fork_kernel_panic_names_worker_rows_and_panic_text,
    ),
    (
        "exec_kernel_error_names_worker_rows_and_message",
        exec_kernel_error_names_worker_rows_and_message,
    ),
    (
        "exec_kernel_panic_names_worker_rows_and_panic_text",
        exec_kernel_panic_names_worker_rows_and_panic_text,
    ),
    ("exec_failure_names_the_cause", exec_failure_names_the_cause),
    (
        "closure_kernel_is_refused_under_exec",
        closure_kernel_is_refused_under_exec,
    ),
    (
        "scan_panic_names_worker_rows_and_panic_text",
        scan_panic_names_worker_rows_and_panic_text,
    ),
    (
        "a_callers_own_child_keeps_its_exit_status",
        a_callers_own_child_keeps_its_exit_status,
    ),
    (
        "no_signal_disposition_is_left_changed",
        no_signal_disposition_is_left_changed,
    ),
    (
        "a_threaded_caller_gets_a_refusal_or_exec_workers",
        a_threaded_caller_gets_a_refusal_or_exec_workers,
    ),
    (
        "exec_without_a_worker_exe_is_refused",
        exec_without_a_worker_exe_is_refused,
    ),
    (
        "a_reading_closure_on_a_new_file_is_retried_exactly",
        a_reading_closure_on_a_new_file_is_retried_exactly,
    ),
];

/// A closure that reads what it writes (`+= 1`) on a new file and fails
/// once after writing its block: with `retries(1)` the block is zeroed
/// before the retry, so the file holds ones everywhere, as an undisturbed
/// run leaves it. Before, the retried rows held 2.
fn a_reading_closure_on_a_new_file_is_retried_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("failed-once");
    let m = marker.clone();
    let kernel = from_fn(move |rows: AnyRowsMut<'_>| {
        let AnyRowsMut::F32(mut rows) = rows else {
            return Err("float32 only".into());
        };
        let first = rows.first_row();
        rows.as_mut_slice().iter_mut().for_each(|x| *x += 1.0);
        if first == 100 && !m.exists() {
            fs::write(&m, b"").unwrap();
            return Err("failed once after writing".into());
        }
        Ok(())
    });
    let summary = Runner::new(new_target(dir.path()))
        .workers(Workers::Count(3))
        .retries(1)
        .run(|_| Ok(Some(Box::new(kernel) as Box<dyn Kernel>)))
        .unwrap();
    assert!(marker.exists(), "the block never failed");
    assert_eq!(summary.workers.len(), 4, "one retry: {:?}", summary.workers);
    let bytes = fs::read(dir.path().join("x.npy")).unwrap();
    let data = &bytes[bytes.len() - (SHAPE[0] * SHAPE[1] * 4) as usize..];
    let wrong = data
        .chunks_exact(4)
        .filter(|c| f32::from_le_bytes((*c).try_into().unwrap()) != 1.0)
        .count();
    assert_eq!(wrong, 0, "elements other than 1 after the retry");
}

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen: Vec<_> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    println!("\nrunning {} tests", chosen.len());
    let mut failed = Vec::new();
    for (name, test) in chosen {
        let ok = catch_unwind(AssertUnwindSafe(test)).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if failed.is_empty() {
        println!("\ntest result: ok");
        ExitCode::SUCCESS
    } else {
        println!("\nfailures: {failed:?}\ntest result: FAILED");
        ExitCode::FAILURE
    }
}
