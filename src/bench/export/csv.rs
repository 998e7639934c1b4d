//! The CSV export: one row per cell, times in seconds and GB/s at full
//! precision, for spreadsheets and plotting scripts. Raw samples are in the
//! JSON export only.

use std::fmt::Write;

use super::Exporter;
use crate::bench::BenchReport;
use crate::error::Result;

/// `--export-csv`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CsvExporter;

const HEADER: &str = "line,kind,workers,bytes,samples,min_s,median_s,max_s,mean_s,stddev_s,gbps,reference,reference_workers,ratio\n";

impl Exporter for CsvExporter {
    fn serialize(&self, report: &BenchReport) -> Result<Vec<u8>> {
        let mut out = String::from(HEADER);
        for c in &report.cells {
            let s = &c.stats;
            let opt = |v: Option<String>| v.unwrap_or_default();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                c.line,
                c.kind,
                c.workers,
                c.bytes,
                s.n,
                s.min,
                s.median,
                s.max,
                s.mean,
                opt(s.stddev.map(|d| d.to_string())),
                c.gbps,
                opt(c.reference.as_ref().map(|b| b.line.to_string())),
                opt(c.reference.as_ref().map(|b| b.workers.to_string())),
                opt(c.reference.as_ref().map(|b| b.ratio.to_string())),
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
    fn csv_snapshot() {
        let text = String::from_utf8(CsvExporter.serialize(&fixed_report()).unwrap()).unwrap();
        let want = "\
line,kind,workers,bytes,samples,min_s,median_s,max_s,mean_s,stddev_s,gbps,reference,reference_workers,ratio
anon-first-touch,reference,1,4194304,2,0.002,0.003,0.004,0.003,0.001414213562373095,1.3981013333333332,,,
mmap-writer,reference,1,4194304,2,0.004,0.004,0.004,0.004,0,1.048576,,,
fill-value,mmrun,1,4194304,2,0.005,0.005,0.005,0.005,0,0.8388608,mmap-writer,1,0.8
anon-first-touch,reference,2,4194304,2,0.001,0.001,0.001,0.001,0,4.194304,,,
mmap-writer,reference,2,4194304,2,0.002,0.0025,0.003,0.0025,0.0007071067811865475,1.6777216,,,
fill-value,mmrun,2,4194304,2,0.0025,0.0032500000000000003,0.004,0.0032500000000000003,0.0010606601717798212,1.290555076923077,mmap-writer,2,0.7692307692307693
pwrite,reference,1,4194304,2,0.008,0.008,0.008,0.008,0,0.524288,,,
hot-memset,reference,1,4194304,2,0.0005,0.0005,0.0005,0.0005,0,8.388608,,,
";
        assert_eq!(text, want);
    }
}
