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
mod fingerprint;
mod header;
mod observer;
pub mod program;
mod ranks;
pub mod read;
pub mod restore;
mod runner;
pub mod scan;
pub mod supervise;
mod target;

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use program::Program;
pub use ranks::max_row_ranks;
pub use runner::{Prealloc, Runner, Schedule, SyncMode, Workers};
pub use supervise::{Spawn, WorkerOutcome, WorkerRecord};
pub use target::{NewFile, Target};

use fingerprint::fingerprint;
use observer::RunObserver;
use ranks::{flat_view, rank_partition};
use target::{check_cow_space, check_size, sync_dir, Mode, Prepared};

use crate::distributed::{Rank, DISTRIBUTED_ALIGN};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::{self, Journal, Owner, Previous, Stale};
use crate::kernels::Kernel;
use crate::layout::Layout;
use crate::os;
use crate::os::progress::ProgressRegion;
use crate::os::results::ResultSlots;
use crate::plan::{Plan, RowRange, RowSet};
use crate::worker::WorkerTask;

/// What a run's workers do.
enum Work {
    /// Nothing: the run only creates the file.
    Create,
    /// A kernel in mmrun workers.
    Kernel(Box<dyn Kernel>),
    /// An external program, with its resolved path.
    Program(Program, PathBuf),
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
    /// What each successful task of a kernel that writes rows handed back
    /// ([`Kernel::take_result`]: a per-row reduction's or an apply's
    /// warning counts), in task order; empty when none did.
    #[serde(skip)]
    pub kernel_results: Vec<Vec<u8>>,
}

impl Error {
    /// The summary of the run that failed, if it got that far.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.attached()
    }

    /// The same error carrying the run's summary.
    pub fn with_summary(self, summary: RunSummary) -> Self {
        self.attach(summary)
    }
}

impl Runner {
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
            kernel_results: Vec::new(),
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
        // A program, or a kernel reading its own block (a closure; not one
        // reading an input file), on a new file may read what it writes: a
        // range it runs again (retried, or resumed after an interrupted
        // run) starts from zeros, as in an undisturbed run. Only whole
        // ranges are then recorded done (below), so no zeroed row is ever
        // trusted by a later --resume.
        let reads_own_rows = match work {
            Work::Program(..) => true,
            Work::Kernel(k) => k.reads_input() && prepared.input.is_none(),
            Work::Create => false,
        };
        let zero = (reads_own_rows && matches!(prepared.mode, Mode::New { .. }))
            .then(|| restore::ZeroRows::new(work_path.to_path_buf(), layout))
            .transpose()?;
        if let (Some(z), true) = (&zero, self.resume) {
            for &r in &ranges {
                z.zero(file, r)?;
            }
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
        // A kernel may hand back what it noticed (warning counts).
        let slots = match work {
            Work::Kernel(_) => Some(
                ResultSlots::create(concurrency)
                    .map_err(|e| Error::failed(format!("cannot create the result slots: {e}")))?,
            ),
            _ => None,
        };
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
            results: slots.as_ref(),
            pin: self.pin.then(os::allowed_cpus),
            zero_before_retry: zero.clone(),
        };
        let mut observer =
            RunObserver::new(journal, file, trusted.clone(), self, summary, row_bytes);
        observer.whole_ranges = matches!(work, Work::Program(..)) || zero.is_some();
        let sup = supervise::run_workers(watch, file, &tasks, kind, &cfg, &mut observer);
        let journal_error = observer.finish();
        let sup = sup?;
        summary.workers = sup.workers;
        summary.run_s = t1.elapsed().as_secs_f64();
        summary.kernel_results = sup.results.into_iter().flatten().collect();
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
                Work::Kernel(k) => serde_json::json!(k.describe()),
                Work::Program(p, _) => serde_json::json!({ "program": p.argv }),
            },
        })
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
