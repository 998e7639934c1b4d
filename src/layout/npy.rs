//! `.npy` headers: writing them (page-padded or as `np.save` writes them) and
//! reading them defensively.
//!
//! Reading checks the fixed prefix by hand first — magic, version, header
//! length against [`MAX_HEADER_LEN`] and the file's size — so a hostile file
//! can neither make mmrun allocate a huge buffer nor read past its end. Only
//! then is the header text handed to `ndarray-npy`'s parser, which accepts
//! Python literals only (no evaluation). Sizes are computed in checked `u64`
//! arithmetic by the caller ([`crate::layout::Layout`]).

use std::io::{Cursor, Read};

use ndarray_npy::npy::header::Header;
use py_literal::Value as PyValue;

use super::dtype::{ByteOrder, DType};

/// The magic string every `.npy` file starts with.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Largest header mmrun reads. NumPy's own reader refuses headers longer
/// than this by default (`max_header_size` in `numpy.lib.format`).
///
/// Sources: numpy/lib/format.py, `_MAX_HEADER_SIZE = 10000`.
pub const MAX_HEADER_LEN: u64 = 10_000;

/// Where data starts in a page-padded header. A format constant, not the
/// running machine's page size, so files are identical everywhere; 4096 is a
/// multiple of every common page size's alignment needs for `mmap` offsets on
/// x86-64 and of the 64-byte alignment `np.save` keeps.
pub const PAGE_DATA_OFFSET: u64 = 4096;

/// `np.save` pads headers so the data starts at a multiple of this.
/// Sources: numpy/lib/format.py, `ARRAY_ALIGN = 64`.
const ARRAY_ALIGN: usize = 64;

/// `np.save` leaves room for the growth axis to reach this many digits.
/// Sources: numpy/lib/format.py, `GROWTH_AXIS_MAX_DIGITS = 21`.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;

/// How to lay out a header mmrun writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeaderStyle {
    /// v1.0 header padded with spaces so data starts at byte 4096.
    #[default]
    Page,
    /// Byte-identical to what `np.save` writes for the same array.
    Compact,
}

/// What a parsed header says about the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyInfo {
    /// Format version, e.g. (1, 0).
    pub version: (u8, u8),
    /// Element type.
    pub dtype: DType,
    /// Byte order of the elements.
    pub byte_order: ByteOrder,
    /// Whether the array is stored in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Byte offset of the first element.
    pub data_offset: u64,
}

/// Why a header could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyError(pub String);

impl std::fmt::Display for NpyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(msg: impl Into<String>) -> NpyError {
    NpyError(msg.into())
}

/// The header dictionary text NumPy writes, without padding.
fn dict_text(dtype: DType, shape: &[u64]) -> String {
    let shape_repr = match shape {
        [] => "()".to_string(),
        [one] => format!("({one},)"),
        many => {
            let parts: Vec<String> = many.iter().map(u64::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_repr}, }}",
        dtype.descr()
    )
}

/// Encodes a header for a C-order, little-endian array. Returns the bytes,
/// whose length is the data offset.
pub fn encode_header(dtype: DType, shape: &[u64], style: HeaderStyle) -> Result<Vec<u8>, NpyError> {
    let mut dict = dict_text(dtype, shape);
    match style {
        HeaderStyle::Compact => {
            if let Some(first) = shape.first() {
                let digits = first.to_string().len();
                dict.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
            }
            // np.save picks v1.0 unless the header length overflows u16.
            let (version, len_bytes) = if dict.len() + 1 + ARRAY_ALIGN < 65_536 - 10 {
                (1u8, 2usize)
            } else {
                (2u8, 4usize)
            };
            let prefix = MAGIC.len() + 2 + len_bytes;
            let hlen = dict.len() + 1;
            let pad = ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
            Ok(assemble(version, len_bytes, &dict, pad))
        }
        HeaderStyle::Page => encode_padded(dtype, shape, PAGE_DATA_OFFSET),
    }
}

