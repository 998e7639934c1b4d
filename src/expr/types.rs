//! NumPy 2 typing: dtype promotion (`np.result_type`), NEP 50 weak Python
//! scalars (int, float and complex), and the loop dtypes ufuncs pick.
//!
//! Kept apart from code generation so the rules can be read (and tested)
//! against NumPy's tables in one place.

use super::elem::{f64_to_f16, Scalar, C32, C64};
use super::pyval::PyVal;
use crate::layout::DType;

/// `np.result_type(a, b)` for two arrays.
pub(crate) fn promote(a: DType, b: DType) -> DType {
    use DType::*;
    if a == b {
        return a;
    }
    if a == Bool {
        return b;
    }
    if b == Bool {
        return a;
    }
    let (ka, kb) = (a.kind(), b.kind());
    let (sa, sb) = (a.itemsize(), b.itemsize());
    if ka == 'c' || kb == 'c' {
        // The complex dtype whose parts hold the other operand as a float.
        let (c, other) = if ka == 'c' { (a, b) } else { (b, a) };
        let part = if other.is_complex() {
            other.itemsize() / 2
        } else {
            promote(other, DType::F16).itemsize()
        };
        return if part.max(c.itemsize() / 2) > 4 {
            C128
        } else {
            C64
        };
    }
    if ka == kb {
        return if sa >= sb { a } else { b };
    }
    match (ka, kb) {
        ('f', _) | (_, 'f') => {
            let (f, int) = if ka == 'f' { (a, b) } else { (b, a) };
            let need = match int.itemsize() {
                1 => F16,
                2 => F32,
                _ => F64,
            };
            if need.itemsize() >= f.itemsize() {
                need
            } else {
                f
            }
        }
        _ => {
            let (s, u) = if ka == 'i' { (a, b) } else { (b, a) };
            if u.itemsize() < s.itemsize() {
                s
            } else {
                match u.itemsize() {
                    1 => I16,
                    2 => I32,
                    4 => I64,
                    _ => F64,
                }
            }
        }
    }
}

/// The kind of a weak Python scalar, for promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WeakKind {
    Int,
    Float,
    Complex,
}

/// Result dtype of an operation on `strong` arrays/NumPy scalars (at least
/// one) and weak Python scalars of `weak` kinds (NEP 50).
pub(crate) fn promote_weak(strong: DType, weak: Option<WeakKind>) -> DType {
    match weak {
        None => strong,
        Some(WeakKind::Complex) if strong.is_complex() => strong,
        // A Python complex with a float array: the complex of its size.
        Some(WeakKind::Complex) if strong.is_float() => promote(strong, DType::C64),
        Some(WeakKind::Complex) => DType::C128,
        Some(WeakKind::Float) if !strong.is_float() && !strong.is_complex() => DType::F64,
        Some(WeakKind::Int) if strong == DType::Bool => DType::I64,
        Some(_) => strong,
    }
}

/// The dtype NumPy gives an operation whose operands are all Python scalars
/// (the default dtype of the highest kind).
pub(crate) fn default_dtype(vals: &[PyVal]) -> DType {
    let mut dt = DType::Bool;
    for v in vals {
        match v {
            PyVal::Complex(..) => return DType::C128,
            PyVal::Float(_) => dt = DType::F64,
            PyVal::Int(_) if dt != DType::F64 => dt = DType::I64,
            PyVal::Int(_) => {}
            PyVal::Bool(_) => {}
        }
    }
    dt
}

/// The weak kind of a Python scalar (`bool` is not weak: it is `np.bool`).
pub(crate) fn weak_kind(v: PyVal) -> Option<WeakKind> {
    match v {
        PyVal::Bool(_) => None,
        PyVal::Int(_) => Some(WeakKind::Int),
        PyVal::Float(_) => Some(WeakKind::Float),
        PyVal::Complex(..) => Some(WeakKind::Complex),
    }
}

/// Inclusive value range of an integer dtype.
pub(crate) fn int_range(dt: DType) -> (i128, i128) {
    match dt {
        DType::Bool => (0, 1),
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        _ => (i128::MIN, i128::MAX),
    }
}

