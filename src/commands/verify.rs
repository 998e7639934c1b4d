//! `mmrun verify`: compares a file's rows with what a fill kernel writes,
//! under the read discipline (a file that changed while it was read gets
//! no verdict), as a library call. [`crate::verify`] does the comparing.
//!
//! ```
//! use mmrun::commands::verify::verify_file;
//! use mmrun::{DType, Fill, FillKind, Kernel, Runner, Target};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("x.npy");
//! Runner::new(Target::new_npy(&path, DType::F32, vec![10, 4]))
//!     .run(|l| Ok(Some(Box::new(Fill::new(FillKind::Arange, l.dtype)?) as Box<dyn Kernel>)))?;
//! let (_layout, verdict) = verify_file(&path, None, FillKind::Arange, None)?;
//! assert_eq!(verdict.first_difference, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::path::Path;

use crate::coordinator::read::Reading;
use crate::error::{Error, Result};
use crate::kernels::FillKind;
use crate::layout::{Layout, RawSpec};
use crate::plan::RowSlice;
use crate::verify::{verify, Verdict};

/// Compares the rows `rows` selects (all by default) of `path` (`raw`
/// describes a headerless file) with what the fill `kind` writes. A
/// difference is a verdict, not an error; a file a run holds or half wrote
/// is refused (exit 75 / 2), one that changed while read fails (exit 1).
pub fn verify_file(
    path: &Path,
    raw: Option<&RawSpec>,
    kind: FillKind,
    rows: Option<RowSlice>,
) -> Result<(Layout, Verdict)> {
    let reading = Reading::start(path)?;
    let mut probe = File::open(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
    let rows = match rows {
        Some(r) => Some(r.resolve(Layout::read(path, &mut probe, raw)?.rows())),
        None => None,
    };
    let (layout, verdict) = verify(path, raw, kind, rows)?;
    // A verdict on a file that changed under it is no verdict.
    reading.check()?;
    Ok((layout, verdict))
}
