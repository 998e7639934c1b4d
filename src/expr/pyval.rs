//! Python scalars: literal values and Python's own arithmetic on them.
//!
//! In `out[...] = EXPR` Python evaluates the literal-only parts of EXPR
//! (`2**-1`, `-128`, `1/3`, `True + True`) itself, before NumPy sees them,
//! and NumPy then treats the result as a *weak* scalar (NEP 50). So folding
//! literal subtrees must follow Python, not NumPy: arbitrary-size integers
//! (held here in `i128`; larger is refused), floor division and modulo with
//! the divisor's sign, `ZeroDivisionError`, `int ** negative` giving a float,
//! `bool` acting as an `int`, `complex` with CPython's own product,
//! quotient and power (`_Py_c_prod`, `_Py_c_quot`, `_Py_c_pow`) and no
//! ordering. Refusals carry Python's message.

use std::cmp::Ordering;

use super::parse::{BinOp, CmpOp};

/// A Python scalar value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PyVal {
    Bool(bool),
    Int(i128),
    Float(f64),
    /// A Python `complex`: real and imaginary parts.
    Complex(f64, f64),
}

const TOO_LARGE: &str = "integer result is too large (mmrun holds Python integers in 128 bits)";

impl PyVal {
    /// The value as an `int`, for arithmetic (`bool` is an `int`).
    fn as_int(self) -> Option<i128> {
        match self {
            PyVal::Bool(b) => Some(b as i128),
            PyVal::Int(v) => Some(v),
            PyVal::Float(_) | PyVal::Complex(..) => None,
        }
    }

    /// The value as a Python `float` (`float(v)`; the real part of a
    /// complex, whose callers check for complex first).
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            PyVal::Bool(b) => b as u8 as f64,
            PyVal::Int(v) => v as f64,
            PyVal::Float(f) => f,
            PyVal::Complex(re, _) => re,
        }
    }

    /// The value as a Python `complex` (`complex(v)`).
    pub(crate) fn as_complex(self) -> (f64, f64) {
        match self {
            PyVal::Complex(re, im) => (re, im),
            other => (other.as_f64(), 0.0),
        }
    }

    /// Python's name of the value's type, for messages.
    fn type_name(self) -> &'static str {
        match self {
            PyVal::Bool(_) => "bool",
            PyVal::Int(_) => "int",
            PyVal::Float(_) => "float",
            PyVal::Complex(..) => "complex",
        }
    }

    /// Python truthiness.
    pub(crate) fn truthy(self) -> bool {
        match self {
            PyVal::Bool(b) => b,
            PyVal::Int(v) => v != 0,
            PyVal::Float(f) => f != 0.0,
            PyVal::Complex(re, im) => re != 0.0 || im != 0.0,
        }
    }
}

/// Python's `divmod` for floats (CPython's `_float_div_mod`, which NumPy's
/// `npy_divmod` copies). `b` must not be zero.
pub(crate) fn float_divmod(a: f64, b: f64) -> (f64, f64) {
    let mut m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(b);
    }
    let fd = if div != 0.0 {
        let mut f = div.floor();
        if div - f > 0.5 {
            f += 1.0;
        }
        f
    } else {
        0.0f64.copysign(a / b)
    };
    (fd, m)
}

fn float_pow(a: f64, b: f64) -> Result<f64, String> {
    if b == 0.0 {
        return Ok(1.0);
    }
    if a.is_nan() || b.is_nan() {
        return Ok(a.powf(b));
    }
    if a == 0.0 && b < 0.0 {
        return Err("ZeroDivisionError: zero to a negative power".into());
    }
    if a < 0.0 && a.is_finite() && b.is_finite() && b.fract() != 0.0 {
        return Err(
            "a negative number to a fractional power gives a complex number in Python".into(),
        );
    }
    let r = a.powf(b);
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        return Err("OverflowError: numerical result out of range".into());
    }
    Ok(r)
}

/// CPython's `_Py_c_prod`.
pub(crate) fn c_prod(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
}

