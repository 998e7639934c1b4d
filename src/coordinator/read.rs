//! The read discipline: one rule for every command that reads an array
//! (`convert`, the input of `apply --out` and of a per-row `reduce`, a
//! scan such as `reduce --axis 0|all`, `verify`).
//!
//! Before reading, [`Reading::start`] refuses a file that a run holds
//! (exit 75, naming the holder), one an interrupted run may have left half
//! written (exit 2, naming the command that finishes or discards it) and
//! one a pending distributed run is building (exit 2), and notes the file's
//! identity, length and modification time. After reading, and before the
//! result is published or printed, [`Reading::check`] fails (exit 1) if a
//! journal appeared or any of those changed: the bytes read may then be a
//! mix of old and new. Readers take no lock — they never make a writer
//! wait — so a change is caught, not prevented.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal;

/// What a writer changes: which file the path names, its length and its
/// modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let m = fs::metadata(path)?;
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
        })
    }
}

/// A file being read under the read discipline.
#[derive(Debug, Clone)]
pub struct Reading {
    path: PathBuf,
    real: PathBuf,
    stamp: Stamp,
}

impl Reading {
    /// Checks `path` may be read now and notes its state. Errors: exit 75
    /// while a run holds it, exit 2 for a half-written or pending file, and
    /// exit 2 for a path that cannot be opened or is a directory.
    pub fn start(path: &Path) -> Result<Reading> {
        if fs::symlink_metadata(path).is_err() {
            // A pending distributed run's target does not exist yet.
            if let Some(real) = real_beside(path) {
                journal::check_readable(&real)?;
            }
        }
        let real = fs::canonicalize(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
        if real.is_dir() {
            return Err(Error::refused(format!("{} is a directory", path.display())));
        }
        journal::check_readable(&real)?;
        let stamp = Stamp::of(&real).map_err(|e| Error::io_refused("cannot open", path, e))?;
        Ok(Reading {
            path: path.to_path_buf(),
            real,
            stamp,
        })
    }

    /// The file's real path (symbolic links resolved).
    pub fn real(&self) -> &Path {
        &self.real
    }

    /// Fails (exit 1) if the file may have changed since [`Reading::start`]:
    /// a journal appeared (a run started), or the path names another file,
    /// or its length or modification time changed.
    pub fn check(&self) -> Result<()> {
        let why = match journal::check_readable(&self.real) {
            Err(e) => Some(e.message().to_string()),
            Ok(()) => match Stamp::of(&self.path) {
                Ok(s) if s == self.stamp => None,
                Ok(s) if (s.dev, s.ino) != (self.stamp.dev, self.stamp.ino) => {
                    Some("it was replaced".to_string())
                }
                Ok(_) => Some("its length or modification time changed".to_string()),
                Err(e) => Some(e.to_string()),
            },
        };
        match why {
            None => Ok(()),
            Some(why) => Err(Error::failed(format!(
                "{} changed while it was read ({why}): the result is discarded",
                self.path.display()
            ))),
        }
    }
}

/// The real path `path` would have (its directory resolved), for a file
/// that does not exist yet.
fn real_beside(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(parent).ok()?.join(path.file_name()?))
}
