//! The convert kernel: `OUT = IN.astype(T)` into a native little-endian,
//! C-order file, for every input NumPy can hand us — big-endian, Fortran
//! order, or a headerless file at any offset.
//!
//! The kernel opens and maps nothing: it reads its input through the
//! worker's input mapping ([`Kernel::run_io`] with [`RowsIn`]), as
//! `apply --out` does. The runner takes convert's input with the layout
//! convert read (`Runner::input_layout`), byte order and Fortran order
//! included. For C order the worker hands over the input elements at the
//! same flat indices as the output block; for Fortran order, whose rows are
//! not byte ranges, the whole data region, from which the kernel gathers
//! (see `Convert::gather_fortran`). Elements are decoded to native order in
//! a staging buffer only when they are not already aligned native values,
//! then cast with the expression engine's NumPy casts.
//!
//! Every output element depends only on the input element at the same
//! logical flat index, so the kernel is [`Kernel::elementwise`]: ranks of a
//! distributed run split it at 64 KiB boundaries inside rows.
//!
//! Casting rules are NumPy's `np.can_cast(from, to, casting)` at the dtype
//! level ([`can_cast`]); `--strict` adds a per-value check (`refused`) for
//! the cases where NumPy's `astype` is silent or platform-specific.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use half::f16;
use serde::{Deserialize, Serialize};

use super::{AnyRowsMut, Kernel, KernelSpec, RowsIn};
use crate::error::{Error, Result};
use crate::expr::elem::{with_elem, CastTo, B8};
use crate::layout::{ByteOrder, DType, Layout};

/// NumPy's `casting` argument: which dtype conversions are allowed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Casting {
    /// Only the identical dtype, byte order included.
    No,
    /// The same type in either byte order.
    Equiv,
    /// Only conversions that preserve every value.
    Safe,
    /// Safe ones, or within a kind (`f8` → `f4`) or to a higher kind
    /// (`u` → `i` → `f`).
    SameKind,
    /// Anything (what `astype` does by default).
    Unsafe,
}

impl Casting {
    /// All rules, from the strictest.
    pub const ALL: [Casting; 5] = [
        Casting::No,
        Casting::Equiv,
        Casting::Safe,
        Casting::SameKind,
        Casting::Unsafe,
    ];

    /// NumPy's spelling: `no`, `equiv`, `safe`, `same_kind`, `unsafe`.
    pub fn name(self) -> &'static str {
        match self {
            Casting::No => "no",
            Casting::Equiv => "equiv",
            Casting::Safe => "safe",
            Casting::SameKind => "same_kind",
            Casting::Unsafe => "unsafe",
        }
    }
}

impl fmt::Display for Casting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Casting {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Casting::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                Error::refused(format!(
                    "unknown casting '{s}' (no, equiv, safe, same_kind or unsafe)"
                ))
            })
    }
}

/// Rank of a dtype kind in NumPy's `same_kind` order: a cast to the same or
/// a higher kind is allowed. Note `u` < `i`: uint64 → int8 is "same kind",
/// int8 → uint64 is not.
fn kind_rank(d: DType) -> u8 {
    match d.kind() {
        'b' => 0,
        'u' => 1,
        'i' => 2,
        _ => 3,
    }
}

/// Whether every value of `from` is exactly representable in `to`
/// (NumPy's "safe"). NumPy counts int64/uint64 → float64 as safe although
/// float64 has 53 bits of mantissa; we follow NumPy, not arithmetic.
fn safe(from: DType, to: DType) -> bool {
    let (fs, ts) = (from.itemsize(), to.itemsize());
    match (from.kind(), to.kind()) {
        ('b', _) => true,
        (_, 'b') => false,
        ('u', 'u') | ('i', 'i') | ('f', 'f') => ts >= fs,
        ('u', 'i') => ts > fs,
        ('i', 'u') => false,
        ('u' | 'i', 'f') => ts > fs || (fs == 8 && ts == 8),
        _ => false,
    }
}

