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

fn exec_spec(program: &Path, argv: Vec<Vec<u8>>, env: Vec<Vec<u8>>) -> Result<os::ExecSpec> {
    let cs = |b: Vec<u8>| {
        CString::new(b).map_err(|_| Error::refused("an argument or variable contains a NUL byte"))
    };
    Ok(os::ExecSpec {
        program: cs(program.as_os_str().as_bytes().to_vec())?,
        argv: argv.into_iter().map(cs).collect::<Result<_>>()?,
        env: env.into_iter().map(cs).collect::<Result<_>>()?,
    })
}

/// Starts one worker per task and waits for all of them.
pub fn run_workers(
    watch: &mut SignalWatch,
    file: &File,
    tasks: &[WorkerTask],
    work: WorkKind<'_>,
    cfg: &SpawnConfig<'_>,
) -> Result<Supervised> {
    let mut pumps: Vec<Pump> = Vec::new();
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
    let mut ready = Vec::new();

    for (i, task) in tasks.iter().enumerate() {
        let _span =
            tracing::debug_span!("worker", worker = task.worker, rows = %task.range).entered();
        let started = Instant::now();
        let spawned = match (work, cfg.spawn) {
            (WorkKind::Program { program, resolved }, _) => {
                let (argv, env) = program::worker_command(program, resolved, task, &[])?;
                let spec = exec_spec(resolved, argv, env)?;
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
                os::fork_child(|| match worker::run(task, file, kernel) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("mmrun: worker {}: {e}", task.worker);
                        crate::exit_code::RUN_FAILED
                    }
                })
            }
            (WorkKind::Kernel(kernel), Spawn::Exec) => {
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
            // Take what the workers wrote last; a descendant that escaped
            // and still holds a pipe open cannot keep the run waiting.
            pumps.iter_mut().for_each(Pump::drain);
            break;
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) {
            running
                .iter()
                .for_each(|&p| os::signal_group(p, Signal::SIGKILL));
            kill_at = None;
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
        }
        match wake {
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
