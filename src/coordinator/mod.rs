//! The coordinator: validate, reserve, lock, start workers, supervise, flush,
//! publish.
//!
//! [`Runner`] is the library's entry point. A run goes through these steps,
//! and only the last ones touch the disk:
//!
//! 1. *Prepare* — resolve the target (symlinks, directory), decide between
//!    building a new file and working in place, read or build the layout,
//!    build the kernel, plan the rows. Any problem here is exit 2 and
//!    nothing on disk has changed.
//! 2. *Lock* — create and lock the journal ([`crate::journal`]); a held
//!    journal is exit 75.
//! 3. *Reserve* — new files are built as `.<name>.mmrun-partial` beside the
//!    target, header written and every data block reserved with `fallocate`
//!    so no worker can die of SIGBUS on a full disk. A refusal here removes
//!    what this run created.
//! 4. *Run* — [`supervise::run_workers`].
//! 5. *Flush and publish* — `fsync` the file once (`--sync full`), rename
//!    the partial file over the target, `fsync` the directory, remove the
//!    journal. A run whose workers did not all succeed stops before this
//!    step: the target is untouched and the partial file and journal stay.

pub mod commit;
pub mod program;
pub mod read;
pub mod scan;
pub mod supervise;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::Serialize;

pub use program::Program;
pub use supervise::{Spawn, WorkerOutcome, WorkerRecord};

/// What a run's workers do.
enum Work {
    /// Nothing: the run only creates the file.
    Create,
    /// A kernel in mmrun workers.
    Kernel(Box<dyn Kernel>),
    /// An external program, with its resolved path.
    Program(Program, PathBuf),
}

use crate::distributed::{Rank, DISTRIBUTED_ALIGN};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::{self, Journal, Owner, Previous, Stale};
use crate::kernels::Kernel;
use crate::layout::npy::{self, PAGE_DATA_OFFSET};
use crate::layout::{DType, Format, HeaderStyle, Layout, RawSpec};
use crate::os;
use crate::os::progress::ProgressRegion;
use crate::plan::{Plan, RowRange, RowSet, RowSlice, LOCAL_ALIGN};
use crate::progress::{Progress, ProgressMode};
use crate::worker::{InputFile, WorkerTask};

/// How many workers to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Exactly this many (clamped to the number of rows).
    Count(usize),
    /// The CPUs this process may use (affinity mask, cgroup quota), capped
    /// by `SLURM_CPUS_PER_TASK` inside a Slurm step.
    Auto,
}

impl Workers {
    /// The count `Auto` stands for here, or the explicit count.
    pub fn resolve(self) -> usize {
        match self {
            Workers::Count(n) => n,
            Workers::Auto => auto_workers(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
                std::env::var("SLURM_STEP_ID").ok().as_deref(),
                std::env::var("SLURM_CPUS_PER_TASK").ok().as_deref(),
            ),
        }
    }
}

/// `--workers auto`: `available` CPUs, capped by Slurm's CPUs per task only
/// inside a step (an sbatch body outside `srun` has the variable too).
fn auto_workers(available: usize, step_id: Option<&str>, cpus_per_task: Option<&str>) -> usize {
    let cap = step_id
        .and(cpus_per_task)
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&c| c > 0);
    cap.map_or(available, |c| c.min(available)).max(1)
}

/// Whether data is made durable before publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// `fsync` the file, and the directory after the rename.
    #[default]
    Full,
    /// No sync: protects against a crashed process, not a crashed machine.
    None,
}

/// How space is reserved before workers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prealloc {
    /// `fallocate`; where the file system cannot, warn and go on.
    #[default]
    Auto,
    /// `fallocate`, and refuse where the file system cannot.
    Fallocate,
    /// Only set the file's length (sparse).
    None,
}

/// A new file to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Headerless (`--raw`) instead of `.npy`.
    pub raw: bool,
    /// Data offset of a raw file (zero bytes before it, as `numpy.memmap`'s
    /// `w+` leaves them).
    pub offset: u64,
    /// Header layout of a `.npy` file.
    pub header: HeaderStyle,
}

/// What a run works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target path as given.
    pub path: PathBuf,
    /// Build a new file with this layout (`--shape`).
    pub create: Option<NewFile>,
    /// Read an existing file as raw with this layout (`--raw`).
    pub raw: Option<RawSpec>,
    /// Replace an existing target, or discard a stale partial file.
    pub force: bool,
    /// Always build a new file (the `create` command), even for raw files
    /// whose layout options could describe the existing file.
    pub create_only: bool,
    /// Refuse an existing file whose dtype differs.
    pub expect_dtype: Option<DType>,
}

impl Target {
    /// A target at `path` worked on in place.
    pub fn existing(path: impl Into<PathBuf>) -> Self {
        Target {
            path: path.into(),
            create: None,
            raw: None,
            force: false,
            create_only: false,
            expect_dtype: None,
        }
    }

    /// A new `.npy` file at `path`.
    pub fn new_npy(path: impl Into<PathBuf>, dtype: DType, shape: Vec<u64>) -> Self {
        Target {
            create: Some(NewFile {
                dtype,
                shape,
                raw: false,
                offset: 0,
                header: HeaderStyle::Page,
            }),
            ..Target::existing(path)
        }
    }
}

/// Builder and entry point for a run.
#[derive(Debug, Clone)]
pub struct Runner {
    target: Target,
    workers: Workers,
    spawn: Spawn,
    sync: SyncMode,
    prealloc: Prealloc,
    align: u64,
    lock: bool,
    dry_run: bool,
    rows: Option<RowSlice>,
    seed: Option<u128>,
    kill_after: Duration,
    worker_exe: Option<PathBuf>,
    fork_with_threads: bool,
    retries: u32,
    timeout: Option<Duration>,
    fail_fast: bool,
    resume: bool,
    checkpoint_every: Option<Duration>,
    progress: ProgressMode,
    distributed: Option<Rank>,
    pending: bool,
    input: Option<(PathBuf, Option<RawSpec>)>,
    /// The input's layout as the caller read it ([`Runner::input_layout`]).
    input_layout: Option<Layout>,
    schedule: Schedule,
    pin: bool,
    reads: Vec<read::Reading>,
    idempotent: bool,
}

/// How rows are handed to workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Schedule {
    /// One range per worker, planned up front.
    #[default]
    Static,
    /// Chunks of about `chunk_rows` rows, claimed by whichever worker slot is
    /// free: uneven rows or machines balance themselves.
    Dynamic {
        /// Rows per chunk (rounded to aligned boundaries where possible).
        chunk_rows: u64,
    },
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The target as given.
    pub path: PathBuf,
    /// The file's layout.
    pub layout: Layout,
    /// Whether a new file was built and published.
    pub created: bool,
    /// Rows worked on.
    pub rows: RowRange,
    /// Worker count asked for, before clamping to the rows.
    pub workers_requested: usize,
    /// The partition of rows.
    pub plan: Plan,
    /// Per-worker records (empty for a dry run or `create`).
    pub workers: Vec<WorkerRecord>,
    /// Seconds spent validating, locking and reserving.
    pub prepare_s: f64,
    /// Seconds workers ran.
    pub run_s: f64,
    /// Seconds syncing and publishing.
    pub flush_s: f64,
    /// Bytes of rows written by workers.
    pub bytes: u64,
    /// Whether this was a dry run (nothing touched).
    pub dry_run: bool,
    /// How space was reserved: `fallocate` or `sparse`; for a dry run, how
    /// it would be.
    pub reserved: &'static str,
    /// The job's seed, if it has one.
    pub seed: Option<String>,
    /// Type of the file system holding the target (`ext4`, `tmpfs`, …).
    pub filesystem: String,
    /// Rows a resumed run took as done from the interrupted run.
    pub resumed_rows: u64,
    /// The run's parameters (worker count, spawn, sync, kernel, …).
    pub parameters: serde_json::Value,
    /// What the run computed (a reduction's result), if anything.
    pub results: serde_json::Value,
    /// Whether the run only read the file (a scan).
    pub read_only: bool,
}

