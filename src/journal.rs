//! The journal: the lock identity of a target and its owner record.
//!
//! Every run that writes a target — building a new file or working in place —
//! first creates `.<name>.mmrun-journal` beside it and holds an exclusive
//! lock on its run byte (see [Locks](#locks)). The journal is created under a private temporary name, locked and
//! given its owner record (pid, host, boot id, uid, job fingerprint) there,
//! and only then hard-linked to its public name: so whoever finds the journal
//! finds it locked and complete, and two runs can never both believe they
//! created it. A journal that exists but is not locked belongs to a run that
//! died: its partial file is stale (`--force` discards it).
//!
//! After the owner record come row-interval records, one JSON line each:
//! `{"written":[…]}` lines are plain writes that cost nothing and survive a
//! crashed process; `{"durable":[…]}` lines are written after the data was
//! synced, and synced themselves. `--resume` takes over a stale journal,
//! appends its own owner record, and trusts "written" records only on the
//! same host and boot.
//!
//! # Locks
//!
//! Only POSIX open-file-description byte-range locks, never `flock` (on the
//! Linux NFS client `flock` is a whole-file `fcntl` lock, which conflicts
//! with every byte lock of another open file; with `local_lock=flock` it
//! excludes nothing across machines). Byte locks mean the same on a local
//! disk, NFS v3/v4, Lustre, GPFS and BeeGFS:
//!
//! - byte [`RUN_BYTE`]: exclusive for a single-machine run, `create
//!   --pending` while it builds the file, and `commit`; shared by every
//!   rank of a distributed run while it runs;
//! - byte [`RANK_BYTE_BASE`]` + r`: exclusive by rank `r`, so one rank
//!   cannot run twice at once while different ranks run side by side.
//!
//! Where the file system refuses locks the command refuses (exit 2) naming
//! the file system and `--no-lock`, instead of going on unprotected.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::os::{self, ByteLock};
use crate::plan::{RowRange, RowSet};

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
    /// The command line that started the run, without `--resume` and
    /// `--force` and quoted for a POSIX shell, so a refusal can say which
    /// command finishes or discards it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The job's seed (decimal), recorded before any worker starts so
    /// `--resume` can reuse a seed mmrun drew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Whether the work reads the rows it writes in place and was not
    /// declared idempotent: `--resume` alone would apply it twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub once: bool,
    /// Whether the run builds a new file beside the target (the target
    /// keeps its old content until the rename).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebuild: bool,
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
            command: Some(shell_line(
                std::env::args().filter(|a| a != "--resume" && a != "--force"),
            )),
            seed: None,
            once: false,
            rebuild: false,
        }
    }
}

