//! Reducing the middle axis of long rows in one pass, in any parts.
//!
//! A per-row reduction along an axis followed by others (`--axis 1` of a
//! 3-D file) reduces, for each position after the axis, the elements
//! `inner` apart: runs of `inner` elements, one per index of the axis.
//! Rows of at most [`PIECE`](super::PIECE) elements take the two-pass
//! definition in [`super::states_of_strided`]. A longer row may be read in
//! parts, so each position is accumulated element by element in run order
//! — sums, extremes, products and indexes exactly as the two-pass code
//! does them, variances with Welford's update (one pass, stable) — and a
//! part may end anywhere: the bits depend on the row alone.

use super::{arg_better, fmax, fmin, fval, ival, nanmax, nanmin, ArgIdentity, Elem, Kind, Op, St};

/// Per-position accumulators of one or more slices of a row.
#[derive(Debug)]
pub(super) enum Strided {
    /// f64 sums, extremes, products.
    F(Vec<f64>),
    /// Exact integer sums, extremes, products, any/all.
    I(Vec<i128>),
    /// Welford's (count, mean, M2): var/std, and nanvar/nanstd without NaN;
    /// (count, sum, 0) for nanmean.
    W(Vec<[f64; 3]>),
    /// (key, run index): argmin/argmax.
    A(Vec<[i128; 2]>),
}

impl Strided {
    /// Accumulators for `width` positions, before any element.
    pub(super) fn new(op: Op, kind: Kind, width: usize) -> Strided {
        match kind {
            Kind::F => Strided::F(vec![
                match op {
                    Op::Min => f64::INFINITY,
                    Op::Max => f64::NEG_INFINITY,
                    Op::NanMin | Op::NanMax => f64::NAN,
                    Op::Prod => 1.0,
                    _ => 0.0,
                };
                width
            ]),
            Kind::I => Strided::I(vec![
                match op {
                    Op::Min | Op::NanMin => i128::MAX,
                    Op::Max | Op::NanMax => i128::MIN,
                    Op::Prod | Op::All => 1,
                    _ => 0,
                };
                width
            ]),
            Kind::V | Kind::N => Strided::W(vec![[0.0; 3]; width]),
            Kind::A => Strided::A(vec![<[i128; 2]>::identity(op); width]),
        }
    }

    /// Accumulates `x`, elements `j0 ..` of one slice (runs of `inner`
    /// elements), into the slice's positions `base .. base + inner`.
    pub(super) fn update<T: Elem>(
        &mut self,
        op: Op,
        kind: Kind,
        x: &[T],
        j0: usize,
        inner: usize,
        base: usize,
    ) {
        let mut j = j0;
        let mut rest = x;
        while !rest.is_empty() {
            let (run, p) = (j / inner, j % inner);
            let len = (inner - p).min(rest.len());
            let (seg, tail) = rest.split_at(len);
            let at = base + p..base + p + len;
            match self {
                Strided::F(acc) => {
                    let acc = &mut acc[at];
                    match op {
                        Op::NanMin => zip(acc, seg, |a, v| *a = nanmin(*a, v.f())),
                        Op::NanMax => zip(acc, seg, |a, v| *a = nanmax(*a, v.f())),
                        Op::Prod => zip(acc, seg, |a, v| *a *= v.f()),
                        Op::NanSum => zip(acc, seg, |a, v| *a += fval(Op::NanSum, v)),
                        Op::Min => zip(acc, seg, |a, v| *a = fmin(*a, v.f())),
                        Op::Max => zip(acc, seg, |a, v| *a = fmax(*a, v.f())),
                        _ => zip(acc, seg, |a, v| *a += v.f()),
                    }
                }
                Strided::I(acc) => {
                    let acc = &mut acc[at];
                    match op {
                        Op::All => zip(acc, seg, |a, v| *a = (*a).min(ival(op, v))),
                        Op::Any => zip(acc, seg, |a, v| *a = (*a).max(ival(op, v))),
                        Op::Prod => zip(acc, seg, |a, v| *a = (*a).saturating_mul(v.i())),
                        Op::Min | Op::NanMin => zip(acc, seg, |a, v| *a = (*a).min(v.i())),
                        Op::Max | Op::NanMax => zip(acc, seg, |a, v| *a = (*a).max(v.i())),
                        _ => zip(acc, seg, |a, v| *a += v.i()),
                    }
                }
                Strided::W(acc) => {
                    let acc = &mut acc[at];
                    let skip_nan = kind == Kind::N;
                    if op == Op::NanMean {
                        zip(acc, seg, |a, v| {
                            if !v.f().is_nan() {
                                a[0] += 1.0;
                                a[1] += v.f();
                            }
                        })
                    } else {
                        zip(acc, seg, |a, v| {
                            let f = v.f();
                            if skip_nan && f.is_nan() {
                                return;
                            }
                            a[0] += 1.0;
                            let d = f - a[1];
                            a[1] += d / a[0];
                            a[2] += d * (f - a[1]);
                        })
                    }
                }
                Strided::A(acc) => {
                    let acc = &mut acc[at];
                    zip(acc, seg, |a, v| {
                        let key = v.key(op);
                        if arg_better(op, key, a[0]) {
                            *a = [key, run as i128];
                        }
                    })
                }
            }
            j += len;
            rest = tail;
        }
    }

    /// The accumulated states, one per position, as the reduction's states.
    pub(super) fn finish(self, kind: Kind, out: &mut Vec<St>) {
        out.clear();
        match self {
            Strided::F(acc) => out.extend(acc.into_iter().map(St::F)),
            Strided::I(acc) => out.extend(acc.into_iter().map(St::I)),
            Strided::W(acc) if kind == Kind::V => {
                out.extend(acc.into_iter().map(|[_, m, q]| St::V([m, q])))
            }
            Strided::W(acc) => out.extend(acc.into_iter().map(St::N)),
            Strided::A(acc) => out.extend(acc.into_iter().map(St::A)),
        }
    }
}

#[inline(always)]
fn zip<A, T: Copy>(acc: &mut [A], x: &[T], f: impl Fn(&mut A, T)) {
    acc.iter_mut().zip(x).for_each(|(a, &v)| f(a, v));
}
