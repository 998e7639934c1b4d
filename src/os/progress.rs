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
//! even by SIGKILL, leaves nothing behind. Its descriptor is close-on-exec
//! like every descriptor mmrun opens; re-executed and external workers
//! receive it at fd 3 ([`crate::os::PROGRESS_FD`]) and open it as
//! `/proc/self/fd/3`. One region serves every slot, so the coordinator's
//! descriptor count does not grow with `-w`.
//!
//! Sources: crossbeam-utils `cache_padded.rs` (128-byte alignment on
//! x86-64 and aarch64).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::utils::CachePadded;
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
    /// Creates a region of `slots` zeroed counters in a close-on-exec memfd.
    pub fn create(slots: usize) -> io::Result<Self> {
        let slots = slots.max(1);
        let fd = nix::sys::memfd::memfd_create(
            c"mmrun-progress",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
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
    ///
    /// # Safety
    /// `path` is a progress region made by [`ProgressRegion::create`] (or
    /// a file with the same contract): every process that maps it accesses
    /// its first `slots` slots only with atomic operations, and nobody
    /// truncates it while mapped.
    pub unsafe fn open(path: &Path, slots: usize) -> io::Result<Self> {
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

    /// The memfd's descriptor, for handing to a re-executed worker; `None`
    /// for a region opened by path.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self._file.as_ref().map(|f| f.as_raw_fd())
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Every slot: the mapping viewed as `CachePadded<AtomicU64>`s, which
    /// are exactly [`SLOT_STRIDE`] bytes each on the targets mmrun builds for.
    fn slots_view(&self) -> &[CachePadded<AtomicU64>] {
        const _: () = assert!(std::mem::size_of::<CachePadded<AtomicU64>>() == SLOT_STRIDE);
        const _: () = assert!(std::mem::align_of::<CachePadded<AtomicU64>>() <= 4096);
        let ptr = self.map.as_ptr();
        debug_assert_eq!(
            ptr as usize % std::mem::align_of::<CachePadded<AtomicU64>>(),
            0
        );
        debug_assert!(self.map.len() >= self.slots * SLOT_STRIDE);
        // SAFETY: the mapping is page-aligned (so aligned for CachePadded),
        // at least `slots * SLOT_STRIDE` bytes long (checked at create/open)
        // and lives as long as `&self`. CachePadded<AtomicU64> is an
        // AtomicU64 followed by padding, for which any bytes are valid, and
        // every access to the region, here and in workers, is atomic.
        unsafe { std::slice::from_raw_parts(ptr.cast::<CachePadded<AtomicU64>>(), self.slots) }
    }

    /// Counter `i`.
    pub fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.slots, "progress slot {i} out of {}", self.slots);
        &self.slots_view()[i]
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
        // SAFETY: `r` is a region made by create, accessed only atomically.
        let other = unsafe { ProgressRegion::open(r.path(), 3) }.unwrap();
        other.store(2, 41);
        assert_eq!(r.load(2), 41);
        assert_eq!(r.load(0), 0);
        assert!(r.path().starts_with("/proc/self/fd"));
    }
}
