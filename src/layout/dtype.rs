//! Element types: NumPy's names for them, their sizes and `.npy` descrs.
//!
//! mmrun speaks NumPy's dtype language so a user can copy a dtype from their
//! Python code: `f4`, `float32`, `<f4`, `i8` (which is int64, as in NumPy).
//! Bit-size aliases (`f32`, `i32`, `u16`) that NumPy does not accept are taken
//! too where they cannot be mistaken for a NumPy spelling; `f16` is refused
//! because NumPy reads it as a 16-byte float.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A supported element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// `b1`: NumPy's bool, one byte holding 0 or 1.
    Bool,
    /// `i1`
    I8,
    /// `i2`
    I16,
    /// `i4`
    I32,
    /// `i8`
    I64,
    /// `u1`
    U8,
    /// `u2`
    U16,
    /// `u4`
    U32,
    /// `u8`
    U64,
    /// `f2`: IEEE half precision.
    F16,
    /// `f4`
    F32,
    /// `f8`
    F64,
}

/// Byte order of the elements in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByteOrder {
    /// Little-endian, or not applicable (one-byte types).
    Little,
    /// Big-endian: reported by `info`, refused for work.
    Big,
}

impl DType {
    /// Every supported dtype, in NumPy's order of kinds.
    pub const ALL: [DType; 12] = [
        DType::Bool,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::F16,
        DType::F32,
        DType::F64,
    ];

    /// Bytes per element.
    pub fn itemsize(self) -> u64 {
        match self {
            DType::Bool | DType::I8 | DType::U8 => 1,
            DType::I16 | DType::U16 | DType::F16 => 2,
            DType::I32 | DType::U32 | DType::F32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
        }
    }

    /// NumPy's kind character: `b`, `i`, `u` or `f`.
    pub fn kind(self) -> char {
        match self {
            DType::Bool => 'b',
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => 'i',
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => 'u',
            DType::F16 | DType::F32 | DType::F64 => 'f',
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        self.kind() == 'f'
    }

    /// NumPy's descr for the little-endian (native here) form: `<f4`, `|u1`.
    pub fn descr(self) -> String {
        self.descr_with(ByteOrder::Little)
    }

    /// NumPy's descr in the given byte order.
    pub fn descr_with(self, order: ByteOrder) -> String {
        let prefix = if self.itemsize() == 1 {
            '|'
        } else if order == ByteOrder::Big {
            '>'
        } else {
            '<'
        };
        format!("{prefix}{}{}", self.kind(), self.itemsize())
    }

    /// NumPy's name: `float32`, `bool`, `uint8`.
    pub fn numpy_name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::F16 => "float16",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }

    fn from_kind_size(kind: char, size: u64) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.kind() == kind && d.itemsize() == size)
    }

    /// Parses a `.npy` descr (`<f4`, `|b1`, `>i8`) into a dtype and byte
    /// order. Anything else (structured, object, complex, strings) is `None`.
    pub fn parse_descr(descr: &str) -> Option<(DType, ByteOrder)> {
        let mut chars = descr.chars();
        let first = chars.next()?;
        let (order, rest) = match first {
            '<' | '|' | '=' => (ByteOrder::Little, &descr[1..]),
            '>' => (ByteOrder::Big, &descr[1..]),
            _ => (ByteOrder::Little, descr),
        };
        let kind = rest.chars().next()?;
        let size: u64 = rest[kind.len_utf8()..].parse().ok()?;
        let dtype = DType::from_kind_size(kind, size)?;
        // One-byte types have no byte order, whatever the prefix says.
        let order = if size == 1 { ByteOrder::Little } else { order };
        Some((dtype, order))
    }
}

