//! The apply kernel: `out[rows, cols] = EXPR` evaluated as NumPy 2 would,
//! block by block, with the expression engine of [`crate::expr`].
//!
//! In place, only the selected rows are given to workers and each row's
//! selected columns are rewritten. With an output file, every row is
//! written: selected elements get EXPR, the others `x` cast to the output
//! dtype, so the result equals `out = x.astype(T, casting="unsafe");
//! out[rows, cols] = EXPR`.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{AnyRowsMut, Kernel, KernelSpec, RowsIn};
use crate::error::{Error, Result};
use crate::expr::{Column, ColumnMut, Compiled, Expr, Scratch};
use crate::kernels::reduce::Warnings;
use crate::layout::DType;
use crate::plan::RowRange;

/// Parameters of an apply, as they cross `exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyParams {
    /// The expression text.
    pub expr: String,
    /// dtype of `x` (the file read).
    pub x_dtype: DType,
    /// Shape of the file read.
    pub shape: Vec<u64>,
    /// Selected rows (all rows when whole).
    pub rows: RowRange,
    /// Selected axis-1 indices, if not all.
    pub cols: Option<RowRange>,
}

/// The apply kernel.
pub struct Apply {
    params: ApplyParams,
    expr: Compiled,
    identity: Compiled,
    /// Elements per axis-1 index (the product of the axes after axis 1).
    inner: u64,
    /// Elements per row of the file (the product of the axes after
    /// axis 0; 1 for 0-d and 1-d arrays).
    row_len: u64,
    /// No --rows or --cols: every element is rewritten, so blocks need not
    /// be whole rows ([`Kernel::elementwise`]).
    whole: bool,
    scratch: Mutex<Option<Scratch>>,
    identity_scratch: Mutex<Option<Scratch>>,
}

impl std::fmt::Debug for Apply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apply")
            .field("params", &self.params)
            .finish()
    }
}

impl Apply {
    /// Compiles `params.expr` for `x` of `params.x_dtype`, writing `out`.
    /// Everything NumPy would refuse is refused here, before any worker.
    pub fn new(params: ApplyParams, out: DType) -> Result<Self> {
        let computes = |d: DType| {
            if d.is_complex() {
                Ok(())
            } else {
                d.check_computable("apply")
            }
        };
        computes(params.x_dtype)
            .and_then(|()| computes(out))
            .map_err(Error::refused)?;
        let parsed = Expr::parse(&params.expr)
            .map_err(|e| Error::refused(format!("--expr '{}': {e}", params.expr)))?;
        let expr = parsed
            .compile(params.x_dtype, &params.shape)
            .map_err(|e| Error::refused(format!("--expr '{}': {e}", params.expr)))?;
        expr.check_output(out)
            .map_err(|e| Error::refused(format!("--expr '{}': {e}", params.expr)))?;
        let rows = params.shape.first().copied().unwrap_or(1);
        let whole = params.cols.is_none() && params.rows == RowRange::new(0, rows);
        // NumPy stores complex into a real array by dropping the imaginary
        // part with a ComplexWarning; mmrun refuses to lose it silently.
        let lossy = |what: String| {
            Error::refused(format!(
                "--expr '{}': {what} would be stored into {out}, which drops the imaginary part (NumPy's ComplexWarning): mmrun refuses that; write real(...), imag(...) or abs(...) of it, or store into a complex64/complex128 file (--out OUT --dtype c16)",
                params.expr
            ))
        };
        if !out.is_complex() && out != DType::Bool {
            if expr.result_dtype().is_complex() {
                return Err(lossy(format!("its {} result", expr.result_dtype())));
            }
            if params.x_dtype.is_complex() && !whole {
                return Err(lossy(format!(
                    "x ({}) outside --rows/--cols",
                    params.x_dtype
                )));
            }
        }
        let identity = Expr::parse("x")
            .and_then(|e| e.compile(params.x_dtype, &params.shape))
            .map_err(|e| Error::refused(e.to_string()))?;
        if params.cols.is_some() && params.shape.len() < 2 {
            return Err(Error::refused(
                "--cols needs an array with at least 2 dimensions",
            ));
        }
        let inner = params.shape.iter().skip(2).product::<u64>();
        let row_len = params.shape.iter().skip(1).product::<u64>();
        Ok(Apply {
            whole,
            params,
            expr,
            identity,
            inner,
            row_len,
            scratch: Mutex::new(None),
            identity_scratch: Mutex::new(None),
        })
    }

    /// The dtype EXPR evaluates to (NumPy's result dtype).
    pub fn result_dtype(&self) -> DType {
        self.expr.result_dtype()
    }

    /// The element range `[a, b)` within a row that EXPR rewrites.
    fn segment(&self, row_len: u64) -> (u64, u64) {
        match self.params.cols {
            Some(c) => (c.start * self.inner, c.end * self.inner),
            None => (0, row_len),
        }
    }

