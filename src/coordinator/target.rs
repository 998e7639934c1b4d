//! Target resolution and space reservation: what the target path names
//! (a new file beside it, an existing file in place, a rank's pending
//! partial file), the checks made before the disk changes, building and
//! reserving the partial file, and the space refusals (a full disk, a
//! quota, a copy-on-write file system without room).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::header::new_layout;
use super::{pending_elsewhere, read, Prealloc, Runner};
use crate::error::{Error, Result};
use crate::journal;
use crate::layout::{DType, HeaderStyle, Layout, RawSpec};
use crate::os;
use crate::worker::InputFile;

/// A new file to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Headerless (`--raw`) instead of `.npy`.
    pub raw: bool,
    /// Data offset of a raw file (zero bytes before it, as `numpy.memmap`'s
    /// `w+` leaves them).
    pub offset: u64,
    /// Header layout of a `.npy` file.
    pub header: HeaderStyle,
}

/// What a run works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The target path as given.
    pub path: PathBuf,
    /// Build a new file with this layout (`--shape`).
    pub create: Option<NewFile>,
    /// Read an existing file as raw with this layout (`--raw`).
    pub raw: Option<RawSpec>,
    /// Replace an existing target, or discard a stale partial file.
    pub force: bool,
    /// Always build a new file (the `create` command), even for raw files
    /// whose layout options could describe the existing file.
    pub create_only: bool,
    /// Refuse an existing file whose dtype differs.
    pub expect_dtype: Option<DType>,
}

impl Target {
    /// A target at `path` worked on in place.
    pub fn existing(path: impl Into<PathBuf>) -> Self {
        Target {
            path: path.into(),
            create: None,
            raw: None,
            force: false,
            create_only: false,
            expect_dtype: None,
        }
    }

    /// A new `.npy` file at `path`.
    pub fn new_npy(path: impl Into<PathBuf>, dtype: DType, shape: Vec<u64>) -> Self {
        Target {
            create: Some(NewFile {
                dtype,
                shape,
                raw: false,
                offset: 0,
                header: HeaderStyle::Page,
            }),
            ..Target::existing(path)
        }
    }
}

/// The resolved target, before anything on disk changes.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) real: PathBuf,
    pub(super) layout: Layout,
    pub(super) mode: Mode,
    pub(super) input: Option<InputFile>,
    /// The input file, read under the read discipline.
    pub(super) input_reading: Option<read::Reading>,
}

#[derive(Debug)]
pub(super) enum Mode {
    New {
        header: Vec<u8>,
        keep_mode: Option<u32>,
    },
    InPlace {
        file: File,
    },
    /// A rank's view of a pending distributed run's partial file.
    Rank {
        file: File,
    },
}

