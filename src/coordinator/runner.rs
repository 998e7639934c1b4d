//! The run's builder: [`Runner`] and the options it takes — how many
//! workers ([`Workers`]), how they start, sync ([`SyncMode`]), space
//! reservation ([`Prealloc`]), rows handed out ([`Schedule`]) and every
//! other `mmrun` run option. Running lives beside it in `coordinator`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::read;
use super::supervise::Spawn;
use super::Target;
use crate::distributed::Rank;
use crate::layout::{Layout, RawSpec};
use crate::plan::{RowSlice, LOCAL_ALIGN};
use crate::progress::ProgressMode;

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

/// Builder and entry point for a run.
#[derive(Debug, Clone)]
pub struct Runner {
    pub(super) target: Target,
    pub(super) workers: Workers,
    pub(super) spawn: Spawn,
    pub(super) sync: SyncMode,
    pub(super) prealloc: Prealloc,
    pub(super) align: u64,
    pub(super) lock: bool,
    pub(super) dry_run: bool,
    pub(super) rows: Option<RowSlice>,
    pub(super) seed: Option<u128>,
    pub(super) kill_after: Duration,
    pub(super) worker_exe: Option<PathBuf>,
    pub(super) fork_with_threads: bool,
    pub(super) retries: u32,
    pub(super) timeout: Option<Duration>,
    pub(super) fail_fast: bool,
    pub(super) resume: bool,
    pub(super) checkpoint_every: Option<Duration>,
    pub(super) progress: ProgressMode,
    pub(super) distributed: Option<Rank>,
    pub(super) pending: bool,
    pub(super) input: Option<(PathBuf, Option<RawSpec>)>,
    /// The input's layout as the caller read it ([`Runner::input_layout`]).
    pub(super) input_layout: Option<Layout>,
    pub(super) schedule: Schedule,
    pub(super) pin: bool,
    pub(super) reads: Vec<read::Reading>,
    pub(super) idempotent: bool,
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
    /// decodes such input itself in [`Kernel::run_io`](crate::kernels::Kernel::run_io) (convert). Workers
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

    /// Whether this runner runs one rank of a distributed job.
    pub fn is_distributed(&self) -> bool {
        self.distributed.is_some()
    }

    /// A second runner for `target` that publishes what this run's
    /// coordinator finished (a reduction's result): this runner's syncing,
    /// locking and host (fork with threads), every other option at its
    /// default.
    pub fn publisher(&self, target: Target) -> Runner {
        Runner {
            sync: self.sync,
            lock: self.lock,
            fork_with_threads: self.fork_with_threads,
            ..Runner::new(target)
        }
    }
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
