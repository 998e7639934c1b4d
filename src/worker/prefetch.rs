//! Bringing a worker's mapped rows in ahead of its block loop.
//!
//! A kernel that stores through the mapping otherwise pays a write fault
//! per 4 KiB page in the middle of its loop: for `apply` in place on a
//! warm 400 MB file that was about four fifths of its time
//! (PERFORMANCE.md). So the loop asks for its rows one window at
//! a time, before it reaches them: one `MADV_POPULATE_WRITE` per
//! [`WINDOW`] of a writable mapping maps every page of the window writable
//! in the kernel's own batch (a store to a clean shared page otherwise
//! faults once per 4 KiB page), and one `MADV_WILLNEED` a window further on
//! starts reading a cold file from disk while the current window computes.
//! Read-only mappings are not populated: read faults already map pages in
//! batches, and populating them measured slower.
//! Only a window or two is mapped ahead, so a worker's resident set stays
//! bounded by windows, not by its partition. On kernels without the
//! populate advice (before 5.14) the first call says so and the loop
//! faults as it always did.

use crate::os::{file::SharedRegion, ReadRegion};

/// Bytes populated per call: the writeback window's size, so a worker
/// holds about as many populated windows as written-back ones.
pub(super) const WINDOW: usize = 8 << 20;

/// A mapping that can be populated ahead (see the module docs).
pub(super) trait Populate {
    /// Populates `offset..offset + len`; `false` when the kernel lacks it.
    fn populate(&self, offset: usize, len: usize) -> bool;
    /// Starts reading `offset..offset + len` in the background.
    fn will_need(&self, offset: usize, len: usize);
}

impl Populate for ReadRegion {
    /// Nothing: read faults on a file mapping already map pages in batches
    /// (fault-around: up to 16 pages, or a whole large folio, per fault),
    /// and `MADV_POPULATE_READ` measured slower than them here, in mmrun
    /// and in the C reference alike (PERFORMANCE.md).
    fn populate(&self, _offset: usize, _len: usize) -> bool {
        true
    }
    fn will_need(&self, offset: usize, len: usize) {
        ReadRegion::will_need(self, offset, len)
    }
}

impl Populate for SharedRegion {
    fn populate(&self, offset: usize, len: usize) -> bool {
        // Any other error is a page that cannot be mapped: the loop's own
        // store reports it, so it is not an error here.
        SharedRegion::populate(self, offset, len).unwrap_or(true)
    }
    fn will_need(&self, offset: usize, len: usize) {
        SharedRegion::will_need(self, offset, len)
    }
}

/// How far a region has been populated and read ahead.
#[derive(Debug)]
pub(super) struct Prefetch {
    /// Length of the region.
    len: usize,
    /// Bytes `0..populated` have been populated.
    populated: usize,
    /// Bytes `0..read_ahead` have been asked for with `MADV_WILLNEED`.
    read_ahead: usize,
    /// Whether the kernel has the populate advice.
    supported: bool,
}

impl Prefetch {
    /// Nothing of a region of `len` bytes is populated yet.
    pub fn new(len: usize) -> Prefetch {
        Prefetch {
            len,
            populated: 0,
            read_ahead: 0,
            supported: true,
        }
    }

    /// The loop is about to use bytes `lo..hi` of `region`: populates them
    /// (with the rest of their window) unless that was done already, and
    /// asks for the window after. One call per window, not per block.
    pub fn before(&mut self, region: &impl Populate, lo: usize, hi: usize) {
        if !self.supported || hi <= self.populated {
            return;
        }
        let start = self.populated.max(lo);
        let end = hi.max(start + WINDOW).min(self.len);
        let ahead = (end + WINDOW).min(self.len);
        if ahead > self.read_ahead.max(end) {
            let from = self.read_ahead.max(end);
            region.will_need(from, ahead - from);
            self.read_ahead = ahead;
        }
        if end > start {
            self.supported = region.populate(start, end - start);
        }
        self.populated = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records the calls instead of making them.
    #[derive(Default)]
    struct Log {
        populated: RefCell<Vec<(usize, usize)>>,
        read_ahead: RefCell<Vec<(usize, usize)>>,
        unsupported: bool,
    }

    impl Populate for Log {
        fn populate(&self, offset: usize, len: usize) -> bool {
            self.populated.borrow_mut().push((offset, len));
            !self.unsupported
        }
        fn will_need(&self, offset: usize, len: usize) {
            self.read_ahead.borrow_mut().push((offset, len));
        }
    }

    #[test]
    fn one_call_per_window_covering_every_block() {
        let len = 3 * WINDOW + 100;
        let log = Log::default();
        let mut p = Prefetch::new(len);
        let block = 1 << 20;
        let mut lo = 0;
        while lo < len {
            let hi = (lo + block).min(len);
            p.before(&log, lo, hi);
            lo = hi;
        }
        let pop = log.populated.borrow();
        assert_eq!(
            *pop,
            [
                (0, WINDOW),
                (WINDOW, WINDOW),
                (2 * WINDOW, WINDOW),
                (3 * WINDOW, 100)
            ]
        );
        // Read-ahead runs one window in front and never past the end.
        let ra = log.read_ahead.borrow();
        assert_eq!(
            *ra,
            [(WINDOW, WINDOW), (2 * WINDOW, WINDOW), (3 * WINDOW, 100)]
        );
    }

    #[test]
    fn a_block_wider_than_a_window_is_populated_whole() {
        let log = Log::default();
        let mut p = Prefetch::new(5 * WINDOW);
        p.before(&log, 0, 2 * WINDOW + 1);
        p.before(&log, 2 * WINDOW + 1, 4 * WINDOW + 2);
        assert_eq!(
            *log.populated.borrow(),
            [(0, 2 * WINDOW + 1), (2 * WINDOW + 1, 2 * WINDOW + 1)]
        );
    }

    #[test]
    fn an_old_kernel_is_asked_once() {
        let log = Log {
            unsupported: true,
            ..Log::default()
        };
        let mut p = Prefetch::new(4 * WINDOW);
        for i in 0..4 {
            p.before(&log, i * WINDOW, (i + 1) * WINDOW);
        }
        assert_eq!(log.populated.borrow().len(), 1);
    }
}
