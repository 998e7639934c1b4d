//! The worker side: run a kernel over this worker's rows block by block,
//! stream them to the file, exit.
//!
//! A worker is started either by `fork` (it inherits the open file and the
//! kernel) or by re-executing `mmrun __worker`, which rebuilds everything
//! from its environment: the worker protocol, written down in [`protocol`]
//! ([`WorkerTask::to_env`] implements it).
//!
//! Each worker touches only its own rows. A fill, which overwrites every
//! element of its blocks, computes each block in a cache-sized buffer that
//! is `pwrite`n to the file; any other kernel runs on a shared mapping of
//! the worker's rows (and nothing else, so the worker never holds a
//! reference to bytes another process writes). Both land in the same page
//! cache, which every other mapping of the file sees. In a syncing run the
//! block loop streams writeback (see `Writeback`): the disk writes finished
//! windows while the kernel computes the next ones, and a worker's resident
//! set stays bounded by a few windows, not by its partition. The mapped
//! rows are populated a window at a time ahead of the loop (`prefetch`).

mod prefetch;
pub mod protocol;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kernels::{self, AnyRowsMut, Kernel, KernelSpec, RowsIn};
use crate::layout::{DType, Format, Layout};
use crate::os::progress::ProgressRegion;
use crate::os::{self, ReadRegion, SharedRegion};
use crate::plan::RowRange;
use prefetch::Prefetch;

/// Target bytes per kernel block: about the size of an L2 cache. 256 KiB
/// and 1 MiB measured alike here (512 KiB L2), 128 KiB and 4 MiB slower.
const BLOCK_BYTES: u64 = 1 << 20;

/// Protocol version of the worker environment ([`protocol`]).
pub use protocol::PROTOCOL_VERSION;

/// Everything one worker needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerTask {
    /// The file to write (the partial file for new targets).
    pub path: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// This worker's rows.
    pub range: RowRange,
    /// 0-based worker id.
    pub worker: usize,
    /// Number of workers in the run.
    pub workers: usize,
    /// The job's seed, if it has one.
    pub seed: Option<u128>,
    /// 0 for the first attempt at these rows, 1 for the first retry, ...
    pub attempt: u32,
    /// A file read row by row beside the one written (`apply --out`).
    pub input: Option<InputFile>,
    /// Stream writeback while working (a `--sync full` run): start writing
    /// each finished window to disk and wait for the one two back, so the
    /// final `fsync` has little left. `false` (no streaming) is always
    /// correct: it only leaves all the flushing to the end. Crosses `exec`
    /// as `MMRUN_SYNC=full|none` (absent means `none`).
    pub stream_writeback: bool,
    /// Where to leave the kernel's result ([`Kernel::take_result`]) when
    /// the task succeeds: the coordinator's result slot for this worker.
    /// Crosses `exec` as `MMRUN_RESULT_FILE` and `MMRUN_RESULT_SLOT`.
    pub result_file: Option<os::results::SlotRef>,
}

/// A file a kernel reads: the same rows as the file it writes.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFile {
    /// Its path.
    pub path: PathBuf,
    /// Its layout.
    pub layout: Layout,
}

impl WorkerTask {
    /// The protocol-v1 environment describing this task.
    pub fn to_env(&self) -> Vec<(String, String)> {
        let shape: Vec<String> = self.layout.shape.iter().map(u64::to_string).collect();
        let mut env = vec![
            ("MMRUN_PROTOCOL".into(), PROTOCOL_VERSION.into()),
            (
                "MMRUN_FILE".into(),
                self.path.to_string_lossy().into_owned(),
            ),
            ("MMRUN_FORMAT".into(), self.layout.format.name().into()),
            ("MMRUN_DTYPE".into(), self.layout.dtype.descr()),
            ("MMRUN_SHAPE".into(), shape.join(",")),
            (
                "MMRUN_DATA_OFFSET".into(),
                self.layout.data_offset.to_string(),
            ),
            ("MMRUN_ROW_START".into(), self.range.start.to_string()),
            ("MMRUN_ROW_END".into(), self.range.end.to_string()),
            ("MMRUN_WORKER".into(), self.worker.to_string()),
            ("MMRUN_WORKERS".into(), self.workers.to_string()),
        ];
        if let Some(seed) = self.seed {
            env.push(("MMRUN_SEED".into(), seed.to_string()));
        }
        env.push(("MMRUN_ATTEMPT".into(), self.attempt.to_string()));
        let sync = if self.stream_writeback {
            "full"
        } else {
            "none"
        };
        env.push(("MMRUN_SYNC".into(), sync.into()));
        if let Some(r) = &self.result_file {
            env.push((
                "MMRUN_RESULT_FILE".into(),
                r.path.to_string_lossy().into_owned(),
            ));
            env.push(("MMRUN_RESULT_SLOT".into(), r.index.to_string()));
        }
        if let Some(input) = &self.input {
            // mmrun's own re-executed workers only; not part of protocol v1.
            let shape: Vec<String> = input.layout.shape.iter().map(u64::to_string).collect();
            env.push((
                "MMRUN_INPUT_FILE".into(),
                input.path.to_string_lossy().into_owned(),
            ));
            env.push((
                "MMRUN_INPUT_FORMAT".into(),
                input.layout.format.name().into(),
            ));
            env.push((
                "MMRUN_INPUT_DTYPE".into(),
                input.layout.dtype.descr_with(input.layout.byte_order),
            ));
            if input.layout.fortran_order {
                env.push(("MMRUN_INPUT_ORDER".into(), "F".into()));
            }
            env.push(("MMRUN_INPUT_SHAPE".into(), shape.join(",")));
            env.push((
                "MMRUN_INPUT_DATA_OFFSET".into(),
                input.layout.data_offset.to_string(),
            ));
        }
        env
    }

