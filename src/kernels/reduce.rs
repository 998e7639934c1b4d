//! The reduce kernel: `sum mean min max var std` along an axis, with
//! NumPy's meaning of the axis and of the result dtype, reproducible to the
//! bit whatever the worker count, schedule, spawn mode or ranks.
//!
//! Two kinds of axis:
//! - **Per-row** (`--axis k` for k ≥ 1, `--axis rows`): output row `r`
//!   depends on input row `r` only, so workers write their output rows
//!   straight into the output file ([`Kernel::run_io`]), as `apply --out`
//!   does.
//! - **Across rows** (`--axis 0`, `--axis all`): partial results combine in
//!   a fixed **dyadic tree over row indices**. Node `(s, L)` covers rows
//!   `s .. s + 2^L` (`s` a multiple of `2^L`); a leaf is one row; a node's
//!   value is `combine(left child, right child)`, and a node reaching past
//!   the last row is its left part alone. A worker ([`Kernel::scan`]) keeps
//!   a stack of finished nodes and merges two siblings as soon as both are
//!   on top — a binary counter — so it ends with the maximal nodes inside its
//!   rows; the coordinator's [`Forest`] combines the rest in the same tree.
//!   Every combine therefore happens on the same operands in the same order
//!   whoever computes it, and the result depends on the rows alone.
//!
//! Rows wider than a block are read in parts ([`Kernel::read_part`]): each
//! run of a row that a result reduces is cut into pieces at the multiples
//! of [`PIECE`] of the file row (fixed by the shape), and the pieces'
//! states combine left to right, whether the row arrives whole or in parts.
//!
//! Accumulation: floats in f64 (pairwise within a piece, as NumPy sums, and
//! the tree across rows), integers in i128 (exact: a file holds fewer than
//! 2^63 elements of at most 64 bits, so no sum can overflow), `var`/`std`
//! as `(mean, M2)` pairs — two passes within a row, Chan's parallel formula
//! across nodes. A result the output dtype cannot hold is an error naming
//! the row or column (NumPy would wrap or overflow silently).

use std::collections::BTreeMap;
use std::sync::Mutex;

use self::strided::Strided;

use half::f16;
use serde::{Deserialize, Serialize};

use super::{AnyRowsMut, Kernel, KernelSpec, RowsIn};
use crate::error::{Error, Result};
use crate::layout::DType;
pub use crate::pyfloat::python_float;

/// A reduction operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// `np.sum`.
    Sum,
    /// `np.mean`.
    Mean,
    /// `np.min` (NaN propagates).
    Min,
    /// `np.max` (NaN propagates).
    Max,
    /// `np.std` with `ddof`.
    Std,
    /// `np.var` with `ddof`.
    Var,
    /// `np.prod`.
    Prod,
    /// `np.any`: a bool, whether any element is nonzero (NaN counts).
    Any,
    /// `np.all`: a bool, whether every element is nonzero.
    All,
    /// `np.nansum`: NaN counts as zero.
    NanSum,
    /// `np.nanmin`: NaN ignored (all-NaN gives NaN).
    NanMin,
    /// `np.nanmax`.
    NanMax,
    /// `np.argmin`: the int64 index of the first minimum (of the first NaN,
    /// which NumPy takes as the minimum).
    ArgMin,
    /// `np.argmax`: the int64 index of the first maximum (or first NaN).
    ArgMax,
    /// `np.nanmean`: NaN ignored (an all-NaN slice gives NaN).
    NanMean,
    /// `np.nanstd` with `ddof`.
    NanStd,
    /// `np.nanvar` with `ddof`.
    NanVar,
}

impl Op {
    /// The operation's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Op::Sum => "sum",
            Op::Mean => "mean",
            Op::Min => "min",
            Op::Max => "max",
            Op::Std => "std",
            Op::Var => "var",
            Op::Prod => "prod",
            Op::Any => "any",
            Op::All => "all",
            Op::NanSum => "nansum",
            Op::NanMin => "nanmin",
            Op::NanMax => "nanmax",
            Op::ArgMin => "argmin",
            Op::ArgMax => "argmax",
            Op::NanMean => "nanmean",
            Op::NanStd => "nanstd",
            Op::NanVar => "nanvar",
        }
    }

    /// Whether the result is an index (`argmin`, `argmax`).
    pub fn is_arg(self) -> bool {
        matches!(self, Op::ArgMin | Op::ArgMax)
    }

    /// NumPy's result dtype for this operation on `input`: sums of bool
    /// and integers widen to the platform integer (int64, or uint64 for
    /// unsigned), means and variances of them are float64, floats keep
    /// their type, min and max keep the input's, indexes are int64.
    pub fn result_dtype(self, input: DType) -> DType {
        use DType::*;
        match self {
            Op::Any | Op::All => Bool,
            Op::ArgMin | Op::ArgMax => I64,
            Op::Sum | Op::Prod | Op::NanSum => match input {
                Bool | I8 | I16 | I32 | I64 => I64,
                U8 | U16 | U32 | U64 => U64,
                f => f,
            },
            Op::Mean | Op::Var | Op::Std | Op::NanMean | Op::NanVar | Op::NanStd => {
                if input.is_float() {
                    input
                } else {
                    F64
                }
            }
            Op::Min | Op::Max | Op::NanMin | Op::NanMax => input,
        }
    }

    fn kind(self, input: DType) -> Kind {
        match self {
            Op::ArgMin | Op::ArgMax => Kind::A,
            // NumPy's nan* functions are the plain ones on integers.
            Op::NanMean | Op::NanVar | Op::NanStd if input.is_float() => Kind::N,
            Op::Var | Op::Std | Op::NanVar | Op::NanStd => Kind::V,
            Op::Any | Op::All => Kind::I,
            _ if input.is_float() => Kind::F,
            _ => Kind::I,
        }
    }

    /// NumPy's error message for an empty reduction of this operation.
    fn empty_error(self) -> String {
        let ufunc = match self {
            Op::ArgMin | Op::ArgMax => {
                return format!("attempt to get {} of an empty sequence", self.name())
            }
            Op::Min => "minimum",
            Op::Max => "maximum",
            Op::NanMin => "fmin",
            Op::NanMax => "fmax",
            _ => "add",
        };
        format!("zero-size array to reduction operation {ufunc} which has no identity")
    }

    /// Whether the operation has no identity (an empty reduction is refused).
    fn needs_elements(self) -> bool {
        matches!(
            self,
            Op::Min | Op::Max | Op::NanMin | Op::NanMax | Op::ArgMin | Op::ArgMax
        )
    }
}

impl std::str::FromStr for Op {
    type Err = Error;
    fn from_str(s: &str) -> Result<Op> {
        Ok(match s {
            "sum" => Op::Sum,
            "mean" => Op::Mean,
            "min" => Op::Min,
            "max" => Op::Max,
            "std" => Op::Std,
            "var" => Op::Var,
            "prod" => Op::Prod,
            "any" => Op::Any,
            "all" => Op::All,
            "nansum" => Op::NanSum,
            "nanmin" => Op::NanMin,
            "nanmax" => Op::NanMax,
            "argmin" => Op::ArgMin,
            "argmax" => Op::ArgMax,
            "nanmean" => Op::NanMean,
            "nanstd" => Op::NanStd,
            "nanvar" => Op::NanVar,
            _ => {
                return Err(Error::refused(format!(
                    "unknown --op '{s}' (sum, mean, min, max, std, var, prod, any, all, argmin, argmax, nansum, nanmean, nanmin, nanmax, nanstd or nanvar)"
                )))
            }
        })
    }
}

