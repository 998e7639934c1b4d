//! `mmrun verify`: recompute a deterministic fill and name the first row
//! that differs.
//!
//! For users checking a file after a crash or a copy, and for the soak
//! tests. It reads the file with positioned reads (no mapping, so a file
//! truncated under it is an I/O error, never a SIGBUS), regenerates each
//! block with the same [`Fill`] kernel a run uses, and compares bytes.
//! Every stream is a function of the element index, so any block can be
//! checked alone.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::kernels::{AnyRowsMut, Fill, FillKind, Kernel};
use crate::layout::{Layout, RawSpec};
use crate::plan::RowRange;

/// Bytes compared per read.
const BLOCK_BYTES: u64 = 4 << 20;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// Rows checked.
    pub rows: RowRange,
    /// The first row that differs, and the flat index of its first
    /// differing element; `None` when everything matches.
    pub first_difference: Option<(u64, u64)>,
}

/// Checks `rows` of the file at `path` against `kind`.
pub fn verify(
    path: &Path,
    raw: Option<&RawSpec>,
    kind: FillKind,
    rows: Option<RowRange>,
) -> Result<(Layout, Verdict)> {
    let mut file = File::open(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
    let layout = Layout::read(path, &mut file, raw)?;
    layout.check_workable(path)?;
    let kernel = Fill::new(kind, layout.dtype)?;
    let rows = rows.unwrap_or(RowRange::new(0, layout.rows()));
    let row_bytes = layout.row_bytes()?;
    let row_len = layout.row_len()?;
    let itemsize = layout.dtype.itemsize() as usize;
    let mut verdict = Verdict {
        rows,
        first_difference: None,
    };
    if row_bytes == 0 {
        return Ok((layout, verdict));
    }
    // A row wider than a block is compared a block of its elements at a
    // time, so memory stays bounded whatever the shape.
    let wide = row_bytes > BLOCK_BYTES;
    let block_rows = (BLOCK_BYTES / row_bytes).max(1);
    let span = if wide {
        (BLOCK_BYTES / itemsize as u64).max(1) * itemsize as u64
    } else {
        block_rows * row_bytes
    };
    let mut found = vec![0u8; span as usize];
    let mut expect: Vec<u64> = vec![0; span.div_ceil(8) as usize];
    let mut row = rows.start;
    while row < rows.end {
        let n = block_rows.min(rows.end - row);
        let total = n * row_bytes;
        let mut a = 0u64;
        while a < total {
            let len = span.min(total - a) as usize;
            file.read_exact_at(&mut found[..len], layout.data_offset + row * row_bytes + a)
                .map_err(|e| {
                    Error::failed(format!(
                        "cannot read rows {row}..{} of {}: {e}",
                        row + n,
                        path.display()
                    ))
                })?;
            let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut expect)[..len];
            let block = if wide {
                AnyRowsMut::part_of_row(layout.dtype, bytes, row, row_len, a / itemsize as u64)
            } else {
                AnyRowsMut::from_bytes(layout.dtype, bytes, row, row_len)
            };
            kernel.run(block).map_err(Error::failed)?;
            if let Some(pos) = found[..len]
                .iter()
                .zip(expect_bytes(&expect, len))
                .position(|(a, b)| a != b)
            {
                let element = (a as usize + pos) / itemsize;
                let at = row * row_len + element as u64;
                verdict.first_difference = Some((row + element as u64 / row_len.max(1), at));
                return Ok((layout, verdict));
            }
            a += len as u64;
        }
        row += n;
    }
    Ok((layout, verdict))
}

/// The first `len` bytes of the expected block.
fn expect_bytes(expect: &[u64], len: usize) -> impl Iterator<Item = &u8> {
    bytemuck::cast_slice::<u64, u8>(expect)[..len].iter()
}
