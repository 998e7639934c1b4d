//! The worker side: map this worker's rows, run a kernel over them block by
//! block, exit.
//!
//! A worker is started either by `fork` (it inherits the open file and the
//! kernel) or by re-executing `mmrun __worker`, which rebuilds everything
//! from the environment of the external-worker protocol (see
//! [`WorkerTask::to_env`]) plus `MMRUN_KERNEL`, the kernel's spec as JSON.
//!
//! Each worker maps only its own rows, so it never holds a reference to
//! bytes another process writes. Blocks are sized to stay in cache; the block
//! loop is the one place later work adds streamed writeback.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::kernels::{self, AnyRowsMut, Kernel, KernelSpec, RowsIn};
use crate::layout::{DType, Format, Layout};
use crate::os::progress::ProgressRegion;
use crate::os::{ReadRegion, SharedRegion};
use crate::plan::RowRange;

/// Target bytes per kernel block: small enough to stay in L2.
const BLOCK_BYTES: u64 = 1 << 20;

/// Protocol version of the worker environment.
pub const PROTOCOL_VERSION: &str = "1";

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
            env.push(("MMRUN_INPUT_DTYPE".into(), input.layout.dtype.descr()));
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
                let dtype: DType = need("MMRUN_INPUT_DTYPE")?
                    .parse()
                    .map_err(|e| Error::refused(format!("MMRUN_INPUT_DTYPE: {e}")))?;
                let format = match need("MMRUN_INPUT_FORMAT")?.as_str() {
                    "raw" => Format::Raw,
                    _ => Format::Npy { major: 1 },
                };
                let shape = crate::layout::parse_shape(&need("MMRUN_INPUT_SHAPE")?)?;
                let layout = Layout::new(format, dtype, shape, num("MMRUN_INPUT_DATA_OFFSET")?)?;
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
        Ok(WorkerTask {
            path: PathBuf::from(need("MMRUN_FILE")?),
            layout,
            range: RowRange::new(num("MMRUN_ROW_START")?, num("MMRUN_ROW_END")?),
            worker: num("MMRUN_WORKER")? as usize,
            workers: num("MMRUN_WORKERS")? as usize,
            seed,
            attempt: get("MMRUN_ATTEMPT")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            input,
        })
    }
}

/// A progress region and this worker's slot in it.
pub type ProgressSlot<'a> = (&'a ProgressRegion, usize);

/// Runs `kernel` over the task's rows of `file`, publishing rows done to
/// `progress` after every block.
pub fn run(
    task: &WorkerTask,
    file: &File,
    kernel: &dyn Kernel,
    progress: Option<ProgressSlot<'_>>,
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
    // SAFETY: the one app-level decision for the worker side. The
    // coordinator sized the file to `layout.file_len()` before starting any
    // worker and holds the journal lock, so no other mmrun resizes it; the
    // plan gives each worker disjoint rows, so no other process writes
    // `offset..offset + len`. Another program truncating the file would
    // still SIGBUS us: that is reported as an I/O error on these rows.
    let mut region = unsafe { SharedRegion::map(file, offset, len) }
        .map_err(|e| Error::io_failed("cannot map rows of", &task.path, e))?;
    let input = match &task.input {
        Some(inp) => Some(map_input(inp, task.range)?),
        None => None,
    };
    let block_rows = (BLOCK_BYTES / row_bytes).max(1);
    let aligned = offset % itemsize == 0;
    let mut in_bounce: Vec<u64> = Vec::new();
    let mut bounce: Vec<u64> = Vec::new();
    let mut row = task.range.start;
    while row < task.range.end {
        let n = block_rows.min(task.range.end - row);
        let lo = ((row - task.range.start) * row_bytes) as usize;
        let hi = lo + (n * row_bytes) as usize;
        let bytes = &mut region[lo..hi];
        let call = |kernel: &dyn Kernel, out: AnyRowsMut<'_>, in_bounce: &mut Vec<u64>| match &input
        {
            None => kernel.run(out),
            Some((map, inp, in_row_bytes, in_row_len)) => {
                let a = ((row - task.range.start) * in_row_bytes) as usize;
                let b = a + (n * in_row_bytes) as usize;
                let raw = &map[a..b];
                let start = inp.layout.data_offset + row * in_row_bytes;
                let bytes: &[u8] = if start % inp.layout.dtype.itemsize() == 0 {
                    raw
                } else {
                    in_bounce.resize(raw.len().div_ceil(8), 0);
                    let staged = &mut bytemuck::cast_slice_mut::<u64, u8>(in_bounce)[..raw.len()];
                    staged.copy_from_slice(raw);
                    staged
                };
                let rows_in = RowsIn {
                    bytes,
                    dtype: inp.layout.dtype,
                    first_row: row,
                    row_len: *in_row_len,
                };
                kernel.run_io(rows_in, out)
            }
        };
        if aligned {
            call(
                kernel,
                AnyRowsMut::from_bytes(layout.dtype, bytes, row, row_len),
                &mut in_bounce,
            )
        } else {
            // Raw files may put data at an offset that is not a multiple of
            // the itemsize, as numpy.memmap allows: stage through an aligned
            // buffer so kernels always see aligned, typed rows.
            bounce.resize(bytes.len().div_ceil(8), 0);
            let staged = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut bounce)[..bytes.len()];
            if kernel.reads_input() {
                staged.copy_from_slice(bytes);
            }
            let r = call(
                kernel,
                AnyRowsMut::from_bytes(layout.dtype, staged, row, row_len),
                &mut in_bounce,
            );
            bytes.copy_from_slice(staged);
            r
        }
        .map_err(|e| Error::failed(format!("rows {row}..{}: {e}", row + n)))?;
        row += n;
        if let Some((region, slot)) = progress {
            region.store(slot, row - task.range.start);
        }
        test_hooks::after_block(task, row);
    }
    Ok(())
}