impl Runner {
    /// Step 1: everything that can be checked without changing the disk.
    pub(super) fn prepare(&self) -> Result<Prepared> {
        os::test_signal_point("prepare");
        let mut prepared = if self.distributed.is_some() {
            self.prepare_rank()?
        } else {
            self.prepare_target()?
        };
        if let Some((path, raw)) = &self.input {
            prepared.input_reading = Some(read::Reading::start(path)?);
            let mut file =
                File::open(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
            let mut layout = match &self.input_layout {
                Some(described) => {
                    let have = file
                        .metadata()
                        .map_err(|e| Error::io_refused("cannot stat", path, e))?
                        .len();
                    let need = described.file_len()?;
                    if have < need {
                        return Err(Error::refused(format!(
                            "{} is {have} bytes but its layout needs {need}",
                            path.display()
                        )));
                    }
                    described.clone()
                }
                None => {
                    let layout = Layout::read(path, &mut file, raw.as_ref())?;
                    layout.check_workable(path)?;
                    layout
                }
            };
            // One dimension has no memory order (NumPy writes either flag).
            if layout.shape.len() < 2 {
                layout.fortran_order = false;
            }
            if layout.rows() != prepared.layout.rows() {
                return Err(Error::refused(format!(
                    "{} has {} rows but {} has {}",
                    path.display(),
                    layout.rows(),
                    self.target.path.display(),
                    prepared.layout.rows()
                )));
            }
            if fs::canonicalize(path).ok().as_deref() == Some(prepared.real.as_path()) {
                return Err(Error::refused(
                    "the output file must not be the input file (leave out --out to work in place)",
                ));
            }
            prepared.input = Some(InputFile {
                path: path.clone(),
                layout,
            });
        }
        Ok(prepared)
    }

    pub(super) fn prepare_target(&self) -> Result<Prepared> {
        let t = &self.target;
        let path = &t.path;
        match fs::symlink_metadata(path) {
            Ok(_) => {
                let real = fs::canonicalize(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        Error::refused(format!("{} is a dangling symbolic link", path.display()))
                    }
                    _ => Error::io_refused("cannot resolve", path, e),
                })?;
                let meta =
                    fs::metadata(&real).map_err(|e| Error::io_refused("cannot access", path, e))?;
                if meta.is_dir() {
                    return Err(Error::refused(format!("{} is a directory", path.display())));
                }
                if !meta.is_file() {
                    return Err(Error::refused(format!(
                        "{} is not a regular file",
                        path.display()
                    )));
                }
                if let Some(new) = &t.create {
                    // --resume finishes an interrupted rebuild that --force
                    // started; it never replaces a file on its own.
                    let resuming = self.resume && journal::journal_path(&real).exists();
                    if !t.force && !resuming {
                        // Only fill, exec and create in place take --shape.
                        let in_place = if t.create_only {
                            ""
                        } else if t.raw.is_some() {
                            ", or add --in-place to work on it with this layout"
                        } else {
                            ", or leave out --shape to work on it in place"
                        };
                        return Err(Error::refused(format!(
                            "{} already exists: use --force to replace it{in_place}",
                            path.display()
                        )));
                    }
                    // As cp and rm without -f: a file its user may not write
                    // is not replaced.
                    if nix::unistd::access(&real, nix::unistd::AccessFlags::W_OK).is_err() {
                        return Err(Error::refused(format!(
                            "{} is not writable by you: --force does not replace it (its owner can make it writable with chmod u+w)",
                            path.display()
                        )));
                    }
                    let (layout, header) = new_layout(new, self.pending)?;
                    return Ok(Prepared {
                        real,
                        layout,
                        mode: Mode::New {
                            header,
                            keep_mode: Some(meta.permissions().mode() & 0o7777),
                        },
                        input: None,
                        input_reading: None,
                    });
                }
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&real)
                    .map_err(|e| Error::io_refused("cannot open", path, e))?;
                let layout = Layout::read(path, &mut file, t.raw.as_ref())?;
                layout.check_workable(path)?;
                if let Some(d) = t.expect_dtype.filter(|&d| d != layout.dtype) {
                    return Err(Error::refused(format!(
                        "{} holds {}, not {d}: leave out --dtype, or use --force with --shape to replace it",
                        path.display(),
                        layout.dtype
                    )));
                }
                Ok(Prepared {
                    real,
                    layout,
                    mode: Mode::InPlace { file },
                    input: None,
                    input_reading: None,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(new) = &t.create else {
                    if let Some(busy) = pending_elsewhere(path) {
                        return Err(busy);
                    }
                    return Err(Error::refused(format!(
                        "{} does not exist: give --shape and --dtype to create it",
                        path.display()
                    )));
                };
                let name = path.file_name().ok_or_else(|| {
                    Error::refused(format!("{} does not name a file", path.display()))
                })?;
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let dir = fs::canonicalize(parent).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        Error::refused(format!("directory {} does not exist", parent.display()))
                    }
                    _ => Error::io_refused("cannot access directory", parent, e),
                })?;
                if !dir.is_dir() {
                    return Err(Error::refused(format!(
                        "{} is not a directory",
                        parent.display()
                    )));
                }
                let (layout, header) = new_layout(new, self.pending)?;
                Ok(Prepared {
                    real: dir.join(name),
                    layout,
                    mode: Mode::New {
                        header,
                        keep_mode: None,
                    },
                    input: None,
                    input_reading: None,
                })
            }
            Err(e) => Err(Error::io_refused("cannot access", path, e)),
        }
    }

    /// A rank finds the partial file of a pending run (ranks never create,
    /// resize or rename a file).
    pub(super) fn prepare_rank(&self) -> Result<Prepared> {
        let t = &self.target;
        if t.create.is_some() {
            return Err(Error::refused(
                "ranks never create files: run mmrun create --pending FILE --shape .. --dtype .. first, without --shape on the ranks",
            ));
        }
        let name = t
            .path
            .file_name()
            .ok_or_else(|| Error::refused(format!("{} does not name a file", t.path.display())))?;
        let parent = match t.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = fs::canonicalize(parent)
            .map_err(|e| Error::io_refused("cannot access directory", parent, e))?;
        let real = dir.join(name);
        let partial = journal::partial_path(&real);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&partial)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::refused(format!(
                    "{}: no pending distributed run (create one with mmrun create --pending)",
                    t.path.display()
                )),
                _ => Error::io_refused("cannot open", &partial, e),
            })?;
        let layout = Layout::read(&partial, &mut file, t.raw.as_ref())?;
        layout.check_workable(&t.path)?;
        if let Some(d) = t.expect_dtype.filter(|&d| d != layout.dtype) {
            return Err(Error::refused(format!(
                "{} holds {}, not {d}",
                t.path.display(),
                layout.dtype
            )));
        }
        Ok(Prepared {
            real,
            layout,
            mode: Mode::Rank { file },
            input: None,
            input_reading: None,
        })
    }

    /// Step 3: the partial file built and reserved, or the target opened.
    pub(super) fn open_for_work(
        &self,
        p: &Prepared,
        layout: &Layout,
        partial: &Path,
    ) -> Result<(File, &'static str)> {
        let len = layout.file_len()?;
        match &p.mode {
            Mode::New { header, keep_mode } => {
                let create = || {
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .mode(0o666)
                        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                        .open(partial)
                };
                let mut file = match create() {
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // We hold the journal, so this is a leftover of ours.
                        fs::remove_file(partial)
                            .map_err(|e| Error::io_refused("cannot remove", partial, e))?;
                        create()
                    }
                    other => other,
                }
                .map_err(|e| Error::io_refused("cannot create", partial, e))?;
                if let Some(mode) = keep_mode {
                    file.set_permissions(fs::Permissions::from_mode(*mode))
                        .map_err(|e| Error::io_refused("cannot set the mode of", partial, e))?;
                }
                let reserved = self.reserve(&file, 0, len, &p.real)?;
                file.seek(SeekFrom::Start(0))
                    .and_then(|_| file.write_all(header))
                    .map_err(|e| Error::io_refused("cannot write the header of", partial, e))?;
                Ok((file, reserved))
            }
            Mode::InPlace { file } | Mode::Rank { file } => {
                let file = file
                    .try_clone()
                    .map_err(|e| Error::io_refused("cannot open", &p.real, e))?;
                let reserved =
                    self.reserve(&file, layout.data_offset, layout.data_bytes()?, &p.real)?;
                Ok((file, reserved))
            }
        }
    }

    /// Reserves `offset..offset+len` and makes the file at least that long.
    pub(super) fn reserve(
        &self,
        file: &File,
        offset: u64,
        len: u64,
        target: &Path,
    ) -> Result<&'static str> {
        let end = offset + len;
        let sparse = |file: &File| -> Result<&'static str> {
            if file.metadata().map(|m| m.len()).unwrap_or(0) < end {
                file.set_len(end)
                    .map_err(|e| space_error(target, end, e.raw_os_error()))?;
            }
            Ok("sparse")
        };
        match self.prealloc {
            Prealloc::None => sparse(file),
            mode => match os::reserve(file, offset, len) {
                Ok(()) => Ok("fallocate"),
                Err(Errno::EOPNOTSUPP | Errno::ENOSYS) if mode == Prealloc::Auto => {
                    tracing::warn!(
                        "the file system of {} cannot reserve space: going on without (a full disk may stop workers)",
                        target.display()
                    );
                    sparse(file)
                }
                Err(e) => Err(space_error(target, end, Some(e as i32))),
            },
        }
    }
}