/// The axis reduced, resolved against the input's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Axis {
    /// Axis 0: one result per element of a row, combined across rows.
    Zero,
    /// Every axis: one value, combined across rows.
    All,
    /// Every axis but 0: one value per row.
    Rows,
    /// Axis `axis` ≥ 1 (and the `extra` axes after it, for a tuple of
    /// consecutive axes such as `--axis 1,2`): within each row.
    Inner {
        /// The axis, counted in the file's shape (so ≥ 1).
        axis: usize,
        /// How many further consecutive axes are reduced with it.
        #[serde(default, skip_serializing_if = "is_zero")]
        extra: usize,
    },
    /// Axis 0 together with `axis` ≥ 1 and the `extra` consecutive axes
    /// after it (`--axis 0,2`): each row is reduced along those axes, and
    /// the rows' partial results combine across rows as for axis 0.
    ZeroInner {
        /// The first axis after 0, counted in the file's shape (so ≥ 1).
        axis: usize,
        /// How many further consecutive axes are reduced with it.
        #[serde(default, skip_serializing_if = "is_zero")]
        extra: usize,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Axis {
    /// Parses `--axis`: an integer as NumPy takes it (negative counts from
    /// the end), `rows`, `all`, or a tuple of axes (`1,2` or `(0, 1)`) as
    /// NumPy's `axis=(1, 2)`: axis 0 alone, every axis, or one run of
    /// consecutive axes after 0, with or without axis 0 (other tuples are
    /// refused).
    pub fn parse(text: &str, ndim: usize) -> Result<Axis> {
        let t = text.trim();
        if t.contains(',') || t.starts_with('(') {
            let inner = t.trim_start_matches('(').trim_end_matches(')');
            let mut axes = Vec::new();
            for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                axes.push(match Axis::parse(part, ndim)? {
                    Axis::Zero => 0,
                    Axis::Inner { axis, .. } => axis,
                    _ => {
                        return Err(Error::refused(format!(
                            "--axis '{text}': a tuple holds integers only"
                        )))
                    }
                });
            }
            axes.sort_unstable();
            if axes.windows(2).any(|w| w[0] == w[1]) {
                return Err(Error::refused(format!(
                    "--axis '{text}': duplicate value in 'axis'"
                )));
            }
            let consecutive = axes.windows(2).all(|w| w[1] == w[0] + 1);
            return match axes[..] {
                [] => Err(Error::refused(format!(
                    "--axis '{text}' is not an axis (an integer, a tuple such as 1,2, rows or all)"
                ))),
                _ if axes.len() == ndim => Ok(Axis::All),
                [0] => Ok(Axis::Zero),
                [first, .., last] if first >= 1 && consecutive && last + 1 == ndim && first == 1 => {
                    Ok(Axis::Rows)
                }
                [first, ..] if first >= 1 && consecutive => Ok(Axis::Inner {
                    axis: first,
                    extra: axes.len() - 1,
                }),
                [0, first, ref rest @ ..]
                    if rest.iter().enumerate().all(|(i, &a)| a == first + 1 + i) =>
                {
                    Ok(Axis::ZeroInner {
                        axis: first,
                        extra: rest.len(),
                    })
                }
                _ => Err(Error::refused(format!(
                    "--axis '{text}': mmrun reduces one run of consecutive axes after 0 (such as 1,2), with or without axis 0 (such as 0,2), or every axis; reduce in two steps for this tuple"
                ))),
            };
        }
        match text {
            "all" => return Ok(Axis::All),
            "rows" if ndim == 0 => {
                return Err(Error::refused(
                    "--axis rows needs an array with at least 1 dimension",
                ))
            }
            "rows" => return Ok(Axis::Rows),
            _ => {}
        }
        let n: i64 = text.parse().map_err(|_| {
            Error::refused(format!(
                "--axis '{text}' is not an axis (an integer, rows or all)"
            ))
        })?;
        let k = if n < 0 { n + ndim as i64 } else { n };
        if k < 0 || k >= ndim as i64 {
            return Err(Error::refused(format!(
                "axis {n} is out of bounds for array of dimension {ndim}"
            )));
        }
        Ok(match k {
            0 => Axis::Zero,
            k => Axis::Inner {
                axis: k as usize,
                extra: 0,
            },
        })
    }

    /// [`Axis::parse`] for `op`: `argmin` and `argmax` take one axis or
    /// all, as NumPy's do, so a tuple is refused even where it would mean
    /// axis 0 or every axis.
    pub fn parse_for(op: Op, text: &str, ndim: usize) -> Result<Axis> {
        let t = text.trim();
        if op.is_arg() && (t.contains(',') || t.starts_with('(')) {
            return Err(Error::refused(format!(
                "--op {} takes one axis or all, as np.{} does: not a tuple of axes",
                op.name(),
                op.name()
            )));
        }
        Axis::parse(text, ndim)
    }

    /// The axes as NumPy's `axis` argument spells them (`0`, `(0, 2)`).
    fn describe(self) -> String {
        match self {
            Axis::ZeroInner { axis, extra } => {
                let rest: Vec<String> = (axis..=axis + extra).map(|a| a.to_string()).collect();
                format!("(0, {})", rest.join(", "))
            }
            _ => "0".into(),
        }
    }

    /// The same axes of an array with one more axis at the end, which is
    /// kept: a complex array of `ndim` axes seen as its (real, imaginary)
    /// pairs. `None` where no such axes exist (every axis but 0 of a 1-D
    /// array, which reduces nothing).
    pub fn keeping_a_last_axis(self, ndim: usize) -> Option<Axis> {
        let after_0 = |inner: bool| {
            (ndim >= 2).then(|| {
                let (axis, extra) = (1, ndim - 2);
                if inner {
                    Axis::Inner { axis, extra }
                } else {
                    Axis::ZeroInner { axis, extra }
                }
            })
        };
        match self {
            Axis::All if ndim == 1 => Some(Axis::Zero),
            Axis::All => after_0(false),
            Axis::Rows => after_0(true),
            other => Some(other),
        }
    }

    /// Whether partial results combine across rows (in the dyadic tree).
    pub fn across_rows(self) -> bool {
        matches!(self, Axis::Zero | Axis::All | Axis::ZeroInner { .. })
    }

    /// The result's shape for an input of `shape`.
    pub fn out_shape(self, shape: &[u64]) -> Vec<u64> {
        match self {
            Axis::Zero => shape.iter().skip(1).copied().collect(),
            Axis::All => Vec::new(),
            Axis::Rows => vec![shape.first().copied().unwrap_or(1)],
            Axis::Inner { axis, extra } => shape
                .iter()
                .enumerate()
                .filter(|&(i, _)| i < axis || i > axis + extra)
                .map(|(_, &d)| d)
                .collect(),
            Axis::ZeroInner { axis, extra } => shape
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != 0 && (i < axis || i > axis + extra))
                .map(|(_, &d)| d)
                .collect(),
        }
    }

    /// Elements reduced into each result element.
    pub fn count(self, shape: &[u64]) -> u64 {
        match self {
            Axis::Zero => shape.first().copied().unwrap_or(1),
            Axis::All => shape.iter().product(),
            Axis::Rows => shape.iter().skip(1).product(),
            Axis::Inner { axis, extra } => shape[axis..=axis + extra].iter().product(),
            Axis::ZeroInner { axis, extra } => {
                shape[0] * shape[axis..=axis + extra].iter().product::<u64>()
            }
        }
    }
}

/// Parameters of a reduction, as they cross `exec` and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReduceParams {
    /// The operation.
    pub op: Op,
    /// The axis.
    pub axis: Axis,
    /// Delta degrees of freedom of `var` and `std`.
    pub ddof: u64,
    /// The input's dtype.
    pub dtype: DType,
    /// The input's shape.
    pub shape: Vec<u64>,
    /// The result's dtype.
    pub out_dtype: DType,
    /// Only these indices of axis 1 (`--cols`); `shape` is then the
    /// selection's, its axis 1 `cols.end - cols.start` long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<Cols>,
    /// The last axis holds the (real, imaginary) parts of complex
    /// elements, kept by the reduction: a mean then divides as NumPy's
    /// complex division by `n + 0j` does.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pairs: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// NumPy's mean of complex elements is their sum divided by `n + 0j`,
/// whose real part is `(re + im·0)/n` and imaginary part `(im − re·0)/n`:
/// a part is NaN when the other part is inf or NaN. Applied to the result
/// `values` (pairs of parts, as stored in `bytes` of `dtype`) of a mean
/// whose parts were each divided by `n`.
fn complex_mean_parts(dtype: DType, bytes: &mut [u8], values: Option<&mut [Value]>) {
    let size = dtype.itemsize() as usize;
    let get = |b: &[u8], i: usize| match size {
        4 => f64::from(f32::from_le_bytes(
            b[i * 4..i * 4 + 4].try_into().expect("4"),
        )),
        _ => f64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8")),
    };
    let put = |b: &mut [u8], i: usize| match size {
        4 => b[i * 4..i * 4 + 4].copy_from_slice(&f32::NAN.to_le_bytes()),
        _ => b[i * 8..i * 8 + 8].copy_from_slice(&f64::NAN.to_le_bytes()),
    };
    let n = bytes.len() / size / 2;
    let mut nan = Vec::new();
    for j in 0..n {
        let (re, im) = (get(bytes, 2 * j), get(bytes, 2 * j + 1));
        if !im.is_finite() {
            nan.push(2 * j);
        }
        if !re.is_finite() {
            nan.push(2 * j + 1);
        }
    }
    let mut values = values;
    for i in nan {
        put(bytes, i);
        if let Some(v) = values.as_deref_mut() {
            v[i] = Value::F(f64::NAN);
        }
    }
}

impl ReduceParams {
    /// Checks what NumPy would refuse, before any worker starts.
    pub fn check(&self) -> Result<()> {
        if self.dtype.is_complex() {
            return Err(Error::refused(complex_refusal(self.dtype)));
        }
        self.dtype
            .check_computable("reduce")
            .and_then(|()| self.out_dtype.check_computable("reduce"))
            .map_err(Error::refused)?;
        if let Some(c) = self.cols {
            if self.shape.len() < 2
                || c.start > c.end
                || c.end > c.of
                || self.shape[1] != c.end - c.start
            {
                return Err(Error::refused(
                    "bad reduce parameters: the column window does not match the shape",
                ));
            }
        }
        if let Axis::Inner { axis, extra } | Axis::ZeroInner { axis, extra } = self.axis {
            if axis == 0 || axis.saturating_add(extra) >= self.shape.len() {
                return Err(Error::refused(format!(
                    "axis {axis} is out of bounds for array of dimension {}",
                    self.shape.len()
                )));
            }
        }
        let several = match self.axis {
            Axis::Inner { extra, .. } => extra > 0,
            Axis::ZeroInner { .. } => true,
            Axis::Rows => self.shape.len() > 2,
            _ => false,
        };
        if self.op.is_arg() && several {
            return Err(Error::refused(format!(
                "--op {} takes one axis or all, as np.{} does: not a tuple of axes",
                self.op.name(),
                self.op.name()
            )));
        }
        let outputs: u64 = self.axis.out_shape(&self.shape).iter().product();
        if self.op.needs_elements() && self.axis.count(&self.shape) == 0 && outputs > 0 {
            return Err(Error::refused(self.op.empty_error()));
        }
        Ok(())
    }

    fn width(&self) -> usize {
        match self.axis {
            Axis::Zero | Axis::ZeroInner { .. } => {
                self.axis.out_shape(&self.shape).iter().product::<u64>() as usize
            }
            _ => 1,
        }
    }

    /// Elements each state of a leaf (one row) counts.
    fn unit(&self) -> u64 {
        match self.axis {
            Axis::All => self.shape.iter().skip(1).product(),
            Axis::ZeroInner { axis, extra } => self.shape[axis..=axis + extra].iter().product(),
            _ => 1,
        }
    }
}

/// Why reduce refuses a complex input, and the two commands per part that
/// give the answer: NumPy's sum and mean of a complex array are those of
/// its real and imaginary parts, its var the sum of theirs.
fn complex_refusal(dtype: DType) -> String {
    format!(
        "reduce computes sum and mean on {dtype}, not other operations: reduce its parts, which apply writes as real arrays: \
         mmrun apply FILE --expr 'real(x)' --out FILE-real.npy, mmrun apply FILE --expr 'imag(x)' --out FILE-imag.npy, \
         then mmrun reduce on each (np.sum/np.mean of x is real's + 1j*imag's, np.var is real's + imag's)"
    )
}

/// How partial results are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// f64: float sums, means, min, max.
    F,
    /// i128: integer and bool sums, means, min, max.
    I,
    /// (mean, M2) pairs: var and std.
    V,
    /// (count, mean, M2) of the elements that are not NaN: nanvar and
    /// nanstd of floats; (count, sum, 0) for nanmean.
    N,
    /// (key, index): argmin and argmax. The key orders elements as the
    /// operation does ([`Elem::key`]); the index is the element's.
    A,
}

/// The partial results of one tree node: one state per result element.
#[derive(Debug, Clone, PartialEq)]
pub enum States {
    /// f64 states.
    F(Vec<f64>),
    /// i128 states.
    I(Vec<i128>),
    /// (mean, M2) states.
    V(Vec<[f64; 2]>),
    /// (count, mean or sum, M2) states.
    N(Vec<[f64; 3]>),
    /// (key, index) states.
    A(Vec<[i128; 2]>),
}

impl States {
    fn len(&self) -> usize {
        match self {
            States::F(v) => v.len(),
            States::I(v) => v.len(),
            States::V(v) => v.len(),
            States::N(v) => v.len(),
            States::A(v) => v.len(),
        }
    }