/// Maps the task's rows of an input file read-only; returns the mapping,
/// the input, its row bytes and its row length.
fn map_input(inp: &InputFile, range: RowRange) -> Result<(ReadRegion, &InputFile, u64, u64)> {
    let row_bytes = inp.layout.row_bytes()?;
    let row_len = inp.layout.row_len()?;
    let file = File::open(&inp.path).map_err(|e| Error::io_failed("cannot open", &inp.path, e))?;
    let len = usize::try_from(range.len() * row_bytes)
        .map_err(|_| Error::failed("this worker's input rows do not fit in the address space"))?;
    // SAFETY: the coordinator checked the input file is at least as long as
    // its layout says before starting workers; mmrun never writes or
    // resizes an input file. Someone else truncating it would SIGBUS this
    // worker, which is reported as an I/O error on its rows.
    let map = unsafe {
        ReadRegion::map(
            &file,
            inp.layout.data_offset + range.start * row_bytes,
            len.max(1),
        )
    }
    .map_err(|e| Error::io_failed("cannot map rows of", &inp.path, e))?;
    Ok((map, inp, row_bytes, row_len))
}

/// Entry point of a re-executed worker (`mmrun __worker`): everything comes
/// from the environment. Returns the process exit code.
pub fn exec_main() -> i32 {
    let result = (|| -> Result<()> {
        let task = WorkerTask::from_env(|k| std::env::var(k).ok())?;
        let spec: KernelSpec = serde_json::from_str(
            &std::env::var("MMRUN_KERNEL")
                .map_err(|_| Error::refused("MMRUN_KERNEL is not set"))?,
        )
        .map_err(|e| Error::refused(format!("MMRUN_KERNEL: {e}")))?;
        let kernel = kernels::build(&spec, task.layout.dtype)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&task.path)
            .map_err(|e| Error::io_failed("cannot open", &task.path, e))?;
        let region = match (
            std::env::var_os("MMRUN_PROGRESS_FILE"),
            std::env::var("MMRUN_PROGRESS_SLOT")
                .ok()
                .and_then(|s| s.parse::<usize>().ok()),
        ) {
            (Some(path), Some(slot)) => ProgressRegion::open(path.as_ref(), slot + 1)
                .ok()
                .map(|r| (r, slot)),
            _ => None,
        };
        run(
            &task,
            &file,
            kernel.as_ref(),
            region.as_ref().map(|(r, s)| (r, *s)),
        )
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mmrun: worker: {e}");
            crate::exit_code::RUN_FAILED
        }
    }
}

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

    #[cfg(debug_assertions)]
    pub(super) fn before_work(task: &WorkerTask) {
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