    /// Reads a task back from protocol-v1 variables.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let need = |k: &str| get(k).ok_or_else(|| Error::refused(format!("{k} is not set")));
        let num = |k: &str| -> Result<u64> {
            need(k)?
                .parse()
                .map_err(|_| Error::refused(format!("{k} is not a number")))
        };
        if need("MMRUN_PROTOCOL")? != PROTOCOL_VERSION {
            return Err(Error::refused("unsupported MMRUN_PROTOCOL"));
        }
        let dtype: DType = need("MMRUN_DTYPE")?
            .parse()
            .map_err(|e| Error::refused(format!("MMRUN_DTYPE: {e}")))?;
        let format = match need("MMRUN_FORMAT")?.as_str() {
            "npy" => Format::Npy { major: 1 },
            "raw" => Format::Raw,
            other => return Err(Error::refused(format!("MMRUN_FORMAT {other} is unknown"))),
        };
        let shape = crate::layout::parse_shape(&need("MMRUN_SHAPE")?)?;
        let layout = Layout::new(format, dtype, shape, num("MMRUN_DATA_OFFSET")?)?;
        let input = match get("MMRUN_INPUT_FILE") {
            Some(path) => {
                let descr = need("MMRUN_INPUT_DTYPE")?;
                let (dtype, byte_order) = DType::parse_descr(&descr).ok_or_else(|| {
                    Error::refused(format!("MMRUN_INPUT_DTYPE {descr} is not a dtype"))
                })?;
                let format = match need("MMRUN_INPUT_FORMAT")?.as_str() {
                    "raw" => Format::Raw,
                    _ => Format::Npy { major: 1 },
                };
                let shape = crate::layout::parse_shape(&need("MMRUN_INPUT_SHAPE")?)?;
                let mut layout =
                    Layout::new(format, dtype, shape, num("MMRUN_INPUT_DATA_OFFSET")?)?;
                layout.byte_order = byte_order;
                layout.fortran_order = get("MMRUN_INPUT_ORDER").as_deref() == Some("F");
                Some(InputFile {
                    path: PathBuf::from(path),
                    layout,
                })
            }
            None => None,
        };
        let seed = match get("MMRUN_SEED") {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| Error::refused("MMRUN_SEED is not a number"))?,
            ),
            None => None,
        };
        let (start, end) = (num("MMRUN_ROW_START")?, num("MMRUN_ROW_END")?);
        if start > end || end > layout.rows() {
            return Err(Error::refused(format!(
                "MMRUN_ROW_START..MMRUN_ROW_END {start}..{end} is not a range of the file's {} rows",
                layout.rows()
            )));
        }
        Ok(WorkerTask {
            path: PathBuf::from(need("MMRUN_FILE")?),
            layout,
            range: RowRange::new(start, end),
            worker: num("MMRUN_WORKER")? as usize,
            workers: num("MMRUN_WORKERS")? as usize,
            seed,
            attempt: get("MMRUN_ATTEMPT")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            input,
            result_file: match (get("MMRUN_RESULT_FILE"), get("MMRUN_RESULT_SLOT")) {
                (Some(path), Some(slot)) => Some(os::results::SlotRef {
                    path: PathBuf::from(path),
                    index: slot
                        .parse()
                        .map_err(|_| Error::refused("MMRUN_RESULT_SLOT is not a number"))?,
                }),
                _ => None,
            },
            stream_writeback: match get("MMRUN_SYNC").as_deref() {
                None | Some("none") => false,
                Some("full") => true,
                Some(other) => {
                    return Err(Error::refused(format!(
                        "MMRUN_SYNC {other} is unknown (full or none)"
                    )))
                }
            },
        })
    }
}

/// A progress region and this worker's slot in it.
pub type ProgressSlot<'a> = (&'a ProgressRegion, usize);

/// Runs `kernel` over the task's rows of `file`, publishing rows done to
/// `progress` after every block and streaming writeback when the task asks
/// for it.
///
/// # Safety
/// The rows `task.range` of `file` are mapped shared and handed to the
/// kernel as `&mut` slices, so for the whole call:
/// - no other call of `run` (in this or any process) works on rows that
///   overlap `task.range` of the same file, and nothing else in this
///   process holds a reference into those bytes;
/// - `file` is at least `task.layout.file_len()` bytes long, its layout is
///   `task.layout`, and nobody truncates it (that would be SIGBUS).
///
/// The coordinator guarantees both: its plan gives each worker disjoint
/// rows and it sizes the file before starting any.
pub unsafe fn run(
    task: &WorkerTask,
    file: &File,
    kernel: &dyn Kernel,
    progress: Option<ProgressSlot<'_>>,
) -> Result<()> {
    if kernel.scans() {
        scan(task, file, kernel, progress)?;
    } else {
        run_windowed(task, file, kernel, progress, WRITEBACK_BYTES)?;
    }
    if let Some(slot) = &task.result_file {
        let result = kernel
            .take_result()
            .map_err(|e| Error::failed(format!("rows {}: {e}", task.range)))?;
        if let Some(bytes) = result {
            os::results::write_result(slot, &bytes)
                .map_err(|e| Error::failed(format!("cannot hand back the result: {e}")))?;
        }
    }
    Ok(())
}

/// The most bytes of a worker's failure message handed to the coordinator:
/// enough for any error mmrun writes, short enough that a kernel panicking
/// with a whole array in its message does not flood the final error line.
const MAX_FAILURE_BYTES: usize = 2000;

/// Runs the task as a worker process does and returns its exit code: 0, or
/// `RUN_FAILED` when the kernel returned an error or panicked.
///
/// The failure is printed on stderr as `mmrun: worker N: ...` and, with
/// `failure_file` (the coordinator's failure slot for this worker), left
/// there too, so the coordinator's error names what went wrong instead of
/// only an exit code. A panic is caught here rather than left to unwind out
/// of the worker: its payload holds the panic's text, which the exit code
/// alone would lose.
///
/// # Safety
/// As for [`run`].
pub unsafe fn run_to_exit_code(
    task: &WorkerTask,
    file: &File,
    kernel: &dyn Kernel,
    progress: Option<ProgressSlot<'_>>,
    failure_file: Option<&os::results::SlotRef>,
) -> i32 {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: this function's own contract, passed on.
        unsafe { run(task, file, kernel, progress) }
    }));
    let why = match ran {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e.to_string(),
        Err(payload) => panic_text(payload.as_ref()),
    };
    eprintln!("mmrun: worker {}: {why}", task.worker);
    report_failure(failure_file, &why);
    crate::exit_code::RUN_FAILED
}