/// `np.can_cast(from_with_order, to, casting)` for the dtypes mmrun
/// supports, where `to` is always native little-endian. Checked against
/// NumPy for every pair and rule in the tests.
pub fn can_cast(from: DType, order: ByteOrder, to: DType, casting: Casting) -> bool {
    if let Some(v) = super::layout_cast::can_cast(from, order, to, casting, safe) {
        return v;
    }
    let same_order = order == ByteOrder::Little || from.itemsize() == 1;
    match casting {
        Casting::No => from == to && same_order,
        Casting::Equiv => from == to,
        Casting::Safe => safe(from, to),
        Casting::SameKind => safe(from, to) || kind_rank(from) <= kind_rank(to),
        Casting::Unsafe => true,
    }
}

/// Parameters of a conversion, as they cross `exec`: the input file and
/// its whole layout (byte order and order included — the worker protocol's
/// input variables cannot say either), the rule and `--strict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertParams {
    /// The input file (absolute, so re-executed workers find it).
    pub input: PathBuf,
    /// Element type of the input.
    pub dtype: DType,
    /// Byte order of the input elements.
    pub byte_order: ByteOrder,
    /// Whether the input is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// Shape of the input (and of the output).
    pub shape: Vec<u64>,
    /// Byte offset of the input data in its file.
    pub data_offset: u64,
    /// The casting rule the conversion was checked against.
    pub casting: Casting,
    /// Refuse values NumPy would convert silently or platform-specifically.
    pub strict: bool,
}

impl ConvertParams {
    /// Parameters reading `layout` from `input`.
    pub fn new(input: PathBuf, layout: &Layout, casting: Casting, strict: bool) -> Self {
        ConvertParams {
            input,
            dtype: layout.dtype,
            byte_order: layout.byte_order,
            fortran_order: layout.fortran_order && layout.shape.len() > 1,
            shape: layout.shape.clone(),
            data_offset: layout.data_offset,
            casting,
            strict,
        }
    }

    /// NumPy's descr of the input dtype, byte order included.
    pub fn descr(&self) -> String {
        self.dtype.descr_with(self.byte_order)
    }
}

/// The convert kernel.
pub struct Convert {
    params: ConvertParams,
    out: DType,
    rows: u64,
    row_len: u64,
    data_bytes: u64,
    staging: Mutex<Vec<u64>>,
    /// Byte-swap unit of the input's elements.
    unit: usize,
}

impl fmt::Debug for Convert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Convert")
            .field("params", &self.params)
            .field("out", &self.out)
            .finish()
    }
}

