//! What mmrun tells people: the one-paragraph summary of a run, the plan of a
//! dry run, and `info`'s description of a file (text and JSON).
//!
//! Only formatting lives here; the numbers come from
//! [`crate::coordinator::RunSummary`] and [`crate::layout::Layout`].

pub mod merge;

use std::path::Path;

use indicatif::HumanBytes;
use serde_json::json;

use crate::coordinator::RunSummary;
use crate::layout::{Format, Layout};
use crate::plan::Alignment;

fn alignment_note(a: Alignment, align: u64) -> String {
    match a {
        Alignment::Aligned => format!("boundaries aligned to {align} bytes"),
        Alignment::Impossible => format!("no row boundary is {align}-byte aligned in this file: boundaries are balanced instead"),
        Alignment::TooSparse => format!("{align}-byte aligned boundaries are too sparse for this many workers: boundaries are balanced instead"),
        Alignment::NotNeeded => "one range".into(),
    }
}

/// The plan of a run, one line per worker, as `--dry-run` prints it.
pub fn plan_text(s: &RunSummary) -> String {
    let l = &s.layout;
    let row_bytes = l.row_bytes().unwrap_or(0);
    let mut out = format!(
        "plan for {}: {} {} {}, data at byte {}, rows {} ({}), {} worker(s){}\n  {}\n",
        s.path.display(),
        l.format.name(),
        l.dtype,
        l.shape_text(),
        l.data_offset,
        s.rows,
        HumanBytes(s.bytes),
        s.plan.workers(),
        if s.plan.workers() < s.workers_requested {
            format!(
                " (clamped from {}: fewer rows than workers)",
                s.workers_requested
            )
        } else {
            String::new()
        },
        alignment_note(s.plan.alignment, s.plan.align),
    );
    for (i, r) in s.plan.ranges.iter().enumerate() {
        out.push_str(&format!(
            "  worker {i}: rows {r}, bytes {}..{} ({})\n",
            l.data_offset + r.start * row_bytes,
            l.data_offset + r.end * row_bytes,
            HumanBytes(r.len() * row_bytes)
        ));
    }
    out.push_str(&format!(
        "  {}; space would be {}\n",
        match (s.read_only, s.created) {
            (true, _) => "the file would only be read",
            (false, true) => "a new file would be built and published atomically",
            (false, false) => "the file would be written in place",
        },
        s.reserved
    ));
    out
}

/// Each failed attempt whose rows were started again, described.
pub fn retries(s: &RunSummary) -> Vec<String> {
    s.workers
        .iter()
        .enumerate()
        .filter(|(i, w)| {
            !w.outcome.succeeded() && s.workers[i + 1..].iter().any(|l| l.rows == w.rows)
        })
        .map(|(_, w)| w.describe())
        .collect()
}

/// The one-paragraph summary printed on stderr after a run.
pub fn summary_text(s: &RunSummary) -> String {
    let l = &s.layout;
    let total = s.prepare_s + s.run_s + s.flush_s;
    let rate = if s.run_s + s.flush_s > 0.0 {
        s.bytes as f64 / (s.run_s + s.flush_s) / 1e9
    } else {
        0.0
    };
    let mut text = format!(
        "mmrun: {} {} {} {} ({}): {} rows by {} worker(s) in {:.3} s ({:.2} GB/s; prepare {:.3} s, run {:.3} s, flush {:.3} s)",
        match (s.read_only, s.created) {
            (true, _) => "read",
            (false, true) => "wrote",
            (false, false) => "updated",
        },
        s.path.display(),
        l.dtype,
        l.shape_text(),
        HumanBytes(l.file_len().unwrap_or(0)),
        s.rows.len(),
        // Dynamic plans have more chunks than workers run at once.
        s.plan.workers().min(s.workers_requested),
        total,
        rate,
        s.prepare_s,
        s.run_s,
        s.flush_s,
    );
    if let Some(seed) = &s.seed {
        text.push_str(&format!("; seed {seed}"));
    }
    for r in retries(s) {
        text.push_str(&format!("; retried after {r}"));
    }
    // NumPy's RuntimeWarnings a reduction counted ({"warning", "count"}).
    if let Some(ws) = s.results.get("warnings").and_then(|w| w.as_array()) {
        for w in ws {
            if let (Some(what), Some(n)) = (w["warning"].as_str(), w["count"].as_u64()) {
                text.push_str(&format!("; {what} ({n} result(s))"));
            }
        }
    }
    if s.plan.workers() < s.workers_requested && s.plan.workers() > 0 {
        text.push_str(&format!(
            "; {} workers asked for, clamped to the {} rows",
            s.workers_requested,
            s.rows.len()
        ));
    }
    text
}

