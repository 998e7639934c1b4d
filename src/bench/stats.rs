//! Statistics of one cell's samples: min, median, max, mean, standard
//! deviation, and throughput.
//!
//! Throughput is read from the median, which one slow sample (a stray
//! writeback, a page-cache shrink) does not move. GB/s are decimal: 10^9
//! bytes per second, as `fio` and `dd` print them.

use serde::{Deserialize, Serialize};

/// Summary statistics of a cell's samples, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of samples.
    pub n: usize,
    /// Fastest sample.
    pub min: f64,
    /// Median (mean of the two middle samples when `n` is even).
    pub median: f64,
    /// Slowest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1); `None` for a single sample.
    pub stddev: Option<f64>,
}

impl Stats {
    /// Statistics of `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let stddev = (n > 1).then(|| {
            let ss: f64 = sorted.iter().map(|x| (x - mean) * (x - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        Some(Stats {
            n,
            min: sorted[0],
            median,
            max: sorted[n - 1],
            mean,
            stddev,
        })
    }
}

/// Decimal gigabytes per second for `bytes` in `seconds`; 0 when `seconds`
/// is not positive.
pub fn gbps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / seconds / 1e9
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn odd_count() {
        let s = Stats::of(&[3.0, 1.0, 2.0, 10.0, 4.0]).unwrap();
        assert_eq!(s.n, 5);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 10.0));
        assert!(close(s.mean, 4.0));
        // Deviations -3 -2 -1 0 6: squares sum to 50, / 4 = 12.5.
        assert!(close(s.stddev.unwrap(), 12.5f64.sqrt()));
    }

    #[test]
    fn even_count_takes_the_middle_pair() {
        let s = Stats::of(&[0.4, 0.1, 0.3, 0.2]).unwrap();
        assert!(close(s.median, 0.25));
        assert!(close(s.mean, 0.25));
        assert!(close(s.stddev.unwrap(), (0.05f64 / 3.0).sqrt()));
    }

    #[test]
    fn one_sample_has_no_deviation() {
        let s = Stats::of(&[2.5]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.mean), (2.5, 2.5, 2.5, 2.5));
        assert_eq!(s.stddev, None);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn equal_samples_have_zero_deviation() {
        let s = Stats::of(&[0.5, 0.5, 0.5]).unwrap();
        assert_eq!(s.stddev, Some(0.0));
    }

    #[test]
    fn throughput_is_decimal() {
        assert!(close(gbps(2_000_000_000, 0.5), 4.0));
        assert!(close(gbps(400 << 20, 1.0), 0.419_430_4));
        assert_eq!(gbps(1, 0.0), 0.0);
    }
}