/// `args` as one POSIX shell command line: words that need it are put in
/// single quotes.
fn shell_line(args: impl Iterator<Item = String>) -> String {
    let quote = |w: String| {
        let plain = !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./:,=@%+".contains(&b));
        if plain {
            w
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    args.map(quote).collect::<Vec<_>>().join(" ")
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

/// The directory of per-rank record files of a distributed run.
pub fn journal_dir(target: &Path) -> PathBuf {
    sibling(target, ".mmrun-journal.d")
}

/// The record file of rank `rank` of `size`.
pub fn rank_record_path(target: &Path, rank: u64, size: u64) -> PathBuf {
    journal_dir(target).join(format!("rank-{rank}-of-{size}"))
}

/// The partial file a new target is built in.
pub fn partial_path(target: &Path) -> PathBuf {
    sibling(target, ".mmrun-partial")
}

/// The journal byte every run locks: exclusively a single-machine run,
/// `create --pending` and `commit`; shared by each rank while it runs.
pub const RUN_BYTE: u64 = 0;

/// Rank `r` of a distributed run locks byte `RANK_BYTE_BASE + r` exclusively.
pub const RANK_BYTE_BASE: u64 = 1;

/// The exit-2 error for a file system that refuses byte-range locks.
pub fn locks_refused(path: &Path, errno: nix::errno::Errno) -> Error {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Error::refused(format!(
        "{}: the {} file system refuses byte-range locks ({errno}), so mmrun cannot keep other runs out: mount it with locking (NFS without -o nolock, Lustre with -o flock) or pass --no-lock if nothing else uses this file",
        path.display(),
        os::filesystem_type(dir)
    ))
}

/// Takes byte `index` of `file` (the journal at `path`): `Ok(true)` taken,
/// `Ok(false)` held by another open file. Where the file system has no
/// locks: refused when `lock`, else `Ok(true)` (`--no-lock`).
pub fn lock_byte(
    file: &File,
    path: &Path,
    index: u64,
    exclusive: bool,
    lock: bool,
) -> Result<bool> {
    match os::try_lock_byte(file, index, exclusive) {
        Ok(ByteLock::Taken) => Ok(true),
        Ok(ByteLock::Held) => Ok(false),
        Ok(ByteLock::Unsupported(errno)) if lock => Err(locks_refused(path, errno)),
        Ok(ByteLock::Unsupported(_)) => Ok(true),
        Err(e) => Err(Error::io_refused("cannot lock", path, e)),
    }
}

/// A held journal. Dropping it closes the file, which releases its locks,
/// and leaves the file (a run that did not finish keeps its journal);
/// [`Journal::remove`] deletes it.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// What to do with a stale journal found at the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Refuse (exit 2).
    Refuse,
    /// Discard it and its partial file (`--force`).
    Discard,
    /// Take it over and continue its run (`--resume`).
    Resume,
}

/// What an interrupted run left in its journal, for `--resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    /// The owner record of the run that wrote it (the latest one).
    pub owner: Owner,
    /// Rows recorded as written (survive a process crash, not a machine crash).
    pub written: RowSet,
    /// Rows recorded as durable (synced before they were recorded).
    pub durable: RowSet,
    /// Whether a rank record says its whole partition is done and synced.
    pub done: bool,
}

/// One line of a journal after the owner record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Record {
    /// Rows written into the page cache (no sync).
    Written(Vec<RowRange>),
    /// Rows synced to disk before this line was written.
    Durable(Vec<RowRange>),
    /// A rank's whole partition is synced (the last line of a rank record).
    Done(RowRange),
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

/// Reads a whole journal: its latest owner record and its row records. Lines
/// that do not parse (a record cut short by a crash) are skipped.
fn read_journal(file: &mut File) -> Option<Previous> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut owner = None;
    let (mut written, mut durable, mut done) = (RowSet::new(), RowSet::new(), false);
    for line in text.lines() {
        if let Ok(o) = serde_json::from_str::<Owner>(line) {
            owner = Some(o);
        } else if let Ok(r) = serde_json::from_str::<Record>(line) {
            match r {
                Record::Written(v) => v.into_iter().for_each(|r| written.insert(r)),
                Record::Durable(v) => v.into_iter().for_each(|r| durable.insert(r)),
                Record::Done(r) => {
                    durable.insert(r);
                    done = true;
                }
            }
        }
    }
    Some(Previous {
        owner: owner?,
        written,
        durable,
        done,
    })
}

/// What looking at someone else's journal found.
enum Found {
    /// Try creating ours again.
    Retry,
    /// A stale journal we now hold, to resume.
    Resume(Journal, Box<Previous>),
}