impl DType {
    /// Reads a dtype string as `np.dtype` does, byte order included: a
    /// NumPy name (`float64`, `bool`, `int`; no byte-order prefix, as NumPy
    /// refuses `<float64`), a type character (`d`, `i`, `?`, `l`, `B`), or a
    /// kind and size (`f8`, `b1`), each of the last two after an optional
    /// `<`, `>`, `=` or `|`. `None` for anything NumPy refuses and for the
    /// dtypes mmrun has no type for (complex, datetime, strings, `g`).
    ///
    /// This is how a `.npy` header's descr is read, as NumPy's
    /// `descr_to_dtype` reads it.
    pub fn from_numpy(text: &str) -> Option<(DType, ByteOrder)> {
        let by_name = match text {
            "bool" | "bool_" => Some(DType::Bool),
            "int8" | "byte" => Some(DType::I8),
            "int16" | "short" => Some(DType::I16),
            "int32" | "intc" => Some(DType::I32),
            "int64" | "long" | "longlong" | "int" | "int_" | "intp" => Some(DType::I64),
            "uint8" | "ubyte" => Some(DType::U8),
            "uint16" | "ushort" => Some(DType::U16),
            "uint32" | "uintc" => Some(DType::U32),
            "uint64" | "ulong" | "ulonglong" | "uint" | "uintp" => Some(DType::U64),
            "float16" | "half" => Some(DType::F16),
            "float32" | "single" => Some(DType::F32),
            "float64" | "double" | "float" => Some(DType::F64),
            _ => None,
        };
        if let Some(d) = by_name {
            return Some((d, ByteOrder::Little));
        }
        let (order, rest) = match text.as_bytes().first()? {
            b'<' | b'=' | b'|' => (ByteOrder::Little, &text[1..]),
            b'>' => (ByteOrder::Big, &text[1..]),
            _ => (ByteOrder::Little, text),
        };
        // Type characters of an LP64 Linux, as np.dtype(c).str prints them.
        let by_char = match rest {
            "?" => Some(DType::Bool),
            "b" => Some(DType::I8),
            "B" => Some(DType::U8),
            "h" => Some(DType::I16),
            "H" => Some(DType::U16),
            "i" => Some(DType::I32),
            "I" => Some(DType::U32),
            "l" | "q" | "p" => Some(DType::I64),
            "L" | "Q" | "P" => Some(DType::U64),
            "e" => Some(DType::F16),
            "f" => Some(DType::F32),
            "d" => Some(DType::F64),
            _ => None,
        };
        let dtype = match by_char {
            Some(d) => d,
            None => {
                let kind = rest.chars().next()?;
                let digits = &rest[kind.len_utf8()..];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                DType::from_kind_size(kind, digits.parse().ok()?)?
            }
        };
        // One-byte types have no byte order, whatever the prefix says.
        let order = if dtype.itemsize() == 1 {
            ByteOrder::Little
        } else {
            order
        };
        Some((dtype, order))
    }
}

/// A dtype spelling mmrun cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDTypeError(String);

impl fmt::Display for ParseDTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDTypeError {}

impl FromStr for DType {
    type Err = ParseDTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = match s {
            "bool" | "b1" | "?" | "|b1" | "bool_" => Some(DType::Bool),
            "int8" | "byte" => Some(DType::I8),
            "int16" | "short" | "i16" => Some(DType::I16),
            "int32" | "intc" | "i32" => Some(DType::I32),
            "int64" | "long" | "longlong" | "int" | "i64" => Some(DType::I64),
            "uint8" | "ubyte" => Some(DType::U8),
            "uint16" | "ushort" | "u16" => Some(DType::U16),
            "uint32" | "uintc" | "u32" => Some(DType::U32),
            "uint64" | "ulong" | "ulonglong" | "uint" | "u64" => Some(DType::U64),
            "float16" | "half" | "e" => Some(DType::F16),
            "float32" | "single" | "f" | "f32" => Some(DType::F32),
            "float64" | "double" | "d" | "float" | "f64" => Some(DType::F64),
            _ => None,
        };
        if let Some(d) = named {
            return Ok(d);
        }
        if s == "f16" {
            return Err(ParseDTypeError(
                "dtype 'f16' is ambiguous (NumPy reads it as a 16-byte float): use f2 or float16"
                    .into(),
            ));
        }
        match DType::from_numpy(s).or_else(|| DType::parse_descr(s)) {
            Some((d, ByteOrder::Little)) => Ok(d),
            Some((_, ByteOrder::Big)) => Err(ParseDTypeError(format!(
                "dtype '{s}' is big-endian: mmrun writes native little-endian files"
            ))),
            None => Err(ParseDTypeError(format!(
                "unknown dtype '{s}' (expected one of b1, i1, i2, i4, i8, u1, u2, u4, u8, f2, f4, f8 or a NumPy name such as float32)"
            ))),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.numpy_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_spellings_parse() {
        let cases = [
            ("f4", DType::F32),
            ("float32", DType::F32),
            ("f32", DType::F32),
            ("<f4", DType::F32),
            ("=f8", DType::F64),
            ("f8", DType::F64),
            ("i8", DType::I64),
            ("i1", DType::I8),
            ("u8", DType::U64),
            ("u1", DType::U8),
            ("|u1", DType::U8),
            ("b1", DType::Bool),
            ("bool", DType::Bool),
            ("f2", DType::F16),
            ("float16", DType::F16),
            ("i32", DType::I32),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<DType>(), Ok(want), "{s}");
        }
    }

    #[test]
    fn bad_spellings_are_refused() {
        for s in ["f16", "c8", "O", "x4", "", "<U10", ">f4", "f3", "i128"] {
            assert!(s.parse::<DType>().is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn descr_round_trips() {
        for d in DType::ALL {
            assert_eq!(DType::parse_descr(&d.descr()), Some((d, ByteOrder::Little)));
        }
        assert_eq!(
            DType::parse_descr(">f8"),
            Some((DType::F64, ByteOrder::Big))
        );
        assert_eq!(
            DType::parse_descr(">u1"),
            Some((DType::U8, ByteOrder::Little))
        );
        assert_eq!(DType::Bool.descr(), "|b1");
        assert_eq!(DType::F16.descr(), "<f2");
    }
}
