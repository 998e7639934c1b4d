//! `--compare OLD.json`: this bench against an earlier export, cell by
//! cell, as ratios of median throughput.
//!
//! Cells are matched by line and worker count. A ratio above 1 means the new
//! run is faster. Differences in the environment (kernel, CPU, file system,
//! build) are listed first, since they often explain a ratio better than a
//! change to mmrun does.

use std::fmt;

use super::{BenchReport, Line};

/// One cell measured in both reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioLine {
    /// What was measured.
    pub line: Line,
    /// Worker count.
    pub workers: usize,
    /// GB/s in the old report.
    pub old_gbps: f64,
    /// GB/s in the new report.
    pub new_gbps: f64,
    /// `new_gbps / old_gbps` (0 when the old figure is 0).
    pub ratio: f64,
}

impl fmt::Display for RatioLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<24} {:>3} worker(s)  {:>8.3} -> {:>8.3} GB/s  {:.2}x",
            self.line.label(),
            self.workers,
            self.old_gbps,
            self.new_gbps,
            self.ratio
        )
    }
}

/// A new report against an old one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Comparison {
    /// Environment fields that differ, as `field: old -> new`.
    pub env_changes: Vec<String>,
    /// Cells in both reports, in the new report's order.
    pub lines: Vec<RatioLine>,
    /// Cells only in the new report, as `line xN`.
    pub only_new: Vec<String>,
    /// Cells only in the old report, as `line xN`.
    pub only_old: Vec<String>,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.env_changes {
            writeln!(f, "environment changed: {c}")?;
        }
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        if !self.only_new.is_empty() {
            writeln!(f, "only in the new run: {}", self.only_new.join(", "))?;
        }
        if !self.only_old.is_empty() {
            writeln!(f, "only in the old run: {}", self.only_old.join(", "))?;
        }
        Ok(())
    }
}

/// Compares `new` with `old`, cell by cell.
pub fn compare(old: &BenchReport, new: &BenchReport) -> Comparison {
    let mut out = Comparison::default();
    let (o, n) = (&old.environment, &new.environment);
    let mut changed = |field: &str, a: String, b: String| {
        if a != b {
            out.env_changes.push(format!("{field}: {a} -> {b}"));
        }
    };
    changed("kernel", o.kernel.clone(), n.kernel.clone());
    changed("cpu", o.cpu.clone(), n.cpu.clone());
    changed("nproc", o.nproc.to_string(), n.nproc.to_string());
    changed("hostname", o.hostname.clone(), n.hostname.clone());
    changed("thp", o.thp.clone(), n.thp.clone());
    changed("fs type", o.fs.fs_type.clone(), n.fs.fs_type.clone());
    changed(
        "mount options",
        o.fs.mount_options.clone(),
        n.fs.mount_options.clone(),
    );
    changed("mmrun", o.mmrun_version.clone(), n.mmrun_version.clone());
    changed("build", o.build_profile.clone(), n.build_profile.clone());
    changed("cache", o.cache.mode.to_string(), n.cache.mode.to_string());
    changed(
        "bytes per sample",
        old.params.bytes.to_string(),
        new.params.bytes.to_string(),
    );
    for c in &new.cells {
        match old.cell(c.line, c.workers) {
            Some(prev) => out.lines.push(RatioLine {
                line: c.line,
                workers: c.workers,
                old_gbps: prev.gbps,
                new_gbps: c.gbps,
                ratio: if prev.gbps > 0.0 {
                    c.gbps / prev.gbps
                } else {
                    0.0
                },
            }),
            None => out.only_new.push(format!("{} x{}", c.line, c.workers)),
        }
    }
    for c in &old.cells {
        if new.cell(c.line, c.workers).is_none() {
            out.only_old.push(format!("{} x{}", c.line, c.workers));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::fixed_report;
    use super::super::{bind_references, gbps, BenchKernel, Stats};
    use super::*;

    #[test]
    fn ratios_env_changes_and_unmatched_cells() {
        let old = fixed_report();
        let mut new = fixed_report();
        new.environment.kernel = "6.8.0-test".into();
        // The new mmap writer x1 is twice as fast.
        let c = new
            .cells
            .iter_mut()
            .find(|c| c.line == Line::MmapWriter && c.workers == 1)
            .unwrap();
        c.samples = vec![0.002, 0.002];
        c.stats = Stats::of(&c.samples).unwrap();
        c.gbps = gbps(c.bytes, c.stats.median);
        new.cells.retain(|c| c.line != Line::HotMemset);
        let mut extra = new.cells[2].clone();
        extra.line = Line::Mmrun(BenchKernel::FillUniform);
        new.cells.push(extra);
        bind_references(&mut new);

        let cmp = compare(&old, &new);
        assert_eq!(cmp.env_changes, ["kernel: 6.1.0-test -> 6.8.0-test"]);
        assert_eq!(cmp.lines.len(), 7);
        let w = cmp
            .lines
            .iter()
            .find(|l| l.line == Line::MmapWriter && l.workers == 1)
            .unwrap();
        assert!((w.ratio - 2.0).abs() < 1e-12);
        assert!(cmp
            .lines
            .iter()
            .filter(|l| l.line != Line::MmapWriter || l.workers != 1)
            .all(|l| (l.ratio - 1.0).abs() < 1e-12));
        assert_eq!(cmp.only_new, ["fill-uniform x1"]);
        assert_eq!(cmp.only_old, ["hot-memset x1"]);
        let text = cmp.to_string();
        assert!(text.starts_with("environment changed: kernel: 6.1.0-test -> 6.8.0-test\n"));
        assert!(text.contains(
            "plain mmap writer          1 worker(s)     1.049 ->    2.097 GB/s  2.00x\n"
        ));
        assert!(text.ends_with("only in the old run: hot-memset x1\n"));
    }
}
