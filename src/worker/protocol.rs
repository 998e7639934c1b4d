//! The worker protocol, version 1: everything that passes between the
//! coordinator and a worker, written down once. [`super::WorkerTask::to_env`]
//! and `WorkerTask::from_env` implement the environment, `os::progress` the
//! progress slots, `os::results` the result and failure slots,
//! [`crate::journal`] the journal records; `workers/README.md` is the guide
//! for people writing external workers (`mmrun exec`) against it.
//!
//! # Who speaks it
//!
//! - **Forked workers** inherit the task, the kernel and every descriptor;
//!   nothing below crosses a process boundary for them except the slots.
//! - **Re-executed workers** (`mmrun __worker`, `--spawn exec`) rebuild
//!   everything from their environment: the external variables, mmrun's own
//!   (marked *own* below) and `MMRUN_KERNEL`.
//! - **External programs** (`mmrun exec -- PROGRAM`) get the external
//!   variables only.
//!
//! # Environment
//!
//! | variable | who | value |
//! |---|---|---|
//! | `MMRUN_PROTOCOL` | all | `1`; a worker refuses anything else |
//! | `MMRUN_FILE` | all | the file to open read-write: the partial file `.<name>.mmrun-partial` of a new target, else the target |
//! | `MMRUN_FORMAT` | all | `npy` or `raw` |
//! | `MMRUN_DTYPE` | all | NumPy descr (`<f4`, `\|u1`) |
//! | `MMRUN_SHAPE` | all | the whole array's shape, `10000,10000`; empty for 0-d |
//! | `MMRUN_DATA_OFFSET` | all | byte offset of element 0 (any value, not only pages) |
//! | `MMRUN_ROW_START`, `MMRUN_ROW_END` | all | this worker's rows, end exclusive |
//! | `MMRUN_WORKER`, `MMRUN_WORKERS` | all | 0-based id; worker count |
//! | `MMRUN_SEED` | all | the job's seed (decimal, up to 128 bits); `exec` always sets it |
//! | `MMRUN_SYNC` | all | `full` or `none`: whether the coordinator fsyncs before publishing (a worker may stream writeback, never needs to sync) |
//! | `MMRUN_ATTEMPT` | all | 0 for the first attempt at these rows, 1 for the first retry … |
//! | `MMRUN_PROGRESS_FILE`, `MMRUN_PROGRESS_SLOT` | all, optional | the progress region (`/proc/self/fd/3`) and this worker's slot |
//! | `MMRUN_RANK`, `MMRUN_RANKS` | external, `--distributed` | this rank and the rank count |
//! | `MMRUN_KERNEL` | own | the kernel's spec, JSON ([`crate::kernels::KernelSpec`]), rebuilt through [`crate::kernels::build`] |
//! | `MMRUN_RESULT_FILE`, `MMRUN_RESULT_SLOT` | own, scans | the result slots (`/proc/self/fd/5`) and this worker's slot |
//! | `MMRUN_FAILURE_FILE`, `MMRUN_FAILURE_SLOT` | own | the failure slots (`/proc/self/fd/4`) and this worker's slot |
//! | `MMRUN_INPUT_FILE`, `MMRUN_INPUT_FORMAT`, `MMRUN_INPUT_DTYPE`, `MMRUN_INPUT_SHAPE`, `MMRUN_INPUT_DATA_OFFSET` | own, `apply --out`, per-row `reduce`, `convert` | the file read beside the one written, described as above (its dtype may be big-endian, `>f4`) |
//! | `MMRUN_INPUT_ORDER` | own, `convert` | `F` when that file is in Fortran order; absent for C order |
//!
//! `MMRUN_DEFAULT_WORKERS` and every other `MMRUN_*` variable of the
//! coordinator's own environment are removed (`MMRUN_LOG` is kept);
//! launcher variables (`OMPI_COMM_WORLD_*`, `PMI_*`, `PMIX_RANK`,
//! `SLURM_PROCID`) are removed unless `--keep-launcher-env`;
//! `PYTHONUNBUFFERED=1` is set. Later versions may add variables, never
//! change these.
//!
//! # Descriptors
//!
//! A worker that mmrun execs holds exactly 0 (`/dev/null` for external
//! programs), 1, 2 and, when the run has them, 3 (progress), 4 (failure
//! slots), 5 (result slots) — [`crate::os::WORKER_FDS`]; everything else is
//! closed before `exec`. The slot files are memfds: no name on any file
//! system, so a coordinator that dies leaves nothing behind.
//!
//! # Progress slots
//!
//! Slot `i` of the progress region is the native-endian `u64` at byte
//! `128·i` (a crossbeam `CachePadded` cell): worker `i`'s count of rows
//! done, from 0 to `ROW_END - ROW_START`, only increasing, published with
//! one aligned 8-byte store after each block. A worker writes only its
//! slot. The coordinator reads them for `--progress` and the journal.
//!
//! # Result and failure slots
//!
//! One sparse memfd per kind holds every slot: slot `i` is the byte range
//! `i·2⁴⁰ .. (i+1)·2⁴⁰`, a little-endian `u64` length and then that many
//! bytes, written bytes first and length last. A scan's worker leaves its
//! kernel's result ([`crate::kernels::Kernel::take_result`]: a reduction's
//! partial tree) in its result slot when it succeeds; a failing worker
//! leaves its error text (a kernel's message, a panic) in its failure slot,
//! which the coordinator's error line quotes. The coordinator empties a
//! slot before each attempt and reads it only after that attempt's process
//! exited, so no slot is read while it is written and a failed attempt's
//! result is never taken.
//!
//! # Exit status
//!
//! 0: every row of the range written. Anything else — an exit code, a
//! signal (SIGBUS included) — fails the range: retried whole with
//! `--retries`, rerun whole by `--resume`, so a worker writes its rows
//! idempotently. Workers never `msync` or `fsync` for the coordinator.
//!
//! # Journal records
//!
//! The coordinator, not the worker, writes `.<name>.mmrun-journal`
//! ([`crate::journal`]): an owner record (pid, host, boot id, uid, job
//! fingerprint — [`crate::kernels::Kernel::describe`] among its inputs,
//! seed), then one JSON line per record: `{"written":[…]}` row intervals
//! taken from the progress slots of running and finished workers, and
//! `{"durable":[…]}` after a sync (`SIGUSR1`, `--checkpoint-every`, the
//! final flush). A worker's rows count as written only once its slot says
//! so; `--resume` trusts written records only on the same host and boot.

/// Protocol version of the worker environment (`MMRUN_PROTOCOL`).
pub const PROTOCOL_VERSION: &str = "1";
