//! The journal: the lock identity of a target and its owner record.
//!
//! Every run that writes a target — building a new file or working in place —
//! first creates `.<name>.mmrun-journal` beside it and holds `flock(LOCK_EX)`
//! on it. The journal is created under a private temporary name, locked and
//! given its owner record (pid, host, boot id, uid, job fingerprint) there,
//! and only then hard-linked to its public name: so whoever finds the journal
//! finds it locked and complete, and two runs can never both believe they
//! created it. A journal that exists but is not locked belongs to a run that
//! died: its partial file is stale (`--force` discards it).
//!
//! Row-interval records (for `--resume`) are appended after the owner record
//! by later work; today the journal holds only the owner record.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::os::{self, LockOutcome};

/// Who holds a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Journal format version.
    pub mmrun_journal: u32,
    /// Process id of the coordinator.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Kernel boot id of the host.
    pub boot_id: String,
    /// Owner's user id.
    pub uid: u32,
    /// Hash of the job's parameters.
    pub fingerprint: String,
    /// Whether the journal marks a pending distributed run.
    #[serde(default)]
    pub pending: bool,
}

impl Owner {
    /// The owner record for this process and a job fingerprint.
    pub fn this_process(fingerprint: String) -> Owner {
        Owner {
            mmrun_journal: 1,
            pid: std::process::id(),
            host: os::hostname(),
            boot_id: os::boot_id(),
            uid: nix::unistd::getuid().as_raw(),
            fingerprint,
            pending: false,
        }
    }
}

/// `.<name><suffix>` beside `target`.
fn sibling(target: &Path, suffix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}{suffix}"))
}

/// The journal path of a target.
pub fn journal_path(target: &Path) -> PathBuf {
    sibling(target, ".mmrun-journal")
}

/// The partial file a new target is built in.
pub fn partial_path(target: &Path) -> PathBuf {
    sibling(target, ".mmrun-partial")
}

/// A held journal. Dropping it releases the lock and leaves the file (a run
/// that did not finish keeps its journal); [`Journal::remove`] deletes it.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    _lock: Option<nix::fcntl::Flock<File>>,
    _file: Option<File>,
}

/// What to do with a stale journal found at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Refuse (exit 2).
    Refuse,
    /// Discard it and its partial file (`--force`).
    Discard,
}

fn create_excl(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o666)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn read_owner(file: &mut File) -> Option<Owner> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(text.lines().next()?).ok()
}

impl Journal {
    /// Creates and locks the journal of `target` (its real path), or says
    /// who holds it. `lock` false (`--no-lock`) creates it without locking.
    pub fn acquire(target: &Path, owner: &Owner, lock: bool, stale: Stale) -> Result<Journal> {
        let path = journal_path(target);
        let tmp = sibling(
            target,
            &format!(".mmrun-journal.{}.tmp", std::process::id()),
        );
        for _ in 0..16 {
            let _ = fs::remove_file(&tmp);
            let mut file = create_excl(&tmp)
                .map_err(|e| Error::io_refused("cannot create journal", &tmp, e))?;
            let mut record = serde_json::to_string(owner).expect("owner record serialises");
            record.push('\n');
            let held = if lock {
                match os::try_lock_exclusive(
                    file.try_clone()
                        .map_err(|e| Error::io_refused("cannot lock", &tmp, e))?,
                ) {
                    Ok(LockOutcome::Locked(l)) => Some(l),
                    Ok(LockOutcome::Unsupported(_)) => {
                        tracing::warn!(
                            "the file system of {} has no locks: going on without one",
                            tmp.display()
                        );
                        None
                    }
                    Ok(LockOutcome::Held(_)) => None,
                    Err(e) => return Err(Error::io_refused("cannot lock", &tmp, e)),
                }
            } else {
                None
            };
            file.write_all(record.as_bytes())
                .map_err(|e| Error::io_refused("cannot write journal", &tmp, e))?;
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    return Ok(Journal {
                        path,
                        _lock: held,
                        _file: Some(file),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    drop(held);
                    if Self::inspect_existing(&path, target, stale)? {
                        continue;
                    }
                }
                Err(e) => return Err(Error::io_refused("cannot create journal", &path, e)),
            }
        }
        Err(Error::busy(format!(
            "{} keeps changing hands: try again",
            target.display()
        )))
    }

    /// Looks at a journal someone else created. Returns `Ok(true)` to retry
    /// (it vanished, or it was stale and has been discarded).
    fn inspect_existing(path: &Path, target: &Path, stale: Stale) -> Result<bool> {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io_refused("cannot open journal", path, e)),
        };
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        match os::try_lock_exclusive(file).map_err(|e| Error::io_refused("cannot lock", path, e))? {
            LockOutcome::Held(mut f) => {
                let who = read_owner(&mut f)
                    .map(|o| format!("pid {} on host {}", o.pid, o.host))
                    .unwrap_or_else(|| "another mmrun".into());
                Err(Error::busy(format!(
                    "{} is in use by {who}",
                    target.display()
                )))
            }
            LockOutcome::Locked(mut l) => {
                // Locked an inode its owner just unlinked? Then start over.
                if fs::metadata(path).map(|m| m.ino()).ok() != Some(ino) {
                    return Ok(true);
                }
                let owner = read_owner(&mut l);
                Self::stale_found(path, target, owner, stale)
            }
            LockOutcome::Unsupported(mut f) => {
                let owner = read_owner(&mut f);
                Self::stale_found(path, target, owner, stale)
            }
        }
    }

    fn stale_found(path: &Path, target: &Path, owner: Option<Owner>, stale: Stale) -> Result<bool> {
        if let Some(o) = owner.as_ref().filter(|o| o.pending) {
            return Err(Error::busy(format!(
                "{}: pending distributed run created by pid {} on host {}: run mmrun commit, or --force to discard",
                target.display(),
                o.pid,
                o.host
            )));
        }
        match stale {
            Stale::Refuse => Err(Error::refused(format!(
                "{}: stale partial file from an interrupted run (journal {}): use --force to discard it",
                target.display(),
                path.display()
            ))),
            Stale::Discard => {
                let partial = partial_path(target);
                if let Err(e) = fs::remove_file(&partial) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(Error::io_refused("cannot remove stale", &partial, e));
                    }
                }
                fs::remove_file(path).map_err(|e| Error::io_refused("cannot remove stale journal", path, e))?;
                Ok(true)
            }
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the journal (the run finished), then releases the lock.
    pub fn remove(self) -> Result<()> {
        fs::remove_file(&self.path)
            .map_err(|e| Error::io_failed("cannot remove journal", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_names() {
        let t = Path::new("/d/data.npy");
        assert_eq!(journal_path(t), Path::new("/d/.data.npy.mmrun-journal"));
        assert_eq!(partial_path(t), Path::new("/d/.data.npy.mmrun-partial"));
    }

    #[test]
    fn second_acquire_is_busy_and_stale_is_refused_or_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.npy");
        let owner = Owner::this_process("f".into());
        let j = Journal::acquire(&target, &owner, true, Stale::Refuse).unwrap();
        // Same process, new open file description: flock conflicts.
        let e = Journal::acquire(&target, &owner, true, Stale::Refuse).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Busy);
        assert!(
            e.message().contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(j);
        let e = Journal::acquire(&target, &owner, true, Stale::Refuse).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Refused);
        fs::write(partial_path(&target), b"junk").unwrap();
        let j = Journal::acquire(&target, &owner, true, Stale::Discard).unwrap();
        assert!(!partial_path(&target).exists());
        j.remove().unwrap();
        assert!(!journal_path(&target).exists());
    }
}
