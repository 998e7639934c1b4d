//! The expression engine behind `mmrun apply --expr`: parse, type as NumPy 2
//! does, evaluate block-wise.
//!
//! `apply` promises that `EXPR` gives what NumPy ≥ 2 gives for
//! `out[...] = EXPR` (design.md, "Determinism and NumPy semantics"), so this
//! module owns three things and keeps them apart:
//!
//! * [`Expr::parse`]: Python's grammar for the subset we accept, with the
//!   1-based column of every error;
//! * [`Expr::compile`]: NumPy 2 / NEP 50 typing for a file dtype and shape,
//!   every refusal NumPy makes for the expression as a whole, and lowering to
//!   a flat program over typed registers;
//! * [`Compiled::eval_into`] / [`Compiled::eval_in_place`]: block-wise
//!   evaluation (numexpr's way: each instruction runs over a whole chunk with
//!   one dtype dispatch), then the store into the output column with NumPy's
//!   unsafe casting.
//!
//! ```
//! use mmrun::expr::{Column, ColumnMut, Expr};
//! use mmrun::DType;
//!
//! let c = Expr::parse("x * 2 + 1")?.compile(DType::F32, &[4])?;
//! let x = [1.0f32, 2.0, 3.0, 4.0];
//! let mut out = [0.0f32; 4];
//! let mut scratch = c.new_scratch(4);
//! c.eval_into(Column::F32(&x), 0, ColumnMut::F32(&mut out), &mut scratch)?;
//! assert_eq!(out, [3.0, 5.0, 7.0, 9.0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Tests compare against NumPy 2.4's own results
//! (`tests/data/gen_expr_cases.py`). Where NumPy cannot be matched exactly:
//!
//! * a float out of an integer dtype's range (or NaN) stored into that dtype
//!   is platform-specific in NumPy; the store uses Rust's `as`, which
//!   saturates and maps NaN to 0;
//! * `sqrt exp log log2 log10 sin cos tan` and non-integer `**` use the
//!   platform libm, NumPy its own SIMD code: results agree within a few ULP
//!   (1–2 seen for float32), not bit for bit;
//! * which zero `minimum`/`maximum`/`clip` return on a tie of −0.0 and 0.0,
//!   and which NaN payload comes out, follow NumPy's x86-64 loops; NaN
//!   payloads and signs are not promised;
//! * Python integer literals are held in 128 bits: a literal (or a
//!   literal-only result) beyond that is refused, and `/` of two literals
//!   beyond 2⁵³ rounds through float64 where Python rounds exactly;
//! * chained comparisons (`a < b < c`) are refused, as NumPy refuses them for
//!   arrays;
//! * bool elements are expected to be bytes 0 or 1, as NumPy writes them;
//! * complex64/complex128 (`x` of a `c8`/`c16` file, Python literals `2j`)
//!   compute `+ - * / **`, comparisons (NumPy's lexicographic order),
//!   `abs real imag conj angle sqrt exp log log2 log10 sin cos tan tanh
//!   minimum maximum where isnan isfinite isinf` and casts; arithmetic is bit-exact against
//!   NumPy's FMA loops, the C library's functions within a few ULP (see
//!   `complex.rs`); other functions NumPy computes on complex are refused.

mod compile;
mod complex;
// `pub(crate)` so the convert kernel casts with the same NumPy casts.
pub(crate) mod elem;
mod eval;
mod fpwarn;
mod parse;
mod pyval;
pub(crate) mod types;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use half::f16;

use crate::layout::DType;
use elem::{Buf, Scalar};
use eval::{Ctx, Program, Res, CHUNK};
use pyval::PyVal;

pub use fpwarn::FpWarnings;

/// An expression error: where (1-based column in the expression text) and
/// what. Displays as `column 7: unknown name 'y'`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// 1-based column (in characters) of the token the error is about.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ExprError {}

/// A parsed expression, not yet typed.
#[derive(Debug, Clone)]
pub struct Expr {
    text: String,
    ast: parse::Node,
}

impl Expr {
    /// Parses `text`. Syntax errors, unknown names and wrong argument
    /// counts are reported with their column.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        Ok(Expr {
            text: text.to_string(),
            ast: parse::parse(text)?,
        })
    }

    /// The text it was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Types the expression for an array of dtype `x` and `shape`, and
    /// compiles it. Refuses what NumPy refuses for the expression as a whole
    /// (a literal out of range for its dtype, an integer to a negative
    /// literal power, bool `-`), and `j` on an array of fewer than 2
    /// dimensions.
    pub fn compile(&self, x: DType, shape: &[u64]) -> Result<Compiled, ExprError> {
        let prog = compile::compile(&self.ast, x, shape)?;
        Ok(Compiled {
            prog: Arc::new(prog),
        })
    }
}

