//! Philox4x64-10 on AVX2: four blocks per 256-bit register, one register per
//! counter word.
//!
//! AVX2 has no 64×64→128-bit multiply, so each round builds the two 128-bit
//! products from four 32×32→64 partial products (`vpmuludq`). That is four
//! multiplies and about a dozen adds, shifts and blends where the scalar
//! backend issues one `mulx`, so whether this wins depends on how the vector
//! ports compare with the scalar multiplier; `PERFORMANCE.md` has the
//! measurement. The output is bit-identical to the scalar backend.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_blend_epi32, _mm256_mul_epu32,
    _mm256_permute2x128_si256, _mm256_set1_epi64x, _mm256_set_epi64x, _mm256_slli_epi64,
    _mm256_srli_epi64, _mm256_storeu_si256, _mm256_unpackhi_epi64, _mm256_unpacklo_epi64,
    _mm256_xor_si256,
};

use super::philox::{counter_for_block, round_keys, RoundKeys, M0, M1};

/// Blocks in one register: four 64-bit lanes.
const LANES: usize = 4;

/// Register groups advanced together in the bulk loop. One group's round is a
/// dependency chain of roughly ten vector operations; a second independent
/// group keeps the vector ports busy while the first waits on `vpmuludq`.
const GROUPS: usize = 2;

/// A 64-bit multiplier split into its 32-bit halves, each broadcast to every
/// lane, since `vpmuludq` reads only the low 32 bits of each lane.
#[derive(Clone, Copy)]
struct Mul {
    lo: __m256i,
    hi: __m256i,
}

#[inline]
#[target_feature(enable = "avx2")]
fn splat(v: u64) -> __m256i {
    _mm256_set1_epi64x(v as i64)
}

#[inline]
#[target_feature(enable = "avx2")]
fn multiplier(m: u64) -> Mul {
    Mul {
        lo: splat(m & 0xffff_ffff),
        hi: splat(m >> 32),
    }
}

/// Full 128-bit product per lane as `(high, low)` words, schoolbook from
/// 32-bit halves. Each partial sum is arranged so it cannot overflow 64 bits:
/// `(2^32-1)^2 + 2^32-1 < 2^64`, which saves the carry detection a plain
/// four-term sum would need.
#[inline]
#[target_feature(enable = "avx2")]
fn mulhilo(a: __m256i, m: Mul) -> (__m256i, __m256i) {
    let a_hi = _mm256_srli_epi64::<32>(a);
    let ll = _mm256_mul_epu32(a, m.lo);
    let lh = _mm256_mul_epu32(a, m.hi);
    let hl = _mm256_mul_epu32(a_hi, m.lo);
    let hh = _mm256_mul_epu32(a_hi, m.hi);
    let t = _mm256_add_epi64(lh, _mm256_srli_epi64::<32>(ll));
    let u = _mm256_add_epi64(hl, _mm256_and_si256(t, splat(0xffff_ffff)));
    let hi = _mm256_add_epi64(
        _mm256_add_epi64(hh, _mm256_srli_epi64::<32>(t)),
        _mm256_srli_epi64::<32>(u),
    );
    // Low word: low half of `ll`, high half is the low half of `u`.
    let lo = _mm256_blend_epi32::<0b1010_1010>(ll, _mm256_slli_epi64::<32>(u));
    (hi, lo)
}

/// Ten rounds on `G` groups of four blocks held word-major: `x[g][w]` is
/// counter word `w` of blocks `4g..4g + 4`.
#[inline]
#[target_feature(enable = "avx2")]
fn rounds<const G: usize>(keys: &RoundKeys, x: &mut [[__m256i; 4]; G]) {
    let (m0, m1) = (multiplier(M0), multiplier(M1));
    for k in keys {
        let (k0, k1) = (splat(k[0]), splat(k[1]));
        for w in x.iter_mut() {
            let (hi0, lo0) = mulhilo(w[0], m0);
            let (hi1, lo1) = mulhilo(w[2], m1);
            *w = [
                _mm256_xor_si256(_mm256_xor_si256(hi1, w[1]), k0),
                lo1,
                _mm256_xor_si256(_mm256_xor_si256(hi0, w[3]), k1),
                lo0,
            ];
        }
    }
}

/// Word-major registers for four explicit counters.
#[inline]
#[target_feature(enable = "avx2")]
fn load_counters(c: &[[u64; 4]; LANES]) -> [__m256i; 4] {
    core::array::from_fn(|w| {
        _mm256_set_epi64x(
            c[3][w] as i64,
            c[2][w] as i64,
            c[1][w] as i64,
            c[0][w] as i64,
        )
    })
}

/// Transposes one group back to one `[u64; 4]` per block.
#[inline]
#[target_feature(enable = "avx2")]
fn store(w: &[__m256i; 4], dst: &mut [[u64; 4]]) {
    assert_eq!(dst.len(), LANES);
    let t0 = _mm256_unpacklo_epi64(w[0], w[1]);
    let t1 = _mm256_unpackhi_epi64(w[0], w[1]);
    let t2 = _mm256_unpacklo_epi64(w[2], w[3]);
    let t3 = _mm256_unpackhi_epi64(w[2], w[3]);
    let blocks = [
        _mm256_permute2x128_si256::<0x20>(t0, t2),
        _mm256_permute2x128_si256::<0x20>(t1, t3),
        _mm256_permute2x128_si256::<0x31>(t0, t2),
        _mm256_permute2x128_si256::<0x31>(t1, t3),
    ];
    for (slot, b) in dst.iter_mut().zip(blocks) {
        // SAFETY: `slot` is a live `&mut [u64; 4]`, 32 writable bytes, and
        // `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(slot.as_mut_ptr().cast::<__m256i>(), b) };
    }
}