impl Journal {
    /// Creates and locks the journal of `target` (its real path), or says
    /// who holds it. `lock` false (`--no-lock`) creates it without locking.
    /// With [`Stale::Resume`], a stale journal is taken over (locked, not
    /// yet changed) and what it recorded is returned; the caller checks it
    /// and then calls [`Journal::record_owner`].
    pub fn acquire(
        target: &Path,
        owner: &Owner,
        lock: bool,
        stale: Stale,
    ) -> Result<(Journal, Option<Previous>)> {
        let path = journal_path(target);
        let tmp = sibling(
            target,
            &format!(".mmrun-journal.{}.tmp", std::process::id()),
        );
        for _ in 0..16 {
            let _ = fs::remove_file(&tmp);
            let mut file = create_excl(&tmp)
                .map_err(|e| Error::io_refused("cannot create journal", &tmp, e))?;
            if lock {
                // Nobody else knows the private name: the lock is always
                // free, unless the file system refuses locks.
                if let Err(e) = lock_byte(&file, &path, RUN_BYTE, true, true) {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
            file.write_all(owner_line(owner).as_bytes())
                .map_err(|e| Error::io_refused("cannot write journal", &tmp, e))?;
            let linked = fs::hard_link(&tmp, &path);
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => return Ok((Journal { path, file }, None)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    drop(file);
                    match Self::inspect_existing(&path, target, stale, lock)? {
                        Found::Retry => continue,
                        Found::Resume(j, prev) => return Ok((j, Some(*prev))),
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

    /// Looks at a journal someone else created. `lock` false (`--no-lock`,
    /// or a command that only reads) goes on where the file system refuses
    /// locks.
    fn inspect_existing(path: &Path, target: &Path, stale: Stale, lock: bool) -> Result<Found> {
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .append(write)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
        };
        let file = match open(true).or_else(|_| open(false)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Retry),
            Err(e) => return Err(Error::io_refused("cannot open journal", path, e)),
        };
        let mut file = file;
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        if !lock_byte(&file, path, RUN_BYTE, true, lock)? {
            let who = read_journal(&mut file)
                .map(|p| format!("pid {} on host {}", p.owner.pid, p.owner.host))
                .unwrap_or_else(|| "another mmrun".into());
            return Err(Error::busy(format!(
                "{} is in use by {who}",
                target.display()
            )));
        }
        // Locked an inode its owner just unlinked? Then start over.
        if fs::metadata(path).map(|m| m.ino()).ok() != Some(ino) {
            return Ok(Found::Retry);
        }
        let previous = read_journal(&mut file);
        if let Some(o) = previous
            .as_ref()
            .map(|p| &p.owner)
            .filter(|o| o.pending && stale != Stale::Discard)
        {
            return Err(Error::busy(format!(
                "{}: pending distributed run created by pid {} on host {}: run mmrun commit, or --force to discard",
                target.display(),
                o.pid,
                o.host
            )));
        }
        match stale {
            Stale::Refuse => Err(Error::refused(format!(
                "{}: stale partial file from an interrupted run (journal {}): use --resume to finish it or --force to discard it",
                target.display(),
                path.display()
            ))),
            Stale::Resume => {
                let previous = previous.ok_or_else(|| {
                    Error::refused(format!(
                        "{}: the journal {} has no owner record: it cannot be resumed (use --force)",
                        target.display(),
                        path.display()
                    ))
                })?;
                let journal = Journal {
                    path: path.to_path_buf(),
                    file,
                };
                Ok(Found::Resume(journal, Box::new(previous)))
            }
            Stale::Discard => {
                remove_rank_records(target)?;
                let partial = partial_path(target);
                if let Err(e) = fs::remove_file(&partial) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(Error::io_refused("cannot remove stale", &partial, e));
                    }
                }
                fs::remove_file(path)
                    .map_err(|e| Error::io_refused("cannot remove stale journal", path, e))?;
                Ok(Found::Retry)
            }
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, line: &str) -> Result<()> {
        self.file
            .seek(SeekFrom::End(0))
            .and_then(|_| self.file.write_all(line.as_bytes()))
            .map_err(|e| Error::io_failed("cannot write journal", &self.path, e))
    }

    /// Appends `owner` as the journal's current owner (after taking over a
    /// stale journal to resume it).
    pub fn record_owner(&mut self, owner: &Owner) -> Result<()> {
        self.append(&owner_line(owner))
    }

    /// Records rows as written. A plain write, no sync: it survives a
    /// crashed process (the page cache keeps it), not a crashed machine.
    pub fn record_written(&mut self, rows: &[RowRange]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.append(&record_line(&Record::Written(rows.to_vec())))
    }

    /// Records rows as durable. The caller has synced their data first; the
    /// record itself is synced before this returns.
    pub fn record_durable(&mut self, rows: &[RowRange]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.append(&record_line(&Record::Durable(rows.to_vec())))?;
        self.file
            .sync_data()
            .map_err(|e| Error::io_failed("cannot sync journal", &self.path, e))
    }

    /// Marks the run pending (`create --pending`): the partial file waits
    /// for ranks to fill it and `mmrun commit` to publish it. The lock is
    /// released when the journal is dropped; the pending mark keeps other
    /// commands out.
    pub fn mark_pending(&mut self, owner: &Owner, target: &Path) -> Result<()> {
        let dir = journal_dir(target);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io_failed("cannot create", &dir, e)),
        }
        let mut pending = owner.clone();
        pending.pending = true;
        self.append(&owner_line(&pending))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io_failed("cannot sync journal", &self.path, e))
    }

