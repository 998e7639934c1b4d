//! Starting workers and waiting for them: the coordinator's one loop.
//!
//! # Design
//! The coordinator is single-threaded. Before the first fork it blocks
//! SIGCHLD, SIGINT, SIGTERM, SIGHUP and SIGUSR1 and reads them from a
//! signalfd; its loop waits on that descriptor with a timeout that drives
//! deadlines. Because no other thread exists, it may fork at any moment (a
//! retry later, too) without a child inheriting some other thread's lock.
//!
//! Shutdown state machine:
//! - `Running` → a worker exits: reaped with `wait4(pid)` (status +
//!   rusage), by its own pid, so a library caller's children keep theirs.
//! - `Running` → SIGINT/SIGTERM/SIGHUP: SIGTERM every live worker's process
//!   group, note the signal, arm the `kill_after` deadline (`Stopping`).
//! - `Stopping` → deadline passes, or a second signal: SIGKILL the groups.
//! - The loop ends only when every started worker has been reaped.
//!
//! Why nothing is lost or published wrongly: the coordinator reads or flushes
//! the file only after the loop ends, i.e. after every worker that could
//! write it is dead and reaped; a run with any failed or interrupted worker
//! returns an error before publish, so the target is never replaced by a
//! partial file. Why it cannot hang: every state has a deadline except
//! `Running`, which ends when workers exit, and a worker that outlives its
//! coordinator is SIGKILLed by `PR_SET_PDEATHSIG`.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::Serialize;

use super::program::{self, Program};
use crate::error::{Error, Result};
use crate::kernels::Kernel;
use crate::os::progress::ProgressRegion;
use crate::os::results::ResultSlots;
use crate::os::{self, Exit, SignalWatch, Usage, Wake};
use crate::plan::RowRange;
use crate::worker::{self, WorkerTask};

/// How workers are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Spawn {
    /// `fork` the coordinator: cheapest, inherits the kernel.
    #[default]
    Fork,
    /// `fork` then exec `mmrun __worker`, rebuilding the kernel by name.
    Exec,
}

/// How a worker ended, as reports print it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerOutcome {
    /// It exited with this code (0 is success).
    Exited {
        /// Exit code.
        code: i32,
    },
    /// A signal killed it.
    Signal {
        /// Signal number.
        signal: i32,
        /// Name without `SIG`: `KILL`.
        name: String,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// It died after the coordinator itself was told to stop.
    Interrupted {
        /// The signal the coordinator received.
        signal: i32,
    },
    /// It could not be started.
    SpawnFailed {
        /// Why.
        error: String,
    },
    /// It was stopped because the run's `--timeout` passed.
    Timeout {
        /// The timeout, in seconds.
        seconds: f64,
    },
    /// It never started (`--fail-fast` after another failure, or the run
    /// was interrupted first).
    NotStarted,
}

impl WorkerOutcome {
    /// Whether the worker did its work.
    pub fn succeeded(&self) -> bool {
        matches!(self, WorkerOutcome::Exited { code: 0 })
    }
}

