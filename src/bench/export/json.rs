//! The JSON export: the whole [`BenchReport`] (raw samples, statistics,
//! bindings, environment), pretty-printed, with `schema_version` first so
//! harnesses and `--compare` can check it before reading on.

use super::Exporter;
use crate::bench::BenchReport;
use crate::error::{Error, Result};

/// `--export-json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn serialize(&self, report: &BenchReport) -> Result<Vec<u8>> {
        let mut out = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::failed(format!("cannot encode the bench report: {e}")))?;
        out.push(b'\n');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tests::fixed_report;

    #[test]
    fn json_snapshot_of_one_cell_and_the_head() {
        let text = String::from_utf8(JsonExporter.serialize(&fixed_report()).unwrap()).unwrap();
        assert!(text.starts_with(
            "{\n  \"schema_version\": 1,\n  \"params\": {\n    \"size_bytes\": 4194304,\n"
        ));
        let cell = r#"    {
      "line": "fill-value",
      "kind": "mmrun",
      "workers": 2,
      "bytes": 4194304,
      "samples": [
        0.004,
        0.0025
      ],
      "stats": {
        "n": 2,
        "min": 0.0025,
        "median": 0.0032500000000000003,
        "max": 0.004,
        "mean": 0.0032500000000000003,
        "stddev": 0.0010606601717798212
      },
      "gbps": 1.290555076923077,
      "reference": {
        "line": "mmap-writer",
        "workers": 2,
        "gbps": 1.6777216,
        "ratio": 0.7692307692307693
      }
    },
"#;
        assert!(text.contains(cell), "{text}");
        assert!(text.contains("\"reference\": null"));
        assert!(text.contains("\"fs_type\": \"xfs\""));
        assert!(text.ends_with("}\n"));
    }
}