/// The resolved target, before anything on disk changes.
#[derive(Debug)]
struct Prepared {
    real: PathBuf,
    layout: Layout,
    mode: Mode,
    input: Option<InputFile>,
    /// The input file, read under the read discipline.
    input_reading: Option<read::Reading>,
}

#[derive(Debug)]
enum Mode {
    New {
        header: Vec<u8>,
        keep_mode: Option<u32>,
    },
    InPlace {
        file: File,
    },
    /// A rank's view of a pending distributed run's partial file.
    Rank {
        file: File,
    },
}

impl Runner {
    /// A run on `target` with defaults: `--workers auto`, fork, `--sync
    /// full`, `--prealloc auto`, 4096-byte alignment, locking on.
    pub fn new(target: Target) -> Self {
        Runner {
            target,
            workers: Workers::Auto,
            spawn: Spawn::Fork,
            sync: SyncMode::Full,
            prealloc: Prealloc::Auto,
            align: LOCAL_ALIGN,
            lock: true,
            dry_run: false,
            rows: None,
            seed: None,
            kill_after: Duration::from_secs(10),
            worker_exe: None,
            fork_with_threads: false,
            retries: 0,
            timeout: None,
            fail_fast: false,
            resume: false,
            checkpoint_every: None,
            progress: ProgressMode::Never,
            distributed: None,
            pending: false,
            input: None,
            input_layout: None,
            schedule: Schedule::Static,
            pin: false,
            reads: Vec::new(),
            idempotent: false,
        }
    }

    /// A file the run's work reads (besides an [`Runner::input`]), started
    /// under the read discipline: the run fails (exit 1) and publishes
    /// nothing if it changed while the workers read it.
    pub fn reading(mut self, r: read::Reading) -> Self {
        self.reads.push(r);
        self
    }