/// Version of the JSON documents mmrun prints; bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// The `--json` / `--report` document of a run; `error` is the failure of
/// a run that did not succeed. Its schema is `schema/run-report.schema.json`.
pub fn run_json(command: &str, s: &RunSummary, error: Option<&crate::Error>) -> serde_json::Value {
    let l = &s.layout;
    let total = s.prepare_s + s.run_s + s.flush_s;
    let busy = s.run_s + s.flush_s;
    let outcome = match error.map(crate::Error::kind) {
        None => "success",
        Some(crate::ErrorKind::Interrupted(_)) => "interrupted",
        Some(crate::ErrorKind::Busy) => "busy",
        Some(crate::ErrorKind::Refused) => "refused",
        Some(_) => "failed",
    };
    json!({
        "schema_version": SCHEMA_VERSION,
        "mmrun_version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "parameters": s.parameters,
        "file": s.path,
        "format": l.format.name(),
        "dtype": l.dtype.descr(),
        "shape": l.shape,
        "data_offset": l.data_offset,
        "file_bytes": l.file_len().ok(),
        "bytes": s.bytes,
        "filesystem": s.filesystem,
        "created": s.created,
        "dry_run": s.dry_run,
        "rows": s.rows,
        "resumed_rows": s.resumed_rows,
        "seed": s.seed,
        "space": s.reserved,
        "plan": {
            "workers": s.plan.workers(),
            "workers_requested": s.workers_requested,
            "align": s.plan.align,
            "alignment": s.plan.alignment,
            "ranges": s.plan.ranges,
        },
        "phases": { "prepare_s": s.prepare_s, "run_s": s.run_s, "flush_s": s.flush_s, "total_s": total },
        "throughput_gbps": if busy > 0.0 { s.bytes as f64 / busy / 1e9 } else { 0.0 },
        "results": s.results,
        "workers": s.workers,
        "retries": retries(s),
        "outcome": outcome,
        "error": error.map(|e| e.message().to_string()),
        "exit_code": error.map_or(crate::exit_code::SUCCESS, crate::Error::exit_code),
    })
}

/// The JSON report of a command stopped before it had a plan (refused,
/// busy, or failed while preparing): what and why. Nothing was written.
pub fn refusal_json(command: &str, error: &crate::Error) -> serde_json::Value {
    let outcome = match error.kind() {
        crate::ErrorKind::Interrupted(_) => "interrupted",
        crate::ErrorKind::Busy => "busy",
        crate::ErrorKind::Refused => "refused",
        _ => "failed",
    };
    json!({
        "schema_version": SCHEMA_VERSION,
        "mmrun_version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "dry_run": false,
        "written": false,
        "outcome": outcome,
        "error": error.message(),
        "exit_code": error.exit_code(),
    })
}

/// `info`'s JSON document for a file.
pub fn info_json(path: &Path, l: &Layout, file_len: u64) -> serde_json::Value {
    let mut doc = json!({
        "schema_version": SCHEMA_VERSION,
        "file": path,
        "format": l.format.name(),
        "npy_version": match l.format { Format::Npy { major } => Some(format!("{major}.0")), Format::Raw => None },
        "dtype": l.dtype.descr_with(l.byte_order),
        "dtype_name": l.dtype.numpy_name(),
        "byte_order": l.byte_order,
        "fortran_order": l.fortran_order,
        "shape": l.shape,
        "data_offset": l.data_offset,
        "data_bytes": l.data_bytes().ok(),
        "file_bytes": file_len,
        "row_bytes": l.row_bytes().ok(),
        "itemsize": l.dtype.itemsize(),
        "computable": l.dtype.is_computable(),
    });
    if let Some(note) = layout_only_note(l) {
        doc["note"] = json!(note);
    }
    doc
}

/// What mmrun does with a file of a layout-only dtype (complex, datetime …).
fn layout_only_note(l: &Layout) -> Option<String> {
    (!l.dtype.is_computable()).then(|| {
        if l.dtype.is_complex() {
            return format!(
                "fill --value/--arange, apply --expr and convert compute on {}; reduce and fill --random refuse it, and mmrun exec (a program of yours writes the rows) takes it",
                l.dtype
            );
        }
        format!(
            "mmrun computes on bool, integer and float arrays: fill, apply, reduce and convert refuse {}; mmrun create and mmrun exec (a program of yours writes the rows) take it",
            l.dtype
        )
    })
}

/// `info`'s text description of a file.
pub fn info_text(path: &Path, l: &Layout, file_len: u64) -> String {
    let mut notes = Vec::new();
    let convert = crate::layout::convert_command(path);
    if l.byte_order == crate::layout::ByteOrder::Big {
        notes.push(format!(
            "big-endian: other mmrun commands refuse it; convert it to native byte order first: {convert}"
        ));
    }
    notes.extend(layout_only_note(l));
    if l.fortran_order && l.shape.len() > 1 {
        notes.push(format!(
            "Fortran order: other mmrun commands refuse it; convert it to C order first: {convert}"
        ));
    }
    let format = match l.format {
        Format::Npy { major } => format!("npy v{major}.0"),
        Format::Raw => "raw".into(),
    };
    let mut s = format!(
        "{}: {format}, dtype {} ({}), shape {}, {} order, data at byte {}, {} of data ({} bytes), file {} bytes",
        path.display(),
        l.dtype.descr_with(l.byte_order),
        l.dtype,
        l.shape_text(),
        if l.fortran_order { "Fortran" } else { "C" },
        l.data_offset,
        HumanBytes(l.data_bytes().unwrap_or(0)),
        l.data_bytes().unwrap_or(0),
        file_len
    );
    for n in notes {
        s.push_str("\n  note: ");
        s.push_str(&n);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(HumanBytes(512).to_string(), "512 B");
        assert_eq!(HumanBytes(400_004_096).to_string(), "381.47 MiB");
        assert_eq!(HumanBytes(1 << 30).to_string(), "1.00 GiB");
    }
}