impl Convert {
    /// A conversion of `params`' input to `out`; refused (exit 2) when
    /// `params.casting` forbids it, before any worker starts.
    pub fn new(params: ConvertParams, out: DType) -> Result<Self> {
        super::layout_cast::check_supported(params.dtype, out).map_err(Error::refused)?;
        if params.strict && !(params.dtype.is_computable() && out.is_computable()) {
            return Err(Error::refused(format!(
                "--strict checks values of bool, integer and float dtypes only, not {} to {}: leave it out",
                params.dtype, out
            )));
        }
        if !can_cast(params.dtype, params.byte_order, out, params.casting) {
            // What would work: the strictest rule that allows the pair.
            let hint = Casting::ALL
                .iter()
                .find(|&&c| can_cast(params.dtype, params.byte_order, out, c))
                .map(|c| format!("; --casting {c} allows it"))
                .unwrap_or_default();
            return Err(Error::refused(format!(
                "cannot convert {} to {} ({}) under --casting {}: np.can_cast('{}', '{}', '{}') is False{hint}",
                params.descr(),
                out,
                out.descr(),
                params.casting,
                params.descr(),
                out.descr(),
                params.casting
            )));
        }
        let layout = Layout::new(
            crate::layout::Format::Raw,
            params.dtype,
            params.shape.clone(),
            params.data_offset,
        )?;
        Ok(Convert {
            unit: super::layout_cast::swap_unit(params.dtype),
            rows: layout.rows(),
            row_len: layout.row_len()?,
            data_bytes: layout.data_bytes()?,
            params,
            out,
            staging: Mutex::new(Vec::new()),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &ConvertParams {
        &self.params
    }

    /// Elements `e0..e0 + m` (C-order flat indices) of a Fortran-order
    /// input, gathered from its whole data region `whole` into `staging`
    /// as native-order elements in C order. Whole rows go through
    /// [`Convert::gather_rows`]; the partial rows at the edges of a block
    /// (a rank's flat partition) element by element.
    fn gather_fortran(&self, whole: &[u8], e0: u64, m: u64, staging: &mut [u8]) {
        let item = self.params.dtype.itemsize() as usize;
        let l = self.row_len;
        let end = e0 + m;
        let mut e = e0;
        while e < end {
            let (r, c0) = (e / l, e % l);
            let at = (e - e0) as usize * item;
            if c0 == 0 && end - e >= l {
                let n = (end - e) / l;
                let len = (n * l) as usize * item;
                self.gather_rows(whole, r, n as usize, &mut staging[at..at + len]);
                e += n * l;
            } else {
                let c1 = l.min(c0 + (end - e));
                let len = (c1 - c0) as usize * item;
                self.gather_part(whole, r, c0, c1, &mut staging[at..at + len]);
                e += c1 - c0;
            }
        }
    }

    /// Whole rows `r0..r0 + n` of a Fortran-order input, gathered into
    /// `staging` in C order.
    ///
    /// Element `(r, c)` of a Fortran array (with `c` the Fortran-order
    /// index over the trailing axes) sits at flat index `r + R·c`, so for
    /// each `c` the block's `n` elements are one contiguous run of the
    /// input: the input is read sequentially in runs of `n`, and the
    /// strided stores land in the block's staging buffer, which is sized
    /// to stay in cache.
    fn gather_rows(&self, whole: &[u8], r0: u64, n: usize, staging: &mut [u8]) {
        let item = self.params.dtype.itemsize() as usize;
        let dims = &self.params.shape[1..];
        // C-order strides of the trailing axes, in elements.
        let mut cstride = vec![1usize; dims.len()];
        for i in (0..dims.len().saturating_sub(1)).rev() {
            cstride[i] = cstride[i + 1] * dims[i + 1] as usize;
        }
        let big = self.params.byte_order == ByteOrder::Big;
        let l = self.row_len as usize;
        let mut idx = vec![0usize; dims.len()];
        let mut c = 0usize;
        for f in 0..l {
            let start = (r0 as usize + self.rows as usize * f) * item;
            let run = &whole[start..start + n * item];
            load_strided_units(item, self.unit, big, run, staging, c, l);
            // Next Fortran-order multi-index: axis 1 fastest.
            let mut i = 0;
            while i < dims.len() {
                idx[i] += 1;
                c += cstride[i];
                if idx[i] < dims[i] as usize {
                    break;
                }
                c -= idx[i] * cstride[i];
                idx[i] = 0;
                i += 1;
            }
        }
    }

    /// Columns `c0..c1` (C-order indices over the trailing axes) of row
    /// `r` of a Fortran-order input, one element at a time.
    fn gather_part(&self, whole: &[u8], r: u64, c0: u64, c1: u64, staging: &mut [u8]) {
        let item = self.params.dtype.itemsize() as usize;
        let dims = &self.params.shape[1..];
        // Fortran-order strides of the trailing axes (axis 1 fastest).
        let mut fstride = vec![1u64; dims.len()];
        for i in 1..dims.len() {
            fstride[i] = fstride[i - 1] * dims[i - 1];
        }
        let big = self.params.byte_order == ByteOrder::Big;
        for (k, c) in (c0..c1).enumerate() {
            let (mut rest, mut f) = (c, 0u64);
            for i in (0..dims.len()).rev() {
                f += (rest % dims[i]) * fstride[i];
                rest /= dims[i];
            }
            let x = (r + self.rows * f) as usize * item;
            load_strided_units(item, self.unit, big, &whole[x..x + item], staging, k, 1);
        }
    }

    /// The `--strict` error for element `i` of the block starting at flat
    /// index `e0` (`elems` holds the block's native input elements): its
    /// row, N-d index and value, and why it cannot be converted.
    fn describe(&self, e0: u64, i: usize, elems: &[u8]) -> String {
        let flat = e0 + i as u64;
        let mut index = Vec::with_capacity(self.params.shape.len());
        let mut rest = flat;
        for &d in self.params.shape.iter().rev() {
            index.push(rest % d.max(1));
            rest /= d.max(1);
        }
        index.reverse();
        let index: Vec<String> = index.iter().map(u64::to_string).collect();
        let item = self.params.dtype.itemsize() as usize;
        let bytes = &elems[i * item..(i + 1) * item];
        let value = with_elem!(self.params.dtype, S => {
            let v: S = bytemuck::pod_read_unaligned(bytes);
            v.val()
        });
        let why = match (value, self.out.kind()) {
            (Val::Float(x), 'i' | 'u') if x.is_nan() => "NaN has no integer value",
            (Val::Float(x), 'i' | 'u') if x.is_infinite() => "infinity has no integer value",
            (_, 'f') => "it overflows to infinity",
            _ => "it is out of range",
        };
        format!(
            "row {}: element [{}] = {value} cannot be converted to {} ({why}; --strict)",
            flat / self.row_len.max(1),
            index.join(", "),
            self.out
        )
    }
}

/// Registry constructor.
pub(super) fn build(params: &serde_json::Value, dtype: DType) -> Result<Box<dyn Kernel>> {
    let p: ConvertParams = serde_json::from_value(params.clone())
        .map_err(|e| Error::refused(format!("bad convert parameters: {e}")))?;
    Ok(Box::new(Convert::new(p, dtype)?))
}

impl Kernel for Convert {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "convert".into(),
            params: serde_json::to_value(&self.params).expect("convert parameters serialise"),
        }
    }

    fn elementwise(&self) -> bool {
        true
    }

    fn run(&self, _rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        Err("convert reads its input through the worker: run it with an input file (Runner::input_layout)".into())
    }

    fn run_io(&self, input: RowsIn<'_>, out: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let out_dtype = out.dtype();
        if out_dtype != self.out {
            return Err(format!(
                "convert kernel built for {} given {out_dtype} rows",
                self.out
            ));
        }
        if input.dtype != self.params.dtype {
            return Err(format!(
                "convert kernel built for {} input given {}",
                self.params.dtype, input.dtype
            ));
        }
        let e0 = out.first_element();
        let (obytes, _, _) = out.into_bytes();
        let elems = obytes.len() / out_dtype.itemsize() as usize;
        if elems == 0 {
            return Ok(());
        }
        if e0 + elems as u64 > self.rows * self.row_len {
            return Err("output elements beyond the input's".into());
        }
        let item = self.params.dtype.itemsize() as usize;
        let big = self.params.byte_order == ByteOrder::Big;
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let src: &[u8] = if self.params.fortran_order {
            // The worker hands a Fortran-order input over whole.
            if (input.bytes.len() as u64) < self.data_bytes {
                return Err("the Fortran-order input is not given whole".into());
            }
            let buf = stage(&mut staging, elems * item);
            self.gather_fortran(input.bytes, e0, elems as u64, buf);
            buf
        } else {
            let raw = input.bytes;
            if raw.len() != elems * item {
                return Err(format!(
                    "input block of {} bytes for {elems} output elements",
                    raw.len()
                ));
            }
            let aligned = (raw.as_ptr() as usize).is_multiple_of(self.unit.min(8));
            if aligned && (!big || self.unit == 1) {
                raw
            } else {
                // Big-endian, or unaligned (staged by the worker as a
                // rule; here too, so the kernel never assumes it): decode
                // to aligned native elements.
                let buf = stage(&mut staging, elems * item);
                load_strided_units(item, self.unit, big, raw, buf, 0, 1);
                buf
            }
        };
        if !(self.params.dtype.is_computable() && out_dtype.is_computable()) {
            return super::layout_cast::cast_block(self.params.dtype, out_dtype, src, obytes);
        }
        let bad = with_elem!(self.params.dtype, S => with_elem!(out_dtype, D => {
            let s: &[S] = bytemuck::try_cast_slice(src).map_err(|e| e.to_string())?;
            let d: &mut [D] = bytemuck::try_cast_slice_mut(obytes).map_err(|e| e.to_string())?;
            cast_slice(s, d);
            if self.params.strict {
                first_refused(s, d, out_dtype)
            } else {
                None
            }
        }));
        match bad {
            Some(i) => Err(self.describe(e0, i, src)),
            None => Ok(()),
        }
    }
}

/// The first `len` bytes of `buf`, grown as needed, 8-byte aligned.
fn stage(buf: &mut Vec<u64>, len: usize) -> &mut [u8] {
    if buf.len() < len.div_ceil(8) {
        buf.resize(len.div_ceil(8), 0);
    }
    &mut bytemuck::cast_slice_mut::<u64, u8>(buf)[..len]
}

/// [`load_strided_units`] for dtypes whose unit is the element.
#[cfg(test)]
fn load_strided(item: usize, big: bool, src: &[u8], dst: &mut [u8], at: usize, stride: usize) {
    load_strided_units(item, item, big, src, dst, at, stride)
}

/// Decodes the elements of `src` (any alignment, either byte order) into
/// `dst` as native values, element `k` going to element `at + k·stride`;
/// an element of `item` bytes is swapped in units of `unit` bytes (a
/// complex's components, a `U`'s code points; 1 for bytes and void).
fn load_strided_units(
    item: usize,
    unit: usize,
    big: bool,
    src: &[u8],
    dst: &mut [u8],
    at: usize,
    stride: usize,
) {
    if unit != item || ![1, 2, 4, 8].contains(&item) {
        for (k, b) in src.chunks_exact(item).enumerate() {
            let d = &mut dst[(at + k * stride) * item..][..item];
            d.copy_from_slice(b);
            if big && unit > 1 {
                d.chunks_exact_mut(unit).for_each(<[u8]>::reverse);
            }
        }
        return;
    }
    macro_rules! load {
        ($w:ty, $n:literal) => {{
            let dst: &mut [$w] = bytemuck::cast_slice_mut(dst);
            for (k, b) in src.chunks_exact($n).enumerate() {
                let b: [u8; $n] = b.try_into().expect("chunks_exact gives whole items");
                dst[at + k * stride] = if big {
                    <$w>::from_be_bytes(b)
                } else {
                    <$w>::from_le_bytes(b)
                };
            }
        }};
    }
    match item {
        1 => load!(u8, 1),
        2 => load!(u16, 2),
        4 => load!(u32, 4),
        _ => load!(u64, 8),
    }
}

/// Casts element by element, as `astype` does (see [`crate::expr`] for the
/// casts NumPy leaves platform-specific and what is done there).
#[inline(never)]
fn cast_slice<S: CastTo<D> + Copy, D>(src: &[S], dst: &mut [D]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.cast();
    }
}