/// Refuses to publish a file whose size changed under the run (someone
/// truncated or extended it).
pub(super) fn check_size(file: &File, layout: &Layout, path: &Path, in_place: bool) -> Result<()> {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let need = layout.file_len()?;
    if len != need && !(in_place && len > need) {
        return Err(Error::failed(format!(
            "{} changed size during the run ({len} bytes, expected {need}): nothing was published",
            path.display()
        )));
    }
    Ok(())
}

/// Refuses an in-place run on a copy-on-write file system (Btrfs, ZFS,
/// bcachefs) without room for the rows it rewrites: there every rewritten
/// block is written somewhere new, so a file whose blocks were all reserved
/// still runs out of space, and a worker storing into its mapping then dies
/// of SIGBUS halfway. Refused before any work, the file stays unchanged.
/// (Files marked NOCOW, `chattr +C`, need no room; they are refused alike.)
pub(super) fn check_cow_space(target: &Path, bytes: u64, filesystem: &str) -> Result<()> {
    if !matches!(filesystem, "btrfs" | "zfs" | "bcachefs") {
        return Ok(());
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    match os::available_bytes(dir) {
        Some(avail) if avail < bytes => Err(Error::refused(format!(
            "{}: {filesystem} copies every block rewritten in place, so rewriting {bytes} bytes needs that much free space and {avail} bytes are available: free space first, or write a new file (mmrun apply FILE --expr EXPR --out NEW)",
            target.display()
        ))),
        _ => Ok(()),
    }
}

fn space_error(target: &Path, need: u64, errno: Option<i32>) -> Error {
    let dir = target.parent().unwrap_or(Path::new("."));
    match errno {
        Some(libc::ENOSPC) => {
            let avail = os::available_bytes(dir).map(|a| format!(", {a} available")).unwrap_or_default();
            Error::refused(format!(
                "not enough space in {} for {}: it needs {need} bytes{avail}",
                dir.display(),
                target.display()
            ))
        }
        Some(libc::EDQUOT) => Error::refused(format!(
            "disk quota exceeded in {}: {} needs {need} bytes",
            dir.display(),
            target.display()
        )),
        Some(libc::EFBIG) => Error::refused(format!(
            "{} would be {need} bytes, over this process's file size limit (ulimit -f) or the file system's",
            target.display()
        )),
        Some(e) => Error::refused(format!(
            "cannot reserve {need} bytes for {}: {}",
            target.display(),
            std::io::Error::from_raw_os_error(e)
        )),
        None => Error::refused(format!("cannot reserve {need} bytes for {}", target.display())),
    }
}

pub(super) fn sync_dir(target: &Path) -> Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_failed("cannot sync directory", dir, e))
}
