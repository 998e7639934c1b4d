//! `mmrun info`: what a file holds, as a library call. A file mmrun
//! computes on is described by its [`Layout`]; a `.npy` whose dtype NumPy
//! writes but mmrun has no element type for (complex, datetime64, strings,
//! structured …) is described from its header, with the note that other
//! commands refuse it.
//!
//! ```
//! use mmrun::commands::info::{describe, Description};
//! use mmrun::{DType, Runner, Target};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("x.npy");
//! Runner::new(Target::new_npy(&path, DType::U8, vec![3, 5])).run(|_| Ok(None))?;
//! let Description::Array { layout, .. } = describe(&path, None)? else { panic!() };
//! assert_eq!((layout.dtype, layout.shape), (DType::U8, vec![3, 5]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::coordinator::pending_elsewhere;
use crate::error::{Error, Result};
use crate::layout::npy::{read_other_header, OtherInfo};
use crate::layout::{shape_text, DType, Layout, RawSpec};

/// What a file holds.
#[derive(Debug, Clone)]
pub enum Description {
    /// An array mmrun computes on.
    Array {
        /// The file as given.
        path: PathBuf,
        /// Its layout.
        layout: Layout,
        /// The file's length in bytes.
        file_len: u64,
    },
    /// A `.npy` of a dtype mmrun does not compute on.
    Other {
        /// The file as given.
        path: PathBuf,
        /// Its header.
        header: OtherInfo,
        /// Bytes of data the header describes.
        data_bytes: u64,
        /// The file's length in bytes.
        file_len: u64,
    },
}

/// Describes `path` (`raw` describes a headerless file). Refusals (exit
/// 2): a missing file (naming a pending distributed run building it), a
/// directory, a header neither mmrun nor NumPy reads, a truncated file.
pub fn describe(path: &Path, raw: Option<&RawSpec>) -> Result<Description> {
    let mut file = File::open(path).map_err(|e| {
        pending_elsewhere(path).unwrap_or_else(|| Error::io_refused("cannot open", path, e))
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io_refused("cannot stat", path, e))?;
    if meta.is_dir() {
        return Err(Error::refused(format!("{} is a directory", path.display())));
    }
    match Layout::read(path, &mut file, raw) {
        Ok(layout) => Ok(Description::Array {
            path: path.to_path_buf(),
            layout,
            file_len: meta.len(),
        }),
        // A dtype NumPy writes that mmrun does not compute on: described.
        Err(e) if raw.is_none() => other(path, file, meta.len(), e),
        Err(e) => Err(e),
    }
}

/// A `.npy` whose dtype mmrun has no element type for; `refused` is
/// returned when the header is not one NumPy reads either.
fn other(path: &Path, mut file: File, file_len: u64, refused: Error) -> Result<Description> {
    if file.seek(SeekFrom::Start(0)).is_err() {
        return Err(refused);
    }
    let Ok(h) = read_other_header(&mut std::io::BufReader::new(&mut file), file_len) else {
        return Err(refused);
    };
    if DType::from_numpy(&h.dtype.descr).is_some() {
        // A dtype mmrun knows: the refusal was about something else.
        return Err(refused);
    }
    let count = h.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
    let data = count.and_then(|n| n.checked_mul(h.dtype.itemsize));
    let Some(data) = data.filter(|&d| {
        h.data_offset
            .checked_add(d)
            .is_some_and(|end| end <= file_len)
    }) else {
        return Err(Error::refused(format!(
            "{}: truncated: shape {} of {} needs more than the file's {file_len} bytes",
            path.display(),
            shape_text(&h.shape),
            h.dtype.name
        )));
    };
    Ok(Description::Other {
        path: path.to_path_buf(),
        header: h,
        data_bytes: data,
        file_len,
    })
}

impl Description {
    /// As `mmrun info --json` prints it.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Description::Array {
                path,
                layout,
                file_len,
            } => crate::report::info_json(path, layout, *file_len),
            Description::Other {
                path,
                header: h,
                data_bytes,
                file_len,
            } => serde_json::json!({
                "schema_version": 1,
                "file": path,
                "format": "npy",
                "npy_version": format!("{}.{}", h.version.0, h.version.1),
                "dtype": h.dtype.descr,
                "dtype_name": h.dtype.name,
                "itemsize": h.dtype.itemsize,
                "byte_order": if h.dtype.descr.starts_with('>') { "big" } else { "little" },
                "fortran_order": h.fortran_order,
                "shape": h.shape,
                "data_offset": h.data_offset,
                "data_bytes": data_bytes,
                "file_bytes": file_len,
                "computable": false,
                "note": why(h),
            }),
        }
    }

    /// As `mmrun info` prints it.
    pub fn text(&self) -> String {
        match self {
            Description::Array {
                path,
                layout,
                file_len,
            } => crate::report::info_text(path, layout, *file_len),
            Description::Other {
                path,
                header: h,
                data_bytes,
                file_len,
            } => format!(
                "{}: npy v{}.{}, dtype {} ({}, {} bytes per element), shape {}, {} order, data at byte {}, {} of data ({data_bytes} bytes), file {file_len} bytes\n  note: {}",
                path.display(),
                h.version.0,
                h.version.1,
                h.dtype.descr,
                h.dtype.name,
                h.dtype.itemsize,
                shape_text(&h.shape),
                if h.fortran_order { "Fortran" } else { "C" },
                h.data_offset,
                indicatif::HumanBytes(*data_bytes),
                why(h),
            ),
        }
    }
}

/// Why other commands refuse a file of `h`'s dtype.
fn why(h: &OtherInfo) -> String {
    format!(
        "mmrun computes on bool, integer and float arrays: fill, apply, reduce and convert refuse {}",
        h.dtype.name
    )
}