/// An element's value, exactly: every integer type fits in `i128` and
/// every float type in `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Val {
    Int(i128),
    Float(f64),
}

impl fmt::Display for Val {
    /// Close to Python's repr: `nan`, `inf`, `-inf`, `3`, `-100.0`,
    /// `1e300` (Rust's shortest round-trip digits, exponent past 1e16).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Val::Int(v) => write!(f, "{v}"),
            Val::Float(x) if x.is_nan() => f.write_str("nan"),
            Val::Float(x) if x.is_infinite() => f.write_str(if x > 0.0 { "inf" } else { "-inf" }),
            Val::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// The exact value of an element, for `--strict`.
trait Num: Copy {
    fn val(self) -> Val;
}

macro_rules! num_int {
    ($($t:ty),*) => { $( impl Num for $t {
        #[inline(always)]
        fn val(self) -> Val { Val::Int(self as i128) }
    } )* };
}
num_int!(i8, i16, i32, i64, u8, u16, u32, u64);

impl Num for B8 {
    #[inline(always)]
    fn val(self) -> Val {
        Val::Int(self.get() as i128)
    }
}

impl Num for f16 {
    #[inline(always)]
    fn val(self) -> Val {
        Val::Float(self.to_f64())
    }
}

impl Num for f32 {
    #[inline(always)]
    fn val(self) -> Val {
        Val::Float(self as f64)
    }
}

impl Num for f64 {
    #[inline(always)]
    fn val(self) -> Val {
        Val::Float(self)
    }
}

/// `[lo, hi)` of an integer dtype, as floats (both exact powers of two).
fn int_bounds(d: DType) -> (f64, f64) {
    let bits = d.itemsize() as i32 * 8;
    if d.kind() == 'u' {
        (0.0, 2f64.powi(bits))
    } else {
        (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1))
    }
}

