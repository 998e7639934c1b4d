//! `mmrun apply`: an element-wise expression over a file's rows, in place
//! or into a new `--out` file, as a library call. [`ApplySpec`] holds the
//! expression and the selection; in place it checks what apply refuses
//! (a missing file, a dtype change) and runs on the file itself; with an
//! output, [`ApplySpec::to_file`] reads the input's layout under the read
//! discipline and probes the expression's result dtype (NumPy's promotion
//! of the input's dtype) before anything is created.
//!
//! ```
//! use mmrun::commands::{apply::ApplySpec, Output};
//! use mmrun::{DType, Fill, FillKind, Kernel, Runner, Target};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("x.npy");
//! Runner::new(Target::new_npy(&path, DType::I32, vec![10, 4]))
//!     .run(|l| Ok(Some(Box::new(Fill::new(FillKind::Arange, l.dtype)?) as Box<dyn Kernel>)))?;
//!
//! // `mmrun apply x.npy --expr 'x / 2' --out half.npy`: int32 / int → float64.
//! let job = ApplySpec::new("x / 2").to_file(&path, None, None)?;
//! assert_eq!(job.out_dtype, DType::F64);
//! let out = Output::new(dir.path().join("half.npy"));
//! let runner = Runner::new(job.target(&out, false));
//! let summary = job.run(runner)?;
//! assert_eq!(summary.layout.dtype, DType::F64);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::commands::Output;
use crate::coordinator::read::Reading;
use crate::coordinator::{pending_elsewhere, RunSummary, Runner, Target};
use crate::error::{Error, Result};
use crate::kernels::apply::{Apply, ApplyParams};
use crate::kernels::reduce::Warnings;
use crate::kernels::Kernel;
use crate::layout::{DType, Layout, RawSpec};
use crate::plan::{RowRange, RowSlice};

/// What `apply` computes: the expression and the selection it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySpec {
    /// The expression (`x`, indices `i j k n`, operators, functions).
    pub expr: String,
    /// Only these rows (a Python slice over axis 0).
    pub rows: Option<RowSlice>,
    /// Only these axis-1 indices (a Python slice).
    pub cols: Option<RowSlice>,
}

impl ApplySpec {
    /// `expr` over every element.
    pub fn new(expr: impl Into<String>) -> Self {
        ApplySpec {
            expr: expr.into(),
            rows: None,
            cols: None,
        }
    }

    /// The kernel's parameters for a file of `layout`, over `rows`.
    pub fn params(&self, layout: &Layout, rows: RowRange) -> Result<ApplyParams> {
        let cols = match self.cols {
            Some(c) if layout.shape.len() >= 2 => Some(c.resolve(layout.shape[1])),
            Some(_) => {
                return Err(Error::refused(
                    "--cols needs an array with at least 2 dimensions",
                ))
            }
            None => None,
        };
        Ok(ApplyParams {
            expr: self.expr.clone(),
            x_dtype: layout.dtype,
            shape: layout.shape.clone(),
            rows,
            cols,
        })
    }

    /// The rows of a file of `layout` the selection names.
    fn rows_of(&self, layout: &Layout) -> RowRange {
        self.rows.map_or(RowRange::new(0, layout.rows()), |r| {
            r.resolve(layout.rows())
        })
    }

    /// Refusals of an in-place apply, naming what apply itself takes: it
    /// never creates a file (a `rank` works on the pending partial file,
    /// so `file` need not exist), and its result keeps the file's dtype
    /// (`expect` is a dtype asked for, checked against a `.npy`'s).
    pub fn check_in_place(&self, file: &Path, expect: Option<DType>, rank: bool) -> Result<()> {
        if !file.exists() && !rank {
            if let Some(e) = pending_elsewhere(file) {
                return Err(e);
            }
            return Err(Error::refused(format!(
                "{} does not exist: apply works on an existing file",
                file.display()
            )));
        }
        if let Some(want) = expect {
            if let Ok(mut f) = File::open(file) {
                let have = Layout::read(file, &mut f, None)?.dtype;
                if have != want {
                    return Err(Error::refused(format!(
                        "{} holds {have}, not {want}: in place, apply keeps the file's dtype; leave out --dtype, or add --out OUT to write a {want} result",
                        file.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs in place with `runner` (on the existing file), over the
    /// selected rows.
    pub fn in_place(&self, runner: Runner) -> Result<RunSummary> {
        let runner = runner.rows(self.rows);
        runner
            .run(|layout| {
                let rows = self.rows_of(layout);
                let k: Box<dyn Kernel> =
                    Box::new(Apply::new(self.params(layout, rows)?, layout.dtype)?);
                Ok(Some(k))
            })
            .and_then(with_warnings)
    }

    /// Prepares a run from `file` (`raw` describes a headerless one) into
    /// a new file of `out_dtype`, by default the expression's result dtype.
    /// Reads the input's layout under the read discipline; refuses an
    /// expression that does not compile for it.
    pub fn to_file(
        &self,
        file: impl Into<PathBuf>,
        raw: Option<RawSpec>,
        out_dtype: Option<DType>,
    ) -> Result<ApplyToFile> {
        let file = file.into();
        Reading::start(&file)?;
        let mut f = File::open(&file).map_err(|e| Error::io_refused("cannot open", &file, e))?;
        let input = Layout::read(&file, &mut f, raw.as_ref())?;
        input.check_workable(&file)?;
        let params = self.params(&input, self.rows_of(&input))?;
        // complex128 takes every result, so the probe refuses only the expression.
        let probe = Apply::new(params.clone(), out_dtype.unwrap_or(DType::C128))?;
        let out_dtype = out_dtype.unwrap_or(probe.result_dtype());
        Ok(ApplyToFile {
            file,
            raw,
            input,
            params,
            out_dtype,
        })
    }
}

/// An apply from one file into a new one, checked and typed.
#[derive(Debug, Clone)]
pub struct ApplyToFile {
    /// The input file.
    pub file: PathBuf,
    /// The input's raw description, if it has no header.
    pub raw: Option<RawSpec>,
    /// The input's layout.
    pub input: Layout,
    /// The kernel's parameters.
    pub params: ApplyParams,
    /// The output's dtype.
    pub out_dtype: DType,
}

impl ApplyToFile {
    /// The output target: a new file shaped as the input, or for a `rank`
    /// the pending file `create --pending` made.
    pub fn target(&self, out: &Output, rank: bool) -> Target {
        out.target(self.out_dtype, self.input.shape.clone(), rank)
    }

    /// Runs with `runner` (built on [`ApplyToFile::target`]), workers
    /// reading the input's rows beside the rows they write.
    pub fn run(self, runner: Runner) -> Result<RunSummary> {
        let runner = runner.input(self.file, self.raw);
        let params = self.params;
        runner
            .run(|layout| {
                let k: Box<dyn Kernel> = Box::new(Apply::new(params, layout.dtype)?);
                Ok(Some(k))
            })
            .and_then(with_warnings)
    }
}

/// Adds up the RuntimeWarnings NumPy would have raised for EXPR, which
/// each worker counted over its elements, into the summary's
/// `results.warnings` (the summary line and reports name them).
fn with_warnings(mut s: RunSummary) -> Result<RunSummary> {
    if s.dry_run {
        return Ok(s);
    }
    let mut warnings = Warnings::default();
    for r in &s.kernel_results {
        match Warnings::decode(r) {
            Ok(w) => warnings.merge(&w),
            Err(e) => return Err(e.with_summary(s)),
        }
    }
    s.results = serde_json::json!({ "warnings": warnings.to_json() });
    Ok(s)
}
