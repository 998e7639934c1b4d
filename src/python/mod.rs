//! `mmrun._native`, the extension module of the Python package (built by
//! maturin with `--features python`; see `pyproject.toml` and the README's
//! Python section).
//!
//! It holds three entry points, and the Python package (`python/mmrun/`)
//! wraps them:
//!
//! - [`cli`]: the whole `mmrun` command line, run in this process: the
//!   package's `mmrun` command on `PATH` is a Python launcher that calls it
//!   (and re-executed workers reach [`worker_main`] through the same
//!   launcher, named by `MMRUN_WORKER_EXE`).
//! - [`map_rows`]: a Python callable as the kernel of a [`Runner`] run.
//!   Workers are forked from the caller's warm interpreter (NumPy already
//!   imported), and each calls back into Python for every block of its
//!   rows, with the block as a writable `memoryview` over the mapping. The
//!   caller keeps the GIL while the job runs, so the fork happens with no
//!   other Python thread inside the interpreter, and the child redoes what
//!   `os.fork` does in its child ([`crate::os::python::after_fork_child`]).
//!   Signals sent to the process are forwarded to the calling thread, where
//!   the coordinator's descriptor sees them, so Ctrl-C stops the job (workers
//!   gone, nothing published, the journal kept) before `KeyboardInterrupt`
//!   reaches the caller.

#[path = "../cli.rs"]
#[allow(dead_code, missing_docs)]
mod cli_impl;

use std::path::PathBuf;
use std::sync::Once;

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::coordinator::{RunSummary, Runner, Spawn, Target, Workers};
use crate::kernels::{AnyRowsMut, Kernel, KernelSpec, RowsIn};
use crate::plan::RowSlice;
use crate::progress::ProgressMode;
use crate::{DType, Error, ErrorKind};

/// Runs the `mmrun` command line `argv` (program name first) in this
/// process and returns its exit code, printing its error line as the
/// binary does. An interrupted run returns 128 + the signal.
#[pyfunction]
fn cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    // The command runs in this process like the binary's `main`; it must
    // not be interrupted by Python's own SIGINT handling, so it runs with
    // the coordinator's signal forwarding like `map_rows`.
    let _ = py;
    let _forward = crate::os::python::ForwardSignals::install();
    match cli_impl::run_from(argv) {
        Ok(()) => crate::exit_code::SUCCESS,
        Err(e) => {
            eprintln!("mmrun: error: {e}");
            if let ErrorKind::Interrupted(sig) = e.kind() {
                drop(_forward);
                crate::os::die_of_signal(sig);
            }
            e.exit_code()
        }
    }
}

/// The body of a re-executed worker (`mmrun __worker`): returns its exit
/// code.
#[pyfunction]
fn worker_main() -> i32 {
    crate::worker::exec_main()
}

/// A Python callable as a kernel: `call(block, first_row, rows, src)` for
/// every block, `finish()` once after a worker's last block.
struct PyKernel {
    call: Py<PyAny>,
    finish: Py<PyAny>,
    row_bytes: u64,
    reads: bool,
    forked: Once,
}

impl PyKernel {
    fn block(&self, out: AnyRowsMut<'_>, input: Option<RowsIn<'_>>) -> Result<(), String> {
        let (bytes, first_row, _) = out.into_bytes();
        let rows = bytes.len() as u64 / self.row_bytes.max(1);
        Python::attach(|py| {
            self.forked
                .call_once(|| crate::os::python::after_fork_child(py));
            let mut run = || -> PyResult<()> {
                let view = crate::os::python::memoryview_mut(py, bytes)?;
                let src = match input {
                    Some(i) => crate::os::python::memoryview(py, i.bytes)?,
                    None => py.None().into_bound(py),
                };
                self.call.call1(py, (view, first_row, rows, src))?;
                Ok(())
            };
            run().map_err(|e| e.to_string())
        })
    }
}

impl Kernel for PyKernel {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "python".into(),
            params: serde_json::json!({}),
        }
    }

    fn reads_input(&self) -> bool {
        self.reads
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> Result<(), String> {
        self.block(rows, None)
    }

    fn run_io(&self, input: RowsIn<'_>, out: AnyRowsMut<'_>) -> Result<(), String> {
        self.block(out, Some(input))
    }

    fn take_result(&self) -> Result<Option<Vec<u8>>, String> {
        Python::attach(|py| {
            self.finish
                .call0(py)
                .map(|_| None)
                .map_err(|e| e.to_string())
        })
    }
}

/// Runs `call` over the rows of a file with mmrun's guarantees: see the
/// Python package's `mmrun.map_rows`, which prepares the arguments.
///
/// `path` is the file worked on in place when `shape` is `None`; with
/// `shape` (and `dtype`) a new `.npy` at `path` is built, from the input
/// file `src` when given. Returns a dict describing the run.
#[pyfunction]
#[pyo3(signature = (call, finish, path, shape=None, dtype=None, src=None, workers=None,
                    rows=None, retries=0, resume=false, progress=false, seed=None, force=false,
                    reads=true))]
