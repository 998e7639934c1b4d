//! Element types of the engine: typed buffers, typed constants and the
//! NumPy casts between every pair of dtypes, complex64/complex128
//! ([`C32`], [`C64`]) included.
//!
//! Bool elements are [`B8`] (one byte, 0 or 1) so that every dtype has its own
//! Rust type and kernels can be generic. Casts follow NumPy's C casts: `as`
//! for numbers (int → float rounds to nearest even, float → int truncates
//! toward zero; out-of-range float → int saturates, where NumPy's result is
//! platform-specific), number → bool is `!= 0` (NaN → True), and f16 is
//! rounded to nearest even directly from f64 as `npy_double_to_half` does
//! (the `half` crate's `from_f64` rounds through f32 on F16C machines, which
//! can round twice, so it is not used for f64). A real number cast to
//! complex is the real part with a zero imaginary part; complex to a real
//! dtype is the real part cast (NumPy's unsafe cast, which warns
//! `ComplexWarning`: `apply` refuses to store that way), to bool either
//! part nonzero.

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::layout::DType;

/// A NumPy bool element: one byte, 0 or 1 (any non-zero byte reads as True).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Pod, Zeroable)]
#[repr(transparent)]
pub(crate) struct B8(pub u8);

impl B8 {
    /// The truth value.
    #[inline(always)]
    pub(crate) fn get(self) -> bool {
        self.0 != 0
    }

    /// From a truth value.
    #[inline(always)]
    pub(crate) fn from_bool(b: bool) -> B8 {
        B8(b as u8)
    }
}

/// A complex64 element: two `f32`, real then imaginary (NumPy's layout).
#[derive(Debug, Clone, Copy, PartialEq, Default, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct C32 {
    pub re: f32,
    pub im: f32,
}

/// A complex128 element: two `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct C64 {
    pub re: f64,
    pub im: f64,
}

// Lexicographic (real part, then imaginary), NumPy's order of complex
// numbers; only a bound of [`Elem`]: kernels compare complex values with
// NumPy's own macros (`eval::cx`).
impl PartialOrd for C32 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        (self.re, self.im).partial_cmp(&(o.re, o.im))
    }
}

impl PartialOrd for C64 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        (self.re, self.im).partial_cmp(&(o.re, o.im))
    }
}

/// A register: one typed buffer.
#[derive(Debug, Clone)]
pub(crate) enum Buf {
    Bool(Vec<B8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    F16(Vec<f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    C64(Vec<C32>),
    C128(Vec<C64>),
}

impl Default for Buf {
    fn default() -> Self {
        Buf::Bool(Vec::new())
    }
}

/// A typed constant (a NumPy scalar).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    F16(f16),
    F32(f32),
    F64(f64),
    C64(C32),
    C128(C64),
}

/// Runs `$body` with `$T` bound to the element type of `$dt`.
macro_rules! with_elem {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            DType::Bool => {
                type $T = $crate::expr::elem::B8;
                $body
            }
            DType::I8 => {
                type $T = i8;
                $body
            }
            DType::I16 => {
                type $T = i16;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::U16 => {
                type $T = u16;
                $body
            }
            DType::U32 => {
                type $T = u32;
                $body
            }
            DType::U64 => {
                type $T = u64;
                $body
            }
            DType::F16 => {
                type $T = half::f16;
                $body
            }
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            // Kernels refuse layout-only dtypes when they are built
            // (`DType::check_computable`), before any element is seen.
            other => unreachable!("no kernel computes on {other}"),
        }
    };
}
pub(crate) use with_elem;

/// [`with_elem!`] for every dtype the expression engine holds: the real
/// ones and complex64/complex128 ([`C32`], [`C64`]).
macro_rules! with_any {
    ($dt:expr, $T:ident => $body:expr) => {
        match $dt {
            DType::C64 => {
                type $T = $crate::expr::elem::C32;
                $body
            }
            DType::C128 => {
                type $T = $crate::expr::elem::C64;
                $body
            }
            other => $crate::expr::elem::with_elem!(other, $T => $body),
        }
    };
}
pub(crate) use with_any;

/// An element type: how it sits in a [`Buf`] and in a [`Scalar`].
pub(crate) trait Elem: Pod + Default + Send + Sync + PartialOrd + 'static {
    /// Its dtype.
    const DT: DType;
    /// The buffer's elements, if the buffer holds this type.
    fn slice(b: &Buf) -> Option<&[Self]>;
    /// The buffer's elements, mutably.
    fn slice_mut(b: &mut Buf) -> Option<&mut [Self]>;
    /// A buffer of `n` copies of `v`.
    fn buf(v: Self, n: usize) -> Buf;
    /// As a scalar.
    fn scalar(self) -> Scalar;
    /// From a scalar of the same dtype.
    fn from_scalar(s: Scalar) -> Option<Self>;
}

