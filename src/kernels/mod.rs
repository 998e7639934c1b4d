//! Kernels: what workers compute, one block of rows at a time.
//!
//! A [`Kernel`] sees typed row blocks ([`RowsMut<T>`], wrapped in
//! [`AnyRowsMut`] so one dispatch on the dtype happens per block, never per
//! element) and global indices, so its result never depends on how rows were
//! split between workers. Its parameters serialise to a [`KernelSpec`], and
//! [`build`] rebuilds a kernel from a spec by name — that is how a kernel
//! crosses `exec` into a re-executed worker. Built-in kernels use exactly the
//! API library users get.

pub mod apply;
pub mod convert;
pub mod fill;
pub mod func;
mod layout_cast;
pub mod reduce;
mod unit_cast;
pub mod values;

use half::f16;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::DType;

pub use apply::Apply;
pub use convert::Convert;
pub use fill::{Fill, FillKind};
pub use func::{from_fn, FnKernel};

/// A mutable view of consecutive whole rows of one worker, typed.
#[derive(Debug)]
pub struct RowsMut<'a, T> {
    data: &'a mut [T],
    first_row: u64,
    row_len: u64,
    /// For part of one row ([`RowsMut::part_of_row`]): its first column.
    first_col: u64,
}

impl<'a, T> RowsMut<'a, T> {
    /// Wraps `data`, which holds whole rows of `row_len` elements starting
    /// at global row `first_row`.
    pub fn new(data: &'a mut [T], first_row: u64, row_len: u64) -> Self {
        debug_assert!(row_len == 0 || (data.len() as u64).is_multiple_of(row_len));
        RowsMut {
            data,
            first_row,
            row_len,
            first_col: 0,
        }
    }

    /// Wraps `data`, the elements of global row `row` from column
    /// `first_col` on: part of one row too long for one block, for a kernel
    /// that [`Kernel::splits_rows`]. [`RowsMut::rows`] is then 0.
    pub fn part_of_row(data: &'a mut [T], row: u64, row_len: u64, first_col: u64) -> Self {
        debug_assert!(first_col + data.len() as u64 <= row_len);
        RowsMut {
            data,
            first_row: row,
            row_len,
            first_col,
        }
    }

    /// Global index of the first row.
    pub fn first_row(&self) -> u64 {
        self.first_row
    }

    /// Number of rows in this block.
    pub fn rows(&self) -> u64 {
        (self.data.len() as u64)
            .checked_div(self.row_len)
            .unwrap_or(0)
    }

    /// Elements per row.
    pub fn row_len(&self) -> u64 {
        self.row_len
    }

    /// Global flat index of the first element.
    pub fn first_element(&self) -> u64 {
        self.first_row * self.row_len + self.first_col
    }

    /// All elements of the block, row-major.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data
    }

    /// Iterates over the rows as `(global row index, elements)`.
    pub fn rows_mut(&mut self) -> impl Iterator<Item = (u64, &mut [T])> {
        let first = self.first_row;
        let n = self.row_len.max(1) as usize;
        self.data
            .chunks_mut(n)
            .enumerate()
            .map(move |(i, r)| (first + i as u64, r))
    }
}