/// `panicked: MESSAGE`, from a panic's payload (a `&str` or `String` for
/// every `panic!` with a message).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    format!("panicked: {msg}")
}

/// Leaves `why` (cut to [`MAX_FAILURE_BYTES`] on a character boundary) in
/// the failure slot. Best effort: the exit code still says the worker
/// failed when the slot cannot be written.
pub(crate) fn report_failure(failure_file: Option<&os::results::SlotRef>, why: &str) {
    let Some(slot) = failure_file else { return };
    let mut end = why.len().min(MAX_FAILURE_BYTES);
    while !why.is_char_boundary(end) {
        end -= 1;
    }
    let _ = os::results::write_result(slot, &why.as_bytes()[..end]);
}

/// Runs a scanning kernel (one that only reads, like a reduction across
/// rows) over the task's rows of `file`, mapped read-only, block by block.
fn scan(
    task: &WorkerTask,
    file: &File,
    kernel: &dyn Kernel,
    progress: Option<ProgressSlot<'_>>,
) -> Result<()> {
    test_hooks::before_work(task);
    let layout = &task.layout;
    let row_bytes = layout.row_bytes()?;
    let row_len = layout.row_len()?;
    if task.range.is_empty() {
        return Ok(());
    }
    let scan_block = |bytes: &[u8], first_row: u64, n: u64| {
        let rows_in = RowsIn {
            bytes,
            dtype: layout.dtype,
            first_row,
            row_len,
        };
        kernel
            .scan(rows_in, n)
            .map_err(|e| Error::failed(format!("rows {first_row}..{}: {e}", first_row + n)))
    };
    if row_bytes == 0 {
        // Rows without elements: nothing to map, but they still count.
        return scan_block(&[], task.range.start, task.range.len());
    }
    let offset = layout.data_offset + task.range.start * row_bytes;
    let len = usize::try_from(task.range.len() * row_bytes)
        .map_err(|_| Error::failed("this worker's rows do not fit in the address space"))?;
    // SAFETY: the coordinator read the layout from this file and checked
    // its length before starting workers, and a scan never writes or
    // resizes it. Another program truncating it would SIGBUS this worker,
    // which the coordinator reports as a failed worker.
    let mut map = unsafe { ReadRegion::map(file, offset, len) }
        .map_err(|e| Error::io_failed("cannot map rows of", &task.path, e))?;
    let aligned = offset.is_multiple_of(layout.dtype.itemsize());
    let block_rows = (BLOCK_BYTES / row_bytes).max(1);
    let mut bounce: Vec<u64> = Vec::new();
    let mut released = 0usize;
    let mut ahead = Prefetch::new(len);
    let mut row = task.range.start;
    if let Some(step) = part_elems(kernel, row_bytes, layout.dtype.itemsize()) {
        // Rows wider than a block, read in parts of about a block: the
        // pages a part touches are all a worker holds, whatever the shape.
        while row < task.range.end {
            let row_in = RowInParts {
                dtype: layout.dtype,
                row,
                row_len,
                base: ((row - task.range.start) * row_bytes) as usize,
                aligned,
                step,
            };
            let mut window = Window {
                map: &mut map,
                ahead: &mut ahead,
                released: &mut released,
                bounce: &mut bounce,
            };
            row_in
                .read(kernel, &mut window, None)
                .map_err(|e| Error::failed(format!("row {row}: {e}")))?;
            row += 1;
            if let Some((counters, slot)) = progress {
                counters.store(slot, row - task.range.start);
            }
            test_hooks::after_block(task, row);
        }
        return Ok(());
    }
    while row < task.range.end {
        let n = block_rows.min(task.range.end - row);
        let lo = ((row - task.range.start) * row_bytes) as usize;
        ahead.before(&map, lo, lo + (n * row_bytes) as usize);
        let bytes = aligned_view(
            &map[lo..lo + (n * row_bytes) as usize],
            aligned,
            &mut bounce,
        );
        scan_block(bytes, row, n)?;
        // Rows read stop counting towards this worker's resident set (the
        // pages stay cached): a scan of a file larger than memory, or than
        // a cgroup's limit, keeps about two windows mapped. One call per
        // window, not per block.
        let done = (lo as u64 + n * row_bytes) as usize;
        if done - released >= prefetch::WINDOW {
            map.release(released, done - released)
                .map_err(|e| Error::io_failed("cannot release rows of", &task.path, e))?;
            released = done;
        }
        row += n;
        if let Some((counters, slot)) = progress {
            counters.store(slot, row - task.range.start);
        }
        test_hooks::after_block(task, row);
    }
    Ok(())
}

/// One row of a read-only mapping handed to a kernel in parts
/// ([`Kernel::read_part`]).
struct RowInParts {
    dtype: DType,
    row: u64,
    row_len: u64,
    /// Where the row starts in the mapping, in bytes.
    base: usize,
    /// Whether the mapping's elements are aligned for `dtype`.
    aligned: bool,
    /// Elements per part ([`part_elems`]).
    step: u64,
}

/// The read-only mapping a row is read from, with its read-ahead, the
/// bytes below which it was released and the staging buffer for
/// unaligned elements.
struct Window<'a> {
    map: &'a mut ReadRegion,
    ahead: &'a mut Prefetch,
    released: &'a mut usize,
    bounce: &'a mut Vec<u64>,
}