/// One worker's record.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRecord {
    /// 0-based id.
    pub worker: usize,
    /// Process id (0 if it never started).
    pub pid: i32,
    /// Rows it owned.
    pub rows: RowRange,
    /// Wall-clock seconds from start to reaping.
    pub seconds: f64,
    /// How it ended.
    pub outcome: WorkerOutcome,
    /// Resource use from `wait4`.
    pub usage: Usage,
    /// What a failed mmrun worker said went wrong: its kernel's error or
    /// panic message; for a worker that died of SIGBUS on a full file
    /// system, that cause (see `sigbus_cause`). `None` for external
    /// programs, for other signal deaths and for successful workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl WorkerRecord {
    /// A one-line description of a failure.
    pub fn describe(&self) -> String {
        let who = format!("worker {} (rows {})", self.worker, self.rows);
        match &self.outcome {
            WorkerOutcome::Exited { code } => match &self.failure {
                Some(why) => format!("{who} failed: {why}"),
                None => format!("{who} exited with code {code}"),
            },
            WorkerOutcome::Signal { signal, name, .. } if *signal == libc::SIGBUS => {
                match &self.failure {
                    Some(why) => format!("{who}: {why}"),
                    None => format!("{who}: I/O error on rows {} (SIG{name}: the file was truncated or the device failed)", self.rows),
                }
            }
            WorkerOutcome::Signal {
                name, core_dumped, ..
            } => {
                format!(
                    "{who} was killed by SIG{name}{}",
                    if *core_dumped { " (core dumped)" } else { "" }
                )
            }
            WorkerOutcome::Interrupted { signal } => {
                format!("{who} was interrupted (SIG{})", os::signal_name(*signal))
            }
            WorkerOutcome::SpawnFailed { error } => format!("{who} could not be started: {error}"),
            WorkerOutcome::Timeout { seconds } => format!("{who} timed out after {seconds} s"),
            WorkerOutcome::NotStarted => format!("{who} was not started"),
        }
    }
}

/// Why a worker died of SIGBUS, when the file system ran out of space.
///
/// A store through a shared mapping into a page the file system cannot
/// allocate is a SIGBUS, not an error a call returns: on a full disk with
/// a sparse file, and on copy-on-write file systems (Btrfs) even for
/// blocks the file has, since a rewrite needs new ones — space another
/// process may take after mmrun's check (`check_cow_space`). The signal
/// alone does not say which; the free space left afterwards does. When less
/// is free on the file's file system than the rows the worker had left
/// need, the cause is named: those rows (from its progress counter) and
/// ENOSPC. Otherwise `None`: a truncated file or a failing device, as
/// [`WorkerRecord::describe`] says by default.
fn sigbus_cause(task: &WorkerTask, done: u64) -> Option<String> {
    let first = task.range.start + done.min(task.range.len());
    let left = task.layout.row_bytes().ok()? * (task.range.end - first);
    let dir = task.path.parent().unwrap_or(Path::new("."));
    let avail = os::available_bytes(dir)?;
    if avail >= left.max(1) {
        return None;
    }
    Some(format!(
        "rows {first}..{}: no space left on {} while writing through the mapping (SIGBUS; {avail} bytes free, the rows need {left})",
        task.range.end,
        os::filesystem_type(dir)
    ))
}

/// How workers are started, stopped and retried.
#[derive(Debug, Clone)]
pub struct SpawnConfig<'a> {
    /// Fork or exec.
    pub spawn: Spawn,
    /// The program re-executed for `Spawn::Exec` (normally this `mmrun`).
    pub worker_exe: &'a Path,
    /// Grace between SIGTERM and SIGKILL on interrupt or timeout.
    pub kill_after: Duration,
    /// Workers running at once (slots); tasks beyond that wait in a queue.
    pub concurrency: usize,
    /// Times a failed task is started again.
    pub retries: u32,
    /// Stop the whole run when it has not finished after this long.
    pub timeout: Option<Duration>,
    /// On the first failure, stop the other workers and start no more.
    pub fail_fast: bool,
    /// Per-slot progress counters, if the run has them.
    pub progress: Option<&'a ProgressRegion>,
    /// More variables for external programs (`MMRUN_RANK`, `MMRUN_RANKS`).
    pub extra_env: Vec<(String, String)>,
    /// Per-slot result files, for kernels that hand back a result.
    pub results: Option<&'a ResultSlots>,
    /// `--pin`: worker slot `s` runs on `cpus[s % cpus.len()]`.
    pub pin: Option<Vec<usize>>,
    /// Set a failed task's rows back to zeros before retrying it (a new
    /// file whose program may read what it writes; see `restore`).
    pub zero_before_retry: Option<super::restore::ZeroRows>,
}