    /// Declares the work idempotent: running it twice over the same rows
    /// gives the same bytes as once, so an in-place run that reads the rows
    /// it writes may still be retried and resumed (`--idempotent`).
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }

    /// Worker count.
    pub fn workers(mut self, w: Workers) -> Self {
        self.workers = w;
        self
    }

    /// Fork or exec.
    pub fn spawn(mut self, s: Spawn) -> Self {
        self.spawn = s;
        self
    }

    /// Sync mode.
    pub fn sync(mut self, s: SyncMode) -> Self {
        self.sync = s;
        self
    }

    /// Space reservation.
    pub fn prealloc(mut self, p: Prealloc) -> Self {
        self.prealloc = p;
        self
    }

    /// Boundary alignment in bytes.
    pub fn align(mut self, a: u64) -> Self {
        self.align = a.max(1);
        self
    }

    /// Whether to take the journal lock (`--no-lock` turns it off).
    pub fn lock(mut self, on: bool) -> Self {
        self.lock = on;
        self
    }

    /// Plan only; touch nothing.
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// Work on these rows only (`--rows A:B`).
    pub fn rows(mut self, r: Option<RowSlice>) -> Self {
        self.rows = r;
        self
    }

    /// The job's seed, passed to workers as `MMRUN_SEED`.
    pub fn seed(mut self, s: Option<u128>) -> Self {
        self.seed = s;
        self
    }

    /// Grace between SIGTERM and SIGKILL when interrupted.
    pub fn kill_after(mut self, d: Duration) -> Self {
        self.kill_after = d;
        self
    }

    /// The program `Spawn::Exec` re-executes as `PROGRAM __worker`: an
    /// `mmrun` binary. There is no default — re-executing the running
    /// program would run a library user's own `main` — so `Spawn::Exec`
    /// without it is refused (the `mmrun` binary passes itself).
    pub fn worker_exe(mut self, p: impl Into<PathBuf>) -> Self {
        self.worker_exe = Some(p.into());
        self
    }

    /// Fork workers even though this process has other threads (normally
    /// refused, see [`Runner::run`]).
    ///
    /// # Safety
    /// After `fork` the child has only the forking thread: a lock another
    /// thread held at that instant (the allocator's, stdio's, an
    /// interpreter's) stays held forever in the child. The caller promises
    /// that no thread can hold a lock the workers need while `run` forks —
    /// e.g. the other threads are parked in a known state, as an embedding
    /// interpreter that holds its global lock arranges.
    pub unsafe fn fork_with_threads(mut self) -> Self {
        self.fork_with_threads = true;
        self
    }

    /// Start a failed range again, up to `k` times (`--retries`).
    pub fn retries(mut self, k: u32) -> Self {
        self.retries = k;
        self
    }

    /// Stop the run when it has not finished after `t` (`--timeout`).
    pub fn timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    /// On the first failed worker, stop the others (`--fail-fast`).
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// Finish the run an interrupted run of the same job left (`--resume`).
    pub fn resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Sync and record durable rows this often (`--checkpoint-every`).
    pub fn checkpoint_every(mut self, d: Option<Duration>) -> Self {
        self.checkpoint_every = d;
        self
    }

    /// Run as one rank of a distributed job (`--distributed`): fill this
    /// rank's 64 KiB-aligned partition of a pending file.
    pub fn distributed(mut self, rank: Option<Rank>) -> Self {
        self.distributed = rank;
        self
    }

    /// Build a new file and leave it pending for ranks and `mmrun commit`
    /// (`create --pending`) instead of publishing it.
    pub fn pending(mut self, on: bool) -> Self {
        self.pending = on;
        self
    }

    /// A file the kernel reads row by row beside the target (`apply --out`):
    /// it must have as many rows as the target. Read as raw with `raw`.
    pub fn input(mut self, path: impl Into<PathBuf>, raw: Option<RawSpec>) -> Self {
        self.input = Some((path.into(), raw));
        self
    }

    /// A file read beside the target, described by `layout` as the caller
    /// read it — big-endian or Fortran order included — for a kernel that
    /// decodes such input itself in [`Kernel::run_io`] (convert). Workers
    /// map it as they map [`Runner::input`]'s rows; a Fortran-order input
    /// whole, since its rows are not byte ranges.
    pub fn input_layout(mut self, path: impl Into<PathBuf>, layout: Layout) -> Self {
        self.input = Some((path.into(), None));
        self.input_layout = Some(layout);
        self
    }

    /// Static ranges, or dynamic chunks claimed by free workers
    /// (`--schedule dynamic --chunk-rows K`; not for external programs,
    /// whose protocol gives each worker one range).
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }

    /// Pin worker slot `s` to the `s`-th CPU this process may use (`--pin`),
    /// wrapping around when there are more workers than CPUs.
    pub fn pin(mut self, on: bool) -> Self {
        self.pin = on;
        self
    }

    /// How to show progress (`--progress`); the library default is never.
    pub fn progress(mut self, p: ProgressMode) -> Self {
        self.progress = p;
        self
    }

    /// Builds (or checks) the file and runs the kernel `make` returns for
    /// its layout over the planned rows; `None` from `make` only creates
    /// the file. The fork path (the default) requires the calling process to
    /// be single-threaded (it counts `/proc/self/task` and refuses
    /// otherwise, naming `Spawn::Exec` as the fix).
    pub fn run<F>(&self, make: F) -> Result<RunSummary>
    where
        F: FnOnce(&Layout) -> Result<Option<Box<dyn Kernel>>>,
    {
        self.run_work(|layout| Ok(make(layout)?.map_or(Work::Create, Work::Kernel)))
    }

    /// Builds (or checks) the file and runs `program` as every worker, under
    /// the external-worker protocol (`mmrun exec`). The program is found and
    /// its templates checked before anything on disk changes.
    pub fn run_program(&self, program: Program) -> Result<RunSummary> {
        if matches!(self.schedule, Schedule::Dynamic { .. }) {
            return Err(Error::refused(
                "--schedule dynamic is for built-in kernels: exec gives each worker one range",
            ));
        }
        let resolved = program.validate()?;
        self.run_work(move |_| Ok(Work::Program(program, resolved)))
    }

    fn run_work<F>(&self, make: F) -> Result<RunSummary>
    where
        F: FnOnce(&Layout) -> Result<Work>,
    {
        let t0 = Instant::now();
        let mut prepared = self.prepare()?;
        let mut layout = prepared.layout.clone();
        let work = make(&layout)?;
        // What the user sees: the array's own shape, even where ranks split
        // an element-wise kernel's work inside rows (a flat view below).
        let shown = layout.clone();
        if let (Work::Kernel(k), Spawn::Exec) = (&work, self.spawn) {
            crate::kernels::check_rebuildable(k.as_ref())?;
        }
        self.check_spawnable(
            matches!(work, Work::Kernel(_)),
            matches!(work, Work::Program(..)),
        )?;
        let has_work = !matches!(work, Work::Create);
        let rows = self.rows.map_or(RowRange::new(0, layout.rows()), |r| {
            r.resolve(layout.rows())
        });
        let requested = self.workers.resolve();
        if requested == 0 {
            return Err(Error::refused("--workers must be at least 1"));
        }
        if !self.idempotent
            && not_idempotent_work(&work, &prepared)
            && (self.resume || self.retries > 0)
        {
            return Err(Error::refused(match work {
                Work::Program(..) => "an in-place exec worker may read the rows it writes, so a retried or resumed range could be applied twice: build a new file with --shape, or add --idempotent if running it twice over the same rows is harmless",
                _ => "this expression reads the values it overwrites in place, so a retried or resumed range would be applied twice: use --out OUT, or add --idempotent if that is harmless",
            }));
        }
        if self.pending && !matches!(prepared.mode, Mode::New { .. }) {
            return Err(Error::refused(
                "--pending builds a new file: give --shape (and --force to replace one)",
            ));
        }
        if self.pending && !self.dry_run {
            let most = max_row_ranks(&layout, self.align.max(DISTRIBUTED_ALIGN))?;
            if most < layout.rows().min(1024) {
                tracing::warn!(
                    "{}: fill, apply and convert split it across any number of ranks; exec'd programs and per-row reductions need whole rows per rank, which start at 64 KiB boundaries for at most {most} rank(s) ({} bytes per row)",
                    self.target.path.display(),
                    layout.row_bytes()?
                );
            }
        }
        let mut plan_rows = if has_work {
            rows
        } else {
            RowRange::new(rows.start, rows.start)
        };
        if let Some(rank) = self.distributed {
            if self.rows.is_some() {
                return Err(Error::refused(
                    "--rows cannot be combined with --distributed",
                ));
            }
            let elementwise = matches!(&work, Work::Kernel(k) if k.elementwise());
            let (part_layout, part) = rank_partition(&layout, rank, self.align, elementwise)?;
            if part_layout != layout {
                tracing::info!(
                    "whole rows of {} bytes cannot be split at 64 KiB: ranks split the elements instead",
                    layout.row_bytes()?
                );
                if let Some(input) = prepared.input.as_mut() {
                    input.layout = flat_view(&input.layout);
                }
                prepared.layout = part_layout.clone();
                layout = part_layout;
            }
            plan_rows = part;
        }
        let row_bytes = layout.row_bytes()?;
        let plan = Plan::split(
            plan_rows,
            requested,
            layout.data_offset,
            row_bytes,
            self.align,
        );
        let dir = prepared.real.parent().unwrap_or(Path::new("."));
        let mut summary = RunSummary {
            path: self.target.path.clone(),
            layout: shown,
            created: matches!(prepared.mode, Mode::New { .. }),
            rows,
            workers_requested: requested,
            plan: plan.clone(),
            workers: Vec::new(),
            prepare_s: 0.0,
            run_s: 0.0,
            flush_s: 0.0,
            bytes: plan_rows.len() * row_bytes,
            dry_run: self.dry_run,
            reserved: "none",
            seed: self.seed.map(|s| s.to_string()),
            filesystem: os::filesystem_type(dir),
            resumed_rows: 0,
            parameters: self.parameters(&work),
            results: serde_json::Value::Null,
            read_only: false,
        };
        if self.dry_run {
            summary.reserved = match self.prealloc {
                Prealloc::Auto => "reserved with fallocate where the file system can",
                Prealloc::Fallocate => "reserved with fallocate",
                Prealloc::None => "not reserved (sparse file)",
            };
            return Ok(summary);
        }
        if os::is_network_filesystem(&summary.filesystem) {
            tracing::warn!(
                "{} is on {}: several machines writing it without --distributed risk losing data",
                self.target.path.display(),
                summary.filesystem
            );
        }
        tracing::info!(
            "{} {}: {} {} {}, rows {plan_rows}, {} worker(s), {}",
            if summary.created {
                "building"
            } else {
                "updating"
            },
            self.target.path.display(),
            layout.format.name(),
            layout.dtype,
            layout.shape_text(),
            summary.plan.workers(),
            summary.filesystem
        );
        let result = self.execute(&mut summary, &prepared, work, plan_rows, t0);
        if result.is_ok() {
            tracing::info!("done in {:.3} s", t0.elapsed().as_secs_f64());
        }
        match result {
            Ok(()) => Ok(summary),
            Err(e) => Err(e.with_summary(summary)),
        }
    }

    /// Steps 2 to 5: lock, reserve, run, flush, publish.
    fn execute(
        &self,
        summary: &mut RunSummary,
        prepared: &Prepared,
        work: Work,
        plan_rows: RowRange,
        t0: Instant,
    ) -> Result<()> {
        let layout = &prepared.layout;
        let fingerprint = fingerprint(layout, summary.rows, &work, self.seed, &prepared.mode);
        let mut owner = Owner::this_process(fingerprint);
        // The seed is the run's: recorded before any worker starts, so a
        // drawn one survives a failure for --resume.
        owner.seed = self.seed.map(|s| s.to_string());
        owner.once = !self.idempotent && not_idempotent_work(&work, prepared);
        owner.rebuild = matches!(prepared.mode, Mode::New { .. });
        // Signals are taken through the watch from here on, so an interrupt
        // while space is being reserved cannot leave a stale journal.
        let mut watch = os::SignalWatch::new()
            .map_err(|e| Error::failed(format!("cannot watch signals: {e}")))?;
        if let (Mode::Rank { file }, Some(rank)) = (&prepared.mode, self.distributed) {
            return self.execute_rank(
                summary, prepared, file, &work, plan_rows, rank, owner, &mut watch, t0,
            );
        }
        let stale = if self.target.force {
            Stale::Discard
        } else if self.resume {
            Stale::Resume
        } else {
            Stale::Refuse
        };
        if matches!(prepared.mode, Mode::InPlace { .. }) {
            check_cow_space(&prepared.real, summary.bytes, &summary.filesystem)?;
        }
        let (mut journal, previous) = Journal::acquire(&prepared.real, &owner, self.lock, stale)?;
        let partial = journal::partial_path(&prepared.real);
        let trusted = match &previous {
            Some(prev) => self.check_resumable(prev, &owner, prepared, &partial)?,
            None => RowSet::new(),
        };
        if previous.is_some() {
            journal.record_owner(&owner)?;
        }
        // A run that died before it recorded any row left nothing worth
        // keeping (its partial file may be missing or half made): start over.
        let resuming = previous.is_some()
            && !(trusted.is_empty() && matches!(prepared.mode, Mode::New { .. }));
        let opened = if resuming {
            self.open_to_resume(prepared, &partial)
        } else {
            self.open_for_work(prepared, layout, &partial)
        }
        .and_then(|v| {
            let stop = watch
                .pending_stop()
                .map_err(|e| Error::failed(format!("cannot watch signals: {e}")))?;
            match stop {
                Some(sig) => Err(Error::new(
                    ErrorKind::Interrupted(sig as i32),
                    format!("interrupted by {sig} before any work: nothing was changed"),
                )),
                None => Ok(v),
            }
        });
        let (file, reserved) = match opened {
            Ok(v) => v,
            Err(e) if resuming => return Err(e),
            Err(e) => {
                // Stopped before any work: leave nothing behind.
                if matches!(prepared.mode, Mode::New { .. }) {
                    let _ = fs::remove_file(&partial);
                }
                let _ = journal.remove();
                return Err(e);
            }
        };
        summary.reserved = reserved;
        summary.resumed_rows = trusted.len();
        summary.prepare_s = t0.elapsed().as_secs_f64();
        let work_path = match prepared.mode {
            Mode::InPlace { .. } => prepared.real.clone(),
            _ => partial.clone(),
        };
        let mut kept = match prepared.mode {
            Mode::InPlace { .. } if !self.idempotent && not_idempotent_work(&work, prepared) => format!(
                "rows of {} may be partly written; the journal {} records which are done (--resume --idempotent finishes them if the work may run twice over the same rows; --force discards the journal)",
                prepared.real.display(),
                journal.path().display()
            ),
            Mode::InPlace { .. } => format!(
                "rows of {} may be partly written; the journal {} records which are done (--resume finishes them)",
                prepared.real.display(),
                journal.path().display()
            ),
            _ => format!(
                "the partial file {} is kept (--resume finishes it, --force discards it)",
                partial.display()
            ),
        };
        if let Some(seed) = self.seed {
            kept.push_str(&format!("; seed {seed}"));
        }
        let ran = self.run_tasks(
            summary,
            prepared,
            &file,
            &work_path,
            &work,
            plan_rows,
            &trusted,
            &mut journal,
            &mut watch,
        );
        if let Err(e) = ran {
            drop(journal);
            return Err(Error::new(e.kind(), format!("{}; {kept}", e.message())));
        }

        let t2 = Instant::now();
        if self.sync == SyncMode::Full || self.pending {
            file.sync_all()
                .map_err(|e| Error::io_failed("cannot sync", &work_path, e))?;
        }
        check_size(
            &file,
            layout,
            &work_path,
            matches!(prepared.mode, Mode::InPlace { .. }),
        )?;
        drop(file);
        // Nothing computed from an input that changed is published.
        if let Err(e) = self.check_reads(prepared) {
            if let Mode::New { .. } = prepared.mode {
                let _ = fs::remove_file(&partial);
                let _ = journal.remove();
            }
            return Err(e);
        }
        if self.pending {
            journal.mark_pending(&owner, &prepared.real)?;
            sync_dir(&prepared.real)?;
            summary.flush_s = t2.elapsed().as_secs_f64();
            return Ok(());
        }
        if let Mode::New { .. } = prepared.mode {
            fs::rename(&partial, &prepared.real)
                .map_err(|e| Error::io_failed("cannot publish", &prepared.real, e))?;
        }
        journal.remove()?;
        if self.sync == SyncMode::Full {
            sync_dir(&prepared.real)?;
        }
        os::test_signal_point("published");
        summary.flush_s = t2.elapsed().as_secs_f64();
        Ok(())
    }

    /// A rank of a distributed run: fill its partition of the pending
    /// partial file, sync it, and record it done in its own record file.
    #[allow(clippy::too_many_arguments)]
    fn execute_rank(
        &self,
        summary: &mut RunSummary,
        prepared: &Prepared,
        file: &File,
        work: &Work,
        partition: RowRange,
        rank: Rank,
        owner: Owner,
        watch: &mut os::SignalWatch,
        t0: Instant,
    ) -> Result<()> {
        let pending = journal::open_pending(&prepared.real, false, self.lock)?;
        let journal_path = journal::journal_path(&prepared.real);
        let rank_byte = journal::RANK_BYTE_BASE + rank.rank;
        if !journal::lock_byte(&pending.file, &journal_path, rank_byte, true, self.lock)? {
            return Err(Error::busy(format!(
                "{}: rank {} of {} is already running",
                prepared.real.display(),
                rank.rank,
                rank.size
            )));
        }
        let (mut record, previous) = Journal::rank_record(&prepared.real, rank.rank, rank.size)?;
        let trusted = match &previous {
            Some(prev) if prev.owner.fingerprint != owner.fingerprint => {
                return Err(Error::refused(format!(
                    "{}: rank {} already recorded another job (fingerprint {} vs {}): every rank must run the same command",
                    prepared.real.display(),
                    rank.rank,
                    prev.owner.fingerprint,
                    owner.fingerprint
                )))
            }
            Some(prev) if prev.done => {
                tracing::info!("rank {} of {} is already done", rank.rank, rank.size);
                summary.resumed_rows = partition.len();
                return Ok(());
            }
            Some(prev) if !self.resume => {
                let _ = prev;
                return Err(Error::refused(format!(
                    "{}: rank {} of {} was interrupted before: use --resume to finish it",
                    prepared.real.display(),
                    rank.rank,
                    rank.size
                )));
            }
            Some(prev) => {
                let same = prev.owner.host == owner.host && prev.owner.boot_id == owner.boot_id;
                let mut t = prev.durable.clone();
                if same {
                    t.extend(&prev.written);
                }
                t
            }
            None => RowSet::new(),
        };
        record.record_owner(&owner)?;
        summary.resumed_rows = trusted.len();
        summary.prepare_s = t0.elapsed().as_secs_f64();
        let partial = journal::partial_path(&prepared.real);
        self.run_tasks(
            summary,
            prepared,
            file,
            &partial,
            work,
            partition,
            &trusted,
            &mut record,
            watch,
        )
        .map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "rank {} of {}: {}; its record keeps what is done (--resume finishes it)",
                    rank.rank,
                    rank.size,
                    e.message()
                ),
            )
        })?;
        let t2 = Instant::now();
        // Only this rank's rows need to reach the disk before it says done.
        os::test_signal_point("rank-sync");
        file.sync_data()
            .map_err(|e| Error::io_failed("cannot sync", &partial, e))?;
        check_size(file, &prepared.layout, &partial, false)?;
        self.check_reads(prepared)?;
        record.record_done(partition)?;
        drop(pending);
        summary.flush_s = t2.elapsed().as_secs_f64();
        Ok(())
    }

    /// Runs the work over `rows` minus `trusted`, recording progress in
    /// `journal`; an error if any range did not succeed.
    #[allow(clippy::too_many_arguments)]
    fn run_tasks(
        &self,
        summary: &mut RunSummary,
        prepared: &Prepared,
        file: &File,
        work_path: &Path,
        work: &Work,
        rows: RowRange,
        trusted: &RowSet,
        journal: &mut Journal,
        watch: &mut os::SignalWatch,
    ) -> Result<()> {
        let layout = &prepared.layout;
        let t1 = Instant::now();
        let kind = match work {
            Work::Create => return Ok(()),
            Work::Kernel(k) => supervise::WorkKind::Kernel(k.as_ref()),
            Work::Program(program, resolved) => supervise::WorkKind::Program { program, resolved },
        };
        let row_bytes = layout.row_bytes()?;
        let mut ranges = Vec::new();
        for gap in trusted.missing(rows) {
            let p = self.schedule_plan(gap, summary.workers_requested, layout, row_bytes);
            ranges.extend(p.ranges);
        }
        if !trusted.is_empty() || matches!(self.schedule, Schedule::Dynamic { .. }) {
            summary.plan.ranges = ranges.clone();
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let concurrency = summary.workers_requested.min(ranges.len()).max(1);
        let tasks: Vec<WorkerTask> = ranges
            .iter()
            .enumerate()
            .map(|(i, &range)| WorkerTask {
                path: work_path.to_path_buf(),
                layout: layout.clone(),
                range,
                worker: i,
                workers: concurrency,
                seed: self.seed,
                attempt: 0,
                stream_writeback: self.sync == SyncMode::Full,
                input: prepared.input.clone(),
                result_file: None,
            })
            .collect();
        let exe = self.resolved_worker_exe()?;
        let region = ProgressRegion::create(concurrency)
            .map_err(|e| Error::failed(format!("cannot create the progress region: {e}")))?;
        let cfg = supervise::SpawnConfig {
            spawn: self.spawn,
            worker_exe: &exe,
            kill_after: self.kill_after,
            concurrency,
            retries: if !self.idempotent && not_idempotent_work(work, prepared) {
                0
            } else {
                self.retries
            },
            timeout: self.timeout,
            fail_fast: self.fail_fast,
            progress: Some(&region),
            extra_env: self
                .distributed
                .map(|r| {
                    vec![
                        ("MMRUN_RANK".to_string(), r.rank.to_string()),
                        ("MMRUN_RANKS".to_string(), r.size.to_string()),
                    ]
                })
                .unwrap_or_default(),
            results: None,
            pin: self.pin.then(os::allowed_cpus),
        };
        let mut observer =
            RunObserver::new(journal, file, trusted.clone(), self, summary, row_bytes);
        observer.whole_ranges = matches!(work, Work::Program(..));
        let sup = supervise::run_workers(watch, file, &tasks, kind, &cfg, &mut observer);
        let journal_error = observer.finish();
        let sup = sup?;
        summary.workers = sup.workers;
        summary.run_s = t1.elapsed().as_secs_f64();
        if let Some(e) = journal_error {
            tracing::warn!("{e}");
        }
        if let Some(sig) = sup.interrupted {
            return Err(Error::new(
                ErrorKind::Interrupted(sig),
                format!(
                    "interrupted by SIG{}: nothing was published",
                    os::signal_name(sig)
                ),
            ));
        }
        if sup.task_ok.iter().any(|ok| !ok) {
            return Err(failure_error(
                summary,
                sup.timed_out,
                "nothing was published",
            ));
        }
        Ok(())
    }

    /// Fails if a file the run read changed while it was read.
    fn check_reads(&self, prepared: &Prepared) -> Result<()> {
        self.reads
            .iter()
            .chain(prepared.input_reading.as_ref())
            .try_for_each(read::Reading::check)
    }

    /// How `rows` are handed to `workers` under the run's schedule: one
    /// aligned range per worker, or chunks of `--chunk-rows` (0 means about
    /// 8 MiB of rows: enough chunks per worker to balance, few enough that
    /// forking stays cheap).
    fn schedule_plan(
        &self,
        rows: RowRange,
        workers: usize,
        layout: &Layout,
        row_bytes: u64,
    ) -> Plan {
        match self.schedule {
            Schedule::Static => {
                Plan::split(rows, workers, layout.data_offset, row_bytes, self.align)
            }
            Schedule::Dynamic { chunk_rows } => {
                let k = if chunk_rows == 0 {
                    ((8 << 20) / row_bytes.max(1)).max(1)
                } else {
                    chunk_rows
                };
                Plan::chunks(rows, k, layout.data_offset, row_bytes, self.align)
            }
        }
    }

    /// The program re-executed for `Spawn::Exec` workers: the one given,
    /// else `$MMRUN_WORKER_EXE` (set by the Python package's `mmrun`
    /// command, whose own executable is the interpreter). Checked present
    /// by [`Runner::check_spawnable`] before any work; unused by forks.
    fn resolved_worker_exe(&self) -> Result<PathBuf> {
        Ok(self.explicit_worker_exe().unwrap_or_default())
    }

    fn explicit_worker_exe(&self) -> Option<PathBuf> {
        self.worker_exe.clone().or_else(|| {
            std::env::var_os("MMRUN_WORKER_EXE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// Refuses, before any work, to start workers in a way this process
    /// cannot do soundly: forking a kernel or an external program's shim
    /// (both run Rust code after `fork`) from a multi-threaded process,
    /// where the child could inherit a lock another thread holds (unless
    /// the caller vouched for it with [`Runner::fork_with_threads`]); and
    /// `Spawn::Exec` without a worker executable.
    pub(crate) fn check_spawnable(&self, kernel: bool, program: bool) -> Result<()> {
        let forks = program || (kernel && self.spawn == Spawn::Fork);
        let threads = os::thread_count();
        if forks && threads > 1 && !self.fork_with_threads {
            let fix = if program {
                "run it from a single-threaded process (before starting threads)"
            } else {
                "use Spawn::Exec with Runner::worker_exe(PATH of an mmrun binary), or run before starting threads"
            };
            return Err(Error::refused(format!(
                "this process has {threads} threads and Spawn::Fork needs a single-threaded one (a forked worker could inherit another thread's lock): {fix}"
            )));
        }
        if kernel && self.spawn == Spawn::Exec && self.explicit_worker_exe().is_none() {
            return Err(Error::refused(
                "Spawn::Exec needs Runner::worker_exe(PATH of an mmrun binary): re-executing this program would run its own main",
            ));
        }
        Ok(())
    }

    /// Checks a stale journal may be resumed by this run, and returns the
    /// rows it can trust.
    fn check_resumable(
        &self,
        prev: &Previous,
        me: &Owner,
        prepared: &Prepared,
        partial: &Path,
    ) -> Result<RowSet> {
        let target = prepared.real.display();
        if prev.owner.fingerprint != me.fingerprint {
            return Err(Error::refused(format!(
                "{target}: the interrupted run had other parameters (job fingerprint {} vs {}): --resume needs the same command and --seed, or use --force to start over",
                prev.owner.fingerprint, me.fingerprint
            )));
        }
        if prev.owner.uid != me.uid {
            return Err(Error::refused(format!(
                "{target}: the interrupted run belongs to uid {}, not {}: refusing to resume it",
                prev.owner.uid, me.uid
            )));
        }
        let recorded = !prev.written.is_empty() || !prev.durable.is_empty();
        if matches!(prepared.mode, Mode::New { .. }) && recorded && !partial.exists() {
            return Err(Error::refused(format!(
                "{target}: nothing to resume: the partial file {} is gone (use --force to start over)",
                partial.display()
            )));
        }
        let same_machine = prev.owner.host == me.host && prev.owner.boot_id == me.boot_id;
        let mut trusted = prev.durable.clone();
        if same_machine {
            // The page cache still holds what was written: trust it (the
            // partial file is synced before publishing anyway).
            trusted.extend(&prev.written);
        } else {
            tracing::info!(
                "resuming a run from host {} (or an earlier boot): trusting only durable rows",
                prev.owner.host
            );
        }
        Ok(trusted)
    }

    /// Opens the partial file (or target) of an interrupted run to resume.
    fn open_to_resume(&self, p: &Prepared, partial: &Path) -> Result<(File, &'static str)> {
        match &p.mode {
            Mode::New { header, .. } => {
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(partial)
                    .map_err(|e| Error::io_refused("cannot open", partial, e))?;
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                let mut head = vec![0u8; header.len()];
                let same_header = file
                    .read_exact(&mut head)
                    .map(|_| head == *header)
                    .unwrap_or(false);
                if len != p.layout.file_len()? || !same_header {
                    return Err(Error::refused(format!(
                        "{} does not have the layout of this job: use --force to start over",
                        partial.display()
                    )));
                }
                Ok((file, "kept"))
            }
            Mode::InPlace { file } | Mode::Rank { file } => {
                let file = file
                    .try_clone()
                    .map_err(|e| Error::io_refused("cannot open", &p.real, e))?;
                Ok((file, "kept"))
            }
        }
    }

    /// The run's parameters, as the JSON report records them.
    fn parameters(&self, work: &Work) -> serde_json::Value {
        serde_json::json!({
            "workers": match self.workers {
                Workers::Auto => "auto".to_string(),
                Workers::Count(n) => n.to_string(),
            },
            "spawn": self.spawn,
            "sync": self.sync,
            "prealloc": self.prealloc,
            "align": self.align,
            "lock": self.lock,
            "retries": self.retries,
            "timeout_s": self.timeout.map(|t| t.as_secs_f64()),
            "kill_after_s": self.kill_after.as_secs_f64(),
            "fail_fast": self.fail_fast,
            "schedule": self.schedule,
            "pin": self.pin,
            "distributed": self.distributed,
            "resume": self.resume,
            "seed": self.seed.map(|s| s.to_string()),
            "work": match work {
                Work::Create => serde_json::Value::Null,
                Work::Kernel(k) => serde_json::json!(k.spec()),
                Work::Program(p, _) => serde_json::json!({ "program": p.argv }),
            },
        })
    }

    /// Step 1: everything that can be checked without changing the disk.
    fn prepare(&self) -> Result<Prepared> {
        os::test_signal_point("prepare");
        let mut prepared = if self.distributed.is_some() {
            self.prepare_rank()?
        } else {
            self.prepare_target()?
        };
        if let Some((path, raw)) = &self.input {
            prepared.input_reading = Some(read::Reading::start(path)?);
            let mut file =
                File::open(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
            let mut layout = match &self.input_layout {
                Some(described) => {
                    let have = file
                        .metadata()
                        .map_err(|e| Error::io_refused("cannot stat", path, e))?
                        .len();
                    let need = described.file_len()?;
                    if have < need {
                        return Err(Error::refused(format!(
                            "{} is {have} bytes but its layout needs {need}",
                            path.display()
                        )));
                    }
                    described.clone()
                }
                None => {
                    let layout = Layout::read(path, &mut file, raw.as_ref())?;
                    layout.check_workable(path)?;
                    layout
                }
            };
            // One dimension has no memory order (NumPy writes either flag).
            if layout.shape.len() < 2 {
                layout.fortran_order = false;
            }
            if layout.rows() != prepared.layout.rows() {
                return Err(Error::refused(format!(
                    "{} has {} rows but {} has {}",
                    path.display(),
                    layout.rows(),
                    self.target.path.display(),
                    prepared.layout.rows()
                )));
            }
            if fs::canonicalize(path).ok().as_deref() == Some(prepared.real.as_path()) {
                return Err(Error::refused(
                    "the output file must not be the input file (leave out --out to work in place)",
                ));
            }
            prepared.input = Some(InputFile {
                path: path.clone(),
                layout,
            });
        }
        Ok(prepared)
    }

    fn prepare_target(&self) -> Result<Prepared> {
        let t = &self.target;
        let path = &t.path;
        match fs::symlink_metadata(path) {
            Ok(_) => {
                let real = fs::canonicalize(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        Error::refused(format!("{} is a dangling symbolic link", path.display()))
                    }
                    _ => Error::io_refused("cannot resolve", path, e),
                })?;
                let meta =
                    fs::metadata(&real).map_err(|e| Error::io_refused("cannot access", path, e))?;
                if meta.is_dir() {
                    return Err(Error::refused(format!("{} is a directory", path.display())));
                }
                if !meta.is_file() {
                    return Err(Error::refused(format!(
                        "{} is not a regular file",
                        path.display()
                    )));
                }
                if let Some(new) = &t.create {
                    // --resume finishes an interrupted rebuild that --force
                    // started; it never replaces a file on its own.
                    let resuming = self.resume && journal::journal_path(&real).exists();
                    if !t.force && !resuming {
                        // Only fill, exec and create in place take --shape.
                        let in_place = if t.create_only {
                            ""
                        } else if t.raw.is_some() {
                            ", or add --in-place to work on it with this layout"
                        } else {
                            ", or leave out --shape to work on it in place"
                        };
                        return Err(Error::refused(format!(
                            "{} already exists: use --force to replace it{in_place}",
                            path.display()
                        )));
                    }
                    // As cp and rm without -f: a file its user may not write
                    // is not replaced.
                    if nix::unistd::access(&real, nix::unistd::AccessFlags::W_OK).is_err() {
                        return Err(Error::refused(format!(
                            "{} is not writable by you: --force does not replace it (its owner can make it writable with chmod u+w)",
                            path.display()
                        )));
                    }
                    let (layout, header) = new_layout(new, self.pending)?;
                    return Ok(Prepared {
                        real,
                        layout,
                        mode: Mode::New {
                            header,
                            keep_mode: Some(meta.permissions().mode() & 0o7777),
                        },
                        input: None,
                        input_reading: None,
                    });
                }
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&real)
                    .map_err(|e| Error::io_refused("cannot open", path, e))?;
                let layout = Layout::read(path, &mut file, t.raw.as_ref())?;
                layout.check_workable(path)?;
                if let Some(d) = t.expect_dtype.filter(|&d| d != layout.dtype) {
                    return Err(Error::refused(format!(
                        "{} holds {}, not {d}: leave out --dtype, or use --force with --shape to replace it",
                        path.display(),
                        layout.dtype
                    )));
                }
                Ok(Prepared {
                    real,
                    layout,
                    mode: Mode::InPlace { file },
                    input: None,
                    input_reading: None,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(new) = &t.create else {
                    if let Some(busy) = pending_elsewhere(path) {
                        return Err(busy);
                    }
                    return Err(Error::refused(format!(
                        "{} does not exist: give --shape and --dtype to create it",
                        path.display()
                    )));
                };
                let name = path.file_name().ok_or_else(|| {
                    Error::refused(format!("{} does not name a file", path.display()))
                })?;
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let dir = fs::canonicalize(parent).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        Error::refused(format!("directory {} does not exist", parent.display()))
                    }
                    _ => Error::io_refused("cannot access directory", parent, e),
                })?;
                if !dir.is_dir() {
                    return Err(Error::refused(format!(
                        "{} is not a directory",
                        parent.display()
                    )));
                }
                let (layout, header) = new_layout(new, self.pending)?;
                Ok(Prepared {
                    real: dir.join(name),
                    layout,
                    mode: Mode::New {
                        header,
                        keep_mode: None,
                    },
                    input: None,
                    input_reading: None,
                })
            }
            Err(e) => Err(Error::io_refused("cannot access", path, e)),
        }
    }

    /// A rank finds the partial file of a pending run (ranks never create,
    /// resize or rename a file).
    fn prepare_rank(&self) -> Result<Prepared> {
        let t = &self.target;
        if t.create.is_some() {
            return Err(Error::refused(
                "ranks never create files: run mmrun create --pending FILE --shape .. --dtype .. first, without --shape on the ranks",
            ));
        }
        let name = t
            .path
            .file_name()
            .ok_or_else(|| Error::refused(format!("{} does not name a file", t.path.display())))?;
        let parent = match t.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = fs::canonicalize(parent)
            .map_err(|e| Error::io_refused("cannot access directory", parent, e))?;
        let real = dir.join(name);
        let partial = journal::partial_path(&real);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&partial)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::refused(format!(
                    "{}: no pending distributed run (create one with mmrun create --pending)",
                    t.path.display()
                )),
                _ => Error::io_refused("cannot open", &partial, e),
            })?;
        let layout = Layout::read(&partial, &mut file, t.raw.as_ref())?;
        layout.check_workable(&t.path)?;
        if let Some(d) = t.expect_dtype.filter(|&d| d != layout.dtype) {
            return Err(Error::refused(format!(
                "{} holds {}, not {d}",
                t.path.display(),
                layout.dtype
            )));
        }
        Ok(Prepared {
            real,
            layout,
            mode: Mode::Rank { file },
            input: None,
            input_reading: None,
        })
    }

    /// Step 3: the partial file built and reserved, or the target opened.
    fn open_for_work(
        &self,
        p: &Prepared,
        layout: &Layout,
        partial: &Path,
    ) -> Result<(File, &'static str)> {
        let len = layout.file_len()?;
        match &p.mode {
            Mode::New { header, keep_mode } => {
                let create = || {
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .mode(0o666)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                        .open(partial)
                };
                let mut file = match create() {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // We hold the journal, so this is a leftover of ours.
                        fs::remove_file(partial)
                            .map_err(|e| Error::io_refused("cannot remove", partial, e))?;
                        create()
                    }
                    other => other,
                }
                .map_err(|e| Error::io_refused("cannot create", partial, e))?;
                if let Some(mode) = keep_mode {
                    file.set_permissions(fs::Permissions::from_mode(*mode))
                        .map_err(|e| Error::io_refused("cannot set the mode of", partial, e))?;
                }
                let reserved = self.reserve(&file, 0, len, &p.real)?;
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| file.write_all(header))
                    .map_err(|e| Error::io_refused("cannot write the header of", partial, e))?;
                Ok((file, reserved))
            }
            Mode::InPlace { file } | Mode::Rank { file } => {
                let file = file
                    .try_clone()
                    .map_err(|e| Error::io_refused("cannot open", &p.real, e))?;
                let reserved =
                    self.reserve(&file, layout.data_offset, layout.data_bytes()?, &p.real)?;
                Ok((file, reserved))
            }
        }
    }

    /// Reserves `offset..offset+len` and makes the file at least that long.
    fn reserve(&self, file: &File, offset: u64, len: u64, target: &Path) -> Result<&'static str> {
        let end = offset + len;
        let sparse = |file: &File| -> Result<&'static str> {
            if file.metadata().map(|m| m.len()).unwrap_or(0) < end {
                file.set_len(end)
                    .map_err(|e| space_error(target, end, e.raw_os_error()))?;
            }
            Ok("sparse")
        };
        match self.prealloc {
            Prealloc::None => sparse(file),
            mode => match os::reserve(file, offset, len) {
                Ok(()) => Ok("fallocate"),
                Err(Errno::EOPNOTSUPP | Errno::ENOSYS) if mode == Prealloc::Auto => {
                    tracing::warn!(
                        "the file system of {} cannot reserve space: going on without (a full disk may stop workers)",
                        target.display()
                    );
                    sparse(file)
                }
                Err(e) => Err(space_error(target, end, Some(e as i32))),
            },
        }
    }
}