impl RowInParts {
    /// Hands the row to `kernel` part by part, `out` (the row's output,
    /// for a kernel that writes rows) with the last; each window of
    /// parts read is released from the resident set.
    fn read(
        &self,
        kernel: &dyn Kernel,
        w: &mut Window<'_>,
        out: Option<AnyRowsMut<'_>>,
    ) -> std::result::Result<(), String> {
        let itemsize = self.dtype.itemsize();
        let mut out = out;
        let mut from = 0;
        while from < self.row_len {
            let m = self.step.min(self.row_len - from);
            let lo = self.base + (from * itemsize) as usize;
            let hi = lo + (m * itemsize) as usize;
            w.ahead.before(&*w.map, lo, hi);
            let rows_in = RowsIn {
                bytes: aligned_view(&w.map[lo..hi], self.aligned, w.bounce),
                dtype: self.dtype,
                first_row: self.row,
                row_len: self.row_len,
            };
            let last = from + m == self.row_len;
            kernel.read_part(rows_in, from, last, if last { out.take() } else { None })?;
            if hi - *w.released >= prefetch::WINDOW {
                // Only memory is at stake: a failure costs nothing.
                let _ = w.map.release(*w.released, hi - *w.released);
                *w.released = hi;
            }
            from += m;
        }
        Ok(())
    }
}

/// The elements per part in which `kernel` reads rows of `row_bytes` bytes
/// (elements of `itemsize`): `None` when a row fits in a block or the
/// kernel reads whole rows; else about a block's worth, a multiple of what
/// the kernel's [`Kernel::row_part`] asks.
fn part_elems(kernel: &dyn Kernel, row_bytes: u64, itemsize: u64) -> Option<u64> {
    let g = kernel
        .row_part()
        .filter(|_| row_bytes > BLOCK_BYTES)?
        .max(1);
    Some((BLOCK_BYTES / itemsize.max(1) / g).max(1) * g)
}

/// Whether blocks of `kernel` can be computed in a buffer and written with
/// `pwrite` ([`Kernel::overwrites_blocks`]).
fn overwrites_blocks(kernel: &dyn Kernel) -> bool {
    kernel.overwrites_blocks() && !kernel.reads_input()
}

/// [`run`] with writeback windows of about `window` bytes.
///
/// A kernel that sees only flat indices ([`Kernel::elementwise`] or
/// [`Kernel::splits_rows`]) whose rows, of the file or of its input, are
/// wider than a block runs over the flat view of the task ([`flat_task`]):
/// blocks are then [`BLOCK_BYTES`] of elements, not whole rows, so a
/// worker's buffers and the pages a block touches stay bounded whatever the
/// shape, and its values are those of whole-row blocks. Progress still
/// counts whole rows: the coordinator's journal records rows.
fn run_windowed(
    task: &WorkerTask,
    file: &File,
    kernel: &dyn Kernel,
    progress: Option<ProgressSlot<'_>>,
    window: u64,
) -> Result<()> {
    match flat_task(task, kernel)? {
        Some(flat) => {
            let per_row = task.layout.row_len()?;
            run_blocks(&flat, file, kernel, progress, window, per_row)
        }
        None => run_blocks(task, file, kernel, progress, window, 1),
    }
}

/// `task` over the flat view of its file (and input): one element per
/// row, `first_row` the flat index, as ranks give an element-wise kernel
/// (see `rank_partition` in the coordinator). `None` unless the kernel
/// sees only flat indices, a row is wider than a block, and the input (if any) has
/// rows of as many elements, so flat indices of both files agree.
fn flat_task(task: &WorkerTask, kernel: &dyn Kernel) -> Result<Option<WorkerTask>> {
    if !(kernel.elementwise() || kernel.splits_rows()) || kernel.scans() {
        return Ok(None);
    }
    let row_len = task.layout.row_len()?;
    let mut widest = task.layout.row_bytes()?;
    if let Some(input) = &task.input {
        // A Fortran-order input is mapped whole and gathered by the kernel
        // from whole rows of the file; its flat order is not the file's.
        if input.layout.fortran_order || input.layout.row_len()? != row_len {
            return Ok(None);
        }
        widest = widest.max(input.layout.row_bytes()?);
    }
    if widest <= BLOCK_BYTES || row_len <= 1 {
        return Ok(None);
    }
    let flat = |l: &Layout| Layout {
        shape: vec![l.shape.iter().product()],
        ..l.clone()
    };
    let mut t = task.clone();
    t.layout = flat(&task.layout);
    t.range = RowRange::new(task.range.start * row_len, task.range.end * row_len);
    if let Some(input) = t.input.as_mut() {
        input.layout = flat(&input.layout);
    }
    Ok(Some(t))
}

