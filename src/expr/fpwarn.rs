//! NumPy's floating-point RuntimeWarnings of an expression, counted by
//! element.
//!
//! NumPy reads the FPU's status flags after each ufunc loop and warns once
//! per loop: "overflow encountered in multiply", "invalid value
//! encountered in sqrt", "divide by zero encountered in log", "invalid
//! value encountered in cast". mmrun's loops are NumPy's loops, but their
//! flags are not read (a vectorised loop may raise them on lanes it
//! discards); instead each instruction's result is compared with its
//! operands after the chunk ran, which gives the same verdict element by
//! element:
//!
//! - a NaN result from operands none of which is NaN is **invalid**;
//! - an infinite result from finite operands is a **divide by zero** where
//!   the operation divided by zero (`divide`, `floor_divide`,
//!   `reciprocal`, the logarithms, `power` of 0), else an **overflow**;
//! - integer `floor_divide` and `remainder` by zero divide by zero, and
//!   the smallest signed integer `// -1` overflows;
//! - a cast to a narrower float that turns a finite value into inf
//!   overflows; a float cast to an integer is invalid for NaN, inf and a
//!   value the conversion NumPy's C loop uses (`int32` for the types of at
//!   most 16 bits and `int32`, `int64` for `uint32` and `int64`, `int64`
//!   then unsigned for `uint64`) cannot hold, as on x86-64.
//!
//! float16 arithmetic runs in float32 and is cast back; NumPy's half loops
//! do the same and name the overflow of that cast after the operation, so
//! a cast to float16 of a float32 operation's result is named after it.
//!
//! The check costs one pass over each float result, looking for values
//! that are not finite; only chunks holding some are looked at element by
//! element. Counts depend on the elements alone, so they are the same for
//! any split into workers, blocks or chunks.

use std::collections::BTreeMap;

use half::f16;

use super::elem::{with_elem, Buf, B8};
use super::eval::{operand, opnd, Arith, Ctx, Inst, Opnd, Src, Un};
use crate::layout::DType;

/// What NumPy's message says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flag {
    Overflow,
    Invalid,
    DivByZero,
}

impl Flag {
    fn text(self) -> &'static str {
        match self {
            Flag::Overflow => "overflow",
            Flag::Invalid => "invalid value",
            Flag::DivByZero => "divide by zero",
        }
    }
}

/// Warnings counted so far: by flag and ufunc, the elements that raised it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FpWarnings(BTreeMap<(Flag, &'static str), u64>);

impl FpWarnings {
    fn add(&mut self, flag: Flag, ufunc: &'static str, n: u64) {
        if n > 0 {
            let c = self.0.entry((flag, ufunc)).or_default();
            *c = c.saturating_add(n);
        }
    }

    /// `(NumPy's message, elements)` pairs.
    pub fn messages(&self) -> Vec<(String, u64)> {
        self.0
            .iter()
            .map(|((f, u), &n)| (format!("{} encountered in {u}", f.text()), n))
            .collect()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// NumPy's name of a binary loop.
fn bin_name(op: Arith) -> &'static str {
    match op {
        Arith::Add => "add",
        Arith::Sub => "subtract",
        Arith::Mul => "multiply",
        Arith::Div => "divide",
        Arith::FloorDiv => "floor_divide",
        Arith::Rem => "remainder",
        Arith::Pow => "power",
        Arith::Min | Arith::MinH => "minimum",
        Arith::Max | Arith::MaxH => "maximum",
        Arith::Atan2 => "arctan2",
        Arith::Hypot => "hypot",
        Arith::BitAnd => "bitwise_and",
        Arith::BitOr => "bitwise_or",
        Arith::BitXor => "bitwise_xor",
        Arith::Shl => "left_shift",
        Arith::Shr => "right_shift",
    }
}

/// NumPy's name of a unary loop.
fn un_name(op: Un) -> &'static str {
    match op {
        Un::Neg => "negative",
        Un::Abs => "absolute",
        Un::Sqrt => "sqrt",
        Un::Exp => "exp",
        Un::Log => "log",
        Un::Log2 => "log2",
        Un::Log10 => "log10",
        Un::Sin => "sin",
        Un::Cos => "cos",
        Un::Tan => "tan",
        Un::Floor => "floor",
        Un::Ceil => "ceil",
        Un::Rint => "rint",
        Un::Square => "square",
        Un::Recip => "reciprocal",
        Un::Tanh => "tanh",
        Un::Sign => "sign",
        Un::Invert => "invert",
        Un::Conj => "conjugate",
    }
}