#[allow(clippy::too_many_arguments)]
fn map_rows<'py>(
    py: Python<'py>,
    call: Py<PyAny>,
    finish: Py<PyAny>,
    path: PathBuf,
    shape: Option<Vec<u64>>,
    dtype: Option<String>,
    src: Option<PathBuf>,
    workers: Option<usize>,
    rows: Option<String>,
    retries: u32,
    resume: bool,
    progress: bool,
    seed: Option<u128>,
    force: bool,
    reads: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut target = match &shape {
        Some(shape) => {
            let dtype: DType = dtype
                .as_deref()
                .unwrap_or("f8")
                .parse()
                .map_err(|e| raise(py, &Error::refused(format!("dtype: {e}"))))?;
            Target::new_npy(&path, dtype, shape.clone())
        }
        None => Target::existing(&path),
    };
    target.force = force;
    let mut runner = Runner::new(target)
        .workers(workers.map_or(Workers::Auto, Workers::Count))
        .spawn(Spawn::Fork)
        .retries(retries)
        .resume(resume)
        .seed(seed)
        .progress(if progress {
            ProgressMode::Auto
        } else {
            ProgressMode::Never
        });
    if let Some(rows) = rows {
        let slice: RowSlice = rows
            .parse()
            .map_err(|e: String| raise(py, &Error::refused(format!("rows: {e}"))))?;
        runner = runner.rows(Some(slice));
    }
    let has_src = src.is_some();
    if let Some(src) = src {
        runner = runner.input(src, None);
    }
    let result = {
        let _forward = crate::os::python::ForwardSignals::install()
            .map_err(|e| raise(py, &Error::failed(format!("cannot forward signals: {e}"))))?;
        runner.run(|layout| {
            let row_bytes = layout.row_bytes()?;
            let kernel = PyKernel {
                call,
                finish,
                row_bytes,
                reads: reads && !has_src && shape.is_none(),
                forked: Once::new(),
            };
            Ok(Some(Box::new(kernel) as Box<dyn Kernel>))
        })
    };
    match result {
        Ok(summary) => describe(py, &summary),
        Err(e) => Err(raise(py, &e)),
    }
}

/// The run as a dict for Python.
fn describe<'py>(py: Python<'py>, s: &RunSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", &s.path)?;
    d.set_item("created", s.created)?;
    d.set_item("rows", (s.rows.start, s.rows.end))?;
    d.set_item("workers", s.plan.workers())?;
    d.set_item("resumed_rows", s.resumed_rows)?;
    d.set_item("prepare_s", s.prepare_s)?;
    d.set_item("run_s", s.run_s)?;
    d.set_item("flush_s", s.flush_s)?;
    d.set_item("bytes", s.bytes)?;
    let recs = PyList::empty(py);
    for w in &s.workers {
        recs.append(PyTuple::new(
            py,
            [
                w.worker.into_pyobject(py)?.into_any(),
                (w.rows.start, w.rows.end).into_pyobject(py)?.into_any(),
                w.outcome
                    .succeeded()
                    .into_pyobject(py)?
                    .to_owned()
                    .into_any(),
                w.failure.clone().into_pyobject(py)?.into_any(),
            ],
        )?)?;
    }
    d.set_item("worker_records", recs)?;
    Ok(d)
}

/// mmrun's error as the Python exception `mmrun.errors.from_native` makes
/// (`KeyboardInterrupt` for a run stopped by SIGINT).
fn raise(py: Python<'_>, e: &Error) -> PyErr {
    let signal = match e.kind() {
        ErrorKind::Interrupted(sig) => Some(sig),
        _ => None,
    };
    let failures: Vec<(usize, (u64, u64), String)> = e
        .summary()
        .map(|s| {
            s.workers
                .iter()
                .filter(|w| !w.outcome.succeeded())
                .filter_map(|w| {
                    w.failure
                        .clone()
                        .or_else(|| Some(w.describe()))
                        .map(|f| (w.worker, (w.rows.start, w.rows.end), f))
                })
                .collect()
        })
        .unwrap_or_default();
    let made = py.import("mmrun.errors").and_then(|m| {
        m.getattr("from_native")?
            .call1((e.exit_code(), e.message(), failures, signal))
    });
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(_) if signal == Some(libc::SIGINT) => PyKeyboardInterrupt::new_err(e.to_string()),
        Err(err) => err,
    }
}

/// The extension module.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    m.add_function(wrap_pyfunction!(worker_main, m)?)?;
    m.add_function(wrap_pyfunction!(map_rows, m)?)?;
    Ok(())
}