/// CPython's `_Py_c_quot` (Smith's method); `None` for a zero divisor.
fn c_quot(a: (f64, f64), b: (f64, f64)) -> Option<(f64, f64)> {
    let (abs_br, abs_bi) = (b.0.abs(), b.1.abs());
    if abs_br >= abs_bi {
        if abs_br == 0.0 {
            return None;
        }
        let ratio = b.1 / b.0;
        let denom = b.0 + b.1 * ratio;
        Some(((a.0 + a.1 * ratio) / denom, (a.1 - a.0 * ratio) / denom))
    } else if abs_bi >= abs_br {
        let ratio = b.0 / b.1;
        let denom = b.0 * ratio + b.1;
        Some(((a.0 * ratio + a.1) / denom, (a.1 * ratio - a.0) / denom))
    } else {
        Some((f64::NAN, f64::NAN))
    }
}

/// CPython's `complex.__pow__`: integral exponents up to 100 by repeated
/// products (`c_powi`), others through polar form (`_Py_c_pow`).
fn c_pow(a: (f64, f64), b: (f64, f64)) -> Result<(f64, f64), String> {
    if b.1 == 0.0 && b.0 == b.0.trunc() && b.0.abs() <= 100.0 {
        let n = b.0 as i64;
        let powu = |mut n: i64| {
            let (mut r, mut p) = ((1.0, 0.0), a);
            while n > 0 {
                if n & 1 == 1 {
                    r = c_prod(r, p);
                }
                n >>= 1;
                p = c_prod(p, p);
            }
            r
        };
        if n >= 0 {
            return Ok(powu(n));
        }
        return c_quot((1.0, 0.0), powu(-n))
            .ok_or_else(|| "ZeroDivisionError: zero to a negative power".to_string());
    }
    if b == (0.0, 0.0) {
        return Ok((1.0, 0.0));
    }
    if a == (0.0, 0.0) {
        if b.1 != 0.0 || b.0 < 0.0 {
            return Err("ZeroDivisionError: zero to a negative or complex power".into());
        }
        return Ok((0.0, 0.0));
    }
    let vabs = a.0.hypot(a.1);
    let mut len = vabs.powf(b.0);
    let at = a.1.atan2(a.0);
    let mut phase = at * b.0;
    if b.1 != 0.0 {
        len /= (at * b.1).exp();
        phase += b.1 * vabs.ln();
    }
    let r = (len * phase.cos(), len * phase.sin());
    if !(r.0.is_finite() && r.1.is_finite()) && a.0.is_finite() && a.1.is_finite() {
        return Err("OverflowError: complex exponentiation".into());
    }
    Ok(r)
}

/// Python's `a <op> b` where either operand is a `complex`.
fn complex_binop(op: BinOp, a: PyVal, b: PyVal) -> Result<PyVal, String> {
    let (x, y) = (a.as_complex(), b.as_complex());
    let r = match op {
        BinOp::Add => (x.0 + y.0, x.1 + y.1),
        BinOp::Sub => (x.0 - y.0, x.1 - y.1),
        BinOp::Mul => c_prod(x, y),
        BinOp::Div => {
            c_quot(x, y).ok_or_else(|| "ZeroDivisionError: complex division by zero".to_string())?
        }
        BinOp::Pow => c_pow(x, y)?,
        _ => {
            let sym = match op {
                BinOp::FloorDiv => "//",
                BinOp::Rem => "%",
                BinOp::BitAnd => "&",
                BinOp::BitOr => "|",
                BinOp::BitXor => "^",
                BinOp::Shl => "<<",
                _ => ">>",
            };
            return Err(format!(
                "TypeError: unsupported operand type(s) for {sym}: '{}' and '{}'",
                a.type_name(),
                b.type_name()
            ));
        }
    };
    Ok(PyVal::Complex(r.0, r.1))
}

