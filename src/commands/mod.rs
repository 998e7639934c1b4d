//! Every `mmrun` command as a library call. Each submodule owns one
//! command's orchestration — what it checks before any work, which
//! [`Runner`] runs it, how its result is finished and published — and
//! returns typed results; none prints. `cli.rs` only maps arguments onto
//! these calls and prints what they return.
//!
//! - [`reduce`]: axis resolution, the per-row run or the scan, finishing
//!   the tree, publishing `--out` through a second runner.
//! - [`apply`]: the expression's parameters, the output dtype probe, the
//!   in-place refusals.
//! - [`convert`]: the input's description (`.npy` or `--in-raw`) and the
//!   output checks.
//! - [`verify`]: a file against a fill kernel, under the read discipline.
//! - [`info`]: what a file holds, including `.npy` dtypes mmrun does not
//!   compute on.
//! - [`merge`]: publishing a merged distributed reduction.
//! - [`seed`]: a run's seed (given, recorded by an interrupted run, or
//!   drawn).

pub mod apply;
pub mod convert;
pub mod info;
pub mod merge;
pub mod reduce;
pub mod seed;
pub mod verify;

use std::path::{Path, PathBuf};

use crate::coordinator::{RunSummary, Runner, Spawn, Target, Workers};
use crate::error::{Error, Result};
use crate::kernels::values::Values;
use crate::kernels::Kernel;
use crate::layout::{DType, HeaderStyle};
use crate::progress::ProgressMode;

/// The output of `apply --out`, `reduce --out` and `report merge --out`: a
/// new `.npy` file, built beside its path and published by the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Where the new file is published.
    pub path: PathBuf,
    /// Replace an existing file at `path`.
    pub force: bool,
    /// The `.npy` header's size.
    pub header: HeaderStyle,
}

impl Output {
    /// A new `.npy` at `path`, not replacing an existing file, with the
    /// default (page-sized) header.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Output {
            path: path.into(),
            force: false,
            header: HeaderStyle::Page,
        }
    }

    /// The run's target for a result of `dtype` and `shape`: a new file,
    /// or, for a rank of a distributed run (`rank`), the pending file that
    /// `create --pending` made (ranks never create files).
    pub fn target(&self, dtype: DType, shape: Vec<u64>, rank: bool) -> Target {
        if rank {
            return Target::existing(&self.path);
        }
        let mut t = Target::new_npy(&self.path, dtype, shape);
        t.force = self.force;
        // An output is always a new file: it is never worked on in place.
        t.create_only = true;
        if let Some(new) = t.create.as_mut() {
            new.header = self.header;
        }
        t
    }
}

/// Publishes `bytes` as the whole data (C order) of `runner`'s target, a
/// new file: how a result the coordinator finished (a reduction across
/// rows, a merged distributed one) gets the same file safety as every
/// run. One forked worker writes it; progress is not shown.
pub fn publish_values(runner: Runner, bytes: Vec<u8>) -> Result<RunSummary> {
    runner
        .workers(Workers::Count(1))
        .spawn(Spawn::Fork)
        .progress(ProgressMode::Never)
        .run(|_| Ok(Some(Box::new(Values::new(bytes)) as Box<dyn Kernel>)))
}

/// Bytes of an existing raw file after `offset`: what a `-1` in its shape
/// is inferred from.
pub fn raw_data_bytes(path: &Path, offset: u64) -> Result<u64> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io_refused("cannot infer the -1 in --shape from", path, e))?
        .len();
    len.checked_sub(offset).ok_or_else(|| {
        Error::refused(format!(
            "{}: offset {offset} is past the end of the file ({len} bytes)",
            path.display()
        ))
    })
}