/// A compiled expression. Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct Compiled {
    prog: Arc<Program>,
}

/// Per-thread working memory of a [`Compiled`]: its registers.
#[derive(Debug)]
pub struct Scratch {
    regs: Vec<Buf>,
    cap: usize,
    /// NumPy's RuntimeWarnings of the elements evaluated so far.
    warnings: FpWarnings,
    origins: fpwarn::Origins,
}

impl Scratch {
    /// Counts what `inst`, just run into its register, raised.
    fn check(&mut self, inst: &eval::Inst, ctx: &Ctx<'_>) {
        let out = self.regs[inst.dst()].bytes();
        fpwarn::check(
            inst,
            ctx,
            &self.regs,
            out,
            &mut self.origins,
            &mut self.warnings,
        );
    }

    /// NumPy's floating-point RuntimeWarnings of every element evaluated
    /// with this scratch so far, counted by element.
    pub fn warnings(&self) -> &FpWarnings {
        &self.warnings
    }
}

/// Input elements of one dtype. `Bool` holds bytes 0/1.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub enum Column<'a> {
    Bool(&'a [u8]),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    U8(&'a [u8]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    F16(&'a [f16]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    /// complex64: `[real, imaginary]` pairs.
    C64(&'a [[f32; 2]]),
    /// complex128: `[real, imaginary]` pairs.
    C128(&'a [[f64; 2]]),
}

/// Output (or in-place) elements of one dtype. `Bool` holds bytes 0/1.
#[derive(Debug)]
#[allow(missing_docs)]
pub enum ColumnMut<'a> {
    Bool(&'a mut [u8]),
    I8(&'a mut [i8]),
    I16(&'a mut [i16]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    U8(&'a mut [u8]),
    U16(&'a mut [u16]),
    U32(&'a mut [u32]),
    U64(&'a mut [u64]),
    F16(&'a mut [f16]),
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    /// complex64: `[real, imaginary]` pairs.
    C64(&'a mut [[f32; 2]]),
    /// complex128: `[real, imaginary]` pairs.
    C128(&'a mut [[f64; 2]]),
}

impl<'a> Column<'a> {
    /// The dtype and raw bytes.
    fn raw(self) -> (DType, &'a [u8]) {
        use bytemuck::cast_slice as c;
        match self {
            Column::Bool(s) => (DType::Bool, s),
            Column::I8(s) => (DType::I8, c(s)),
            Column::I16(s) => (DType::I16, c(s)),
            Column::I32(s) => (DType::I32, c(s)),
            Column::I64(s) => (DType::I64, c(s)),
            Column::U8(s) => (DType::U8, s),
            Column::U16(s) => (DType::U16, c(s)),
            Column::U32(s) => (DType::U32, c(s)),
            Column::U64(s) => (DType::U64, c(s)),
            Column::F16(s) => (DType::F16, c(s)),
            Column::F32(s) => (DType::F32, c(s)),
            Column::F64(s) => (DType::F64, c(s)),
            Column::C64(s) => (DType::C64, c(s)),
            Column::C128(s) => (DType::C128, c(s)),
        }
    }

    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        self.raw().0
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        let (dt, b) = self.raw();
        b.len() / dt.itemsize() as usize
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Views `bytes` (aligned for `dtype`, a whole number of elements) as a
    /// column; `None` if they are not.
    pub fn from_bytes(dtype: DType, bytes: &'a [u8]) -> Option<Column<'a>> {
        // An empty slice may sit at any address: typed without a cast.
        fn c<T: bytemuck::Pod>(b: &[u8]) -> Result<&[T], bytemuck::PodCastError> {
            if b.is_empty() {
                Ok(&[])
            } else {
                bytemuck::try_cast_slice(b)
            }
        }
        Some(match dtype {
            DType::Bool => Column::Bool(bytes),
            DType::U8 => Column::U8(bytes),
            DType::I8 => Column::I8(c(bytes).ok()?),
            DType::I16 => Column::I16(c(bytes).ok()?),
            DType::I32 => Column::I32(c(bytes).ok()?),
            DType::I64 => Column::I64(c(bytes).ok()?),
            DType::U16 => Column::U16(c(bytes).ok()?),
            DType::U32 => Column::U32(c(bytes).ok()?),
            DType::U64 => Column::U64(c(bytes).ok()?),
            DType::F16 => Column::F16(c(bytes).ok()?),
            DType::F32 => Column::F32(c(bytes).ok()?),
            DType::F64 => Column::F64(c(bytes).ok()?),
            DType::C64 => Column::C64(c(bytes).ok()?),
            DType::C128 => Column::C128(c(bytes).ok()?),
            _ => return None,
        })
    }
}

impl<'a> ColumnMut<'a> {
    /// The dtype and raw bytes.
    fn raw(self) -> (DType, &'a mut [u8]) {
        use bytemuck::cast_slice_mut as c;
        match self {
            ColumnMut::Bool(s) => (DType::Bool, s),
            ColumnMut::I8(s) => (DType::I8, c(s)),
            ColumnMut::I16(s) => (DType::I16, c(s)),
            ColumnMut::I32(s) => (DType::I32, c(s)),
            ColumnMut::I64(s) => (DType::I64, c(s)),
            ColumnMut::U8(s) => (DType::U8, s),
            ColumnMut::U16(s) => (DType::U16, c(s)),
            ColumnMut::U32(s) => (DType::U32, c(s)),
            ColumnMut::U64(s) => (DType::U64, c(s)),
            ColumnMut::F16(s) => (DType::F16, c(s)),
            ColumnMut::F32(s) => (DType::F32, c(s)),
            ColumnMut::F64(s) => (DType::F64, c(s)),
            ColumnMut::C64(s) => (DType::C64, c(s)),
            ColumnMut::C128(s) => (DType::C128, c(s)),
        }
    }

    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            ColumnMut::Bool(_) => DType::Bool,
            ColumnMut::I8(_) => DType::I8,
            ColumnMut::I16(_) => DType::I16,
            ColumnMut::I32(_) => DType::I32,
            ColumnMut::I64(_) => DType::I64,
            ColumnMut::U8(_) => DType::U8,
            ColumnMut::U16(_) => DType::U16,
            ColumnMut::U32(_) => DType::U32,
            ColumnMut::U64(_) => DType::U64,
            ColumnMut::F16(_) => DType::F16,
            ColumnMut::F32(_) => DType::F32,
            ColumnMut::F64(_) => DType::F64,
            ColumnMut::C64(_) => DType::C64,
            ColumnMut::C128(_) => DType::C128,
        }
    }

    /// Views `bytes` (aligned for `dtype`, a whole number of elements) as a
    /// mutable column; `None` if they are not.
    pub fn from_bytes(dtype: DType, bytes: &'a mut [u8]) -> Option<ColumnMut<'a>> {
        // An empty slice may sit at any address: typed without a cast.
        fn c<T: bytemuck::Pod>(b: &mut [u8]) -> Result<&mut [T], bytemuck::PodCastError> {
            if b.is_empty() {
                Ok(&mut [])
            } else {
                bytemuck::try_cast_slice_mut(b)
            }
        }
        Some(match dtype {
            DType::Bool => ColumnMut::Bool(bytes),
            DType::U8 => ColumnMut::U8(bytes),
            DType::I8 => ColumnMut::I8(c(bytes).ok()?),
            DType::I16 => ColumnMut::I16(c(bytes).ok()?),
            DType::I32 => ColumnMut::I32(c(bytes).ok()?),
            DType::I64 => ColumnMut::I64(c(bytes).ok()?),
            DType::U16 => ColumnMut::U16(c(bytes).ok()?),
            DType::U32 => ColumnMut::U32(c(bytes).ok()?),
            DType::U64 => ColumnMut::U64(c(bytes).ok()?),
            DType::F16 => ColumnMut::F16(c(bytes).ok()?),
            DType::F32 => ColumnMut::F32(c(bytes).ok()?),
            DType::F64 => ColumnMut::F64(c(bytes).ok()?),
            DType::C64 => ColumnMut::C64(c(bytes).ok()?),
            DType::C128 => ColumnMut::C128(c(bytes).ok()?),
            _ => return None,
        })
    }
}

/// `out[...] = v` for a Python scalar `v` (the whole expression is a
/// literal): Python's conversion rules, which refuse what does not fit.
fn weak_store(v: PyVal, dt: DType) -> Result<Scalar, String> {
    let int = |i: i128| -> Result<Scalar, String> {
        let (lo, hi) = types::int_range(dt);
        if i < lo || i > hi {
            return Err(format!("Python integer {i} out of bounds for {dt}"));
        }
        Ok(types::int_scalar(i, dt))
    };
    match (v, dt) {
        (PyVal::Bool(b), _) => Ok(Scalar::Bool(b).cast(dt)),
        (v, DType::Bool) => Ok(Scalar::Bool(v.truthy())),
        (PyVal::Complex(re, im), d) if d.is_complex() => Ok(types::complex_scalar(re, im, d)),
        (PyVal::Complex(..), d) => Err(format!(
            "a Python complex cannot be stored into {d}: NumPy raises TypeError (float() argument must be a string or a real number, not 'complex'); take .real or abs() of it, or write to a complex64/complex128 file"
        )),
        (PyVal::Int(i), d) if d.is_float() || d.is_complex() => Ok(types::int_scalar(i, d)),
        (PyVal::Float(f), d) if d.is_complex() => Ok(types::complex_scalar(f, 0.0, d)),
        (PyVal::Int(i), _) => int(i),
        (PyVal::Float(f), d) if d.is_float() => Ok(types::float_scalar(f, d)),
        (PyVal::Float(f), _) => {
            if f.is_nan() {
                return Err("cannot convert float NaN to integer".into());
            }
            if f.is_infinite() {
                return Err("cannot convert float infinity to integer".into());
            }
            let t = f.trunc();
            if t.abs() >= 1.7e38 {
                return Err(format!("Python integer {t} out of bounds for {dt}"));
            }
            int(t as i128)
        }
    }
}

impl Compiled {
    /// NumPy's dtype of EXPR (for a literal-only expression, the dtype of
    /// `np.asarray(value)`).
    pub fn result_dtype(&self) -> DType {
        self.prog.result_dt
    }

    /// The dtype of `x` it was compiled for.
    pub fn x_dtype(&self) -> DType {
        self.prog.x_dt
    }

    /// Whether evaluation reads `x` (else `input` may be empty).
    pub fn reads_x(&self) -> bool {
        self.prog.reads_x
    }

    /// Whether the result can be stored into `out` dtype. Only a
    /// literal-only expression can fail (`out[...] = 300` into uint8 raises
    /// in NumPy); call this before starting workers.
    pub fn check_output(&self, out: DType) -> Result<(), ExprError> {
        match self.prog.result {
            Res::Weak(v) => weak_store(v, out).map(|_| ()).map_err(|m| ExprError {
                column: 1,
                message: m,
            }),
            Res::Val(..) => Ok(()),
        }
    }

    /// Working memory for blocks of up to `block_len` elements (longer
    /// blocks work too; they are evaluated in chunks anyway).
    pub fn new_scratch(&self, block_len: usize) -> Scratch {
        let cap = block_len.clamp(1, CHUNK);
        let mut regs: Vec<Buf> = self.prog.regs.iter().map(|&d| Buf::zeros(d, cap)).collect();
        for &(r, s) in &self.prog.consts {
            regs[r] = s.fill(cap);
        }
        Scratch {
            regs,
            cap,
            warnings: FpWarnings::default(),
            origins: fpwarn::Origins::default(),
        }
    }

    fn fits(&self, scratch: &Scratch) -> bool {
        scratch.regs.len() == self.prog.regs.len()
            && scratch
                .regs
                .iter()
                .zip(&self.prog.regs)
                .all(|(b, &d)| b.dtype() == d && b.len() >= scratch.cap)
    }

    /// Evaluates EXPR for the contiguous flat elements
    /// `first_n..first_n + len` (n = flat index in the file, i = n / row_len,
    /// k = n % row_len, j = axis-1 index) and stores the result, cast as
    /// NumPy's unsafe casting does, into `out`. `input` holds x for those
    /// elements (same length as `out`; ignored when [`reads_x`] is false).
    ///
    /// [`reads_x`]: Compiled::reads_x
    pub fn eval_into(
        &self,
        input: Column<'_>,
        first_n: u64,
        out: ColumnMut<'_>,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        let p = &*self.prog;
        let (out_dt, out_bytes) = out.raw();
        let size = out_dt.itemsize() as usize;
        let len = out_bytes.len() / size;
        let x = if p.reads_x {
            let (dt, bytes) = input.raw();
            if dt != p.x_dt {
                return Err(format!(
                    "input column is {dt}, the expression was compiled for {}",
                    p.x_dt
                ));
            }
            if bytes.len() / dt.itemsize() as usize != len {
                return Err(format!(
                    "input has {} elements, output {len}",
                    bytes.len() / dt.itemsize() as usize
                ));
            }
            Some((dt, bytes))
        } else {
            None
        };
        if !self.fits(scratch) {
            let warnings = std::mem::take(&mut scratch.warnings);
            *scratch = self.new_scratch(len);
            scratch.warnings = warnings;
        }
        let (body, last) = match p.insts.split_last() {
            Some((last, body)) if p.direct && out_dt == p.result_dt => (body, Some(last)),
            _ => (&p.insts[..], None),
        };
        let chunk = scratch.cap;
        let mut lo = 0;
        while lo < len {
            let n = chunk.min(len - lo);
            let ctx = Ctx {
                x,
                lo,
                len: n,
                n0: first_n + lo as u64,
            };
            for inst in body {
                eval::exec(inst, &ctx, &mut scratch.regs, &p.geom)?;
                scratch.check(inst, &ctx);
            }
            let out = &mut out_bytes[lo * size..(lo + n) * size];
            match last {
                Some(inst) => eval::exec_into(inst, &ctx, &scratch.regs, out, &p.geom)?,
                None => self.store_chunk(&ctx, &scratch.regs, out_dt, out)?,
            }
            self.check_last(last, &ctx, scratch, out_dt, out);
            lo += n;
        }
        Ok(())
    }

    /// Same as [`eval_into`](Compiled::eval_into), in place: `data` holds x
    /// (of the compiled dtype) and receives the result cast back to it.
    pub fn eval_in_place(
        &self,
        data: ColumnMut<'_>,
        first_n: u64,
        scratch: &mut Scratch,
    ) -> Result<(), String> {
        let p = &*self.prog;
        let (dt, bytes) = data.raw();
        if dt != p.x_dt {
            return Err(format!(
                "column is {dt}, the expression was compiled for {}",
                p.x_dt
            ));
        }
        if let Res::Val(eval::Src::X, _) = p.result {
            return Ok(());
        }
        let size = dt.itemsize() as usize;
        let len = bytes.len() / size;
        if !self.fits(scratch) {
            let warnings = std::mem::take(&mut scratch.warnings);
            *scratch = self.new_scratch(len);
            scratch.warnings = warnings;
        }
        let (body, last) = match p.insts.split_last() {
            Some((last, body)) if p.direct && dt == p.result_dt && !p.last_reads_x => {
                (body, Some(last))
            }
            _ => (&p.insts[..], None),
        };
        let chunk = scratch.cap;
        let mut lo = 0;
        while lo < len {
            let n = chunk.min(len - lo);
            let n0 = first_n + lo as u64;
            {
                let ctx = Ctx {
                    x: Some((dt, &*bytes)),
                    lo,
                    len: n,
                    n0,
                };
                for inst in body {
                    eval::exec(inst, &ctx, &mut scratch.regs, &p.geom)?;
                    scratch.check(inst, &ctx);
                }
            }
            // x of this chunk is no longer read: the result may overwrite it.
            let ctx = Ctx {
                x: None,
                lo,
                len: n,
                n0,
            };
            let out = &mut bytes[lo * size..(lo + n) * size];
            match last {
                Some(inst) => eval::exec_into(inst, &ctx, &scratch.regs, out, &p.geom)?,
                None => self.store_chunk(&ctx, &scratch.regs, dt, out)?,
            }
            self.check_last(last, &ctx, scratch, dt, out);
            lo += n;
        }
        Ok(())
    }

    /// Counts the warnings of the chunk's last step: the last instruction
    /// written into `out`, or the store of the result into it.
    fn check_last(
        &self,
        last: Option<&eval::Inst>,
        ctx: &Ctx<'_>,
        scratch: &mut Scratch,
        out_dt: DType,
        out: &[u8],
    ) {
        let Scratch {
            regs,
            warnings,
            origins,
            ..
        } = scratch;
        match (last, self.prog.result) {
            (Some(inst), _) => fpwarn::check(inst, ctx, regs, out, origins, warnings),
            (None, Res::Val(src, dt)) => {
                fpwarn::check_store(src, dt, ctx, regs, out_dt, out, origins, warnings)
            }
            (None, Res::Weak(_)) => {}
        }
    }

    fn store_chunk(
        &self,
        ctx: &Ctx<'_>,
        regs: &[Buf],
        out_dt: DType,
        out: &mut [u8],
    ) -> Result<(), String> {
        match self.prog.result {
            Res::Val(src, dt) => eval::store(src, dt, ctx, regs, out_dt, out),
            Res::Weak(v) => eval::fill(weak_store(v, out_dt)?, out),
        }
    }
}
