//! `mmrun reduce`: a NumPy reduction of an existing file, as a library
//! call. [`Reduction::open`] reads the input's layout under the read
//! discipline and resolves the axis and the result's dtype and shape;
//! [`Reduction::run`] does the work:
//!
//! - along an inner axis (`--axis 1`, `-1`, …) each input row gives one
//!   output row, so workers write the rows of a new `--out` file;
//! - across rows (`--axis 0`, `all`) workers scan the file and hand back
//!   exact partial trees, which the coordinator combines in a fixed order
//!   (the same bits for any worker count) and, with an [`Output`],
//!   publishes through a second runner;
//! - a rank of a distributed run hands its partials back unfinished, for
//!   `mmrun report merge`.
//!
//! ```
//! use mmrun::commands::reduce::{Reduced, Reduction};
//! use mmrun::kernels::reduce::{Op, Value};
//! use mmrun::{DType, Fill, FillKind, Kernel, Runner, Target};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("data.npy");
//! Runner::new(Target::new_npy(&path, DType::F32, vec![100, 10]))
//!     .run(|l| Ok(Some(Box::new(Fill::new(FillKind::Arange, l.dtype)?) as Box<dyn Kernel>)))?;
//!
//! // `mmrun reduce data.npy --op sum --axis all`
//! let sum = Reduction::open(&path, None, Op::Sum, "all", 0, None)?;
//! let done = sum.run(Runner::new(Target::existing(&path)), None)?;
//! assert_eq!(done.text().as_deref(), Some("499500.0")); // np.float32's str
//! let Reduced { values, bytes } = done.result.expect("a finished reduction");
//! assert_eq!(values, vec![Value::F(499500.0)]);
//! assert_eq!(bytes, 499500f32.to_le_bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::commands::{publish_values, Output};
use crate::coordinator::read::Reading;
use crate::coordinator::{RunSummary, Runner, Target};
use crate::error::{Error, Result};
use crate::kernels::reduce::{Axis, Node, Op, Reduce, ReduceParams, Selection, Value, Warnings};
use crate::kernels::Kernel;
use crate::layout::{shape_text, DType, Layout, RawSpec};
use crate::plan::RowSlice;
use crate::pyfloat::{numpy_f32, python_float};

/// A resolved reduction of one file: what [`Reduction::open`] checked.
#[derive(Debug, Clone)]
pub struct Reduction {
    /// The input file.
    pub file: PathBuf,
    /// The input's raw description, if it has no header.
    pub raw: Option<RawSpec>,
    /// The input's layout.
    pub input: Layout,
    /// The axis as given (`0`, `all`, `-1`, `1,2`): reports echo it.
    pub axis_text: String,
    /// Operation, axis, ddof, input and result dtypes.
    pub params: ReduceParams,
    /// The result's shape (empty for one number).
    pub out_shape: Vec<u64>,
    /// A complex input's result dtype (`c8`, `c16`). The reduction then
    /// runs over the input seen as (real, imaginary) pairs of its part
    /// dtype, a last axis of 2 that is kept: `input`, `raw` and `params`
    /// describe that view, whose result bytes are the complex result's.
    pub complex: Option<DType>,
}

/// A finished reduction: the result's bytes in its dtype (C order) and
/// its values before they were stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// The result's data, as a `.npy` of the result's dtype holds it.
    pub bytes: Vec<u8>,
    /// The values, one per result element.
    pub values: Vec<Value>,
}

/// What [`Reduction::run`] did.
#[derive(Debug, Clone)]
pub struct ReduceOutcome {
    /// The run (its `results` describe the reduction, as `--json` prints).
    pub summary: RunSummary,
    /// The finished result of a reduction across rows the coordinator
    /// finished (not a dry run, not a rank).
    pub result: Option<Reduced>,
    /// Where it was published, if an [`Output`] was given.
    pub published: Option<PathBuf>,
    /// The result's dtype.
    pub dtype: DType,
}

impl ReduceOutcome {
    /// A one-number result as NumPy prints it (`print(np.float32(x))`);
    /// `None` for an array, a published result or no result.
    pub fn text(&self) -> Option<String> {
        match (&self.result, &self.published) {
            (Some(r), None) => Some(scalar_text(&r.values, self.dtype)),
            _ => None,
        }
    }
}