/// Whether `--strict` refuses converting `src` (which became `dst`) to
/// `to`: NaN or infinity to an integer, an integer or a truncated float
/// outside the integer target's range, or a finite value that overflowed
/// to infinity. Anything to bool (`!= 0`) and values that merely round are
/// fine: `astype` defines those.
fn refused(src: Val, dst: Val, to: DType) -> bool {
    match (src, dst) {
        (_, _) if to == DType::Bool => false,
        (Val::Int(a), Val::Int(b)) => a != b,
        (Val::Float(x), Val::Int(_)) => {
            let (lo, hi) = int_bounds(to);
            let t = x.trunc();
            !(x.is_finite() && t >= lo && t < hi)
        }
        (Val::Int(_), Val::Float(y)) => y.is_infinite(),
        (Val::Float(x), Val::Float(y)) => x.is_finite() && y.is_infinite(),
    }
}

/// Index of the first element `--strict` refuses.
#[inline(never)]
fn first_refused<S: Num, D: Num>(src: &[S], dst: &[D], to: DType) -> Option<usize> {
    src.iter()
        .zip(dst)
        .position(|(s, d)| refused(s.val(), d.val(), to))
}

#[cfg(test)]
mod tests {
    use super::super::RowsMut;
    use super::*;

    const ORDER: [DType; 12] = [
        DType::Bool,
        DType::I8,
        DType::U8,
        DType::I16,
        DType::U16,
        DType::I32,
        DType::U32,
        DType::I64,
        DType::U64,
        DType::F16,
        DType::F32,
        DType::F64,
    ];

