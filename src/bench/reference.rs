//! The reference lines: what the machine and file system can do with no
//! mmrun code in the loop, measured in the same rounds as mmrun's cells so
//! each mmrun figure reads against the limit that binds it.
//!
//! - *anonymous first-touch*: N forked children each map their share of
//!   anonymous memory and store `1.0f32` into every element — the cost of
//!   faulting in and zeroing fresh pages, with no file behind them.
//! - *plain mmap writer*: create a file, `fallocate` it, N forked children
//!   each map a disjoint range `MAP_SHARED` and store `1.0f32` into every
//!   element, one `fsync`: what a user writing through a mapping by hand
//!   gets.
//! - *pwrite + writeback*: create, `fallocate`, N forked children each
//!   `pwrite` 1 MiB blocks of `1.0f32` into a disjoint range and stream
//!   writeback (`sync_file_range` per 8 MiB window, the window two back
//!   waited for), one `fsync`: the path an mmrun fill takes, hand-written —
//!   the line mmrun's fill cells are held against.
//! - *pwrite*: one process writes 4 MiB blocks with `pwrite`, then `fsync`.
//! - *hot memset*: one process overwrites a buffer it has already touched —
//!   the memory bandwidth of one core, no faults.
//!
//! Every function returns the seconds of the measured part only; buffers
//! are prepared before the clock starts. Children leave with `_exit` (see
//! [`crate::os::fork_child`]), and the caller must be single-threaded.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{fallocate, posix_fadvise, FallocateFlags, PosixFadviseAdvice};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::os;

/// Block size of the `pwrite` line.
pub(super) const PWRITE_BLOCK: usize = 4 << 20;

/// Boundary alignment of the children's ranges: one page, so no two
/// children store into the same page.
const ALIGN: u64 = 4096;

/// Exit codes of the reference children.
const CHILD_OK: i32 = 0;
const CHILD_MAP_FAILED: i32 = 3;
const CHILD_MISALIGNED: i32 = 4;
const CHILD_IO_FAILED: i32 = 5;

/// Block and writeback window of the *pwrite + writeback* line (mmrun's
/// worker block and window sizes).
const STREAM_BLOCK: usize = 1 << 20;
const STREAM_WINDOW: u64 = 8 << 20;

/// What the page-cache policy did so far (cold runs only).
#[derive(Debug, Default)]
pub(super) struct CacheLog {
    /// Files whose pages were dropped.
    pub dropped: u64,
    /// The first failure to drop, if any.
    pub failure: Option<String>,
}

impl CacheLog {
    /// Drops the cached pages of `file` (already synced) with
    /// `POSIX_FADV_DONTNEED`, recording the outcome.
    pub fn drop_pages(&mut self, file: &File) {
        match posix_fadvise(file.as_fd(), 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED) {
            Ok(()) => self.dropped += 1,
            Err(e) => {
                self.failure
                    .get_or_insert_with(|| format!("posix_fadvise(DONTNEED) failed: {e}"));
            }
        }
    }
}

/// A file the bench created, removed when dropped (also on error paths).
#[derive(Debug)]
pub(super) struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Splits `bytes` into at most `parts` contiguous ranges `(offset, len)`
/// whose boundaries fall on [`ALIGN`]; empty ranges are left out.
pub(super) fn split(bytes: u64, parts: usize) -> Vec<(u64, u64)> {
    let parts = parts.max(1) as u64;
    let pages = bytes.div_ceil(ALIGN);
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=parts {
        let end = (pages * i / parts * ALIGN).min(bytes);
        if end > start {
            out.push((start, end - start));
            start = end;
        }
    }
    out
}

/// Stores `1.0f32` into every element of `bytes` (page-aligned, length a
/// multiple of 4); the child's exit code.
fn store_ones(bytes: &mut [u8]) -> i32 {
    match bytemuck::try_cast_slice_mut::<u8, f32>(bytes) {
        Ok(v) => {
            v.fill(1.0);
            std::hint::black_box(&v);
            CHILD_OK
        }
        Err(_) => CHILD_MISALIGNED,
    }
}

