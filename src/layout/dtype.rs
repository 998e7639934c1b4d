//! Element types: NumPy's names for them, their sizes and `.npy` descrs.
//!
//! mmrun speaks NumPy's dtype language so a user can copy a dtype from their
//! Python code: `f4`, `float32`, `<f4`, `i8` (which is int64, as in NumPy).
//! Bit-size aliases (`f32`, `i32`, `u16`) that NumPy does not accept are taken
//! too where they cannot be mistaken for a NumPy spelling; `f16` is refused
//! because NumPy reads it as a 16-byte float.
//!
//! Beside the bool, integer and float types the kernels compute on, a
//! [`DType`] names every other fixed-size dtype `np.save` writes — complex,
//! `float128`, datetime64/timedelta64 with their unit, fixed bytes `S`,
//! unicode `U` and void `V` — as layout only: mmrun can create such a file
//! and lay out its rows for `mmrun exec`, and `info` describes it, while the
//! computing kernels refuse it ([`DType::is_computable`]). Structured
//! dtypes have no [`DType`]: `info` describes them from the header alone.

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
    /// `c8`: two `f4`, real then imaginary. Layout only.
    C64,
    /// `c16`: two `f8`. Layout only.
    C128,
    /// `f16` in a descr, `g`: x87 extended precision padded to 16 bytes,
    /// NumPy's `longdouble` on x86-64 Linux. Layout only.
    F128,
    /// `c32`, `G`: two `float128`. Layout only.
    C256,
    /// `M8[unit]`: NumPy's datetime64, an `i8` count of units since the
    /// epoch. Layout only.
    DateTime64(TimeUnit),
    /// `m8[unit]`: NumPy's timedelta64. Layout only.
    TimeDelta64(TimeUnit),
    /// `S<n>`: fixed-size bytes, NUL-padded. Layout only.
    Bytes(u32),
    /// `U<n>`: `n` UCS-4 code points (4 bytes each). Layout only.
    Str(u32),
    /// `V<n>`: `n` opaque bytes. Layout only.
    Void(u32),
}

/// The unit of a datetime64 or timedelta64: a multiple of a base unit
/// (`[10ms]`), or generic (`M8` with no unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeUnit {
    /// The multiple (1 for `[ms]`, 10 for `[10ms]`); 1 for generic.
    pub count: u32,
    /// Index into [`TIME_UNITS`]; 0 is generic.
    pub base: u8,
}

/// NumPy's datetime units, in its order; `""` is the generic unit.
pub const TIME_UNITS: [&str; 14] = [
    "", "Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as",
];

