//! Splitting rows into disjoint ranges, one per worker.
//!
//! The planner knows nothing of files or processes: it gets a row range, a
//! worker count, the data offset, the row size and an alignment `A`, and
//! returns ranges that are disjoint, ordered and cover every row once.
//!
//! Interior boundaries are put at rows `k` where `(data_offset + k·row_bytes)
//! % A == 0` whenever such rows exist, choosing the candidate nearest the
//! balanced split. Two workers then never write the same page, which locally
//! avoids false sharing of page-cache pages and, across nodes, is needed for
//! correctness (a page written back by two clients loses one of them). When
//! no aligned boundaries exist, or too few for every worker to get rows, the
//! plan falls back to balanced boundaries and says so. Results never depend
//! on where the boundaries fall: kernels see global row and element indices.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Default boundary alignment for local runs: the page size of the systems
/// mmrun runs on. A format constant, not `sysconf(PAGE_SIZE)`, so a plan is
/// the same on every machine.
///
/// Sources: x86-64 and most aarch64 Linux kernels use 4 KiB base pages.
pub const LOCAL_ALIGN: u64 = 4096;

/// A half-open range of rows `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct RowRange {
    /// First row.
    pub start: u64,
    /// One past the last row.
    pub end: u64,
}

impl RowRange {
    /// `start..end`; `end` must not be below `start`.
    pub fn new(start: u64, end: u64) -> Self {
        debug_assert!(start <= end);
        RowRange { start, end }
    }

    /// Number of rows.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range holds no rows.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

impl fmt::Display for RowRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A `--rows A:B` selection with Python slice semantics (negative indices
/// count from the end, either end may be open); steps are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSlice {
    start: Option<i64>,
    end: Option<i64>,
}

impl RowSlice {
    /// The rows this slice selects out of `rows`, clamped like Python's.
    pub fn resolve(&self, rows: u64) -> RowRange {
        let n = rows as i128;
        let fix = |v: Option<i64>, default: i128| -> u64 {
            let v = match v {
                None => default,
                Some(v) if v < 0 => (n + v as i128).max(0),
                Some(v) => (v as i128).min(n),
            };
            v as u64
        };
        let start = fix(self.start, 0);
        let end = fix(self.end, n).max(start);
        RowRange::new(start, end)
    }
}

impl FromStr for RowSlice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 2 {
            return Err(format!(
                "invalid row range '{s}': expected A:B (Python slice; steps are not supported)"
            ));
        }
        let num = |p: &str| -> Result<Option<i64>, String> {
            let p = p.trim();
            if p.is_empty() {
                Ok(None)
            } else {
                p.parse()
                    .map(Some)
                    .map_err(|_| format!("invalid row range '{s}': '{p}' is not an integer"))
            }
        };
        Ok(RowSlice {
            start: num(parts[0])?,
            end: num(parts[1])?,
        })
    }
}

/// A set of rows as sorted, disjoint, non-adjacent half-open intervals: which
/// rows a journal records as written or durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RowSet {
    ranges: Vec<RowRange>,
}

impl RowSet {
    /// The empty set.
    pub fn new() -> Self {
        RowSet::default()
    }

    /// Adds `r`, merging with overlapping or adjacent intervals.
    pub fn insert(&mut self, r: RowRange) {
        if r.is_empty() {
            return;
        }
        let mut merged = r;
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &x in &self.ranges {
            if x.end < merged.start {
                out.push(x);
            } else if merged.end < x.start {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(x);
            } else {
                merged = RowRange::new(merged.start.min(x.start), merged.end.max(x.end));
            }
        }
        if !placed {
            out.push(merged);
        }
        self.ranges = out;
    }

    /// Adds every interval of `other`.
    pub fn extend(&mut self, other: &RowSet) {
        for &r in &other.ranges {
            self.insert(r);
        }
    }

    /// The intervals, sorted.
    pub fn ranges(&self) -> &[RowRange] {
        &self.ranges
    }