/// The block loop of [`run_windowed`]. `per_row` is how many of the task's
/// rows make one row of the file (its row length for the flat view, else
/// 1): progress and test hooks count rows of the file.
fn run_blocks(
    task: &WorkerTask,
    file: &File,
    kernel: &dyn Kernel,
    progress: Option<ProgressSlot<'_>>,
    window: u64,
    per_row: u64,
) -> Result<()> {
    test_hooks::before_work(task);
    let layout = &task.layout;
    let row_bytes = layout.row_bytes()?;
    if task.range.is_empty() || row_bytes == 0 {
        return Ok(());
    }
    let row_len = layout.row_len()?;
    let itemsize = layout.dtype.itemsize();
    let offset = layout.data_offset + task.range.start * row_bytes;
    let len = usize::try_from(task.range.len() * row_bytes)
        .map_err(|_| Error::failed("this worker's rows do not fit in the address space"))?;
    // A fill computes each block in a cache-resident buffer and `pwrite`s
    // it: the page cache takes whole pages with no page faults and no
    // zeroing of fresh pages, which measured faster than first-touch stores
    // through a mapping (PERFORMANCE.md). Other kernels map the rows.
    let mut region = if overwrites_blocks(kernel) {
        None
    } else {
        // SAFETY: the one app-level decision for the worker side. The
        // coordinator sized the file to `layout.file_len()` before starting
        // any worker and holds the journal lock, so no other mmrun resizes
        // it; the plan gives each worker disjoint rows, so no other process
        // writes `offset..offset + len`. Another program truncating the
        // file would still SIGBUS us: that is reported as an I/O error on
        // these rows.
        let map = unsafe { SharedRegion::map(file, offset, len) }
            .map_err(|e| Error::io_failed("cannot map rows of", &task.path, e))?;
        Some(map)
    };
    let mut input = match &task.input {
        Some(inp) => Some(map_input(inp, task.range)?),
        None => None,
    };
    // A Fortran-order input (convert) is mapped and handed over whole: its
    // rows are not byte ranges.
    let whole_input = task.input.as_ref().is_some_and(|i| i.layout.fortran_order);
    // Input rows (`apply --out`) below this one have been dropped from the
    // resident set.
    let mut input_released = task.range.start;
    // Blocks are sized by the wider of the two rows: a reduction's output
    // row may be one element while its input row is thousands.
    let in_row_bytes = input.as_ref().map_or(0, |i| i.2);
    let block_rows = (BLOCK_BYTES / row_bytes.max(in_row_bytes)).max(1);
    let aligned = offset.is_multiple_of(itemsize);
    let mut in_bounce: Vec<u64> = Vec::new();
    let mut bounce: Vec<u64> = Vec::new();
    let mut out_ahead = Prefetch::new(len);
    let mut in_ahead = Prefetch::new(usize::try_from(task.range.len() * in_row_bytes).unwrap_or(0));
    let mut stream = Writeback {
        file,
        path: &task.path,
        rows: task.range,
        sync: task.stream_writeback,
        window,
        base: offset,
        end: offset + len as u64,
        start: offset,
        pending: VecDeque::with_capacity(WRITEBACK_DEPTH + 1),
        retired: offset,
        expect_len: region.is_none().then_some(layout.file_len()?),
    };
    // Input rows wider than a block, read in parts by a kernel that takes
    // them (a reduction along the row): one row per block, its input
    // prefetched and released part by part.
    let parts = input
        .as_ref()
        .filter(|_| !whole_input)
        .and_then(|i| part_elems(kernel, i.2, i.1.layout.dtype.itemsize()));
    let mut in_released_bytes = 0usize;
    let mut row = task.range.start;
    while row < task.range.end {
        let n = block_rows.min(task.range.end - row);
        let lo = ((row - task.range.start) * row_bytes) as usize;
        let hi = lo + (n * row_bytes) as usize;
        if let Some(region) = region.as_ref() {
            out_ahead.before(region, lo, hi);
        }
        if let Some((map, _, in_row_bytes, _)) =
            input.as_ref().filter(|_| !whole_input && parts.is_none())
        {
            let a = ((row - task.range.start) * in_row_bytes) as usize;
            in_ahead.before(map, a, a + (n * in_row_bytes) as usize);
        }
        let mut call = |kernel: &dyn Kernel, out: AnyRowsMut<'_>, in_bounce: &mut Vec<u64>| match (
            input.as_mut(),
            parts,
        ) {
            (None, _) => kernel.run(out),
            (Some((map, inp, in_row_bytes, in_row_len)), Some(step)) => {
                let row_in = RowInParts {
                    dtype: inp.layout.dtype,
                    row,
                    row_len: *in_row_len,
                    base: ((row - task.range.start) * *in_row_bytes) as usize,
                    aligned: inp
                        .layout
                        .data_offset
                        .is_multiple_of(inp.layout.dtype.itemsize()),
                    step,
                };
                let mut window = Window {
                    map,
                    ahead: &mut in_ahead,
                    released: &mut in_released_bytes,
                    bounce: in_bounce,
                };
                row_in.read(kernel, &mut window, Some(out))
            }
            (Some((map, inp, in_row_bytes, in_row_len)), None) => {
                let a = ((row - task.range.start) * *in_row_bytes) as usize;
                let b = a + (n * *in_row_bytes) as usize;
                let raw = if whole_input { &map[..] } else { &map[a..b] };
                let start = inp.layout.data_offset + row * *in_row_bytes;
                let aligned = whole_input || start.is_multiple_of(inp.layout.dtype.itemsize());
                let bytes = aligned_view(raw, aligned, in_bounce);
                let rows_in = RowsIn {
                    bytes,
                    dtype: inp.layout.dtype,
                    first_row: row,
                    row_len: *in_row_len,
                };
                kernel.run_io(rows_in, out)
            }
        };
        let rows_failed = |e: String| Error::failed(format!("rows {row}..{}: {e}", row + n));
        match region.as_mut() {
            Some(region) if aligned => {
                let bytes = &mut region[lo..hi];
                call(
                    kernel,
                    AnyRowsMut::from_bytes(layout.dtype, bytes, row, row_len),
                    &mut in_bounce,
                )
                .map_err(rows_failed)?;
            }
            Some(region) => {
                // Raw files may put data at an offset that is not a multiple
                // of the itemsize, as numpy.memmap allows: stage through an
                // aligned buffer so kernels always see aligned, typed rows.
                // The old bytes are loaded whatever the kernel reads: one
                // that writes only some columns must leave the others.
                let bytes = &mut region[lo..hi];
                let staged = staging(&mut bounce, bytes.len());
                staged.copy_from_slice(bytes);
                call(
                    kernel,
                    AnyRowsMut::from_bytes(layout.dtype, staged, row, row_len),
                    &mut in_bounce,
                )
                .map_err(rows_failed)?;
                bytes.copy_from_slice(staged);
            }
            None => {
                let staged = staging(&mut bounce, hi - lo);
                call(
                    kernel,
                    AnyRowsMut::from_bytes(layout.dtype, staged, row, row_len),
                    &mut in_bounce,
                )
                .map_err(rows_failed)?;
                stream.check_len()?;
                file.write_all_at(staged, offset + lo as u64).map_err(|e| {
                    Error::failed(format!(
                        "I/O error on rows {row}..{} of {}: {e}",
                        row + n,
                        task.path.display()
                    ))
                })?;
            }
        }
        row += n;
        if let Some((counters, slot)) = progress {
            counters.store(slot, (row - task.range.start) / per_row);
        }
        stream.done_to(region.as_mut(), offset + hi as u64)?;
        if let Some((map, _, in_row_bytes, _)) = input.as_mut().filter(|_| !whole_input) {
            // A read-only mapping of the input keeps every page it has read
            // in this process's page tables: without dropping them a worker
            // of `apply --out` grew to its whole input partition (536 MiB
            // per worker for a 1 GiB file, PERFORMANCE.md), and under a
            // memory limit the kernel had to unmap them under pressure.
            // A block's input rows are never read again once it is
            // computed, whatever the output's writeback still holds (a
            // reduction's output is far smaller than its input).
            // One call per window, not per block.
            let a = (input_released - task.range.start) * *in_row_bytes;
            let b = (row - task.range.start) * *in_row_bytes;
            if b - a >= prefetch::WINDOW as u64 {
                // Only memory is at stake: a failure costs nothing.
                let _ = map.release(a as usize, (b - a) as usize);
                input_released = row;
            }
        }
        test_hooks::after_block(task, row / per_row);
    }
    stream.check_len()?;
    // The last windows are left in flight: the coordinator's fsync waits
    // for them, and the worker can exit now.
    Ok(())
}