macro_rules! elem_impl {
    ($t:ty, $v:ident) => {
        impl Elem for $t {
            const DT: DType = DType::$v;
            #[inline(always)]
            fn slice(b: &Buf) -> Option<&[Self]> {
                match b {
                    Buf::$v(v) => Some(v),
                    _ => None,
                }
            }
            #[inline(always)]
            fn slice_mut(b: &mut Buf) -> Option<&mut [Self]> {
                match b {
                    Buf::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn buf(v: Self, n: usize) -> Buf {
                Buf::$v(vec![v; n])
            }
            fn scalar(self) -> Scalar {
                elem_impl!(@to $v, self)
            }
            fn from_scalar(s: Scalar) -> Option<Self> {
                elem_impl!(@from $v, s)
            }
        }
    };
    (@to Bool, $s:expr) => { Scalar::Bool($s.get()) };
    (@to $v:ident, $s:expr) => { Scalar::$v($s) };
    (@from Bool, $s:expr) => { match $s { Scalar::Bool(b) => Some(B8::from_bool(b)), _ => None } };
    (@from $v:ident, $s:expr) => { match $s { Scalar::$v(b) => Some(b), _ => None } };
}

elem_impl!(B8, Bool);
elem_impl!(i8, I8);
elem_impl!(i16, I16);
elem_impl!(i32, I32);
elem_impl!(i64, I64);
elem_impl!(u8, U8);
elem_impl!(u16, U16);
elem_impl!(u32, U32);
elem_impl!(u64, U64);
elem_impl!(f16, F16);
elem_impl!(f32, F32);
elem_impl!(f64, F64);
elem_impl!(C32, C64);
elem_impl!(C64, C128);

impl Buf {
    /// A zeroed buffer of `n` elements of `dt`.
    pub(crate) fn zeros(dt: DType, n: usize) -> Buf {
        with_any!(dt, T => T::buf(T::default(), n))
    }

    /// The dtype of the elements.
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Buf::Bool(_) => DType::Bool,
            Buf::I8(_) => DType::I8,
            Buf::I16(_) => DType::I16,
            Buf::I32(_) => DType::I32,
            Buf::I64(_) => DType::I64,
            Buf::U8(_) => DType::U8,
            Buf::U16(_) => DType::U16,
            Buf::U32(_) => DType::U32,
            Buf::U64(_) => DType::U64,
            Buf::F16(_) => DType::F16,
            Buf::F32(_) => DType::F32,
            Buf::F64(_) => DType::F64,
            Buf::C64(_) => DType::C64,
            Buf::C128(_) => DType::C128,
        }
    }

    /// Number of elements.
    pub(crate) fn len(&self) -> usize {
        with_any!(self.dtype(), T => T::slice(self).map_or(0, |s| s.len()))
    }

    /// The elements as bytes.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        with_any!(self.dtype(), T => bytemuck::cast_slice_mut(T::slice_mut(self).unwrap_or_default()))
    }

    /// The bytes of its elements.
    pub(crate) fn bytes(&self) -> &[u8] {
        with_any!(self.dtype(), T => bytemuck::cast_slice(T::slice(self).unwrap_or_default()))
    }

    /// The first element, as a scalar.
    pub(crate) fn first(&self) -> Option<Scalar> {
        with_any!(self.dtype(), T => T::slice(self).and_then(|s| s.first()).map(|v| v.scalar()))
    }
}

impl Scalar {
    /// The dtype.
    pub(crate) fn dtype(self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::I8(_) => DType::I8,
            Scalar::I16(_) => DType::I16,
            Scalar::I32(_) => DType::I32,
            Scalar::I64(_) => DType::I64,
            Scalar::U8(_) => DType::U8,
            Scalar::U16(_) => DType::U16,
            Scalar::U32(_) => DType::U32,
            Scalar::U64(_) => DType::U64,
            Scalar::F16(_) => DType::F16,
            Scalar::F32(_) => DType::F32,
            Scalar::F64(_) => DType::F64,
            Scalar::C64(_) => DType::C64,
            Scalar::C128(_) => DType::C128,
        }
    }

    /// A buffer of `n` copies.
    pub(crate) fn fill(self, n: usize) -> Buf {
        with_any!(self.dtype(), T => T::buf(T::from_scalar(self).unwrap_or_default(), n))
    }

    /// Cast to `dt` as NumPy's unsafe casting does.
    pub(crate) fn cast(self, dt: DType) -> Scalar {
        with_any!(self.dtype(), S => {
            let v = S::from_scalar(self).unwrap_or_default();
            with_any!(dt, D => CastTo::<D>::cast(v).scalar())
        })
    }
}