impl Reduction {
    /// Reads `file`'s layout (`raw` describes a headerless one) under the
    /// read discipline, and resolves `op` over `axis` (NumPy's forms:
    /// `0`, `-1`, `1,2`, `all`) with `ddof`, giving a result of `out_dtype`
    /// (NumPy's result dtype when `None`). Refusals (exit 2): a file a run
    /// holds or half wrote, an axis out of bounds, a reduction NumPy
    /// refuses.
    pub fn open(
        file: impl Into<PathBuf>,
        raw: Option<RawSpec>,
        op: Op,
        axis: &str,
        ddof: u64,
        out_dtype: Option<DType>,
    ) -> Result<Reduction> {
        let file = file.into();
        Reading::start(&file)?;
        let mut f = File::open(&file).map_err(|e| Error::io_refused("cannot open", &file, e))?;
        let input = Layout::read(&file, &mut f, raw.as_ref())?;
        input.check_workable(&file)?;
        drop(f);
        let resolved = Axis::parse_for(op, axis, input.shape.len())?;
        if input.dtype.is_complex() && matches!(op, Op::Sum | Op::Mean) {
            return Reduction::complex(file, input, op, resolved, axis, out_dtype);
        }
        let params = ReduceParams {
            op,
            axis: resolved,
            ddof,
            dtype: input.dtype,
            shape: input.shape.clone(),
            out_dtype: out_dtype.unwrap_or_else(|| op.result_dtype(input.dtype)),
            cols: None,
            pairs: false,
        };
        Reduce::new(params.clone())?;
        Ok(Reduction {
            out_shape: resolved.out_shape(&input.shape),
            file,
            raw,
            input,
            axis_text: axis.to_string(),
            params,
            complex: None,
        })
    }

    /// `np.sum`/`np.mean` of a complex array: those of its real and
    /// imaginary parts, so the reduction runs over the (…, 2) array of its
    /// parts along the same axes, keeping the last, whose result has the
    /// complex result's bytes (`c8` sums in float32 pairs, as NumPy's
    /// result dtype; accumulated in float64 as every float reduction).
    fn complex(
        file: PathBuf,
        input: Layout,
        op: Op,
        resolved: Axis,
        axis_text: &str,
        out_dtype: Option<DType>,
    ) -> Result<Reduction> {
        let part = |c: DType| {
            if c == DType::C64 {
                DType::F32
            } else {
                DType::F64
            }
        };
        let out_c = out_dtype.unwrap_or(input.dtype);
        if !out_c.is_complex() {
            return Err(Error::refused(format!(
                "--dtype {out_c}: the {} of a {} array is complex, and NumPy refuses to cast it to {out_c} \
                 (same_kind); give --dtype c8 or c16, or reduce real(x) or abs(x) written by mmrun apply --expr",
                op.name(),
                input.dtype
            )));
        }
        let ndim = input.shape.len();
        let mut shape = input.shape.clone();
        let view_axis = if ndim == 0 {
            // A 0-d array is its one element: read as (1, 2), along axis 0.
            shape.push(1);
            Axis::Zero
        } else {
            resolved.keeping_a_last_axis(ndim).ok_or_else(|| {
                Error::refused(format!(
                    "--axis {axis_text} of a {ndim}-D array names no axis to reduce"
                ))
            })?
        };
        shape.push(2);
        let view = Layout {
            dtype: part(input.dtype),
            shape: shape.clone(),
            ..input.clone()
        };
        let raw = Some(RawSpec {
            dtype: view.dtype,
            shape: Some(shape.clone()),
            offset: input.data_offset,
        });
        let params = ReduceParams {
            op,
            axis: view_axis,
            ddof: 0,
            dtype: view.dtype,
            shape,
            out_dtype: part(out_c),
            cols: None,
            pairs: true,
        };
        Reduce::new(params.clone())?;
        Ok(Reduction {
            out_shape: resolved.out_shape(&input.shape),
            file,
            raw,
            input: view,
            axis_text: axis_text.to_string(),
            params,
            complex: Some(out_c),
        })
    }

    /// Narrows the reduction to `a[rows, cols]` (`--rows A:B --cols C:D`,
    /// Python's slices): the input is then read through a raw view of those
    /// rows, and the result, its shape and any index are the slice's.
    pub fn select(mut self, rows: Option<RowSlice>, cols: Option<RowSlice>) -> Result<Reduction> {
        if rows.is_none() && cols.is_none() {
            return Ok(self);
        }
        let sel = Selection::new(&self.input, rows, cols)?;
        self.params.shape = sel.shape;
        self.params.cols = sel.cols;
        self.raw = sel.raw.or(self.raw);
        self.out_shape = self.params.axis.out_shape(&self.params.shape);
        if self.complex.is_some() {
            // The view's last axis of (real, imaginary) is the element.
            self.out_shape.pop();
        }
        Reduce::new(self.params.clone())?;
        Ok(self)
    }

    /// Whether the result is one number.
    pub fn is_scalar(&self) -> bool {
        self.out_shape.is_empty()
    }