/// An integer (in range) as a scalar of an integer dtype.
pub(crate) fn int_scalar(v: i128, dt: DType) -> Scalar {
    match dt {
        DType::Bool => Scalar::Bool(v != 0),
        DType::I8 => Scalar::I8(v as i8),
        DType::I16 => Scalar::I16(v as i16),
        DType::I32 => Scalar::I32(v as i32),
        DType::I64 => Scalar::I64(v as i64),
        DType::U8 => Scalar::U8(v as u8),
        DType::U16 => Scalar::U16(v as u16),
        DType::U32 => Scalar::U32(v as u32),
        DType::U64 => Scalar::U64(v as u64),
        DType::F16 => Scalar::F16(f64_to_f16(v as f64)),
        DType::F32 => Scalar::F32(v as f64 as f32),
        DType::F64 => Scalar::F64(v as f64),
        DType::C64 => Scalar::C64(C32 {
            re: v as f64 as f32,
            im: 0.0,
        }),
        DType::C128 => Scalar::C128(C64 {
            re: v as f64,
            im: 0.0,
        }),
        other => unreachable!("no integer scalar of {other}"),
    }
}

/// A Python float as a scalar of a float dtype (Python float → C double →
/// the dtype, rounding to nearest even).
pub(crate) fn float_scalar(v: f64, dt: DType) -> Scalar {
    match dt {
        DType::F16 => Scalar::F16(f64_to_f16(v)),
        DType::F32 => Scalar::F32(v as f32),
        DType::C64 | DType::C128 => complex_scalar(v, 0.0, dt),
        _ => Scalar::F64(v),
    }
}

/// A Python complex as a scalar of a complex dtype (each part rounded to
/// nearest even).
pub(crate) fn complex_scalar(re: f64, im: f64, dt: DType) -> Scalar {
    match dt {
        DType::C64 => Scalar::C64(C32 {
            re: re as f32,
            im: im as f32,
        }),
        _ => Scalar::C128(C64 { re, im }),
    }
}

/// NumPy's `TypeError` for a Python complex where a real number is needed.
fn complex_to_real(dt: DType) -> String {
    let what = if dt.is_float() { "float" } else { "int" };
    format!(
        "{what}() argument must be a string or a real number, not 'complex' (a Python complex does not convert to {dt}; take .real or abs() of it)"
    )
}

/// How a weak Python integer that does not fit the target dtype is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntFit {
    /// Refused (`OverflowError`), as ufuncs do.
    Check,
    /// A lower bound of `clip` below the range is the range's minimum.
    ClampLow,
    /// An upper bound of `clip` above the range is the range's maximum.
    ClampHigh,
    /// Wrapped as a C cast would, if it fits int64 or uint64 (`np.where`).
    Wrap,
}

/// Converts a Python scalar to `dt` as NumPy converts an operand whose
/// promoted dtype is `dt` (NEP 50).
pub(crate) fn py_to(v: PyVal, dt: DType, fit: IntFit) -> Result<Scalar, String> {
    match v {
        PyVal::Bool(b) => Ok(Scalar::Bool(b).cast(dt)),
        PyVal::Complex(re, im) if dt.is_complex() => Ok(complex_scalar(re, im, dt)),
        PyVal::Complex(re, im) if dt == DType::Bool => Ok(Scalar::Bool(re != 0.0 || im != 0.0)),
        PyVal::Complex(..) => Err(complex_to_real(dt)),
        PyVal::Float(f) => {
            if dt.is_float() || dt.is_complex() {
                Ok(float_scalar(f, dt))
            } else {
                Ok(Scalar::F64(f).cast(dt))
            }
        }
        PyVal::Int(i) => {
            if dt.is_float() || dt.is_complex() {
                return Ok(int_scalar(i, dt));
            }
            let (lo, hi) = int_range(dt);
            let i = match fit {
                IntFit::ClampLow if i < lo => lo,
                IntFit::ClampHigh if i > hi => hi,
                IntFit::Wrap => {
                    if i < i64::MIN as i128 || i > u64::MAX as i128 {
                        return Err(format!("Python int {i} too large to convert to C long"));
                    }
                    return Ok(Scalar::U64(i as u64).cast(dt));
                }
                _ => i,
            };
            if i < lo || i > hi {
                if dt == DType::Bool {
                    return Ok(Scalar::Bool(i != 0));
                }
                return Err(format!("Python integer {i} out of bounds for {dt}"));
            }
            Ok(int_scalar(i, dt))
        }
    }
}

