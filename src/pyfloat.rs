//! Numbers as Python and NumPy print them: `repr(float)` (shortest
//! round-trip digits, exponent form below 1e-4 and from 1e16, `nan`,
//! `inf`) and `str(np.float32(x))`. Reports and `mmrun reduce`'s one-number
//! output use them, so a result reads as NumPy's would.

/// `v` as Python prints a float (`repr`): shortest round-trip digits,
/// exponent form below 1e-4 and from 1e16, `nan`, `inf`.
pub fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = v.abs();
    if a == 0.0 || (1e-4..1e16).contains(&a) {
        let s = format!("{v:?}");
        return s;
    }
    // `{:e}` gives the shortest round-trip digits: 1.5e300, 1e-7.
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').expect("LowerExp has an exponent");
    let exp: i32 = exp.parse().expect("LowerExp exponent");
    format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// A float32 (or float16, widened) as NumPy prints it: the shortest digits
/// that round-trip in float32, in Python's float notation.
pub fn numpy_f32(v: f32) -> String {
    let shortest: f64 = format!("{v:e}").parse().unwrap_or(v as f64);
    python_float(shortest)
}

#[cfg(test)]
mod tests {
    use super::{numpy_f32, python_float};

    #[test]
    fn floats_print_as_python_does() {
        assert_eq!(python_float(0.1), "0.1");
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1.5e-7), "1.5e-07");
        assert_eq!(python_float(-2.5e300), "-2.5e+300");
        assert_eq!(python_float(f64::NAN), "nan");
        assert_eq!(python_float(123456.75), "123456.75");
        // str(np.float32(0.1)) and str(np.float32(1e-5))
        assert_eq!(numpy_f32(0.1), "0.1");
        assert_eq!(numpy_f32(1e-5), "1e-05");
    }
}
