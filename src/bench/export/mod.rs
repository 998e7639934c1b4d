//! Bench exports, one exporter per format behind [`Exporter`], as hyperfine
//! lays out its `export/*`: JSON (the whole report, versioned), CSV (one row
//! per cell), Markdown (environment and a table) and an SVG plot of GB/s
//! against workers.
//!
//! [`open_exports`] creates every file before anything is measured, so a
//! bad path fails in a second rather than after a long bench; `-` means
//! stdout.

mod csv;
mod json;
mod markdown;
mod svg;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

pub use csv::CsvExporter;
pub use json::JsonExporter;
pub use markdown::MarkdownExporter;
pub use svg::SvgExporter;

use super::BenchReport;
use crate::error::{Error, Result};

/// Turns a report into the bytes of one format.
pub trait Exporter {
    /// The report in this format.
    fn serialize(&self, report: &BenchReport) -> Result<Vec<u8>>;
}

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// `--export-json`.
    Json,
    /// `--export-csv`.
    Csv,
    /// `--export-markdown`.
    Markdown,
    /// `--plot` (SVG).
    Svg,
}

impl ExportFormat {
    /// The exporter for this format.
    pub fn exporter(self) -> Box<dyn Exporter> {
        match self {
            ExportFormat::Json => Box::new(JsonExporter),
            ExportFormat::Csv => Box::new(CsvExporter),
            ExportFormat::Markdown => Box::new(MarkdownExporter),
            ExportFormat::Svg => Box::new(SvgExporter),
        }
    }

    /// The option that asks for it, for messages.
    pub fn option(self) -> &'static str {
        match self {
            ExportFormat::Json => "--export-json",
            ExportFormat::Csv => "--export-csv",
            ExportFormat::Markdown => "--export-markdown",
            ExportFormat::Svg => "--plot",
        }
    }
}

#[derive(Debug)]
enum Sink {
    Stdout,
    File(PathBuf, File),
}

/// Export destinations, opened up front.
#[derive(Debug)]
pub struct Exports {
    targets: Vec<(ExportFormat, Sink)>,
}

/// Creates (truncating) every export file now; `-` is stdout, which at most
/// one export may take. Fails on the first path that cannot be created.
pub fn open_exports(requests: &[(ExportFormat, PathBuf)]) -> Result<Exports> {
    let mut targets = Vec::with_capacity(requests.len());
    let mut stdout_taken: Option<ExportFormat> = None;
    for (format, path) in requests {
        if path.as_os_str() == "-" {
            if let Some(other) = stdout_taken {
                return Err(Error::refused(format!(
                    "{} and {} cannot both write to stdout (-)",
                    other.option(),
                    format.option()
                )));
            }
            stdout_taken = Some(*format);
            targets.push((*format, Sink::Stdout));
            continue;
        }
        if let Some((other, _)) = targets
            .iter()
            .find(|(_, s)| matches!(s, Sink::File(p, _) if p == path))
        {
            return Err(Error::refused(format!(
                "{} and {} both name {}",
                ExportFormat::option(*other),
                format.option(),
                path.display()
            )));
        }
        let file = File::create(path).map_err(|e| {
            Error::io_refused(&format!("{}: cannot create", format.option()), path, e)
        })?;
        targets.push((*format, Sink::File(path.clone(), file)));
    }
    Ok(Exports { targets })
}

impl Exports {
    /// Whether no export was asked for.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Whether one export writes to stdout (so nothing else should).
    pub fn uses_stdout(&self) -> bool {
        self.targets.iter().any(|(_, s)| matches!(s, Sink::Stdout))
    }

    /// Writes `report` to every destination.
    pub fn write(&mut self, report: &BenchReport) -> Result<()> {
        for (format, sink) in &mut self.targets {
            let bytes = format.exporter().serialize(report)?;
            match sink {
                Sink::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes)
                        .and_then(|_| out.flush())
                        .map_err(|e| Error::failed(format!("cannot write to stdout: {e}")))?;
                }
                Sink::File(path, file) => file
                    .write_all(&bytes)
                    .and_then(|_| file.flush())
                    .map_err(|e| Error::io_failed("cannot write", path, e))?,
            }
        }
        Ok(())
    }
}

/// Milliseconds with two decimals, as the tables print them.
fn ms(seconds: f64) -> String {
    format!("{:.2}", seconds * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::tests::fixed_report;

    #[test]
    fn exports_are_created_up_front_and_bad_paths_fail_early() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.json");
        let svg = dir.path().join("p.svg");
        let mut ex = open_exports(&[
            (ExportFormat::Json, json.clone()),
            (ExportFormat::Svg, svg.clone()),
        ])
        .unwrap();
        assert!(json.exists() && svg.exists());
        assert!(!ex.uses_stdout());
        ex.write(&fixed_report()).unwrap();
        let back = std::fs::read_to_string(&json).unwrap();
        assert_eq!(BenchReport::from_json(&back).unwrap(), fixed_report());
        assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

        let bad = dir.path().join("missing/dir/r.csv");
        let e = open_exports(&[(ExportFormat::Csv, bad)]).unwrap_err();
        assert!(
            e.message().starts_with("--export-csv: cannot create"),
            "{e}"
        );
        let e = open_exports(&[
            (ExportFormat::Json, "-".into()),
            (ExportFormat::Markdown, "-".into()),
        ])
        .unwrap_err();
        assert!(e.message().contains("stdout"));
        let e = open_exports(&[
            (ExportFormat::Json, json.clone()),
            (ExportFormat::Csv, json),
        ])
        .unwrap_err();
        assert!(e.message().contains("both name"));
        assert!(open_exports(&[(ExportFormat::Csv, "-".into())])
            .unwrap()
            .uses_stdout());
    }
}
