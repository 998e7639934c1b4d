//! The header of a new file: its layout and header bytes, and for a
//! pending distributed file the data offset (4096 or 8192) at which the
//! most ranks can split whole rows.

use super::ranks::max_row_ranks;
use super::NewFile;
use crate::distributed::DISTRIBUTED_ALIGN;
use crate::error::{Error, Result};
use crate::layout::npy::{self, PAGE_DATA_OFFSET};
use crate::layout::{Format, HeaderStyle, Layout};

/// Layout and header bytes for a new file.
pub(super) fn new_layout(new: &NewFile, pending: bool) -> Result<(Layout, Vec<u8>)> {
    if new.raw {
        let layout = Layout::new(Format::Raw, new.dtype, new.shape.clone(), new.offset)?;
        return Ok((layout, vec![0; 0]));
    }
    // Check the size first so a huge shape is refused as an overflow.
    let bare = Layout::new(Format::Npy { major: 1 }, new.dtype, new.shape.clone(), 0)?;
    let header = if pending && new.header == HeaderStyle::Page {
        // Ranks split the file at 64 KiB-aligned offsets: element-wise
        // kernels anywhere between elements (the data at 4096 or 8192 is
        // aligned for every dtype), kernels that need whole rows only at
        // rows that start there. Put the data where most ranks can split
        // whole rows (4096 or 8192; NumPy reads headers up to 10000 bytes).
        let mut offset = PAGE_DATA_OFFSET;
        let mut best = 0;
        for off in [PAGE_DATA_OFFSET, 2 * PAGE_DATA_OFFSET] {
            let l = Layout {
                data_offset: off,
                ..bare.clone()
            };
            let n = max_row_ranks(&l, DISTRIBUTED_ALIGN)?;
            if n > best {
                (offset, best) = (off, n);
            }
        }
        npy::encode_padded(new.dtype, &new.shape, offset).map_err(|e| Error::refused(e.0))?
    } else {
        npy::encode_header(new.dtype, &new.shape, new.header).map_err(|e| Error::refused(e.0))?
    };
    let layout = Layout::new(
        Format::Npy { major: header[6] },
        new.dtype,
        new.shape.clone(),
        header.len() as u64,
    )?;
    Ok((layout, header))
}