/// A row block of any supported dtype. `b1` elements are bytes holding 0/1.
#[derive(Debug)]
#[allow(missing_docs)]
pub enum AnyRowsMut<'a> {
    Bool(RowsMut<'a, u8>),
    I8(RowsMut<'a, i8>),
    I16(RowsMut<'a, i16>),
    I32(RowsMut<'a, i32>),
    I64(RowsMut<'a, i64>),
    U8(RowsMut<'a, u8>),
    U16(RowsMut<'a, u16>),
    U32(RowsMut<'a, u32>),
    U64(RowsMut<'a, u64>),
    F16(RowsMut<'a, f16>),
    F32(RowsMut<'a, f32>),
    F64(RowsMut<'a, f64>),
    /// A layout-only dtype (complex, datetime, strings …) that no built-in
    /// kernel computes on, as bytes: its `row_len` counts bytes.
    Opaque(DType, RowsMut<'a, u8>),
}

impl<'a> AnyRowsMut<'a> {
    /// Views `bytes` (whole rows, aligned for `dtype`) as typed rows.
    ///
    /// Panics if `bytes` is not aligned for `dtype` or not a whole number of
    /// elements: callers (the worker) guarantee both.
    pub fn from_bytes(dtype: DType, bytes: &'a mut [u8], first_row: u64, row_len: u64) -> Self {
        Self::from_bytes_at(dtype, bytes, first_row, row_len, None)
    }

    /// Views `bytes` as the elements of row `row` from column `first_col`
    /// on (see [`RowsMut::part_of_row`]); the same conditions as
    /// [`AnyRowsMut::from_bytes`].
    pub fn part_of_row(
        dtype: DType,
        bytes: &'a mut [u8],
        row: u64,
        row_len: u64,
        first_col: u64,
    ) -> Self {
        Self::from_bytes_at(dtype, bytes, row, row_len, Some(first_col))
    }

    fn from_bytes_at(
        dtype: DType,
        bytes: &'a mut [u8],
        first_row: u64,
        row_len: u64,
        col: Option<u64>,
    ) -> Self {
        // An empty block (a zero-size array) may sit at any address.
        fn c<T: bytemuck::Pod>(b: &mut [u8]) -> &mut [T] {
            if b.is_empty() {
                &mut []
            } else {
                bytemuck::cast_slice_mut(b)
            }
        }
        fn rows<T>(
            data: &mut [T],
            first_row: u64,
            row_len: u64,
            col: Option<u64>,
        ) -> RowsMut<'_, T> {
            match col {
                None => RowsMut::new(data, first_row, row_len),
                Some(k) => RowsMut::part_of_row(data, first_row, row_len, k),
            }
        }
        match dtype {
            DType::Bool => AnyRowsMut::Bool(rows(bytes, first_row, row_len, col)),
            DType::U8 => AnyRowsMut::U8(rows(bytes, first_row, row_len, col)),
            DType::I8 => AnyRowsMut::I8(rows(c(bytes), first_row, row_len, col)),
            DType::I16 => AnyRowsMut::I16(rows(c(bytes), first_row, row_len, col)),
            DType::I32 => AnyRowsMut::I32(rows(c(bytes), first_row, row_len, col)),
            DType::I64 => AnyRowsMut::I64(rows(c(bytes), first_row, row_len, col)),
            DType::U16 => AnyRowsMut::U16(rows(c(bytes), first_row, row_len, col)),
            DType::U32 => AnyRowsMut::U32(rows(c(bytes), first_row, row_len, col)),
            DType::U64 => AnyRowsMut::U64(rows(c(bytes), first_row, row_len, col)),
            DType::F16 => AnyRowsMut::F16(rows(c(bytes), first_row, row_len, col)),
            DType::F32 => AnyRowsMut::F32(rows(c(bytes), first_row, row_len, col)),
            DType::F64 => AnyRowsMut::F64(rows(c(bytes), first_row, row_len, col)),
            other => {
                let size = other.itemsize();
                let col = col.map(|k| k * size);
                AnyRowsMut::Opaque(other, rows(bytes, first_row, row_len * size, col))
            }
        }
    }
}

impl<'a> AnyRowsMut<'a> {
    /// The block's dtype.
    pub fn dtype(&self) -> DType {
        match self {
            AnyRowsMut::Bool(_) => DType::Bool,
            AnyRowsMut::I8(_) => DType::I8,
            AnyRowsMut::I16(_) => DType::I16,
            AnyRowsMut::I32(_) => DType::I32,
            AnyRowsMut::I64(_) => DType::I64,
            AnyRowsMut::U8(_) => DType::U8,
            AnyRowsMut::U16(_) => DType::U16,
            AnyRowsMut::U32(_) => DType::U32,
            AnyRowsMut::U64(_) => DType::U64,
            AnyRowsMut::F16(_) => DType::F16,
            AnyRowsMut::F32(_) => DType::F32,
            AnyRowsMut::F64(_) => DType::F64,
            AnyRowsMut::Opaque(d, _) => *d,
        }
    }

    /// Global flat index of the block's first element (see
    /// [`RowsMut::first_element`]): right for whole rows, part of a row and
    /// the flat view alike.
    pub fn first_element(&self) -> u64 {
        macro_rules! first {
            ($($v:ident),*) => {
                match self {
                    $(AnyRowsMut::$v(r) => r.first_element(),)*
                    // Its positions count bytes.
                    AnyRowsMut::Opaque(d, r) => r.first_element() / d.itemsize().max(1),
                }
            };
        }
        first!(Bool, I8, I16, I32, I64, U8, U16, U32, U64, F16, F32, F64)
    }

    /// The block as raw bytes with its position: `(bytes, first_row,
    /// row_len)`, for kernels that work on any dtype through bytes.
    pub fn into_bytes(self) -> (&'a mut [u8], u64, u64) {
        use bytemuck::cast_slice_mut as b;
        macro_rules! raw {
            ($r:expr) => {{
                let (f, l) = ($r.first_row, $r.row_len);
                (b($r.data), f, l)
            }};
        }
        match self {
            AnyRowsMut::Bool(r) => raw!(r),
            AnyRowsMut::I8(r) => raw!(r),
            AnyRowsMut::I16(r) => raw!(r),
            AnyRowsMut::I32(r) => raw!(r),
            AnyRowsMut::I64(r) => raw!(r),
            AnyRowsMut::U8(r) => raw!(r),
            AnyRowsMut::U16(r) => raw!(r),
            AnyRowsMut::U32(r) => raw!(r),
            AnyRowsMut::U64(r) => raw!(r),
            AnyRowsMut::F16(r) => raw!(r),
            AnyRowsMut::F32(r) => raw!(r),
            AnyRowsMut::F64(r) => raw!(r),
            AnyRowsMut::Opaque(d, r) => {
                let size = d.itemsize().max(1);
                (r.data, r.first_row, r.row_len / size)
            }
        }
    }
}

/// The same rows of an input file, read-only, for kernels that read one
/// file and write another (`apply --out`, `convert`).
#[derive(Debug, Clone, Copy)]
pub struct RowsIn<'a> {
    /// The rows' bytes, aligned for `dtype`. For an input in Fortran order
    /// (only convert takes one), whose rows are not byte ranges, the whole
    /// data region instead, at any alignment.
    pub bytes: &'a [u8],
    /// Element type of the input file.
    pub dtype: DType,
    /// Global index of the first row.
    pub first_row: u64,
    /// Elements per input row.
    pub row_len: u64,
}

/// A kernel's name and parameters: enough to rebuild it in another process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSpec {
    /// Registry name, e.g. `fill`.
    pub name: String,
    /// Parameters, as the kernel serialises them.
    pub params: serde_json::Value,
}

/// A computation over row blocks.
///
/// `run` is called once per block, in row order within a worker, from the
/// worker process; blocks of different workers run concurrently in other
/// processes. A kernel must only write the block it is given, and its
/// output for a row must not depend on which worker or block holds it.
pub trait Kernel: Send + Sync {
    /// The name and parameters that rebuild this kernel through [`build`]
    /// (asked only when workers are re-executed).
    fn spec(&self) -> KernelSpec;

    /// The kernel as a run's report and its journal fingerprint record it,
    /// asked on every run: by default its [`Kernel::spec`]. A kernel whose
    /// spec carries bulk data names that data here by size and digest.
    fn describe(&self) -> KernelSpec {
        self.spec()
    }

    /// Computes one block.
    fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String>;

    /// Whether the kernel reads the existing values (so blocks must be
    /// loaded before `run` when they are staged through a bounce buffer).
    fn reads_input(&self) -> bool {
        false
    }

    /// Whether the kernel's value at each element depends only on the
    /// element's flat index (and its own or its input's value there), never
    /// on which elements share its block or row. Ranks of a distributed
    /// run may then split such a kernel's work inside rows, at 64 KiB
    /// boundaries: the kernel is given blocks of a flat view (one element
    /// per row) whose `first_row` is the flat index. A local worker does
    /// the same with rows wider than a block (of the file or its input),
    /// so its blocks stay bounded in bytes whatever the shape.
    fn elementwise(&self) -> bool {
        false
    }

    /// Whether the kernel overwrites every element of every block it is
    /// given without reading any of them. Workers then compute a block in a
    /// cache-sized buffer and write it with `pwrite` instead of storing
    /// through the mapping (no page fault, no zeroing per page). A kernel
    /// that reads `x`, or writes only some columns, must keep the default.
    fn overwrites_blocks(&self) -> bool {
        false
    }

    /// Whether each element the kernel writes depends only on its flat
    /// index ([`RowsMut::first_element`] and the slice) and the file's
    /// shape, never on the block's rows, so a block may be part of one
    /// row: a worker gives such a kernel blocks of the flat view (as for
    /// [`Kernel::elementwise`]) where a row is wider than a block, and its
    /// memory stays bounded whatever the shape. Unlike an element-wise
    /// kernel it may write only some elements (`apply --cols`), so ranks
    /// still split it by whole rows.
    fn splits_rows(&self) -> bool {
        false
    }

    /// Computes one block of the output from the same rows of an input
    /// file. Only kernels built for an input file are given one.
    fn run_io(&self, input: RowsIn<'_>, out: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let _ = (input, out);
        Err("this kernel does not read an input file".into())
    }

    /// For a kernel that reads an input (or scans), the elements a row of
    /// it wider than a block may be read in: `Some(g)` lets the worker hand
    /// such a row over in parts ([`Kernel::read_part`]) that start at
    /// multiples of `g` elements, because the kernel's results do not
    /// depend on where the parts end. `None`: rows are read whole.
    fn row_part(&self) -> Option<u64> {
        None
    }

    /// Reads elements `from ..` of input row `input.first_row` (as many as
    /// `input.bytes` holds), a part of a row read in parts, in order. The
    /// part that ends the row has `last` set and, for a kernel that writes
    /// rows, the row's output in `out`; a scanning kernel gets `None`.
    fn read_part(
        &self,
        input: RowsIn<'_>,
        from: u64,
        last: bool,
        out: Option<AnyRowsMut<'_>>,
    ) -> std::result::Result<(), String> {
        let _ = (input, from, last, out);
        Err("this kernel reads whole rows".into())
    }

    /// Whether the kernel only reads the file it is run over (a reduction
    /// across rows): workers then map it read-only and call [`Kernel::scan`]
    /// instead of writing rows.
    fn scans(&self) -> bool {
        false
    }

    /// Reads one block of `rows` rows (a scanning kernel).
    fn scan(&self, input: RowsIn<'_>, rows: u64) -> std::result::Result<(), String> {
        let _ = (input, rows);
        Err("this kernel does not scan".into())
    }

    /// What the kernel computed over the worker's rows, handed to the
    /// coordinator when the worker succeeds (a scanning kernel's partial
    /// results). Called once, after the last block.
    fn take_result(&self) -> std::result::Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

type Builder = fn(&serde_json::Value, DType) -> Result<Box<dyn Kernel>>;

/// The kernels [`build`] knows, by name.
const REGISTRY: &[(&str, Builder)] = &[
    ("fill", fill::build),
    ("apply", apply::build),
    ("reduce", reduce::build),
    ("values", values::build),
    ("convert", convert::build),
];

/// Rebuilds a kernel from its spec, for files of `dtype`.
pub fn build(spec: &KernelSpec, dtype: DType) -> Result<Box<dyn Kernel>> {
    let (_, builder) = REGISTRY
        .iter()
        .find(|(name, _)| *name == spec.name)
        .ok_or_else(|| Error::refused(format!("unknown kernel '{}'", spec.name)))?;
    builder(&spec.params, dtype)
}

/// The names of the registered kernels.
pub fn registered() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|(n, _)| *n)
}

/// Refuses `kernel` for re-executed workers when [`build`] cannot rebuild
/// it there (a closure, or a user kernel that is not registered): found
/// before anything on disk changes rather than as every worker failing.
pub fn check_rebuildable(kernel: &dyn Kernel) -> Result<()> {
    let name = kernel.spec().name;
    if registered().any(|n| n == name) {
        return Ok(());
    }
    Err(Error::refused(format!(
        "kernel '{name}' is not registered, so a re-executed worker cannot rebuild it: run it with Spawn::Fork (--spawn fork)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_rebuild_the_same_kernel() {
        let k = Fill::new(FillKind::Uniform { seed: 7 }, DType::F32).unwrap();
        let spec = k.spec();
        let again = build(&spec, DType::F32).unwrap();
        assert_eq!(again.spec(), spec);
        assert!(build(
            &KernelSpec {
                name: "nope".into(),
                params: serde_json::json!({})
            },
            DType::F32
        )
        .is_err());
        assert_eq!(
            registered().collect::<Vec<_>>(),
            vec!["fill", "apply", "reduce", "values", "convert"]
        );
    }

    #[test]
    fn rows_know_their_global_position() {
        let mut data = [0u32; 6];
        let mut rows = RowsMut::new(&mut data, 10, 3);
        assert_eq!((rows.rows(), rows.first_element()), (2, 30));
        let idx: Vec<u64> = rows.rows_mut().map(|(i, _)| i).collect();
        assert_eq!(idx, vec![10, 11]);
    }
}
