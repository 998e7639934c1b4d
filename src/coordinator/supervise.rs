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
//! - `Running` → a worker exits: reaped with `wait4` (status + rusage).
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
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernels::Kernel;
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
}

impl WorkerRecord {
    /// A one-line description of a failure.
    pub fn describe(&self) -> String {
        let who = format!("worker {} (rows {})", self.worker, self.rows);
        match &self.outcome {
            WorkerOutcome::Exited { code } => format!("{who} exited with code {code}"),
            WorkerOutcome::Signal { signal, name, .. } if *signal == libc::SIGBUS => {
                format!("{who}: I/O error on rows {} (SIG{name}: the file was truncated or the device failed)", self.rows)
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
        }
    }
}

/// How workers are started and stopped.
#[derive(Debug, Clone)]
pub struct SpawnConfig<'a> {
    /// Fork or exec.
    pub spawn: Spawn,
    /// The program re-executed for `Spawn::Exec` (normally this `mmrun`).
    pub worker_exe: &'a Path,
    /// Grace between SIGTERM and SIGKILL on interrupt.
    pub kill_after: Duration,
}

/// What the loop ended with.
#[derive(Debug)]
pub struct Supervised {
    /// One record per worker, by id.
    pub workers: Vec<WorkerRecord>,
    /// The signal that interrupted the run, if one did.
    pub interrupted: Option<i32>,
}

struct Live {
    pid: Pid,
    started: Instant,
    done: bool,
}

/// Everything an exec'd worker needs, prepared before `fork` so the child
/// only calls `execve`.
struct ExecPlan {
    program: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

fn exec_plan(exe: &Path, task: &WorkerTask, kernel: &dyn Kernel) -> Result<ExecPlan> {
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
    {
        env.push(cs(format!("{k}={v}").as_bytes())?);
    }
    Ok(ExecPlan {
        argv: vec![program.clone(), cs(b"__worker")?],
        program,
        env,
    })
}

/// Starts one worker per task and waits for all of them.
pub fn run_workers(
    watch: &mut SignalWatch,
    file: &File,
    tasks: &[WorkerTask],
    kernel: &dyn Kernel,
    cfg: &SpawnConfig<'_>,
) -> Result<Supervised> {
    let mut records: Vec<WorkerRecord> = tasks
        .iter()
        .map(|t| WorkerRecord {
            worker: t.worker,
            pid: 0,
            rows: t.range,
            seconds: 0.0,
            outcome: WorkerOutcome::SpawnFailed {
                error: "not started".into(),
            },
            usage: Usage::default(),
        })
        .collect();
    let mut live: Vec<Option<Live>> = Vec::with_capacity(tasks.len());
    let mut interrupted: Option<i32> = None;
    let mut kill_at: Option<Instant> = None;

    for (i, task) in tasks.iter().enumerate() {
        let _span =
            tracing::debug_span!("worker", worker = task.worker, rows = %task.range).entered();
        let started = Instant::now();
        let spawned = match cfg.spawn {
            Spawn::Fork => os::fork_child(|| match worker::run(task, file, kernel) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("mmrun: worker {}: {e}", task.worker);
                    crate::exit_code::RUN_FAILED
                }
            }),
            Spawn::Exec => {
                let plan = exec_plan(cfg.worker_exe, task, kernel)?;
                os::fork_child(move || {
                    let _ = nix::unistd::execve(&plan.program, &plan.argv, &plan.env);
                    127
                })
            }
        };
        match spawned {
            Ok(pid) => {
                records[i].pid = pid.as_raw();
                live.push(Some(Live {
                    pid,
                    started,
                    done: false,
                }));
            }
            Err(e) => {
                records[i].outcome = WorkerOutcome::SpawnFailed {
                    error: e.to_string(),
                };
                live.push(None);
            }
        }
    }

    loop {
        // Reap everything that has exited.
        while let Some((pid, exit, usage)) =
            os::reap_any().map_err(|e| Error::failed(format!("wait4: {e}")))?
        {
            if let Some(i) = live
                .iter()
                .position(|l| l.as_ref().is_some_and(|l| l.pid == pid && !l.done))
            {
                let l = live[i].as_mut().expect("position found it");
                l.done = true;
                let r = &mut records[i];
                r.seconds = l.started.elapsed().as_secs_f64();
                r.usage = usage;
                r.outcome = match (exit, interrupted) {
                    (Exit::Code(0), _) => WorkerOutcome::Exited { code: 0 },
                    (_, Some(sig)) => WorkerOutcome::Interrupted { signal: sig },
                    (Exit::Code(code), None) => WorkerOutcome::Exited { code },
                    (
                        Exit::Signal {
                            signal,
                            core_dumped,
                        },
                        None,
                    ) => WorkerOutcome::Signal {
                        signal,
                        name: os::signal_name(signal),
                        core_dumped,
                    },
                };
                if !r.outcome.succeeded() {
                    tracing::debug!(worker = r.worker, "worker failed: {}", r.describe());
                }
            }
        }
        let running: Vec<Pid> = live
            .iter()
            .flatten()
            .filter(|l| !l.done)
            .map(|l| l.pid)
            .collect();
        if running.is_empty() {
            break;
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) {
            running
                .iter()
                .for_each(|&p| os::signal_group(p, Signal::SIGKILL));
            kill_at = None;
        }
        match watch
            .wait(200)
            .map_err(|e| Error::failed(format!("waiting for workers: {e}")))?
        {
            Wake::Signal(s @ (Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP)) => {
                if interrupted.is_none() {
                    interrupted = Some(s as i32);
                    tracing::info!("received {s}: stopping workers");
                    running
                        .iter()
                        .for_each(|&p| os::signal_group(p, Signal::SIGTERM));
                    kill_at = Some(Instant::now() + cfg.kill_after);
                } else {
                    running
                        .iter()
                        .for_each(|&p| os::signal_group(p, Signal::SIGKILL));
                }
            }
            Wake::Signal(_) | Wake::Timeout => {}
        }
    }
    Ok(Supervised {
        workers: records,
        interrupted,
    })
}
