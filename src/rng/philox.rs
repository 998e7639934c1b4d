//! The Philox4x64-10 block function, bit-exact with NumPy's `Philox`.
//!
//! Philox is counter based: block `b` of a stream is a pure function of the
//! key and the counter `b + 1` (NumPy bumps the counter before its first
//! block), which is what makes the streams seekable. [`generate_blocks`] is
//! the one place that turns a run of block indices into output; it is the
//! seam where a runtime-selected SIMD backend can later sit beside the scalar
//! one without the distribution code noticing.

/// Multiplier applied to counter word 0 in every round.
pub const M0: u64 = 0xD2E7_470E_E14C_6C93;
/// Multiplier applied to counter word 2 in every round.
pub const M1: u64 = 0xCA5A_8263_9512_1157;
/// Weyl increment added to key word 0 between rounds.
pub const W0: u64 = 0x9E37_79B9_7F4A_7C15;
/// Weyl increment added to key word 1 between rounds.
pub const W1: u64 = 0xBB67_AE85_84CA_A73B;
/// Rounds per block; NumPy uses the standard 10.
pub const ROUNDS: usize = 10;

/// Blocks the scalar backend advances together. Independent blocks give the
/// CPU several multiplications to overlap, which a single block's dependency
/// chain through ten rounds cannot.
const SCALAR_LANES: usize = 4;

type RoundKeys = [[u64; 2]; ROUNDS];

#[inline(always)]
fn mulhilo(a: u64, b: u64) -> (u64, u64) {
    let p = u128::from(a) * u128::from(b);
    ((p >> 64) as u64, p as u64)
}

#[inline(always)]
fn round(x: [u64; 4], k: [u64; 2]) -> [u64; 4] {
    let (hi0, lo0) = mulhilo(M0, x[0]);
    let (hi1, lo1) = mulhilo(M1, x[2]);
    [hi1 ^ x[1] ^ k[0], lo1, hi0 ^ x[3] ^ k[1], lo0]
}

/// The key schedule is the same for every block, so it is computed once per
/// call instead of once per block.
#[inline(always)]
fn round_keys(key: [u64; 2]) -> RoundKeys {
    let mut keys = [key; ROUNDS];
    for r in 1..ROUNDS {
        keys[r] = [
            keys[r - 1][0].wrapping_add(W0),
            keys[r - 1][1].wrapping_add(W1),
        ];
    }
    keys
}

/// The 256-bit little-endian counter NumPy uses for 0-based block `block`.
#[inline(always)]
pub fn counter_for_block(block: u64) -> [u64; 4] {
    let c = u128::from(block) + 1;
    [c as u64, (c >> 64) as u64, 0, 0]
}

/// One Philox4x64-10 block for an arbitrary counter and key.
#[inline]
pub fn philox4x64_10(ctr: [u64; 4], key: [u64; 2]) -> [u64; 4] {
    round_keys(key).iter().fold(ctr, |x, &k| round(x, k))
}

/// Writes blocks `first_block, first_block + 1, ...` of the stream for `key`
/// into `out`, one `[u64; 4]` per block.
#[inline]
pub fn generate_blocks(key: [u64; 2], first_block: u64, out: &mut [[u64; 4]]) {
    blocks_scalar(key, first_block, out);
}

/// Portable backend; also the reference any vector backend must agree with.
#[inline]
fn blocks_scalar(key: [u64; 2], first_block: u64, out: &mut [[u64; 4]]) {
    let keys = round_keys(key);
    let mut block = first_block;
    let mut groups = out.chunks_exact_mut(SCALAR_LANES);
    for group in &mut groups {
        let mut x: [[u64; 4]; SCALAR_LANES] =
            core::array::from_fn(|i| counter_for_block(block.wrapping_add(i as u64)));
        for &k in &keys {
            for lane in &mut x {
                *lane = round(*lane, k);
            }
        }
        group.copy_from_slice(&x);
        block = block.wrapping_add(SCALAR_LANES as u64);
    }
    for slot in groups.into_remainder() {
        *slot = keys
            .iter()
            .fold(counter_for_block(block), |x, &k| round(x, k));
        block = block.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    /// Known-answer vectors published with Random123, the reference
    /// implementation NumPy's Philox is built from.
    #[test]
    fn random123_known_answers() {
        assert_eq!(
            philox4x64_10([0; 4], [0; 2]),
            [
                0x1655_4d9e_ca36_314c,
                0xdb20_fe9d_672d_0fdc,
                0xd7e7_72ce_e186_176b,
                0x7e68_b68a_ec7b_a23b
            ]
        );
        assert_eq!(
            philox4x64_10([u64::MAX; 4], [u64::MAX; 2]),
            [
                0x87b0_92c3_013f_e90b,
                0x438c_3c67_be8d_0224,
                0x9cc7_d7c6_9cd7_77b6,
                0xa09c_aebf_594f_0ba0
            ]
        );
        assert_eq!(
            philox4x64_10(
                [
                    0x243f_6a88_85a3_08d3,
                    0x1319_8a2e_0370_7344,
                    0xa409_3822_299f_31d0,
                    0x082e_fa98_ec4e_6c89
                ],
                [0x4528_21e6_38d0_1377, 0xbe54_66cf_34e9_0c6c]
            ),
            [
                0xa528_f454_03e6_1d95,
                0x38c7_2dbd_566e_9788,
                0xa5a1_610e_72fd_18b5,
                0x57bd_43b5_e52b_7fe6
            ]
        );
    }

    #[test]
    fn first_blocks_match_numpy_raw() {
        for case in testdata::cases() {
            let mut blocks = vec![[0u64; 4]; case.raw.len().div_ceil(4)];
            generate_blocks(case.key, 0, &mut blocks);
            let flat: Vec<u64> = blocks.iter().flatten().copied().collect();
            assert_eq!(&flat[..case.raw.len()], &case.raw[..], "seed {}", case.seed);
        }
    }

    #[test]
    fn batched_equals_single_blocks() {
        let key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        for start in [0, 1, 5, u64::MAX - 20] {
            for len in 0..=11 {
                let mut out = vec![[0u64; 4]; len];
                generate_blocks(key, start, &mut out);
                for (i, got) in out.iter().enumerate() {
                    let b = start.wrapping_add(i as u64);
                    assert_eq!(*got, philox4x64_10(counter_for_block(b), key));
                }
            }
        }
    }

    #[test]
    fn counter_carries_into_second_word() {
        assert_eq!(counter_for_block(0), [1, 0, 0, 0]);
        assert_eq!(counter_for_block(u64::MAX), [0, 1, 0, 0]);
    }
}