    /// Opens (creating if needed) a rank's record file, and reads what an
    /// earlier attempt of the same rank recorded. The caller holds the
    /// rank's byte lock on the pending journal.
    pub fn rank_record(target: &Path, rank: u64, size: u64) -> Result<(Journal, Option<Previous>)> {
        let path = rank_record_path(target, rank, size);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| Error::io_refused("cannot open rank record", &path, e))?;
        let previous = read_journal(&mut file);
        Ok((Journal { path, file }, previous))
    }

    /// Records a rank's partition as done (after its data was synced), and
    /// makes the record and its directory entry durable.
    pub fn record_done(&mut self, rows: RowRange) -> Result<()> {
        self.append(&record_line(&Record::Done(rows)))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io_failed("cannot sync", &self.path, e))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io_failed("cannot sync", dir, e))?;
        }
        Ok(())
    }

    /// Deletes the journal (the run finished), then releases the lock.
    pub fn remove(self) -> Result<()> {
        fs::remove_file(&self.path)
            .map_err(|e| Error::io_failed("cannot remove journal", &self.path, e))
    }
}

/// Checks no run holds or left a journal on `target`, for a command that
/// only reads it: exit 75 while a run (or a pending distributed run) holds
/// it, exit 2 for the journal of an interrupted run (its rows may be partly
/// written).
pub fn check_unused(target: &Path) -> Result<()> {
    let path = journal_path(target);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(());
    }
    // Refuse never hands back a journal to resume: Ok means it vanished.
    Journal::inspect_existing(&path, target, Stale::Refuse, false).map(|_| ())
}

/// Checks `target` (its real path) may be read by a command that only
/// reads it: no run holds it (else exit 75, naming the holder), no
/// interrupted run left its rows half written (exit 2, naming the command
/// that finishes or discards it) and no pending distributed run is building
/// it (exit 2). The stale journal of an interrupted rebuild (`--shape
/// --force`) is no obstacle: the target was never touched.
pub fn check_readable(target: &Path) -> Result<()> {
    let path = journal_path(target);
    for _ in 0..16 {
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io_refused("cannot open journal", &path, e)),
        };
        let mut file = file;
        let ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        // A shared probe: it conflicts with a writing run's exclusive lock
        // (where the file system has no locks, the journal alone decides).
        if !lock_byte(&file, &path, RUN_BYTE, false, false)? {
            let who = read_journal(&mut file)
                .map(|p| format!("pid {} on host {}", p.owner.pid, p.owner.host))
                .unwrap_or_else(|| "another mmrun".into());
            return Err(Error::busy(format!(
                "{} is in use by {who}: try again when it is done",
                target.display()
            )));
        }
        if fs::metadata(&path).map(|m| m.ino()).ok() != Some(ino) {
            continue;
        }
        let previous = read_journal(&mut file);
        let owner = previous.as_ref().map(|p| &p.owner);
        if let Some(o) = owner.filter(|o| o.pending) {
            return Err(Error::refused(format!(
                "{}: a pending distributed run (created by pid {} on host {}) is building it: read it after mmrun commit {}",
                target.display(),
                o.pid,
                o.host,
                target.display()
            )));
        }
        if owner.is_some_and(|o| o.rebuild) {
            // An interrupted rebuild never touched the target: it is whole.
            return Ok(());
        }
        let how = match owner.and_then(|o| o.command.as_deref().map(|c| (c, o.once))) {
            Some((c, false)) => format!("finish it with {c} --resume, or discard the journal with {c} --force"),
            Some((c, true)) => format!("its work reads the rows it writes, so only {c} --resume --idempotent finishes it, if running it twice over the same rows is harmless; {c} --force discards the journal"),
            None => "rerun its command with --resume to finish it, or with --force to discard it".into(),
        };
        return Err(Error::refused(format!(
            "{}: an interrupted run may have left it half written (journal {}): {how}",
            target.display(),
            path.display()
        )));
    }
    Err(Error::busy(format!(
        "{} keeps changing hands: try again",
        target.display()
    )))
}

