//! The part of a file a reduction reads: `reduce --rows A:B --cols C:D` is
//! NumPy's `np.OP(a[A:B, C:D], axis=…)`.
//!
//! Rows select a contiguous byte range, so they become a raw view of the
//! file (its data offset moved to row A, its shape cut to B − A rows) that
//! workers map as they map any input: row indexes, the tree over rows and
//! `argmin`/`argmax` indexes all count from A, as NumPy's do on the slice.
//! Columns are not contiguous: the kernel reads each whole row and reduces
//! only its window ([`Cols`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::{Layout, RawSpec};
use crate::plan::RowSlice;

/// Indices `start..end` of axis 1, out of `of` (`--cols A:B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cols {
    /// First index taken.
    pub start: u64,
    /// One past the last index taken.
    pub end: u64,
    /// The file's length along axis 1.
    pub of: u64,
}

/// What a reduction with `--rows`/`--cols` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The selection's shape (`a[A:B, C:D].shape`): what `ReduceParams`
    /// and the result's shape are computed from.
    pub shape: Vec<u64>,
    /// The column window, when `--cols` is given.
    pub cols: Option<Cols>,
    /// The rows as a raw view of the file, when `--rows` is given: read
    /// the input through it instead of its own layout.
    pub raw: Option<RawSpec>,
}

impl Selection {
    /// The selection of `rows` and `cols` (Python slices, clamped as
    /// Python clamps them) out of a file of `layout`.
    pub fn new(layout: &Layout, rows: Option<RowSlice>, cols: Option<RowSlice>) -> Result<Self> {
        let mut shape = layout.shape.clone();
        let mut raw = None;
        if let Some(r) = rows {
            if shape.is_empty() {
                return Err(Error::refused(
                    "--rows needs an array with at least 1 dimension (this one is 0-d)",
                ));
            }
            let range = r.resolve(shape[0]);
            shape[0] = range.len();
            raw = Some(RawSpec {
                dtype: layout.dtype,
                shape: Some(shape.clone()),
                offset: layout.data_offset + range.start * layout.row_bytes()?,
            });
        }
        let cols = match cols {
            None => None,
            Some(_) if shape.len() < 2 => {
                return Err(Error::refused(format!(
                "--cols selects along axis 1, and this array has {} dimension(s): use --rows A:B",
                shape.len()
            )))
            }
            Some(c) => {
                let range = c.resolve(shape[1]);
                let of = shape[1];
                shape[1] = range.len();
                Some(Cols {
                    start: range.start,
                    end: range.end,
                    of,
                })
            }
        };
        Ok(Selection { shape, cols, raw })
    }
}
