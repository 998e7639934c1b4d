//! The fill kernel: constant values, `arange`, and NumPy-reproducible random
//! streams, written straight into a worker's rows.
//!
//! Every element is a function of its global flat index alone (the random
//! streams are seekable: see [`crate::rng`]), so the bytes never depend on
//! the worker count, the plan's boundaries or the spawn mode. `--value` is
//! converted once, before any worker starts, the way NumPy converts a Python
//! scalar; a value NumPy would refuse for the dtype is refused here.

use half::f16;
use serde::{Deserialize, Serialize};

use super::{AnyRowsMut, Kernel, KernelSpec};
use crate::error::{Error, Result};
use crate::layout::DType;
use crate::rng::Philox;

/// What to fill with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FillKind {
    /// One value everywhere, as the literal the user gave.
    Value {
        /// The literal, e.g. `1`, `-0.5`, `nan`, `true`.
        value: String,
    },
    /// `np.arange(prod(shape)).astype(dtype).reshape(shape)`.
    Arange,
    /// `Generator(Philox(seed)).random(shape, dtype)` (floats), the raw
    /// stream's low bits (integers), its lowest bit (bool).
    Uniform {
        /// The job's seed.
        #[serde(with = "seed_string")]
        seed: u128,
    },
    /// Box–Muller on pairs of the raw stream (float dtypes only).
    Normal {
        /// The job's seed.
        #[serde(with = "seed_string")]
        seed: u128,
    },
}

/// Seeds go through JSON as decimal strings: they may exceed 2^53.
mod seed_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(seed: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&seed.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A value converted to the file's dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    Int(i128),
    Float(f64),
    Bool(bool),
    /// Real and imaginary parts, already rounded to the dtype's precision.
    Complex(f64, f64),
}

/// The fill kernel.
#[derive(Debug, Clone)]
pub struct Fill {
    kind: FillKind,
    dtype: DType,
    scalar: Option<Scalar>,
}

impl Fill {
    /// A fill of `kind` for files of `dtype`; refuses values NumPy would
    /// refuse for the dtype and `normal` for non-float dtypes.
    pub fn new(kind: FillKind, dtype: DType) -> Result<Self> {
        let what = match &kind {
            FillKind::Value { .. } => "fill --value",
            FillKind::Arange => "fill --arange",
            FillKind::Uniform { .. } | FillKind::Normal { .. } => "fill --random",
        };
        // Constants and arange are defined for complex too; NumPy's
        // Generator draws no complex numbers.
        let complex_ok = dtype.is_complex() && !what.ends_with("--random");
        if !complex_ok {
            dtype.check_computable(what).map_err(Error::refused)?;
        }
        let scalar = match &kind {
            FillKind::Value { value } => Some(convert_value(value, dtype)?),
            FillKind::Normal { .. } if !dtype.is_float() => {
                return Err(Error::refused(format!(
                    "--random normal needs a float dtype (f2, f4 or f8), not {dtype}"
                )))
            }
            _ => None,
        };
        Ok(Fill {
            kind,
            dtype,
            scalar,
        })
    }

    /// What this fill writes.
    pub fn kind(&self) -> &FillKind {
        &self.kind
    }
}

/// Registry constructor.
pub(super) fn build(params: &serde_json::Value, dtype: DType) -> Result<Box<dyn Kernel>> {
    let kind: FillKind = serde_json::from_value(params.clone())
        .map_err(|e| Error::refused(format!("bad fill parameters: {e}")))?;
    Ok(Box::new(Fill::new(kind, dtype)?))
}

/// Converts a literal as NumPy converts a Python scalar assigned into an
/// array of `dtype`.
fn convert_value(text: &str, dtype: DType) -> Result<Scalar> {
    let t = text.trim();
    let refuse = |why: String| Error::refused(format!("--value {text}: {why}"));
    match dtype.kind() {
        'c' => {
            let (re, im) = parse_complex(t).ok_or_else(|| {
                refuse(format!(
                    "{dtype} takes a number or a complex literal such as 1+2j, 2j, nan+infj"
                ))
            })?;
            let narrow = |v: f64| {
                if dtype == DType::C64 {
                    f64::from(v as f32)
                } else {
                    v
                }
            };
            let (re, im) = (narrow(re), narrow(im));
            let literal_inf = t.to_ascii_lowercase().contains("inf");
            if (re.is_infinite() || im.is_infinite()) && !literal_inf {
                return Err(refuse(format!("overflows {dtype}")));
            }
            Ok(Scalar::Complex(re, im))
        }
        'b' => match t.to_ascii_lowercase().as_str() {
            "1" | "true" => Ok(Scalar::Bool(true)),
            "0" | "false" => Ok(Scalar::Bool(false)),
            _ => Err(refuse("bool takes 0, 1, true or false".into())),
        },
        'i' | 'u' => {
            let digits = t.strip_prefix('+').unwrap_or(t).replace('_', "");
            let v: i128 = digits
                .parse()
                .map_err(|_| refuse(format!("{dtype} takes an integer literal")))?;
            let (lo, hi) = int_range(dtype);
            if v < lo || v > hi {
                return Err(refuse(format!("out of range for {dtype} ({lo}..={hi})")));
            }
            Ok(Scalar::Int(v))
        }
        _ => {
            let v: f64 = t
                .replace('_', "")
                .parse()
                .map_err(|_| refuse(format!("{dtype} takes a decimal number, nan or inf")))?;
            let literal_inf = t.to_ascii_lowercase().contains("inf");
            let narrowed = match dtype {
                DType::F16 => f16::from_f64(v).to_f64(),
                DType::F32 => v as f32 as f64,
                _ => v,
            };
            if narrowed.is_infinite() && !literal_inf {
                return Err(refuse(format!("overflows {dtype}")));
            }
            Ok(Scalar::Float(v))
        }
    }
}

