//! Syntax tree to flat program: NumPy 2 typing, refusals, constant folding.
//!
//! Every node gets the dtype NumPy would give it (NEP 50: Python literals
//! are weak, NumPy scalars and arrays strong), then becomes instructions over
//! typed registers ([`Inst`]). Literal-only subtrees are folded with Python's
//! arithmetic ([`pyval`]); subtrees of NumPy scalars (function calls on
//! literals) are folded by running the very kernels the program uses on
//! one-element registers, so a folded constant equals what evaluation would
//! give. f16 arithmetic is lowered to f32 with a rounding back to f16 after
//! every operation, which is what NumPy's half loops do.
//!
//! Everything NumPy refuses for an expression as a whole (an out-of-range
//! literal, a negative literal exponent on integers, bool subtraction and
//! negation) is refused here, with the column of the responsible token.

use super::elem::Scalar;
use super::eval::{exec, Arith, ClipKind, Ctx, Geom, Inst, Part, Program, Res, Src, Un};
use super::parse::{BinOp, CmpOp, Func, Node, NodeKind, Var};
use super::pyval::{self, PyVal};
use super::types::{
    default_dtype, float_loop, int_range, promote, promote_weak, py_to, py_to_numpy, weak_kind,
    IntFit,
};
use super::ExprError;
use crate::expr::elem::Buf;
use crate::layout::DType;

/// A typed (NumPy) value: an array or a NumPy scalar.
#[derive(Debug, Clone, Copy)]
struct Typed {
    dt: DType,
    src: Src,
    /// Depends on the array (has the array's shape).
    shaped: bool,
    /// Is an `ndarray` (shaped, or a 0-d result of `np.where`), not a NumPy
    /// scalar: decides whether `**` takes NumPy's fast scalar-power path.
    nd: bool,
}

/// A value during compilation.
#[derive(Debug, Clone, Copy)]
enum Val {
    /// A Python scalar (weak).
    Py(PyVal),
    /// A NumPy value.
    T(Typed),
}

struct Cx {
    x_dt: DType,
    ndim: usize,
    geom: Geom,
    insts: Vec<Inst>,
    regs: Vec<DType>,
    consts: Vec<Option<Scalar>>,
    temp: Vec<bool>,
    free: Vec<usize>,
    index: [Option<usize>; 4],
}

fn is_negative(s: Scalar) -> bool {
    matches!(s, Scalar::I8(v) if v < 0)
        || matches!(s, Scalar::I16(v) if v < 0)
        || matches!(s, Scalar::I32(v) if v < 0)
        || matches!(s, Scalar::I64(v) if v < 0)
}

/// NumPy's TypeError for a ufunc without a loop for the operands' types
/// (floats in a bitwise operation).
fn no_loop(name: &str) -> String {
    format!(
        "ufunc '{name}' not supported for the input types, and the inputs could not be safely coerced to any supported types according to the casting rule ''safe''"
    )
}

/// Whether `dt` is a float or complex dtype (NumPy's "inexact").
fn inexact(dt: DType) -> bool {
    dt.is_float() || dt.is_complex()
}

/// The refusal of a function NumPy computes on complex numbers and mmrun
/// does not.
fn not_on_complex(name: &str, dt: DType) -> String {
    format!(
        "np.{name} of {dt} is not computed by mmrun (it computes + - * / **, comparisons, abs real imag conj angle sqrt exp log log2 log10 sin cos tan tanh minimum maximum where isnan isfinite isinf on complex); mmrun exec runs your own NumPy code"
    )
}

fn err(col: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        column: col,
        message: message.into(),
    }
}

