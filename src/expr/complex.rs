//! Complex kernels of the expression engine: NumPy's complex64 and
//! complex128 loops, element by element.
//!
//! Arithmetic follows NumPy's loops formula for formula, in the dtype's
//! own precision, so results are NumPy's bit for bit: `+ -`, `*` and
//! `square` as NumPy's SIMD loops compute them on an x86-64 CPU with FMA
//! (fused multiply-adds; NumPy's own results differ in the last bit on a
//! CPU without), `abs` as its SIMD `cabsolute`, `/` (Smith's method),
//! `reciprocal`, integral `**` (`npy_cpow`'s repeated products), the
//! comparisons (NumPy orders complex numbers lexicographically: `CLT`,
//! `CLE`… with its NaN rules) and `minimum`/`maximum`. The functions NumPy
//! takes from the C library (`csqrt cexp clog csin ccos ctan ctanh cpow`,
//! and `log2`/`log10` as `clog` times a constant) are
//! computed here from their textbook definitions — complex64 through
//! float64, then rounded — and agree with glibc's within a few ULP of the
//! result's magnitude, not bit for bit.

//!
//! NaN payloads are not promised: where two NaNs with different payloads
//! meet (`(nan+1j) + x` with a NaN in `x`), which one survives is the
//! compiler's choice between its vector and scalar loops, so it may differ
//! between blocks split differently. Every other bit is the same for any
//! split.

use super::elem::{C32, C64};

/// A complex element type: its float parts and NumPy's loops on it.
pub(crate) trait Cx: Copy + Default + 'static {
    /// One part.
    type F: Copy + PartialOrd + Into<f64>;
    /// The real part.
    fn re(self) -> Self::F;
    /// The imaginary part.
    fn im(self) -> Self::F;
    /// From parts.
    fn new(re: Self::F, im: Self::F) -> Self;
    /// From float64 parts, each rounded to the part's type.
    fn from64(re: f64, im: f64) -> Self;
    /// Both parts as float64.
    fn to64(self) -> (f64, f64) {
        (self.re().into(), self.im().into())
    }
    /// `a + b`.
    fn add(a: Self, b: Self) -> Self;
    /// `a - b`.
    fn sub(a: Self, b: Self) -> Self;
    /// `a * b` as NumPy's SIMD loop on a CPU with FMA (Highway's
    /// `MulComplex`): `(fma(ar, br, -(ai·bi)), fma(ar, bi, ai·br))`.
    fn mul(a: Self, b: Self) -> Self;
    /// `a * b` as NumPy's scalar C (`cmul`, used by `**`):
    /// `(ar·br − ai·bi, ar·bi + ai·br)`, each product rounded.
    fn mul_plain(a: Self, b: Self) -> Self;
    /// `a / b`, NumPy's Smith division.
    fn div(a: Self, b: Self) -> Self;
    /// `-a`.
    fn neg(a: Self) -> Self;
    /// `np.conjugate`.
    fn conj(a: Self) -> Self;
    /// `np.square` (NumPy's FMA loop: `fma(r, r, -(i·i))`, `r·i + i·r`).
    fn square(a: Self) -> Self;
    /// `np.reciprocal`.
    fn recip(a: Self) -> Self;
    /// `np.absolute`, as NumPy's SIMD loop computes it.
    fn abs(a: Self) -> Self::F;
    /// Whether either part is NaN.
    fn has_nan(a: Self) -> bool;
}

