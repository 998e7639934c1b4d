//! File-side system calls: shared mappings of row ranges, space
//! reservation, locks and writeback. Together with the process side in
//! [`super`], the only code in mmrun that uses `unsafe`.
//!
//! Durability: workers write through `MAP_SHARED` mappings, which other
//! mappings of the file see through the page cache at once. Nothing here
//! calls `msync` (`MS_ASYNC` is a no-op on Linux): the coordinator makes the
//! whole file durable once with `fsync` after every worker has been reaped.
//! Workers of a syncing run stream writeback while they compute
//! ([`start_writeback`], [`wait_writeback`]), so that `fsync` finds little
//! left to write.

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};
use nix::errno::Errno;
use nix::fcntl::{fallocate, FallocateFlags};

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

impl SharedRegion {
    /// Drops this process's page-table entries for `offset..offset + len`
    /// of the region (`MADV_DONTNEED`), so they stop counting towards its
    /// resident set. The bytes are not lost: this is a shared mapping of a
    /// file, so they live in the page cache (dirty ones are written back as
    /// usual) and the next access maps the same page again. `madvise`
    /// works on whole pages: the page holding `offset` is included.
    pub fn release(&mut self, offset: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `&mut self` means no slice into the region is alive, and
        // for a MAP_SHARED file mapping MADV_DONTNEED only unmaps pages:
        // their contents stay in the page cache and are mapped back on the
        // next access, so every later read sees exactly the bytes written
        // before. memmap2 checks the range against the mapping.
        unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        }
    }
}

impl SharedRegion {
    /// Maps `offset..offset + len` of the region writable now, in one call
    /// (`MADV_POPULATE_WRITE`, Linux 5.14), instead of one write fault per
    /// page in the block loop. A hint: `Ok(false)` when the kernel does not
    /// know the advice (the loop then faults as before); other errors are
    /// returned, and change nothing either — a page that cannot be mapped
    /// (a file truncated under mmrun) faults again when it is stored to.
    pub fn populate(&self, offset: usize, len: usize) -> io::Result<bool> {
        match self
            .map
            .advise_range(memmap2::Advice::PopulateWrite, offset, len)
        {
            Ok(()) => Ok(true),
            // Before Linux 5.14.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts reading `offset..offset + len` from disk in the background
    /// (`MADV_WILLNEED`) so a cold file's pages are cached by the time the
    /// loop gets there. A hint: nothing changes when it fails.
    pub fn will_need(&self, offset: usize, len: usize) {
        let _ = self
            .map
            .advise_range(memmap2::Advice::WillNeed, offset, len);
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

/// Starts writeback of the dirty pages of `offset..offset + len` of `file`
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`) and returns without waiting
/// for it to finish. This alone makes nothing durable (no metadata, no
/// disk cache flush): it only moves the flush earlier, so a later `fsync`
/// has less to do.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    sync_file_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE)
}

/// Writes back the dirty pages of `offset..offset + len` of `file` and
/// waits until all of them, including writeback already under way, have
/// reached the device (`SYNC_FILE_RANGE_WAIT_BEFORE | WRITE | WAIT_AFTER`).
///
/// An error (EIO, ENOSPC) is the file's writeback error: it is reported
/// once per open file description, so the caller must treat it as fatal —
/// a later `fsync` through the same description may not see it again.
pub fn wait_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    sync_file_range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    )
}

fn sync_file_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    if len == 0 {
        // A zero length means "to the end of the file" to the kernel.
        return Ok(());
    }
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    loop {
        // SAFETY: sync_file_range takes only integers; the descriptor is
        // borrowed from `file`, so it stays open for the whole call.
        let r = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn available_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// What trying a byte-range lock found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteLock {
    /// Taken: held by this open file description until it is closed (or
    /// the byte is locked again with another mode).
    Taken,
    /// Another open file description holds a conflicting lock.
    Held,
    /// The file system refuses byte-range locks (ENOLCK, ENOSYS,
    /// EOPNOTSUPP, or EINVAL from a kernel without OFD locks).
    Unsupported(Errno),
}

/// Tries to take an open-file-description lock on byte `index` of `file`
/// without waiting: shared (`F_RDLCK`) or exclusive (`F_WRLCK`).
///
/// mmrun locks only with these POSIX byte-range locks, never `flock`: the
/// Linux NFS client emulates `flock` as a whole-file `fcntl` lock (so it
/// would conflict with any byte lock of another open file), while byte
/// locks mean the same on local disks, NFS v3/v4 (NLM / NFSv4 locks),
/// Lustre (`-o flock`), GPFS and BeeGFS. OFD locks belong to the open file
/// description, so two opens in one process conflict like two processes.
pub fn try_lock_byte(file: &File, index: u64, exclusive: bool) -> io::Result<ByteLock> {
    let start =
        libc::off_t::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `flock` is a plain C struct for which all-zero bytes are a
    // valid value; every field the kernel reads is set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = if exclusive {
        libc::F_WRLCK
    } else {
        libc::F_RDLCK
    } as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    match nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_OFD_SETLK(&lock)) {
        Ok(_) => Ok(ByteLock::Taken),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(ByteLock::Held),
        Err(e @ (Errno::ENOLCK | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EINVAL)) => {
            Ok(ByteLock::Unsupported(e))
        }
        Err(Errno::EINTR) => try_lock_byte(file, index, exclusive),
        Err(e) => Err(e.into()),
    }
}
