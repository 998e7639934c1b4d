//! Seekable random streams that reproduce NumPy's Philox output exactly.
//!
//! Each worker fills its own slice of one logical array, starting at an
//! arbitrary flat element index. Because Philox is counter based, a worker
//! jumps straight to its first element, and the union of all slices equals
//! what NumPy would produce for the whole array in one call. Uniform floats
//! and raw integers match NumPy bit for bit; normals use a seekable
//! Box–Muller transform, since NumPy's ziggurat cannot be entered mid-stream,
//! with its transcendental functions from the `libm` crate so the bytes do
//! not depend on the host's C library.

pub mod philox;
#[cfg(target_arch = "x86_64")]
mod philox_avx2;
pub mod seedseq;
#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

use half::f16;

pub use philox::Backend;
pub use seedseq::philox_key;

/// Blocks generated per batch: large enough to amortise the call into the
/// block backend, small enough (512 bytes) to stay in L1 next to the output.
const BATCH_BLOCKS: usize = 16;

/// 2^-53: scales a 53-bit integer into [0, 1), as NumPy's `random()` does.
const F64_UNIT: f64 = 1.0 / (1u64 << 53) as f64;
/// 2^-24: scales a 24-bit integer into [0, 1), as NumPy's float32 `random()`.
const F32_UNIT: f32 = 1.0 / (1u32 << 24) as f32;

/// Integer element types that take their value from the low bits of one raw
/// 64-bit draw.
pub trait RawCast: Copy {
    /// Truncates a raw draw to this type, exactly like an `as` cast.
    fn from_raw(raw: u64) -> Self;
}

macro_rules! impl_raw_cast {
    ($($t:ty),*) => {
        $(
            impl RawCast for $t {
                #[inline(always)]
                fn from_raw(raw: u64) -> Self {
                    raw as $t
                }
            }
        )*
    };
}

impl_raw_cast!(i8, i16, i32, i64, u8, u16, u32);

impl RawCast for u64 {
    #[inline(always)]
    fn from_raw(raw: u64) -> Self {
        raw
    }
}

/// A Philox4x64-10 stream identified by its key; cheap to copy into workers.
///
/// Raw element `e` of the stream is word `e % 4` of block `e / 4`, exactly as
/// `np.random.Philox(seed).random_raw()` orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Philox {
    key: [u64; 2],
    backend: Backend,
}

impl Philox {
    /// The stream NumPy's `np.random.Philox(seed)` produces.
    pub fn new(seed: u128) -> Self {
        Self::from_key(philox_key(seed))
    }

    /// A stream with an explicit key, bypassing `SeedSequence`.
    pub fn from_key(key: [u64; 2]) -> Self {
        Self {
            key,
            backend: Backend::active(),
        }
    }

    /// The same stream computed by `backend`; the output does not change,
    /// only the speed (for benchmarks and cross-checks).
    pub fn with_backend(self, backend: Backend) -> Self {
        Self { backend, ..self }
    }

    /// The key this stream was built from.
    pub fn key(&self) -> [u64; 2] {
        self.key
    }

    /// The four raw words of 0-based block `index`.
    pub fn block(&self, index: u64) -> [u64; 4] {
        philox::philox4x64_10(philox::counter_for_block(index), self.key)
    }

    /// Raw draws `first..first + out.len()`: `Philox(seed).random_raw(n)[first:]`.
    pub fn fill_raw_u64(&self, first: u64, out: &mut [u64]) {
        fill_mapped(self.key, self.backend, first, out, |b| *b);
    }

    /// Elements of `Generator(Philox(seed)).random(n, dtype=np.float64)`
    /// starting at flat index `first`.
    pub fn fill_uniform_f64(&self, first: u64, out: &mut [f64]) {
        fill_mapped(self.key, self.backend, first, out, |b| b.map(unit_f64));
    }

    /// Elements of `Generator(Philox(seed)).random(n, dtype=np.float32)`
    /// starting at flat index `first`.
    pub fn fill_uniform_f32(&self, first: u64, out: &mut [f32]) {
        fill_mapped(self.key, self.backend, first, out, |b| {
            split_u32(b).map(unit_f32)
        });
    }

    /// Uniform half floats on the float32 stream, keeping the 11 bits a
    /// half's significand holds so every value is exact and below 1.
    pub fn fill_uniform_f16(&self, first: u64, out: &mut [f16]) {
        fill_mapped(self.key, self.backend, first, out, |b| {
            split_u32(b).map(unit_f16)
        });
    }

    /// Standard normals in f64; element `k` depends only on raw draws
    /// `2 * (k / 2)` and `2 * (k / 2) + 1`.
    pub fn fill_normal_f64(&self, first: u64, out: &mut [f64]) {
        fill_mapped(self.key, self.backend, first, out, normal_block);
    }

    /// Standard normals computed in f64 and rounded to f32.
    pub fn fill_normal_f32(&self, first: u64, out: &mut [f32]) {
        fill_mapped(self.key, self.backend, first, out, |b| {
            normal_block(b).map(|v| v as f32)
        });
    }

