//! Kernels from closures: [`from_fn`] turns a Rust closure over row blocks
//! into a [`Kernel`] for forked workers.
//!
//! A closure has no name and no serialisable parameters, so it cannot be
//! rebuilt in a re-executed worker: a closure kernel runs only with
//! `Spawn::Fork` (the default), where each worker inherits it with the rest
//! of the coordinator's memory. [`crate::Runner`] refuses it under
//! `Spawn::Exec` before anything on disk changes. For `--spawn exec`,
//! implement [`Kernel`] on a type whose parameters serialise and register it.

use super::{AnyRowsMut, Kernel, KernelSpec};

/// The spec name of closure kernels. No registered kernel has it, which is
/// what keeps them out of re-executed workers.
pub const FN_KERNEL_NAME: &str = "fn";

/// A [`Kernel`] made from a closure by [`from_fn`].
pub struct FnKernel<F> {
    f: F,
    reads_input: bool,
}

impl<F> std::fmt::Debug for FnKernel<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnKernel")
            .field("reads_input", &self.reads_input)
            .finish_non_exhaustive()
    }
}

/// A kernel that calls `f` on every row block of every worker.
///
/// `f` gets typed rows ([`AnyRowsMut`]) that know their global row index
/// ([`crate::RowsMut::first_row`], [`crate::RowsMut::rows_mut`]): computing
/// from that index, never from a per-worker counter, keeps the file
/// independent of the worker count. An `Err` (or a panic) fails the worker;
/// [`crate::Runner::run`] then returns an error naming the worker, its rows
/// and the message, and publishes nothing.
///
/// By default the kernel is taken to read the values it overwrites, so an
/// in-place run refuses `retries` and `resume` (a range done twice would be
/// applied twice). A closure that writes every element without reading any
/// can say so with [`FnKernel::overwrites`].
///
/// Closures run in forked workers only (see the module doc).
///
/// ```
/// use mmrun::kernels::{from_fn, AnyRowsMut, Kernel};
/// use mmrun::{DType, Runner, Target, Workers};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("squares.npy");
/// // Element [i, j] of a 6×4 int64 array is i * i + j, whichever worker writes row i.
/// let kernel = from_fn(|rows: AnyRowsMut<'_>| {
///     let AnyRowsMut::I64(mut rows) = rows else {
///         return Err("expected int64 rows".into());
///     };
///     for (i, row) in rows.rows_mut() {
///         for (j, v) in row.iter_mut().enumerate() {
///             *v = (i * i) as i64 + j as i64;
///         }
///     }
///     Ok(())
/// })
/// .overwrites();
/// Runner::new(Target::new_npy(&path, DType::I64, vec![6, 4]))
///     .workers(Workers::Count(3))
///     .run(|_| Ok(Some(Box::new(kernel) as Box<dyn Kernel>)))?;
///
/// // The data follow the .npy header; the last element is 5 * 5 + 3.
/// let bytes = std::fs::read(&path)?;
/// let last = i64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap());
/// assert_eq!(last, 28);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_fn<F>(f: F) -> FnKernel<F>
where
    F: Fn(AnyRowsMut<'_>) -> Result<(), String> + Send + Sync,
{
    FnKernel {
        f,
        reads_input: true,
    }
}

impl<F> FnKernel<F> {
    /// Declares that the closure writes every element of its blocks without
    /// reading them (a fill), so retried or resumed ranges are safe.
    pub fn overwrites(mut self) -> Self {
        self.reads_input = false;
        self
    }
}

impl<F> Kernel for FnKernel<F>
where
    F: Fn(AnyRowsMut<'_>) -> Result<(), String> + Send + Sync,
{
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: FN_KERNEL_NAME.into(),
            params: serde_json::Value::Null,
        }
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> Result<(), String> {
        (self.f)(rows)
    }

    fn reads_input(&self) -> bool {
        self.reads_input
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::RowsMut;

    #[test]
    fn the_closure_sees_global_rows() {
        let k = from_fn(|rows| match rows {
            AnyRowsMut::U32(mut r) => {
                for (i, row) in r.rows_mut() {
                    row.fill(i as u32);
                }
                Ok(())
            }
            _ => Err("u32 only".into()),
        });
        let mut data = [0u32; 6];
        k.run(AnyRowsMut::U32(RowsMut::new(&mut data, 7, 2)))
            .unwrap();
        assert_eq!(data, [7, 7, 8, 8, 9, 9]);
        let mut other = [0u8; 2];
        let err = k.run(AnyRowsMut::U8(RowsMut::new(&mut other, 0, 2)));
        assert_eq!(err, Err("u32 only".to_string()));
        assert!(k.reads_input() && !k.overwrites().reads_input());
    }
}