    /// `width` states before any element, or an error when the memory for
    /// them cannot be had (a row of billions of elements along axis 0).
    fn identity(op: Op, kind: Kind, width: usize) -> std::result::Result<States, String> {
        let one = matches!(op, Op::Prod | Op::All);
        Ok(match kind {
            Kind::F => States::F(states_of_len(width, if one { 1.0 } else { 0.0 })?),
            Kind::I => States::I(states_of_len(width, one as i128)?),
            Kind::V => States::V(states_of_len(width, [0.0; 2])?),
            Kind::N => States::N(states_of_len(width, [0.0; 3])?),
            Kind::A => States::A(states_of_len(width, <[i128; 2]>::identity(op))?),
        })
    }

    fn bytes(&self) -> &[u8] {
        match self {
            States::F(v) => bytemuck::cast_slice(v),
            States::I(v) => bytemuck::cast_slice(v),
            States::V(v) => bytemuck::cast_slice(v),
            States::N(v) => bytemuck::cast_slice(v),
            States::A(v) => bytemuck::cast_slice(v),
        }
    }

    fn tag(&self) -> u8 {
        match self {
            States::F(_) => b'f',
            States::I(_) => b'i',
            States::V(_) => b'v',
            States::N(_) => b'n',
            States::A(_) => b'a',
        }
    }

    fn from_bytes(tag: u8, b: &[u8]) -> Option<States> {
        // Copy into typed vectors: the bytes may sit at any alignment.
        let v = match tag {
            b'f' if b.len().is_multiple_of(8) => States::F(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8")))
                    .collect(),
            ),
            b'i' if b.len().is_multiple_of(16) => States::I(
                b.chunks_exact(16)
                    .map(|c| i128::from_le_bytes(c.try_into().expect("16")))
                    .collect(),
            ),
            b'v' if b.len().is_multiple_of(16) => States::V(
                b.chunks_exact(16)
                    .map(|c| {
                        [
                            f64::from_le_bytes(c[..8].try_into().expect("8")),
                            f64::from_le_bytes(c[8..].try_into().expect("8")),
                        ]
                    })
                    .collect(),
            ),
            b'n' if b.len().is_multiple_of(24) => States::N(
                b.chunks_exact(24)
                    .map(|c| {
                        let f = |i: usize| f64::from_le_bytes(c[i..i + 8].try_into().expect("8"));
                        [f(0), f(8), f(16)]
                    })
                    .collect(),
            ),
            b'a' if b.len().is_multiple_of(32) => States::A(
                b.chunks_exact(32)
                    .map(|c| {
                        let i =
                            |k: usize| i128::from_le_bytes(c[k..k + 16].try_into().expect("16"));
                        [i(0), i(16)]
                    })
                    .collect(),
            ),
            _ => return None,
        };
        Some(v)
    }
}

/// One finished node of the dyadic tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// First row covered (a multiple of `2^level`).
    pub start: u64,
    /// The node covers `2^level` rows.
    pub level: u32,
    /// Its partial results.
    pub states: States,
}

/// Nodes in mmrun's exact interchange form: little-endian bytes of the
/// states (f64 bit patterns, i128 two's complement), hex in JSON reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// First row covered.
    pub start: u64,
    /// Level: the node covers `2^level` rows.
    pub level: u32,
    /// `f` (f64), `i` (i128), `v` ((mean, M2) f64 pairs), `n` ((count,
    /// mean, M2) f64 triples) or `a` ((key, index) i128 pairs).
    pub kind: String,
    /// The states' little-endian bytes, as hex.
    pub data: String,
}

impl Node {
    /// Appends the node's binary form to `out`.
    fn encode(&self, out: &mut Vec<u8>) {
        let b = self.states.bytes();
        out.extend_from_slice(&self.start.to_le_bytes());
        out.extend_from_slice(&self.level.to_le_bytes());
        out.push(self.states.tag());
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    }

    /// Reads nodes in the binary form workers hand back ([`Kernel::take_result`]).
    pub fn decode_all(mut b: &[u8]) -> Result<Vec<Node>> {
        let bad = || Error::failed("a worker's partial results are malformed");
        let mut nodes = Vec::new();
        while !b.is_empty() {
            if b.len() < 21 {
                return Err(bad());
            }
            let start = u64::from_le_bytes(b[..8].try_into().expect("8"));
            let level = u32::from_le_bytes(b[8..12].try_into().expect("4"));
            let tag = b[12];
            let len = u64::from_le_bytes(b[13..21].try_into().expect("8")) as usize;
            let data = b.get(21..21 + len).ok_or_else(bad)?;
            let states = States::from_bytes(tag, data).ok_or_else(bad)?;
            nodes.push(Node {
                start,
                level,
                states,
            });
            b = &b[21 + len..];
        }
        Ok(nodes)
    }

    /// The node as a report record.
    pub fn record(&self) -> NodeRecord {
        NodeRecord {
            start: self.start,
            level: self.level,
            kind: (self.states.tag() as char).to_string(),
            data: crate::hex::encode(self.states.bytes()),
        }
    }

    /// A node back from a report record.
    pub fn from_record(r: &NodeRecord) -> Result<Node> {
        let bad = || Error::refused(format!("a partial at row {} is malformed", r.start));
        if r.kind.len() != 1 {
            return Err(bad());
        }
        let bytes = crate::hex::decode(&r.data).ok_or_else(bad)?;
        let states = States::from_bytes(r.kind.as_bytes()[0], &bytes).ok_or_else(bad)?;
        Ok(Node {
            start: r.start,
            level: r.level,
            states,
        })
    }
}

// ---------------------------------------------------------------------------
// Elements and states.

/// An element type the kernel reads. Bool is read as its byte (0 or 1).
trait Elem: bytemuck::Pod {
    fn f(self) -> f64;
    fn i(self) -> i128;
    /// The element's place in the order of `argmin`/`argmax` (`op`): its
    /// value for integers; for floats an integer in the same order as the
    /// value (-0.0 equal to 0.0), NaN above every value for `argmax` and
    /// below every value for `argmin`, since NumPy returns its first NaN.
    #[inline(always)]
    fn key(self, op: Op) -> i128 {
        let f = self.f();
        if f.is_nan() {
            return if op == Op::ArgMax {
                i128::MAX
            } else {
                i128::MIN
            };
        }
        let b = (if f == 0.0 { 0.0 } else { f }).to_bits() as i64;
        (if b < 0 { b ^ i64::MAX } else { b }) as i128
    }
}

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            #[inline(always)]
            fn f(self) -> f64 { self as f64 }
            #[inline(always)]
            fn i(self) -> i128 { self as i128 }
            #[inline(always)]
            fn key(self, _: Op) -> i128 { self as i128 }
        }
    )*};
}
int_elem!(u8, i8, i16, i32, i64, u16, u32, u64);

impl Elem for f32 {
    #[inline(always)]
    fn f(self) -> f64 {
        self as f64
    }
    fn i(self) -> i128 {
        self as i128
    }
}

impl Elem for f64 {
    #[inline(always)]
    fn f(self) -> f64 {
        self
    }
    fn i(self) -> i128 {
        self as i128
    }
}

impl Elem for f16 {
    #[inline(always)]
    fn f(self) -> f64 {
        self.to_f64()
    }
    fn i(self) -> i128 {
        self.to_f64() as i128
    }
}

/// `b` viewed as elements of `T`. An empty slice (a zero-size array, or a
/// block with no elements) may sit at any address, which `cast_slice`
/// refuses for types wider than a byte: it is typed without a cast.
fn typed_slice<T: bytemuck::Pod>(b: &[u8]) -> &[T] {
    if b.is_empty() {
        &[]
    } else {
        bytemuck::cast_slice(b)
    }
}

/// Calls `$f::<T>(typed slice, args…)` with the slice of `$bytes` typed by
/// `$dtype`: one dispatch per block, never per element.
macro_rules! typed {
    ($dtype:expr, $bytes:expr, $f:ident ( $($arg:expr),* )) => {{
        use self::typed_slice as c;
        match $dtype {
            DType::Bool | DType::U8 => $f::<u8>($bytes, $($arg),*),
            DType::I8 => $f::<i8>(c($bytes), $($arg),*),
            DType::I16 => $f::<i16>(c($bytes), $($arg),*),
            DType::I32 => $f::<i32>(c($bytes), $($arg),*),
            DType::I64 => $f::<i64>(c($bytes), $($arg),*),
            DType::U16 => $f::<u16>(c($bytes), $($arg),*),
            DType::U32 => $f::<u32>(c($bytes), $($arg),*),
            DType::U64 => $f::<u64>(c($bytes), $($arg),*),
            DType::F16 => $f::<f16>(c($bytes), $($arg),*),
            DType::F32 => $f::<f32>(c($bytes), $($arg),*),
            DType::F64 => $f::<f64>(c($bytes), $($arg),*),
            // Refused when the reduction is built (`DType::check_computable`).
            other => return Err(format!("reduce does not compute on {other}")),
        }
    }};
}

/// NaN-propagating minimum; on ties the left operand, so the result of a
/// fixed sequence of combines is fixed too.
#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || (!b.is_nan() && a <= b) {
        a
    } else {
        b
    }
}

#[inline(always)]
fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || (!b.is_nan() && a >= b) {
        a
    } else {
        b
    }
}

/// `np.fmin`: NaN ignored unless both are NaN; on ties the left operand.
#[inline(always)]
fn nanmin(a: f64, b: f64) -> f64 {
    if b.is_nan() || (!a.is_nan() && a <= b) {
        a
    } else {
        b
    }
}

#[inline(always)]
fn nanmax(a: f64, b: f64) -> f64 {
    if b.is_nan() || (!a.is_nan() && a >= b) {
        a
    } else {
        b
    }
}

/// An element as an integer state: its truth for `any`/`all`, its value
/// otherwise.
#[inline(always)]
fn ival<T: Elem>(op: Op, v: T) -> i128 {
    match op {
        Op::Any | Op::All => (v.f() != 0.0) as i128,
        _ => v.i(),
    }
}

/// An element as a float state: NaN is zero for `nansum`.
#[inline(always)]
fn fval<T: Elem>(op: Op, v: T) -> f64 {
    let f = v.f();
    if op == Op::NanSum && f.is_nan() {
        0.0
    } else {
        f
    }
}

/// A state of one element, as axis 0 starts each column from the rows.
trait ZeroState: State {
    fn of_elem<T: Elem>(op: Op, row: u64, v: T) -> Self;
}

impl ZeroState for f64 {
    #[inline(always)]
    fn of_elem<T: Elem>(op: Op, _: u64, v: T) -> f64 {
        fval(op, v)
    }
}

impl ZeroState for i128 {
    #[inline(always)]
    fn of_elem<T: Elem>(op: Op, _: u64, v: T) -> i128 {
        ival(op, v)
    }
}

