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
//! ```no_run
//! use mmrun::{DType, Fill, FillKind, Runner, Target, Workers};
//!
//! let target = Target::new_npy("data.npy", DType::F32, vec![1000, 1000]);
//! let summary = Runner::new(target)
//!     .workers(Workers::Count(4))
//!     .run(|layout| Ok(Some(Box::new(Fill::new(FillKind::Uniform { seed: 42 }, layout.dtype)?))))?;
//! println!("wrote {} bytes", summary.bytes);
//! # Ok::<(), mmrun::Error>(())
//! ```

pub mod bench;
pub mod coordinator;
pub mod distributed;
pub mod error;
pub mod exit_code;
pub mod expr;
pub mod journal;
pub mod kernels;
pub mod layout;
pub mod os;
pub mod plan;
pub mod progress;
pub mod report;
pub mod rng;
pub mod verify;
pub mod worker;

pub use coordinator::{NewFile, Prealloc, RunSummary, Runner, Spawn, SyncMode, Target, Workers};
pub use error::{Error, ErrorKind, Result};
pub use kernels::{AnyRowsMut, Fill, FillKind, Kernel, KernelSpec, RowsMut};
pub use layout::{DType, HeaderStyle, Layout, RawSpec};
pub use plan::{Plan, RowRange, RowSlice};