/// Reads a number as Python's `complex(text)` does: `1`, `2j`, `-1.5e3J`,
/// `1+2j`, `(1-2j)`, `nan+infj`, `j`; no spaces inside.
fn parse_complex(text: &str) -> Option<(f64, f64)> {
    let t = text.trim();
    let t = match t.strip_prefix('(') {
        Some(inner) => inner.strip_suffix(')')?.trim(),
        None => t,
    };
    if t.is_empty() || t.contains(char::is_whitespace) || t.contains('_') {
        return None;
    }
    let float = |s: &str| -> Option<f64> {
        // Python's float(): digits, a dot, an exponent, nan, inf; not Rust's
        // other spellings ("infinity" is Python's too).
        let body = s.trim_start_matches(['+', '-']);
        let ok = !body.is_empty()
            && (body
                .bytes()
                .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
                || ["nan", "inf", "infinity"].contains(&body.to_ascii_lowercase().as_str()));
        if ok {
            s.parse().ok()
        } else {
            None
        }
    };
    let Some(imag) = t.strip_suffix(['j', 'J']) else {
        return Some((float(t)?, 0.0));
    };
    // The sign that starts the imaginary part: the last + or - that is not
    // the first character and does not follow an exponent's e.
    let b = imag.as_bytes();
    let split = (1..b.len())
        .rev()
        .find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E'));
    let (re, im) = match split {
        Some(i) => (float(&imag[..i])?, &imag[i..]),
        None => (0.0, imag),
    };
    let im = match im {
        "" | "+" => 1.0,
        "-" => -1.0,
        s => float(s)?,
    };
    Some((re, im))
}

fn int_range(dtype: DType) -> (i128, i128) {
    match dtype {
        DType::I8 => (i8::MIN.into(), i8::MAX.into()),
        DType::I16 => (i16::MIN.into(), i16::MAX.into()),
        DType::I32 => (i32::MIN.into(), i32::MAX.into()),
        DType::I64 => (i64::MIN.into(), i64::MAX.into()),
        DType::U8 => (0, u8::MAX.into()),
        DType::U16 => (0, u16::MAX.into()),
        DType::U32 => (0, u32::MAX.into()),
        _ => (0, u64::MAX.into()),
    }
}

/// One complex element's bytes, little-endian: `c8` rounds each part to
/// `f4` (to nearest, as NumPy's cast does).
fn complex_bytes(dtype: DType, re: f64, im: f64) -> Vec<u8> {
    if dtype == DType::C64 {
        [(re as f32).to_le_bytes(), (im as f32).to_le_bytes()].concat()
    } else {
        [re.to_le_bytes(), im.to_le_bytes()].concat()
    }
}

/// Writes `f(global flat index)` into every element.
fn by_index<T>(out: &mut [T], first: u64, f: impl Fn(u64) -> T) {
    for (i, v) in out.iter_mut().enumerate() {
        *v = f(first + i as u64);
    }
}