/// A float element, widened.
trait Fl: Copy {
    fn f(self) -> f64;
}
impl Fl for f64 {
    #[inline(always)]
    fn f(self) -> f64 {
        self
    }
}
impl Fl for f32 {
    #[inline(always)]
    fn f(self) -> f64 {
        self as f64
    }
}
impl Fl for f16 {
    #[inline(always)]
    fn f(self) -> f64 {
        self.to_f64()
    }
}

/// Any element, as a number (exact for every integer).
trait Num: Copy {
    fn num(self) -> f64;
    fn int(self) -> i128;
}
macro_rules! num_int {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn num(self) -> f64 { self as f64 }
            fn int(self) -> i128 { self as i128 }
        }
    )*};
}
num_int!(i8, i16, i32, i64, u8, u16, u32, u64);
impl Num for B8 {
    fn num(self) -> f64 {
        self.get() as u8 as f64
    }
    fn int(self) -> i128 {
        self.get() as i128
    }
}
macro_rules! num_float {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn num(self) -> f64 { self.f() }
            fn int(self) -> i128 { 0 }
        }
    )*};
}
num_float!(f16, f32, f64);

/// Whether any of `o` is NaN or infinite (one vectorisable pass).
fn any_nonfinite<T: Fl>(o: &[T]) -> bool {
    o.iter().fold(false, |acc, v| acc | !v.f().is_finite())
}

fn at<T: Copy>(o: Opnd<'_, T>, i: usize) -> T {
    match o {
        Opnd::S(s) => s[i],
        Opnd::K(k) => k,
    }
}

/// The verdict on one element: result `r` of operands `args`, where
/// `by_zero` says whether the operation divided by zero.
fn verdict(r: f64, args: &[f64], by_zero: bool) -> Option<Flag> {
    if r.is_nan() && !args.iter().any(|a| a.is_nan()) {
        Some(Flag::Invalid)
    } else if r.is_infinite() && args.iter().all(|a| a.is_finite()) {
        Some(if by_zero {
            Flag::DivByZero
        } else {
            Flag::Overflow
        })
    } else {
        None
    }
}

fn check_float_bin<T: Fl>(op: Arith, a: Opnd<'_, T>, b: Opnd<'_, T>, o: &[T], w: &mut FpWarnings) {
    if !any_nonfinite(o) {
        return;
    }
    let mut n = [0u64; 3];
    for (i, r) in o.iter().enumerate() {
        let (x, y) = (at(a, i).f(), at(b, i).f());
        let by_zero = match op {
            Arith::Div | Arith::FloorDiv | Arith::Rem => y == 0.0,
            Arith::Pow => x == 0.0,
            _ => false,
        };
        if let Some(f) = verdict(r.f(), &[x, y], by_zero) {
            n[f as usize] += 1;
        }
    }
    add3(w, bin_name(op), n);
}

fn check_float_un<T: Fl>(op: Un, a: &[T], o: &[T], w: &mut FpWarnings) {
    if !any_nonfinite(o) {
        return;
    }
    let mut n = [0u64; 3];
    for (x, r) in a.iter().zip(o) {
        let x = x.f();
        let by_zero = matches!(op, Un::Log | Un::Log2 | Un::Log10 | Un::Recip) && x == 0.0;
        if let Some(f) = verdict(r.f(), &[x], by_zero) {
            n[f as usize] += 1;
        }
    }
    add3(w, un_name(op), n);
}

fn add3(w: &mut FpWarnings, name: &'static str, n: [u64; 3]) {
    for f in [Flag::Overflow, Flag::Invalid, Flag::DivByZero] {
        w.add(f, name, n[f as usize]);
    }
}

fn check_int_bin<T: Num>(
    op: Arith,
    signed_min: Option<i128>,
    a: Opnd<'_, T>,
    b: Opnd<'_, T>,
    len: usize,
    w: &mut FpWarnings,
) {
    if !matches!(op, Arith::FloorDiv | Arith::Rem) {
        return;
    }
    let (mut zero, mut over) = (0u64, 0u64);
    for i in 0..len {
        let y = at(b, i).int();
        if y == 0 {
            zero += 1;
        } else if op == Arith::FloorDiv && y == -1 && Some(at(a, i).int()) == signed_min {
            over += 1;
        }
    }
    w.add(Flag::DivByZero, bin_name(op), zero);
    w.add(Flag::Overflow, bin_name(op), over);
}

