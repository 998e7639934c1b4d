//! Block-wise evaluation: the flat program, its typed kernels and the
//! column views callers pass in.
//!
//! A program is a list of instructions over typed registers (numexpr's
//! design). A block is cut into chunks of at most [`CHUNK`] elements; for
//! each chunk every instruction runs once over the whole chunk, with one
//! dispatch on its dtype, so registers stay in cache and loops vectorise.
//! Every operation is element-wise and the index variables come from the
//! global flat index, so results never depend on how a range is split.
//!
//! Kernel semantics are NumPy's loops: wrapping integer arithmetic, integer
//! `//` and `%` by zero giving 0, `npy_divmod` for float `//` and `%`,
//! NaN-propagating `minimum`/`maximum` (with NumPy's x86 SIMD choice of
//! operand on ties of ±0), and `clip`'s two paths (0-d bounds or arrays).

use half::f16;

use super::complex::{self, Cx};
use super::elem::{with_any, with_elem, Buf, CastTo, Elem, Scalar, B8, C32, C64};
use super::parse::{CmpOp, Var};
use super::pyval::PyVal;
use crate::layout::DType;

/// Elements per chunk: the register length.
pub(crate) const CHUNK: usize = 4096;

/// An operand: the input column or a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    /// The element `x`.
    X,
    /// A register.
    R(usize),
    /// A constant register (filled once, never written).
    C(usize),
}

/// An operand of a kernel: a chunk of elements or one constant.
#[derive(Clone, Copy)]
pub(super) enum Opnd<'a, T> {
    S(&'a [T]),
    K(T),
}

/// Binary kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Pow,
    /// `np.minimum` (f32/f64: ties give the second operand, as NumPy's SIMD).
    Min,
    /// `np.maximum`.
    Max,
    /// `np.minimum` of f16 (ties give the first operand).
    MinH,
    /// `np.maximum` of f16.
    MaxH,
    /// `np.arctan2` (floats).
    Atan2,
    /// `np.hypot` (floats).
    Hypot,
    /// `&` (integers, bool).
    BitAnd,
    /// `|` (integers, bool).
    BitOr,
    /// `^` (integers, bool).
    BitXor,
    /// `<<` (integers): a count past the width gives 0, as NumPy's loop.
    Shl,
    /// `>>` (integers): a count past the width gives 0 or -1.
    Shr,
}

/// Unary kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Un {
    Neg,
    Abs,
    Sqrt,
    Exp,
    Log,
    Log2,
    Log10,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Rint,
    Square,
    Recip,
    Tanh,
    /// `np.sign`: -1, 0 or 1 (NaN stays NaN, -0.0 gives 0.0).
    Sign,
    /// `~` on integers.
    Invert,
    /// `np.conjugate` of a complex (never emitted for real dtypes).
    Conj,
}

/// A real part of a complex value: the kernels whose result is the
/// complex dtype's float type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// `np.real`.
    Re,
    /// `np.imag`.
    Im,
    /// `np.absolute` (`hypot` of the parts).
    Abs,
}

/// Which of NumPy's `clip` loops a float clip follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClipKind {
    /// Both bounds 0-d (and all f16): `x < lo ? lo : x`, then `> hi`.
    Scalar,
    /// Array bounds: `x > lo ? x : lo`, then `< hi`.
    Array,
}

/// One instruction. `dst` is never one of its sources.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Inst {
    Index {
        var: Var,
        dst: usize,
    },
    Cast {
        src: Src,
        from: DType,
        to: DType,
        dst: usize,
    },
    Bin {
        op: Arith,
        dt: DType,
        a: Src,
        b: Src,
        dst: usize,
    },
    Cmp {
        op: CmpOp,
        dt: DType,
        a: Src,
        b: Src,
        dst: usize,
    },
    /// int64 `a` against uint64 `b`, by value.
    CmpIU {
        op: CmpOp,
        a: Src,
        b: Src,
        dst: usize,
    },
    Un {
        op: Un,
        dt: DType,
        a: Src,
        dst: usize,
    },
    Clip {
        dt: DType,
        kind: ClipKind,
        x: Src,
        lo: Src,
        hi: Src,
        dst: usize,
    },
    Where {
        dt: DType,
        c: Src,
        a: Src,
        b: Src,
        dst: usize,
    },
    /// A real result of a complex `a` of `dt` (the dst holds its parts'
    /// float dtype).
    Part {
        part: Part,
        dt: DType,
        a: Src,
        dst: usize,
    },
}

impl Inst {
    /// The register written.
    pub(crate) fn dst(&self) -> usize {
        match *self {
            Inst::Index { dst, .. }
            | Inst::Cast { dst, .. }
            | Inst::Bin { dst, .. }
            | Inst::Cmp { dst, .. }
            | Inst::CmpIU { dst, .. }
            | Inst::Un { dst, .. }
            | Inst::Clip { dst, .. }
            | Inst::Where { dst, .. }
            | Inst::Part { dst, .. } => dst,
        }
    }