/// Whether a retried or resumed range would compute a different result
/// (an in-place kernel that reads what it overwrites).
fn not_idempotent_work(work: &Work, prepared: &Prepared) -> bool {
    let reads = match work {
        Work::Kernel(k) => k.reads_input(),
        Work::Program(..) => true,
        Work::Create => false,
    };
    reads && matches!(prepared.mode, Mode::InPlace { .. })
}

/// The coordinator's observer: records written rows in the journal, makes
/// them durable on SIGUSR1 or `--checkpoint-every`, and shows progress.
///
/// A checkpoint's sync runs in a helper process ([`os::spawn_sync`]), so
/// the loop goes on reaping workers and handling signals during a long
/// writeback; the rows recorded when the helper started are written as
/// "durable" once it exited 0. The helper is killed when the run ends first.
struct RunObserver<'a> {
    journal: &'a mut Journal,
    file: &'a File,
    recorded: RowSet,
    durable: RowSet,
    last_record: Instant,
    last_checkpoint: Instant,
    checkpoint_every: Option<Duration>,
    display: Progress,
    error: Option<Error>,
    pending: Option<(Vec<RowRange>, u64)>,
    /// The running checkpoint helper and the rows it makes durable.
    syncing: Option<(nix::unistd::Pid, RowSet)>,
    /// A checkpoint was asked for while one ran: start another after it.
    checkpoint_again: bool,
    /// Record only whole finished ranges: external programs are retried and
    /// resumed by whole worker ranges, whatever progress they report.
    whole_ranges: bool,
}