/// Compiles a parsed expression for an array of `x_dt` and `shape`.
pub(crate) fn compile(ast: &Node, x_dt: DType, shape: &[u64]) -> Result<Program, ExprError> {
    let prod = |s: &[u64]| s.iter().product::<u64>();
    let geom = Geom {
        row_len: if shape.len() > 1 {
            prod(&shape[1..])
        } else {
            1
        },
        inner: if shape.len() > 2 {
            prod(&shape[2..])
        } else {
            1
        },
        dim1: if shape.len() > 1 { shape[1] } else { 1 },
    };
    let mut cx = Cx {
        x_dt,
        ndim: shape.len(),
        geom,
        insts: Vec::new(),
        regs: Vec::new(),
        consts: Vec::new(),
        temp: Vec::new(),
        free: Vec::new(),
        index: [None; 4],
    };
    let val = cx.node(ast)?;
    let (result, result_dt) = match val {
        Val::Py(v) => {
            let dt = match v {
                PyVal::Bool(_) => DType::Bool,
                PyVal::Float(_) => DType::F64,
                PyVal::Complex(..) => DType::C128,
                PyVal::Int(i) if i > i64::MAX as i128 && i <= u64::MAX as i128 => DType::U64,
                PyVal::Int(_) => DType::I64,
            };
            (Res::Weak(v), dt)
        }
        Val::T(t) => (Res::Val(t.src, t.dt), t.dt),
    };
    let reads_x = matches!(result, Res::Val(Src::X, _))
        || cx.insts.iter().any(|i| i.srcs().contains(&Src::X));
    let last = cx.insts.last();
    let direct = matches!((&result, last), (Res::Val(Src::R(r), _), Some(i)) if i.dst() == *r);
    let last_reads_x = last.is_some_and(|i| i.srcs().contains(&Src::X));
    let consts = cx
        .consts
        .iter()
        .enumerate()
        .filter_map(|(r, c)| c.map(|s| (r, s)))
        .collect();
    Ok(Program {
        x_dt,
        insts: cx.insts,
        regs: cx.regs,
        consts,
        result,
        result_dt,
        geom,
        reads_x,
        direct,
        last_reads_x,
    })
}

impl Cx {
    fn is_const(&self, s: Src) -> bool {
        matches!(s, Src::C(_))
    }

    fn new_reg(&mut self, dt: DType, value: Option<Scalar>) -> usize {
        self.regs.push(dt);
        self.consts.push(value);
        self.temp.push(false);
        self.regs.len() - 1
    }

    fn alloc(&mut self, dt: DType) -> usize {
        if let Some(pos) = self.free.iter().position(|&r| self.regs[r] == dt) {
            return self.free.swap_remove(pos);
        }
        self.new_reg(dt, None)
    }

    fn release(&mut self, s: Src) {
        if let Src::R(r) = s {
            if self.temp[r] {
                self.temp[r] = false;
                self.free.push(r);
            }
        }
    }

    fn constant(&mut self, s: Scalar) -> Typed {
        let r = self.new_reg(s.dtype(), Some(s));
        Typed {
            dt: s.dtype(),
            src: Src::C(r),
            shaped: false,
            nd: false,
        }
    }

    /// Emits one instruction producing `dt` from `srcs`, or folds it when
    /// every source is a constant.
    fn emit(
        &mut self,
        dt: DType,
        srcs: &[Src],
        shaped: bool,
        nd: bool,
        col: usize,
        build: impl FnOnce(usize) -> Inst,
    ) -> Result<Typed, ExprError> {
        if srcs.iter().all(|&s| self.is_const(s)) {
            let dst = self.regs.len();
            let inst = build(dst);
            let mut regs: Vec<Buf> = self
                .consts
                .iter()
                .map(|c| c.map(|s| s.fill(1)).unwrap_or_default())
                .collect();
            regs.push(Buf::zeros(dt, 1));
            let ctx = Ctx {
                x: None,
                lo: 0,
                len: 1,
                n0: 0,
            };
            exec(&inst, &ctx, &mut regs, &self.geom).map_err(|m| err(col, m))?;
            let value = regs[dst]
                .first()
                .ok_or_else(|| err(col, "internal error: folding produced nothing"))?;
            let mut t = self.constant(value);
            t.shaped = shaped;
            t.nd = nd;
            return Ok(t);
        }
        let dst = self.alloc(dt);
        for &s in srcs {
            self.release(s);
        }
        self.temp[dst] = true;
        self.insts.push(build(dst));
        Ok(Typed {
            dt,
            src: Src::R(dst),
            shaped,
            nd,
        })
    }

    fn cast(&mut self, t: Typed, to: DType, col: usize) -> Result<Typed, ExprError> {
        if t.dt == to {
            return Ok(t);
        }
        let (src, from) = (t.src, t.dt);
        self.emit(to, &[src], t.shaped, t.nd, col, |dst| Inst::Cast {
            src,
            from,
            to,
            dst,
        })
    }

    /// Converts an operand to the promoted dtype `dt`.
    fn convert(&mut self, v: Val, dt: DType, fit: IntFit, col: usize) -> Result<Typed, ExprError> {
        match v {
            Val::Py(p) => {
                let s = py_to(p, dt, fit).map_err(|m| err(col, m))?;
                Ok(self.constant(s))
            }
            Val::T(t) => self.cast(t, dt, col),
        }
    }