    /// Total rows in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(RowRange::len).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The rows of `within` that are not in the set.
    pub fn missing(&self, within: RowRange) -> Vec<RowRange> {
        let mut out = Vec::new();
        let mut at = within.start;
        for r in &self.ranges {
            if r.end <= at || r.start >= within.end {
                continue;
            }
            if r.start > at {
                out.push(RowRange::new(at, r.start.min(within.end)));
            }
            at = at.max(r.end);
        }
        if at < within.end {
            out.push(RowRange::new(at, within.end));
        }
        out
    }

    /// Whether every row of `r` is in the set.
    pub fn contains(&self, r: RowRange) -> bool {
        self.missing(r).is_empty()
    }
}

/// How boundaries relate to the alignment asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    /// Every interior boundary is aligned.
    Aligned,
    /// No row boundary in the file is ever aligned (e.g. data offset 128 with
    /// 4096-byte rows); boundaries are balanced instead.
    Impossible,
    /// Aligned boundaries exist but are too sparse to give every worker rows.
    TooSparse,
    /// Only one range: nothing to align.
    NotNeeded,
}

/// A static partition of rows over workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// One non-empty range per worker, ordered, disjoint and covering.
    pub ranges: Vec<RowRange>,
    /// Alignment in bytes asked for.
    pub align: u64,
    /// Whether the boundaries honour `align`.
    pub alignment: Alignment,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Modular inverse of `a` modulo `m` (`gcd(a, m) == 1`, `m >= 1`).
fn mod_inverse(a: u64, m: u64) -> u64 {
    if m == 1 {
        return 0;
    }
    let (mut old_r, mut r) = (a as i128 % m as i128, m as i128);
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    old_s.rem_euclid(m as i128) as u64
}

/// The aligned rows: `Some((first, period))` such that row `k` starts at an
/// `align`-aligned byte iff `k ≡ first (mod period)`, or `None` if no row does.
pub fn aligned_rows(data_offset: u64, row_bytes: u64, align: u64) -> Option<(u64, u64)> {
    if align <= 1 {
        return Some((0, 1));
    }
    let rb = row_bytes % align;
    let need = (align - data_offset % align) % align;
    let g = gcd(rb, align);
    if !need.is_multiple_of(g) {
        return None;
    }
    let period = align / g;
    let first = ((need / g) as u128 * mod_inverse(rb / g, period) as u128 % period as u128) as u64;
    Some((first, period))
}

impl Plan {
    /// Splits `rows` over at most `workers` workers. Every worker gets at
    /// least one row; an empty range gives an empty plan.
    pub fn split(
        rows: RowRange,
        workers: usize,
        data_offset: u64,
        row_bytes: u64,
        align: u64,
    ) -> Plan {
        let n = rows.len();
        let w = (workers.max(1) as u64).min(n);
        if w == 0 {
            return Plan {
                ranges: Vec::new(),
                align,
                alignment: Alignment::NotNeeded,
            };
        }
        let balanced = |i: u64| rows.start + ((n as u128 * i as u128) / w as u128) as u64;
        let make = |bounds: &[u64]| -> Vec<RowRange> {
            bounds
                .windows(2)
                .map(|b| RowRange::new(b[0], b[1]))
                .collect()
        };
        let mut bounds: Vec<u64> = (0..=w).map(balanced).collect();
        if w == 1 {
            return Plan {
                ranges: make(&bounds),
                align,
                alignment: Alignment::NotNeeded,
            };
        }
        let Some((first, period)) = aligned_rows(data_offset, row_bytes, align) else {
            return Plan {
                ranges: make(&bounds),
                align,
                alignment: Alignment::Impossible,
            };
        };
        for b in bounds.iter_mut().take(w as usize).skip(1) {
            // The aligned rows nearest the balanced boundary on either side.
            let below = if *b >= first {
                *b - (*b - first) % period
            } else {
                first
            };
            let above = below.saturating_add(period);
            let pick = if below > rows.start && (*b - below.min(*b)) <= above.saturating_sub(*b) {
                below
            } else {
                above
            };
            *b = pick;
        }
        let strictly_increasing = bounds.windows(2).all(|p| p[0] < p[1]);
        if strictly_increasing {
            Plan {
                ranges: make(&bounds),
                align,
                alignment: Alignment::Aligned,
            }
        } else {
            let bounds: Vec<u64> = (0..=w).map(balanced).collect();
            Plan {
                ranges: make(&bounds),
                align,
                alignment: Alignment::TooSparse,
            }
        }
    }