/// Waits for every child in `pids` (blocking, so the parent does not
/// compete with them for a CPU), and fails if any did not exit with 0.
fn reap_all(what: &str, pids: &[Pid]) -> Result<()> {
    let mut first_bad = None;
    for &pid in pids {
        let status = loop {
            match waitpid(pid, None) {
                Err(Errno::EINTR) => continue,
                other => break other,
            }
        };
        let bad = match status {
            Ok(WaitStatus::Exited(_, 0)) => None,
            Ok(WaitStatus::Exited(_, code)) => Some(format!("exited with {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => Some(format!("was killed by {sig}")),
            Ok(other) => Some(format!("ended as {other:?}")),
            Err(e) => Some(format!("could not be waited for: {e}")),
        };
        if let (Some(b), None) = (bad, &first_bad) {
            first_bad = Some(format!("a {what} child (pid {pid}) {b}"));
        }
    }
    first_bad.map_or(Ok(()), |m| Err(Error::failed(m)))
}

/// Forks one child per range running `work(offset, len)`, then reaps them
/// all, also when a later fork fails.
fn fork_ranges(what: &str, ranges: &[(u64, u64)], work: impl Fn(u64, u64) -> i32) -> Result<()> {
    if os::thread_count() > 1 {
        return Err(Error::refused(format!(
            "the {what} reference forks: run it from a single-threaded process"
        )));
    }
    let mut pids = Vec::with_capacity(ranges.len());
    let mut fork_error = None;
    for &(offset, len) in ranges {
        // SAFETY: checked above that this process is single-threaded; the
        // child runs `work` on values prepared before the fork.
        match unsafe { os::fork_child(|| work(offset, len)) } {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                fork_error = Some(Error::failed(format!("cannot fork a {what} child: {e}")));
                break;
            }
        }
    }
    let reaped = reap_all(what, &pids);
    match fork_error {
        Some(e) => Err(e),
        None => reaped,
    }
}

/// Anonymous first-touch: `workers` children each map their share of
/// `bytes` anonymously and store into every element.
pub(super) fn anon_first_touch(bytes: u64, workers: usize) -> Result<f64> {
    let ranges = split(bytes, workers);
    let t = Instant::now();
    fork_ranges(
        "anonymous first-touch",
        &ranges,
        |_, len| match memmap2::MmapMut::map_anon(len as usize) {
            Ok(mut map) => store_ones(&mut map),
            Err(_) => CHILD_MAP_FAILED,
        },
    )?;
    Ok(t.elapsed().as_secs_f64())
}

/// Creates `path` new, for writing.
fn create(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io_failed("cannot create", path, e))
}

/// The plain mmap writer: create, `fallocate`, `workers` children storing
/// into disjoint shared mappings, one `fsync`. Returns the seconds and how
/// space was reserved (`fallocate` or `sparse`).
pub(super) fn mmap_writer(
    path: &Path,
    bytes: u64,
    workers: usize,
    cache: Option<&mut CacheLog>,
) -> Result<(f64, &'static str)> {
    let ranges = split(bytes, workers);
    let t = Instant::now();
    let (file, scratch, reserved) = create_reserved(path, bytes)?;
    fork_ranges("plain mmap writer", &ranges, |offset, len| {
        // SAFETY: this process created the file just above (create_new, a
        // name unique to this process) and sized it to `bytes` before any
        // child was forked; nothing truncates it until every child has been
        // reaped; `split` gives each child a disjoint range inside
        // 0..bytes, so no two mappings write the same byte. Not protected:
        // another program truncating the file meanwhile (a SIGBUS here,
        // reported as a failed child).
        match unsafe { os::SharedRegion::map(&file, offset, len as usize) } {
            Ok(mut region) => store_ones(&mut region),
            Err(_) => CHILD_MAP_FAILED,
        }
    })?;
    file.sync_all()
        .map_err(|e| Error::io_failed("cannot sync", path, e))?;
    let seconds = t.elapsed().as_secs_f64();
    if let Some(log) = cache {
        log.drop_pages(&file);
    }
    drop(scratch);
    Ok((seconds, reserved))
}

/// Creates `path` and reserves `bytes` (`fallocate`, or a sparse file
/// where the file system cannot); returns the file, its scratch guard and
/// how space was reserved.
fn create_reserved(path: &Path, bytes: u64) -> Result<(File, Scratch, &'static str)> {
    let file = create(path)?;
    let scratch = Scratch(path.to_path_buf());
    let len = libc::off_t::try_from(bytes)
        .map_err(|_| Error::refused(format!("{bytes} bytes is too large a file")))?;
    let reserved = match fallocate(file.as_fd(), FallocateFlags::empty(), 0, len) {
        Ok(()) => "fallocate",
        Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => {
            file.set_len(bytes)
                .map_err(|e| Error::io_failed("cannot size", path, e))?;
            "sparse"
        }
        Err(e) => return Err(Error::io_failed("cannot reserve space for", path, e)),
    };
    Ok((file, scratch, reserved))
}

/// One child of the *pwrite + writeback* line: `block`s into
/// `offset..offset + len`, streaming writeback; the child's exit code.
fn stream_range(file: &File, block: &[u8], offset: u64, len: u64) -> i32 {
    let end = offset + len;
    let mut pending: [(u64, u64); 3] = [(0, 0); 3];
    let mut queued = 0;
    let mut window = offset;
    let mut at = offset;
    while at < end {
        let n = (end - at).min(block.len() as u64);
        if file.write_all_at(&block[..n as usize], at).is_err() {
            return CHILD_IO_FAILED;
        }
        at += n;
        if at - window >= STREAM_WINDOW || at == end {
            if os::file::start_writeback(file, window, at - window).is_err() {
                return CHILD_IO_FAILED;
            }
            pending[queued] = (window, at);
            queued += 1;
            window = at;
            if queued == pending.len() {
                let (lo, hi) = pending[0];
                if os::file::wait_writeback(file, lo, hi - lo).is_err() {
                    return CHILD_IO_FAILED;
                }
                pending.rotate_left(1);
                queued -= 1;
            }
        }
    }
    CHILD_OK
}

