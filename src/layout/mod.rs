//! The on-disk layout of an array file: element type, shape, C order and
//! where the data starts.
//!
//! A [`Layout`] is pure description — it knows nothing of processes. It is
//! built either from a `.npy` header ([`Layout::read`]) or from the options
//! `numpy.memmap` takes for a headerless file ([`RawSpec`]). All sizes are
//! computed in checked `u64` arithmetic: a shape whose byte size overflows is
//! refused, never wrapped. A "row" is one index of axis 0; a 0-d array has
//! one row of one element.

pub mod dtype;
pub mod npy;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

pub use dtype::{ByteOrder, DType};
pub use npy::HeaderStyle;

use crate::error::{Error, Result};

/// The container format of an array file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// NumPy `.npy`, with the header's format version.
    Npy {
        /// Major version (1, 2 or 3).
        major: u8,
    },
    /// Headerless, as `numpy.memmap` reads it.
    Raw,
}

impl Format {
    /// `npy` or `raw`, as the worker protocol's `MMRUN_FORMAT` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Npy { .. } => "npy",
            Format::Raw => "raw",
        }
    }
}

/// Where an array's elements are and what they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// Container format.
    pub format: Format,
    /// Element type.
    pub dtype: DType,
    /// Byte order of the elements.
    pub byte_order: ByteOrder,
    /// Fortran (column-major) order: reported, never worked on.
    pub fortran_order: bool,
    /// The array's shape; may be empty (0-d) or contain zeros.
    pub shape: Vec<u64>,
    /// Byte offset of the first element in the file.
    pub data_offset: u64,
}

/// Options describing a headerless file, as `numpy.memmap` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSpec {
    /// Element type (required).
    pub dtype: DType,
    /// Shape; `None` infers a 1-D shape from the file size, like `numpy.memmap`.
    pub shape: Option<Vec<u64>>,
    /// Byte offset of the first element.
    pub offset: u64,
}

/// Parses a shape such as `10000,10000`, `(3, 4)`, `5` or `()` (0-d).
pub fn parse_shape(text: &str) -> Result<Vec<u64>> {
    let trimmed = text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    trimmed
        .split(',')
        .enumerate()
        .filter(|(i, part)| !(part.trim().is_empty() && *i > 0 && trimmed.ends_with(',')))
        .map(|(_, part)| {
            let part = part.trim();
            part.parse::<u64>().map_err(|_| {
                let why = if part.starts_with('-') {
                    "negative"
                } else {
                    "not a non-negative integer"
                };
                Error::refused(format!("invalid shape '{text}': entry '{part}' is {why}"))
            })
        })
        .collect()
}

/// Parses a raw file's `--shape` where one entry may be `-1`, inferred as
/// NumPy's `reshape` infers it from the `avail` bytes after the offset
/// (asked for only when there is a `-1`).
pub fn parse_shape_inferring(
    text: &str,
    itemsize: u64,
    avail: impl FnOnce() -> Result<u64>,
) -> Result<Vec<u64>> {
    let trimmed = text.trim().trim_start_matches('(').trim_end_matches(')');
    let parts: Vec<&str> = trimmed.split(',').map(str::trim).collect();
    let unknown: Vec<usize> = (0..parts.len()).filter(|&i| parts[i] == "-1").collect();
    let Some(&at) = unknown.first() else {
        return parse_shape(text);
    };
    if unknown.len() > 1 {
        return Err(Error::refused(format!(
            "invalid shape '{text}': can only specify one unknown dimension (-1)"
        )));
    }
    let mut rest = parts.clone();
    rest[at] = "1";
    let mut shape = parse_shape(&rest.join(","))?;
    let known = shape
        .iter()
        .try_fold(itemsize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::refused(format!("invalid shape '{text}': too large")))?;
    let avail = avail()?;
    if known == 0 || avail % known != 0 {
        return Err(Error::refused(format!(
            "cannot infer the -1 in shape '{text}': {avail} bytes of data are not a whole number of {known}-byte units"
        )));
    }
    shape[at] = avail / known;
    Ok(shape)
}

impl Layout {
    /// A C-order, native-endian layout for a new file.
    pub fn new(format: Format, dtype: DType, shape: Vec<u64>, data_offset: u64) -> Result<Self> {
        let layout = Layout {
            format,
            dtype,
            byte_order: ByteOrder::Little,
            fortran_order: false,
            shape,
            data_offset,
        };
        layout.file_len()?;
        Ok(layout)
    }