/// A v1.0 header padded with spaces so data starts exactly at `data_offset`
/// (a multiple of 64, at most [`MAX_HEADER_LEN`] + 10 so NumPy reads it).
pub fn encode_padded(dtype: DType, shape: &[u64], data_offset: u64) -> Result<Vec<u8>, NpyError> {
    let dict = dict_text(dtype, shape);
    let prefix = MAGIC.len() + 2 + 2;
    let total = data_offset as usize;
    if total > MAX_HEADER_LEN as usize + prefix || !total.is_multiple_of(ARRAY_ALIGN) {
        return Err(err(format!("cannot put .npy data at byte {total}")));
    }
    if prefix + dict.len() + 1 > total {
        return Err(err(format!(
            "the .npy header for shape {shape:?} does not fit in {total} bytes: use --npy-header compact"
        )));
    }
    let pad = total - prefix - dict.len() - 1;
    Ok(assemble(1, 2, &dict, pad))
}

fn assemble(version: u8, len_bytes: usize, dict: &str, pad: usize) -> Vec<u8> {
    let hlen = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + len_bytes + hlen);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if len_bytes == 2 {
        out.extend_from_slice(&(hlen as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(hlen as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + pad, b' ');
    out.push(b'\n');
    out
}

/// Whether `prefix` starts with the `.npy` magic string.
pub fn has_magic(prefix: &[u8]) -> bool {
    prefix.starts_with(MAGIC)
}

/// Reads and checks the header of a file `file_len` bytes long.
pub fn read_header<R: Read>(reader: &mut R, file_len: u64) -> Result<NpyInfo, NpyError> {
    let (version, header, data_offset) = read_dict(reader, file_len)?;
    let descr = match &header.type_descriptor {
        PyValue::String(s) => s.clone(),
        other => {
            return Err(err(format!(
                "structured dtype {} is not supported (mmrun handles plain numeric arrays)",
                printable(&other.to_string())
            )))
        }
    };
    let (dtype, byte_order) = DType::from_numpy(&descr).ok_or_else(|| {
        err(format!(
            "dtype '{}' is not supported (mmrun handles bool, integer and float arrays)",
            printable(&descr)
        ))
    })?;
    Ok(NpyInfo {
        version,
        dtype,
        byte_order,
        fortran_order: header.layout.is_fortran(),
        shape: header.shape.iter().map(|&d| d as u64).collect(),
        data_offset,
    })
}

/// The checked prefix and parsed dictionary of a header: version, the
/// dictionary, and the data offset.
fn read_dict<R: Read>(reader: &mut R, file_len: u64) -> Result<((u8, u8), Header, u64), NpyError> {
    let mut prefix = [0u8; 12];
    if file_len < 10 {
        return Err(err(format!(
            "truncated .npy header: the file is only {file_len} bytes"
        )));
    }
    reader
        .read_exact(&mut prefix[..10])
        .map_err(|e| err(format!("cannot read the .npy header: {e}")))?;
    if !has_magic(&prefix) {
        return Err(err(
            "not a .npy file (no magic string); use --raw for headerless files",
        ));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let (len_bytes, hlen) = match (major, minor) {
        (1, 0) => (2u64, u64::from(u16::from_le_bytes([prefix[8], prefix[9]]))),
        (2, 0) | (3, 0) => {
            if file_len < 12 {
                return Err(err(format!(
                    "truncated .npy header: the file is only {file_len} bytes"
                )));
            }
            reader
                .read_exact(&mut prefix[10..12])
                .map_err(|e| err(format!("cannot read the .npy header: {e}")))?;
            let n = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            (4u64, u64::from(n))
        }
        _ => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor}"
            )))
        }
    };
    if hlen > MAX_HEADER_LEN {
        return Err(err(format!(
            "the .npy header is {hlen} bytes, over the {MAX_HEADER_LEN}-byte limit NumPy also keeps"
        )));
    }
    let data_offset = 8 + len_bytes + hlen;
    if data_offset > file_len {
        return Err(err(format!(
            "truncated .npy header: it claims {hlen} bytes but the file ends at byte {file_len}"
        )));
    }
    let mut whole = prefix[..(8 + len_bytes) as usize].to_vec();
    let mut text = vec![0u8; hlen as usize];
    reader
        .read_exact(&mut text)
        .map_err(|e| err(format!("cannot read the .npy header: {e}")))?;
    check_plain_literal(&text)?;
    if major < 3 {
        // NumPy retries a v1/v2 header that Python 3 cannot read with the
        // `L` suffixes of Python 2's longs removed (`_filter_header`).
        blank_long_suffixes(&mut text);
    }
    whole.extend_from_slice(&text);
    let header = Header::from_reader(&mut Cursor::new(&whole)).map_err(|e| {
        // Parser errors span several lines; a refusal is one line.
        let detail = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        err(format!("corrupt .npy header: {}", printable(&detail)))
    })?;
    Ok(((major, minor), header, data_offset))
}