/// `self as D`, the way NumPy casts.
pub(crate) trait CastTo<D> {
    /// The cast.
    fn cast(self) -> D;
}

macro_rules! cast_prims {
    ($($s:ty),*) => { $( cast_prims!(@one $s; i8 i16 i32 i64 u8 u16 u32 u64 f32 f64); )* };
    (@one $s:ty; $($d:ty)*) => { $(
        impl CastTo<$d> for $s {
            #[inline(always)]
            fn cast(self) -> $d { self as $d }
        }
    )* };
}
cast_prims!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

macro_rules! cast_bool_prims {
    ($($t:ty),*) => { $(
        impl CastTo<$t> for B8 {
            #[inline(always)]
            fn cast(self) -> $t { (self.0 != 0) as u8 as $t }
        }
        impl CastTo<B8> for $t {
            #[inline(always)]
            #[allow(clippy::float_cmp)]
            fn cast(self) -> B8 { B8((self != (0 as $t)) as u8) }
        }
        impl CastTo<$t> for f16 {
            #[inline(always)]
            fn cast(self) -> $t { self.to_f32() as $t }
        }
    )* };
}
cast_bool_prims!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

macro_rules! cast_to_f16 {
    ($($t:ty),*) => { $(
        impl CastTo<f16> for $t {
            #[inline(always)]
            fn cast(self) -> f16 { f16::from_f32(self as f32) }
        }
    )* };
}
// Integers reach f16 through f32: exact below 2^24, and anything larger is
// beyond f16's range either way.
cast_to_f16!(i8, i16, i32, i64, u8, u16, u32, u64, f32);

impl CastTo<f16> for f64 {
    #[inline(always)]
    fn cast(self) -> f16 {
        f64_to_f16(self)
    }
}

impl CastTo<B8> for B8 {
    #[inline(always)]
    fn cast(self) -> B8 {
        B8::from_bool(self.get())
    }
}

impl CastTo<f16> for B8 {
    #[inline(always)]
    fn cast(self) -> f16 {
        if self.get() {
            f16::ONE
        } else {
            f16::ZERO
        }
    }
}

impl CastTo<B8> for f16 {
    #[inline(always)]
    fn cast(self) -> B8 {
        B8::from_bool(self.to_f32() != 0.0)
    }
}

impl CastTo<f16> for f16 {
    #[inline(always)]
    fn cast(self) -> f16 {
        self
    }
}

/// Real into complex: the real part cast as the real cast does,
/// imaginary zero. Complex into real: the real part (NumPy's unsafe cast,
/// which warns `ComplexWarning`); into bool: either part nonzero.
macro_rules! cast_complex {
    ($c:ident, $f:ty; $($t:ty),*) => { $(
        impl CastTo<$c> for $t {
            #[inline(always)]
            fn cast(self) -> $c {
                $c { re: CastTo::<$f>::cast(self), im: 0.0 }
            }
        }
        impl CastTo<$t> for $c {
            #[inline(always)]
            fn cast(self) -> $t {
                CastTo::<$t>::cast(self.re)
            }
        }
    )* };
}
cast_complex!(C32, f32; i8, i16, i32, i64, u8, u16, u32, u64, f16, f32, f64);
cast_complex!(C64, f64; i8, i16, i32, i64, u8, u16, u32, u64, f16, f32, f64);

impl CastTo<C32> for B8 {
    #[inline(always)]
    fn cast(self) -> C32 {
        C32 {
            re: CastTo::<f32>::cast(self),
            im: 0.0,
        }
    }
}

impl CastTo<C64> for B8 {
    #[inline(always)]
    fn cast(self) -> C64 {
        C64 {
            re: CastTo::<f64>::cast(self),
            im: 0.0,
        }
    }
}

impl CastTo<B8> for C32 {
    #[inline(always)]
    fn cast(self) -> B8 {
        B8::from_bool(self.re != 0.0 || self.im != 0.0)
    }
}

impl CastTo<B8> for C64 {
    #[inline(always)]
    fn cast(self) -> B8 {
        B8::from_bool(self.re != 0.0 || self.im != 0.0)
    }
}

impl CastTo<C32> for C32 {
    #[inline(always)]
    fn cast(self) -> C32 {
        self
    }
}

