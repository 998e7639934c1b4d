//! `mmrun report merge`: one job summary from the reports of a distributed
//! run's ranks, and the cross-rank result of a reduction across rows.
//!
//! Each rank of `mmrun reduce --axis 0|all --distributed` leaves the exact
//! nodes of the dyadic tree it computed in its report (f64 and i128 as the
//! hex of their little-endian bytes). Merging inserts every rank's nodes
//! into one [`Forest`] — the same tree, the same combines, in the same
//! order as a local run — so the result is bit for bit a local run's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::SCHEMA_VERSION;
use crate::error::{Error, Result};
use crate::kernels::reduce::{Forest, Node, NodeRecord, ReduceParams};

/// One rank's report, read back.
#[derive(Debug)]
struct RankReport {
    path: PathBuf,
    rank: u64,
    size: u64,
    doc: Value,
}

/// A reduction's result combined across ranks.
#[derive(Debug, Clone)]
pub struct MergedReduce {
    /// The reduction every rank ran.
    pub params: ReduceParams,
    /// The result in the output dtype, C order.
    pub bytes: Vec<u8>,
    /// The result's values.
    pub values: Vec<crate::kernels::reduce::Value>,
}

/// What merging gave.
#[derive(Debug)]
pub struct Merged {
    /// The job summary document (`--json`).
    pub doc: Value,
    /// The cross-rank reduction, when the ranks ran one across rows.
    pub reduce: Option<MergedReduce>,
    /// Ranks that failed or are missing, described; empty when the job
    /// succeeded.
    pub problems: Vec<String>,
}

fn read(path: &Path) -> Result<RankReport> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io_refused("cannot read report", path, e))?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| Error::refused(format!("{} is not a JSON report: {e}", path.display())))?;
    if doc["schema_version"] != json!(SCHEMA_VERSION) {
        return Err(Error::refused(format!(
            "{} has report schema version {} (this mmrun reads {SCHEMA_VERSION})",
            path.display(),
            doc["schema_version"]
        )));
    }
    let d = &doc["parameters"]["distributed"];
    let (Some(rank), Some(size)) = (d["rank"].as_u64(), d["size"].as_u64()) else {
        return Err(Error::refused(format!(
            "{} is not a rank's report (its run was not --distributed)",
            path.display()
        )));
    };
    Ok(RankReport {
        path: path.to_path_buf(),
        rank,
        size,
        doc,
    })
}

/// Merges the reports at `paths` (one per rank, any order).
pub fn merge(paths: &[PathBuf]) -> Result<Merged> {
    if paths.is_empty() {
        return Err(Error::refused("give the ranks' reports to merge"));
    }
    let reports: Vec<RankReport> = paths.iter().map(|p| read(p)).collect::<Result<_>>()?;
    let first = &reports[0];
    let size = first.size;
    let mut by_rank: BTreeMap<u64, &RankReport> = BTreeMap::new();
    for r in &reports {
        for key in ["command", "file", "shape", "dtype"] {
            if r.doc[key] != first.doc[key] {
                return Err(Error::refused(format!(
                    "{} and {} are reports of different jobs ({key} {} vs {})",
                    first.path.display(),
                    r.path.display(),
                    first.doc[key],
                    r.doc[key]
                )));
            }
        }
        if r.size != size {
            return Err(Error::refused(format!(
                "{} says {} ranks, {} says {size}",
                r.path.display(),
                r.size,
                first.path.display()
            )));
        }
        if let Some(other) = by_rank.insert(r.rank, r) {
            return Err(Error::refused(format!(
                "{} and {} are both rank {}",
                other.path.display(),
                r.path.display(),
                r.rank
            )));
        }
    }
    let mut problems = Vec::new();
    let missing: Vec<String> = (0..size)
        .filter(|k| !by_rank.contains_key(k))
        .map(|k| k.to_string())
        .collect();
    if !missing.is_empty() {
        problems.push(format!("no report from rank(s) {}", missing.join(", ")));
    }
    for r in by_rank.values() {
        if r.doc["outcome"] != "success" {
            problems.push(format!(
                "rank {} {}: {}",
                r.rank,
                r.doc["outcome"].as_str().unwrap_or("failed"),
                r.doc["error"].as_str().unwrap_or("no error recorded")
            ));
        }
    }

    let sum = |key: &str| -> u64 {
        by_rank
            .values()
            .map(|r| r.doc[key].as_u64().unwrap_or(0))
            .sum()
    };
    let slowest = |key: &str| -> f64 {
        by_rank
            .values()
            .map(|r| r.doc["phases"][key].as_f64().unwrap_or(0.0))
            .fold(0.0, f64::max)
    };
    let bytes = sum("bytes");
    let busy = by_rank
        .values()
        .map(|r| {
            r.doc["phases"]["run_s"].as_f64().unwrap_or(0.0)
                + r.doc["phases"]["flush_s"].as_f64().unwrap_or(0.0)
        })
        .fold(0.0, f64::max);
    let workers: usize = by_rank
        .values()
        .map(|r| r.doc["workers"].as_array().map_or(0, Vec::len))
        .sum();

    let reduce = if first.doc["results"]["partials"].is_array() {
        merge_reduce(&by_rank, &problems)?
    } else {
        None
    };
    let doc = json!({
        "schema_version": SCHEMA_VERSION,
        "mmrun_version": env!("CARGO_PKG_VERSION"),
        "command": "report merge",
        "job_command": first.doc["command"],
        "file": first.doc["file"],
        "dtype": first.doc["dtype"],
        "shape": first.doc["shape"],
        "ranks": size,
        "reports": by_rank.values().map(|r| json!({
            "rank": r.rank,
            "path": r.path,
            "outcome": r.doc["outcome"],
            "rows": r.doc["rows"],
            "total_s": r.doc["phases"]["total_s"],
            "workers": r.doc["workers"].as_array().map_or(0, Vec::len),
        })).collect::<Vec<_>>(),
        "bytes": bytes,
        "workers": workers,
        "slowest_rank_s": slowest("total_s"),
        "throughput_gbps": if busy > 0.0 { bytes as f64 / busy / 1e9 } else { 0.0 },
        "results": reduce.as_ref().map(|m| json!({
            "op": m.params.op.name(),
            "axis": m.params.axis,
            "ddof": m.params.ddof,
            "dtype": m.params.out_dtype.descr(),
            "shape": m.params.axis.out_shape(&m.params.shape),
            "value": match m.values.as_slice() {
                [crate::kernels::reduce::Value::F(v)] if v.is_finite() => json!(v),
                [v] => json!(v.to_string()),
                _ => Value::Null,
            },
        })),
        "outcome": if problems.is_empty() { "success" } else { "failed" },
        "problems": problems,
    });
    Ok(Merged {
        doc,
        reduce,
        problems,
    })
}