/// *pwrite + writeback*: create, `fallocate`, `workers` children each
/// `pwrite` their range in 1 MiB blocks streaming writeback, one `fsync`.
pub(super) fn pwrite_stream(
    path: &Path,
    bytes: u64,
    workers: usize,
    cache: Option<&mut CacheLog>,
) -> Result<f64> {
    let ranges = split(bytes, workers);
    let block: Vec<u8> = bytemuck::cast_slice(&vec![1.0f32; STREAM_BLOCK / 4]).to_vec();
    let t = Instant::now();
    let (file, scratch, _) = create_reserved(path, bytes)?;
    fork_ranges("pwrite + writeback", &ranges, |offset, len| {
        stream_range(&file, &block, offset, len)
    })?;
    file.sync_all()
        .map_err(|e| Error::io_failed("cannot sync", path, e))?;
    let seconds = t.elapsed().as_secs_f64();
    if let Some(log) = cache {
        log.drop_pages(&file);
    }
    drop(scratch);
    Ok(seconds)
}

/// `pwrite` of 4 MiB blocks from one process, then one `fsync`.
pub(super) fn pwrite(path: &Path, bytes: u64, cache: Option<&mut CacheLog>) -> Result<f64> {
    let block: Vec<u8> = bytemuck::cast_slice(&vec![1.0f32; PWRITE_BLOCK / 4]).to_vec();
    let t = Instant::now();
    let file = create(path)?;
    let scratch = Scratch(path.to_path_buf());
    let mut offset = 0u64;
    while offset < bytes {
        let n = (bytes - offset).min(PWRITE_BLOCK as u64) as usize;
        file.write_all_at(&block[..n], offset)
            .map_err(|e| Error::io_failed("cannot write", path, e))?;
        offset += n as u64;
    }
    file.sync_all()
        .map_err(|e| Error::io_failed("cannot sync", path, e))?;
    let seconds = t.elapsed().as_secs_f64();
    if let Some(log) = cache {
        log.drop_pages(&file);
    }
    drop(scratch);
    Ok(seconds)
}

/// Hot memset: overwrite `bytes` of memory already faulted in. The buffer
/// lives for this sample only, so the process forks no large address space
/// for the other cells.
pub(super) fn hot_memset(bytes: u64) -> Result<f64> {
    let len = usize::try_from(bytes)
        .map_err(|_| Error::refused(format!("{bytes} bytes do not fit in memory here")))?;
    let mut buf = vec![0u8; len];
    // Touch every page first: vec![0; n] may be lazily zeroed memory.
    buf.fill(1);
    std::hint::black_box(&mut buf);
    let t = Instant::now();
    buf.fill(0x3f);
    std::hint::black_box(&mut buf);
    Ok(t.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_disjoint_covering_and_page_aligned() {
        for (bytes, parts) in [
            (4u64 << 20, 1usize),
            (4 << 20, 3),
            (10_000, 4),
            (4096, 8),
            (12, 2),
        ] {
            let r = split(bytes, parts);
            assert!(!r.is_empty() && r.len() <= parts);
            let mut next = 0;
            for &(o, l) in &r {
                assert_eq!(o, next);
                assert!(l > 0);
                assert_eq!(o % ALIGN, 0);
                next = o + l;
            }
            assert_eq!(next, bytes);
        }
        assert_eq!(split(8192, 2), vec![(0, 4096), (4096, 4096)]);
        assert_eq!(split(4096, 8).len(), 1);
    }

    #[test]
    fn ones_are_stored() {
        let mut v = vec![0f32; 8];
        assert_eq!(store_ones(bytemuck::cast_slice_mut(&mut v)), CHILD_OK);
        assert!(v.iter().all(|&x| x == 1.0));
    }

    #[test]
    fn single_process_lines_run() {
        // pwrite and memset do not fork, so they are safe in the test harness.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.raw");
        let mut log = CacheLog::default();
        assert!(pwrite(&path, (PWRITE_BLOCK + 4096) as u64, Some(&mut log)).unwrap() > 0.0);
        assert!(!path.exists());
        assert!(log.dropped == 1 || log.failure.is_some());
        assert!(hot_memset(1 << 20).unwrap() > 0.0);
    }

    #[test]
    fn a_stream_child_writes_its_range_only() {
        // One child's work, run in this process (no fork).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.raw");
        let (file, _scratch, _) = create_reserved(&path, 3 * STREAM_WINDOW).unwrap();
        let block: Vec<u8> = bytemuck::cast_slice(&vec![1.0f32; STREAM_BLOCK / 4]).to_vec();
        let (lo, len) = (4096, 2 * STREAM_WINDOW + 8192);
        assert_eq!(stream_range(&file, &block, lo, len), CHILD_OK);
        let data = std::fs::read(&path).unwrap();
        assert!(data[..lo as usize].iter().all(|&b| b == 0));
        let ones: &[f32] = bytemuck::cast_slice(&data[lo as usize..(lo + len) as usize]);
        assert!(ones.iter().all(|&x| x == 1.0));
        assert!(data[(lo + len) as usize..].iter().all(|&b| b == 0));
    }
}