    /// The operands read.
    pub(crate) fn srcs(&self) -> Vec<Src> {
        match *self {
            Inst::Index { .. } => vec![],
            Inst::Cast { src, .. } => vec![src],
            Inst::Un { a, .. } | Inst::Part { a, .. } => vec![a],
            Inst::Bin { a, b, .. } | Inst::Cmp { a, b, .. } | Inst::CmpIU { a, b, .. } => {
                vec![a, b]
            }
            Inst::Clip { x, lo, hi, .. } => vec![x, lo, hi],
            Inst::Where { c, a, b, .. } => vec![c, a, b],
        }
    }
}

/// Index geometry of the array.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geom {
    /// Elements per row (product of the shape after axis 0).
    pub row_len: u64,
    /// Elements per axis-1 step (product of the shape after axis 1).
    pub inner: u64,
    /// Length of axis 1.
    pub dim1: u64,
}

/// Where the result is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Res {
    /// A NumPy value in a source, of a dtype.
    Val(Src, DType),
    /// A Python scalar (the expression has only literals).
    Weak(PyVal),
}

/// A compiled program.
#[derive(Debug)]
pub(crate) struct Program {
    pub x_dt: DType,
    pub insts: Vec<Inst>,
    pub regs: Vec<DType>,
    pub consts: Vec<(usize, Scalar)>,
    pub result: Res,
    pub result_dt: DType,
    pub geom: Geom,
    pub reads_x: bool,
    /// The result is the last instruction's register, so that instruction
    /// can write straight into an output of the result's dtype.
    pub direct: bool,
    /// The last instruction reads `x` (so it cannot write over `x` in place).
    pub last_reads_x: bool,
}

/// One chunk's context.
pub(crate) struct Ctx<'a> {
    /// The whole input column, as its dtype and bytes.
    pub x: Option<(DType, &'a [u8])>,
    /// First element of the chunk within the column.
    pub lo: usize,
    /// Elements in the chunk.
    pub len: usize,
    /// Global flat index of the chunk's first element.
    pub n0: u64,
}

const INTERNAL: &str = "internal error: register type mismatch";

pub(super) fn operand<'a, T: Elem>(
    s: Src,
    ctx: &Ctx<'a>,
    regs: &'a [Buf],
) -> Result<&'a [T], String> {
    match s {
        Src::X => {
            let (dt, bytes) = ctx.x.ok_or("internal error: no input column")?;
            if dt != T::DT {
                return Err(INTERNAL.into());
            }
            let all: &[T] = bytemuck::try_cast_slice(bytes).map_err(|_| INTERNAL)?;
            all.get(ctx.lo..ctx.lo + ctx.len)
                .ok_or_else(|| INTERNAL.into())
        }
        Src::R(r) | Src::C(r) => T::slice(&regs[r])
            .and_then(|s| s.get(..ctx.len))
            .ok_or_else(|| INTERNAL.into()),
    }
}

pub(super) fn opnd<'a, T: Elem>(
    s: Src,
    ctx: &Ctx<'a>,
    regs: &'a [Buf],
) -> Result<Opnd<'a, T>, String> {
    match s {
        Src::C(r) => T::slice(&regs[r])
            .and_then(|s| s.first())
            .map(|&v| Opnd::K(v))
            .ok_or_else(|| INTERNAL.into()),
        _ => operand(s, ctx, regs).map(Opnd::S),
    }
}

fn out_slice<T: Elem>(b: &mut [u8], len: usize) -> Result<&mut [T], String> {
    bytemuck::try_cast_slice_mut(b)
        .ok()
        .and_then(|s: &mut [T]| s.get_mut(..len))
        .ok_or_else(|| INTERNAL.into())
}

#[inline(always)]
fn map1<A: Copy, O>(a: &[A], o: &mut [O], f: impl Fn(A) -> O) {
    let a = &a[..o.len()];
    for (o, &a) in o.iter_mut().zip(a) {
        *o = f(a);
    }
}

#[inline(always)]
fn map2<A: Copy, B: Copy, O>(a: &[A], b: &[B], o: &mut [O], f: impl Fn(A, B) -> O) {
    let n = o.len();
    let (a, b) = (&a[..n], &b[..n]);
    for i in 0..n {
        o[i] = f(a[i], b[i]);
    }
}

/// [`map2`] with either operand possibly a constant (one loop per case).
#[inline(always)]
fn map2k<A: Copy, B: Copy, O>(a: Opnd<A>, b: Opnd<B>, o: &mut [O], f: impl Fn(A, B) -> O) {
    match (a, b) {
        (Opnd::S(a), Opnd::S(b)) => map2(a, b, o, f),
        (Opnd::S(a), Opnd::K(b)) => map1(a, o, |x| f(x, b)),
        (Opnd::K(a), Opnd::S(b)) => map1(b, o, |y| f(a, y)),
        (Opnd::K(a), Opnd::K(b)) => o.fill_with(|| f(a, b)),
    }
}