macro_rules! cx_impl {
    ($c:ty, $f:ty) => {
        impl Cx for $c {
            type F = $f;
            #[inline(always)]
            fn re(self) -> $f {
                self.re
            }
            #[inline(always)]
            fn im(self) -> $f {
                self.im
            }
            #[inline(always)]
            fn new(re: $f, im: $f) -> Self {
                Self { re, im }
            }
            #[inline(always)]
            fn from64(re: f64, im: f64) -> Self {
                Self {
                    re: re as $f,
                    im: im as $f,
                }
            }
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self {
                Self::new(a.re + b.re, a.im + b.im)
            }
            #[inline(always)]
            fn sub(a: Self, b: Self) -> Self {
                Self::new(a.re - b.re, a.im - b.im)
            }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self {
                let (u, v, x, y) = (a.re, a.im, b.re, b.im);
                Self::new(u.mul_add(x, -(v * y)), u.mul_add(y, v * x))
            }
            #[inline(always)]
            fn mul_plain(a: Self, b: Self) -> Self {
                Self::new(a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re)
            }
            #[inline(always)]
            fn div(a: Self, b: Self) -> Self {
                let (ar, ai, br, bi) = (a.re, a.im, b.re, b.im);
                let (abs_br, abs_bi) = (br.abs(), bi.abs());
                if abs_br >= abs_bi {
                    if abs_br == 0.0 && abs_bi == 0.0 {
                        // Division by zero: a complex inf or nan.
                        Self::new(ar / abs_br, ai / abs_br)
                    } else {
                        let rat = bi / br;
                        let scl = 1.0 / (br + bi * rat);
                        Self::new((ar + ai * rat) * scl, (ai - ar * rat) * scl)
                    }
                } else {
                    let rat = br / bi;
                    let scl = 1.0 / (bi + br * rat);
                    Self::new((ar * rat + ai) * scl, (ai * rat - ar) * scl)
                }
            }
            #[inline(always)]
            fn neg(a: Self) -> Self {
                Self::new(-a.re, -a.im)
            }
            #[inline(always)]
            fn conj(a: Self) -> Self {
                Self::new(a.re, -a.im)
            }
            #[inline(always)]
            fn square(a: Self) -> Self {
                let (u, v) = (a.re, a.im);
                Self::new(u.mul_add(u, -(v * v)), u * v + v * u)
            }
            #[inline(always)]
            fn recip(a: Self) -> Self {
                let (r, i) = (a.re, a.im);
                if i.abs() <= r.abs() {
                    let q = i / r;
                    let d = r + i * q;
                    Self::new(1.0 / d, -q / d)
                } else {
                    let q = r / i;
                    let d = r * q + i;
                    Self::new(q / d, -1.0 / d)
                }
            }
            #[inline(always)]
            fn abs(a: Self) -> $f {
                // NumPy's SIMD `cabsolute`: inf beats NaN, NaN beats the
                // rest, then `larger · sqrt(1 + (smaller/larger)²)`.
                let (mut re, mut im) = (a.re.abs(), a.im.abs());
                if re == <$f>::INFINITY {
                    im = <$f>::INFINITY;
                }
                if im == <$f>::INFINITY {
                    re = <$f>::INFINITY;
                }
                if re.is_nan() {
                    im = <$f>::NAN;
                }
                if im.is_nan() {
                    re = <$f>::NAN;
                }
                let larger = if re.is_nan() || im.is_nan() {
                    <$f>::NAN
                } else {
                    re.max(im)
                };
                let smaller = if re.is_nan() || im.is_nan() {
                    <$f>::NAN
                } else {
                    re.min(im)
                };
                let ratio = if larger == 0.0 || smaller == <$f>::INFINITY {
                    0.0
                } else {
                    smaller / larger
                };
                ratio.mul_add(ratio, 1.0).sqrt() * larger
            }
            #[inline(always)]
            fn has_nan(a: Self) -> bool {
                a.re.is_nan() || a.im.is_nan()
            }
        }
    };
}

cx_impl!(C32, f32);
cx_impl!(C64, f64);