    /// A NumPy value for a single function argument (`np.asarray(v)`).
    fn strong(&mut self, v: Val, col: usize) -> Result<Typed, ExprError> {
        match v {
            Val::Py(p) => {
                let s = py_to_numpy(p).map_err(|m| err(col, m))?;
                Ok(self.constant(s))
            }
            Val::T(t) => Ok(t),
        }
    }

    /// The dtype NumPy promotes these operands to.
    fn result_dtype(vals: &[Val]) -> DType {
        let mut strong: Option<DType> = None;
        let mut weak = None;
        let mut py = Vec::new();
        for v in vals {
            let d = match v {
                Val::T(t) => Some(t.dt),
                Val::Py(PyVal::Bool(_)) => Some(DType::Bool),
                Val::Py(p) => {
                    weak = weak.max(weak_kind(*p));
                    None
                }
            };
            if let Val::Py(p) = v {
                py.push(*p);
            }
            if let Some(d) = d {
                strong = Some(strong.map_or(d, |s| promote(s, d)));
            }
        }
        match strong {
            Some(s) => promote_weak(s, weak),
            None => default_dtype(&py),
        }
    }

    fn index(&mut self, var: Var) -> Typed {
        let slot = match var {
            Var::I => 0,
            Var::J => 1,
            Var::K => 2,
            _ => 3,
        };
        let r = match self.index[slot] {
            Some(r) => r,
            None => {
                let r = self.new_reg(DType::I64, None);
                self.insts.push(Inst::Index { var, dst: r });
                self.index[slot] = Some(r);
                r
            }
        };
        Typed {
            dt: DType::I64,
            src: Src::R(r),
            shaped: true,
            nd: true,
        }
    }