/// How often "written" records are appended at most.
const RECORD_EVERY: Duration = Duration::from_millis(500);

impl<'a> RunObserver<'a> {
    fn new(
        journal: &'a mut Journal,
        file: &'a File,
        trusted: RowSet,
        runner: &Runner,
        summary: &RunSummary,
        row_bytes: u64,
    ) -> Self {
        let now = Instant::now();
        RunObserver {
            journal,
            file,
            durable: trusted.clone(),
            recorded: trusted,
            last_record: now,
            last_checkpoint: now,
            checkpoint_every: runner.checkpoint_every,
            display: Progress::new(runner.progress, summary.bytes / row_bytes.max(1), row_bytes),
            error: None,
            pending: None,
            syncing: None,
            checkpoint_again: false,
            whole_ranges: false,
        }
    }

    /// Appends a "written" record for rows done and not yet recorded.
    fn record(&mut self, force: bool) {
        let Some((ranges, _)) = self.pending.take() else {
            return;
        };
        if !force && self.last_record.elapsed() < RECORD_EVERY {
            self.pending = Some((ranges, 0));
            return;
        }
        let mut new = Vec::new();
        for r in ranges {
            for gap in self.recorded.missing(r) {
                new.push(gap);
            }
        }
        if new.is_empty() {
            return;
        }
        if let Err(e) = self.journal.record_written(&new) {
            self.error.get_or_insert(e);
            return;
        }
        new.into_iter().for_each(|r| self.recorded.insert(r));
        self.last_record = Instant::now();
    }