    /// Cuts the flat elements `first..first + len` into pieces that are
    /// either all selected (EXPR) or all not, and calls `f(lo, hi,
    /// selected)` for each, in order. Rows and columns come from the flat
    /// index and the file's shape, so a block may be whole rows, part of
    /// a row or the flat view alike.
    fn pieces(
        &self,
        first: u64,
        len: u64,
        mut f: impl FnMut(u64, u64, bool) -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        let end = first + len;
        if len == 0 {
            return Ok(());
        }
        if self.whole {
            return f(first, end, true);
        }
        let row_len = self.row_len;
        let (a, b) = self.segment(row_len);
        let mut r = first / row_len;
        while r * row_len < end {
            let base = r * row_len;
            let selected = r >= self.params.rows.start && r < self.params.rows.end;
            for (lo, hi, sel) in [(0, a, false), (a, b, selected), (b, row_len, false)] {
                let (lo, hi) = ((base + lo).max(first), (base + hi).min(end));
                if lo < hi {
                    f(lo, hi, sel)?;
                }
            }
            r += 1;
        }
        Ok(())
    }

    fn with_scratch<T>(&self, len: usize, f: impl FnOnce(&mut Scratch, &mut Scratch) -> T) -> T {
        let mut guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let mut idg = self
            .identity_scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let s = guard.get_or_insert_with(|| self.expr.new_scratch(len.max(1)));
        let t = idg.get_or_insert_with(|| self.identity.new_scratch(len.max(1)));
        f(s, t)
    }
}

/// Registry constructor.
pub(super) fn build(params: &serde_json::Value, dtype: DType) -> Result<Box<dyn Kernel>> {
    let p: ApplyParams = serde_json::from_value(params.clone())
        .map_err(|e| Error::refused(format!("bad apply parameters: {e}")))?;
    Ok(Box::new(Apply::new(p, dtype)?))
}

impl Kernel for Apply {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "apply".into(),
            params: serde_json::to_value(&self.params).expect("apply parameters serialise"),
        }
    }

    fn reads_input(&self) -> bool {
        self.expr.reads_x()
    }

    fn elementwise(&self) -> bool {
        self.whole
    }

    fn splits_rows(&self) -> bool {
        // Rows and columns come from each element's flat index and the
        // file's shape, never from the block's rows: any block will do.
        true
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let dtype = rows.dtype();
        let item = dtype.itemsize() as usize;
        let first = rows.first_element();
        let (bytes, _, _) = rows.into_bytes();
        let len = (bytes.len() / item.max(1)) as u64;
        self.with_scratch(len as usize, |scratch, _| {
            // In place, elements outside the selection keep their value.
            self.pieces(first, len, |lo, hi, selected| {
                if !selected {
                    return Ok(());
                }
                let (p, q) = ((lo - first) as usize * item, (hi - first) as usize * item);
                let col =
                    ColumnMut::from_bytes(dtype, &mut bytes[p..q]).ok_or("misaligned block")?;
                self.expr.eval_in_place(col, lo, scratch)
            })
        })
    }

    fn run_io(&self, input: RowsIn<'_>, out: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let out_dtype = out.dtype();
        let (oi, ii) = (
            out_dtype.itemsize() as usize,
            input.dtype.itemsize() as usize,
        );
        let first = out.first_element();
        let (obytes, _, _) = out.into_bytes();
        let len = (obytes.len() / oi.max(1)) as u64;
        if input.bytes.len() / ii.max(1) != len as usize {
            return Err(format!(
                "input block has {} elements, output block {len}",
                input.bytes.len() / ii.max(1)
            ));
        }
        self.with_scratch(len as usize, |scratch, id_scratch| {
            // With an output file every element is written: EXPR where
            // selected, `x` cast to the output dtype elsewhere.
            self.pieces(first, len, |lo, hi, selected| {
                let (p, q) = ((lo - first) as usize, (hi - first) as usize);
                let xin = Column::from_bytes(input.dtype, &input.bytes[p * ii..q * ii])
                    .ok_or("misaligned block")?;
                let dst = ColumnMut::from_bytes(out_dtype, &mut obytes[p * oi..q * oi])
                    .ok_or("misaligned block")?;
                if selected {
                    self.expr.eval_into(xin, lo, dst, scratch)
                } else {
                    self.identity.eval_into(xin, lo, dst, id_scratch)
                }
            })
        })
    }

    fn take_result(&self) -> std::result::Result<Option<Vec<u8>>, String> {
        // NumPy's RuntimeWarnings of the elements EXPR computed here.
        let guard = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        let mut w = Warnings::default();
        if let Some(s) = guard.as_ref() {
            for (what, n) in s.warnings().messages() {
                w.add(&what, n);
            }
        }
        Ok(Some(w.encode()))
    }
}
