//! `convert` for the dtypes beside bool, integer and float: complex64 and
//! complex128 computed as NumPy's `astype` computes them, and every other
//! fixed-size dtype copied to itself (byte order and memory order made
//! native, as `np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<'))`).
//!
//! The convert kernel decodes its input to aligned native elements and
//! hands the block here whenever either side is not a real numeric dtype;
//! this module owns which of those pairs NumPy allows under each `casting`
//! and which mmrun performs.

use crate::expr::elem::{with_elem, CastTo};
use crate::kernels::convert::Casting;
use crate::layout::{ByteOrder, DType};

/// The float dtype of one component of a complex dtype.
fn component(d: DType) -> Option<DType> {
    match d {
        DType::C64 => Some(DType::F32),
        DType::C128 => Some(DType::F64),
        _ => None,
    }
}

/// `np.can_cast(from, to, casting)` where either side is a layout-only
/// dtype; `None` for two real numeric dtypes (the caller's table).
pub(crate) fn can_cast(
    from: DType,
    order: ByteOrder,
    to: DType,
    casting: Casting,
    real_safe: impl Fn(DType, DType) -> bool,
) -> Option<bool> {
    if from.is_computable() && to.is_computable() {
        return None;
    }
    let same_order = order == ByteOrder::Little || from.descr().starts_with('|');
    if let Some(v) = super::unit_cast::can_cast(from, !same_order, to, casting) {
        return Some(v);
    }
    let complex = |d: DType| matches!(d, DType::C64 | DType::C128);
    let safe = if from == to {
        true
    } else if let (true, Some(c)) = (from.is_computable(), component(to)) {
        real_safe(from, c)
    } else {
        complex(from) && complex(to) && to.itemsize() >= from.itemsize()
    };
    Some(match casting {
        Casting::No => from == to && same_order,
        Casting::Equiv => from == to,
        Casting::Safe => safe,
        // Real to complex goes up a kind; complex to real goes down.
        Casting::SameKind => safe || (complex(to) && (complex(from) || from.is_computable())),
        Casting::Unsafe => true,
    })
}

/// Refuses a pair mmrun does not convert (NumPy may): the dtypes other
/// than complex are copied only to themselves.
pub(crate) fn check_supported(from: DType, to: DType) -> Result<(), String> {
    let numeric = |d: DType| d.is_computable() || component(d).is_some();
    if from == to || (numeric(from) && numeric(to)) {
        return Ok(());
    }
    if let Some(r) = super::unit_cast::supports(from, to) {
        return r;
    }
    Err(format!(
        "convert from {from} ({}) to {to} ({}) is not supported by mmrun's kernels: they convert between bool, integer, float, complex64 and complex128, between datetime64 units, between timedelta64 units and between S and U strings, and copy any other dtype only to itself; \
         a program of yours can write it through mmrun exec FILE -- PROGRAM",
        from.descr(),
        to.descr()
    ))
}

/// The size of the units a dtype's bytes are swapped in: a complex's
/// components, a `U`'s code points, nothing for bytes and void.
pub(crate) fn swap_unit(d: DType) -> usize {
    match d {
        DType::C64 | DType::C128 | DType::C256 => d.itemsize() as usize / 2,
        DType::Str(_) => 4,
        DType::Bytes(_) | DType::Void(_) => 1,
        _ => d.itemsize() as usize,
    }
}

/// Casts `input` (aligned native elements of `from`) into `out` (of `to`),
/// as `astype` does: a real value becomes the real part, a complex becomes
/// its real part when cast to a real dtype, components are rounded to
/// nearest, and any other dtype is copied.
pub(crate) fn cast_block(
    from: DType,
    to: DType,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let bad = |e: bytemuck::PodCastError| e.to_string();
    if from == to {
        out.copy_from_slice(&input[..out.len()]);
        return Ok(());
    }
    if let Some(Ok(())) = super::unit_cast::supports(from, to) {
        return super::unit_cast::cast_block(from, to, input, out);
    }
    match (component(from), component(to)) {
        (Some(DType::F32), Some(DType::F64)) => {
            let s: &[f32] = bytemuck::try_cast_slice(input).map_err(bad)?;
            let d: &mut [f64] = bytemuck::try_cast_slice_mut(out).map_err(bad)?;
            for (d, &s) in d.iter_mut().zip(s) {
                *d = f64::from(s);
            }
        }
        (Some(DType::F64), Some(DType::F32)) => {
            let s: &[f64] = bytemuck::try_cast_slice(input).map_err(bad)?;
            let d: &mut [f32] = bytemuck::try_cast_slice_mut(out).map_err(bad)?;
            for (d, &s) in d.iter_mut().zip(s) {
                *d = s as f32;
            }
        }
        (None, Some(c)) if from.is_computable() => {
            // Real into complex: the real part by the real cast, imaginary 0.
            with_elem!(from, S => with_elem!(c, D => {
                let s: &[S] = bytemuck::try_cast_slice(input).map_err(bad)?;
                let d: &mut [D] = bytemuck::try_cast_slice_mut(out).map_err(bad)?;
                for (pair, &s) in d.chunks_exact_mut(2).zip(s) {
                    pair[0] = CastTo::<D>::cast(s);
                    pair[1] = D::default();
                }
            }))
        }
        (Some(c), None) if to == DType::Bool => {
            // Truth of a complex: either part nonzero.
            with_elem!(c, S => {
                let s: &[S] = bytemuck::try_cast_slice(input).map_err(bad)?;
                for (d, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
                    *d = u8::from(pair[0] != S::default() || pair[1] != S::default());
                }
            })
        }
        (Some(c), None) if to.is_computable() => {
            // Complex into real (unsafe casting only): the real part.
            with_elem!(c, S => with_elem!(to, D => {
                let s: &[S] = bytemuck::try_cast_slice(input).map_err(bad)?;
                let d: &mut [D] = bytemuck::try_cast_slice_mut(out).map_err(bad)?;
                for (d, pair) in d.iter_mut().zip(s.chunks_exact(2)) {
                    *d = CastTo::<D>::cast(pair[0]);
                }
            }))
        }
        _ => return check_supported(from, to),
    }
    Ok(())
}