/// A lone Python scalar turned into a NumPy scalar (`np.asarray(v)`), as a
/// ufunc does with an all-Python argument list of one.
pub(crate) fn py_to_numpy(v: PyVal) -> Result<Scalar, String> {
    match v {
        PyVal::Bool(b) => Ok(Scalar::Bool(b)),
        PyVal::Float(f) => Ok(Scalar::F64(f)),
        PyVal::Complex(re, im) => Ok(Scalar::C128(C64 { re, im })),
        PyVal::Int(i) => {
            if i >= i64::MIN as i128 && i <= i64::MAX as i128 {
                Ok(Scalar::I64(i as i64))
            } else if i >= 0 && i <= u64::MAX as i128 {
                Ok(Scalar::U64(i as u64))
            } else {
                Err(format!("Python int {i} too large to convert to C long"))
            }
        }
    }
}

/// The float dtype of the loop NumPy picks for `sqrt`, `exp`, `sin`… on `dt`
/// (the smallest float the input casts to safely).
pub(crate) fn float_loop(dt: DType) -> DType {
    match dt {
        DType::Bool | DType::I8 | DType::U8 | DType::F16 => DType::F16,
        DType::I16 | DType::U16 | DType::F32 => DType::F32,
        DType::C64 | DType::C128 => dt,
        _ => DType::F64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;
    use DType::*;

    #[test]
    fn promotion_matches_numpy_result_type() {
        let cases = [
            (I8, U8, I16),
            (I64, U64, F64),
            (F16, I16, F32),
            (F32, I32, F64),
            (F32, I64, F64),
            (F16, I8, F16),
            (F16, U8, F16),
            (U32, I32, I64),
            (U16, I8, I32),
            (U8, I16, I16),
            (U64, I8, F64),
            (Bool, U8, U8),
            (Bool, F16, F16),
            (F32, U16, F32),
            (F16, F64, F64),
            (U32, F16, F64),
            (C64, F32, C64),
            (C64, F16, C64),
            (C64, F64, C128),
            (C64, I16, C64),
            (C64, U16, C64),
            (C64, I32, C128),
            (C64, Bool, C64),
            (C64, C128, C128),
            (C128, F16, C128),
        ];
        for (a, b, want) in cases {
            assert_eq!(promote(a, b), want, "{a} + {b}");
            assert_eq!(promote(b, a), want, "{b} + {a}");
        }
    }

    #[test]
    fn weak_scalars_follow_nep50() {
        assert_eq!(promote_weak(I8, Some(WeakKind::Int)), I8);
        assert_eq!(promote_weak(Bool, Some(WeakKind::Int)), I64);
        assert_eq!(promote_weak(I8, Some(WeakKind::Float)), F64);
        assert_eq!(promote_weak(F16, Some(WeakKind::Float)), F16);
        assert_eq!(promote_weak(C64, Some(WeakKind::Float)), C64);
        assert_eq!(promote_weak(F32, Some(WeakKind::Complex)), C64);
        assert_eq!(promote_weak(F16, Some(WeakKind::Complex)), C64);
        assert_eq!(promote_weak(F64, Some(WeakKind::Complex)), C128);
        assert_eq!(promote_weak(I8, Some(WeakKind::Complex)), C128);
        assert_eq!(promote_weak(Bool, Some(WeakKind::Complex)), C128);
        assert!(py_to(PyVal::Int(300), I8, IntFit::Check).is_err());
        assert_eq!(py_to(PyVal::Int(300), I8, IntFit::Wrap), Ok(Scalar::I8(44)));
        assert_eq!(
            py_to(PyVal::Int(-300), I8, IntFit::ClampLow),
            Ok(Scalar::I8(-128))
        );
        assert!(py_to(PyVal::Int(-300), I8, IntFit::ClampHigh).is_err());
        assert_eq!(
            py_to(PyVal::Int(100000), F16, IntFit::Check),
            Ok(Scalar::F16(f16::INFINITY))
        );
    }
}