/// Writes `G * LANES` consecutive blocks starting at `first_block` to `out`.
#[inline]
#[target_feature(enable = "avx2")]
fn groups<const G: usize>(keys: &RoundKeys, first_block: u64, out: &mut [[u64; 4]]) {
    assert_eq!(out.len(), G * LANES);
    let mut x: [[__m256i; 4]; G] = core::array::from_fn(|g| {
        // Counters go through the scalar helper so the carry into word 1 at
        // block 2^64 - 1 is handled in one place.
        load_counters(&core::array::from_fn(|i| {
            counter_for_block(first_block.wrapping_add((g * LANES + i) as u64))
        }))
    });
    rounds(keys, &mut x);
    for (w, dst) in x.iter().zip(out.chunks_exact_mut(LANES)) {
        store(w, dst);
    }
}

/// Blocks `first_block, first_block + 1, ...` for `key` into `out`, exactly
/// as the scalar backend writes them.
///
/// # Safety
///
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn generate_blocks(key: [u64; 2], first_block: u64, out: &mut [[u64; 4]]) {
    let keys = round_keys(key);
    let mut block = first_block;
    let mut bulk = out.chunks_exact_mut(GROUPS * LANES);
    for chunk in &mut bulk {
        groups::<GROUPS>(&keys, block, chunk);
        block = block.wrapping_add((GROUPS * LANES) as u64);
    }
    let mut rest = bulk.into_remainder();
    if rest.len() >= LANES {
        let (one, tail) = rest.split_at_mut(LANES);
        groups::<1>(&keys, block, one);
        block = block.wrapping_add(LANES as u64);
        rest = tail;
    }
    super::philox::blocks_scalar_keyed(&keys, block, rest);
}

#[cfg(test)]
mod tests {
    use super::super::philox::philox4x64_10;
    use super::*;

    fn have_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// The partial-product sums are where an overflow would hide, and their
    /// worst cases are all-ones halves, so probe those next to random words.
    #[test]
    fn mulhilo_matches_u128() {
        if !have_avx2() {
            return;
        }
        let mut words = vec![
            0,
            1,
            u64::MAX,
            0xffff_ffff,
            1 << 32,
            0xffff_ffff_0000_0000,
            (1 << 63) | 1,
        ];
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        words.extend((0..4000).map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            s ^ (s >> 29)
        }));
        for m in [M0, M1, u64::MAX, 0xffff_ffff, 1 << 32] {
            for four in words.chunks(LANES) {
                let a: [u64; LANES] = core::array::from_fn(|i| four[i % four.len()]);
                let mut got = [[0u64; 4]; LANES];
                // SAFETY: AVX2 was detected above.
                unsafe { mulhilo_lanes(a, m, &mut got) };
                for (i, &ai) in a.iter().enumerate() {
                    let p = u128::from(ai) * u128::from(m);
                    assert_eq!(got[i][0], (p >> 64) as u64, "hi {ai:#x} * {m:#x}");
                    assert_eq!(got[i][1], p as u64, "lo {ai:#x} * {m:#x}");
                }
            }
        }
    }

    /// `mulhilo` on four lanes, results as `[hi, lo, _, _]` per lane.
    #[target_feature(enable = "avx2")]
    unsafe fn mulhilo_lanes(a: [u64; LANES], m: u64, out: &mut [[u64; 4]; LANES]) {
        let zero = splat(0);
        let (hi, lo) = mulhilo(load_counters(&a.map(|v| [v, 0, 0, 0]))[0], multiplier(m));
        store(&[hi, lo, zero, zero], out);
    }

    /// Random123's known answers use counters with all four words set, which
    /// block indices never produce, so they reach the vector rounds directly.
    #[test]
    fn random123_known_answers() {
        if !have_avx2() {
            return;
        }
        let cases = [
            ([0; 4], [0; 2]),
            ([u64::MAX; 4], [u64::MAX; 2]),
            (
                [
                    0x243f_6a88_85a3_08d3,
                    0x1319_8a2e_0370_7344,
                    0xa409_3822_299f_31d0,
                    0x082e_fa98_ec4e_6c89,
                ],
                [0x4528_21e6_38d0_1377, 0xbe54_66cf_34e9_0c6c],
            ),
        ];
        // Every lane gets a different counter so a lane mix-up cannot pass.
        let ctrs = [cases[0].0, cases[1].0, cases[2].0, [1, 0, 0, 0]];
        for (_, key) in cases {
            let mut got = [[0u64; 4]; LANES];
            // SAFETY: AVX2 was detected above.
            unsafe { rounds_lanes(ctrs, key, &mut got) };
            assert_eq!(got, ctrs.map(|c| philox4x64_10(c, key)));
        }
        // And the published answers themselves, not only agreement.
        let mut got = [[0u64; 4]; LANES];
        // SAFETY: AVX2 was detected above.
        unsafe { rounds_lanes(ctrs, cases[1].1, &mut got) };
        assert_eq!(
            got[1],
            [
                0x87b0_92c3_013f_e90b,
                0x438c_3c67_be8d_0224,
                0x9cc7_d7c6_9cd7_77b6,
                0xa09c_aebf_594f_0ba0
            ]
        );
    }

    #[target_feature(enable = "avx2")]
    unsafe fn rounds_lanes(ctr: [[u64; 4]; LANES], key: [u64; 2], out: &mut [[u64; 4]; LANES]) {
        let mut x = [load_counters(&ctr)];
        rounds(&round_keys(key), &mut x);
        store(&x[0], out);
    }
}