impl TimeUnit {
    /// Reads `ns`, `10ms`, `μs` (NumPy's other spelling of `us`) or the
    /// empty generic unit.
    pub fn parse(text: &str) -> Option<TimeUnit> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (count, base) = text.split_at(digits);
        let base = if base == "μs" { "us" } else { base };
        let base = TIME_UNITS.iter().position(|u| *u == base)? as u8;
        let count: u32 = if count.is_empty() {
            1
        } else {
            count.parse().ok().filter(|&c| c > 0)?
        };
        if base == 0 && digits > 0 {
            return None;
        }
        Some(TimeUnit { count, base })
    }

    /// The unit as NumPy's descr writes it inside the brackets.
    pub fn text(self) -> String {
        let base = TIME_UNITS[usize::from(self.base).min(TIME_UNITS.len() - 1)];
        if self.count == 1 || self.base == 0 {
            base.to_string()
        } else {
            format!("{}{base}", self.count)
        }
    }
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
            DType::I64 | DType::U64 | DType::F64 | DType::C64 => 8,
            DType::C128 | DType::F128 => 16,
            DType::C256 => 32,
            DType::DateTime64(_) | DType::TimeDelta64(_) => 8,
            DType::Bytes(n) | DType::Void(n) => u64::from(n),
            DType::Str(n) => 4 * u64::from(n),
        }
    }

    /// NumPy's kind character: `b`, `i`, `u`, `f`, `c`, `M`, `m`, `S`,
    /// `U` or `V`.
    pub fn kind(self) -> char {
        match self {
            DType::Bool => 'b',
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => 'i',
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => 'u',
            DType::F16 | DType::F32 | DType::F64 | DType::F128 => 'f',
            DType::C64 | DType::C128 | DType::C256 => 'c',
            DType::DateTime64(_) => 'M',
            DType::TimeDelta64(_) => 'm',
            DType::Bytes(_) => 'S',
            DType::Str(_) => 'U',
            DType::Void(_) => 'V',
        }
    }

    /// Whether mmrun's kernels (fill, apply, reduce, convert, verify)
    /// compute on this dtype: bool, the integers, f2, f4 and f8. The other
    /// dtypes are layout only: `create`, `exec` and `info` take them.
    pub fn is_computable(self) -> bool {
        matches!(
            self,
            DType::Bool
                | DType::I8
                | DType::I16
                | DType::I32
                | DType::I64
                | DType::U8
                | DType::U16
                | DType::U32
                | DType::U64
                | DType::F16
                | DType::F32
                | DType::F64
        )
    }

    /// Whether this is `c8` or `c16`, which `fill --value`/`--arange` and
    /// `convert` compute on.
    pub fn is_complex(self) -> bool {
        matches!(self, DType::C64 | DType::C128)
    }

    /// Refuses a layout-only dtype for the work of `command` (`fill`,
    /// `apply` …), with what to do instead.
    pub fn check_computable(self, command: &str) -> Result<(), String> {
        if self.is_computable() {
            return Ok(());
        }
        Err(format!(
            "{command} does not compute on {self} ({}): dtype not supported by mmrun's kernels (bool, integer and float arrays); \
             a program of yours can write it through mmrun exec FILE -- PROGRAM",
            self.descr()
        ))
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        self.kind() == 'f'
    }

    /// NumPy's descr for the little-endian (native here) form: `<f4`, `|u1`.
    pub fn descr(self) -> String {
        self.descr_with(ByteOrder::Little)
    }

    /// NumPy's descr in the given byte order, as `np.dtype(..).str`
    /// prints it (which is what `np.save` writes): `<f4`, `|u1`, `<M8[ns]`,
    /// `|S8`, `<U4`.
    pub fn descr_with(self, order: ByteOrder) -> String {
        let no_order = match self {
            DType::Bytes(_) | DType::Void(_) => true,
            DType::Str(_) => false,
            _ => self.itemsize() == 1,
        };
        let prefix = if no_order {
            '|'
        } else if order == ByteOrder::Big {
            '>'
        } else {
            '<'
        };
        match self {
            DType::DateTime64(u) | DType::TimeDelta64(u) if u.base == 0 => {
                format!("{prefix}{}8", self.kind())
            }
            DType::DateTime64(u) | DType::TimeDelta64(u) => {
                format!("{prefix}{}8[{}]", self.kind(), u.text())
            }
            DType::Bytes(n) | DType::Str(n) | DType::Void(n) => {
                format!("{prefix}{}{n}", self.kind())
            }
            _ => format!("{prefix}{}{}", self.kind(), self.itemsize()),
        }
    }

    /// NumPy's name: `float32`, `bool`, `uint8`, `complex64`,
    /// `datetime64[ns]`, `bytes64` (as `str(np.dtype(..))` prints it for
    /// the numeric ones and `np.dtype(..).name` for the others).
    pub fn numpy_name(self) -> String {
        let fixed = match self {
            DType::C64 => "complex64",
            DType::C128 => "complex128",
            DType::F128 => "float128",
            DType::C256 => "complex256",
            DType::DateTime64(u) | DType::TimeDelta64(u) => {
                let base = if matches!(self, DType::DateTime64(_)) {
                    "datetime64"
                } else {
                    "timedelta64"
                };
                return if u.base == 0 {
                    base.to_string()
                } else {
                    format!("{base}[{}]", u.text())
                };
            }
            DType::Bytes(_) => return format!("bytes{}", self.itemsize() * 8),
            DType::Str(_) => return format!("str{}", self.itemsize() * 8),
            DType::Void(_) => return format!("void{}", self.itemsize() * 8),
            numeric => numeric.real_name(),
        };
        fixed.to_string()
    }

    fn real_name(self) -> &'static str {
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
            _ => "",
        }
    }

    fn from_kind_size(kind: char, size: u64) -> Option<DType> {
        match (kind, size) {
            ('c', 8) => return Some(DType::C64),
            ('c', 16) => return Some(DType::C128),
            ('c', 32) => return Some(DType::C256),
            ('f', 16) => return Some(DType::F128),
            _ => {}
        }
        DType::ALL
            .into_iter()
            .find(|d| d.kind() == kind && d.itemsize() == size)
    }

    /// The layout-only spellings `np.dtype` takes after an optional byte
    /// order: `M8[ns]`, `m8`, `S8`, `a8`, `U4`, `V16`. Sizes of 0 (NumPy's
    /// flexible, unsized `S`/`U`/`V`) are refused: a file needs a size.
    fn from_flexible(rest: &str) -> Option<DType> {
        let kind = rest.chars().next()?;
        let body = &rest[kind.len_utf8()..];
        let count = |t: &str| -> Option<u32> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
                .filter(|&n: &u32| n > 0 && n <= MAX_FLEXIBLE)
        };
        match kind {
            'M' | 'm' => {
                let (size, unit) = match body.find('[') {
                    Some(at) => (
                        &body[..at],
                        body[at..].strip_prefix('[')?.strip_suffix(']')?,
                    ),
                    None => (body, ""),
                };
                if !(size.is_empty() || size == "8") {
                    return None;
                }
                let unit = TimeUnit::parse(unit)?;
                Some(if kind == 'M' {
                    DType::DateTime64(unit)
                } else {
                    DType::TimeDelta64(unit)
                })
            }
            'S' | 'a' => count(body).map(DType::Bytes),
            'U' => count(body).map(DType::Str),
            'V' => count(body).map(DType::Void),
            _ => None,
        }
    }

    /// Layout-only NumPy names: `complex64`, `datetime64[ns]`, `bytes64`
    /// (bits, as `np.dtype('bytes64')` reads it), `str128`, `void32`.
    fn from_flexible_name(text: &str) -> Option<DType> {
        let simple = match text {
            "complex64" | "csingle" => Some(DType::C64),
            "complex128" | "complex" | "cdouble" => Some(DType::C128),
            "complex256" | "clongdouble" => Some(DType::C256),
            "float128" | "longdouble" => Some(DType::F128),
            _ => None,
        };
        if simple.is_some() {
            return simple;
        }
        for (base, dt) in [("datetime64", 'M'), ("timedelta64", 'm')] {
            if let Some(rest) = text.strip_prefix(base) {
                return DType::from_flexible(&format!("{dt}8{rest}"));
            }
        }
        for (base, kind) in [("bytes", 'S'), ("str", 'U'), ("void", 'V')] {
            if let Some(bits) = text.strip_prefix(base) {
                let bits: u64 = bits.parse().ok()?;
                let unit = if kind == 'U' { 32 } else { 8 };
                if bits == 0 || !bits.is_multiple_of(unit) {
                    return None;
                }
                return DType::from_flexible(&format!("{kind}{}", bits / unit));
            }
        }
        None
    }

    /// Parses a `.npy` descr (`<f4`, `|b1`, `>i8`) into a dtype and byte
    /// order, by kind and size only (`<c8` too; not datetime or strings).
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
        if let Some(d) = by_name.or_else(|| DType::from_flexible_name(text)) {
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
            "g" => Some(DType::F128),
            "F" => Some(DType::C64),
            "D" => Some(DType::C128),
            "G" => Some(DType::C256),
            _ => None,
        };
        let dtype = match by_char.or_else(|| DType::from_flexible(rest)) {
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
        // One-byte types, bytes and void have no byte order, whatever the
        // prefix says.
        let order = if dtype.descr().starts_with('|') {
            ByteOrder::Little
        } else {
            order
        };
        Some((dtype, order))
    }
}

