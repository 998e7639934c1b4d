//! `mmrun commit`: publish the file a distributed run's ranks filled.
//!
//! Takes the pending journal exclusively (ranks hold it shared while they
//! run, so a running rank makes this exit 75), reads every rank's record
//! file, and publishes only when every partition of the same job is
//! recorded done: sync the partial file, rename it over the target, sync
//! the directory, then remove the records and the journal. Anything missing
//! is exit 1 naming the ranks to rerun, and nothing changes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{self, open_pending};

/// What a commit published.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitSummary {
    /// The published target.
    pub path: PathBuf,
    /// Number of ranks whose partitions were combined.
    pub ranks: u64,
    /// The job fingerprint every rank recorded.
    pub fingerprint: String,
}

/// Parses `rank-R-of-N`.
fn parse_record_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("rank-")?;
    let (r, n) = rest.split_once("-of-")?;
    Some((r.parse().ok()?, n.parse().ok()?))
}

/// Publishes the pending run at `target` if every rank is done.
pub fn commit(target: &Path) -> Result<CommitSummary> {
    commit_with(target, true)
}

/// [`commit`]; `lock` false (`--no-lock`) goes on where the file system
/// refuses locks.
pub fn commit_with(target: &Path, lock: bool) -> Result<CommitSummary> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::refused(format!("{} does not name a file", target.display())))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = fs::canonicalize(parent)
        .map_err(|e| Error::io_refused("cannot access directory", parent, e))?;
    let real = dir.join(name);
    let pending = open_pending(&real, true, lock)?;
    let records_dir = journal::journal_dir(&real);
    let mut by_size: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut fingerprints: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let entries = fs::read_dir(&records_dir)
        .map_err(|e| Error::io_refused("cannot read", &records_dir, e))?;
    for e in entries.flatten() {
        let Some((rank, size)) = e.file_name().to_str().and_then(parse_record_name) else {
            continue;
        };
        let (_, previous) = journal::Journal::rank_record(&real, rank, size)?;
        if let Some(p) = previous.filter(|p| p.done) {
            by_size.entry(size).or_default().push(rank);
            fingerprints
                .entry(p.owner.fingerprint)
                .or_default()
                .push(rank);
        }
    }
    if by_size.len() > 1 {
        return Err(Error::refused(format!(
            "{}: ranks ran with different rank counts ({:?}): rerun them with one count",
            target.display(),
            by_size.keys().collect::<Vec<_>>()
        )));
    }
    if fingerprints.len() > 1 {
        return Err(Error::refused(format!(
            "{}: ranks ran different jobs (fingerprints {:?}): rerun them with the same command",
            target.display(),
            fingerprints.keys().collect::<Vec<_>>()
        )));
    }
    let Some((&size, done)) = by_size.iter().next() else {
        return Err(Error::failed(format!(
            "{}: no rank has finished yet: run the ranks (mmrun ... --distributed) first",
            target.display()
        )));
    };
    let missing: Vec<String> = (0..size)
        .filter(|r| !done.contains(r))
        .map(|r| r.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::failed(format!(
            "{}: rank(s) {} of {size} are not done: rerun them with --resume, then commit",
            target.display(),
            missing.join(", ")
        )));
    }
    let partial = journal::partial_path(&real);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&partial)
        .map_err(|e| Error::io_failed("cannot open", &partial, e))?;
    file.sync_all()
        .map_err(|e| Error::io_failed("cannot sync", &partial, e))?;
    drop(file);
    fs::rename(&partial, &real).map_err(|e| Error::io_failed("cannot publish", &real, e))?;
    journal::remove_rank_records(&real)?;
    let journal_path = journal::journal_path(&real);
    fs::remove_file(&journal_path)
        .map_err(|e| Error::io_failed("cannot remove", &journal_path, e))?;
    drop(pending);
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_failed("cannot sync directory", &dir, e))?;
    let fingerprint = fingerprints.into_keys().next().unwrap_or_default();
    Ok(CommitSummary {
        path: target.to_path_buf(),
        ranks: size,
        fingerprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_parse() {
        assert_eq!(parse_record_name("rank-3-of-8"), Some((3, 8)));
        assert_eq!(parse_record_name("rank-x-of-8"), None);
        assert_eq!(parse_record_name("other"), None);
    }
}