/// Maps the task's rows of an input file read-only (all of its data for a
/// Fortran-order input, whose rows are not byte ranges); returns the
/// mapping, the input, its row bytes and its row length.
fn map_input(inp: &InputFile, range: RowRange) -> Result<(ReadRegion, &InputFile, u64, u64)> {
    let row_bytes = inp.layout.row_bytes()?;
    let row_len = inp.layout.row_len()?;
    let file = File::open(&inp.path).map_err(|e| Error::io_failed("cannot open", &inp.path, e))?;
    let (first, bytes) = if inp.layout.fortran_order {
        (0, inp.layout.data_bytes()?)
    } else {
        (range.start * row_bytes, range.len() * row_bytes)
    };
    let len = usize::try_from(bytes)
        .map_err(|_| Error::failed("this worker's input rows do not fit in the address space"))?;
    // SAFETY: the coordinator checked the input file is at least as long as
    // its layout says before starting workers; mmrun never writes or
    // resizes an input file. Someone else truncating it would SIGBUS this
    // worker, which is reported as an I/O error on its rows.
    let map = unsafe { ReadRegion::map(&file, inp.layout.data_offset + first, len.max(1)) }
        .map_err(|e| Error::io_failed("cannot map rows of", &inp.path, e))?;
    Ok((map, inp, row_bytes, row_len))
}

/// `raw` itself when its elements are `aligned`, else a copy of it in
/// `bounce`: kernels always see aligned, typed elements.
fn aligned_view<'a>(raw: &'a [u8], aligned: bool, bounce: &'a mut Vec<u64>) -> &'a [u8] {
    if aligned {
        return raw;
    }
    let staged = staging(bounce, raw.len());
    staged.copy_from_slice(raw);
    staged
}

/// The first `len` bytes of `buf`, grown as needed, as an 8-byte aligned
/// byte slice.
fn staging(buf: &mut Vec<u64>, len: usize) -> &mut [u8] {
    buf.resize(len.div_ceil(8), 0);
    &mut bytemuck::cast_slice_mut::<u64, u8>(buf)[..len]
}

/// Bytes per writeback window: finished compute blocks are grouped into
/// windows of about this size before their writeback starts. Measured here
/// (PERFORMANCE.md): 4, 8 and 16 MiB are alike within the noise; 8 MiB
/// keeps a worker's resident set near 3 windows.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// Windows in flight: after starting window k, the worker waits for k − 2.
/// Waiting for k − 1 (depth 1) measured slower here: the disk then idles
/// while the worker computes.
const WRITEBACK_DEPTH: usize = 2;

/// Windows are cut on this boundary of the file, so each page belongs to
/// one window and no window's writeback catches a page the block loop has
/// not finished. 4096 divides every larger page size; a smaller page would
/// only mean a few pages are written twice.
const WRITEBACK_ALIGN: u64 = 4096;

/// The worker's streamed writeback. As the block loop finishes bytes, they
/// are cut into windows of about [`WRITEBACK_BYTES`]; each window's
/// writeback starts as soon as it is complete (`sync_file_range(WRITE)`),
/// the window [`WRITEBACK_DEPTH`] back is waited for, and then its pages
/// are dropped from this process's page tables. So the disk works while the
/// kernel computes, the coordinator's final `fsync` finds little left, and
/// a worker's dirty pages and resident set stay bounded by a few windows
/// whatever the size of its partition.
///
/// Without `sync` (`--sync none`) nothing is written early and nothing is
/// waited for; windows are still dropped from the resident set.
///
/// Errors: a failed writeback (EIO, ENOSPC) is reported once per open file
/// description, and forked workers share the coordinator's: the error could
/// be consumed here and never reach the final `fsync`. So any writeback
/// error fails the worker, and with it the run.
struct Writeback<'a> {
    file: &'a File,
    path: &'a Path,
    /// The worker's rows, for messages.
    rows: RowRange,
    sync: bool,
    window: u64,
    /// File offset where the worker's region starts.
    base: u64,
    /// File offset where it ends.
    end: u64,
    /// Start of the window being filled.
    start: u64,
    /// Windows written but not yet retired, oldest first.
    pending: VecDeque<(u64, u64)>,
    /// End of the last retired window (`base` before the first).
    retired: u64,
    /// On the write path, the file's expected length. A store through a
    /// mapping past the end of a file that another program truncated is a
    /// SIGBUS; a `pwrite` there would silently extend the file again, and
    /// could hide the truncation from the coordinator's size check. So the
    /// write path checks the length before every block and at the end (one
    /// `fstat`, well under a microsecond). What stays open: a truncation
    /// landing between the last block's check and its `pwrite`.
    expect_len: Option<u64>,
}