#[inline(always)]
fn map3<A: Copy, B: Copy, C: Copy, O>(
    a: &[A],
    b: &[B],
    c: &[C],
    o: &mut [O],
    f: impl Fn(A, B, C) -> O,
) {
    let n = o.len();
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    for i in 0..n {
        o[i] = f(a[i], b[i], c[i]);
    }
}

/// Integer kernels with NumPy's semantics.
pub(crate) trait Int: Elem + Ord {
    fn add(a: Self, b: Self) -> Self;
    fn sub(a: Self, b: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn fdiv(a: Self, b: Self) -> Self;
    fn fmod(a: Self, b: Self) -> Self;
    fn pow(a: Self, b: Self) -> Option<Self>;
    fn neg(a: Self) -> Self;
    fn abs(a: Self) -> Self;
    fn band(a: Self, b: Self) -> Self;
    fn bor(a: Self, b: Self) -> Self;
    fn bxor(a: Self, b: Self) -> Self;
    fn not(a: Self) -> Self;
    fn shl(a: Self, b: Self) -> Self;
    fn shr(a: Self, b: Self) -> Self;
    fn sign(a: Self) -> Self;
}

macro_rules! int_common {
    () => {
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            a.wrapping_add(b)
        }
        #[inline(always)]
        fn sub(a: Self, b: Self) -> Self {
            a.wrapping_sub(b)
        }
        #[inline(always)]
        fn mul(a: Self, b: Self) -> Self {
            a.wrapping_mul(b)
        }
        #[inline(always)]
        fn neg(a: Self) -> Self {
            a.wrapping_neg()
        }
        #[inline(always)]
        fn band(a: Self, b: Self) -> Self {
            a & b
        }
        #[inline(always)]
        fn bor(a: Self, b: Self) -> Self {
            a | b
        }
        #[inline(always)]
        fn bxor(a: Self, b: Self) -> Self {
            a ^ b
        }
        #[inline(always)]
        fn not(a: Self) -> Self {
            !a
        }
        /// `npy_lshift`: a count outside `0..bits` (negative too) gives 0.
        #[inline(always)]
        fn shl(a: Self, b: Self) -> Self {
            let n = b as i128;
            if (0..Self::BITS as i128).contains(&n) {
                a.wrapping_shl(n as u32)
            } else {
                0
            }
        }
    };
}

/// `a ** e` by squaring, wrapping.
macro_rules! ipow {
    ($a:expr, $e:expr) => {{
        let (mut base, mut e, mut acc): (Self, Self, Self) = ($a, $e, 1);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.wrapping_mul(base);
            }
            e >>= 1;
            if e > 0 {
                base = base.wrapping_mul(base);
            }
        }
        acc
    }};
}

macro_rules! int_signed {
    ($($t:ty),*) => { $(
        impl Int for $t {
            int_common!();
            #[inline(always)]
            fn fdiv(a: Self, b: Self) -> Self {
                if b == 0 {
                    0
                } else if b == -1 {
                    a.wrapping_neg()
                } else {
                    let q = a / b;
                    if a % b != 0 && ((a < 0) != (b < 0)) { q - 1 } else { q }
                }
            }
            #[inline(always)]
            fn fmod(a: Self, b: Self) -> Self {
                if b == 0 || b == -1 {
                    0
                } else {
                    let r = a % b;
                    if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r }
                }
            }
            #[inline(always)]
            fn pow(a: Self, b: Self) -> Option<Self> {
                if b < 0 { None } else { Some(ipow!(a, b)) }
            }
            #[inline(always)]
            fn abs(a: Self) -> Self {
                a.wrapping_abs()
            }
            /// `npy_rshift`: a count outside `0..bits` gives the sign (0 or -1).
            #[inline(always)]
            fn shr(a: Self, b: Self) -> Self {
                let n = b as i128;
                if (0..Self::BITS as i128).contains(&n) {
                    a >> n as u32
                } else if a < 0 {
                    -1
                } else {
                    0
                }
            }
            #[inline(always)]
            fn sign(a: Self) -> Self {
                a.signum()
            }
        }
    )* };
}
int_signed!(i8, i16, i32, i64);