    /// Number of rows (axis-0 length; 1 for a 0-d array).
    pub fn rows(&self) -> u64 {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per row (product of the other axes), if it fits in u64.
    pub fn row_len(&self) -> Result<u64> {
        checked_product(self.shape.iter().skip(1).copied()).ok_or_else(|| self.overflow())
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> Result<u64> {
        self.row_len()?
            .checked_mul(self.dtype.itemsize())
            .ok_or_else(|| self.overflow())
    }

    /// Total number of elements.
    pub fn elements(&self) -> Result<u64> {
        checked_product(self.shape.iter().copied()).ok_or_else(|| self.overflow())
    }

    /// Bytes of element data.
    pub fn data_bytes(&self) -> Result<u64> {
        self.elements()?
            .checked_mul(self.dtype.itemsize())
            .ok_or_else(|| self.overflow())
    }

    /// The file length this layout needs: data offset plus data bytes.
    pub fn file_len(&self) -> Result<u64> {
        self.data_bytes()?
            .checked_add(self.data_offset)
            .ok_or_else(|| self.overflow())
    }

    fn overflow(&self) -> Error {
        Error::refused(format!(
            "shape {} of {} is too large: its size in bytes overflows 64 bits",
            shape_text(&self.shape),
            self.dtype
        ))
    }

    /// Shape as NumPy prints it: `(10000, 10000)`.
    pub fn shape_text(&self) -> String {
        shape_text(&self.shape)
    }

    /// Refuses layouts mmrun reads but does not compute on.
    pub fn check_workable(&self, path: &Path) -> Result<()> {
        // A layout-only dtype: the copy convert makes is for `mmrun exec`.
        let only_exec = if self.dtype.is_computable() || self.dtype.is_complex() {
            String::new()
        } else {
            format!(
                " (and {} is not supported by its kernels, only by mmrun exec)",
                self.dtype
            )
        };
        if self.byte_order == ByteOrder::Big {
            return Err(Error::refused(format!(
                "{} is big-endian ({}): mmrun works on native little-endian files{only_exec}; convert it first: {}",
                path.display(),
                self.dtype.descr_with(ByteOrder::Big),
                convert_command(path)
            )));
        }
        if self.fortran_order && self.shape.len() > 1 {
            return Err(Error::refused(format!(
                "{} is in Fortran order: mmrun works on C-order files{only_exec}; convert it first: {}",
                path.display(),
                convert_command(path)
            )));
        }
        Ok(())
    }

    /// Reads the layout of an existing file: `.npy` by its magic string, or
    /// raw when `raw` is given (which beats magic detection).
    pub fn read(path: &Path, file: &mut File, raw: Option<&RawSpec>) -> Result<Self> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::io_refused("cannot stat", path, e))?
            .len();
        if let Some(spec) = raw {
            return Self::from_raw(path, spec, file_len);
        }
        let mut prefix = [0u8; 6];
        let n =
            read_up_to(file, &mut prefix).map_err(|e| Error::io_refused("cannot read", path, e))?;
        if !npy::has_magic(&prefix[..n]) {
            return Err(Error::refused(format!(
                "{} is not a .npy file: for a headerless file give --raw --dtype (and --shape, --offset)",
                path.display()
            )));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io_refused("cannot read", path, e))?;
        let info = npy::read_header(&mut std::io::BufReader::new(&mut *file), file_len)
            .map_err(|e| Error::refused(format!("{}: {e}", path.display())))?;
        let layout = Layout {
            format: Format::Npy {
                major: info.version.0,
            },
            dtype: info.dtype,
            byte_order: info.byte_order,
            fortran_order: info.fortran_order,
            shape: info.shape,
            data_offset: info.data_offset,
        };
        let need = layout.file_len().map_err(|e| e.context(path.display()))?;
        if need > file_len {
            return Err(Error::refused(format!(
                "{}: truncated: its header promises {} bytes of data for shape {} but the file has only {}",
                path.display(),
                layout.data_bytes()?,
                layout.shape_text(),
                file_len.saturating_sub(layout.data_offset)
            )));
        }
        Ok(layout)
    }