    /// Records what is left and returns the first journal error, if any.
    fn finish(mut self) -> Option<Error> {
        self.record(true);
        self.poll_sync();
        self.stop_sync();
        self.display.finish();
        self.error.take()
    }

    /// Writes the "durable" records of a checkpoint helper that has exited.
    fn poll_sync(&mut self) {
        let Some((pid, _)) = &self.syncing else {
            return;
        };
        let exit = match os::reap(*pid) {
            Ok(None) => return,
            Ok(Some((exit, _))) => exit,
            Err(e) => {
                self.syncing = None;
                self.error
                    .get_or_insert(Error::failed(format!("checkpoint sync: wait4: {e}")));
                return;
            }
        };
        let (_, covered) = self.syncing.take().expect("checked above");
        if exit != os::Exit::Code(0) {
            self.error
                .get_or_insert(Error::failed(format!("checkpoint sync failed ({exit:?})")));
            return;
        }
        let new: Vec<RowRange> = covered
            .ranges()
            .iter()
            .flat_map(|&r| self.durable.missing(r))
            .collect();
        match self.journal.record_durable(&new) {
            Ok(()) => {
                new.into_iter().for_each(|r| self.durable.insert(r));
                tracing::info!("checkpoint: {} rows durable", self.durable.len());
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        if std::mem::take(&mut self.checkpoint_again) {
            supervise::Observer::checkpoint(self);
        }
    }

    /// Kills and reaps a checkpoint helper still running.
    fn stop_sync(&mut self) {
        if let Some((pid, _)) = self.syncing.take() {
            os::kill_and_reap(pid);
        }
    }
}

impl Drop for RunObserver<'_> {
    fn drop(&mut self) {
        self.stop_sync();
    }
}

impl supervise::Observer for RunObserver<'_> {
    fn tick(&mut self, tasks: &[WorkerTask], done: &[u64], running: usize, failed: usize) {
        self.poll_sync();
        let ranges: Vec<RowRange> = tasks
            .iter()
            .zip(done)
            .filter(|(t, &d)| d > 0 && (!self.whole_ranges || d == t.range.len()))
            .map(|(t, &d)| RowRange::new(t.range.start, t.range.start + d))
            .collect();
        let total: u64 = done.iter().sum();
        self.pending = Some((ranges, total));
        self.record(false);
        self.display.update(
            self.durable.len().max(self.recorded.len()).max(total),
            running,
            failed,
        );
        if self
            .checkpoint_every
            .is_some_and(|d| self.last_checkpoint.elapsed() >= d)
        {
            self.checkpoint();
        }
    }

    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if self.syncing.is_some() {
            self.checkpoint_again = true;
            return;
        }
        self.record(true);
        match os::spawn_sync(std::os::fd::AsFd::as_fd(self.file)) {
            Ok(pid) => self.syncing = Some((pid, self.recorded.clone())),
            Err(e) => {
                self.error
                    .get_or_insert(Error::failed(format!("checkpoint sync failed: {e}")));
            }
        }
    }
}

