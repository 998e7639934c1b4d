//! The Markdown export: the environment as a short list, then one table row
//! per cell with times in milliseconds, GB/s, and each mmrun cell's share of
//! the reference line that binds it.

use std::fmt::Write;

use super::{ms, Exporter};
use crate::bench::BenchReport;
use crate::error::Result;
use indicatif::HumanBytes;

/// `--export-markdown`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkdownExporter;

impl Exporter for MarkdownExporter {
    fn serialize(&self, r: &BenchReport) -> Result<Vec<u8>> {
        let e = &r.environment;
        let p = &r.params;
        let mut out = String::from("# mmrun bench\n\n");
        let _ = writeln!(
            out,
            "- machine: {}, {} CPUs, {}, Linux {}, page size {}, THP {}, host {}",
            e.cpu, e.nproc, e.arch, e.kernel, e.page_size, e.thp, e.hostname
        );
        let _ = writeln!(
            out,
            "- file system: {} ({}) on {}, options {}; bench directory {}",
            e.fs.fs_type,
            e.fs.source,
            e.fs.mount_point,
            e.fs.mount_options,
            e.fs.dir.display()
        );
        let _ = writeln!(
            out,
            "- run: {} per sample, {} measured round(s) after {} warm-up, {} workers, space reserved with {}",
            HumanBytes(p.bytes),
            p.repeat,
            p.warmup,
            p.spawn,
            e.reserve
        );
        let _ = writeln!(out, "- cache: {} ({})", e.cache.mode, e.cache.method);
        let _ = writeln!(
            out,
            "- mmrun {}, {} build\n",
            e.mmrun_version, e.build_profile
        );
        out.push_str("| Line | Workers | Median [ms] | Min [ms] | Max [ms] | Mean ± σ [ms] | GB/s | Of reference |\n");
        out.push_str("|:---|---:|---:|---:|---:|---:|---:|:---|\n");
        for c in &r.cells {
            let s = &c.stats;
            let spread = s.stddev.map_or(String::new(), |d| format!(" ± {}", ms(d)));
            let of = c.reference.as_ref().map_or(String::new(), |b| {
                format!(
                    "{:.1}% of {} ×{}",
                    b.ratio * 100.0,
                    b.line.label(),
                    b.workers
                )
            });
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {}{} | {:.3} | {} |",
                c.line.label(),
                c.workers,
                ms(s.median),
                ms(s.min),
                ms(s.max),
                ms(s.mean),
                spread,
                c.gbps,
                of
            );
        }
        Ok(out.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tests::fixed_report;

    #[test]
    fn markdown_snapshot() {
        let text = String::from_utf8(MarkdownExporter.serialize(&fixed_report()).unwrap()).unwrap();
        let want = "\
# mmrun bench

- machine: Test CPU @ 3.00GHz, 8 CPUs, x86_64, Linux 6.1.0-test, page size 4096, THP madvise, host node1
- file system: xfs (/dev/md0) on /scratch, options rw,relatime; bench directory /scratch/b
- run: 4.00 MiB per sample, 2 measured round(s) after 1 warm-up, fork workers, space reserved with fallocate
- cache: warm (nothing dropped)
- mmrun 0.1.0, release build

| Line | Workers | Median [ms] | Min [ms] | Max [ms] | Mean ± σ [ms] | GB/s | Of reference |
|:---|---:|---:|---:|---:|---:|---:|:---|
| anonymous first-touch | 1 | 3.00 | 2.00 | 4.00 | 3.00 ± 1.41 | 1.398 |  |
| plain mmap writer | 1 | 4.00 | 4.00 | 4.00 | 4.00 ± 0.00 | 1.049 |  |
| mmrun fill-value | 1 | 5.00 | 5.00 | 5.00 | 5.00 ± 0.00 | 0.839 | 80.0% of plain mmap writer ×1 |
| anonymous first-touch | 2 | 1.00 | 1.00 | 1.00 | 1.00 ± 0.00 | 4.194 |  |
| plain mmap writer | 2 | 2.50 | 2.00 | 3.00 | 2.50 ± 0.71 | 1.678 |  |
| mmrun fill-value | 2 | 3.25 | 2.50 | 4.00 | 3.25 ± 1.06 | 1.291 | 76.9% of plain mmap writer ×2 |
| pwrite 4 MiB + fsync | 1 | 8.00 | 8.00 | 8.00 | 8.00 ± 0.00 | 0.524 |  |
| hot memset | 1 | 0.50 | 0.50 | 0.50 | 0.50 ± 0.00 | 8.389 |  |
";
        assert_eq!(text, want);
    }
}