impl ZeroState for [f64; 2] {
    #[inline(always)]
    fn of_elem<T: Elem>(_: Op, _: u64, v: T) -> [f64; 2] {
        [v.f(), 0.0]
    }
}

impl ZeroState for [f64; 3] {
    /// One element: counted unless NaN (its sum and mean are itself).
    #[inline(always)]
    fn of_elem<T: Elem>(_: Op, _: u64, v: T) -> [f64; 3] {
        if v.f().is_nan() {
            [0.0; 3]
        } else {
            [1.0, v.f(), 0.0]
        }
    }
}

impl ZeroState for [i128; 2] {
    /// np.argmin(axis=0): the index is the row.
    #[inline(always)]
    fn of_elem<T: Elem>(op: Op, row: u64, v: T) -> [i128; 2] {
        [v.key(op), row as i128]
    }
}

/// The states of row `row`'s elements `x` along axis 0, into `out`.
fn zero_states<T: Elem, S: ZeroState>(op: Op, row: u64, x: &[T], out: &mut [S]) {
    out.iter_mut()
        .zip(x)
        .for_each(|(o, &v)| *o = S::of_elem(op, row, v));
}

/// Chan et al.'s combine of two (mean, M2) pairs over `na` and `nb`
/// elements.
#[inline(always)]
fn chan(a: &mut [f64; 2], b: [f64; 2], na: u64, nb: u64) {
    if nb == 0 {
        return;
    }
    if na == 0 {
        *a = b;
        return;
    }
    let n = (na + nb) as f64;
    let d = b[0] - a[0];
    a[0] += d * (nb as f64 / n);
    a[1] += b[1] + d * d * (na as f64 * (nb as f64 / n));
}

/// A partial-result type: how two nodes' states combine.
trait State: Copy + Send + 'static {
    fn combine(op: Op, a: &mut [Self], b: &[Self], na: u64, nb: u64);
    /// The state `st` holds (of this kind).
    fn of(st: St) -> Self;
    fn wrap(v: Vec<Self>) -> States;
    fn unwrap(s: &mut States) -> &mut Vec<Self>;
    fn zero() -> Self;
}

