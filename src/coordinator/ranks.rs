//! Rank partitioning for distributed runs: each rank's share of a pending
//! file, with boundaries only at 64 KiB-aligned offsets (whole rows where
//! the row size allows, elements for element-wise kernels), and how many
//! ranks can split a file by whole rows.

use crate::distributed::{Rank, DISTRIBUTED_ALIGN};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::plan::{Plan, RowRange};

/// `layout` seen as one row per element: shape `(size,)`, same bytes.
pub(super) fn flat_view(layout: &Layout) -> Layout {
    Layout {
        shape: vec![layout.shape.iter().product()],
        ..layout.clone()
    }
}

/// Rank `rank`'s part: partition `rank.rank` of `rank.size`, boundaries at
/// byte offsets that are multiples of 64 KiB (or `--align`, if larger).
/// Two nodes writing back the same page of a shared file system lose data,
/// so boundaries are never anywhere else.
///
/// Whole rows are split where the row size allows; otherwise an
/// `elementwise` kernel (fill, apply, convert) splits the elements, so a rank may own
/// partial rows at its edges: the returned layout is then the flat view
/// ([`flat_view`]) and the range counts elements. Kernels that need whole
/// rows (exec'd programs, per-row reductions) are refused, naming the rank
/// counts that do split the file.
pub(super) fn rank_partition(
    layout: &Layout,
    rank: Rank,
    align: u64,
    elementwise: bool,
) -> Result<(Layout, RowRange)> {
    let align = align.max(DISTRIBUTED_ALIGN);
    let split = |l: &Layout| -> Result<Option<RowRange>> {
        let all = RowRange::new(0, l.rows());
        let part = Plan::split(
            all,
            rank.size as usize,
            l.data_offset,
            l.row_bytes()?,
            align,
        );
        if part.workers() > 1 && part.alignment != crate::plan::Alignment::Aligned {
            return Ok(None);
        }
        Ok(Some(
            part.ranges
                .get(rank.rank as usize)
                .copied()
                .unwrap_or(RowRange::new(all.end, all.end)),
        ))
    };
    if let Some(r) = split(layout)? {
        return Ok((layout.clone(), r));
    }
    if elementwise {
        let flat = flat_view(layout);
        if let Some(r) = split(&flat)? {
            return Ok((flat, r));
        }
    }
    let rows = max_row_ranks(layout, align)?;
    Err(Error::refused(format!(
        "the rows of this file cannot be split into {} partitions at {align}-byte aligned offsets (data at byte {}, {} bytes per row): nodes would share pages; {}",
        rank.size,
        layout.data_offset,
        layout.row_bytes()?,
        if elementwise {
            "its elements cannot be split either: use fewer ranks".to_string()
        } else {
            format!("this command needs whole rows per rank, so at most {rows} rank(s) can run it")
        }
    )))
}

/// The most ranks whose whole-row partitions of `layout` start at
/// `align`-byte aligned offsets (1 when none do).
pub fn max_row_ranks(layout: &Layout, align: u64) -> Result<u64> {
    let rows = layout.rows();
    let Some((first, period)) =
        crate::plan::aligned_rows(layout.data_offset, layout.row_bytes()?, align)
    else {
        return Ok(1);
    };
    // Inner boundaries can be the aligned rows in 1..rows.
    let first = if first == 0 { period } else { first };
    if first >= rows {
        return Ok(1);
    }
    Ok((rows - 1 - first) / period + 2)
}