fn merge_reduce(
    by_rank: &BTreeMap<u64, &RankReport>,
    problems: &[String],
) -> Result<Option<MergedReduce>> {
    let mut params: Option<ReduceParams> = None;
    for r in by_rank.values() {
        let p: ReduceParams =
            serde_json::from_value(r.doc["results"]["reduce"].clone()).map_err(|_| {
                Error::refused(format!(
                    "{} holds no reduction partials (its run was not reduce --axis 0 or all)",
                    r.path.display()
                ))
            })?;
        match &params {
            None => params = Some(p),
            Some(q) if *q != p => {
                return Err(Error::refused(format!(
                    "{} ran another reduction than the other ranks",
                    r.path.display()
                )))
            }
            Some(_) => {}
        }
    }
    let Some(params) = params else {
        return Ok(None);
    };
    if !problems.is_empty() {
        // A failed or missing rank leaves rows without partials: no result.
        return Ok(None);
    }
    let mut forest = Forest::new(&params);
    for r in by_rank.values() {
        let records: Vec<NodeRecord> = serde_json::from_value(r.doc["results"]["partials"].clone())
            .map_err(|e| {
                Error::refused(format!("{}: malformed partials: {e}", r.path.display()))
            })?;
        for rec in &records {
            forest
                .insert(Node::from_record(rec)?)
                .map_err(|e| Error::refused(format!("{}: {}", r.path.display(), e.message())))?;
        }
    }
    let (bytes, values) = forest.finish()?;
    Ok(Some(MergedReduce {
        params,
        bytes,
        values,
    }))
}

/// The job summary as one line for people.
pub fn merged_text(m: &Merged) -> String {
    let d = &m.doc;
    let ok = d["reports"].as_array().map_or(0, |r| {
        r.iter().filter(|x| x["outcome"] == "success").count()
    });
    format!(
        "mmrun: {} of {}: {} of {} rank(s) succeeded, {} worker(s), {} in the slowest rank's {:.3} s ({:.2} GB/s)",
        d["job_command"].as_str().unwrap_or("?"),
        d["file"].as_str().unwrap_or("?"),
        ok,
        d["ranks"],
        d["workers"],
        indicatif::HumanBytes(d["bytes"].as_u64().unwrap_or(0)),
        d["slowest_rank_s"].as_f64().unwrap_or(0.0),
        d["throughput_gbps"].as_f64().unwrap_or(0.0),
    )
}