/// A dtype NumPy writes that mmrun has no element type for (complex,
/// datetime64, timedelta64, strings, void, structured, float128): what
/// `info` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherDType {
    /// The descr as the header has it (printable), e.g. `<c8`, `<M8[ns]`.
    pub descr: String,
    /// What it is, in NumPy's words: `complex64`, `datetime64[ns]`, `str96`.
    pub name: String,
    /// Bytes per element.
    pub itemsize: u64,
}

/// What a header with an [`OtherDType`] says about the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherInfo {
    /// Format version, e.g. (1, 0).
    pub version: (u8, u8),
    /// The element type.
    pub dtype: OtherDType,
    /// Whether the array is stored in Fortran order.
    pub fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Byte offset of the first element.
    pub data_offset: u64,
}

/// Reads a header whose dtype mmrun does not compute on but NumPy writes,
/// for `info` to describe it. Refuses what NumPy refuses, and object
/// arrays (their data is a pickle, not fixed-size elements).
pub fn read_other_header<R: Read>(reader: &mut R, file_len: u64) -> Result<OtherInfo, NpyError> {
    let (version, header, data_offset) = read_dict(reader, file_len)?;
    let dtype = other_dtype(&header.type_descriptor, 0).ok_or_else(|| {
        err(format!(
            "dtype {} is not one NumPy reads from a .npy file without pickles",
            printable(&header.type_descriptor.to_string())
        ))
    })?;
    Ok(OtherInfo {
        version,
        dtype,
        fortran_order: header.layout.is_fortran(),
        shape: header.shape.iter().map(|&d| d as u64).collect(),
        data_offset,
    })
}

