//! Result slots: where a worker leaves what it computed for the
//! coordinator (a reduction's partial results, or a failed worker's error
//! text).
//!
//! All slots of a run share ONE memfd, so the coordinator's descriptor
//! count does not grow with `-w`: slot `i` is the byte range
//! `i·SLOT_CAPACITY .. (i+1)·SLOT_CAPACITY`, holding a little-endian `u64`
//! length and then that many bytes. The file is sparse (tmpfs allocates
//! only written pages), so the large capacity costs nothing. A memfd has no
//! name on any file system, so a coordinator that dies leaves nothing
//! behind. It is close-on-exec like every descriptor mmrun opens; a
//! re-executed worker receives it at a fixed number (see
//! [`crate::os::WORKER_FDS`]) and opens it as `/proc/self/fd/N`.
//!
//! The coordinator empties a slot before it starts a task there and reads
//! it only after that task's worker exited, so no slot is ever read while a
//! worker writes it, and a failed attempt's result bytes are never taken.
//! The worker writes the bytes first and the length last.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes reserved per slot (sparse): 1 TiB, far more than any partial
/// result; tmpfs files may be up to `MAX_LFS_FILESIZE` (8 EiB).
pub const SLOT_CAPACITY: u64 = 1 << 40;

/// Where one worker writes: the slots' file and its slot in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRef {
    /// The shared slots file (`/proc/self/fd/N`).
    pub path: PathBuf,
    /// The slot index.
    pub index: usize,
}

/// One sparse memfd holding every worker slot's result.
#[derive(Debug)]
pub struct ResultSlots {
    file: File,
    path: PathBuf,
    slots: usize,
}

impl ResultSlots {
    /// Creates `slots` empty result slots in one close-on-exec memfd.
    pub fn create(slots: usize) -> io::Result<Self> {
        let fd = nix::sys::memfd::memfd_create(
            c"mmrun-results",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        let file = File::from(fd);
        let slots = slots.max(1);
        file.set_len(slots as u64 * SLOT_CAPACITY)?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(ResultSlots { file, path, slots })
    }

    /// The descriptor (to hand to a re-executed worker).
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Where the worker in slot `i` writes.
    pub fn slot(&self, i: usize) -> SlotRef {
        assert!(i < self.slots, "result slot {i} out of {}", self.slots);
        SlotRef {
            path: self.path.clone(),
            index: i,
        }
    }

    /// Empties slot `i` (and frees its pages) before a task starts there.
    pub fn reset(&self, i: usize) -> io::Result<()> {
        assert!(i < self.slots, "result slot {i} out of {}", self.slots);
        nix::fcntl::fallocate(
            &self.file,
            nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            (i as u64 * SLOT_CAPACITY) as i64,
            SLOT_CAPACITY as i64,
        )?;
        Ok(())
    }

    /// What the worker of slot `i` left.
    pub fn read(&self, i: usize) -> io::Result<Vec<u8>> {
        assert!(i < self.slots, "result slot {i} out of {}", self.slots);
        let base = i as u64 * SLOT_CAPACITY;
        let mut len = [0u8; 8];
        self.file.read_exact_at(&mut len, base)?;
        let len = u64::from_le_bytes(len);
        if len > SLOT_CAPACITY - 8 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a result slot's length is out of range",
            ));
        }
        let mut out = vec![0u8; len as usize];
        self.file.read_exact_at(&mut out, base + 8)?;
        Ok(out)
    }
}

/// Writes a worker's result into its slot: the bytes, then the length.
pub fn write_result(slot: &SlotRef, bytes: &[u8]) -> io::Result<()> {
    if bytes.len() as u64 > SLOT_CAPACITY - 8 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a result larger than its slot (1 TiB)",
        ));
    }
    let f = std::fs::OpenOptions::new().write(true).open(&slot.path)?;
    let base = slot.index as u64 * SLOT_CAPACITY;
    f.write_all_at(bytes, base + 8)?;
    f.write_all_at(&(bytes.len() as u64).to_le_bytes(), base)
}

/// The slot a re-executed worker finds through `FILE_VAR` and `SLOT_VAR`.
pub fn slot_from_env(file_var: &str, slot_var: &str) -> Option<SlotRef> {
    let path = std::env::var_os(file_var)?;
    let index = std::env::var(slot_var).ok()?.parse().ok()?;
    Some(SlotRef {
        path: Path::new(&path).to_path_buf(),
        index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_written_through_the_path_is_read_back() {
        let r = ResultSlots::create(3).unwrap();
        write_result(&r.slot(1), b"partials").unwrap();
        write_result(&r.slot(2), b"other").unwrap();
        assert_eq!(r.read(1).unwrap(), b"partials");
        assert_eq!(r.read(2).unwrap(), b"other");
        assert!(r.read(0).unwrap().is_empty());
        r.reset(1).unwrap();
        assert!(r.read(1).unwrap().is_empty());
        assert_eq!(r.read(2).unwrap(), b"other");
    }
}