impl Writeback<'_> {
    /// The bytes of the file before offset `done` are final. Returns the
    /// file offset below which every window is retired (written back when
    /// syncing, and dropped from the resident set).
    fn done_to(&mut self, mut region: Option<&mut SharedRegion>, done: u64) -> Result<u64> {
        let cut = if done >= self.end {
            self.end
        } else {
            done / WRITEBACK_ALIGN * WRITEBACK_ALIGN
        };
        if cut < self.end && cut < self.start + self.window {
            return Ok(self.retired);
        }
        let window = (self.start, cut);
        self.start = cut;
        if self.sync {
            os::file::start_writeback(self.file, window.0, window.1 - window.0)
                .map_err(|e| self.error(window, e))?;
        }
        self.pending.push_back(window);
        while self.pending.len() > WRITEBACK_DEPTH {
            let (lo, hi) = self.pending.pop_front().expect("longer than the depth");
            if self.sync {
                os::file::wait_writeback(self.file, lo, hi - lo)
                    .map_err(|e| self.error((lo, hi), e))?;
            }
            if let Some(region) = region.as_deref_mut() {
                // Only memory is at stake: a failure costs nothing.
                let _ = region.release((lo - self.base) as usize, (hi - lo) as usize);
            }
            self.retired = hi;
        }
        Ok(self.retired)
    }

    /// Fails if the file is shorter than it should be (see `expect_len`).
    fn check_len(&self) -> Result<()> {
        let Some(want) = self.expect_len else {
            return Ok(());
        };
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io_failed("cannot stat", self.path, e))?
            .len();
        if len < want {
            return Err(Error::failed(format!(
                "I/O error on rows {}: {} changed size during the run ({len} bytes, expected {want}): another program truncated it",
                self.rows,
                self.path.display()
            )));
        }
        Ok(())
    }

    fn error(&self, (lo, hi): (u64, u64), e: std::io::Error) -> Error {
        Error::failed(format!(
            "I/O error writing back bytes {lo}..{hi} of {}: {e}",
            self.path.display()
        ))
    }
}

/// Entry point of a re-executed worker (`mmrun __worker`): everything comes
/// from the environment. Returns the process exit code.
pub fn exec_main() -> i32 {
    let failure_file = os::results::slot_from_env(FAILURE_FILE_VAR, FAILURE_SLOT_VAR);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> {
        let task = WorkerTask::from_env(|k| std::env::var(k).ok())?;
        let spec: KernelSpec = serde_json::from_str(
            &std::env::var("MMRUN_KERNEL")
                .map_err(|_| Error::refused("MMRUN_KERNEL is not set"))?,
        )
        .map_err(|e| Error::refused(format!("MMRUN_KERNEL: {e}")))?;
        let kernel = kernels::build(&spec, task.layout.dtype)?;
        let file = OpenOptions::new()
            .read(true)
            .write(!kernel.scans())
            .open(&task.path)
            .map_err(|e| Error::io_failed("cannot open", &task.path, e))?;
        let region = match (
            std::env::var_os("MMRUN_PROGRESS_FILE"),
            std::env::var("MMRUN_PROGRESS_SLOT")
                .ok()
                .and_then(|s| s.parse::<usize>().ok()),
        ) {
            // SAFETY: the coordinator handed this worker its progress
            // region at this path (an inherited memfd), at least that long
            // and written only with atomic stores.
            (Some(path), Some(slot)) => unsafe { ProgressRegion::open(path.as_ref(), slot + 1) }
                .ok()
                .map(|r| (r, slot)),
            _ => None,
        };
        // SAFETY: a re-executed worker's task came from its coordinator,
        // whose plan gives every worker disjoint rows of a file it sized
        // before starting any worker.
        unsafe {
            run(
                &task,
                &file,
                kernel.as_ref(),
                region.as_ref().map(|(r, s)| (r, *s)),
            )
        }
    }));
    let why = match result {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e.to_string(),
        Err(payload) => panic_text(payload.as_ref()),
    };
    eprintln!("mmrun: worker: {why}");
    report_failure(failure_file.as_ref(), &why);
    crate::exit_code::RUN_FAILED
}

/// The variable naming a re-executed worker's failure slots file
/// (`/proc/self/fd/4`, [`os::FAILURE_FD`]). mmrun's own workers only; not
/// part of protocol v1.
pub const FAILURE_FILE_VAR: &str = "MMRUN_FAILURE_FILE";
/// The variable giving a re-executed worker's failure slot index.
pub const FAILURE_SLOT_VAR: &str = "MMRUN_FAILURE_SLOT";

/// Test-only faults and pauses, so tests can make a real worker fail or
/// stop at a chosen point without sleeps. Compiled into debug builds only.
mod test_hooks {
    use super::WorkerTask;