    /// `np.can_cast(a, b, casting)` for a, b in b1 i1 u1 i2 u2 i4 u4 i8 u8
    /// f2 f4 f8 (rows: from), printed by NumPy 2.4:
    /// `''.join('x' if np.can_cast(a, b, c) else '.' for b in ts)`.
    const NUMPY_SAFE: [&str; 12] = [
        "xxxxxxxxxxxx",
        ".x.x.x.x.xxx",
        "..xxxxxxxxxx",
        "...x.x.x..xx",
        "....xxxxx.xx",
        ".....x.x...x",
        "......xxx..x",
        ".......x...x",
        "........x..x",
        ".........xxx",
        "..........xx",
        "...........x",
    ];
    const NUMPY_SAME_KIND: [&str; 12] = [
        "xxxxxxxxxxxx",
        ".x.x.x.x.xxx",
        ".xxxxxxxxxxx",
        ".x.x.x.x.xxx",
        ".xxxxxxxxxxx",
        ".x.x.x.x.xxx",
        ".xxxxxxxxxxx",
        ".x.x.x.x.xxx",
        ".xxxxxxxxxxx",
        ".........xxx",
        ".........xxx",
        ".........xxx",
    ];

    #[test]
    fn casting_table_is_numpys() {
        for (casting, table) in [
            (Casting::Safe, NUMPY_SAFE),
            (Casting::SameKind, NUMPY_SAME_KIND),
        ] {
            for (a, row) in ORDER.iter().zip(table) {
                for (b, want) in ORDER.iter().zip(row.chars()) {
                    for order in [ByteOrder::Little, ByteOrder::Big] {
                        assert_eq!(
                            can_cast(*a, order, *b, casting),
                            want == 'x',
                            "{a} -> {b} {casting} {order:?}"
                        );
                    }
                }
            }
        }
        for a in ORDER {
            for b in ORDER {
                let same = a == b;
                assert!(can_cast(a, ByteOrder::Big, b, Casting::Unsafe));
                assert_eq!(can_cast(a, ByteOrder::Little, b, Casting::No), same);
                assert_eq!(can_cast(a, ByteOrder::Big, b, Casting::Equiv), same);
                // '>i4' -> '<i4' is not "no"; one-byte types have no order.
                assert_eq!(
                    can_cast(a, ByteOrder::Big, b, Casting::No),
                    same && a.itemsize() == 1
                );
            }
        }
    }