/// `layout` seen as one row per element: shape `(size,)`, same bytes.
fn flat_view(layout: &Layout) -> Layout {
    Layout {
        shape: vec![layout.shape.iter().product()],
        ..layout.clone()
    }
}

/// Rank `rank`'s part: partition `rank.rank` of `rank.size`, boundaries at
/// byte offsets that are multiples of 64 KiB (or `--align`, if larger).
/// Two nodes writing back the same page of a shared file system lose data,
/// so boundaries are never anywhere else.
///
/// Whole rows are split where the row size allows; otherwise an
/// `elementwise` kernel (fill, apply, convert) splits the elements, so a rank may own
/// partial rows at its edges: the returned layout is then the flat view
/// ([`flat_view`]) and the range counts elements. Kernels that need whole
/// rows (exec'd programs, per-row reductions) are refused, naming the rank
/// counts that do split the file.
fn rank_partition(
    layout: &Layout,
    rank: Rank,
    align: u64,
    elementwise: bool,
) -> Result<(Layout, RowRange)> {
    let align = align.max(DISTRIBUTED_ALIGN);
    let split = |l: &Layout| -> Result<Option<RowRange>> {
        let all = RowRange::new(0, l.rows());
        let part = Plan::split(
            all,
            rank.size as usize,
            l.data_offset,
            l.row_bytes()?,
            align,
        );
        if part.workers() > 1 && part.alignment != crate::plan::Alignment::Aligned {
            return Ok(None);
        }
        Ok(Some(
            part.ranges
                .get(rank.rank as usize)
                .copied()
                .unwrap_or(RowRange::new(all.end, all.end)),
        ))
    };
    if let Some(r) = split(layout)? {
        return Ok((layout.clone(), r));
    }
    if elementwise {
        let flat = flat_view(layout);
        if let Some(r) = split(&flat)? {
            return Ok((flat, r));
        }
    }
    let rows = max_row_ranks(layout, align)?;
    Err(Error::refused(format!(
        "the rows of this file cannot be split into {} partitions at {align}-byte aligned offsets (data at byte {}, {} bytes per row): nodes would share pages; {}",
        rank.size,
        layout.data_offset,
        layout.row_bytes()?,
        if elementwise {
            "its elements cannot be split either: use fewer ranks".to_string()
        } else {
            format!("this command needs whole rows per rank, so at most {rows} rank(s) can run it")
        }
    )))
}