impl State for f64 {
    fn combine(op: Op, a: &mut [f64], b: &[f64], _: u64, _: u64) {
        match op {
            Op::Min => a.iter_mut().zip(b).for_each(|(x, &y)| *x = fmin(*x, y)),
            Op::Max => a.iter_mut().zip(b).for_each(|(x, &y)| *x = fmax(*x, y)),
            Op::NanMin => a.iter_mut().zip(b).for_each(|(x, &y)| *x = nanmin(*x, y)),
            Op::NanMax => a.iter_mut().zip(b).for_each(|(x, &y)| *x = nanmax(*x, y)),
            Op::Prod => a.iter_mut().zip(b).for_each(|(x, &y)| *x *= y),
            _ => a.iter_mut().zip(b).for_each(|(x, &y)| *x += y),
        }
    }
    fn of(st: St) -> f64 {
        match st {
            St::F(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn wrap(v: Vec<f64>) -> States {
        States::F(v)
    }
    fn unwrap(s: &mut States) -> &mut Vec<f64> {
        match s {
            States::F(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn zero() -> f64 {
        0.0
    }
}

impl State for i128 {
    fn combine(op: Op, a: &mut [i128], b: &[i128], _: u64, _: u64) {
        match op {
            Op::Min | Op::NanMin | Op::All => {
                a.iter_mut().zip(b).for_each(|(x, &y)| *x = (*x).min(y))
            }
            Op::Max | Op::NanMax | Op::Any => {
                a.iter_mut().zip(b).for_each(|(x, &y)| *x = (*x).max(y))
            }
            Op::Prod => a
                .iter_mut()
                .zip(b)
                .for_each(|(x, &y)| *x = (*x).saturating_mul(y)),
            _ => a.iter_mut().zip(b).for_each(|(x, &y)| *x += y),
        }
    }
    fn of(st: St) -> i128 {
        match st {
            St::I(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn wrap(v: Vec<i128>) -> States {
        States::I(v)
    }
    fn unwrap(s: &mut States) -> &mut Vec<i128> {
        match s {
            States::I(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn zero() -> i128 {
        0
    }
}

impl State for [f64; 2] {
    fn combine(_: Op, a: &mut [[f64; 2]], b: &[[f64; 2]], na: u64, nb: u64) {
        a.iter_mut().zip(b).for_each(|(x, &y)| chan(x, y, na, nb));
    }
    fn of(st: St) -> [f64; 2] {
        match st {
            St::V(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn wrap(v: Vec<[f64; 2]>) -> States {
        States::V(v)
    }
    fn unwrap(s: &mut States) -> &mut Vec<[f64; 2]> {
        match s {
            States::V(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn zero() -> [f64; 2] {
        [0.0; 2]
    }
}

/// Chan et al.'s combine of two (count, mean, M2) triples, which carry
/// their own counts (NaN elements are not counted).
#[inline(always)]
fn chan_counted(a: &mut [f64; 3], b: [f64; 3]) {
    if b[0] == 0.0 {
        return;
    }
    if a[0] == 0.0 {
        *a = b;
        return;
    }
    let (na, nb) = (a[0], b[0]);
    let n = na + nb;
    let d = b[1] - a[1];
    a[1] += d * (nb / n);
    a[2] += b[2] + d * d * (na * (nb / n));
    a[0] = n;
}

impl State for [f64; 3] {
    fn combine(op: Op, a: &mut [[f64; 3]], b: &[[f64; 3]], _: u64, _: u64) {
        match op {
            // (count, sum): NumPy's nanmean is nansum / count.
            Op::NanMean => a.iter_mut().zip(b).for_each(|(x, y)| {
                x[0] += y[0];
                x[1] += y[1];
            }),
            _ => a.iter_mut().zip(b).for_each(|(x, &y)| chan_counted(x, y)),
        }
    }
    fn of(st: St) -> [f64; 3] {
        match st {
            St::N(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn wrap(v: Vec<[f64; 3]>) -> States {
        States::N(v)
    }
    fn unwrap(s: &mut States) -> &mut Vec<[f64; 3]> {
        match s {
            States::N(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn zero() -> [f64; 3] {
        [0.0; 3]
    }
}

/// Whether key `b` replaces key `a` for `argmin`/`argmax`: only when
/// strictly better, so the left operand (the lower index) wins ties.
#[inline(always)]
fn arg_better(op: Op, b: i128, a: i128) -> bool {
    if op == Op::ArgMax {
        b > a
    } else {
        b < a
    }
}

impl State for [i128; 2] {
    fn combine(op: Op, a: &mut [[i128; 2]], b: &[[i128; 2]], _: u64, _: u64) {
        a.iter_mut().zip(b).for_each(|(x, &y)| {
            if arg_better(op, y[0], x[0]) {
                *x = y;
            }
        });
    }
    fn of(st: St) -> [i128; 2] {
        match st {
            St::A(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn wrap(v: Vec<[i128; 2]>) -> States {
        States::A(v)
    }
    fn unwrap(s: &mut States) -> &mut Vec<[i128; 2]> {
        match s {
            States::A(v) => v,
            _ => unreachable!("states of one run share one kind"),
        }
    }
    fn zero() -> [i128; 2] {
        [0; 2]
    }
}

impl ArgIdentity for [i128; 2] {
    fn identity(op: Op) -> [i128; 2] {
        // Every element's key is strictly better than this one.
        [
            if op == Op::ArgMax {
                i128::MIN
            } else {
                i128::MAX
            },
            0,
        ]
    }
}

/// The state no element loses to, for `argmin`/`argmax`.
trait ArgIdentity {
    fn identity(op: Op) -> Self;
}

/// `n` states `v`, or a one-line error when the memory for them cannot be
/// had: along axis 0 a process holds a few rows' worth of states, and a
/// row of billions of elements needs more than a machine may have (NumPy's
/// `MemoryError` for its result), which is then a failed worker, not an
/// abort.
fn states_of_len<S: Clone>(n: usize, v: S) -> std::result::Result<Vec<S>, String> {
    let mut out = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        format!(
            "cannot allocate {:.1} GB for the partial results of a row ({n} of them): \
             reduce fewer columns at a time with --cols",
            (n as f64) * (std::mem::size_of::<S>() as f64) / 1e9
        )
    })?;
    out.resize(n, v);
    Ok(out)
}

/// `combine(a, b)` of two single states of one kind, over `na` and `nb`
/// elements.
fn combine_st(op: Op, a: St, b: St, na: u64, nb: u64) -> St {
    fn one<S: State>(op: Op, a: S, b: S, na: u64, nb: u64) -> S {
        let mut v = [a];
        S::combine(op, &mut v, &[b], na, nb);
        v[0]
    }
    match (a, b) {
        (St::F(a), St::F(b)) => St::F(one(op, a, b, na, nb)),
        (St::I(a), St::I(b)) => St::I(one(op, a, b, na, nb)),
        (St::V(a), St::V(b)) => St::V(one(op, a, b, na, nb)),
        (St::N(a), St::N(b)) => St::N(one(op, a, b, na, nb)),
        (St::A(a), St::A(b)) => St::A(one(op, a, b, na, nb)),
        _ => unreachable!("states of one run share one kind"),
    }
}

fn combine_states(op: Op, a: &mut States, b: &States, na: u64, nb: u64) {
    match (a, b) {
        (States::F(a), States::F(b)) => f64::combine(op, a, b, na, nb),
        (States::I(a), States::I(b)) => i128::combine(op, a, b, na, nb),
        (States::V(a), States::V(b)) => <[f64; 2]>::combine(op, a, b, na, nb),
        (States::N(a), States::N(b)) => <[f64; 3]>::combine(op, a, b, na, nb),
        (States::A(a), States::A(b)) => <[i128; 2]>::combine(op, a, b, na, nb),
        _ => unreachable!("states of one run share one kind"),
    }
}

// ---------------------------------------------------------------------------
// Reductions of contiguous and strided runs of elements.

/// Elements summed one by one before pairwise halving takes over (NumPy
/// uses the same block size).
const PAIRWISE_BLOCK: usize = 128;

/// Pairwise sum of `map(x)` in f64: eight running sums over blocks of up
/// to 128 elements, halves added recursively above that. The error grows
/// as O(log n), and the order is fixed by the length alone.
fn pairwise<T: Elem>(x: &[T], map: impl Fn(T) -> f64 + Copy) -> f64 {
    if x.len() <= PAIRWISE_BLOCK {
        let mut acc = [0.0f64; 8];
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for l in 0..8 {
                acc[l] += map(c[l]);
            }
        }
        let mut s =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for &v in chunks.remainder() {
            s += map(v);
        }
        s
    } else {
        let half = (x.len() / 2) & !7;
        pairwise(&x[..half], map) + pairwise(&x[half..], map)
    }
}

/// One state from a contiguous run of elements.
fn state_of_run<T: Elem>(op: Op, kind: Kind, x: &[T]) -> St {
    match kind {
        Kind::F => St::F(match op {
            Op::Min => x.iter().fold(f64::INFINITY, |a, &v| fmin(a, v.f())),
            Op::Max => x.iter().fold(f64::NEG_INFINITY, |a, &v| fmax(a, v.f())),
            Op::NanMin => x.iter().fold(f64::NAN, |a, &v| nanmin(a, v.f())),
            Op::NanMax => x.iter().fold(f64::NAN, |a, &v| nanmax(a, v.f())),
            Op::Prod => x.iter().fold(1.0, |a, &v| a * v.f()),
            Op::NanSum => pairwise(x, |v| fval(Op::NanSum, v)),
            _ => pairwise(x, |v| v.f()),
        }),
        Kind::I => St::I(match op {
            Op::Min | Op::NanMin => x.iter().map(|&v| v.i()).min().unwrap_or(0),
            Op::Max | Op::NanMax => x.iter().map(|&v| v.i()).max().unwrap_or(0),
            Op::Any => x.iter().any(|&v| v.f() != 0.0) as i128,
            Op::All => x.iter().all(|&v| v.f() != 0.0) as i128,
            Op::Prod => x.iter().fold(1i128, |a, &v| a.saturating_mul(v.i())),
            // Runs of up to 2^32 elements of 32 bits or less fit in i64.
            _ if std::mem::size_of::<T>() <= 4 && x.len() < 1 << 31 => {
                x.iter().map(|&v| v.i() as i64).sum::<i64>() as i128
            }
            _ => x.iter().map(|&v| v.i()).sum(),
        }),
        Kind::V => {
            if x.is_empty() {
                return St::V([0.0; 2]);
            }
            let mean = pairwise(x, |v| v.f()) / x.len() as f64;
            let m2 = pairwise(x, move |v| {
                let d = v.f() - mean;
                d * d
            });
            St::V([mean, m2])
        }
        Kind::N => {
            let count = x.iter().filter(|v| !v.f().is_nan()).count() as f64;
            let sum = pairwise(x, |v| fval(Op::NanSum, v));
            if op == Op::NanMean {
                return St::N([count, sum, 0.0]);
            }
            if count == 0.0 {
                return St::N([0.0; 3]);
            }
            let mean = sum / count;
            let m2 = pairwise(x, move |v| {
                let f = v.f();
                if f.is_nan() {
                    0.0
                } else {
                    (f - mean) * (f - mean)
                }
            });
            St::N([count, mean, m2])
        }
        Kind::A => {
            let mut best = <[i128; 2]>::identity(op);
            for (i, &v) in x.iter().enumerate() {
                let k = v.key(op);
                if arg_better(op, k, best[0]) {
                    best = [k, i as i128];
                }
            }
            St::A(best)
        }
    }
}

/// One state per inner position from `n` runs of `inner` elements
/// (reducing the middle axis of `x` seen as `(n, inner)`), in order.
fn states_of_strided<T: Elem>(op: Op, kind: Kind, x: &[T], inner: usize, out: &mut Vec<St>) {
    out.clear();
    let n = x.len().checked_div(inner).unwrap_or(0);
    match kind {
        Kind::F => {
            let mut acc: Vec<f64> = match op {
                Op::Min => vec![f64::INFINITY; inner],
                Op::Max => vec![f64::NEG_INFINITY; inner],
                Op::NanMin | Op::NanMax => vec![f64::NAN; inner],
                Op::Prod => vec![1.0; inner],
                _ => vec![0.0; inner],
            };
            for run in x.chunks_exact(inner) {
                match op {
                    Op::NanMin => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = nanmin(*a, v.f())),
                    Op::NanMax => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = nanmax(*a, v.f())),
                    Op::Prod => acc.iter_mut().zip(run).for_each(|(a, &v)| *a *= v.f()),
                    Op::NanSum => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a += fval(Op::NanSum, v)),
                    Op::Min => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = fmin(*a, v.f())),
                    Op::Max => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = fmax(*a, v.f())),
                    _ => acc.iter_mut().zip(run).for_each(|(a, &v)| *a += v.f()),
                }
            }
            out.extend(acc.into_iter().map(St::F));
        }
        Kind::I => {
            let mut acc: Vec<i128> = match op {
                Op::Min | Op::NanMin => vec![i128::MAX; inner],
                Op::Max | Op::NanMax => vec![i128::MIN; inner],
                Op::Prod | Op::All => vec![1; inner],
                _ => vec![0; inner],
            };
            for run in x.chunks_exact(inner) {
                match op {
                    Op::All => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).min(ival(op, v))),
                    Op::Any => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).max(ival(op, v))),
                    Op::Prod => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).saturating_mul(v.i())),
                    Op::NanMin => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).min(v.i())),
                    Op::NanMax => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).max(v.i())),
                    Op::Min => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).min(v.i())),
                    Op::Max => acc
                        .iter_mut()
                        .zip(run)
                        .for_each(|(a, &v)| *a = (*a).max(v.i())),
                    _ => acc.iter_mut().zip(run).for_each(|(a, &v)| *a += v.i()),
                }
            }
            out.extend(acc.into_iter().map(St::I));
        }
        Kind::V => {
            let mut mean = vec![0.0f64; inner];
            for run in x.chunks_exact(inner) {
                mean.iter_mut().zip(run).for_each(|(a, &v)| *a += v.f());
            }
            mean.iter_mut().for_each(|m| *m /= n as f64);
            let mut m2 = vec![0.0f64; inner];
            for run in x.chunks_exact(inner) {
                m2.iter_mut().zip(run).zip(&mean).for_each(|((a, &v), &m)| {
                    let d = v.f() - m;
                    *a += d * d;
                });
            }
            out.extend(mean.into_iter().zip(m2).map(|(m, q)| St::V([m, q])));
        }
        Kind::N => {
            let mut count = vec![0.0f64; inner];
            let mut sum = vec![0.0f64; inner];
            for run in x.chunks_exact(inner) {
                for ((c, s), &v) in count.iter_mut().zip(sum.iter_mut()).zip(run) {
                    if !v.f().is_nan() {
                        *c += 1.0;
                        *s += v.f();
                    }
                }
            }
            if op == Op::NanMean {
                out.extend(count.into_iter().zip(sum).map(|(c, s)| St::N([c, s, 0.0])));
                return;
            }
            let mean: Vec<f64> = count
                .iter()
                .zip(&sum)
                .map(|(&c, &s)| if c == 0.0 { 0.0 } else { s / c })
                .collect();
            let mut m2 = vec![0.0f64; inner];
            for run in x.chunks_exact(inner) {
                m2.iter_mut().zip(run).zip(&mean).for_each(|((a, &v), &m)| {
                    let f = v.f();
                    if !f.is_nan() {
                        *a += (f - m) * (f - m);
                    }
                });
            }
            out.extend(
                count
                    .into_iter()
                    .zip(mean)
                    .zip(m2)
                    .map(|((c, m), q)| St::N([c, m, q])),
            );
        }
        Kind::A => {
            let mut acc = vec![<[i128; 2]>::identity(op); inner];
            for (k, run) in x.chunks_exact(inner).enumerate() {
                acc.iter_mut().zip(run).for_each(|(a, &v)| {
                    let key = v.key(op);
                    if arg_better(op, key, a[0]) {
                        *a = [key, k as i128];
                    }
                });
            }
            out.extend(acc.into_iter().map(St::A));
        }
    }
}

/// One state, of any kind.
#[derive(Debug, Clone, Copy, PartialEq)]
enum St {
    F(f64),
    I(i128),
    V([f64; 2]),
    N([f64; 3]),
    A([i128; 2]),
}

/// A finished result element before it is stored in the output dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// A float result.
    F(f64),
    /// An exact integer result.
    I(i128),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::F(v) => write!(f, "{}", python_float(*v)),
            Value::I(v) => write!(f, "{v}"),
        }
    }
}

/// The finished value of a state over `count` elements.
fn finish(op: Op, st: St, count: u64, ddof: u64) -> Value {
    let var = |m2: f64| m2 / count.saturating_sub(ddof) as f64;
    // np.nanvar: NaN where the degrees of freedom are not positive.
    let nanvar = |c: f64, m2: f64| {
        let dof = c - ddof as f64;
        if dof > 0.0 {
            m2 / dof
        } else {
            f64::NAN
        }
    };
    match (op, st) {
        (Op::Mean, St::F(s)) => Value::F(s / count as f64),
        (Op::Mean | Op::NanMean, St::I(s)) => Value::F(s as f64 / count as f64),
        (Op::Var | Op::NanVar, St::V([_, m2])) => Value::F(var(m2)),
        (Op::Std | Op::NanStd, St::V([_, m2])) => Value::F(var(m2).sqrt()),
        // 0 / 0 is NaN: an all-NaN slice's mean, as NumPy gives.
        (Op::NanMean, St::N([c, s, _])) => Value::F(s / c),
        (Op::NanVar, St::N([c, _, m2])) => Value::F(nanvar(c, m2)),
        (Op::NanStd, St::N([c, _, m2])) => Value::F(nanvar(c, m2).sqrt()),
        (_, St::F(v)) => Value::F(v),
        (_, St::I(v)) => Value::I(v),
        (_, St::V([m, _])) => Value::F(m),
        (_, St::N([_, m, _])) => Value::F(m),
        (_, St::A([_, i])) => Value::I(i),
    }
}

/// Stores `v` as element `at` of `out` (bytes of `dtype`) and returns the
/// value stored (a float rounded to `dtype`), or says why it does not fit.
/// A float result beyond the float dtype's range is ±inf, as in NumPy; an
/// integer one is an error (NumPy would wrap; the exact accumulator knows
/// better).
fn store(v: Value, dtype: DType, out: &mut [u8], at: usize) -> std::result::Result<Value, String> {
    let size = dtype.itemsize() as usize;
    let dst = &mut out[at * size..(at + 1) * size];
    let too_big = || format!("{v} does not fit in {}", dtype.numpy_name());
    match dtype {
        DType::F64 => {
            let x = match v {
                Value::F(x) => x,
                Value::I(i) => i as f64,
            };
            dst.copy_from_slice(&x.to_le_bytes());
            return Ok(Value::F(x));
        }
        DType::F32 => {
            let x = match v {
                Value::F(x) => x,
                Value::I(i) => i as f64,
            };
            // Rounds as NumPy does: past the largest float32 is ±inf.
            let y = x as f32;
            dst.copy_from_slice(&y.to_le_bytes());
            return Ok(Value::F(y as f64));
        }
        DType::F16 => {
            let x = match v {
                Value::F(x) => x,
                Value::I(i) => i as f64,
            };
            let y = f16::from_f64(x);
            dst.copy_from_slice(&y.to_le_bytes());
            return Ok(Value::F(y.to_f64()));
        }
        DType::Bool => {
            dst[0] = match v {
                Value::F(x) => (x != 0.0) as u8,
                Value::I(i) => (i != 0) as u8,
            };
        }
        int => {
            let i = match v {
                Value::I(i) => i,
                Value::F(x) if x.is_finite() && x.abs() < 1.8e38 => x.trunc() as i128,
                Value::F(_) => return Err(too_big()),
            };
            let (lo, hi) = crate::expr::types::int_range(int);
            if i < lo || i > hi {
                return Err(too_big());
            }
            dst.copy_from_slice(&i.to_le_bytes()[..size]);
        }
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// The kernel.

/// The reduce kernel.
pub struct Reduce {
    params: ReduceParams,
    kind: Kind,
    /// Elements per row of the selection.
    row_len: u64,
    /// Elements per row of the file (more than `row_len` with `--cols`).
    stride: usize,
    /// Where the selection starts in each row of the file.
    col_off: usize,
    /// Per-row axes: the row seen as `(outer, n, inner)`, reducing `n`.
    outer: usize,
    n: usize,
    inner: usize,
    /// Across rows: the worker's stack of finished nodes.
    stack: Mutex<Vec<Node>>,
    /// Per-row axes: the RuntimeWarnings of the worker's rows.
    warnings: Mutex<Warnings>,
    /// The row being read in parts ([`Kernel::read_part`]).
    part: Mutex<Option<PartRow>>,
}

/// Elements per piece of a long row. A file row longer than this is
/// reduced piece by piece: each run of elements a result reduces is cut at
/// the multiples of `PIECE` of the file row, each piece reduced as a run,
/// and the pieces' states combined left to right. The cuts depend on the
/// shape alone, so a worker may read such a row in parts that end at those
/// multiples ([`Kernel::row_part`]) and get the bits it would get reading
/// it whole; rows of at most `PIECE` elements are one piece.
pub const PIECE: u64 = 1 << 17;

/// The row a worker is reading in parts: its index and, for each run of
/// it a result reduces, the state of the pieces folded so far and how many
/// elements they hold.
#[derive(Debug)]
struct PartRow {
    row: u64,
    acc: Vec<Option<(St, u64)>>,
    /// Along axis 0: the row's states, one per element, as parts arrive.
    zero: Option<States>,
    /// Along an axis followed by others: each position's accumulator.
    strided: Option<Strided>,
}

impl std::fmt::Debug for Reduce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reduce")
            .field("params", &self.params)
            .finish()
    }
}

impl Reduce {
    /// A reduction with `params` (checked as NumPy would, before any work).
    pub fn new(params: ReduceParams) -> Result<Self> {
        params.check()?;
        let row_shape = params.shape.get(1..).unwrap_or(&[]);
        let row_len: u64 = row_shape.iter().product();
        let (outer, n, inner) = match params.axis {
            Axis::Inner { axis, extra } | Axis::ZeroInner { axis, extra } => (
                row_shape[..axis - 1].iter().product::<u64>() as usize,
                row_shape[axis - 1..axis + extra].iter().product::<u64>() as usize,
                row_shape[axis + extra..].iter().product::<u64>() as usize,
            ),
            _ => (1, row_len as usize, 1),
        };
        let inner_row: u64 = row_shape.get(1..).unwrap_or(&[]).iter().product();
        let (stride, col_off) = match params.cols {
            Some(c) => ((c.of * inner_row) as usize, (c.start * inner_row) as usize),
            None => (row_len as usize, 0),
        };
        Ok(Reduce {
            kind: params.op.kind(params.dtype),
            params,
            row_len,
            stride,
            col_off,
            outer,
            n,
            inner,
            stack: Mutex::new(Vec::new()),
            part: Mutex::new(None),
            warnings: Mutex::new(Warnings::default()),
        })
    }

    /// Whether a row may be read in parts: each result reduces one
    /// contiguous run of the row (no inner axes after the reduced ones),
    /// which the pieces cut; the row is a leaf of axis 0, one state per
    /// element, filled part by part; or a row longer than [`PIECE`]
    /// reduces runs `inner` apart in one pass ([`Strided`]).
    fn splits_input_rows(&self) -> bool {
        self.inner == 1 || self.stride as u64 > PIECE
    }

    /// Folds `x`, elements of one run starting `at` elements into the file
    /// row, onto `acc`: piece by piece ([`PIECE`]), each piece's state
    /// combined after the ones before it. `run_start` is where the run
    /// starts in the file row (argmin/argmax index from there).
    fn fold<T: Elem>(&self, acc: &mut Option<(St, u64)>, x: &[T], at: u64, run_start: u64) {
        let op = self.params.op;
        let cut = self.stride as u64 > PIECE;
        let mut i = 0usize;
        while i < x.len() {
            let a = at + i as u64;
            let end = if cut {
                ((a / PIECE + 1) * PIECE - at).min(x.len() as u64) as usize
            } else {
                x.len()
            };
            let mut st = state_of_run(op, self.kind, &x[i..end]);
            if let St::A(s) = &mut st {
                s[1] += (a - run_start) as i128;
            }
            let nb = (end - i) as u64;
            *acc = Some(match acc.take() {
                None => (st, nb),
                Some((prev, na)) => (combine_st(op, prev, st, na, nb), na + nb),
            });
            i = end;
        }
    }

    /// The state of run `x` of a row, starting `at` elements into the file
    /// row: the same bits however the row was read.
    fn run_state<T: Elem>(&self, x: &[T], at: u64) -> St {
        let mut acc = None;
        self.fold(&mut acc, x, at, at);
        self.folded::<T>(acc)
    }

    /// The states of slice `x` of a row (runs of `inner` elements), one
    /// per position after the reduced axes: two-pass for rows of at most
    /// [`PIECE`] elements, one pass ([`Strided`]) for longer rows, which
    /// may be read in parts.
    fn strided_states<T: Elem>(&self, x: &[T], out: &mut Vec<St>) {
        let (op, kind) = (self.params.op, self.kind);
        if self.stride as u64 <= PIECE {
            states_of_strided(op, kind, x, self.inner, out);
        } else {
            let mut acc = Strided::new(op, kind, self.inner);
            acc.update(op, kind, x, 0, self.inner, 0);
            acc.finish(kind, out);
        }
    }

    /// A folded state, or the state of an empty run when nothing was folded.
    fn folded<T: Elem>(&self, acc: Option<(St, u64)>) -> St {
        acc.map(|(st, _)| st)
            .unwrap_or_else(|| state_of_run::<T>(self.params.op, self.kind, &[]))
    }

    /// The parameters.
    pub fn params(&self) -> &ReduceParams {
        &self.params
    }

    /// A fresh forest to combine this reduction's nodes in.
    pub fn forest(&self) -> Forest {
        Forest::new(&self.params)
    }

    fn push_node<S: State>(&self, stack: &mut Vec<Node>, mut node: Node) {
        let unit = self.params.unit();
        while let Some(top) = stack.last() {
            let size = 1u64 << node.level;
            let sibling = top.level == node.level
                && top.start + size == node.start
                && top.start % (size << 1) == 0;
            if !sibling {
                break;
            }
            let mut left = stack.pop().expect("checked");
            let (l, r) = (S::unwrap(&mut left.states), S::unwrap(&mut node.states));
            S::combine(self.params.op, l, r, size * unit, size * unit);
            left.level += 1;
            node = left;
        }
        stack.push(node);
    }

    /// Scans rows `first_row .. first_row + rows` (their elements in
    /// `data`): the maximal aligned nodes inside them, each computed
    /// recursively, pushed on the stack (which merges across blocks).
    fn scan_rows<T: Elem, S: State>(
        &self,
        data: &[T],
        first_row: u64,
        rows: u64,
        leaf: impl Fn(u64, &[T], &mut [S]) + Copy,
    ) -> std::result::Result<(), String> {
        let width = self.params.width();
        let rl = self.row_len as usize;
        let mut stack = self.stack.lock().unwrap_or_else(|p| p.into_inner());
        let mut scratch: Vec<Vec<S>> = Vec::new();
        let end = first_row + rows;
        let mut s = first_row;
        while s < end {
            // The largest aligned node starting at s that fits before end.
            let mut level = if s == 0 { 63 } else { s.trailing_zeros() };
            while level > 0 && (level >= 64 || s + (1u64 << level) > end) {
                level -= 1;
            }
            let mut out = states_of_len(width, S::zero())?;
            // The right halves' buffers, one per level below this node.
            while scratch.len() < level as usize {
                scratch.push(states_of_len(width, S::zero())?);
            }
            let local = (s - first_row) as usize;
            subtree(
                self.params.op,
                &data[local * self.stride..],
                s,
                (self.stride, self.col_off, rl),
                level,
                self.params.unit(),
                &mut out,
                &mut scratch,
                leaf,
            );
            self.push_node::<S>(
                &mut stack,
                Node {
                    start: s,
                    level,
                    states: S::wrap(out),
                },
            );
            s += 1u64 << level;
        }
        Ok(())
    }

    /// The states of row `x` reduced along the axes after 0 that
    /// [`Axis::ZeroInner`] names, one per remaining position, in order.
    fn row_states<T: Elem, S: State>(&self, x: &[T], out: &mut [S]) {
        let mut buf = Vec::new();
        let mut k = 0;
        for o in 0..self.outer {
            let part = &x[o * self.n * self.inner..(o + 1) * self.n * self.inner];
            if self.inner == 1 {
                out[k] = S::of(self.run_state(part, (self.col_off + o * self.n) as u64));
                k += 1;
            } else {
                self.strided_states(part, &mut buf);
                for &st in &buf {
                    out[k] = S::of(st);
                    k += 1;
                }
            }
        }
    }

    /// Per-row axes: reduce input row `x` into output row `out`.
    fn reduce_row<T: Elem>(
        x: &[T],
        this: &Reduce,
        out: &mut [u8],
        row: u64,
        buf: &mut Vec<St>,
        warnings: &mut Warnings,
    ) -> std::result::Result<(), String> {
        let mut k = 0usize;
        for o in 0..this.outer {
            let part = &x[o * this.n * this.inner..(o + 1) * this.n * this.inner];
            if this.inner == 1 {
                buf.clear();
                buf.push(this.run_state(part, (this.col_off + o * this.n) as u64));
            } else {
                this.strided_states(part, buf);
            }
            this.store_states(buf, out, k, row, warnings)?;
            k += buf.len();
        }
        this.finish_row(out);
        Ok(())
    }

    /// Finishes `states` into results `at ..` of output row `row` (`out`),
    /// counting NumPy's warnings.
    fn store_states(
        &self,
        states: &[St],
        out: &mut [u8],
        at: usize,
        row: u64,
        warnings: &mut Warnings,
    ) -> std::result::Result<(), String> {
        let p = &self.params;
        let count = self.n as u64;
        for (i, &st) in states.iter().enumerate() {
            let v = finish(p.op, st, count, p.ddof);
            let stored = store(v, p.out_dtype, out, at + i)
                .map_err(|e| format!("row {row}: {} {e}", p.op.name()))?;
            warnings.element(p, st, count, v, stored);
        }
        Ok(())
    }

    /// Once an output row is stored: a complex mean's parts as NumPy's
    /// complex division gives them ([`complex_mean_parts`]).
    fn finish_row(&self, out: &mut [u8]) {
        if self.params.pairs && self.params.op == Op::Mean {
            complex_mean_parts(self.params.out_dtype, out, None);
        }
    }

    /// Pushes row `row`'s `states` on the worker's stack as a leaf.
    fn push_leaf(&self, stack: &mut Vec<Node>, row: u64, states: States) {
        let node = Node {
            start: row,
            level: 0,
            states,
        };
        match self.kind {
            Kind::F => self.push_node::<f64>(stack, node),
            Kind::I => self.push_node::<i128>(stack, node),
            Kind::V => self.push_node::<[f64; 2]>(stack, node),
            Kind::N => self.push_node::<[f64; 3]>(stack, node),
            Kind::A => self.push_node::<[i128; 2]>(stack, node),
        }
    }
}

/// The value of the full node of `2^level` rows starting at `data` (row
/// `row`), defined recursively as the tree defines it, into `out`.
#[allow(clippy::too_many_arguments)]
fn subtree<T: Elem, S: State>(
    op: Op,
    data: &[T],
    row: u64,
    (stride, off, len): (usize, usize, usize),
    level: u32,
    unit: u64,
    out: &mut [S],
    scratch: &mut Vec<Vec<S>>,
    leaf: impl Fn(u64, &[T], &mut [S]) + Copy,
) {
    if level == 0 {
        leaf(row, &data[off..off + len], out);
        return;
    }
    let half = 1usize << (level - 1);
    let row_len = (stride, off, len);
    subtree(op, data, row, row_len, level - 1, unit, out, scratch, leaf);
    let i = (level - 1) as usize;
    if scratch.len() <= i {
        scratch.resize_with(i + 1, Vec::new);
    }
    let mut right = std::mem::take(&mut scratch[i]);
    right.clear();
    right.resize(out.len(), S::zero());
    subtree(
        op,
        &data[half * stride..],
        row + half as u64,
        row_len,
        level - 1,
        unit,
        &mut right,
        scratch,
        leaf,
    );
    let n = half as u64 * unit;
    S::combine(op, out, &right, n, n);
    scratch[i] = right;
}

fn scan_typed<T: Elem>(
    data: &[T],
    k: &Reduce,
    first_row: u64,
    rows: u64,
) -> std::result::Result<(), String> {
    let op = k.params.op;
    let row_len = k.row_len as i128;
    match (k.params.axis, k.kind) {
        (Axis::ZeroInner { .. }, Kind::F) => {
            k.scan_rows::<T, f64>(data, first_row, rows, |_, r, o| k.row_states(r, o))
        }
        (Axis::ZeroInner { .. }, Kind::I) => {
            k.scan_rows::<T, i128>(data, first_row, rows, |_, r, o| k.row_states(r, o))
        }
        (Axis::ZeroInner { .. }, Kind::V) => {
            k.scan_rows::<T, [f64; 2]>(data, first_row, rows, |_, r, o| k.row_states(r, o))
        }
        (Axis::ZeroInner { .. }, Kind::N) => {
            k.scan_rows::<T, [f64; 3]>(data, first_row, rows, |_, r, o| k.row_states(r, o))
        }
        (Axis::ZeroInner { .. }, Kind::A) => {
            k.scan_rows::<T, [i128; 2]>(data, first_row, rows, |_, r, o| k.row_states(r, o))
        }
        (Axis::Zero, Kind::F) => k.scan_rows::<T, f64>(data, first_row, rows, |row, r, o| {
            zero_states(op, row, r, o)
        }),
        (Axis::Zero, Kind::I) => k.scan_rows::<T, i128>(data, first_row, rows, |row, r, o| {
            zero_states(op, row, r, o)
        }),
        (Axis::Zero, Kind::V) => k.scan_rows::<T, [f64; 2]>(data, first_row, rows, |row, r, o| {
            zero_states(op, row, r, o)
        }),
        (Axis::Zero, Kind::N) => k.scan_rows::<T, [f64; 3]>(data, first_row, rows, |row, r, o| {
            zero_states(op, row, r, o)
        }),
        (Axis::Zero, Kind::A) => k.scan_rows::<T, [i128; 2]>(data, first_row, rows, |row, r, o| {
            zero_states(op, row, r, o)
        }),
        (_, Kind::F) => k.scan_rows::<T, f64>(data, first_row, rows, move |_, r, o| {
            if let St::F(v) = k.run_state(r, k.col_off as u64) {
                o[0] = v;
            }
        }),
        (_, Kind::I) => k.scan_rows::<T, i128>(data, first_row, rows, move |_, r, o| {
            if let St::I(v) = k.run_state(r, k.col_off as u64) {
                o[0] = v;
            }
        }),
        (_, Kind::V) => k.scan_rows::<T, [f64; 2]>(data, first_row, rows, move |_, r, o| {
            if let St::V(v) = k.run_state(r, k.col_off as u64) {
                o[0] = v;
            }
        }),
        (_, Kind::N) => k.scan_rows::<T, [f64; 3]>(data, first_row, rows, move |_, r, o| {
            if let St::N(v) = k.run_state(r, k.col_off as u64) {
                o[0] = v;
            }
        }),
        // np.argmin(axis=None): the flat index of the whole array.
        (_, Kind::A) => k.scan_rows::<T, [i128; 2]>(data, first_row, rows, move |row, r, o| {
            if let St::A([key, i]) = k.run_state(r, k.col_off as u64) {
                o[0] = [key, row as i128 * row_len + i];
            }
        }),
    }
}

/// Reads elements `from .. from + x.len()` of file row `row`, a part of a
/// row read in parts: folds them onto the row's runs, and with the part
/// that ends the row finishes it — its results into `out` (per-row axes)
/// or its states as a leaf of the tree (across rows).
fn read_part_typed<T: Elem>(
    x: &[T],
    k: &Reduce,
    row: u64,
    from: u64,
    last: bool,
    out: Option<&mut [u8]>,
) -> std::result::Result<(), String> {
    let mut part = k.part.lock().unwrap_or_else(|p| p.into_inner());
    if part.as_ref().is_none_or(|p| p.row != row) {
        if from != 0 {
            return Err(format!("row {row} was not read from its start"));
        }
        let zero = match k.params.axis {
            Axis::Zero => Some(States::identity(k.params.op, k.kind, k.row_len as usize)?),
            _ => None,
        };
        let strided = (k.inner > 1 && zero.is_none())
            .then(|| Strided::new(k.params.op, k.kind, k.outer * k.inner));
        *part = Some(PartRow {
            row,
            acc: vec![None; k.outer],
            zero,
            strided,
        });
    }
    let p = part.as_mut().expect("set above");
    // The selection's runs that meet this part, in file-row indices.
    let (sel, n) = (k.col_off as u64, k.n as u64);
    let (lo, hi) = (from.max(sel), (from + x.len() as u64).min(sel + k.row_len));
    let op = k.params.op;
    if let Some(zero) = p.zero.as_mut() {
        if lo < hi {
            let (xs, at) = (
                &x[(lo - from) as usize..(hi - from) as usize],
                (lo - sel) as usize,
            );
            let end = at + xs.len();
            match zero {
                States::F(v) => zero_states(op, row, xs, &mut v[at..end]),
                States::I(v) => zero_states(op, row, xs, &mut v[at..end]),
                States::V(v) => zero_states(op, row, xs, &mut v[at..end]),
                States::N(v) => zero_states(op, row, xs, &mut v[at..end]),
                States::A(v) => zero_states(op, row, xs, &mut v[at..end]),
            }
        }
    } else if lo < hi && n > 0 && k.inner > 0 {
        // Each slice of the row holds `n` runs of `inner` elements.
        let slice = n * k.inner as u64;
        for o in (lo - sel) / slice..(hi - sel).div_ceil(slice) {
            let run = sel + o * slice;
            let (a, b) = (lo.max(run), hi.min(run + slice));
            let xs = &x[(a - from) as usize..(b - from) as usize];
            match p.strided.as_mut() {
                Some(acc) => acc.update(
                    op,
                    k.kind,
                    xs,
                    (a - run) as usize,
                    k.inner,
                    o as usize * k.inner,
                ),
                None => k.fold(&mut p.acc[o as usize], xs, a, run),
            }
        }
    }
    if !last {
        return Ok(());
    }
    let acc = std::mem::take(&mut p.acc);
    let zero = p.zero.take();
    let strided = p.strided.take();
    *part = None;
    let params = &k.params;
    if let Some(states) = zero {
        let mut stack = k.stack.lock().unwrap_or_else(|p| p.into_inner());
        k.push_leaf(&mut stack, row, states);
        return Ok(());
    }
    let mut states: Vec<St> = match strided {
        Some(acc) => {
            let mut states = Vec::new();
            acc.finish(k.kind, &mut states);
            states
        }
        None => acc.into_iter().map(|a| k.folded::<T>(a)).collect(),
    };
    if !params.axis.across_rows() {
        let out = out.ok_or("a per-row reduction's last part needs its output row")?;
        let mut warnings = Warnings::default();
        k.store_states(&states, out, 0, row, &mut warnings)?;
        k.finish_row(out);
        k.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .merge(&warnings);
        return Ok(());
    }
    if params.axis == Axis::All {
        // np.argmin(axis=None) counts flat indices of the whole array.
        for st in &mut states {
            if let St::A([_, i]) = st {
                *i += row as i128 * k.row_len as i128;
            }
        }
    }
    let states = match k.kind {
        Kind::F => States::F(states.into_iter().map(f64::of).collect()),
        Kind::I => States::I(states.into_iter().map(i128::of).collect()),
        Kind::V => States::V(states.into_iter().map(<[f64; 2]>::of).collect()),
        Kind::N => States::N(states.into_iter().map(<[f64; 3]>::of).collect()),
        Kind::A => States::A(states.into_iter().map(<[i128; 2]>::of).collect()),
    };
    let mut stack = k.stack.lock().unwrap_or_else(|p| p.into_inner());
    k.push_leaf(&mut stack, row, states);
    Ok(())
}

fn run_rows<T: Elem>(
    x: &[T],
    k: &Reduce,
    out: &mut [u8],
    first_row: u64,
    out_row_bytes: usize,
) -> std::result::Result<(), String> {
    let (rl, stride, off) = (k.row_len as usize, k.stride, k.col_off);
    let mut buf = Vec::new();
    let mut warnings = Warnings::default();
    for (i, o) in out.chunks_mut(out_row_bytes.max(1)).enumerate() {
        let row = &x[i * stride + off..i * stride + off + rl];
        Reduce::reduce_row(row, k, o, first_row + i as u64, &mut buf, &mut warnings)?;
    }
    k.warnings
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(&warnings);
    Ok(())
}

/// Registry constructor.
pub(super) fn build(params: &serde_json::Value, _dtype: DType) -> Result<Box<dyn Kernel>> {
    let p: ReduceParams = serde_json::from_value(params.clone())
        .map_err(|e| Error::refused(format!("bad reduce parameters: {e}")))?;
    Ok(Box::new(Reduce::new(p)?))
}

impl Kernel for Reduce {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "reduce".into(),
            params: serde_json::to_value(&self.params).expect("reduce parameters serialise"),
        }
    }

    fn reads_input(&self) -> bool {
        true
    }

    fn scans(&self) -> bool {
        self.params.axis.across_rows()
    }

    fn run(&self, _rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        Err("reduce reads an input file: it runs through run_io or scan".into())
    }

    fn run_io(&self, input: RowsIn<'_>, out: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        if self.params.axis.across_rows() {
            return Err("this reduction combines rows: it runs through scan".into());
        }
        // The output row's elements, from the reduction's own shape: the
        // file may hold them as another dtype of the same bytes (a complex
        // result computed as pairs of its parts).
        let (obytes, first_row, _) = out.into_bytes();
        let out_row_len: u64 = self
            .params
            .axis
            .out_shape(&self.params.shape)
            .iter()
            .skip(1)
            .product();
        let out_row_bytes = (out_row_len * self.params.out_dtype.itemsize()) as usize;
        if out_row_bytes == 0 {
            return Ok(());
        }
        typed!(
            input.dtype,
            input.bytes,
            run_rows(self, obytes, first_row, out_row_bytes)
        )
    }

    fn scan(&self, input: RowsIn<'_>, rows: u64) -> std::result::Result<(), String> {
        if !self.params.axis.across_rows() {
            return Err("this reduction is per row: it runs through run_io".into());
        }
        typed!(
            input.dtype,
            input.bytes,
            scan_typed(self, input.first_row, rows)
        )
    }

    fn row_part(&self) -> Option<u64> {
        self.splits_input_rows().then_some(PIECE)
    }

    fn read_part(
        &self,
        input: RowsIn<'_>,
        from: u64,
        last: bool,
        out: Option<AnyRowsMut<'_>>,
    ) -> std::result::Result<(), String> {
        if !self.splits_input_rows() {
            return Err("this reduction reads whole rows".into());
        }
        let out = out.map(|o| o.into_bytes().0);
        typed!(
            input.dtype,
            input.bytes,
            read_part_typed(self, input.first_row, from, last, out)
        )
    }

    fn take_result(&self) -> std::result::Result<Option<Vec<u8>>, String> {
        if !self.params.axis.across_rows() {
            // A per-row reduction hands back its rows' warning counts.
            let w = self.warnings.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(Some(w.encode()));
        }
        let mut stack = self.stack.lock().unwrap_or_else(|p| p.into_inner());
        let len: usize = stack.iter().map(|n| 21 + n.states.bytes().len()).sum();
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| {
            format!(
                "cannot allocate {:.1} GB to hand back this worker's partial results: \
                 reduce fewer columns at a time with --cols",
                len as f64 / 1e9
            )
        })?;
        for node in stack.drain(..) {
            node.encode(&mut out);
        }
        Ok(Some(out))
    }
}