    /// Standard normals computed in f64 and rounded to f16.
    pub fn fill_normal_f16(&self, first: u64, out: &mut [f16]) {
        fill_mapped(self.key, self.backend, first, out, |b| {
            normal_block(b).map(f16::from_f64)
        });
    }

    /// Integers whose element `n` is the low bits of raw draw `n`.
    pub fn fill_int<T: RawCast>(&self, first: u64, out: &mut [T]) {
        fill_mapped(self.key, self.backend, first, out, |b| b.map(T::from_raw));
    }

    /// NumPy bools (one 0/1 byte each) from the lowest bit of raw draw `n`.
    pub fn fill_bool(&self, first: u64, out: &mut [u8]) {
        fill_mapped(self.key, self.backend, first, out, |b| {
            b.map(|r| (r & 1) as u8)
        });
    }
}

/// Fills `out` with elements `first..` of a stream in which every block maps
/// to exactly `P` consecutive elements via `map`.
///
/// The unaligned head and tail go through a single-block path so the bulk loop
/// only ever sees whole blocks; `map` is a generic closure, so each
/// distribution compiles to its own loop with no per-element dispatch.
#[inline(always)]
fn fill_mapped<T: Copy, const P: usize>(
    key: [u64; 2],
    backend: Backend,
    first: u64,
    out: &mut [T],
    map: impl Fn(&[u64; 4]) -> [T; P],
) {
    if out.is_empty() {
        return;
    }
    let mut block = first / P as u64;
    let skip = (first % P as u64) as usize;
    let mut buf = [[0u64; 4]; BATCH_BLOCKS];
    let mut rest = out;
    if skip != 0 {
        philox::generate_blocks_with(backend, key, block, &mut buf[..1]);
        let vals = map(&buf[0]);
        let n = (P - skip).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
        head.copy_from_slice(&vals[skip..skip + n]);
        rest = tail;
        block += 1;
    }
    for chunk in rest.chunks_mut(BATCH_BLOCKS * P) {
        let nblocks = chunk.len().div_ceil(P);
        let blocks = &mut buf[..nblocks];
        philox::generate_blocks_with(backend, key, block, blocks);
        block += nblocks as u64;
        let mut whole = chunk.chunks_exact_mut(P);
        for (dst, src) in (&mut whole).zip(blocks.iter()) {
            dst.copy_from_slice(&map(src));
        }
        let tail = whole.into_remainder();
        if !tail.is_empty() {
            let vals = map(&blocks[nblocks - 1]);
            tail.copy_from_slice(&vals[..tail.len()]);
        }
    }
}

/// NumPy's float32 stream splits each raw draw into its low then high half.
#[inline(always)]
fn split_u32(b: &[u64; 4]) -> [u32; 8] {
    let [a, c, d, e] = *b;
    [
        a as u32,
        (a >> 32) as u32,
        c as u32,
        (c >> 32) as u32,
        d as u32,
        (d >> 32) as u32,
        e as u32,
        (e >> 32) as u32,
    ]
}

#[inline(always)]
fn unit_f64(raw: u64) -> f64 {
    (raw >> 11) as f64 * F64_UNIT
}

#[inline(always)]
fn unit_f32(raw: u32) -> f32 {
    (raw >> 8) as f32 * F32_UNIT
}

/// `(raw >> 21) * 2^-11` as an f16, built from the exact f32 of the same value
/// by rebiasing the exponent, which avoids a general (and, without F16C,
/// slow) float conversion. Every nonzero value is at least 2^-11, well inside
/// f16's normal range, and has at most 11 significant bits, so the f32's low
/// 13 mantissa bits are zero and the shift drops nothing.
#[inline(always)]
fn unit_f16(raw: u32) -> f16 {
    let bits = ((raw >> 21) as f32 * (1.0 / 2048.0)).to_bits();
    // Exponent bias goes from 127 to 15; zero saturates to the f16 zero.
    f16::from_bits((bits >> 13).saturating_sub((127 - 15) << 10) as u16)
}

/// Box–Muller on one pair of raw draws. `u1` is offset by half a step so it is
/// never 0, which keeps the logarithm finite.
///
/// `ln`, `sqrt`, `sin` and `cos` come from the pure-Rust `libm` crate, not the
/// host's C library, so every host writes the same bytes; its results are
/// checked against correctly rounded ones in `tests/data/normal_vectors.json`.
#[inline(always)]
fn box_muller(a: u64, b: u64) -> [f64; 2] {
    let u1 = ((a >> 11) as f64 + 0.5) * F64_UNIT;
    let u2 = (b >> 11) as f64 * F64_UNIT;
    let r = libm::sqrt(-2.0 * libm::log(u1));
    let (s, c) = libm::sincos(std::f64::consts::TAU * u2);
    [r * c, r * s]
}

#[inline(always)]
fn normal_block(b: &[u64; 4]) -> [f64; 4] {
    let [x0, x1] = box_muller(b[0], b[1]);
    let [x2, x3] = box_muller(b[2], b[3]);
    [x0, x1, x2, x3]
}