impl Kernel for Fill {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "fill".into(),
            params: serde_json::to_value(&self.kind).expect("fill parameters serialise"),
        }
    }

    fn elementwise(&self) -> bool {
        true
    }

    fn overwrites_blocks(&self) -> bool {
        true
    }

    fn splits_rows(&self) -> bool {
        true
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        use AnyRowsMut as A;
        match (&self.kind, self.scalar) {
            (FillKind::Value { .. }, Some(s)) => {
                match (rows, s) {
                    (A::Bool(mut r), Scalar::Bool(b)) => r.as_mut_slice().fill(u8::from(b)),
                    (A::I8(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as i8),
                    (A::I16(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as i16),
                    (A::I32(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as i32),
                    (A::I64(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as i64),
                    (A::U8(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as u8),
                    (A::U16(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as u16),
                    (A::U32(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as u32),
                    (A::U64(mut r), Scalar::Int(v)) => r.as_mut_slice().fill(v as u64),
                    (A::F16(mut r), Scalar::Float(v)) => r.as_mut_slice().fill(f16::from_f64(v)),
                    (A::F32(mut r), Scalar::Float(v)) => r.as_mut_slice().fill(v as f32),
                    (A::F64(mut r), Scalar::Float(v)) => r.as_mut_slice().fill(v),
                    (A::Opaque(d, mut r), Scalar::Complex(re, im)) if d.is_complex() => {
                        let one = complex_bytes(d, re, im);
                        for e in r.as_mut_slice().chunks_exact_mut(one.len()) {
                            e.copy_from_slice(&one);
                        }
                    }
                    _ => return Err(format!("fill value does not match dtype {}", self.dtype)),
                }
                Ok(())
            }
            (FillKind::Arange, _) => {
                // Indices go through int64 as np.arange's do, then cast.
                match rows {
                    A::Bool(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| u8::from(n != 0))
                    }
                    A::I8(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as i64 as i8)
                    }
                    A::I16(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as i64 as i16)
                    }
                    A::I32(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as i64 as i32)
                    }
                    A::I64(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as i64)
                    }
                    A::U8(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as u8)
                    }
                    A::U16(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as u16)
                    }
                    A::U32(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as u32)
                    }
                    A::U64(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n)
                    }
                    A::F16(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| f16::from_f64(n as i64 as f64))
                    }
                    A::F32(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as i64 as f32)
                    }
                    A::F64(mut r) => {
                        let f = r.first_element();
                        by_index(r.as_mut_slice(), f, |n| n as i64 as f64)
                    }
                    A::Opaque(d, mut r) if d.is_complex() => {
                        let size = d.itemsize() as usize;
                        let first = r.first_element() / size as u64;
                        for (i, e) in r.as_mut_slice().chunks_exact_mut(size).enumerate() {
                            // Through int64, as np.arange's values are.
                            let n = (first + i as u64) as i64 as f64;
                            e.copy_from_slice(&complex_bytes(d, n, 0.0));
                        }
                    }
                    A::Opaque(d, _) => return Err(format!("fill does not compute on {d}")),
                }
                Ok(())
            }
            (FillKind::Uniform { seed }, _) => {
                let g = Philox::new(*seed);
                match rows {
                    A::Bool(mut r) => g.fill_bool(r.first_element(), r.as_mut_slice()),
                    A::I8(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::I16(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::I32(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::I64(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::U8(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::U16(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::U32(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::U64(mut r) => g.fill_int(r.first_element(), r.as_mut_slice()),
                    A::F16(mut r) => g.fill_uniform_f16(r.first_element(), r.as_mut_slice()),
                    A::F32(mut r) => g.fill_uniform_f32(r.first_element(), r.as_mut_slice()),
                    A::F64(mut r) => g.fill_uniform_f64(r.first_element(), r.as_mut_slice()),
                    A::Opaque(d, _) => return Err(format!("fill does not compute on {d}")),
                }
                Ok(())
            }
            (FillKind::Normal { seed }, _) => {
                let g = Philox::new(*seed);
                match rows {
                    A::F16(mut r) => g.fill_normal_f16(r.first_element(), r.as_mut_slice()),
                    A::F32(mut r) => g.fill_normal_f32(r.first_element(), r.as_mut_slice()),
                    A::F64(mut r) => g.fill_normal_f64(r.first_element(), r.as_mut_slice()),
                    _ => {
                        return Err(format!(
                            "normal fill needs a float dtype, not {}",
                            self.dtype
                        ))
                    }
                }
                Ok(())
            }
            (FillKind::Value { .. }, None) => Err("fill value was not converted".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, dtype: DType) -> Result<Scalar> {
        convert_value(text, dtype)
    }

    #[test]
    fn values_numpy_refuses_are_refused() {
        assert!(value("300", DType::U8).is_err());
        assert!(value("-1", DType::U8).is_err());
        assert!(value("1.5", DType::I32).is_err());
        assert!(value("1e39", DType::F32).is_err());
        assert!(value("70000", DType::F16).is_err());
        assert!(value("2", DType::Bool).is_err());
        assert!(value("abc", DType::F64).is_err());
    }

    #[test]
    fn values_numpy_takes_are_converted() {
        assert_eq!(value("255", DType::U8).unwrap(), Scalar::Int(255));
        assert_eq!(value("-128", DType::I8).unwrap(), Scalar::Int(-128));
        assert_eq!(
            value("18446744073709551615", DType::U64).unwrap(),
            Scalar::Int(u64::MAX.into())
        );
        assert_eq!(value("true", DType::Bool).unwrap(), Scalar::Bool(true));
        assert!(matches!(value("nan", DType::F32).unwrap(), Scalar::Float(v) if v.is_nan()));
        assert_eq!(
            value("-inf", DType::F16).unwrap(),
            Scalar::Float(f64::NEG_INFINITY)
        );
        assert_eq!(value("0.1", DType::F32).unwrap(), Scalar::Float(0.1));
    }

    #[test]
    fn arange_wraps_like_astype() {
        let k = Fill::new(FillKind::Arange, DType::U8).unwrap();
        let mut data = [0u8; 4];
        k.run(AnyRowsMut::U8(super::super::RowsMut::new(
            &mut data, 127, 2,
        )))
        .unwrap();
        assert_eq!(data, [254, 255, 0, 1]);
    }

    #[test]
    fn normal_needs_floats() {
        assert!(Fill::new(FillKind::Normal { seed: 1 }, DType::I32).is_err());
        assert!(Fill::new(FillKind::Normal { seed: 1 }, DType::F16).is_ok());
    }
}