/// Largest count in `S<n>`, `U<n>` and `V<n>` mmrun takes: NumPy's itemsize
/// is a C `int`, so `U` of more than `i32::MAX / 4` is refused by NumPy too.
const MAX_FLEXIBLE: u32 = (i32::MAX / 4) as u32;

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
                "unknown dtype '{s}' (expected one of b1, i1, i2, i4, i8, u1, u2, u4, u8, f2, f4, f8, c8, c16, M8[unit], m8[unit], S<n>, U<n>, V<n> or a NumPy name such as float32)"
            ))),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.numpy_name())
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
        for s in [
            "f16",
            "O",
            "x4",
            "",
            ">U10",
            ">f4",
            "f3",
            "i128",
            "S0",
            "U",
            "M8[xs]",
            "M4",
            "S-1",
            "datetime64[3]",
            "bytes7",
        ] {
            assert!(s.parse::<DType>().is_err(), "{s} should be refused");
        }
    }

    #[test]
    fn layout_only_dtypes_parse_as_np_dtype_reads_them() {
        let ns = TimeUnit { count: 1, base: 10 };
        let cases = [
            ("c8", DType::C64, "<c8"),
            ("complex64", DType::C64, "<c8"),
            ("F", DType::C64, "<c8"),
            ("complex", DType::C128, "<c16"),
            ("<c16", DType::C128, "<c16"),
            ("g", DType::F128, "<f16"),
            ("float128", DType::F128, "<f16"),
            ("M8[ns]", DType::DateTime64(ns), "<M8[ns]"),
            ("datetime64[ns]", DType::DateTime64(ns), "<M8[ns]"),
            ("<m8[ns]", DType::TimeDelta64(ns), "<m8[ns]"),
            (
                "M8[10ms]",
                DType::DateTime64(TimeUnit { count: 10, base: 8 }),
                "<M8[10ms]",
            ),
            (
                "M8[μs]",
                DType::DateTime64(TimeUnit { count: 1, base: 9 }),
                "<M8[us]",
            ),
            (
                "M8",
                DType::DateTime64(TimeUnit { count: 1, base: 0 }),
                "<M8",
            ),
            ("S8", DType::Bytes(8), "|S8"),
            ("|S8", DType::Bytes(8), "|S8"),
            ("a3", DType::Bytes(3), "|S3"),
            ("bytes64", DType::Bytes(8), "|S8"),
            ("U4", DType::Str(4), "<U4"),
            ("<U1", DType::Str(1), "<U1"),
            ("str128", DType::Str(4), "<U4"),
            ("V16", DType::Void(16), "|V16"),
        ];
        for (s, want, descr) in cases {
            assert_eq!(s.parse::<DType>(), Ok(want), "{s}");
            assert_eq!(want.descr(), descr, "{s}");
            assert_eq!(DType::from_numpy(descr), Some((want, ByteOrder::Little)));
            assert!(!want.is_computable());
        }
        assert_eq!(DType::Str(4).itemsize(), 16);
        assert_eq!(
            DType::from_numpy(">U4"),
            Some((DType::Str(4), ByteOrder::Big))
        );
        assert_eq!(
            DType::from_numpy(">S4"),
            Some((DType::Bytes(4), ByteOrder::Little))
        );
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