// ---------------------------------------------------------------------------
// The coordinator's side of the tree.

/// Nodes from workers (or ranks), combined in the fixed dyadic tree.
///
/// Siblings are merged as soon as both are present, so the forest holds
/// about one node per level whatever arrives; [`Forest::finish`] then
/// combines what is left from the root down, a node reaching past the last
/// row being its left part.
#[derive(Debug)]
pub struct Forest {
    params: ReduceParams,
    kind: Kind,
    rows: u64,
    nodes: BTreeMap<(u32, u64), States>,
}

impl Forest {
    /// An empty forest for a reduction with `params`.
    pub fn new(params: &ReduceParams) -> Self {
        Forest {
            kind: params.op.kind(params.dtype),
            rows: params.shape.first().copied().unwrap_or(1),
            params: params.clone(),
            nodes: BTreeMap::new(),
        }
    }

    /// Adds nodes in the binary form workers write.
    pub fn insert_encoded(&mut self, bytes: &[u8]) -> Result<()> {
        for node in Node::decode_all(bytes)? {
            self.insert(node)?;
        }
        Ok(())
    }

    /// Adds one node, merging it with its sibling (and up) when present.
    pub fn insert(&mut self, mut node: Node) -> Result<()> {
        let width = self.params.width();
        let expect = States::identity(self.params.op, self.kind, 0).map_err(Error::failed)?;
        if node.states.len() != width
            || std::mem::discriminant(&node.states) != std::mem::discriminant(&expect)
            || node.level >= 64
            || !node.start.is_multiple_of(1u64 << node.level)
            || node.start.saturating_add(1u64 << node.level) > self.rows
        {
            return Err(Error::refused(format!(
                "a partial result for rows from {} does not belong to this reduction",
                node.start
            )));
        }
        let unit = self.params.unit();
        loop {
            let size = 1u64 << node.level;
            if self.nodes.contains_key(&(node.level, node.start))
                || self.covered(node.start, node.level)
            {
                return Err(Error::refused(format!(
                    "rows {}..{} have two partial results",
                    node.start,
                    node.start + size
                )));
            }
            let sib = node.start ^ size;
            let Some(mut other) = self.nodes.remove(&(node.level, sib)) else {
                break;
            };
            let n = size * unit;
            if sib < node.start {
                combine_states(self.params.op, &mut other, &node.states, n, n);
                node = Node {
                    start: sib,
                    level: node.level + 1,
                    states: other,
                };
            } else {
                combine_states(self.params.op, &mut node.states, &other, n, n);
                node.level += 1;
            }
        }
        self.nodes.insert((node.level, node.start), node.states);
        Ok(())
    }

