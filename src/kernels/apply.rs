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
        params
            .x_dtype
            .check_computable("apply")
            .and_then(|()| out.check_computable("apply"))
            .map_err(Error::refused)?;
        let parsed = Expr::parse(&params.expr)
            .map_err(|e| Error::refused(format!("--expr '{}': {e}", params.expr)))?;
        let expr = parsed
            .compile(params.x_dtype, &params.shape)
            .map_err(|e| Error::refused(format!("--expr '{}': {e}", params.expr)))?;
        expr.check_output(out)
            .map_err(|e| Error::refused(format!("--expr '{}': {e}", params.expr)))?;
        let identity = Expr::parse("x")
            .and_then(|e| e.compile(params.x_dtype, &params.shape))
            .map_err(|e| Error::refused(e.to_string()))?;
        if params.cols.is_some() && params.shape.len() < 2 {
            return Err(Error::refused(
                "--cols needs an array with at least 2 dimensions",
            ));
        }
        let inner = params.shape.iter().skip(2).product::<u64>();
        let rows = params.shape.first().copied().unwrap_or(1);
        let whole = params.cols.is_none() && params.rows == RowRange::new(0, rows);
        Ok(Apply {
            whole,
            params,
            expr,
            identity,
            inner,
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

    fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let dtype = rows.dtype();
        let item = dtype.itemsize() as usize;
        let (bytes, first_row, row_len) = rows.into_bytes();
        let (a, b) = self.segment(row_len);
        let row_bytes = row_len as usize * item;
        self.with_scratch(bytes.len() / item.max(1), |scratch, _| {
            for (i, row) in bytes.chunks_mut(row_bytes.max(1)).enumerate() {
                let r = first_row + i as u64;
                if !self.whole && (r < self.params.rows.start || r >= self.params.rows.end) {
                    continue;
                }
                let seg = &mut row[a as usize * item..b as usize * item];
                let col = ColumnMut::from_bytes(dtype, seg).ok_or("misaligned block")?;
                self.expr.eval_in_place(col, r * row_len + a, scratch)?;
            }
            Ok(())
        })
    }

    fn run_io(&self, input: RowsIn<'_>, out: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let out_dtype = out.dtype();
        let (oi, ii) = (
            out_dtype.itemsize() as usize,
            input.dtype.itemsize() as usize,
        );
        let (obytes, first_row, row_len) = out.into_bytes();
        let (a, b) = self.segment(row_len);
        let (orow, irow) = (row_len as usize * oi, row_len as usize * ii);
        if row_len == 0 {
            return Ok(());
        }
        self.with_scratch(row_len as usize, |scratch, id_scratch| {
            for (i, (o, x)) in obytes
                .chunks_mut(orow)
                .zip(input.bytes.chunks(irow))
                .enumerate()
            {
                let r = first_row + i as u64;
                let n0 = r * row_len;
                let selected =
                    self.whole || (r >= self.params.rows.start && r < self.params.rows.end);
                // Pieces of the row: before the columns, the columns, after.
                let pieces = [(0, a, false), (a, b, selected), (b, row_len, false)];
                for (lo, hi, use_expr) in pieces {
                    if lo >= hi {
                        continue;
                    }
                    let (lo, hi) = (lo as usize, hi as usize);
                    let xin = Column::from_bytes(input.dtype, &x[lo * ii..hi * ii])
                        .ok_or("misaligned block")?;
                    let dst = ColumnMut::from_bytes(out_dtype, &mut o[lo * oi..hi * oi])
                        .ok_or("misaligned block")?;
                    if use_expr {
                        self.expr.eval_into(xin, n0 + lo as u64, dst, scratch)?;
                    } else {
                        self.identity
                            .eval_into(xin, n0 + lo as u64, dst, id_scratch)?;
                    }
                }
            }
            Ok(())
        })
    }
}
