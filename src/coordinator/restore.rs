//! Restoring a failed range of a new file before it runs again.
//!
//! An external program (`mmrun exec`) may read the rows it writes
//! (`rows += 1`). When its attempt fails half-way, a retry — or a
//! `--resume` of the range — would start from what the failed attempt left
//! and apply it twice. A new file is ours until it is published (nobody
//! else sees it), and its rows start as zeros; so before such a range runs
//! again its bytes are set back to zeros, and the second attempt computes
//! exactly what an undisturbed run does. (In place, the old values are
//! gone: those runs are refused `--retries`/`--resume` unless
//! `--idempotent`.)
//!
//! Zeros are written with `pwrite`, through the page cache: every other
//! worker's mapping of its own rows sees the file coherently, and bytes
//! outside the range — a neighbour's half of a shared page — are never
//! touched, which `fallocate`'s hole punching and zero ranges do not
//! promise at unaligned edges on every file system.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::plan::RowRange;

/// Bytes of zeros written per call.
const CHUNK: u64 = 1 << 20;

/// Sets rows of a new file back to zeros.
#[derive(Debug, Clone)]
pub struct ZeroRows {
    path: PathBuf,
    data_offset: u64,
    row_bytes: u64,
}

impl ZeroRows {
    /// For the file at `path` (for messages) with `layout`.
    pub fn new(path: PathBuf, layout: &Layout) -> Result<Self> {
        Ok(ZeroRows {
            path,
            data_offset: layout.data_offset,
            row_bytes: layout.row_bytes()?,
        })
    }

    /// Writes zeros over `rows` of `file`.
    pub fn zero(&self, file: &File, rows: RowRange) -> Result<()> {
        let start = self.data_offset + rows.start * self.row_bytes;
        let end = self.data_offset + rows.end * self.row_bytes;
        let zeros = vec![0u8; CHUNK.min(end - start) as usize];
        let mut at = start;
        while at < end {
            let n = CHUNK.min(end - at) as usize;
            file.write_all_at(&zeros[..n], at).map_err(|e| {
                Error::failed(format!(
                    "cannot zero rows {rows} of {} before running them again: {e}",
                    self.path.display()
                ))
            })?;
            at += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{DType, Format};

    #[test]
    fn zeroes_exactly_the_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.raw");
        let layout = Layout::new(Format::Raw, DType::U8, vec![10, 300_001], 3).unwrap();
        let len = layout.file_len().unwrap() as usize;
        std::fs::write(&path, vec![7u8; len + 5]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let z = ZeroRows::new(path.clone(), &layout).unwrap();
        z.zero(&file, RowRange::new(2, 7)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (a, b) = (3 + 2 * 300_001, 3 + 7 * 300_001);
        assert!(bytes[..a].iter().all(|&x| x == 7));
        assert!(bytes[a..b].iter().all(|&x| x == 0));
        assert!(bytes[b..].iter().all(|&x| x == 7));
        assert_eq!(bytes.len(), len + 5);
    }
}