/// The range `[lo, hi)` of a float's truncation that NumPy's cast to `to`
/// converts without raising "invalid" (see the module's notes).
fn int_cast_range(to: DType) -> (f64, f64) {
    const P31: f64 = 2147483648.0;
    const P63: f64 = 9223372036854775808.0;
    match to {
        DType::U32 | DType::I64 => (-P63, P63),
        DType::U64 => (-P63, 2.0 * P63),
        _ => (-P31, P31),
    }
}

/// Checks a cast of `s` (of `from`) into `o` (of `to`); an overflow is
/// named after `origin` (the float32 operation a float16 result comes
/// from), else "cast".
fn check_cast(
    from: DType,
    to: DType,
    s: &[u8],
    o: &[u8],
    len: usize,
    origin: Option<&'static str>,
    w: &mut FpWarnings,
) {
    let name = origin.unwrap_or("cast");
    if to.is_float() {
        // Only a narrowing cast can overflow: to a shorter float, or an
        // integer to float16.
        let narrowing = if from.is_float() {
            from.itemsize() > to.itemsize()
        } else {
            to == DType::F16 && from != DType::Bool
        };
        if !narrowing {
            return;
        }
        with_elem!(to, D => {
            let Some(o) = bytemuck::try_cast_slice::<u8, D>(o).ok().and_then(|o| o.get(..len)) else {
                return;
            };
            if !o.iter().fold(false, |acc, v| acc | v.num().is_infinite()) {
                return;
            }
            with_elem!(from, S => {
                let Some(s) = bytemuck::try_cast_slice::<u8, S>(s).ok().and_then(|s| s.get(..len)) else {
                    return;
                };
                let n = s
                    .iter()
                    .zip(o)
                    .filter(|(x, r)| x.num().is_finite() && r.num().is_infinite())
                    .count();
                w.add(Flag::Overflow, name, n as u64);
            })
        })
    } else if from.is_float() && to != DType::Bool {
        let (lo, hi) = int_cast_range(to);
        with_elem!(from, S => {
            let Some(s) = bytemuck::try_cast_slice::<u8, S>(s).ok().and_then(|s| s.get(..len)) else {
                return;
            };
            let n = s
                .iter()
                .filter(|x| {
                    let t = x.num().trunc();
                    !(t >= lo && t < hi)
                })
                .count();
            w.add(Flag::Invalid, "cast", n as u64);
        })
    }
}

/// Per program: the ufunc whose float32 result each register holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(Vec<Option<&'static str>>);

impl Origins {
    fn get(&self, s: Src) -> Option<&'static str> {
        match s {
            Src::R(r) => self.0.get(r).copied().flatten(),
            _ => None,
        }
    }

    fn set(&mut self, r: usize, v: Option<&'static str>) {
        if self.0.len() <= r {
            self.0.resize(r + 1, None);
        }
        self.0[r] = v;
    }
}

/// The bytes of operand `s` for this chunk.
fn bytes_of<'a>(s: Src, dt: DType, ctx: &Ctx<'a>, regs: &'a [Buf]) -> Option<&'a [u8]> {
    with_elem!(dt, T => operand::<T>(s, ctx, regs).ok().map(bytemuck::cast_slice::<T, u8>))
}