    /// Whether the reduction runs across rows (a scan finished by the
    /// coordinator) rather than one output row per input row.
    pub fn across_rows(&self) -> bool {
        self.params.axis.across_rows()
    }

    /// The result's dtype.
    pub fn out_dtype(&self) -> DType {
        self.complex.unwrap_or(self.params.out_dtype)
    }

    /// The target of a run: `out`'s new file for a per-row reduction (the
    /// pending file for a `rank`), the input itself for a scan.
    pub fn target(&self, out: Option<&Output>, rank: bool) -> Result<Target> {
        if self.across_rows() {
            let mut t = Target::existing(&self.file);
            t.raw = self.raw.clone();
            return Ok(t);
        }
        match out {
            Some(out) => Ok(out.target(self.out_dtype(), self.out_shape.clone(), rank)),
            None => Err(self.needs_out()),
        }
    }

    /// Refuses an array result with nowhere to go: it needs `out`, except
    /// across rows for a `rank`, which leaves partials in its report.
    pub fn check_out(&self, out: Option<&Output>, rank: bool) -> Result<()> {
        if !self.is_scalar() && out.is_none() && !(rank && self.across_rows()) {
            return Err(self.needs_out());
        }
        Ok(())
    }

    /// The refusal of an array result with nowhere to go.
    fn needs_out(&self) -> Error {
        Error::refused(format!(
            "--axis {} gives an array of shape {}: give --out OUT",
            self.axis_text,
            shape_text(&self.out_shape)
        ))
    }

    /// The reduction as reports describe it (`results` of `--json`), with
    /// its result if finished.
    pub fn describe(&self, out: Option<&Path>, result: Option<&Reduced>) -> serde_json::Value {
        let out_dtype = self.out_dtype();
        serde_json::json!({
            "op": self.params.op.name(),
            "axis": self.axis_text,
            "ddof": self.params.ddof,
            "dtype": out_dtype.descr(),
            "shape": self.out_shape,
            "out": out,
            "value": match result.map(|r| r.values.as_slice()) {
                Some(v @ [_, _]) if self.complex.is_some() && self.is_scalar() => {
                    serde_json::json!(scalar_text(v, out_dtype))
                }
                // The value the result's bytes hold, not the f64 accumulator.
                Some([Value::F(v)]) if stored_float(*v, out_dtype).is_finite() => {
                    serde_json::json!(stored_float(*v, out_dtype))
                }
                Some([v]) => serde_json::json!(v.to_string()),
                _ => serde_json::Value::Null,
            },
            "bytes_hex": match (self.is_scalar(), result) {
                (true, Some(r)) => serde_json::json!(crate::hex::encode(&r.bytes)),
                _ => serde_json::Value::Null,
            },
        })
    }

    /// Runs the reduction with `runner` (built on [`Reduction::target`]
    /// for `out`, with the caller's workers, spawn, progress …), and
    /// publishes a result finished by the coordinator to `out` through a
    /// second runner with `runner`'s sync and locking. A rank of a
    /// distributed run (`runner.distributed(Some(..))`) across rows leaves
    /// its exact partials in the summary's `results` instead.
    ///
    /// An array result needs `out`; a failure after the scan carries the
    /// run's summary ([`Error::summary`]).
    pub fn run(&self, runner: Runner, out: Option<&Output>) -> Result<ReduceOutcome> {
        let rank = runner.is_distributed();
        self.check_out(out, rank)?;
        if !self.across_rows() {
            let Some(out) = out else {
                return Err(self.needs_out());
            };
            // One output row per input row: workers write OUT's rows.
            let runner = runner.input(self.file.clone(), self.raw.clone());
            let mut s = runner.run(|_| {
                let k: Box<dyn Kernel> = Box::new(Reduce::new(self.params.clone())?);
                Ok(Some(k))
            })?;
            s.results = self.describe(Some(&out.path), None);
            if !s.dry_run {
                // Each worker counted its rows' warnings.
                let mut warnings = Warnings::default();
                for r in &s.kernel_results {
                    match Warnings::decode(r) {
                        Ok(w) => warnings.merge(&w),
                        Err(e) => return Err(e.with_summary(s)),
                    }
                }
                s.results["warnings"] = warnings.to_json();
            }
            // Throughput counts what the run read as well as what it wrote.
            if !s.dry_run {
                let read = s.rows.len().saturating_mul(self.input.row_bytes()?);
                s.bytes = s.bytes.saturating_add(read);
            }
            return Ok(self.outcome(s, None, None));
        }
        let out_path = out.map(|o| o.path.as_path());
        let scanned = runner.scan(|_| Ok(Box::new(Reduce::new(self.params.clone())?)))?;
        let mut summary = scanned.summary;
        if summary.dry_run {
            summary.results = self.describe(out_path, None);
            return Ok(self.outcome(summary, None, None));
        }
        if rank {
            let mut nodes = Vec::new();
            for r in &scanned.results {
                nodes.extend(
                    Node::decode_all(r)
                        .map_err(|e| e.with_summary(summary.clone()))?
                        .iter()
                        .map(|n| n.record()),
                );
            }
            summary.results = serde_json::json!({
                "reduce": self.params,
                "partials": nodes,
            });
            return Ok(self.outcome(summary, None, None));
        }
        let mut forest = Reduce::new(self.params.clone())?.forest();
        let finished = scanned
            .results
            .iter()
            .try_for_each(|r| forest.insert_encoded(r))
            .and_then(|()| forest.finish_with_warnings());
        let (bytes, values, warnings) = match finished {
            Ok(v) => v,
            Err(e) => return Err(e.with_summary(summary)),
        };
        let result = Reduced { bytes, values };
        summary.results = self.describe(out_path, Some(&result));
        summary.results["warnings"] = warnings.to_json();
        let published = match out {
            Some(out) => {
                let t = out.target(self.out_dtype(), self.out_shape.clone(), false);
                if let Err(e) = publish_values(runner.publisher(t), result.bytes.clone()) {
                    return Err(e.with_summary(summary));
                }
                Some(out.path.clone())
            }
            None => None,
        };
        Ok(self.outcome(summary, Some(result), published))
    }