/// Python's `a <op> b` for two literal values.
pub(crate) fn binop(op: BinOp, a: PyVal, b: PyVal) -> Result<PyVal, String> {
    if matches!(a, PyVal::Complex(..)) || matches!(b, PyVal::Complex(..)) {
        return complex_binop(op, a, b);
    }
    if let Some(r) = bitwise(op, a, b) {
        return r;
    }
    if let (Some(x), Some(y)) = (a.as_int(), b.as_int()) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div => {
                if y == 0 {
                    return Err("ZeroDivisionError: division by zero".into());
                }
                return Ok(PyVal::Float(x as f64 / y as f64));
            }
            BinOp::FloorDiv | BinOp::Rem => {
                if y == 0 {
                    return Err("ZeroDivisionError: integer division or modulo by zero".into());
                }
                let q = x.checked_div_euclid(y).ok_or(TOO_LARGE)?;
                // Euclidean division gives a non-negative remainder; Python's
                // remainder takes the divisor's sign.
                let (q, r) = {
                    let r = x - q * y;
                    if r != 0 && y < 0 {
                        (q - 1, r + y)
                    } else {
                        (q, r)
                    }
                };
                Some(if op == BinOp::FloorDiv { q } else { r })
            }
            BinOp::Pow => {
                if y < 0 {
                    return float_pow(x as f64, y as f64).map(PyVal::Float);
                }
                let e = u32::try_from(y).ok();
                match e {
                    Some(e) => x.checked_pow(e),
                    None if x == 0 || x == 1 => Some(x),
                    None if x == -1 => Some(if y % 2 == 0 { 1 } else { -1 }),
                    None => None,
                }
            }
            _ => unreachable!("bitwise operators are handled above"),
        };
        return r.map(PyVal::Int).ok_or_else(|| TOO_LARGE.to_string());
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            if y == 0.0 {
                return Err("ZeroDivisionError: float division by zero".into());
            }
            x / y
        }
        BinOp::FloorDiv => {
            if y == 0.0 {
                return Err("ZeroDivisionError: float floor division by zero".into());
            }
            float_divmod(x, y).0
        }
        BinOp::Rem => {
            if y == 0.0 {
                return Err("ZeroDivisionError: float modulo by zero".into());
            }
            float_divmod(x, y).1
        }
        BinOp::Pow => float_pow(x, y)?,
        _ => unreachable!("bitwise operators are handled above"),
    };
    Ok(PyVal::Float(r))
}

/// Python's `& | ^ << >>` (`None` for the other operators): on bools
/// `& | ^` give a bool, everything else works on integers; floats are
/// refused with Python's message.
fn bitwise(op: BinOp, a: PyVal, b: PyVal) -> Option<Result<PyVal, String>> {
    let sym = match op {
        BinOp::BitAnd => "&",
        BinOp::BitOr => "|",
        BinOp::BitXor => "^",
        BinOp::Shl => "<<",
        BinOp::Shr => ">>",
        _ => return None,
    };
    if let (PyVal::Bool(x), PyVal::Bool(y)) = (a, b) {
        match op {
            BinOp::BitAnd => return Some(Ok(PyVal::Bool(x & y))),
            BinOp::BitOr => return Some(Ok(PyVal::Bool(x | y))),
            BinOp::BitXor => return Some(Ok(PyVal::Bool(x ^ y))),
            _ => {}
        }
    }
    let (Some(x), Some(y)) = (a.as_int(), b.as_int()) else {
        return Some(Err(format!(
            "unsupported operand type(s) for {sym}: Python floats have no bitwise operations"
        )));
    };
    Some(match op {
        BinOp::BitAnd => Ok(PyVal::Int(x & y)),
        BinOp::BitOr => Ok(PyVal::Int(x | y)),
        BinOp::BitXor => Ok(PyVal::Int(x ^ y)),
        _ if y < 0 => Err("ValueError: negative shift count".into()),
        BinOp::Shl if x == 0 => Ok(PyVal::Int(0)),
        BinOp::Shl => u32::try_from(y)
            .ok()
            .filter(|&n| n < 127 && (x << n) >> n == x)
            .map(|n| PyVal::Int(x << n))
            .ok_or_else(|| TOO_LARGE.to_string()),
        _ => Ok(PyVal::Int(x >> y.min(127))),
    })
}

/// Python's `~v`.
pub(crate) fn invert(v: PyVal) -> Result<PyVal, String> {
    match v.as_int() {
        Some(i) => Ok(PyVal::Int(!i)),
        None => Err(format!("bad operand type for unary ~: '{}'", v.type_name())),
    }
}

/// Python's `-v`.
pub(crate) fn neg(v: PyVal) -> Result<PyVal, String> {
    match v {
        PyVal::Float(f) => Ok(PyVal::Float(-f)),
        PyVal::Complex(re, im) => Ok(PyVal::Complex(-re, -im)),
        other => other
            .as_int()
            .and_then(i128::checked_neg)
            .map(PyVal::Int)
            .ok_or_else(|| TOO_LARGE.to_string()),
    }
}

/// Python's `+v`.
pub(crate) fn pos(v: PyVal) -> PyVal {
    match v {
        PyVal::Bool(b) => PyVal::Int(b as i128),
        other => other,
    }
}

