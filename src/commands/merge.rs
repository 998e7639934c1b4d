//! `mmrun report merge`: combine the reports of a distributed job's ranks
//! ([`crate::report::merge`] reads and checks them) and publish a merged
//! reduction's result as a new `.npy`.
//!
//! ```no_run
//! use mmrun::commands::{merge::merge_reports, Output};
//! use mmrun::{Runner, Target};
//!
//! let reports = ["rank0.json".into(), "rank1.json".into()];
//! let merged = merge_reports(&reports, Some(&Output::new("mean.npy")), Runner::new)?;
//! assert!(merged.problems.is_empty());
//! # Ok::<(), mmrun::Error>(())
//! ```

use std::path::PathBuf;

use crate::commands::{publish_values, Output};
use crate::coordinator::{Runner, Target};
use crate::error::{Error, Result};
use crate::report::merge::{merge, Merged};

/// Merges the rank reports at `paths`. With `out`, a merged reduction's
/// result is published there through the runner `runner` makes for its
/// target (the default full sync and locking with `Runner::new`).
/// Refusals (exit 2): an array result without `out`, `out` when the
/// reports hold no reduction. Problems the reports show (a failed rank, a
/// missing one) come back in [`Merged::problems`], for the caller to fail
/// on after showing them.
pub fn merge_reports(
    paths: &[PathBuf],
    out: Option<&Output>,
    runner: impl FnOnce(Target) -> Runner,
) -> Result<Merged> {
    let merged = merge(paths)?;
    match (&merged.reduce, out) {
        (Some(m), Some(out)) => {
            let shape = m.params.axis.out_shape(&m.params.shape);
            let t = out.target(m.params.out_dtype, shape, false);
            publish_values(runner(t), m.bytes.clone())?;
        }
        (Some(m), None) if !m.params.axis.out_shape(&m.params.shape).is_empty() => {
            return Err(Error::refused(
                "the merged result is an array: give --out OUT",
            ));
        }
        (None, Some(_)) if merged.problems.is_empty() => {
            return Err(Error::refused(
                "--out is for a reduction's result, and these reports hold none",
            ));
        }
        _ => {}
    }
    Ok(merged)
}