    /// A raw layout for a file of `file_len` bytes.
    pub fn from_raw(path: &Path, spec: &RawSpec, file_len: u64) -> Result<Self> {
        let item = spec.dtype.itemsize();
        let shape = match &spec.shape {
            Some(s) => s.clone(),
            None => {
                let avail = file_len.checked_sub(spec.offset).ok_or_else(|| {
                    Error::refused(format!(
                        "{}: --offset {} is past the end of the file ({file_len} bytes)",
                        path.display(),
                        spec.offset
                    ))
                })?;
                if avail % item != 0 {
                    return Err(Error::refused(format!(
                        "{}: size {avail} bytes after --offset is not a multiple of {}'s itemsize {item}",
                        path.display(),
                        spec.dtype
                    )));
                }
                vec![avail / item]
            }
        };
        let layout = Layout::new(Format::Raw, spec.dtype, shape, spec.offset)?;
        // numpy.memmap maps a prefix of a longer file; a shorter one it refuses.
        let need = layout.file_len()?;
        if need > file_len {
            return Err(Error::refused(format!(
                "{}: raw file is {file_len} bytes but shape {} of {} at offset {} needs {need}",
                path.display(),
                layout.shape_text(),
                spec.dtype,
                spec.offset
            )));
        }
        Ok(layout)
    }
}

/// The `mmrun convert` command line that turns `path` into a file other
/// commands work on, writing `<stem>-native<.ext>` beside it, quoted for a
/// POSIX shell so it can be pasted as is.
pub fn convert_command(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map_or("out".into(), |s| s.to_string_lossy());
    let ext = path
        .extension()
        .map_or(String::new(), |e| format!(".{}", e.to_string_lossy()));
    let out = path.with_file_name(format!("{stem}-native{ext}"));
    let quote = |p: &Path| {
        let t = p.to_string_lossy();
        let plain = !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@%".contains(c));
        if plain {
            t.into_owned()
        } else {
            format!("'{}'", t.replace('\'', "'\\''"))
        }
    };
    format!("mmrun convert {} {}", quote(path), quote(&out))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn checked_product(dims: impl Iterator<Item = u64>) -> Option<u64> {
    dims.into_iter().try_fold(1u64, |acc, d| acc.checked_mul(d))
}

/// Shape as NumPy prints it: `(3,)`, `(3, 4)`, `()`.
pub fn shape_text(shape: &[u64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(u64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_like_numpy_tuples() {
        assert_eq!(parse_shape("10000,10000").unwrap(), vec![10000, 10000]);
        assert_eq!(parse_shape("(3, 4)").unwrap(), vec![3, 4]);
        assert_eq!(parse_shape("5").unwrap(), vec![5]);
        assert_eq!(parse_shape("(5,)").unwrap(), vec![5]);
        assert_eq!(parse_shape("()").unwrap(), Vec::<u64>::new());
        assert_eq!(parse_shape("0,7").unwrap(), vec![0, 7]);
        assert!(parse_shape("3,-4")
            .unwrap_err()
            .message()
            .contains("negative"));
        assert!(parse_shape("3,x").is_err());
        assert!(parse_shape("3,,4").is_err());
    }

    #[test]
    fn convert_commands_paste_into_a_shell() {
        assert_eq!(
            convert_command(Path::new("data/a.npy")),
            "mmrun convert data/a.npy data/a-native.npy"
        );
        assert_eq!(
            convert_command(Path::new("it's here.npy")),
            "mmrun convert 'it'\\''s here.npy' 'it'\\''s here-native.npy'"
        );
    }

    #[test]
    fn overflowing_shapes_are_refused() {
        let l = Layout::new(Format::Raw, DType::F64, vec![u64::MAX / 4, 3], 0);
        assert!(l.unwrap_err().message().contains("overflows"));
        let l = Layout::new(Format::Raw, DType::U8, vec![u64::MAX], 1);
        assert!(l.is_err());
    }

    #[test]
    fn sizes_of_zero_d_and_empty_arrays() {
        let l = Layout::new(Format::Raw, DType::F32, vec![], 0).unwrap();
        assert_eq!(
            (l.rows(), l.row_len().unwrap(), l.data_bytes().unwrap()),
            (1, 1, 4)
        );
        let l = Layout::new(Format::Raw, DType::F32, vec![0, 5], 0).unwrap();
        assert_eq!(
            (l.rows(), l.row_bytes().unwrap(), l.data_bytes().unwrap()),
            (0, 20, 0)
        );
    }
}