/// Counts what `inst`, just run over the chunk `ctx` with its result in
/// `out` (bytes of its dtype), raised.
pub(crate) fn check(
    inst: &Inst,
    ctx: &Ctx<'_>,
    regs: &[Buf],
    out: &[u8],
    origins: &mut Origins,
    w: &mut FpWarnings,
) {
    let len = ctx.len;
    let dst = inst.dst();
    let mut origin = None;
    match *inst {
        Inst::Bin { op, dt, a, b, .. } => match dt {
            DType::F32 | DType::F64 => {
                with_float(dt, out, len, |o: FlSlice<'_>| match o {
                    FlSlice::F32(o) => {
                        if let (Ok(a), Ok(b)) =
                            (opnd::<f32>(a, ctx, regs), opnd::<f32>(b, ctx, regs))
                        {
                            check_float_bin(op, a, b, o, w)
                        }
                    }
                    FlSlice::F64(o) => {
                        if let (Ok(a), Ok(b)) =
                            (opnd::<f64>(a, ctx, regs), opnd::<f64>(b, ctx, regs))
                        {
                            check_float_bin(op, a, b, o, w)
                        }
                    }
                });
                origin = (dt == DType::F32).then(|| bin_name(op));
            }
            DType::I8 => int_bin::<i8>(op, Some(i8::MIN as i128), a, b, ctx, regs, w),
            DType::I16 => int_bin::<i16>(op, Some(i16::MIN as i128), a, b, ctx, regs, w),
            DType::I32 => int_bin::<i32>(op, Some(i32::MIN as i128), a, b, ctx, regs, w),
            DType::I64 => int_bin::<i64>(op, Some(i64::MIN as i128), a, b, ctx, regs, w),
            DType::U8 => int_bin::<u8>(op, None, a, b, ctx, regs, w),
            DType::U16 => int_bin::<u16>(op, None, a, b, ctx, regs, w),
            DType::U32 => int_bin::<u32>(op, None, a, b, ctx, regs, w),
            DType::U64 => int_bin::<u64>(op, None, a, b, ctx, regs, w),
            _ => {}
        },
        Inst::Un { op, dt, a, .. } if dt.is_float() => {
            with_float(dt, out, len, |o| match o {
                FlSlice::F32(o) => {
                    if let Ok(a) = operand::<f32>(a, ctx, regs) {
                        check_float_un(op, a, o, w)
                    }
                }
                FlSlice::F64(o) => {
                    if let Ok(a) = operand::<f64>(a, ctx, regs) {
                        check_float_un(op, a, o, w)
                    }
                }
            });
            origin = (dt == DType::F32).then(|| un_name(op));
        }
        // Complex operations and casts are not counted (README).
        Inst::Cast { from, to, .. } if from.is_complex() || to.is_complex() => {}
        Inst::Cast { src, from, to, .. } => {
            let named = if from == DType::F32 && to == DType::F16 {
                origins.get(src)
            } else {
                None
            };
            if let Some(s) = bytes_of(src, from, ctx, regs) {
                check_cast(from, to, s, out, len, named, w);
            }
        }
        _ => {}
    }
    origins.set(dst, origin);
}

/// Counts what storing the result `src` (of `dt`) into `out` (of
/// `out_dt`) raised: NumPy's unsafe cast to the output's dtype.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_store(
    src: Src,
    dt: DType,
    ctx: &Ctx<'_>,
    regs: &[Buf],
    out_dt: DType,
    out: &[u8],
    origins: &Origins,
    w: &mut FpWarnings,
) {
    // Complex operations and casts are not counted (README).
    if dt == out_dt || dt.is_complex() || out_dt.is_complex() {
        return;
    }
    let named = if dt == DType::F32 && out_dt == DType::F16 {
        origins.get(src)
    } else {
        None
    };
    if let Some(s) = bytes_of(src, dt, ctx, regs) {
        check_cast(dt, out_dt, s, out, ctx.len, named, w);
    }
}

fn int_bin<T: Num + super::elem::Elem>(
    op: Arith,
    min: Option<i128>,
    a: Src,
    b: Src,
    ctx: &Ctx<'_>,
    regs: &[Buf],
    w: &mut FpWarnings,
) {
    if let (Ok(a), Ok(b)) = (opnd::<T>(a, ctx, regs), opnd::<T>(b, ctx, regs)) {
        check_int_bin(op, min, a, b, ctx.len, w);
    }
}

enum FlSlice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

fn with_float(dt: DType, out: &[u8], len: usize, f: impl FnOnce(FlSlice<'_>)) {
    match dt {
        DType::F32 => {
            if let Ok(o) = bytemuck::try_cast_slice::<u8, f32>(out) {
                if let Some(o) = o.get(..len) {
                    f(FlSlice::F32(o))
                }
            }
        }
        DType::F64 => {
            if let Ok(o) = bytemuck::try_cast_slice::<u8, f64>(out) {
                if let Some(o) = o.get(..len) {
                    f(FlSlice::F64(o))
                }
            }
        }
        _ => {}
    }
}