/// Size and name of a descr as `np.dtype` reads it (the `.str` forms and
/// the list of fields `np.save` writes); `None` for what it refuses.
fn other_dtype(v: &PyValue, depth: usize) -> Option<OtherDType> {
    if depth > 32 {
        return None;
    }
    match v {
        PyValue::String(text) => {
            if let Some((d, _)) = DType::from_numpy(text) {
                return Some(OtherDType {
                    descr: text.clone(),
                    name: d.numpy_name(),
                    itemsize: d.itemsize(),
                });
            }
            let rest = text.strip_prefix(['<', '>', '=', '|']).unwrap_or(text);
            let kind = rest.chars().next()?;
            let body = &rest[kind.len_utf8()..];
            let digits = |t: &str| -> Option<u64> {
                (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse().ok())
                    .flatten()
            };
            let (name, itemsize) = match kind {
                'c' => {
                    let n = digits(body).filter(|n| [8, 16, 32].contains(n))?;
                    (format!("complex{}", n * 8), n)
                }
                'F' | 'D' | 'G' if body.is_empty() => {
                    let n = match kind {
                        'F' => 8,
                        'D' => 16,
                        _ => 32,
                    };
                    (format!("complex{}", n * 8), n)
                }
                'f' if body == "16" => ("float128".into(), 16),
                'g' if body.is_empty() => ("float128".into(), 16),
                'M' | 'm' => {
                    let (size, unit) = match body.find('[') {
                        Some(at) => (
                            &body[..at],
                            body[at..].strip_suffix(']')?.strip_prefix('[')?,
                        ),
                        None => (body, ""),
                    };
                    if !(size.is_empty() || size == "8") {
                        return None;
                    }
                    let units = [
                        "", "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "μs", "ns", "ps", "fs",
                        "as",
                    ];
                    let plain = unit.trim_start_matches(|c: char| c.is_ascii_digit());
                    if !units.contains(&plain) {
                        return None;
                    }
                    let base = if kind == 'M' {
                        "datetime64"
                    } else {
                        "timedelta64"
                    };
                    let name = if unit.is_empty() {
                        base.to_string()
                    } else {
                        format!("{base}[{unit}]")
                    };
                    (name, 8)
                }
                'U' => {
                    let n = digits(body)?;
                    (format!("str{}", n.checked_mul(32)?), n.checked_mul(4)?)
                }
                'S' | 'a' => {
                    let n = digits(body)?;
                    (format!("bytes{}", n.checked_mul(8)?), n)
                }
                'V' => {
                    let n = digits(body)?;
                    (format!("void{}", n.checked_mul(8)?), n)
                }
                _ => return None,
            };
            // `np.dtype(..).str` of the unsized `U0`, `S0`, `V0` (the sized
            // ones have a `DType`): `<U0`, `|S0`, `|V0`.
            let descr = match kind {
                'U' => format!("{}U{body}", if text.starts_with('>') { '>' } else { '<' }),
                'S' | 'a' => format!("|S{body}"),
                'V' => format!("|V{body}"),
                _ => printable(text),
            };
            Some(OtherDType {
                descr,
                name,
                itemsize,
            })
        }
        PyValue::List(fields) if !fields.is_empty() => {
            let mut size = 0u64;
            let mut names = Vec::new();
            for f in fields {
                let PyValue::Tuple(parts) = f else {
                    return None;
                };
                let (name, descr, shape) = match parts.as_slice() {
                    [n, d] => (n, d, None),
                    [n, d, s] => (n, d, Some(s)),
                    _ => return None,
                };
                let name = match name {
                    PyValue::String(n) => n.clone(),
                    PyValue::Tuple(t) => match t.as_slice() {
                        [_, PyValue::String(n)] => n.clone(),
                        _ => return None,
                    },
                    _ => return None,
                };
                let field = other_dtype(descr, depth + 1)?;
                let count = match shape {
                    None => 1u64,
                    Some(PyValue::Tuple(dims)) => dims.iter().try_fold(1u64, |a, d| match d {
                        PyValue::Integer(i) => a.checked_mul(i.to_string().parse::<u64>().ok()?),
                        _ => None,
                    })?,
                    Some(PyValue::Integer(i)) => i.to_string().parse::<u64>().ok()?,
                    Some(_) => return None,
                };
                size = size.checked_add(field.itemsize.checked_mul(count)?)?;
                if !name.is_empty() {
                    names.push(format!("{} {}", printable(&name), field.name));
                }
            }
            Some(OtherDType {
                descr: printable(&v.to_string()),
                name: format!("structured ({})", names.join(", ")),
                itemsize: size,
            })
        }
        _ => None,
    }
}

/// Text from a file, safe to print on one line: control characters (a
/// newline, an escape sequence's ESC) are written as Rust escapes.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Blanks out each `L` that follows a number outside quoted strings (`(2L,
/// 3L)` → `(2 , 3 )`), as NumPy's `_filter_header` drops the `L` name
/// token after a number token. Blanking keeps the header's length.
fn blank_long_suffixes(text: &mut [u8]) {
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    // Whether the last token outside quotes was a number.
    let mut after_number = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if c == b'\'' || c == b'"' {
            quote = Some(c);
            after_number = false;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let start = i;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == b'_') {
                i += 1;
            }
            let word = &text[start..i];
            if word[0].is_ascii_digit() {
                // `2L` is one run here: the digits are a number, the `L` a name.
                if word.len() > 1
                    && word[..word.len() - 1].iter().all(u8::is_ascii_digit)
                    && word[word.len() - 1] == b'L'
                {
                    text[i - 1] = b' ';
                }
                after_number = true;
            } else if after_number && word == b"L" {
                text[start] = b' ';
                after_number = false;
            } else {
                after_number = false;
            }
        } else {
            after_number = false;
            i += 1;
        }
    }
}