    #[test]
    fn casting_names_parse() {
        for c in Casting::ALL {
            assert_eq!(c.name().parse::<Casting>().unwrap(), c);
        }
        assert!("same-kind".parse::<Casting>().is_err());
    }

    #[test]
    fn strict_refuses_what_astype_leaves_undefined() {
        use Val::{Float as F, Int as I};
        // NaN/inf to integers; truncation decides the range.
        assert!(refused(F(f64::NAN), I(0), DType::I32));
        assert!(refused(F(f64::INFINITY), I(0), DType::U64));
        assert!(!refused(F(255.9), I(255), DType::U8));
        assert!(refused(F(256.0), I(255), DType::U8));
        assert!(!refused(F(-0.9), I(0), DType::U8));
        assert!(refused(F(-1.0), I(0), DType::U8));
        assert!(!refused(F(-128.5), I(-128), DType::I8));
        assert!(refused(F(-129.0), I(-128), DType::I8));
        // 2^63 is just outside int64; the largest double below it is not.
        assert!(refused(F(2f64.powi(63)), I(0), DType::I64));
        assert!(!refused(F(2f64.powi(63) - 1024.0), I(0), DType::I64));
        assert!(!refused(F(2f64.powi(64) - 2048.0), I(0), DType::U64));
        assert!(refused(F(2f64.powi(64)), I(0), DType::U64));
        // Integers that wrap.
        assert!(refused(I(300), I(44), DType::U8));
        assert!(refused(I(-1), I(255), DType::U8));
        assert!(!refused(I(127), I(127), DType::I8));
        // Finite values that overflow a float; inf and NaN themselves pass.
        assert!(refused(F(1e300), F(f64::INFINITY), DType::F32));
        assert!(refused(I(70000), F(f64::INFINITY), DType::F16));
        assert!(!refused(F(f64::INFINITY), F(f64::INFINITY), DType::F16));
        assert!(!refused(F(f64::NAN), F(f64::NAN), DType::F32));
        assert!(!refused(F(1e-300), F(0.0), DType::F32));
        // Anything to bool is defined.
        assert!(!refused(F(f64::NAN), I(1), DType::Bool));
    }

    #[test]
    fn strict_finds_the_first_refused_element() {
        let src = [1.0f64, 2.5, f64::NAN, 1e10];
        let mut dst = [0i32; 4];
        cast_slice(&src, &mut dst);
        assert_eq!(dst, [1, 2, 0, i32::MAX]);
        assert_eq!(first_refused(&src, &dst, DType::I32), Some(2));
        assert_eq!(first_refused(&src[..2], &dst[..2], DType::I32), None);
    }

    #[test]
    fn values_print_as_numpy_prints_them() {
        assert_eq!(Val::Float(f64::NAN).to_string(), "nan");
        assert_eq!(Val::Float(f64::NEG_INFINITY).to_string(), "-inf");
        assert_eq!(Val::Int(-3).to_string(), "-3");
        assert_eq!(Val::Float(-100.0).to_string(), "-100.0");
        assert_eq!(Val::Float(1e300).to_string(), "1e300");
    }

    #[test]
    fn elements_decode_from_either_byte_order() {
        let src = [0x12u8, 0x34, 0x56, 0x78];
        let mut dst = [0u8; 4];
        load_strided(2, true, &src, &mut dst, 0, 1);
        let v: &[u16] = bytemuck::cast_slice(&dst);
        assert_eq!(v, [0x1234, 0x5678]);
        load_strided(2, false, &src, &mut dst, 0, 1);
        let v: &[u16] = bytemuck::cast_slice(&dst);
        assert_eq!(v, [0x3412, 0x7856]);
    }