/// The seed an interrupted run recorded in the journal of `target` (its
/// real path), for `--resume` without `--seed`: `Ok(None)` when there is
/// no journal or it recorded none.
pub fn recorded_seed(target: &Path) -> Result<Option<u128>> {
    let path = journal_path(target);
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io_refused("cannot open journal", &path, e)),
    };
    let seed = read_journal(&mut file).and_then(|p| p.owner.seed);
    match seed {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            Error::refused(format!(
                "{}: the journal records seed {s:?}, which is not a number",
                path.display()
            ))
        }),
    }
}

/// Removes a distributed run's rank records and their directory.
pub fn remove_rank_records(target: &Path) -> Result<()> {
    let dir = journal_dir(target);
    match fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                fs::remove_file(e.path())
                    .map_err(|err| Error::io_failed("cannot remove", &e.path(), err))?;
            }
            fs::remove_dir(&dir).map_err(|e| Error::io_failed("cannot remove", &dir, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_failed("cannot read", &dir, e)),
    }
}

/// A pending distributed run's journal, its run byte locked shared (a
/// rank) or exclusive (`commit`) until the value is dropped.
#[derive(Debug)]
pub struct PendingRun {
    /// The journal file, locked.
    pub file: File,
    /// The owner record of `create --pending`.
    pub owner: Owner,
}

/// Opens the pending journal of `target`: `exclusive` for commit, shared
/// for ranks. A held lock is exit 75; no journal or one that is not pending
/// is exit 2; a file system without locks is exit 2 unless `lock` is false
/// (`--no-lock`).
pub fn open_pending(target: &Path, exclusive: bool, lock: bool) -> Result<PendingRun> {
    let path = journal_path(target);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::refused(format!(
                "{}: no pending distributed run (create one with mmrun create --pending)",
                target.display()
            )),
            _ => Error::io_refused("cannot open journal", &path, e),
        })?;
    let mut locked = file;
    if !lock_byte(&locked, &path, RUN_BYTE, exclusive, lock)? {
        return Err(Error::busy(if exclusive {
            format!(
                "{}: ranks of the distributed run are still running",
                target.display()
            )
        } else {
            format!(
                "{}: mmrun commit or another command holds it",
                target.display()
            )
        }));
    }
    let previous = read_journal(&mut locked);
    match previous {
        Some(p) if p.owner.pending => Ok(PendingRun { file: locked, owner: p.owner }),
        _ => Err(Error::refused(format!(
            "{}: its journal is not a pending distributed run (a stale run? use --resume or --force)",
            target.display()
        ))),
    }
}

fn owner_line(owner: &Owner) -> String {
    let mut line = serde_json::to_string(owner).expect("owner record serialises");
    line.push('\n');
    line
}

fn record_line(record: &Record) -> String {
    let mut line = serde_json::to_string(record).expect("record serialises");
    line.push('\n');
    line
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
        let (j, _) = Journal::acquire(&target, &owner, true, Stale::Refuse).unwrap();
        // Same process, new open file description: OFD locks conflict.
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
        let (j, prev) = Journal::acquire(&target, &owner, true, Stale::Discard).unwrap();
        assert!(prev.is_none());
        assert!(!partial_path(&target).exists());
        j.remove().unwrap();
        assert!(!journal_path(&target).exists());
    }

    #[test]
    fn resume_reads_back_written_and_durable_rows() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("y.npy");
        let owner = Owner::this_process("fp".into());
        let (mut j, _) = Journal::acquire(&target, &owner, true, Stale::Refuse).unwrap();
        j.record_written(&[RowRange::new(0, 10), RowRange::new(20, 30)])
            .unwrap();
        j.record_durable(&[RowRange::new(0, 5)]).unwrap();
        j.record_written(&[RowRange::new(10, 15)]).unwrap();
        // A record cut short by a crash is ignored.
        j.append("{\"written\":[{\"start\":90,").unwrap();
        drop(j);
        let (j, prev) = Journal::acquire(&target, &owner, true, Stale::Resume).unwrap();
        let prev = prev.expect("a previous run");
        assert_eq!(prev.owner.fingerprint, "fp");
        assert_eq!(
            prev.written.ranges(),
            &[RowRange::new(0, 15), RowRange::new(20, 30)]
        );
        assert_eq!(prev.durable.ranges(), &[RowRange::new(0, 5)]);
        // While resumed, the journal is held.
        let e = Journal::acquire(&target, &owner, true, Stale::Resume).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Busy);
        j.remove().unwrap();
    }
}