    fn node(&mut self, node: &Node) -> Result<Val, ExprError> {
        let col = node.col;
        match &node.kind {
            NodeKind::Lit(v) => Ok(Val::Py(*v)),
            NodeKind::Var(Var::X) => Ok(Val::T(Typed {
                dt: self.x_dt,
                src: Src::X,
                shaped: true,
                nd: true,
            })),
            NodeKind::Var(v) => {
                if *v == Var::I && self.ndim < 1 {
                    return Err(err(col, "'i' needs an array with at least 1 dimension"));
                }
                if *v == Var::J && self.ndim < 2 {
                    return Err(err(
                        col,
                        format!(
                            "'j' (the axis-1 index) needs an array with at least 2 dimensions; this one has {}",
                            self.ndim
                        ),
                    ));
                }
                Ok(Val::T(self.index(*v)))
            }
            NodeKind::Neg(a) => {
                let a = self.node(a)?;
                self.negate(a, col)
            }
            NodeKind::Pos(a) => match self.node(a)? {
                Val::Py(p) => Ok(Val::Py(pyval::pos(p))),
                Val::T(t) if t.dt == DType::Bool => Err(err(
                    col,
                    "ufunc 'positive' has no loop for bool (NumPy refuses +x on booleans)",
                )),
                v => Ok(v),
            },
            NodeKind::Invert(a) => {
                let a = self.node(a)?;
                self.invert(a, col)
            }
            NodeKind::Bin(op, a, b) => {
                let cols = [a.col, b.col];
                let a = self.node(a)?;
                let b = self.node(b)?;
                self.binary(*op, a, b, col, cols)
            }
            NodeKind::Cmp(op, a, b) => {
                let cols = [a.col, b.col];
                let a = self.node(a)?;
                let b = self.node(b)?;
                self.compare(*op, a, b, col, cols)
            }
            NodeKind::Call(f, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push((self.node(a)?, a.col));
                }
                self.call(*f, &vals, col)
            }
        }
    }

    fn negate(&mut self, a: Val, col: usize) -> Result<Val, ExprError> {
        match a {
            Val::Py(p) => pyval::neg(p).map(Val::Py).map_err(|m| err(col, m)),
            Val::T(t) if t.dt == DType::Bool => Err(err(
                col,
                "the numpy boolean negative, the `-` operator, is not supported",
            )),
            Val::T(t) => self.unary(Un::Neg, t, col).map(Val::T),
        }
    }

    /// `~a`: bitwise not of integers, logical not of bools; NumPy refuses
    /// floats.
    fn invert(&mut self, a: Val, col: usize) -> Result<Val, ExprError> {
        match a {
            Val::Py(p) => pyval::invert(p).map(Val::Py).map_err(|m| err(col, m)),
            Val::T(t) if inexact(t.dt) => Err(err(col, no_loop("invert"))),
            Val::T(t) if t.dt == DType::Bool => {
                let f = self.constant(Scalar::Bool(false));
                self.compare(CmpOp::Eq, Val::T(t), Val::T(f), col, [col, col])
            }
            Val::T(t) => self.unary(Un::Invert, t, col).map(Val::T),
        }
    }

    /// `& | ^ << >>` with NumPy's types: integers and bools (`<<`/`>>` of
    /// two bools run in int8), never floats.
    fn bitwise(
        &mut self,
        op: BinOp,
        a: Val,
        b: Val,
        col: usize,
        cols: [usize; 2],
    ) -> Result<Val, ExprError> {
        let (name, aop) = match op {
            BinOp::BitAnd => ("bitwise_and", Arith::BitAnd),
            BinOp::BitOr => ("bitwise_or", Arith::BitOr),
            BinOp::BitXor => ("bitwise_xor", Arith::BitXor),
            BinOp::Shl => ("left_shift", Arith::Shl),
            _ => ("right_shift", Arith::Shr),
        };
        let r = Self::result_dtype(&[a, b]);
        if inexact(r) {
            return Err(err(col, no_loop(name)));
        }
        let loop_dt = if r == DType::Bool && matches!(op, BinOp::Shl | BinOp::Shr) {
            DType::I8
        } else {
            r
        };
        let ta = self.convert(a, r, IntFit::Check, cols[0])?;
        let tb = self.convert(b, r, IntFit::Check, cols[1])?;
        let ta = self.cast(ta, loop_dt, col)?;
        let tb = self.cast(tb, loop_dt, col)?;
        self.arith(aop, ta, tb, col).map(Val::T)
    }

    /// A unary kernel on `t`'s dtype (f16 lowered to f32).
    fn unary(&mut self, op: Un, t: Typed, col: usize) -> Result<Typed, ExprError> {
        if t.dt == DType::F16 {
            let w = self.cast(t, DType::F32, col)?;
            let r = self.unary(op, w, col)?;
            return self.cast(r, DType::F16, col);
        }
        let (dt, a) = (t.dt, t.src);
        self.emit(dt, &[a], t.shaped, t.shaped, col, |dst| Inst::Un {
            op,
            dt,
            a,
            dst,
        })
    }

    /// A binary kernel on two operands already of dtype `dt`.
    fn arith(&mut self, op: Arith, a: Typed, b: Typed, col: usize) -> Result<Typed, ExprError> {
        let dt = a.dt;
        if dt == DType::F16 {
            let op = match op {
                Arith::Min => Arith::MinH,
                Arith::Max => Arith::MaxH,
                o => o,
            };
            let wa = self.cast(a, DType::F32, col)?;
            let wb = self.cast(b, DType::F32, col)?;
            let r = self.arith(op, wa, wb, col)?;
            return self.cast(r, DType::F16, col);
        }
        let shaped = a.shaped || b.shaped;
        let (sa, sb) = (a.src, b.src);
        self.emit(dt, &[sa, sb], shaped, shaped, col, |dst| Inst::Bin {
            op,
            dt,
            a: sa,
            b: sb,
            dst,
        })
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: Val,
        b: Val,
        col: usize,
        cols: [usize; 2],
    ) -> Result<Val, ExprError> {
        if let (Val::Py(x), Val::Py(y)) = (a, b) {
            return pyval::binop(op, x, y).map(Val::Py).map_err(|m| err(col, m));
        }
        if matches!(
            op,
            BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor | BinOp::Shl | BinOp::Shr
        ) {
            return self.bitwise(op, a, b, col, cols);
        }
        // `array ** 2`, `** -1`, `** 0.5`: NumPy's fast scalar power.
        if let (BinOp::Pow, Val::T(t), Val::Py(e)) = (op, a, b) {
            if t.nd {
                match e {
                    PyVal::Int(2) => {
                        let t = if t.dt == DType::Bool {
                            self.cast(t, DType::I8, col)?
                        } else {
                            t
                        };
                        return self.unary(Un::Square, t, col).map(Val::T);
                    }
                    PyVal::Int(-1) if inexact(t.dt) => {
                        return self.unary(Un::Recip, t, col).map(Val::T)
                    }
                    PyVal::Float(h) if h == 0.5 && inexact(t.dt) => {
                        return self.unary(Un::Sqrt, t, col).map(Val::T)
                    }
                    _ => {}
                }
            }
        }
        let r = Self::result_dtype(&[a, b]);
        let loop_dt = match op {
            BinOp::Add | BinOp::Mul => r,
            BinOp::Sub if r == DType::Bool => {
                return Err(err(
                    col,
                    "numpy boolean subtract, the `-` operator, is not supported",
                ))
            }
            BinOp::Sub => r,
            BinOp::Div if inexact(r) => r,
            BinOp::FloorDiv | BinOp::Rem if r.is_complex() => {
                let name = if op == BinOp::Rem {
                    "remainder"
                } else {
                    "floor_divide"
                };
                return Err(err(col, no_loop(name)));
            }
            BinOp::Div => DType::F64,
            BinOp::FloorDiv | BinOp::Rem | BinOp::Pow if r == DType::Bool => DType::I8,
            BinOp::FloorDiv | BinOp::Rem | BinOp::Pow => r,
            _ => unreachable!("bitwise operators are typed above"),
        };
        if op == BinOp::Pow && !inexact(loop_dt) {
            if let Val::Py(PyVal::Int(e)) = b {
                if e < 0 {
                    // NumPy checks the literal against the dtype first.
                    py_to(PyVal::Int(e), r, IntFit::Check).map_err(|m| err(cols[1], m))?;
                    return Err(err(
                        col,
                        "integers to negative integer powers are not allowed",
                    ));
                }
            }
        }
        // True division resolves straight to the float loop: a weak integer
        // is converted to it without a range check against the int dtype.
        let conv_dt = if op == BinOp::Div { loop_dt } else { r };
        let ta = self.convert(a, conv_dt, IntFit::Check, cols[0])?;
        let tb = self.convert(b, conv_dt, IntFit::Check, cols[1])?;
        let ta = self.cast(ta, loop_dt, col)?;
        let tb = self.cast(tb, loop_dt, col)?;
        if op == BinOp::Pow && !inexact(loop_dt) && !self.is_const(ta.src) {
            if let Src::C(r) = tb.src {
                if self.consts[r].is_some_and(is_negative) {
                    return Err(err(
                        col,
                        "integers to negative integer powers are not allowed",
                    ));
                }
            }
        }
        let aop = match op {
            BinOp::Add => Arith::Add,
            BinOp::Sub => Arith::Sub,
            BinOp::Mul => Arith::Mul,
            BinOp::Div => Arith::Div,
            BinOp::FloorDiv => Arith::FloorDiv,
            BinOp::Rem => Arith::Rem,
            BinOp::Pow => Arith::Pow,
            _ => unreachable!("bitwise operators are typed above"),
        };
        self.arith(aop, ta, tb, col).map(Val::T)
    }

    fn compare(
        &mut self,
        op: CmpOp,
        a: Val,
        b: Val,
        col: usize,
        cols: [usize; 2],
    ) -> Result<Val, ExprError> {
        match (a, b) {
            (Val::Py(x), Val::Py(y)) => {
                return pyval::compare(op, x, y)
                    .map(|b| Val::Py(PyVal::Bool(b)))
                    .map_err(|m| err(col, m));
            }
            // NumPy 2 compares integer arrays with out-of-range Python ints
            // by value: the answer is the same for every element.
            (Val::T(t), Val::Py(PyVal::Int(v))) | (Val::Py(PyVal::Int(v)), Val::T(t))
                if matches!(t.dt.kind(), 'i' | 'u') =>
            {
                let (lo, hi) = int_range(t.dt);
                if v < lo || v > hi {
                    let op = if matches!(a, Val::Py(_)) {
                        op.swapped()
                    } else {
                        op
                    };
                    // Every element compares to v as the range does.
                    let ord = if v > hi {
                        std::cmp::Ordering::Less
                    } else {
                        std::cmp::Ordering::Greater
                    };
                    self.release(t.src);
                    let mut c = self.constant(Scalar::Bool(op.holds(Some(ord))));
                    c.shaped = t.shaped;
                    c.nd = t.nd;
                    return Ok(Val::T(c));
                }
            }
            _ => {}
        }
        // int64 against uint64 compares by value in NumPy 2, not as float64.
        if let (Val::T(x), Val::T(y)) = (a, b) {
            let pair = (x.dt, y.dt);
            if pair == (DType::I64, DType::U64) || pair == (DType::U64, DType::I64) {
                let shaped = x.shaped || y.shaped;
                let (si, su, op) = if x.dt == DType::I64 {
                    (x.src, y.src, op)
                } else {
                    (y.src, x.src, op.swapped())
                };
                return self
                    .emit(DType::Bool, &[si, su], shaped, shaped, col, |dst| {
                        Inst::CmpIU {
                            op,
                            a: si,
                            b: su,
                            dst,
                        }
                    })
                    .map(Val::T);
            }
        }
        let r = Self::result_dtype(&[a, b]);
        let ta = self.convert(a, r, IntFit::Check, cols[0])?;
        let tb = self.convert(b, r, IntFit::Check, cols[1])?;
        let shaped = ta.shaped || tb.shaped;
        let (ta, tb) = if r == DType::F16 {
            (
                self.cast(ta, DType::F32, col)?,
                self.cast(tb, DType::F32, col)?,
            )
        } else {
            (ta, tb)
        };
        let dt = ta.dt;
        let (sa, sb) = (ta.src, tb.src);
        self.emit(DType::Bool, &[sa, sb], shaped, shaped, col, |dst| {
            Inst::Cmp {
                op,
                dt,
                a: sa,
                b: sb,
                dst,
            }
        })
        .map(Val::T)
    }

    /// A real part of the complex `t` (`Inst::Part`), of its parts' dtype.
    fn part(&mut self, part: Part, t: Typed, col: usize) -> Result<Typed, ExprError> {
        let dt = t.dt;
        let to = if dt == DType::C64 {
            DType::F32
        } else {
            DType::F64
        };
        let a = t.src;
        self.emit(to, &[a], t.shaped, t.shaped, col, |dst| Inst::Part {
            part,
            dt,
            a,
            dst,
        })
    }

    /// The functions of complex arguments (`None`: the real path applies).
    fn call_complex(
        &mut self,
        f: Func,
        args: &[(Val, usize)],
        col: usize,
    ) -> Option<Result<Val, ExprError>> {
        let complex = |v: &Val| match v {
            Val::T(t) => t.dt.is_complex(),
            Val::Py(p) => matches!(p, PyVal::Complex(..)),
        };
        let any = args.iter().any(|(v, _)| complex(v));
        let real_fn = matches!(f, Func::Real | Func::Imag | Func::Conj | Func::Angle);
        if !any && !real_fn {
            return None;
        }
        if matches!(f, Func::Cast(_) | Func::Min | Func::Max | Func::Where) {
            return None;
        }
        self.complex_fn(f, args, col).transpose()
    }

    fn complex_fn(
        &mut self,
        f: Func,
        args: &[(Val, usize)],
        col: usize,
    ) -> Result<Option<Val>, ExprError> {
        {
            let t = self.strong(args[0].0, args[0].1)?;
            let cx = t.dt.is_complex();
            let r = match f {
                Func::Real if cx => self.part(Part::Re, t, col)?,
                Func::Real => t,
                Func::Imag if cx => self.part(Part::Im, t, col)?,
                Func::Imag => {
                    // `np.imag` of a real array: zeros of its dtype.
                    self.release(t.src);
                    let zero = crate::expr::types::py_to(PyVal::Int(0), t.dt, IntFit::Check)
                        .map_err(|m| err(col, m))?;
                    let mut z = self.constant(zero);
                    z.shaped = t.shaped;
                    z.nd = t.nd;
                    z
                }
                Func::Conj if cx => self.unary(Un::Conj, t, col)?,
                // No bool loop: NumPy's conjugate of bools is int8.
                Func::Conj if t.dt == DType::Bool => self.cast(t, DType::I8, col)?,
                Func::Conj => t,
                Func::Angle => {
                    // `np.angle`: `arctan2(z.imag, z.real)`, or `arctan2(0, x)`.
                    let (im, re) = if cx {
                        let im = self.part(Part::Im, t, col)?;
                        let re = self.part(Part::Re, t, col)?;
                        (Val::T(im), Val::T(re))
                    } else {
                        (Val::Py(PyVal::Int(0)), Val::T(t))
                    };
                    return self
                        .call(Func::Arctan2, &[(im, col), (re, col)], col)
                        .map(Some);
                }
                Func::Abs => self.part(Part::Abs, t, col)?,
                Func::Sqrt
                | Func::Exp
                | Func::Log
                | Func::Log2
                | Func::Log10
                | Func::Sin
                | Func::Cos
                | Func::Tan
                | Func::Tanh => {
                    let op = match f {
                        Func::Sqrt => Un::Sqrt,
                        Func::Exp => Un::Exp,
                        Func::Log => Un::Log,
                        Func::Log2 => Un::Log2,
                        Func::Log10 => Un::Log10,
                        Func::Sin => Un::Sin,
                        Func::Tan => Un::Tan,
                        Func::Tanh => Un::Tanh,
                        _ => Un::Cos,
                    };
                    self.unary(op, t, col)?
                }
                Func::IsNan | Func::IsFinite | Func::IsInf => {
                    // Of the parts: NaN or inf in either, finite in both.
                    let re = self.part(Part::Re, t, col)?;
                    let im = self.part(Part::Im, t, col)?;
                    let a = self.call(f, &[(Val::T(re), col)], col)?;
                    let b = self.call(f, &[(Val::T(im), col)], col)?;
                    let op = if f == Func::IsFinite {
                        BinOp::BitAnd
                    } else {
                        BinOp::BitOr
                    };
                    return self.bitwise(op, a, b, col, [col; 2]).map(Some);
                }
                Func::Floor => return Err(err(col, no_loop("floor"))),
                Func::Ceil => return Err(err(col, no_loop("ceil"))),
                Func::Arctan2 => return Err(err(col, no_loop("arctan2"))),
                Func::Hypot => return Err(err(col, no_loop("hypot"))),
                other => {
                    let name = format!("{other:?}").to_lowercase();
                    return Err(err(col, not_on_complex(&name, t.dt)));
                }
            };
            Ok(Some(Val::T(r)))
        }
    }

    fn call(&mut self, f: Func, args: &[(Val, usize)], col: usize) -> Result<Val, ExprError> {
        if let Some(r) = self.call_complex(f, args, col) {
            return r;
        }
        match f {
            Func::Min | Func::Max => {
                let (a, b) = (args[0].0, args[1].0);
                let r = Self::result_dtype(&[a, b]);
                let ta = self.convert(a, r, IntFit::Check, args[0].1)?;
                let tb = self.convert(b, r, IntFit::Check, args[1].1)?;
                let op = if f == Func::Min {
                    Arith::Min
                } else {
                    Arith::Max
                };
                self.arith(op, ta, tb, col).map(Val::T)
            }
            Func::Clip => self.clip(args, col).map(Val::T),
            Func::Where => self.where_(args, col).map(Val::T),
            Func::Cast(dt) if !dt.is_computable() && !dt.is_complex() => Err(err(
                col,
                format!(
                    "casts to {dt} are not computed by mmrun (bool, integer, float, complex64 and complex128 are)"
                ),
            )),
            Func::Cast(dt) => match args[0].0 {
                // `np.int8(300)` is NumPy's OverflowError.
                Val::Py(p) => {
                    let s = py_to(p, dt, IntFit::Check).map_err(|m| err(args[0].1, m))?;
                    Ok(Val::T(self.constant(s)))
                }
                Val::T(t) => self.cast(t, dt, col).map(Val::T),
            },
            Func::Arctan2 | Func::Hypot => {
                let (a, b) = (args[0].0, args[1].0);
                let r = Self::result_dtype(&[a, b]);
                let ta = self.convert(a, r, IntFit::Check, args[0].1)?;
                let tb = self.convert(b, r, IntFit::Check, args[1].1)?;
                let fl = float_loop(r);
                let ta = self.cast(ta, fl, col)?;
                let tb = self.cast(tb, fl, col)?;
                let op = if f == Func::Arctan2 {
                    Arith::Atan2
                } else {
                    Arith::Hypot
                };
                self.arith(op, ta, tb, col).map(Val::T)
            }
            Func::IsNan | Func::IsFinite | Func::IsInf => {
                let t = self.strong(args[0].0, args[0].1)?;
                let t = if t.dt == DType::F16 {
                    self.cast(t, DType::F32, col)?
                } else {
                    t
                };
                let inf = Val::Py(PyVal::Float(f64::INFINITY));
                match f {
                    // NaN is the one value unequal to itself; integers and
                    // bools are never NaN or inf.
                    Func::IsNan => self.compare(CmpOp::Ne, Val::T(t), Val::T(t), col, [col; 2]),
                    _ if !t.dt.is_float() => {
                        let op = if f == Func::IsFinite {
                            CmpOp::Eq
                        } else {
                            CmpOp::Ne
                        };
                        self.compare(op, Val::T(t), Val::T(t), col, [col; 2])
                    }
                    _ => {
                        let a = self.unary(Un::Abs, t, col)?;
                        let op = if f == Func::IsFinite {
                            CmpOp::Lt
                        } else {
                            CmpOp::Eq
                        };
                        self.compare(op, Val::T(a), inf, col, [col; 2])
                    }
                }
            }
            Func::Rint => {
                let t = self.strong(args[0].0, args[0].1)?;
                let w = self.cast(t, float_loop(t.dt), col)?;
                self.unary(Un::Rint, w, col).map(Val::T)
            }
            Func::Sign => {
                let t = self.strong(args[0].0, args[0].1)?;
                if t.dt == DType::Bool {
                    return Err(err(
                        col,
                        "ufunc 'sign' did not contain a loop with signature matching types <class 'numpy.dtypes.BoolDType'> -> None",
                    ));
                }
                self.unary(Un::Sign, t, col).map(Val::T)
            }
            _ => {
                let t = self.strong(args[0].0, args[0].1)?;
                let is_float = t.dt.is_float();
                let out = match f {
                    Func::Abs if t.dt == DType::Bool || t.dt.kind() == 'u' => t,
                    Func::Abs => self.unary(Un::Abs, t, col)?,
                    Func::Floor if is_float => self.unary(Un::Floor, t, col)?,
                    Func::Ceil if is_float => self.unary(Un::Ceil, t, col)?,
                    Func::Round if is_float => self.unary(Un::Rint, t, col)?,
                    Func::Round if t.dt == DType::Bool => self.cast(t, DType::F16, col)?,
                    Func::Floor | Func::Ceil | Func::Round => t,
                    _ => {
                        let op = match f {
                            Func::Sqrt => Un::Sqrt,
                            Func::Exp => Un::Exp,
                            Func::Log => Un::Log,
                            Func::Log2 => Un::Log2,
                            Func::Log10 => Un::Log10,
                            Func::Sin => Un::Sin,
                            Func::Cos => Un::Cos,
                            Func::Tanh => Un::Tanh,
                            _ => Un::Tan,
                        };
                        let w = self.cast(t, float_loop(t.dt), col)?;
                        self.unary(op, w, col)?
                    }
                };
                Ok(Val::T(out))
            }
        }
    }

    fn clip(&mut self, args: &[(Val, usize)], col: usize) -> Result<Typed, ExprError> {
        let vals = [args[0].0, args[1].0, args[2].0];
        let r = Self::result_dtype(&vals);
        let fits = [IntFit::Check, IntFit::ClampLow, IntFit::ClampHigh];
        let mut t = Vec::with_capacity(3);
        for ((v, c), fit) in args.iter().zip(fits) {
            t.push(self.convert(*v, r, fit, *c)?);
        }
        // NumPy's clip takes a scalar path when both bounds are 0-d.
        let kind = if t[1].shaped || t[2].shaped {
            ClipKind::Array
        } else {
            ClipKind::Scalar
        };
        let kind = if r == DType::F16 {
            ClipKind::Scalar
        } else {
            kind
        };
        let shaped = t.iter().any(|v| v.shaped);
        if r == DType::F16 {
            for v in t.iter_mut() {
                *v = self.cast(*v, DType::F32, col)?;
            }
        }
        let dt = t[0].dt;
        let (x, lo, hi) = (t[0].src, t[1].src, t[2].src);
        let out = self.emit(dt, &[x, lo, hi], shaped, shaped, col, |dst| Inst::Clip {
            dt,
            kind,
            x,
            lo,
            hi,
            dst,
        })?;
        self.cast(out, r, col)
    }

    fn where_(&mut self, args: &[(Val, usize)], col: usize) -> Result<Typed, ExprError> {
        let c = match args[0].0 {
            Val::Py(p) => self.constant(Scalar::Bool(p.truthy())),
            Val::T(t) => self.cast(t, DType::Bool, args[0].1)?,
        };
        let (a, b) = (args[1].0, args[2].0);
        let r = Self::result_dtype(&[a, b]);
        let ta = self.convert(a, r, IntFit::Wrap, args[1].1)?;
        let tb = self.convert(b, r, IntFit::Wrap, args[2].1)?;
        let shaped = c.shaped || ta.shaped || tb.shaped;
        let (sc, sa, sb) = (c.src, ta.src, tb.src);
        self.emit(r, &[sc, sa, sb], shaped, true, col, |dst| Inst::Where {
            dt: r,
            c: sc,
            a: sa,
            b: sb,
            dst,
        })
    }
}