/// Python's exact ordering of an integer and a float.
fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    let fi = i as f64;
    match fi.partial_cmp(&f) {
        Some(Ordering::Equal) => {
            // Equal after rounding: `f` is integral and within i128's range.
            if f >= 1.7e38 {
                return Some(Ordering::Less);
            }
            if f <= -1.7e38 {
                return Some(Ordering::Greater);
            }
            Some(i.cmp(&(f as i128)))
        }
        o => o,
    }
}

/// Python's `a <op> b` for two literal values: complex numbers are only
/// equal or not (`TypeError` for an ordering).
pub(crate) fn compare(op: CmpOp, a: PyVal, b: PyVal) -> Result<bool, String> {
    if matches!(a, PyVal::Complex(..)) || matches!(b, PyVal::Complex(..)) {
        let (x, y) = (a.as_complex(), b.as_complex());
        let eq = x.0 == y.0 && x.1 == y.1;
        return match op {
            CmpOp::Eq => Ok(eq),
            CmpOp::Ne => Ok(!eq),
            _ => {
                let sym = match op {
                    CmpOp::Lt => "<",
                    CmpOp::Le => "<=",
                    CmpOp::Gt => ">",
                    _ => ">=",
                };
                Err(format!(
                    "TypeError: '{sym}' not supported between instances of '{}' and '{}'",
                    a.type_name(),
                    b.type_name()
                ))
            }
        };
    }
    Ok(compare_real(op, a, b))
}

fn compare_real(op: CmpOp, a: PyVal, b: PyVal) -> bool {
    let ord = match (a.as_int(), b.as_int()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => cmp_int_float(x, b.as_f64()),
        (None, Some(y)) => cmp_int_float(y, a.as_f64()).map(Ordering::reverse),
        (None, None) => a.as_f64().partial_cmp(&b.as_f64()),
    };
    op.holds(ord)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_integer_semantics() {
        let i = PyVal::Int;
        assert_eq!(binop(BinOp::FloorDiv, i(7), i(-2)), Ok(i(-4)));
        assert_eq!(binop(BinOp::Rem, i(7), i(-2)), Ok(i(-1)));
        assert_eq!(binop(BinOp::Rem, i(-7), i(2)), Ok(i(1)));
        assert_eq!(binop(BinOp::FloorDiv, i(-7), i(-2)), Ok(i(3)));
        assert_eq!(binop(BinOp::Rem, i(-7), i(-2)), Ok(i(-1)));
        assert_eq!(binop(BinOp::Pow, i(2), i(-1)), Ok(PyVal::Float(0.5)));
        assert_eq!(binop(BinOp::Div, i(1), i(4)), Ok(PyVal::Float(0.25)));
        assert_eq!(
            binop(BinOp::Add, PyVal::Bool(true), PyVal::Bool(true)),
            Ok(i(2))
        );
        assert!(binop(BinOp::Div, i(1), i(0)).is_err());
        assert!(binop(BinOp::Pow, i(0), i(-1)).is_err());
        assert!(binop(BinOp::Pow, i(10), i(40)).is_err());
        assert!(binop(BinOp::Pow, PyVal::Float(-8.0), PyVal::Float(1.0 / 3.0)).is_err());
        assert_eq!(neg(PyVal::Bool(true)), Ok(i(-1)));
    }

    #[test]
    fn python_float_divmod() {
        assert_eq!(float_divmod(-1.0, f64::INFINITY), (-1.0, f64::INFINITY));
        assert_eq!(float_divmod(7.5, -2.0), (-4.0, -0.5));
        let (q, m) = float_divmod(-0.0, 3.0);
        assert!(q == 0.0 && q.is_sign_negative() && m == 0.0 && m.is_sign_positive());
    }

    #[test]
    fn mixed_comparisons_are_exact() {
        let big = (1i128 << 53) + 1;
        assert!(compare_real(
            CmpOp::Gt,
            PyVal::Int(big),
            PyVal::Float((1u64 << 53) as f64)
        ));
        assert!(!compare_real(
            CmpOp::Eq,
            PyVal::Int(big),
            PyVal::Float((1u64 << 53) as f64)
        ));
        assert!(compare_real(
            CmpOp::Ne,
            PyVal::Int(1),
            PyVal::Float(f64::NAN)
        ));
        assert!(compare_real(CmpOp::Lt, PyVal::Int(1), PyVal::Float(1.5)));
    }
}