    fn outcome(
        &self,
        summary: RunSummary,
        result: Option<Reduced>,
        published: Option<PathBuf>,
    ) -> ReduceOutcome {
        ReduceOutcome {
            summary,
            result,
            published,
            dtype: self.out_dtype(),
        }
    }

    /// Where the result goes, as a dry run prints it.
    pub fn output_text(&self, out: Option<&Path>) -> String {
        let dtype = self.out_dtype();
        match out {
            Some(p) => format!(
                "output: {} (new .npy, {dtype} {})",
                p.display(),
                shape_text(&self.out_shape)
            ),
            None => format!("output: one {dtype} number on stdout"),
        }
    }
}

/// `v` as a float of `dtype` holds it (rounded to f4 or f2), widened back.
fn stored_float(v: f64, dtype: DType) -> f64 {
    match dtype {
        DType::F32 => f64::from(v as f32),
        DType::F16 => half::f16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// A one-number result as NumPy prints it (`print(np.float32(x))`); empty
/// for anything but one value.
pub fn scalar_text(values: &[Value], dtype: DType) -> String {
    let truth = |b: bool| if b { "True" } else { "False" }.to_string();
    match values {
        [Value::F(v)] if dtype == DType::F32 => numpy_f32(*v as f32),
        [Value::F(v)] if dtype == DType::F16 => numpy_f32(half::f16::from_f64(*v).to_f32()),
        [Value::F(v)] if dtype.is_float() => python_float(*v),
        [Value::F(v)] if dtype == DType::Bool => truth(*v != 0.0),
        [Value::I(v)] if dtype == DType::Bool => truth(*v != 0),
        [Value::F(re), Value::F(im)] if dtype.is_complex() => {
            complex_text(*re, *im, dtype == DType::C64)
        }
        [v] => v.to_string(),
        _ => String::new(),
    }
}

/// A complex number as Python and NumPy print it: `(1.5-2j)`, `2j` when
/// the real part is +0, each part the shortest repr of its float (of
/// float32 for `c8`) without a trailing `.0`.
fn complex_text(re: f64, im: f64, single: bool) -> String {
    let part = |v: f64| {
        let s = if single {
            numpy_f32(v as f32)
        } else {
            python_float(v)
        };
        s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
    };
    if re == 0.0 && re.is_sign_positive() {
        return format!("{}j", part(im));
    }
    let sign = if im.is_sign_negative() && !im.is_nan() {
        "-"
    } else {
        "+"
    };
    format!("({}{sign}{}j)", part(re), part(im.abs()))
}

/// Checks a distributed reduction's own refusals: across rows a rank
/// leaves partials in its report (so it needs one, and takes no `--out`).
pub fn check_distributed(r: &Reduction, out: bool, report: bool) -> Result<()> {
    if r.complex.is_some() {
        return Err(Error::refused(
            "--distributed reductions of complex input are not supported: reduce it on one node (leave out --distributed)",
        ));
    }
    if !r.across_rows() {
        return Ok(());
    }
    if out {
        return Err(Error::refused(
            "with --distributed, --axis 0 and all leave exact partials in each rank's --report: combine them with mmrun report merge --out OUT",
        ));
    }
    if !report {
        return Err(Error::refused(
            "--distributed --axis 0/all needs --report FILE (or --json): the rank's partials go there",
        ));
    }
    Ok(())
}