    /// A Fortran-order (3, 2, 2) array gathered row by row, or as any
    /// flat range of elements (a rank's partial rows), gives C order.
    #[test]
    fn fortran_rows_gather_into_c_order() {
        // C-order values v[r, a, b] = 100 r + 10 a + b, stored in Fortran
        // order: flat index r + 3 a + 6 b.
        let mut data = [0u32; 12];
        for r in 0..3 {
            for a in 0..2 {
                for b in 0..2 {
                    data[r + 3 * a + 6 * b] = (100 * r + 10 * a + b) as u32;
                }
            }
        }
        // Big-endian, at an odd address, as a raw file at offset 3 maps.
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_be_bytes()).collect();
        let file = [vec![0u8; 3], bytes].concat();
        let params = ConvertParams {
            input: PathBuf::from("f.bin"),
            dtype: DType::U32,
            byte_order: ByteOrder::Big,
            fortran_order: true,
            shape: vec![3, 2, 2],
            data_offset: 3,
            casting: Casting::Unsafe,
            strict: false,
        };
        let k = Convert::new(params, DType::I64).unwrap();
        assert!(k.elementwise());
        let whole = RowsIn {
            bytes: &file[3..],
            dtype: DType::U32,
            first_row: 1,
            row_len: 4,
        };
        let mut out = vec![0i64; 8];
        k.run_io(whole, AnyRowsMut::I64(RowsMut::new(&mut out, 1, 4)))
            .unwrap();
        assert_eq!(out, [100, 101, 110, 111, 200, 201, 210, 211]);
        let c_order = [0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211];
        for (a, b) in [(0, 12), (1, 3), (3, 10), (5, 6), (7, 12)] {
            let mut out = vec![0i64; b - a];
            k.run_io(whole, AnyRowsMut::I64(RowsMut::new(&mut out, a as u64, 1)))
                .unwrap();
            assert_eq!(out, c_order[a..b], "elements {a}..{b}");
        }
        assert!(k
            .run(AnyRowsMut::I64(RowsMut::new(&mut out, 1, 4)))
            .is_err());
        assert_eq!(
            super::super::build(&k.spec(), DType::I64).unwrap().spec(),
            k.spec()
        );
    }

    /// C-order input: the elements at the block's flat indices, decoded
    /// from big-endian at an odd address.
    #[test]
    fn c_order_blocks_read_the_same_flat_elements() {
        let data: Vec<u8> = (0u16..10).flat_map(|v| (v * 300).to_be_bytes()).collect();
        let file = [vec![0u8; 1], data].concat();
        let params = ConvertParams {
            input: PathBuf::from("c.bin"),
            dtype: DType::U16,
            byte_order: ByteOrder::Big,
            fortran_order: false,
            shape: vec![2, 5],
            data_offset: 1,
            casting: Casting::Unsafe,
            strict: true,
        };
        let k = Convert::new(params, DType::F32).unwrap();
        let mut out = vec![0f32; 4];
        let input = RowsIn {
            bytes: &file[1 + 2 * 3..1 + 2 * 7],
            dtype: DType::U16,
            first_row: 3,
            row_len: 1,
        };
        k.run_io(input, AnyRowsMut::F32(RowsMut::new(&mut out, 3, 1)))
            .unwrap();
        assert_eq!(out, [900.0, 1200.0, 1500.0, 1800.0]);
        // A block that does not match its input is an error, not a guess.
        let mut out = vec![0f32; 3];
        assert!(k
            .run_io(input, AnyRowsMut::F32(RowsMut::new(&mut out, 3, 1)))
            .is_err());
    }

    #[test]
    fn forbidden_casts_are_refused_with_numpys_words() {
        let params = ConvertParams {
            input: PathBuf::from("x.npy"),
            dtype: DType::F64,
            byte_order: ByteOrder::Big,
            fortran_order: false,
            shape: vec![2],
            data_offset: 0,
            casting: Casting::SameKind,
            strict: false,
        };
        let e = Convert::new(params, DType::I32).unwrap_err();
        assert!(e
            .message()
            .contains("np.can_cast('>f8', '<i4', 'same_kind') is False"));
    }
}
