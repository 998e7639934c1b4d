//! NumPy's floating-point RuntimeWarnings for a reduction, counted.
//!
//! NumPy warns once per call, naming what happened ("Mean of empty
//! slice", "invalid value encountered in divide"); mmrun counts how many
//! result elements raised each, so a user sees both what NumPy would have
//! said and how much of the result it concerns. The warnings follow from
//! each element's final state and from the shape alone, so they are the
//! same for any split of the rows.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Axis, Op, ReduceParams, St, Value};

/// Warnings by NumPy's message, with the number of result elements each
/// concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Warnings(BTreeMap<&'static str, u64>);

/// NumPy's texts.
const EMPTY_MEAN: &str = "Mean of empty slice";
const DOF: &str = "Degrees of freedom <= 0 for slice";
/// np.nanvar's spelling of it.
const DOF_NAN: &str = "Degrees of freedom <= 0 for slice.";
const INVALID_DIVIDE: &str = "invalid value encountered in divide";
const ZERO_DIVIDE: &str = "divide by zero encountered in divide";
const OVERFLOW_REDUCE: &str = "overflow encountered in reduce";
const OVERFLOW_CAST: &str = "overflow encountered in cast";

impl Warnings {
    fn add(&mut self, what: &'static str, n: u64) {
        if n > 0 {
            *self.0.entry(what).or_default() += n;
        }
    }

    /// Whether nothing was warned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(message, count)` pairs, by message.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(&w, &n)| (w, n))
    }

    /// As the JSON report lists them: `[{"warning": "RuntimeWarning: …",
    /// "count": N}]`.
    pub fn to_json(&self) -> serde_json::Value {
        self.iter()
            .map(|(w, n)| serde_json::json!({ "warning": format!("RuntimeWarning: {w}"), "count": n }))
            .collect()
    }

    /// What one result element of `op` over `count` elements raises, from
    /// its state and the value computed (`value`, in f64) and stored.
    pub(super) fn element(
        &mut self,
        p: &ReduceParams,
        st: St,
        count: u64,
        value: Value,
        stored: Value,
    ) {
        match (p.op, st) {
            (Op::Mean | Op::NanMean, St::F(_) | St::I(_)) if count == 0 => {
                self.add(EMPTY_MEAN, 1);
                self.add(INVALID_DIVIDE, 1);
            }
            (Op::Var | Op::Std | Op::NanVar | Op::NanStd, St::V([_, m2])) if count <= p.ddof => {
                self.add(DOF, 1);
                self.add(
                    if m2 == 0.0 {
                        INVALID_DIVIDE
                    } else {
                        ZERO_DIVIDE
                    },
                    1,
                );
            }
            // NumPy's nan* functions divide with these floating-point
            // warnings silenced and raise their own.
            (Op::NanMean, St::N([c, ..])) if c < 1.0 => self.add(EMPTY_MEAN, 1),
            (Op::NanVar | Op::NanStd, St::N([c, ..])) if c <= p.ddof as f64 => self.add(DOF_NAN, 1),
            _ => {}
        }
        // A finite result past the float dtype's range is stored as inf.
        if let (Value::F(v), Value::F(s)) = (value, stored) {
            if v.is_finite() && s.is_infinite() {
                match p.op {
                    Op::Sum | Op::Prod | Op::NanSum => self.add(OVERFLOW_REDUCE, 1),
                    _ => self.add(OVERFLOW_CAST, 1),
                }
            }
        }
    }

    /// The warnings every result element of a per-row reduction raises
    /// whatever the data: an empty mean, variances without degrees of
    /// freedom. Data-dependent ones (all-NaN rows, overflow) are only
    /// counted for reductions finished by the coordinator.
    pub fn of_shape(p: &ReduceParams) -> Warnings {
        let mut w = Warnings::default();
        let outputs: u64 = p.axis.out_shape(&p.shape).iter().product();
        let count = p.axis.count(&p.shape);
        if outputs == 0 || matches!(p.axis, Axis::Zero | Axis::All | Axis::ZeroInner { .. }) {
            return w;
        }
        match p.op {
            Op::Mean | Op::NanMean if count == 0 => {
                w.add(EMPTY_MEAN, outputs);
                if p.op == Op::Mean || !p.dtype.is_float() {
                    w.add(INVALID_DIVIDE, outputs);
                }
            }
            Op::Var | Op::Std | Op::NanVar | Op::NanStd if count <= p.ddof => {
                let nan = matches!(p.op, Op::NanVar | Op::NanStd) && p.dtype.is_float();
                w.add(if nan { DOF_NAN } else { DOF }, outputs);
                // An empty or one-element slice has M2 = 0: 0 / 0. Longer
                // ones divide M2 by 0, which is "invalid" or "divide by
                // zero" depending on the data: not counted here.
                if (matches!(p.op, Op::Var | Op::Std) || !p.dtype.is_float()) && count <= 1 {
                    w.add(INVALID_DIVIDE, outputs);
                }
            }
            _ => {}
        }
        w
    }
}