impl CastTo<C64> for C64 {
    #[inline(always)]
    fn cast(self) -> C64 {
        self
    }
}

impl CastTo<C64> for C32 {
    #[inline(always)]
    fn cast(self) -> C64 {
        C64 {
            re: f64::from(self.re),
            im: f64::from(self.im),
        }
    }
}

impl CastTo<C32> for C64 {
    #[inline(always)]
    fn cast(self) -> C32 {
        C32 {
            re: self.re as f32,
            im: self.im as f32,
        }
    }
}

/// f64 → f16 rounded to nearest even in one step (as `npy_double_to_half`).
pub(crate) fn f64_to_f16(v: f64) -> f16 {
    let b = v.to_bits();
    let sign = ((b >> 48) & 0x8000) as u16;
    let exp = ((b >> 52) & 0x7ff) as i32;
    let man = b & 0x000f_ffff_ffff_ffff;
    if exp == 0x7ff {
        if man == 0 {
            return f16::from_bits(sign | 0x7c00);
        }
        return f16::from_bits(sign | 0x7e00 | (man >> 42) as u16);
    }
    if exp == 0 {
        // Zero or an f64 subnormal: far below f16's smallest subnormal.
        return f16::from_bits(sign);
    }
    let e = exp - 1023;
    if e > 15 {
        return f16::from_bits(sign | 0x7c00);
    }
    let m = man | (1u64 << 52);
    // Round `m >> shift` to nearest even.
    let round = |shift: u32| -> u64 {
        if shift >= 64 {
            return 0;
        }
        let q = m >> shift;
        let rem = m & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        if rem > half || (rem == half && q & 1 == 1) {
            q + 1
        } else {
            q
        }
    };
    if e >= -14 {
        let mut q = round(42);
        let mut e = e;
        if q == 1 << 11 {
            q >>= 1;
            e += 1;
        }
        if e > 15 {
            return f16::from_bits(sign | 0x7c00);
        }
        return f16::from_bits(sign | (((e + 15) as u16) << 10) | (q as u16 & 0x3ff));
    }
    // Subnormal: in units of 2^-24, the value is m · 2^(e - 28).
    let q = round((28 - e) as u32);
    f16::from_bits(sign | q as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_to_f16_rounds_once() {
        // 2049 + tiny: nearest f16 is 2050; rounding through f32 gives 2048.
        assert_eq!(f64_to_f16(2_049.000_000_1).to_bits(), 0x6801);
        assert_eq!(f64_to_f16(2049.0).to_bits(), 0x6800);
        assert_eq!(f64_to_f16(65504.0).to_bits(), 0x7bff);
        assert_eq!(f64_to_f16(65519.99).to_bits(), 0x7bff);
        assert_eq!(f64_to_f16(65520.0).to_bits(), 0x7c00);
        assert_eq!(f64_to_f16(1e300).to_bits(), 0x7c00);
        assert_eq!(f64_to_f16(-0.0).to_bits(), 0x8000);
        assert_eq!(f64_to_f16(5.960464477539063e-8).to_bits(), 1);
        assert_eq!(f64_to_f16(2.98e-8).to_bits(), 0);
        assert_eq!(f64_to_f16(2.99e-8).to_bits(), 1);
        assert_eq!(f64_to_f16(6.097555160522461e-5).to_bits(), 0x3ff);
        assert_eq!(f64_to_f16(6.1035156e-5).to_bits(), 0x400);
        assert!(f64_to_f16(f64::NAN).is_nan());
        // Exhaustive agreement with f32 → f16 on values exact in f32.
        for bits in (0u16..0x7c00).step_by(7) {
            let h = f16::from_bits(bits);
            let mid = (h.to_f64() + f16::from_bits(bits + 1).to_f64()) / 2.0;
            assert_eq!(f64_to_f16(h.to_f64()).to_bits(), bits);
            let want = f16::from_f32(mid as f32).to_bits();
            assert_eq!(f64_to_f16(mid).to_bits(), want, "{bits:#x}");
        }
    }

    #[test]
    fn casts_follow_numpy() {
        assert_eq!(CastTo::<i8>::cast(-1.9f64), -1);
        assert_eq!(CastTo::<B8>::cast(f64::NAN), B8(1));
        assert_eq!(CastTo::<B8>::cast(-0.0f32), B8(0));
        assert_eq!(CastTo::<u8>::cast(300i32), 44);
        assert_eq!(CastTo::<f32>::cast(B8(1)), 1.0);
        assert_eq!(Scalar::I64(-1).cast(DType::U64), Scalar::U64(u64::MAX));
    }
}
