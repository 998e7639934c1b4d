//! The progress region: a small shared file of per-worker counters.
//!
//! Slot `i` is the native-endian `u64` at byte offset `128·i`: worker `i`'s
//! monotonic count of rows done, stored with one aligned 8-byte store after
//! each block. 128 bytes per slot keeps two workers' counters off one cache
//! line pair (adjacent-line prefetch pairs 64-byte lines), as crossbeam's
//! `CachePadded` does on x86-64. The region is a file, not an anonymous
//! mapping, because anonymous mappings do not cross `exec`: re-executed and
//! external workers find it through `MMRUN_PROGRESS_FILE`. The file is a
//! memfd — it has no name on any file system, so a coordinator that dies,
//! even by SIGKILL, leaves nothing behind. Its descriptor is inherited (no
//! close-on-exec) and workers open it as `/proc/self/fd/N`.
//!
//! Sources: crossbeam-utils `cache_padded.rs` (128-byte alignment on
//! x86-64 and aarch64).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{MmapMut, MmapOptions};

/// Bytes between consecutive slots.
pub const SLOT_STRIDE: usize = 128;

/// A mapped progress region.
#[derive(Debug)]
pub struct ProgressRegion {
    map: MmapMut,
    slots: usize,
    path: PathBuf,
    /// The memfd, kept open (and inherited by workers) while the region lives.
    _file: Option<File>,
}

impl ProgressRegion {
    /// Creates a region of `slots` zeroed counters in a memfd, whose
    /// descriptor children inherit.
    pub fn create(slots: usize) -> io::Result<Self> {
        let slots = slots.max(1);
        let fd =
            nix::sys::memfd::memfd_create(c"mmrun-progress", nix::sys::memfd::MFdFlags::empty())?;
        let file = File::from(fd);
        file.set_len((slots * SLOT_STRIDE) as u64)?;
        let map = Self::map(&file, slots)?;
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        Ok(ProgressRegion {
            map,
            slots,
            path,
            _file: Some(file),
        })
    }

    /// Maps an existing region (a re-executed worker's view).
    pub fn open(path: &Path, slots: usize) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() < (slots * SLOT_STRIDE) as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "progress file too small",
            ));
        }
        let map = Self::map(&file, slots)?;
        Ok(ProgressRegion {
            map,
            slots,
            path: path.to_path_buf(),
            _file: None,
        })
    }

    fn map(file: &File, slots: usize) -> io::Result<MmapMut> {
        // SAFETY: the progress file is private to this run (an anonymous
        // memfd that only its workers can reach, never truncated while mapped) and at least
        // `slots * SLOT_STRIDE` bytes long; every access goes through
        // atomics, so concurrent stores from workers are not data races.
        unsafe { MmapOptions::new().len(slots * SLOT_STRIDE).map_mut(file) }
    }

    /// The file workers map.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Counter `i`.
    pub fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.slots, "progress slot {i} out of {}", self.slots);
        let ptr = self.map.as_ptr().wrapping_add(i * SLOT_STRIDE);
        debug_assert_eq!(ptr as usize % 8, 0);
        // SAFETY: `ptr` is inside the mapping (i < slots), 8-byte aligned (the
        // mapping is page-aligned and the stride is 128), and lives as long as
        // `&self`. All accesses to the region are atomic.
        unsafe { AtomicU64::from_ptr(ptr as *mut u64) }
    }

    /// Sets counter `i` (a worker's rows done so far).
    pub fn store(&self, i: usize, rows_done: u64) {
        self.slot(i).store(rows_done, Ordering::Relaxed);
    }

    /// Reads counter `i`.
    pub fn load(&self, i: usize) -> u64 {
        self.slot(i).load(Ordering::Relaxed)
    }

    /// Zeroes counter `i` before a new task uses the slot.
    pub fn reset(&self, i: usize) {
        self.store(i, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_shared_between_two_mappings() {
        let r = ProgressRegion::create(3).unwrap();
        let other = ProgressRegion::open(r.path(), 3).unwrap();
        other.store(2, 41);
        assert_eq!(r.load(2), 41);
        assert_eq!(r.load(0), 0);
        assert!(r.path().starts_with("/proc/self/fd"));
    }
}
