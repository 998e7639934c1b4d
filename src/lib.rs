//! mmrun runs parallel computations over one shared memory-mapped array file.
//!
//! A coordinator creates and sizes an array file (NumPy `.npy`, or raw as
//! `numpy.memmap` reads it), starts N worker processes that each map the
//! file `MAP_SHARED` and write their own disjoint rows, waits for all of them,
//! and flushes once. New files are built beside the target and published by
//! an atomic rename only when every worker succeeded.
//!
//! Every number mmrun generates is a function of the element's global index,
//! so the bytes of a file never depend on the worker count, the plan or the
//! spawn mode, and NumPy reproduces them.
//!
//! A run: build a [`Runner`] for a [`Target`] and give it a kernel for the
//! file's layout. Here four workers fill a new float32 file with
//! `np.arange`, published only when all of them succeeded:
//!
//! ```
//! use mmrun::{DType, Fill, FillKind, Kernel, Runner, Target, Workers};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("data.npy");
//! let summary = Runner::new(Target::new_npy(&path, DType::F32, vec![1000, 100]))
//!     .workers(Workers::Count(4))
//!     .run(|layout| {
//!         let fill = Fill::new(FillKind::Arange, layout.dtype)?;
//!         Ok(Some(Box::new(fill) as Box<dyn Kernel>))
//!     })?;
//! assert_eq!((summary.workers.len(), summary.bytes), (4, 1000 * 100 * 4));
//! // `np.load` reads it; the data follow the header.
//! let bytes = std::fs::read(&path)?;
//! let data = &bytes[summary.layout.data_offset as usize..];
//! assert_eq!(f32::from_le_bytes(data[4 * 12345..][..4].try_into()?), 12345.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Kernels are written on [`Kernel`] over typed row blocks ([`RowsMut`]);
//! [`kernels::from_fn`] makes one from a closure. A kernel's error or panic
//! fails its worker, and `run` returns an [`Error`] naming the worker, its
//! rows and the message, with nothing published. The fork path (the
//! default) needs the calling process to be single-threaded when `run`
//! forks; otherwise use [`Spawn::Exec`], which rebuilds registered kernels
//! in re-executed workers.
//!
//! A reduction across rows reads the file without changing it:
//! [`Runner::scan`] runs the [`kernels::reduce::Reduce`] kernel in every
//! worker, and a [`kernels::reduce::Forest`] combines the partial results
//! in a fixed tree, so the result is the same to the bit for any worker
//! count (`mmrun reduce FILE --op mean --axis all`):
//!
//! ```
//! use mmrun::kernels::reduce::{Axis, Forest, Op, Reduce, ReduceParams, Value};
//! use mmrun::{DType, Fill, FillKind, Kernel, Runner, Target, Workers};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("data.npy");
//! Runner::new(Target::new_npy(&path, DType::F32, vec![1000, 100]))
//!     .run(|l| Ok(Some(Box::new(Fill::new(FillKind::Arange, l.dtype)?) as Box<dyn Kernel>)))?;
//!
//! let params = ReduceParams {
//!     op: Op::Mean,
//!     axis: Axis::All,
//!     ddof: 0,
//!     dtype: DType::F32,
//!     shape: vec![1000, 100],
//!     out_dtype: Op::Mean.result_dtype(DType::F32),
//!     cols: None,
//!     pairs: false,
//! };
//! let scanned = Runner::new(Target::existing(&path))
//!     .workers(Workers::Count(3))
//!     .scan(|_| Ok(Box::new(Reduce::new(params.clone())?) as Box<dyn Kernel>))?;
//! let mut forest = Forest::new(&params);
//! for partials in &scanned.results {
//!     forest.insert_encoded(partials)?;
//! }
//! let (_float32_bytes, values) = forest.finish()?;
//! assert_eq!(values, vec![Value::F(49999.5)]); // np.arange(100000).mean()
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/` holds complete programs: a closure fill, a user kernel,
//! reductions per row and across rows.

// The Python extension compiles the CLI module, written against `mmrun::`.
#[cfg(feature = "python")]
extern crate self as mmrun;

pub mod bench;
pub mod commands;
pub mod coordinator;
pub mod distributed;
pub mod error;
pub mod exit_code;
pub mod expr;
pub mod hex;
pub mod journal;
pub mod kernels;
pub mod layout;
pub mod os;
pub mod plan;
pub mod progress;
pub mod pyfloat;
#[cfg(feature = "python")]
pub mod python;
pub mod report;
pub mod rng;
pub mod verify;
pub mod worker;

pub use coordinator::{NewFile, Prealloc, RunSummary, Runner, Spawn, SyncMode, Target, Workers};
pub use error::{Error, ErrorKind, Result};
pub use kernels::{AnyRowsMut, Fill, FillKind, Kernel, KernelSpec, RowsMut};
pub use layout::{DType, HeaderStyle, Layout, RawSpec};
pub use plan::{Plan, RowRange, RowSlice};