    /// `__MMRUN_TEST_WORKER_FAULT=W:ACTION[@ROW]` makes worker `W` abort, exit
    /// with a code (`exit:7`), SIGKILL itself, hang or panic — before it
    /// works, or once it has finished the block that ends past row `ROW`.
    /// Only the first attempt at a range faults, so retries can succeed.
    #[cfg(debug_assertions)]
    fn fault(task: &WorkerTask, row: Option<u64>) {
        let Ok(spec) = std::env::var("__MMRUN_TEST_WORKER_FAULT") else {
            return;
        };
        let Some((w, rest)) = spec.split_once(':') else {
            return;
        };
        if w.parse::<usize>().ok() != Some(task.worker) || task.attempt != 0 {
            return;
        }
        let (action, at) = match rest.split_once('@') {
            Some((a, r)) => (a, r.parse::<u64>().ok()),
            None => (rest, None),
        };
        match (at, row) {
            (None, None) => {}
            (Some(at), Some(row)) if row > at => {}
            _ => return,
        }
        match action {
            "abort" => std::process::abort(),
            "kill" => {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
            "hang" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "panic" => panic!("test fault"),
            a if a.starts_with("exit:") => {
                crate::os::exit_now(a[5..].parse().unwrap_or(1));
            }
            _ => {}
        }
    }

    /// `__MMRUN_TEST_WORKER_WAIT=PATH` makes every worker, before it
    /// works, create `PATH.waiting` and wait until `PATH` exists: a test
    /// can then change files while a run is certainly reading them.
    #[cfg(debug_assertions)]
    fn wait() {
        let Some(path) = std::env::var_os("__MMRUN_TEST_WORKER_WAIT") else {
            return;
        };
        let path = std::path::PathBuf::from(path);
        let mut waiting = path.clone().into_os_string();
        waiting.push(".waiting");
        let _ = std::fs::write(&waiting, b"");
        while !path.exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[cfg(debug_assertions)]
    pub(super) fn before_work(task: &WorkerTask) {
        wait();
        fault(task, None);
    }

    #[cfg(debug_assertions)]
    pub(super) fn after_block(task: &WorkerTask, row: u64) {
        fault(task, Some(row));
    }

    #[cfg(not(debug_assertions))]
    pub(super) fn before_work(_task: &WorkerTask) {}

    #[cfg(not(debug_assertions))]
    pub(super) fn after_block(_task: &WorkerTask, _row: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Fill, FillKind};

    fn task(path: &Path, layout: &Layout, rows: (u64, u64), sync: bool) -> WorkerTask {
        WorkerTask {
            path: path.to_path_buf(),
            layout: layout.clone(),
            range: RowRange::new(rows.0, rows.1),
            worker: 0,
            workers: 2,
            seed: None,
            attempt: 0,
            input: None,
            stream_writeback: sync,
            result_file: None,
        }
    }

    /// `x + 1` on f32 rows: a kernel that reads its input, so it runs on
    /// the mapping.
    struct AddOne;

    impl Kernel for AddOne {
        fn spec(&self) -> KernelSpec {
            KernelSpec {
                name: "add-one".into(),
                params: serde_json::Value::Null,
            }
        }
        fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
            let AnyRowsMut::F32(mut r) = rows else {
                return Err("f32 only".into());
            };
            r.as_mut_slice().iter_mut().for_each(|x| *x += 1.0);
            Ok(())
        }
        fn reads_input(&self) -> bool {
            true
        }
    }

    /// Many small windows over unaligned partitions, with data offsets that
    /// are aligned and not (the bounce path), through both the write path
    /// (a fill) and the mapped path (a kernel reading its input): every
    /// byte lands, nothing outside the data changes, whether writeback
    /// streams or not.
    #[test]
    fn windowed_writeback_writes_every_byte() {
        for (sync, offset) in [(true, 6u64), (false, 6), (true, 4096), (false, 0)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.raw");
            let (rows, cols) = (3000u64, 250u64);
            let layout = Layout::new(Format::Raw, DType::F32, vec![rows, cols], offset).unwrap();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            let len = layout.file_len().unwrap();
            file.set_len(len + 100).unwrap();
            let fill = Fill::new(FillKind::Arange, DType::F32).unwrap();
            let ranges = [(0, 1234), (1234, 2999), (2999, 3000)];
            for kernel in [&fill as &dyn Kernel, &AddOne] {
                for range in ranges {
                    let t = task(&path, &layout, range, sync);
                    run_windowed(&t, &file, kernel, None, 64 << 10).unwrap();
                }
            }
            let bytes = std::fs::read(&path).unwrap();
            assert!(bytes[..offset as usize].iter().all(|&b| b == 0));
            assert!(bytes[len as usize..].iter().all(|&b| b == 0));
            let data = &bytes[offset as usize..len as usize];
            for (i, c) in data.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes(c.try_into().unwrap());
                assert_eq!(
                    v,
                    i as f32 + 1.0,
                    "element {i}, sync {sync}, offset {offset}"
                );
            }
        }
    }

    /// A file shorter than its layout (truncated by another program) fails
    /// the write path instead of being silently extended.
    #[test]
    fn write_path_refuses_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.raw");
        let layout = Layout::new(Format::Raw, DType::F32, vec![100, 1000], 0).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        file.set_len(1000).unwrap();
        let fill = Fill::new(FillKind::Arange, DType::F32).unwrap();
        let t = task(&path, &layout, (0, 100), true);
        let err = run_windowed(&t, &file, &fill, None, 64 << 10).unwrap_err();
        assert!(err.to_string().contains("changed size"), "{err}");
        assert_eq!(file.metadata().unwrap().len(), 1000);
    }

    /// Sets column 0 to -1 and leaves the others, reading nothing (like
    /// `apply --cols 0:1 --expr -1`).
    struct FirstColumn;

    impl Kernel for FirstColumn {
        fn spec(&self) -> KernelSpec {
            KernelSpec {
                name: "first-column".into(),
                params: serde_json::Value::Null,
            }
        }
        fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
            let AnyRowsMut::F32(mut r) = rows else {
                return Err("f32 only".into());
            };
            r.rows_mut().for_each(|(_, row)| row[0] = -1.0);
            Ok(())
        }
    }

    /// A kernel that writes only some elements keeps the others, through
    /// the mapping and through the bounce buffer of an unaligned offset.
    #[test]
    fn partial_writers_keep_the_other_elements() {
        for offset in [0u64, 6] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.raw");
            let layout = Layout::new(Format::Raw, DType::F32, vec![300, 50], offset).unwrap();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            file.set_len(layout.file_len().unwrap()).unwrap();
            let fill = Fill::new(FillKind::Arange, DType::F32).unwrap();
            for kernel in [&fill as &dyn Kernel, &FirstColumn] {
                let t = task(&path, &layout, (0, 300), true);
                run_windowed(&t, &file, kernel, None, 4096).unwrap();
            }
            let bytes = std::fs::read(&path).unwrap();
            let data = &bytes[offset as usize..];
            for (i, c) in data.chunks_exact(4).enumerate() {
                let v = f32::from_le_bytes(c.try_into().unwrap());
                let want = if i % 50 == 0 { -1.0 } else { i as f32 };
                assert_eq!(v, want, "element {i}, offset {offset}");
            }
        }
    }

    #[test]
    fn sync_mode_crosses_the_environment() {
        let layout = Layout::new(Format::Raw, DType::U8, vec![4, 4], 0).unwrap();
        for sync in [true, false] {
            let t = task(Path::new("/x"), &layout, (1, 3), sync);
            let env = t.to_env();
            let back = WorkerTask::from_env(|k| {
                env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
            })
            .unwrap();
            assert_eq!(back, t);
        }
        let env = task(Path::new("/x"), &layout, (1, 3), true).to_env();
        let without = |k: &str| {
            (k != "MMRUN_SYNC")
                .then(|| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
                .flatten()
        };
        assert!(!WorkerTask::from_env(without).unwrap().stream_writeback);
    }
}