    /// Splits `rows` into chunks of about `chunk_rows` rows for dynamic
    /// scheduling, moving each boundary up to the next aligned row when
    /// that lengthens the chunk by at most half (chunks never shrink).
    pub fn chunks(
        rows: RowRange,
        chunk_rows: u64,
        data_offset: u64,
        row_bytes: u64,
        align: u64,
    ) -> Plan {
        let chunk = chunk_rows.max(1);
        let aligned = aligned_rows(data_offset, row_bytes, align);
        let mut bounds = vec![rows.start];
        let mut at = rows.start;
        while rows.end - at > chunk {
            let mut b = at + chunk;
            if let Some((first, period)) = aligned {
                // Round up to the next aligned row, if that stays in range.
                let up = if b <= first {
                    first
                } else {
                    b + (period - (b - first) % period) % period
                };
                // Only when that keeps the chunk near the size asked for.
                if up < rows.end && up - b <= chunk / 2 {
                    b = up;
                }
            }
            if b >= rows.end {
                break;
            }
            bounds.push(b);
            at = b;
        }
        if rows.end > rows.start {
            bounds.push(rows.end);
        }
        let ranges = bounds
            .windows(2)
            .map(|w| RowRange::new(w[0], w[1]))
            .collect::<Vec<_>>();
        let alignment = match (ranges.len(), aligned) {
            (0 | 1, _) => Alignment::NotNeeded,
            (_, None) => Alignment::Impossible,
            _ if ranges[1..].iter().all(|r| {
                (data_offset as u128 + r.start as u128 * row_bytes as u128)
                    .is_multiple_of(align.max(1) as u128)
            }) =>
            {
                Alignment::Aligned
            }
            _ => Alignment::TooSparse,
        };
        Plan {
            ranges,
            align,
            alignment,
        }
    }