/// NumPy's complex ordering macros (`CLT`, `CLE`, `CGT`, `CGE`, `CEQ`,
/// `CNE`): lexicographic, and an ordering with a NaN anywhere is false
/// unless the real parts are equal.
pub(crate) fn cmp<T: Cx>(op: super::parse::CmpOp, a: T, b: T) -> bool {
    use super::parse::CmpOp;
    let (xr, xi, yr, yi) = (a.re(), a.im(), b.re(), b.im());
    #[allow(clippy::eq_op)]
    let nan_free = xi == xi && yi == yi;
    match op {
        CmpOp::Eq => xr == yr && xi == yi,
        CmpOp::Ne => xr != yr || xi != yi,
        CmpOp::Lt => (xr < yr && nan_free) || (xr == yr && xi < yi),
        CmpOp::Le => (xr < yr && nan_free) || (xr == yr && xi <= yi),
        CmpOp::Gt => (xr > yr && nan_free) || (xr == yr && xi > yi),
        CmpOp::Ge => (xr > yr && nan_free) || (xr == yr && xi >= yi),
    }
}

/// `np.maximum` (`ge`) or `np.minimum`: the first operand if it has a NaN
/// or wins, else the second (NumPy's complex loop).
#[inline(always)]
pub(crate) fn pick<T: Cx>(ge: bool, a: T, b: T) -> T {
    let op = if ge {
        super::parse::CmpOp::Ge
    } else {
        super::parse::CmpOp::Le
    };
    if T::has_nan(a) || cmp(op, a, b) {
        a
    } else {
        b
    }
}

/// `a ** b` as NumPy's `npy_cpow`: 0 and integral exponents below 100 by
/// repeated plain products (a negative one then Smith's `1 / r`), the rest
/// as `cpow` (`exp(b·log a)`).
pub(crate) fn pow<T: Cx>(a: T, b: T) -> T {
    let (ar, ai) = a.to64();
    let (br, bi) = b.to64();
    if br == 0.0 && bi == 0.0 {
        return T::from64(1.0, 0.0);
    }
    if ar == 0.0 && ai == 0.0 {
        if br > 0.0 {
            return T::from64(0.0, 0.0);
        }
        return T::from64(f64::NAN, f64::NAN);
    }
    if bi == 0.0 && br == br.trunc() && br.abs() < 100.0 {
        let n = br as i64;
        match n {
            1 => return a,
            2 => return T::mul_plain(a, a),
            3 => return T::mul_plain(a, T::mul_plain(a, a)),
            _ => {
                let mut m = n.unsigned_abs();
                let mut acc = T::from64(1.0, 0.0);
                let mut p = a;
                loop {
                    if m & 1 == 1 {
                        acc = T::mul_plain(acc, p);
                    }
                    m >>= 1;
                    if m == 0 {
                        break;
                    }
                    p = T::mul_plain(p, p);
                }
                if n < 0 {
                    return T::div(T::from64(1.0, 0.0), acc);
                }
                return acc;
            }
        }
    }
    let (lr, li) = log64(ar, ai);
    let (er, ei) = (br * lr - bi * li, br * li + bi * lr);
    let (r, i) = exp64(er, ei);
    T::from64(r, i)
}

/// `log z` in float64: `(ln|z|, arg z)`.
pub(crate) fn log64(r: f64, i: f64) -> (f64, f64) {
    (r.hypot(i).ln(), i.atan2(r))
}

/// `exp z` in float64, with C99's special values for a real `z`.
pub(crate) fn exp64(r: f64, i: f64) -> (f64, f64) {
    if i == 0.0 {
        return (r.exp(), i);
    }
    let e = r.exp();
    if r == f64::NEG_INFINITY && !i.is_finite() {
        return (0.0, 0.0);
    }
    (e * i.cos(), e * i.sin())
}

/// `sqrt z` in float64 (Kahan's branch choice: no cancellation).
pub(crate) fn sqrt64(r: f64, i: f64) -> (f64, f64) {
    if r == 0.0 && i == 0.0 {
        return (0.0, i);
    }
    if i.is_infinite() {
        return (f64::INFINITY, i);
    }
    if r.is_nan() {
        return (r, f64::NAN);
    }
    if r.is_infinite() {
        if r > 0.0 {
            return (r, if i.is_nan() { i } else { 0.0f64.copysign(i) });
        }
        let re = if i.is_nan() { f64::NAN } else { 0.0 };
        return (re, f64::INFINITY.copysign(i));
    }
    let t = ((r.abs() + r.hypot(i)) * 0.5).sqrt();
    if r >= 0.0 {
        (t, i / (2.0 * t))
    } else {
        (i.abs() / (2.0 * t), t.copysign(i))
    }
}

