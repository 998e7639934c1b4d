//! File-side system calls: shared mappings of row ranges, space
//! reservation, locks and writeback. Together with the process side in
//! [`super`], the only code in mmrun that uses `unsafe`.
//!
//! Durability: workers write through `MAP_SHARED` mappings, which other
//! mappings of the file see through the page cache at once. Nothing here
//! calls `msync`: the coordinator makes the whole file durable once with
//! `fsync` after every worker has been reaped.

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::AsFd;
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};
use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags, Flock, FlockArg};

/// A writable shared mapping of one byte range of a file.
#[derive(Debug)]
pub struct SharedRegion {
    map: MmapMut,
}

impl SharedRegion {
    /// Maps `len` bytes of `file` at `offset`, `MAP_SHARED`, read-write.
    /// `memmap2` rounds the offset down to a page and hides the slack.
    ///
    /// # Safety
    /// The caller guarantees, for as long as the region lives:
    /// - the file is at least `offset + len` bytes long and nobody truncates
    ///   it (a store to a page past the end is a SIGBUS);
    /// - no other process or mapping in this process writes any byte of
    ///   `offset..offset + len` (other processes may write neighbouring
    ///   bytes, even in the same page: `MAP_SHARED` keeps them coherent).
    ///
    /// What is *not* protected: another program editing the file while mmrun
    /// runs. mmrun's lock only keeps other mmruns out.
    pub unsafe fn map(file: &File, offset: u64, len: usize) -> io::Result<Self> {
        debug_assert!(len > 0, "zero-length mappings are invalid");
        // SAFETY: the caller upholds the length and exclusivity contract
        // above; the mapping is private to this value and unmapped on drop.
        let map = unsafe { MmapOptions::new().offset(offset).len(len).map_mut(file)? };
        Ok(SharedRegion { map })
    }
}

impl Deref for SharedRegion {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl DerefMut for SharedRegion {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

/// Reserves `len` bytes of real blocks from `offset`, so later stores through
/// a mapping cannot fail for lack of space.
pub fn reserve(file: &File, offset: u64, len: u64) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    fallocate(
        file.as_fd(),
        FallocateFlags::empty(),
        offset as libc::off_t,
        len as libc::off_t,
    )
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn available_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Result of trying to lock a file.
#[derive(Debug)]
pub enum LockOutcome {
    /// The lock is ours until the value is dropped.
    Locked(Flock<File>),
    /// Another open file description holds it.
    Held(File),
    /// The file system has no locks (ENOLCK, ENOSYS, EOPNOTSUPP).
    Unsupported(File),
}

/// Tries to take `flock(LOCK_EX)` without waiting.
pub fn try_lock_exclusive(file: File) -> io::Result<LockOutcome> {
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(LockOutcome::Locked(l)),
        Err((f, Errno::EWOULDBLOCK)) => Ok(LockOutcome::Held(f)),
        Err((f, Errno::ENOLCK | Errno::ENOSYS | Errno::EOPNOTSUPP)) => {
            Ok(LockOutcome::Unsupported(f))
        }
        Err((_, e)) => Err(e.into()),
    }
}
