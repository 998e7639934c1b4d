//! NumPy's floating-point RuntimeWarnings for a reduction, counted.
//!
//! NumPy warns once per call, naming what happened ("Mean of empty
//! slice", "invalid value encountered in divide"); mmrun counts how many
//! result elements raised each, so a user sees both what NumPy would have
//! said and how much of the result it concerns. The warnings follow from
//! each element's final state and from the shape alone, so they are the
//! same for any split of the rows: workers of a per-row reduction count
//! their rows' and hand the counts to the coordinator
//! ([`Warnings::encode`]), which adds them up.
//!
//! The same counter carries `apply --expr`'s warnings ("overflow
//! encountered in multiply", …; see [`crate::expr`]), whose messages are
//! built from the ufunc's name.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Op, ReduceParams, St, Value};

/// Warnings by NumPy's message, with the number of result elements each
/// concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Warnings(BTreeMap<String, u64>);

/// NumPy's texts.
const EMPTY_MEAN: &str = "Mean of empty slice";
const DOF: &str = "Degrees of freedom <= 0 for slice";
/// np.nanvar's spelling of it.
const DOF_NAN: &str = "Degrees of freedom <= 0 for slice.";
const INVALID_DIVIDE: &str = "invalid value encountered in divide";
const ZERO_DIVIDE: &str = "divide by zero encountered in divide";
const OVERFLOW_REDUCE: &str = "overflow encountered in reduce";
const OVERFLOW_CAST: &str = "overflow encountered in cast";
/// np.nanmin / np.nanmax of a slice of NaN only.
const ALL_NAN: &str = "All-NaN slice encountered";

impl Warnings {
    /// Counts `n` more result elements that raise `what` (NumPy's text).
    pub fn add(&mut self, what: &str, n: u64) {
        if n > 0 {
            match self.0.get_mut(what) {
                Some(c) => *c = c.saturating_add(n),
                None => {
                    self.0.insert(what.to_string(), n);
                }
            }
        }
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Warnings) {
        for (w, n) in other.iter() {
            self.add(w, n);
        }
    }

    /// The counts as a worker hands them to the coordinator.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    /// Counts a worker handed back ([`Warnings::encode`]); empty bytes
    /// (a worker with nothing to say) are no warnings.
    pub fn decode(bytes: &[u8]) -> crate::error::Result<Warnings> {
        if bytes.is_empty() {
            return Ok(Warnings::default());
        }
        serde_json::from_slice(bytes).map(Warnings).map_err(|e| {
            crate::error::Error::failed(format!("a worker's warning counts are unreadable: {e}"))
        })
    }

    /// Whether nothing was warned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(message, count)` pairs, by message.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.0.iter().map(|(w, &n)| (w.as_str(), n))
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
            // Only a slice of NaN only has a NaN nanmin (an empty one is
            // refused before any work).
            (Op::NanMin | Op::NanMax, St::F(v)) if v.is_nan() => self.add(ALL_NAN, 1),
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
}