macro_rules! int_unsigned {
    ($($t:ty),*) => { $(
        impl Int for $t {
            int_common!();
            #[inline(always)]
            fn fdiv(a: Self, b: Self) -> Self {
                if b == 0 { 0 } else { a / b }
            }
            #[inline(always)]
            fn fmod(a: Self, b: Self) -> Self {
                if b == 0 { 0 } else { a % b }
            }
            #[inline(always)]
            fn pow(a: Self, b: Self) -> Option<Self> {
                Some(ipow!(a, b))
            }
            #[inline(always)]
            fn abs(a: Self) -> Self {
                a
            }
            #[inline(always)]
            fn shr(a: Self, b: Self) -> Self {
                let n = b as i128;
                if n < Self::BITS as i128 {
                    a >> n as u32
                } else {
                    0
                }
            }
            #[inline(always)]
            fn sign(a: Self) -> Self {
                (a != 0) as Self
            }
        }
    )* };
}
int_unsigned!(u8, u16, u32, u64);

/// Float kernels (f32, f64) with NumPy's semantics.
pub(crate) trait Float: Elem {
    fn fdiv(a: Self, b: Self) -> Self;
    fn fmod(a: Self, b: Self) -> Self;
    fn add(a: Self, b: Self) -> Self;
    fn sub(a: Self, b: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn div(a: Self, b: Self) -> Self;
    fn pow(a: Self, b: Self) -> Self;
    fn min(a: Self, b: Self) -> Self;
    fn max(a: Self, b: Self) -> Self;
    fn minh(a: Self, b: Self) -> Self;
    fn maxh(a: Self, b: Self) -> Self;
    fn un(op: Un, a: Self) -> Self;
    fn atan2(a: Self, b: Self) -> Self;
    fn hypot(a: Self, b: Self) -> Self;
    fn clip_scalar(x: Self, lo: Self, hi: Self) -> Self;
    fn clip_array(x: Self, lo: Self, hi: Self) -> Self;
}

/// `npy_divmod` (CPython's float divmod) in the operands' precision.
macro_rules! divmod {
    ($a:expr, $b:expr) => {{
        let (a, b) = ($a, $b);
        let mut m = a % b;
        let mut div = (a - m) / b;
        if m != 0.0 {
            if (b < 0.0) != (m < 0.0) {
                m += b;
                div -= 1.0;
            }
        } else {
            m = (0.0 as Self).copysign(b);
        }
        let fd = if div != 0.0 {
            let mut f = div.floor();
            if div - f > 0.5 {
                f += 1.0;
            }
            f
        } else {
            (0.0 as Self).copysign(a / b)
        };
        (fd, m)
    }};
}

macro_rules! float_impl {
    ($t:ty) => {
        impl Float for $t {
            /// `npy_floor_divide`.
            #[inline(always)]
            fn fdiv(a: Self, b: Self) -> Self {
                if b == 0.0 {
                    return a / b;
                }
                divmod!(a, b).0
            }
            /// `npy_remainder`.
            #[inline(always)]
            fn fmod(a: Self, b: Self) -> Self {
                if b == 0.0 {
                    return a % b;
                }
                divmod!(a, b).1
            }
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self {
                a + b
            }
            #[inline(always)]
            fn sub(a: Self, b: Self) -> Self {
                a - b
            }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self {
                a * b
            }
            #[inline(always)]
            fn div(a: Self, b: Self) -> Self {
                a / b
            }
            #[inline(always)]
            fn pow(a: Self, b: Self) -> Self {
                a.powf(b)
            }
            #[inline(always)]
            fn min(a: Self, b: Self) -> Self {
                if a.is_nan() || a < b {
                    a
                } else {
                    b
                }
            }
            #[inline(always)]
            fn max(a: Self, b: Self) -> Self {
                if a.is_nan() || a > b {
                    a
                } else {
                    b
                }
            }
            #[inline(always)]
            fn minh(a: Self, b: Self) -> Self {
                if a <= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            #[inline(always)]
            fn maxh(a: Self, b: Self) -> Self {
                if a >= b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            #[inline(always)]
            fn un(op: Un, a: Self) -> Self {
                match op {
                    Un::Neg => -a,
                    Un::Abs => a.abs(),
                    Un::Sqrt => a.sqrt(),
                    Un::Exp => a.exp(),
                    Un::Log => a.ln(),
                    Un::Log2 => a.log2(),
                    Un::Log10 => a.log10(),
                    Un::Sin => a.sin(),
                    Un::Cos => a.cos(),
                    Un::Tan => a.tan(),
                    Un::Floor => a.floor(),
                    Un::Ceil => a.ceil(),
                    Un::Rint => a.round_ties_even(),
                    Un::Square => a * a,
                    Un::Recip => 1.0 / a,
                    Un::Tanh => a.tanh(),
                    Un::Sign => {
                        if a > 0.0 {
                            1.0
                        } else if a < 0.0 {
                            -1.0
                        } else if a == 0.0 {
                            0.0
                        } else {
                            a
                        }
                    }
                    // Never emitted for floats (NumPy refuses `~` on them;
                    // the conjugate of a real number is itself).
                    Un::Invert | Un::Conj => a,
                }
            }
            #[inline(always)]
            fn atan2(a: Self, b: Self) -> Self {
                a.atan2(b)
            }
            #[inline(always)]
            fn hypot(a: Self, b: Self) -> Self {
                a.hypot(b)
            }
            #[inline(always)]
            fn clip_scalar(x: Self, lo: Self, hi: Self) -> Self {
                if x.is_nan() {
                    x
                } else if lo.is_nan() {
                    lo
                } else if hi.is_nan() {
                    hi
                } else {
                    let t = if x < lo { lo } else { x };
                    if t > hi {
                        hi
                    } else {
                        t
                    }
                }
            }
            #[inline(always)]
            fn clip_array(x: Self, lo: Self, hi: Self) -> Self {
                if x.is_nan() {
                    x
                } else if lo.is_nan() {
                    lo
                } else if hi.is_nan() {
                    hi
                } else {
                    let t = if x > lo { x } else { lo };
                    if t < hi {
                        t
                    } else {
                        hi
                    }
                }
            }
        }
    };
}

float_impl!(f32);
float_impl!(f64);

fn neg_power() -> String {
    "integers to negative integer powers are not allowed".into()
}

fn int_bin<T: Int>(op: Arith, a: Opnd<T>, b: Opnd<T>, o: &mut [T]) -> Result<(), String> {
    match op {
        Arith::Add => map2k(a, b, o, T::add),
        Arith::Sub => map2k(a, b, o, T::sub),
        Arith::Mul => map2k(a, b, o, T::mul),
        Arith::FloorDiv => map2k(a, b, o, T::fdiv),
        Arith::Rem => map2k(a, b, o, T::fmod),
        Arith::Min | Arith::MinH => map2k(a, b, o, |x, y| if y < x { y } else { x }),
        Arith::Max | Arith::MaxH => map2k(a, b, o, |x, y| if y > x { y } else { x }),
        Arith::Pow => {
            let negative = std::cell::Cell::new(false);
            map2k(a, b, o, |x, y| match T::pow(x, y) {
                Some(v) => v,
                None => {
                    negative.set(true);
                    x
                }
            });
            if negative.get() {
                return Err(neg_power());
            }
        }
        Arith::BitAnd => map2k(a, b, o, T::band),
        Arith::BitOr => map2k(a, b, o, T::bor),
        Arith::BitXor => map2k(a, b, o, T::bxor),
        Arith::Shl => map2k(a, b, o, T::shl),
        Arith::Shr => map2k(a, b, o, T::shr),
        Arith::Div | Arith::Atan2 | Arith::Hypot => {
            return Err("internal error: integer float loop".into())
        }
    }
    Ok(())
}

fn float_bin<T: Float>(op: Arith, a: Opnd<T>, b: Opnd<T>, o: &mut [T]) -> Result<(), String> {
    match op {
        Arith::Add => map2k(a, b, o, T::add),
        Arith::Sub => map2k(a, b, o, T::sub),
        Arith::Mul => map2k(a, b, o, T::mul),
        Arith::Div => map2k(a, b, o, T::div),
        Arith::FloorDiv => map2k(a, b, o, T::fdiv),
        Arith::Rem => map2k(a, b, o, T::fmod),
        Arith::Pow => map2k(a, b, o, T::pow),
        Arith::Min => map2k(a, b, o, T::min),
        Arith::Max => map2k(a, b, o, T::max),
        Arith::MinH => map2k(a, b, o, T::minh),
        Arith::MaxH => map2k(a, b, o, T::maxh),
        Arith::Atan2 => map2k(a, b, o, T::atan2),
        Arith::Hypot => map2k(a, b, o, T::hypot),
        Arith::BitAnd | Arith::BitOr | Arith::BitXor | Arith::Shl | Arith::Shr => {
            return Err("internal error: bitwise float loop".into())
        }
    }
    Ok(())
}

fn bool_bin(op: Arith, a: Opnd<B8>, b: Opnd<B8>, o: &mut [B8]) -> Result<(), String> {
    match op {
        Arith::Add | Arith::Max | Arith::MaxH => {
            map2k(a, b, o, |x, y| B8::from_bool(x.get() | y.get()))
        }
        Arith::Mul | Arith::Min | Arith::MinH => {
            map2k(a, b, o, |x, y| B8::from_bool(x.get() & y.get()))
        }
        Arith::BitAnd => map2k(a, b, o, |x, y| B8::from_bool(x.get() & y.get())),
        Arith::BitOr => map2k(a, b, o, |x, y| B8::from_bool(x.get() | y.get())),
        Arith::BitXor => map2k(a, b, o, |x, y| B8::from_bool(x.get() ^ y.get())),
        _ => return Err("internal error: bool arithmetic".into()),
    }
    Ok(())
}

fn cx_bin<T: Cx + Elem>(op: Arith, a: Opnd<T>, b: Opnd<T>, o: &mut [T]) -> Result<(), String> {
    match op {
        Arith::Add => map2k(a, b, o, T::add),
        Arith::Sub => map2k(a, b, o, T::sub),
        Arith::Mul => map2k(a, b, o, T::mul),
        Arith::Div => map2k(a, b, o, T::div),
        Arith::Pow => map2k(a, b, o, complex::pow),
        Arith::Max | Arith::MaxH => map2k(a, b, o, |x, y| complex::pick(true, x, y)),
        Arith::Min | Arith::MinH => map2k(a, b, o, |x, y| complex::pick(false, x, y)),
        _ => return Err("internal error: complex loop".into()),
    }
    Ok(())
}

fn cx_un<T: Cx + Elem>(op: Un, a: &[T], o: &mut [T]) -> Result<(), String> {
    let via64 = |f: fn(f64, f64) -> (f64, f64)| {
        move |x: T| {
            let (r, i) = x.to64();
            let (r, i) = f(r, i);
            T::from64(r, i)
        }
    };
    match op {
        Un::Neg => map1(a, o, T::neg),
        Un::Conj => map1(a, o, T::conj),
        Un::Square => map1(a, o, T::square),
        Un::Recip => map1(a, o, T::recip),
        Un::Sqrt => map1(a, o, via64(complex::sqrt64)),
        Un::Exp => map1(a, o, via64(complex::exp64)),
        Un::Log => map1(a, o, via64(complex::log64)),
        Un::Sin => map1(a, o, via64(complex::sin64)),
        Un::Cos => map1(a, o, via64(complex::cos64)),
        Un::Tan => map1(a, o, via64(complex::tan64)),
        Un::Tanh => map1(a, o, via64(complex::tanh64)),
        // NumPy's `nc_log2`/`nc_log10`: the natural log times a constant.
        Un::Log2 => map1(
            a,
            o,
            via64(|r, i| {
                let (r, i) = complex::log64(r, i);
                (r * std::f64::consts::LOG2_E, i * std::f64::consts::LOG2_E)
            }),
        ),
        Un::Log10 => map1(
            a,
            o,
            via64(|r, i| {
                let (r, i) = complex::log64(r, i);
                (r * std::f64::consts::LOG10_E, i * std::f64::consts::LOG10_E)
            }),
        ),
        _ => return Err("internal error: complex unary".into()),
    }
    Ok(())
}

fn cx_part<T: Cx>(part: Part, a: &[T], o: &mut [T::F]) {
    match part {
        Part::Re => map1(a, o, T::re),
        Part::Im => map1(a, o, T::im),
        Part::Abs => map1(a, o, T::abs),
    }
}

fn float_un<T: Float>(op: Un, a: &[T], o: &mut [T]) {
    // One monomorphic loop per operation.
    macro_rules! go {
        ($($v:ident),*) => {
            match op { $( Un::$v => map1(a, o, |x| T::un(Un::$v, x)), )* }
        };
    }
    go!(
        Neg, Abs, Sqrt, Exp, Log, Log2, Log10, Sin, Cos, Tan, Floor, Ceil, Rint, Square, Recip,
        Tanh, Sign, Invert, Conj
    );
}

fn int_un<T: Int>(op: Un, a: &[T], o: &mut [T]) -> Result<(), String> {
    match op {
        Un::Neg => map1(a, o, T::neg),
        Un::Abs => map1(a, o, T::abs),
        Un::Square => map1(a, o, |x| T::mul(x, x)),
        Un::Floor | Un::Ceil | Un::Rint => map1(a, o, |x| x),
        Un::Sign => map1(a, o, T::sign),
        Un::Invert => map1(a, o, T::not),
        _ => return Err("internal error: integer transcendental".into()),
    }
    Ok(())
}

fn cmp_kernel<T: Copy + PartialOrd>(op: CmpOp, a: Opnd<T>, b: Opnd<T>, o: &mut [B8]) {
    match op {
        CmpOp::Lt => map2k(a, b, o, |x, y| B8::from_bool(x < y)),
        CmpOp::Le => map2k(a, b, o, |x, y| B8::from_bool(x <= y)),
        CmpOp::Gt => map2k(a, b, o, |x, y| B8::from_bool(x > y)),
        CmpOp::Ge => map2k(a, b, o, |x, y| B8::from_bool(x >= y)),
        CmpOp::Eq => map2k(a, b, o, |x, y| B8::from_bool(x == y)),
        CmpOp::Ne => map2k(a, b, o, |x, y| B8::from_bool(x != y)),
    }
}

fn cast_kernel<S: Copy + CastTo<D>, D>(s: &[S], d: &mut [D]) {
    map1(s, d, |v| v.cast());
}

/// f16 ↔ f32 through `half`'s slice conversions (F16C when available).
fn cast_f16_f32(s: &[f16], d: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    s[..d.len()].convert_to_f32_slice(d);
}

fn cast_f32_f16(s: &[f32], d: &mut [f16]) {
    use half::slice::HalfFloatSliceExt;
    let n = d.len();
    d.convert_from_f32_slice(&s[..n]);
}

fn index_kernel(var: Var, n0: u64, g: &Geom, o: &mut [i64]) {
    let row = g.row_len.max(1);
    match var {
        Var::N => {
            for (t, v) in o.iter_mut().enumerate() {
                *v = (n0 + t as u64) as i64;
            }
        }
        Var::I | Var::K => {
            let (mut i, mut k) = (n0 / row, n0 % row);
            for v in o.iter_mut() {
                *v = if var == Var::I { i as i64 } else { k as i64 };
                k += 1;
                if k == row {
                    k = 0;
                    i += 1;
                }
            }
        }
        Var::J | Var::X => {
            let inner = g.inner.max(1);
            let dim1 = g.dim1.max(1);
            let k0 = n0 % row;
            let (mut j, mut r) = (k0 / inner, k0 % inner);
            for v in o.iter_mut() {
                *v = j as i64;
                r += 1;
                if r == inner {
                    r = 0;
                    j += 1;
                    if j == dim1 {
                        j = 0;
                    }
                }
            }
        }
    }
}

/// Runs `$body` with `$T` bound to the integer type of `$dt`, else `$other`.
macro_rules! with_int {
    ($dt:expr, $T:ident => $body:expr, $other:expr) => {
        match $dt {
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
            _ => $other,
        }
    };
}

/// Runs `$body` with `$T` bound to the complex type of `$dt` (complex64
/// or complex128; callers check).
macro_rules! with_cx {
    ($dt:expr, $T:ident => $body:expr) => {
        if $dt == DType::C64 {
            type $T = C32;
            $body
        } else {
            type $T = C64;
            $body
        }
    };
}

/// Runs one instruction over one chunk, into its register.
pub(crate) fn exec(inst: &Inst, ctx: &Ctx<'_>, regs: &mut [Buf], g: &Geom) -> Result<(), String> {
    let dst = inst.dst();
    let mut out = std::mem::take(&mut regs[dst]);
    let r = exec_into(inst, ctx, regs, out.bytes_mut(), g);
    regs[dst] = out;
    r
}

/// Runs one instruction over one chunk, into `out` (bytes of its dtype,
/// at least the chunk's length).
pub(crate) fn exec_into(
    inst: &Inst,
    ctx: &Ctx<'_>,
    regs: &[Buf],
    out: &mut [u8],
    g: &Geom,
) -> Result<(), String> {
    let len = ctx.len;
    match *inst {
        Inst::Index { var, .. } => index_kernel(var, ctx.n0, g, out_slice(out, len)?),
        Inst::Cast { src, from, to, .. } => match (from, to) {
            (DType::F16, DType::F32) => {
                cast_f16_f32(operand(src, ctx, regs)?, out_slice(out, len)?)
            }
            (DType::F32, DType::F16) => {
                cast_f32_f16(operand(src, ctx, regs)?, out_slice(out, len)?)
            }
            _ => with_any!(from, S => with_any!(to, D => {
                cast_kernel::<S, D>(operand(src, ctx, regs)?, out_slice(out, len)?)
            })),
        },
        Inst::Bin { op, dt, a, b, .. } => match dt {
            DType::C64 => cx_bin::<C32>(
                op,
                opnd(a, ctx, regs)?,
                opnd(b, ctx, regs)?,
                out_slice(out, len)?,
            )?,
            DType::C128 => cx_bin::<C64>(
                op,
                opnd(a, ctx, regs)?,
                opnd(b, ctx, regs)?,
                out_slice(out, len)?,
            )?,
            DType::Bool => bool_bin(
                op,
                opnd(a, ctx, regs)?,
                opnd(b, ctx, regs)?,
                out_slice(out, len)?,
            )?,
            DType::F32 => float_bin::<f32>(
                op,
                opnd(a, ctx, regs)?,
                opnd(b, ctx, regs)?,
                out_slice(out, len)?,
            )?,
            DType::F64 => float_bin::<f64>(
                op,
                opnd(a, ctx, regs)?,
                opnd(b, ctx, regs)?,
                out_slice(out, len)?,
            )?,
            _ => with_int!(dt, T => int_bin::<T>(
                op,
                opnd(a, ctx, regs)?,
                opnd(b, ctx, regs)?,
                out_slice(out, len)?,
            )?, return Err("internal error: f16 arithmetic".into())),
        },
        Inst::Cmp { op, dt, a, b, .. } if dt.is_complex() => with_cx!(dt, T => map2k(
            opnd::<T>(a, ctx, regs)?,
            opnd::<T>(b, ctx, regs)?,
            out_slice(out, len)?,
            |x, y| B8::from_bool(complex::cmp(op, x, y)),
        )),
        Inst::Cmp { op, dt, a, b, .. } => with_elem!(dt, T => cmp_kernel::<T>(
            op,
            opnd(a, ctx, regs)?,
            opnd(b, ctx, regs)?,
            out_slice(out, len)?,
        )),
        Inst::CmpIU { op, a, b, .. } => {
            let (a, b): (&[i64], &[u64]) = (operand(a, ctx, regs)?, operand(b, ctx, regs)?);
            let o = out_slice(out, len)?;
            map2(a, b, o, |x, y| {
                let ord = if x < 0 {
                    std::cmp::Ordering::Less
                } else {
                    (x as u64).cmp(&y)
                };
                B8::from_bool(op.holds(Some(ord)))
            });
        }
        Inst::Un { op, dt, a, .. } if dt.is_complex() => with_cx!(dt, T => {
            cx_un::<T>(op, operand(a, ctx, regs)?, out_slice(out, len)?)?
        }),
        Inst::Part { part, dt, a, .. } => match dt {
            DType::C64 => cx_part::<C32>(part, operand(a, ctx, regs)?, out_slice(out, len)?),
            _ => cx_part::<C64>(part, operand(a, ctx, regs)?, out_slice(out, len)?),
        },
        Inst::Un { op, dt, a, .. } => match dt {
            DType::F32 => float_un::<f32>(op, operand(a, ctx, regs)?, out_slice(out, len)?),
            DType::F64 => float_un::<f64>(op, operand(a, ctx, regs)?, out_slice(out, len)?),
            _ => with_int!(dt, T => int_un::<T>(op, operand(a, ctx, regs)?, out_slice(out, len)?)?,
                return Err("internal error: unary on bool or f16".into())),
        },
        Inst::Clip {
            dt,
            kind,
            x,
            lo,
            hi,
            ..
        } => match dt {
            DType::F32 => clip_float::<f32>(kind, x, lo, hi, ctx, regs, out_slice(out, len)?)?,
            DType::F64 => clip_float::<f64>(kind, x, lo, hi, ctx, regs, out_slice(out, len)?)?,
            _ => with_elem!(dt, T => map3(
                operand::<T>(x, ctx, regs)?,
                operand::<T>(lo, ctx, regs)?,
                operand::<T>(hi, ctx, regs)?,
                out_slice(out, len)?,
                |v, l, h| {
                    let t = if v < l { l } else { v };
                    if t > h { h } else { t }
                },
            )),
        },
        Inst::Where { dt, c, a, b, .. } => with_any!(dt, T => map3(
            operand::<B8>(c, ctx, regs)?,
            operand::<T>(a, ctx, regs)?,
            operand::<T>(b, ctx, regs)?,
            out_slice(out, len)?,
            |c, a, b| if c.get() { a } else { b },
        )),
    }
    Ok(())
}

fn clip_float<T: Float>(
    kind: ClipKind,
    x: Src,
    lo: Src,
    hi: Src,
    ctx: &Ctx<'_>,
    regs: &[Buf],
    o: &mut [T],
) -> Result<(), String> {
    let (x, lo, hi) = (
        operand::<T>(x, ctx, regs)?,
        operand::<T>(lo, ctx, regs)?,
        operand::<T>(hi, ctx, regs)?,
    );
    match kind {
        ClipKind::Scalar => map3(x, lo, hi, o, T::clip_scalar),
        ClipKind::Array => map3(x, lo, hi, o, T::clip_array),
    }
    Ok(())
}

/// Casts (or copies) the result for one chunk into `out` (bytes of `out_dt`).
pub(crate) fn store(
    src: Src,
    dt: DType,
    ctx: &Ctx<'_>,
    regs: &[Buf],
    out_dt: DType,
    out: &mut [u8],
) -> Result<(), String> {
    with_any!(dt, S => {
        let s: &[S] = operand(src, ctx, regs)?;
        with_any!(out_dt, D => {
            let d: &mut [D] = bytemuck::try_cast_slice_mut(out).map_err(|_| INTERNAL)?;
            if d.len() != s.len() {
                return Err(INTERNAL.into());
            }
            cast_kernel::<S, D>(s, d);
        })
    });
    Ok(())
}

/// Fills `out` (bytes of `dt`) with one scalar.
pub(crate) fn fill(value: Scalar, out: &mut [u8]) -> Result<(), String> {
    with_any!(value.dtype(), T => {
        let d: &mut [T] = bytemuck::try_cast_slice_mut(out).map_err(|_| INTERNAL)?;
        let v = T::from_scalar(value).ok_or(INTERNAL)?;
        d.fill(v);
    });
    Ok(())
}