/// Refuses header text with anything but plain literals: outside quoted
/// strings only names, digits, brackets, commas, colons, dots and spaces may
/// appear. NumPy's `ast.literal_eval` refuses arithmetic such as `(1+2, 2)`;
/// so does mmrun, before any parser sees it.
fn check_plain_literal(text: &[u8]) -> Result<(), NpyError> {
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    // Brackets must pair up within CPython's 200 levels, as Python's
    // tokenizer requires ("too many nested parentheses"); checked here
    // because the literal parser backtracks exponentially on an unclosed
    // nest (`[('a', [('a', …` of a few hundred bytes would take hours).
    let mut open: Vec<u8> = Vec::new();
    for &c in text {
        if quote.is_none() {
            match c {
                b'(' | b'[' | b'{' => {
                    open.push(c);
                    if open.len() > 200 {
                        return Err(err(
                            "corrupt .npy header: more than 200 nested brackets (Python's limit)",
                        ));
                    }
                }
                b')' | b']' | b'}' => {
                    let want = match c {
                        b')' => b'(',
                        b']' => b'[',
                        _ => b'{',
                    };
                    if open.pop() != Some(want) {
                        return Err(err(format!(
                            "corrupt .npy header: unmatched '{}'",
                            char::from(c)
                        )));
                    }
                }
                _ => {}
            }
        }
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'\'' | b'"' => quote = Some(c),
                b'{' | b'}' | b'(' | b')' | b'[' | b']' | b',' | b':' | b'.' | b'_' => {}
                c if c.is_ascii_alphanumeric() || c.is_ascii_whitespace() => {}
                c => {
                    return Err(err(format!(
                        "corrupt .npy header: '{}' is not allowed in a literal header",
                        char::from(c).escape_default()
                    )))
                }
            },
        }
    }
    if let Some(&c) = open.last() {
        return Err(err(format!(
            "corrupt .npy header: '{}' is never closed",
            char::from(c)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<NpyInfo, NpyError> {
        read_header(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    /// An unclosed nest of fields (which made the literal parser backtrack
    /// for minutes at a dozen levels) and nesting past Python's 200 levels
    /// are refused at once; a closed structured descr is still read.
    #[test]
    fn unbalanced_or_too_deep_brackets_are_refused_at_once() {
        let file = |descr: &str| {
            let dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (3,), }}");
            let mut f = b"\x93NUMPY\x01\x00".to_vec();
            f.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
            f.extend_from_slice(dict.as_bytes());
            f.push(b'\n');
            f
        };
        let t0 = std::time::Instant::now();
        for descr in [
            "[('a', ".repeat(300),
            format!("{}'<f4'{}", "[".repeat(201), "]".repeat(201)),
            "[('a', '<f4')".to_string(),
            "[('a', '<f4')))".to_string(),
        ] {
            let f = file(&descr);
            let n = f.len() as u64;
            assert!(
                read_other_header(&mut Cursor::new(&f), n).is_err(),
                "{descr}"
            );
            assert!(read_header(&mut Cursor::new(&f), n).is_err(), "{descr}");
        }
        assert!(t0.elapsed().as_secs() < 5, "{:?}", t0.elapsed());
        let f = file("[('a', '<f4'), ('n', [('x', '<i2', (3,))])]");
        let info = read_other_header(&mut Cursor::new(&f), f.len() as u64).unwrap();
        assert_eq!(info.dtype.itemsize, 10);
    }

    #[test]
    fn compact_matches_np_save_for_a_known_array() {
        // np.save of np.zeros((3, 4), np.float32): header as NumPy 2 writes it.
        let h = encode_header(DType::F32, &[3, 4], HeaderStyle::Compact).unwrap();
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert_eq!(h.len(), 128);
        assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"));
        assert!(text.ends_with(" \n"));
        assert_eq!(&h[..8], b"\x93NUMPY\x01\x00");
    }

    #[test]
    fn page_header_puts_data_at_4096() {
        let h = encode_header(DType::U8, &[10_000, 10_000], HeaderStyle::Page).unwrap();
        assert_eq!(h.len() as u64, PAGE_DATA_OFFSET);
        let info = parse(&h).unwrap();
        assert_eq!(info.data_offset, PAGE_DATA_OFFSET);
        assert_eq!(info.shape, vec![10_000, 10_000]);
    }

    #[test]
    fn refuses_long_and_truncated_headers() {
        let mut h = encode_header(DType::F32, &[3], HeaderStyle::Compact).unwrap();
        h[8..10].copy_from_slice(&20_000u16.to_le_bytes());
        assert!(parse(&h).unwrap_err().0.contains("limit"));
        let h = encode_header(DType::F32, &[3], HeaderStyle::Compact).unwrap();
        assert!(parse(&h[..40]).unwrap_err().0.contains("truncated"));
        assert!(parse(&h[..5]).unwrap_err().0.contains("truncated"));
    }

    #[test]
    fn refuses_non_literal_and_unsupported_headers() {
        let bad = |dict: &str| {
            let mut v = MAGIC.to_vec();
            v.extend_from_slice(&[1, 0]);
            let body = format!("{dict}\n");
            v.extend_from_slice(&(body.len() as u16).to_le_bytes());
            v.extend_from_slice(body.as_bytes());
            parse(&v)
        };
        assert!(
            bad("{'descr': __import__('os'), 'fortran_order': False, 'shape': (3,), }").is_err()
        );
        assert!(bad("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }").is_err());
        let c8 = bad("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }").unwrap();
        assert_eq!(c8.dtype, DType::C64);
        assert!(bad("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }").is_err());
        assert!(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (1+2, 2), }").is_err());
        assert!(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2), }").is_err());
        assert!(bad("{'descr': '<float64', 'fortran_order': False, 'shape': (3,), }").is_err());
        assert!(bad("{'descr': '<f4', 'fortran_order': False, 'shape': (3l,), }").is_err());
        let nl = bad("{'descr': '<x\\n\\x1b[31m', 'fortran_order': False, 'shape': (3,), }");
        let nl = nl.unwrap_err().0;
        assert!(!nl.contains('\n') && !nl.contains('\x1b'), "{nl}");
        let long = bad("{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3 L), }").unwrap();
        assert_eq!(long.shape, vec![2, 3]);
        for (descr, dtype) in [
            ("float64", DType::F64),
            ("<d", DType::F64),
            ("d", DType::F64),
            ("i", DType::I32),
            ("?", DType::Bool),
            ("bool", DType::Bool),
            ("|i4", DType::I32),
            ("l", DType::I64),
            ("B", DType::U8),
        ] {
            let h = bad(&format!(
                "{{'descr': '{descr}', 'fortran_order': False, 'shape': (3,), }}"
            ));
            assert_eq!(h.unwrap().dtype, dtype, "{descr}");
        }
        let be = bad("{'descr': '>f8', 'fortran_order': True, 'shape': (3, 2), }").unwrap();
        assert_eq!((be.byte_order, be.fortran_order), (ByteOrder::Big, true));
    }

    proptest! {
        #[test]
        fn headers_round_trip(shape in proptest::collection::vec(0u64..1_000_000_000, 0..5),
                              d in 0usize..12, compact: bool) {
            let dtype = DType::ALL[d];
            let style = if compact { HeaderStyle::Compact } else { HeaderStyle::Page };
            let h = encode_header(dtype, &shape, style).unwrap();
            prop_assert_eq!(h.len() % ARRAY_ALIGN, 0);
            let info = parse(&h).unwrap();
            prop_assert_eq!(info.shape, shape);
            prop_assert_eq!(info.dtype, dtype);
            prop_assert_eq!(info.data_offset, h.len() as u64);
            prop_assert!(!info.fortran_order);
        }
    }
}