impl SpawnConfig<'_> {
    /// The CPU worker slot `slot` is pinned to, with `--pin`.
    fn cpu_for(&self, slot: usize) -> Option<usize> {
        let cpus = self.pin.as_ref()?;
        cpus.get(slot % cpus.len().max(1)).copied()
    }
}

/// What the coordinator loop reports while it runs.
pub trait Observer {
    /// Called about every 200 ms and at the end: rows done so far per task
    /// (a finished task counts all its rows), how many workers run, and how
    /// many tasks failed for good.
    fn tick(&mut self, tasks: &[WorkerTask], done: &[u64], running: usize, failed: usize);

    /// SIGUSR1 arrived: make what is written durable. Must not block the
    /// loop: a long sync belongs in a helper process the observer waits
    /// for in later ticks.
    fn checkpoint(&mut self) {}
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {
    fn tick(&mut self, _: &[WorkerTask], _: &[u64], _: usize, _: usize) {}
}

/// What the loop ended with.
#[derive(Debug)]
pub struct Supervised {
    /// One record per started (or failed-to-start) attempt, in start order;
    /// tasks never started are recorded as `not_started`.
    pub workers: Vec<WorkerRecord>,
    /// The signal that interrupted the run, if one did.
    pub interrupted: Option<i32>,
    /// Whether `timeout` stopped the run.
    pub timed_out: bool,
    /// Per task: whether it finished successfully.
    pub task_ok: Vec<bool>,
    /// Per task: the result its successful worker left, with result slots.
    pub results: Vec<Option<Vec<u8>>>,
}

/// A started attempt of a task.
struct Live {
    task: usize,
    slot: usize,
    record: usize,
    pid: Pid,
    started: Instant,
}

/// Everything an exec'd worker needs, prepared before `fork` so the child
/// only calls `execve`.
struct ExecPlan {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

fn exec_plan(
    exe: &Path,
    task: &WorkerTask,
    kernel: &dyn Kernel,
    extra_env: &[(String, String)],
) -> Result<ExecPlan> {
    let cs = |s: &[u8]| {
        CString::new(s).map_err(|_| Error::refused("a path or variable contains a NUL byte"))
    };
    let program = cs(exe.as_os_str().as_bytes())?;
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        let k = k.as_bytes();
        if k == b"MMRUN_DEFAULT_WORKERS" || k.starts_with(b"MMRUN_") && k != b"MMRUN_LOG" {
            continue;
        }
        let mut kv = k.to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(cs(&kv)?);
    }
    let spec = serde_json::to_string(&kernel.spec()).expect("kernel spec serialises");
    for (k, v) in task
        .to_env()
        .into_iter()
        .chain([("MMRUN_KERNEL".to_string(), spec)])
        .chain(extra_env.iter().cloned())
    {
        env.push(cs(format!("{k}={v}").as_bytes())?);
    }
    Ok(ExecPlan {
        argv: vec![program.clone(), cs(b"__worker")?],
        program,
        env,
    })
}

/// What each worker runs.
#[derive(Clone, Copy)]
pub enum WorkKind<'a> {
    /// A kernel, in a forked or re-executed mmrun worker.
    Kernel(&'a dyn Kernel),
    /// An external program under a shim (`mmrun exec`).
    Program {
        /// The program and its options.
        program: &'a Program,
        /// Its resolved path.
        resolved: &'a Path,
    },
}

/// Passes one worker's output through, line by line, tagged `[w<ID>] `.
struct Pump {
    worker: usize,
    fd: Option<OwnedFd>,
    to_stderr: bool,
    tag: bool,
    partial: Vec<u8>,
}

impl Pump {
    /// Reads what is available; closes on end of file.
    fn drain(&mut self) {
        let mut buf = [0u8; 65536];
        loop {
            let got = match &self.fd {
                Some(fd) => nix::unistd::read(fd, &mut buf),
                None => return,
            };
            match got {
                Ok(0) => {
                    self.fd = None;
                    if !self.partial.is_empty() {
                        self.partial.push(b'\n');
                        self.emit();
                    }
                    return;
                }
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    self.emit();
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Writes every complete line held.
    fn emit(&mut self) {
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let mut out = Vec::with_capacity(end + 16);
        for line in self.partial[..=end].split_inclusive(|&b| b == b'\n') {
            if self.tag {
                out.extend_from_slice(format!("[w{}] ", self.worker).as_bytes());
            }
            out.extend_from_slice(line);
        }
        self.partial.drain(..=end);
        // A closed stdout (`mmrun ... | head`) must not stop the run.
        let _ = if self.to_stderr {
            std::io::stderr().lock().write_all(&out)
        } else {
            std::io::stdout().lock().write_all(&out)
        };
    }
}

fn exec_spec(
    program: &Path,
    argv: Vec<Vec<u8>>,
    env: Vec<Vec<u8>>,
    cpu: Option<usize>,
) -> Result<os::ExecSpec> {
    let cs = |b: Vec<u8>| {
        CString::new(b).map_err(|_| Error::refused("an argument or variable contains a NUL byte"))
    };
    Ok(os::ExecSpec {
        cpu,
        progress_fd: None,
        kill_after: Duration::ZERO,
        program: cs(program.as_os_str().as_bytes().to_vec())?,
        argv: argv.into_iter().map(cs).collect::<Result<_>>()?,
        env: env.into_iter().map(cs).collect::<Result<_>>()?,
    })
}

/// Runs every task, at most `cfg.concurrency` at a time, and waits for all
/// of them; see the module doc for the state machine.
pub fn run_workers(
    watch: &mut SignalWatch,
    file: &File,
    tasks: &[WorkerTask],
    work: WorkKind<'_>,
    cfg: &SpawnConfig<'_>,
    observer: &mut dyn Observer,
) -> Result<Supervised> {
    let slots = cfg.concurrency.max(1);
    let mut pumps: Vec<Pump> = Vec::new();
    let mut records: Vec<WorkerRecord> = Vec::new();
    let mut queue: std::collections::VecDeque<usize> = (0..tasks.len()).collect();
    let mut attempts = vec![0u32; tasks.len()];
    let mut task_ok = vec![false; tasks.len()];
    let mut results: Vec<Option<Vec<u8>>> = vec![None; tasks.len()];
    let mut done = vec![0u64; tasks.len()];
    let mut free_slots: Vec<usize> = (0..slots).rev().collect();
    let mut live: Vec<Live> = Vec::new();
    let mut failed_for_good = 0usize;
    let mut interrupted: Option<i32> = None;
    let mut stopping = false;
    let mut timed_out = false;
    let mut kill_at: Option<Instant> = None;
    let deadline = cfg.timeout.map(|t| Instant::now() + t);
    let mut ready = Vec::new();
    // Where an mmrun worker leaves its kernel's error or panic text, so the
    // run's error says what failed and not only that a process exited 1.
    let failures = match work {
        WorkKind::Kernel(_) => Some(
            ResultSlots::create(slots)
                .map_err(|e| Error::failed(format!("cannot create the failure slots: {e}")))?,
        ),
        WorkKind::Program { .. } => None,
    };

    loop {
        // Start queued tasks while slots are free and the run goes on.
        while !stopping && !free_slots.is_empty() {
            let Some(t) = queue.pop_front() else { break };
            // With one task per slot (a static plan), a task keeps its
            // worker id across retries, so per-worker files an external
            // program writes (`log.{worker}`) stay its own.
            let slot = if tasks.len() <= slots {
                free_slots.retain(|&s| s != t);
                t
            } else {
                free_slots.pop().expect("checked non-empty")
            };
            let mut task = tasks[t].clone();
            task.worker = slot;
            task.workers = slots;
            task.attempt = attempts[t];
            attempts[t] += 1;
            if let Some(p) = cfg.progress {
                p.reset(slot);
            }
            if let Some(r) = cfg.results {
                r.reset(slot)
                    .map_err(|e| Error::failed(format!("cannot reset a result slot: {e}")))?;
                task.result_file = Some(r.slot(slot));
            }
            if let Some(f) = &failures {
                f.reset(slot)
                    .map_err(|e| Error::failed(format!("cannot reset a failure slot: {e}")))?;
            }
            let failure_file = failures.as_ref().map(|f| f.slot(slot));
            let _span = tracing::debug_span!("worker", worker = slot, rows = %task.range).entered();
            let spawned = spawn_one(
                &task,
                file,
                work,
                cfg,
                failures.as_ref(),
                failure_file.as_ref(),
                &mut pumps,
            );
            let record = records.len();
            records.push(WorkerRecord {
                worker: slot,
                pid: 0,
                rows: task.range,
                seconds: 0.0,
                outcome: WorkerOutcome::NotStarted,
                usage: Usage::default(),
                failure: None,
            });
            match spawned {
                Ok(pid) => {
                    records[record].pid = pid.as_raw();
                    live.push(Live {
                        task: t,
                        slot,
                        record,
                        pid,
                        started: Instant::now(),
                    });
                }
                Err(e) => {
                    records[record].outcome = WorkerOutcome::SpawnFailed {
                        error: e.to_string(),
                    };
                    free_slots.push(slot);
                    failed_for_good += 1;
                    if cfg.fail_fast {
                        stop_all(&live, Signal::SIGTERM, &mut stopping);
                        kill_at.get_or_insert(Instant::now() + cfg.kill_after);
                    }
                }
            }
        }

        // Reap everything that has exited.
        // Each worker is waited for by its pid: a library caller's own
        // children are never reaped here.
        let mut exited = Vec::new();
        for (i, l) in live.iter().enumerate() {
            if let Some((exit, usage)) =
                os::reap(l.pid).map_err(|e| Error::failed(format!("wait4: {e}")))?
            {
                exited.push((i, exit, usage));
            }
        }
        for (i, exit, usage) in exited.into_iter().rev() {
            let l = live.swap_remove(i);
            free_slots.push(l.slot);
            let r = &mut records[l.record];
            r.seconds = l.started.elapsed().as_secs_f64();
            r.usage = usage;
            r.outcome = match (exit, interrupted, timed_out) {
                (Exit::Code(0), _, _) => WorkerOutcome::Exited { code: 0 },
                (_, Some(sig), _) => WorkerOutcome::Interrupted { signal: sig },
                (_, None, true) => WorkerOutcome::Timeout {
                    seconds: cfg.timeout.map_or(0.0, |t| t.as_secs_f64()),
                },
                (Exit::Code(code), None, false) => WorkerOutcome::Exited { code },
                (
                    Exit::Signal {
                        signal,
                        core_dumped,
                    },
                    None,
                    false,
                ) => WorkerOutcome::Signal {
                    signal,
                    name: os::signal_name(signal),
                    core_dumped,
                },
            };
            if let (WorkerOutcome::Exited { .. }, Some(f)) = (&r.outcome, &failures) {
                // A worker that exited on its own wrote its failure, if
                // any, before exiting: the slot is complete now.
                r.failure = f
                    .read(l.slot)
                    .ok()
                    .filter(|b| !b.is_empty())
                    .map(|b| String::from_utf8_lossy(&b).into_owned());
            }
            if let WorkerOutcome::Signal {
                signal: libc::SIGBUS,
                ..
            } = r.outcome
            {
                let done = cfg.progress.map_or(0, |p| p.load(l.slot));
                r.failure = sigbus_cause(&tasks[l.task], done);
            }
            if r.outcome.succeeded() {
                if let Some(slots) = cfg.results {
                    let got = slots.read(l.slot).map_err(|e| {
                        Error::failed(format!("cannot read a worker's result: {e}"))
                    })?;
                    results[l.task] = Some(got);
                }
                task_ok[l.task] = true;
                done[l.task] = tasks[l.task].range.len();
                continue;
            }
            tracing::debug!(worker = r.worker, "worker failed: {}", r.describe());
            // Rows it finished before it died are written all the same.
            if let Some(p) = cfg.progress {
                done[l.task] = p.load(l.slot).min(tasks[l.task].range.len());
            }
            let may_retry = !stopping && !cfg.fail_fast && attempts[l.task] <= cfg.retries;
            // A retry that cannot start from the rows' first state is not
            // made: the task fails for good, with the reason logged.
            let restored = match (&cfg.zero_before_retry, may_retry) {
                (Some(z), true) => z.zero(file, tasks[l.task].range).map_err(|e| {
                    tracing::error!("{e}: rows {} are not retried", tasks[l.task].range);
                }),
                _ => Ok(()),
            };
            if may_retry && restored.is_ok() {
                tracing::info!("retrying rows {} ({})", tasks[l.task].range, r.describe());
                queue.push_back(l.task);
            } else {
                failed_for_good += 1;
                if cfg.fail_fast && !stopping {
                    stop_all(&live, Signal::SIGTERM, &mut stopping);
                    kill_at.get_or_insert(Instant::now() + cfg.kill_after);
                }
            }
        }

        // Progress of running tasks.
        if let Some(p) = cfg.progress {
            for l in &live {
                done[l.task] = p.load(l.slot).min(tasks[l.task].range.len());
            }
        }
        observer.tick(tasks, &done, live.len(), failed_for_good);

        if live.is_empty() && (stopping || queue.is_empty()) {
            // Take what the workers wrote last; a descendant that escaped
            // and still holds a pipe open cannot keep the run waiting.
            pumps.iter_mut().for_each(Pump::drain);
            break;
        }
        let now = Instant::now();
        if kill_at.is_some_and(|t| now >= t) {
            stop_all(&live, Signal::SIGKILL, &mut stopping);
            kill_at = None;
        }
        if !timed_out && deadline.is_some_and(|d| now >= d) {
            timed_out = true;
            tracing::warn!("--timeout passed: stopping workers");
            stop_all(&live, Signal::SIGTERM, &mut stopping);
            kill_at = Some(now + cfg.kill_after);
        }

        let fds: Vec<BorrowedFd<'_>> = pumps
            .iter()
            .filter_map(|p| p.fd.as_ref().map(|f| f.as_fd()))
            .collect();
        let wake = watch
            .wait(&fds, &mut ready, 200)
            .map_err(|e| Error::failed(format!("waiting for workers: {e}")))?;
        if ready.iter().any(|&r| r) {
            pumps.iter_mut().for_each(Pump::drain);
            pumps.retain(|p| p.fd.is_some());
        }
        match wake {
            Wake::Signal(s @ (Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP)) => {
                if interrupted.is_none() {
                    interrupted = Some(s as i32);
                    tracing::info!("received {s}: stopping workers");
                    stop_all(&live, Signal::SIGTERM, &mut stopping);
                    kill_at = Some(Instant::now() + cfg.kill_after);
                } else {
                    stop_all(&live, Signal::SIGKILL, &mut stopping);
                }
            }
            Wake::Signal(Signal::SIGUSR1) => observer.checkpoint(),
            Wake::Signal(_) | Wake::Timeout => {}
        }
    }
    // Tasks that never ran.
    for t in queue {
        records.push(WorkerRecord {
            worker: 0,
            pid: 0,
            rows: tasks[t].range,
            seconds: 0.0,
            outcome: WorkerOutcome::NotStarted,
            usage: Usage::default(),
            failure: None,
        });
    }
    Ok(Supervised {
        workers: records,
        interrupted,
        timed_out,
        task_ok,
        results,
    })
}

/// Signals every running worker's process group and stops starting new ones.
fn stop_all(live: &[Live], sig: Signal, stopping: &mut bool) {
    *stopping = true;
    for l in live {
        os::signal_group(l.pid, sig);
    }
}

/// Starts one attempt of `task`.
fn spawn_one(
    task: &WorkerTask,
    file: &File,
    work: WorkKind<'_>,
    cfg: &SpawnConfig<'_>,
    failures: Option<&ResultSlots>,
    failure_file: Option<&os::results::SlotRef>,
    pumps: &mut Vec<Pump>,
) -> Result<Pid> {
    let fd_path = |fd: i32| format!("/proc/self/fd/{fd}");
    // Exec'd workers find the progress region at its documented number.
    let mut progress_env: Vec<(String, String)> = cfg
        .progress
        .map(|_| {
            vec![
                ("MMRUN_PROGRESS_FILE".to_string(), fd_path(os::PROGRESS_FD)),
                ("MMRUN_PROGRESS_SLOT".to_string(), task.worker.to_string()),
            ]
        })
        .unwrap_or_default();
    progress_env.extend(cfg.extra_env.iter().cloned());
    let spawned = match (work, cfg.spawn) {
        (WorkKind::Program { program, resolved }, _) => {
            let (argv, env) = program::worker_command(program, resolved, task, &progress_env)?;
            let mut spec = exec_spec(resolved, argv, env, cfg.cpu_for(task.worker))?;
            spec.progress_fd = cfg.progress.and_then(ProgressRegion::raw_fd);
            spec.kill_after = cfg.kill_after;
            os::spawn_shimmed(&spec).map(|(pid, pipes)| {
                let pump = |fd, to_stderr| Pump {
                    worker: task.worker,
                    fd: Some(fd),
                    to_stderr,
                    tag: program.tag_output,
                    partial: Vec::new(),
                };
                pumps.push(pump(pipes.stdout, program.stdout_to_stderr));
                pumps.push(pump(pipes.stderr, true));
                pid
            })
        }
        (WorkKind::Kernel(kernel), Spawn::Fork) => {
            let progress = cfg.progress.map(|p| (p, task.worker));
            let cpu = cfg.cpu_for(task.worker);
            // SAFETY: `Runner` refused to fork kernels in a multi-threaded
            // process (`Runner::check_forkable`), so the child inherits no
            // lock held by another thread. The task is one of the plan's
            // disjoint ranges of a file the coordinator sized before
            // starting any worker, which is `run_to_exit_code`'s contract.
            unsafe {
                os::fork_child(|| {
                    if let Some(cpu) = cpu {
                        let _ = os::pin_to_cpu(cpu);
                    }
                    worker::run_to_exit_code(task, file, kernel, progress, failure_file)
                })
            }
        }
        (WorkKind::Kernel(kernel), Spawn::Exec) => {
            // The worker receives the progress region, the failure slots
            // and the result slots at their documented numbers, and nothing
            // else (besides 0, 1 and 2).
            let mut fds: Vec<(i32, i32)> = Vec::new();
            if let Some(fd) = cfg.progress.and_then(ProgressRegion::raw_fd) {
                fds.push((fd, os::PROGRESS_FD));
            }
            if let (Some(f), Some(slot)) = (failures, failure_file) {
                fds.push((f.raw_fd(), os::FAILURE_FD));
                progress_env.push((
                    worker::FAILURE_FILE_VAR.to_string(),
                    fd_path(os::FAILURE_FD),
                ));
                progress_env.push((worker::FAILURE_SLOT_VAR.to_string(), slot.index.to_string()));
            }
            let mut task = task.clone();
            if let (Some(r), Some(slot)) = (cfg.results, task.result_file.as_mut()) {
                fds.push((r.raw_fd(), os::RESULT_FD));
                slot.path = fd_path(os::RESULT_FD).into();
            }
            let plan = exec_plan(cfg.worker_exe, &task, kernel, &progress_env)?;
            let cpu = cfg.cpu_for(task.worker);
            os::spawn_exec(&plan.program, &plan.argv, &plan.env, &fds, cpu)
        }
    };
    spawned.map_err(|e| Error::failed(format!("cannot start worker {}: {e}", task.worker)))
}