/// The most ranks whose whole-row partitions of `layout` start at
/// `align`-byte aligned offsets (1 when none do).
pub fn max_row_ranks(layout: &Layout, align: u64) -> Result<u64> {
    let rows = layout.rows();
    let Some((first, period)) =
        crate::plan::aligned_rows(layout.data_offset, layout.row_bytes()?, align)
    else {
        return Ok(1);
    };
    // Inner boundaries can be the aligned rows in 1..rows.
    let first = if first == 0 { period } else { first };
    if first >= rows {
        return Ok(1);
    }
    Ok((rows - 1 - first) / period + 2)
}

/// The exit-75 error for a target that does not exist yet because a
/// pending distributed run is building it, if one is.
pub fn pending_elsewhere(path: &Path) -> Option<Error> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let real = fs::canonicalize(parent).ok()?.join(path.file_name()?);
    if !journal::journal_path(&real).exists() {
        return None;
    }
    match journal::open_pending(&real, false, true) {
        Ok(p) => Some(Error::busy(format!(
            "{}: pending distributed run created by pid {} on host {}: run mmrun commit, or --force to discard",
            path.display(),
            p.owner.pid,
            p.owner.host
        ))),
        Err(e) if e.kind() == ErrorKind::Busy => Some(e),
        Err(_) => None,
    }
}

/// The error of a run whose workers did not all succeed: each failed
/// worker described, then what that means for the run (`outcome`).
fn failure_error(summary: &RunSummary, timed_out: bool, outcome: &str) -> Error {
    let failed: Vec<String> = summary
        .workers
        .iter()
        .filter(|w| !w.outcome.succeeded())
        .map(WorkerRecord::describe)
        .collect();
    let what = if timed_out { "the run timed out: " } else { "" };
    Error::failed(format!("{what}{}; {outcome}", failed.join("; ")))
}

/// Refuses to publish a file whose size changed under the run (someone
/// truncated or extended it).
fn check_size(file: &File, layout: &Layout, path: &Path, in_place: bool) -> Result<()> {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let need = layout.file_len()?;
    if len != need && !(in_place && len > need) {
        return Err(Error::failed(format!(
            "{} changed size during the run ({len} bytes, expected {need}): nothing was published",
            path.display()
        )));
    }
    Ok(())
}

/// Layout and header bytes for a new file.
fn new_layout(new: &NewFile, pending: bool) -> Result<(Layout, Vec<u8>)> {
    if new.raw {
        let layout = Layout::new(Format::Raw, new.dtype, new.shape.clone(), new.offset)?;
        return Ok((layout, vec![0; 0]));
    }
    // Check the size first so a huge shape is refused as an overflow.
    let bare = Layout::new(Format::Npy { major: 1 }, new.dtype, new.shape.clone(), 0)?;
    let header = if pending && new.header == HeaderStyle::Page {
        // Ranks split the file at 64 KiB-aligned offsets: element-wise
        // kernels anywhere between elements (the data at 4096 or 8192 is
        // aligned for every dtype), kernels that need whole rows only at
        // rows that start there. Put the data where most ranks can split
        // whole rows (4096 or 8192; NumPy reads headers up to 10000 bytes).
        let mut offset = PAGE_DATA_OFFSET;
        let mut best = 0;
        for off in [PAGE_DATA_OFFSET, 2 * PAGE_DATA_OFFSET] {
            let l = Layout {
                data_offset: off,
                ..bare.clone()
            };
            let n = max_row_ranks(&l, DISTRIBUTED_ALIGN)?;
            if n > best {
                (offset, best) = (off, n);
            }
        }
        npy::encode_padded(new.dtype, &new.shape, offset).map_err(|e| Error::refused(e.0))?
    } else {
        npy::encode_header(new.dtype, &new.shape, new.header).map_err(|e| Error::refused(e.0))?
    };
    let layout = Layout::new(
        Format::Npy { major: header[6] },
        new.dtype,
        new.shape.clone(),
        header.len() as u64,
    )?;
    Ok((layout, header))
}

/// Refuses an in-place run on a copy-on-write file system (Btrfs, ZFS,
/// bcachefs) without room for the rows it rewrites: there every rewritten
/// block is written somewhere new, so a file whose blocks were all reserved
/// still runs out of space, and a worker storing into its mapping then dies
/// of SIGBUS halfway. Refused before any work, the file stays unchanged.
/// (Files marked NOCOW, `chattr +C`, need no room; they are refused alike.)
fn check_cow_space(target: &Path, bytes: u64, filesystem: &str) -> Result<()> {
    if !matches!(filesystem, "btrfs" | "zfs" | "bcachefs") {
        return Ok(());
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    match os::available_bytes(dir) {
        Some(avail) if avail < bytes => Err(Error::refused(format!(
            "{}: {filesystem} copies every block rewritten in place, so rewriting {bytes} bytes needs that much free space and {avail} bytes are available: free space first, or write a new file (mmrun apply FILE --expr EXPR --out NEW)",
            target.display()
        ))),
        _ => Ok(()),
    }
}

fn space_error(target: &Path, need: u64, errno: Option<i32>) -> Error {
    let dir = target.parent().unwrap_or(Path::new("."));
    match errno {
        Some(libc::ENOSPC) => {
            let avail = os::available_bytes(dir).map(|a| format!(", {a} available")).unwrap_or_default();
            Error::refused(format!(
                "not enough space in {} for {}: it needs {need} bytes{avail}",
                dir.display(),
                target.display()
            ))
        }
        Some(libc::EDQUOT) => Error::refused(format!(
            "disk quota exceeded in {}: {} needs {need} bytes",
            dir.display(),
            target.display()
        )),
        Some(libc::EFBIG) => Error::refused(format!(
            "{} would be {need} bytes, over this process's file size limit (ulimit -f) or the file system's",
            target.display()
        )),
        Some(e) => Error::refused(format!(
            "cannot reserve {need} bytes for {}: {}",
            target.display(),
            std::io::Error::from_raw_os_error(e)
        )),
        None => Error::refused(format!("cannot reserve {need} bytes for {}", target.display())),
    }
}

fn sync_dir(target: &Path) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_failed("cannot sync directory", dir, e))
}

/// A short hash of the job's parameters (FNV-1a over their JSON), recorded in
/// the journal so a resumed run can tell it is the same job.
fn fingerprint(
    layout: &Layout,
    rows: RowRange,
    work: &Work,
    seed: Option<u128>,
    mode: &Mode,
) -> String {
    // A rebuild (new file) and an in-place run of the same command are
    // different jobs: their rows live in different files.
    let mode = match mode {
        Mode::New { .. } => "new",
        Mode::InPlace { .. } => "in_place",
        Mode::Rank { .. } => "rank",
    };
    let what = match work {
        Work::Create => serde_json::Value::Null,
        Work::Kernel(k) => serde_json::json!(k.spec()),
        Work::Program(p, _) => serde_json::json!(p.argv),
    };
    let text = serde_json::json!({
        "layout": layout,
        "rows": rows,
        "work": what,
        "seed": seed.map(|s| s.to_string()),
        "mode": mode,
    })
    .to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_workers_honours_slurm_only_inside_a_step() {
        assert_eq!(auto_workers(16, None, Some("4")), 16);
        assert_eq!(auto_workers(16, Some("0"), Some("4")), 4);
        assert_eq!(auto_workers(2, Some("0"), Some("8")), 2);
        assert_eq!(auto_workers(16, Some("0"), Some("junk")), 16);
        assert_eq!(auto_workers(0, None, None), 1);
    }
}