    /// Number of workers this plan uses.
    pub fn workers(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slices_follow_python() {
        let r = |s: &str, n| s.parse::<RowSlice>().unwrap().resolve(n);
        assert_eq!(r("100:200", 1000), RowRange::new(100, 200));
        assert_eq!(r(":", 10), RowRange::new(0, 10));
        assert_eq!(r("-3:", 10), RowRange::new(7, 10));
        assert_eq!(r(":-1", 10), RowRange::new(0, 9));
        assert_eq!(r("5:2", 10), RowRange::new(5, 5));
        assert_eq!(r("-20:500", 10), RowRange::new(0, 10));
        for bad in ["1:2:3", "a:b", "5", "1.5:2"] {
            assert!(bad.parse::<RowSlice>().is_err(), "{bad}");
        }
    }

    #[test]
    fn no_aligned_row_exists_for_offset_128_and_page_rows() {
        assert_eq!(aligned_rows(128, 4096, 4096), None);
        let p = Plan::split(RowRange::new(0, 100), 4, 128, 4096, 4096);
        assert_eq!(p.alignment, Alignment::Impossible);
        assert_eq!(p.workers(), 4);
    }

    #[test]
    fn page_header_float32_rows_align() {
        // 10000 x 10000 float32 with data at 4096: every row is 40000 bytes.
        let p = Plan::split(RowRange::new(0, 10_000), 2, 4096, 40_000, 4096);
        assert_eq!(p.alignment, Alignment::Aligned);
        let b = p.ranges[0].end;
        assert_eq!((4096 + b * 40_000) % 4096, 0);
        assert!(b.abs_diff(5000) <= 512);
    }

    #[test]
    fn more_workers_than_rows_are_clamped() {
        let p = Plan::split(RowRange::new(0, 3), 7, 0, 8, 4096);
        assert_eq!(p.workers(), 3);
        assert_eq!(Plan::split(RowRange::new(4, 4), 3, 0, 8, 4096).workers(), 0);
    }

    #[test]
    fn row_sets_merge_and_report_what_is_missing() {
        let mut s = RowSet::new();
        s.insert(RowRange::new(10, 20));
        s.insert(RowRange::new(30, 40));
        s.insert(RowRange::new(20, 25));
        assert_eq!(s.ranges(), &[RowRange::new(10, 25), RowRange::new(30, 40)]);
        assert_eq!(
            s.missing(RowRange::new(0, 50)),
            vec![
                RowRange::new(0, 10),
                RowRange::new(25, 30),
                RowRange::new(40, 50)
            ]
        );
        s.insert(RowRange::new(0, 100));
        assert_eq!(s.ranges(), &[RowRange::new(0, 100)]);
        assert!(s.contains(RowRange::new(5, 99)));
    }

    proptest! {
        #[test]
        fn row_sets_match_a_bitmap(ops in proptest::collection::vec((0u64..200, 0u64..40), 0..30)) {
            let mut s = RowSet::new();
            let mut bits = [false; 240];
            for (a, l) in ops {
                s.insert(RowRange::new(a, a + l));
                for b in &mut bits[a as usize..(a + l) as usize] { *b = true; }
            }
            prop_assert_eq!(s.len(), bits.iter().filter(|&&b| b).count() as u64);
            let missing: u64 = s.missing(RowRange::new(0, 240)).iter().map(RowRange::len).sum();
            prop_assert_eq!(missing, 240 - s.len());
            for w in s.ranges().windows(2) { prop_assert!(w[0].end < w[1].start); }
        }

        #[test]
        fn plans_are_disjoint_covering_and_aligned_when_possible(
            start in 0u64..1000, len in 0u64..100_000, workers in 1usize..17,
            offset in 0u64..20_000, row_bytes in 1u64..70_000,
            align in prop_oneof![Just(4096u64), Just(65536u64), Just(1u64), 1u64..10_000],
        ) {
            let rows = RowRange::new(start, start + len);
            let p = Plan::split(rows, workers, offset, row_bytes, align);
            prop_assert_eq!(p.workers() as u64, (workers as u64).min(len));
            let mut next = rows.start;
            for r in &p.ranges {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
            }
            prop_assert_eq!(next, if len == 0 { start } else { rows.end });
            if p.alignment == Alignment::Aligned {
                for r in &p.ranges[1..] {
                    prop_assert_eq!((offset as u128 + r.start as u128 * row_bytes as u128) % align as u128, 0);
                }
            }
            // Aligned boundaries are claimed impossible only when none exist.
            if p.alignment == Alignment::Impossible {
                let any = (0..align.min(100_000)).any(|k| (offset as u128 + k as u128 * row_bytes as u128).is_multiple_of(align as u128));
                prop_assert!(!any);
            }
        }

        #[test]
        fn chunks_cover_every_row_once(start in 0u64..100, len in 0u64..5000, chunk in 1u64..700,
                                       offset in 0u64..9000, row_bytes in 1u64..9000) {
            let rows = RowRange::new(start, start + len);
            let p = Plan::chunks(rows, chunk, offset, row_bytes, 4096);
            let mut next = rows.start;
            for r in &p.ranges {
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start);
                next = r.end;
            }
            prop_assert_eq!(next, rows.end);
        }

        #[test]
        fn aligned_rows_solves_the_congruence(offset in 0u64..1_000_000, row_bytes in 1u64..1_000_000,
                                              align in 1u64..70_000) {
            match aligned_rows(offset, row_bytes, align) {
                Some((first, period)) => {
                    prop_assert!(first < period.max(1));
                    for k in [first, first + period, first + 7 * period] {
                        prop_assert_eq!((offset as u128 + k as u128 * row_bytes as u128) % align as u128, 0);
                    }
                    // No aligned row between two solutions.
                    for k in first + 1..(first + period).min(first + 200) {
                        prop_assert_ne!((offset as u128 + k as u128 * row_bytes as u128) % align as u128, 0);
                    }
                }
                None => {
                    for k in 0..align.min(5000) {
                        prop_assert_ne!((offset as u128 + k as u128 * row_bytes as u128) % align as u128, 0);
                    }
                }
            }
        }
    }
}
