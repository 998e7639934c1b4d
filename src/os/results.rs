//! Result slots: where a worker leaves what it computed for the
//! coordinator (a reduction's partial results).
//!
//! One memfd per worker slot, as for the progress region: it has no name on
//! any file system, so a coordinator that dies leaves nothing behind, and
//! its descriptor is inherited (no close-on-exec), so re-executed workers
//! open it as `/proc/self/fd/N`. The coordinator empties a slot before it
//! starts a task there and reads it only after that task's worker exited
//! successfully, so no slot is ever read while a worker writes it, and a
//! failed attempt's bytes are never taken.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// One result file per worker slot.
#[derive(Debug)]
pub struct ResultSlots {
    files: Vec<(File, PathBuf)>,
}

impl ResultSlots {
    /// Creates `slots` empty result files.
    pub fn create(slots: usize) -> io::Result<Self> {
        let files = (0..slots.max(1))
            .map(|_| {
                let fd = nix::sys::memfd::memfd_create(
                    c"mmrun-results",
                    nix::sys::memfd::MFdFlags::empty(),
                )?;
                let file = File::from(fd);
                let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
                Ok((file, path))
            })
            .collect::<io::Result<_>>()?;
        Ok(ResultSlots { files })
    }

    /// The path a worker in slot `i` writes its result to.
    pub fn path(&self, i: usize) -> &Path {
        &self.files[i].1
    }

    /// Empties slot `i` before a task starts there.
    pub fn reset(&self, i: usize) -> io::Result<()> {
        self.files[i].0.set_len(0)
    }

    /// What the worker of slot `i` left.
    pub fn read(&self, i: usize) -> io::Result<Vec<u8>> {
        let mut f = &self.files[i].0;
        f.seek(SeekFrom::Start(0))?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// Writes a worker's result to `path` (a slot's `/proc/self/fd/N`).
pub fn write_result(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_written_through_the_path_is_read_back() {
        let r = ResultSlots::create(2).unwrap();
        write_result(r.path(1), b"partials").unwrap();
        assert_eq!(r.read(1).unwrap(), b"partials");
        assert!(r.read(0).unwrap().is_empty());
        r.reset(1).unwrap();
        assert!(r.read(1).unwrap().is_empty());
    }
}