    /// Whether a node already held covers part of `start .. start + 2^level`.
    fn covered(&self, start: u64, level: u32) -> bool {
        let end = start + (1u64 << level);
        self.nodes.iter().any(|(&(l, s), _)| {
            let e = s + (1u64 << l);
            s < end && start < e
        })
    }

    /// The result states (one per output element) with the element count
    /// each covers; an error naming the first row no partial covers.
    fn root(mut self) -> Result<(States, u64)> {
        let width = self.params.width();
        let unit = self.params.unit();
        if self.rows == 0 {
            return Ok((
                States::identity(self.params.op, self.kind, width).map_err(Error::failed)?,
                0,
            ));
        }
        let level = 64 - (self.rows - 1).leading_zeros();
        let (states, rows) = self.value(0, level)?.expect("rows > 0");
        Ok((states, rows * unit))
    }

    fn value(&mut self, start: u64, level: u32) -> Result<Option<(States, u64)>> {
        if start >= self.rows {
            return Ok(None);
        }
        if let Some(s) = self.nodes.remove(&(level, start)) {
            return Ok(Some((s, 1u64 << level)));
        }
        if level == 0 {
            return Err(Error::failed(format!(
                "no partial result covers row {start}"
            )));
        }
        let half = 1u64 << (level - 1);
        let (mut left, nl) = self.value(start, level - 1)?.expect("start < rows");
        match self.value(start + half, level - 1)? {
            None => Ok(Some((left, nl))),
            Some((right, nr)) => {
                let unit = self.params.unit();
                combine_states(self.params.op, &mut left, &right, nl * unit, nr * unit);
                Ok(Some((left, nl + nr)))
            }
        }
    }