/// `sin z` in float64.
pub(crate) fn sin64(r: f64, i: f64) -> (f64, f64) {
    if i == 0.0 {
        return (r.sin(), i);
    }
    (r.sin() * i.cosh(), r.cos() * i.sinh())
}

/// `cos z` in float64.
pub(crate) fn cos64(r: f64, i: f64) -> (f64, f64) {
    if i == 0.0 {
        return (r.cos(), -0.0 * r.sin() * i.signum());
    }
    (r.cos() * i.cosh(), -(r.sin() * i.sinh()))
}

/// `tan z` in float64: `-i·tanh(i·z)`.
pub(crate) fn tan64(r: f64, i: f64) -> (f64, f64) {
    let (t, u) = tanh64(-i, r);
    (u, -t)
}

/// `tanh z` in float64, by Kahan's formula (`t = tan y`, `s = sinh x`,
/// `β = 1 + t²`: `(β·s·√(1+s²) + i·t) / (1 + β·s²)`), with the limit `±1`
/// where `|x| > 22` makes `tanh x` round to it.
pub(crate) fn tanh64(r: f64, i: f64) -> (f64, f64) {
    if i == 0.0 {
        return (r.tanh(), i);
    }
    if r.abs() > 22.0 {
        let e = (-2.0 * r.abs()).exp();
        return (1.0f64.copysign(r), 4.0 * i.sin() * i.cos() * e);
    }
    let t = i.tan();
    let beta = 1.0 + t * t;
    let s = r.sinh();
    let rho = (1.0 + s * s).sqrt();
    let den = 1.0 + beta * s * s;
    (beta * rho * s / den, t / den)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::parse::CmpOp;

    #[test]
    fn ordering_is_numpy_lexicographic() {
        let c = |r, i| C64 { re: r, im: i };
        assert!(cmp(CmpOp::Lt, c(1.0, 5.0), c(2.0, 0.0)));
        assert!(cmp(CmpOp::Lt, c(1.0, 0.0), c(1.0, 1.0)));
        assert!(!cmp(CmpOp::Lt, c(1.0, f64::NAN), c(2.0, 0.0)));
        assert!(!cmp(CmpOp::Lt, c(1.0, 0.0), c(2.0, f64::NAN)));
        assert!(cmp(CmpOp::Ne, c(f64::NAN, 0.0), c(f64::NAN, 0.0)));
        assert_eq!(pick(true, c(1.0, 0.0), c(1.0, 2.0)), c(1.0, 2.0));
        assert!(pick(false, c(f64::NAN, 0.0), c(1.0, 2.0)).re.is_nan());
    }

    #[test]
    fn arithmetic_is_numpys_formulas() {
        let c = |r, i| C32 { re: r, im: i };
        assert_eq!(C32::mul(c(1.0, 2.0), c(3.0, -1.0)), c(5.0, 5.0));
        // NumPy: np.complex64(5+5j) / np.complex64(3-1j) == 1+2.0000002j.
        assert_eq!(C32::div(c(5.0, 5.0), c(3.0, -1.0)), c(1.0, 2.000_000_2));
        assert_eq!(C32::recip(c(1.0, 2.0)), c(0.2, -0.4));
        assert_eq!(pow(c(1.0, 2.0), c(2.0, 0.0)), c(-3.0, 4.0));
        assert_eq!(pow(c(0.0, 0.0), c(0.0, 0.0)), c(1.0, 0.0));
        let s = sqrt64(-4.0, 0.0);
        assert_eq!(s, (0.0, 2.0));
    }
}