    /// Combines what is left and returns the result, as the output dtype's
    /// bytes (C order) and as values.
    pub fn finish(self) -> Result<(Vec<u8>, Vec<Value>)> {
        self.finish_with_warnings().map(|(b, v, _)| (b, v))
    }

    /// [`Forest::finish`], with the RuntimeWarnings NumPy would have
    /// raised, counted by result element.
    pub fn finish_with_warnings(self) -> Result<(Vec<u8>, Vec<Value>, Warnings)> {
        let p = self.params.clone();
        let mut warnings = Warnings::default();
        let (states, count) = self.root()?;
        let per_element = match p.axis {
            Axis::Zero => p.shape.first().copied().unwrap_or(1),
            _ => count,
        };
        let sts: Vec<St> = match states {
            States::F(v) => v.into_iter().map(St::F).collect(),
            States::I(v) => v.into_iter().map(St::I).collect(),
            States::V(v) => v.into_iter().map(St::V).collect(),
            States::N(v) => v.into_iter().map(St::N).collect(),
            States::A(v) => v.into_iter().map(St::A).collect(),
        };
        let mut bytes = vec![0u8; sts.len() * p.out_dtype.itemsize() as usize];
        let mut values = Vec::with_capacity(sts.len());
        for (i, st) in sts.into_iter().enumerate() {
            let value = finish(p.op, st, per_element, p.ddof);
            let v = store(value, p.out_dtype, &mut bytes, i).map_err(|e| match p.axis {
                Axis::Zero | Axis::ZeroInner { .. } => Error::failed(format!(
                    "element {i} of the {} over axis {}: {e}",
                    p.op.name(),
                    p.axis.describe()
                )),
                _ => Error::failed(format!("the {} of every row: {e}", p.op.name())),
            })?;
            warnings.element(&p, st, per_element, value, v);
            values.push(v);
        }
        if p.pairs && p.op == Op::Mean {
            complex_mean_parts(p.out_dtype, &mut bytes, Some(&mut values));
        }
        Ok((bytes, values, warnings))
    }
}

mod select;
mod strided;
mod warnings;
pub use select::{Cols, Selection};
pub use warnings::Warnings;

#[cfg(test)]
mod tests;
