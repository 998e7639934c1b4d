//! The Philox4x64-10 block function, bit-exact with NumPy's `Philox`.
//!
//! Philox is counter based: block `b` of a stream is a pure function of the
//! key and the counter `b + 1` (NumPy bumps the counter before its first
//! block), which is what makes the streams seekable. [`generate_blocks`] is
//! the one place that turns a run of block indices into output; it picks a
//! [`Backend`] once per process (AVX2 where the CPU has it, unless
//! `MMRUN_PHILOX=scalar`), so the distribution code never sees which one ran.

use std::sync::OnceLock;

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

pub(super) type RoundKeys = [[u64; 2]; ROUNDS];

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
pub(super) fn round_keys(key: [u64; 2]) -> RoundKeys {
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

/// Which implementation of the block function runs.
///
/// A value other than [`Backend::scalar`] can only be obtained after the CPU
/// was checked for its features, so holding one is what makes dispatching to
/// it sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Backend {
    /// The portable backend, available everywhere.
    pub const fn scalar() -> Self {
        Self(Kind::Scalar)
    }

    /// The AVX2 backend, if this CPU supports it.
    pub fn avx2() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self(Kind::Avx2));
        }
        None
    }

    /// Every backend this CPU can run, scalar first.
    pub fn available() -> Vec<Self> {
        std::iter::once(Self::scalar())
            .chain(Self::avx2())
            .collect()
    }

    /// The backend used unless a caller picks one: the environment variable
    /// `MMRUN_PHILOX=scalar` forces the portable one, otherwise the fastest
    /// the CPU supports. Decided once per process, since feature detection
    /// and the environment do not change under a running fill.
    pub fn active() -> Self {
        static ACTIVE: OnceLock<Backend> = OnceLock::new();
        *ACTIVE.get_or_init(|| Self::choose(std::env::var("MMRUN_PHILOX").ok().as_deref()))
    }

    /// The backend for a value of `MMRUN_PHILOX`: `scalar` forces the
    /// portable one; anything else, or nothing, means the fastest supported.
    fn choose(env: Option<&str>) -> Self {
        match env {
            Some("scalar") => Self::scalar(),
            _ => Self::avx2().unwrap_or(Self::scalar()),
        }
    }

    /// A short name for benchmark ids and logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            Kind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "avx2",
        }
    }
}

/// Writes blocks `first_block, first_block + 1, ...` of the stream for `key`
/// into `out`, one `[u64; 4]` per block, with the [`Backend::active`] backend.
#[inline]
pub fn generate_blocks(key: [u64; 2], first_block: u64, out: &mut [[u64; 4]]) {
    generate_blocks_with(Backend::active(), key, first_block, out);
}

/// [`generate_blocks`] on an explicit backend; every backend writes the same
/// bytes.
#[inline]
pub fn generate_blocks_with(
    backend: Backend,
    key: [u64; 2],
    first_block: u64,
    out: &mut [[u64; 4]],
) {
    match backend.0 {
        Kind::Scalar => blocks_scalar(key, first_block, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Kind::Avx2` backend is only built by `Backend::avx2`
        // after `is_x86_feature_detected!("avx2")` returned true.
        Kind::Avx2 => unsafe { super::philox_avx2::generate_blocks(key, first_block, out) },
    }
}

/// Portable backend; also the reference any vector backend must agree with.
#[inline]
fn blocks_scalar(key: [u64; 2], first_block: u64, out: &mut [[u64; 4]]) {
    blocks_scalar_keyed(&round_keys(key), first_block, out);
}

/// [`blocks_scalar`] with the key schedule already expanded, so a vector
/// backend can hand its leftover blocks here without expanding it again.
#[inline]
pub(super) fn blocks_scalar_keyed(keys: &RoundKeys, first_block: u64, out: &mut [[u64; 4]]) {
    let mut block = first_block;
    let mut groups = out.chunks_exact_mut(SCALAR_LANES);
    for group in &mut groups {
        let mut x: [[u64; 4]; SCALAR_LANES] =
            core::array::from_fn(|i| counter_for_block(block.wrapping_add(i as u64)));
        for &k in keys {
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
            for be in Backend::available() {
                // Every start so each block lands in each vector position.
                for first in 0..blocks.len() {
                    let mut got = vec![[0u64; 4]; blocks.len() - first];
                    generate_blocks_with(be, case.key, first as u64, &mut got);
                    assert_eq!(got, blocks[first..], "{be:?} seed {}", case.seed);
                }
            }
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

    /// On a CPU with AVX2 the vector backend must be among those tested,
    /// or every cross-backend test below would pass vacuously.
    #[test]
    fn vector_backend_is_offered_when_supported() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert_eq!(Backend::available().len(), 2);
            assert_eq!(Backend::avx2().map(Backend::name), Some("avx2"));
        } else if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("this CPU has no AVX2: the vector backend is untested under CI=true");
        }
        assert_eq!(Backend::available()[0], Backend::scalar());
    }

    #[test]
    fn environment_override_picks_scalar() {
        assert_eq!(Backend::choose(Some("scalar")), Backend::scalar());
        let best = Backend::avx2().unwrap_or(Backend::scalar());
        assert_eq!(Backend::choose(None), best);
        assert_eq!(Backend::choose(Some("auto")), best);
    }

    /// Every backend against single blocks: all remainders modulo the vector
    /// widths, block indices that wrap past `u64::MAX` (the counter's carry
    /// into word 1, and the index itself wrapping to counter 1).
    #[test]
    fn backends_agree_near_counter_carries() {
        let keys = [[0, 0], [u64::MAX, u64::MAX], [0x0123_4567_89ab_cdef, 3]];
        let starts = [
            0,
            1,
            7,
            1 << 32,
            u64::MAX - 40,
            u64::MAX - 8,
            u64::MAX - 1,
            u64::MAX,
        ];
        for be in Backend::available() {
            for key in keys {
                for start in starts {
                    for len in 0..=41 {
                        let mut got = vec![[0u64; 4]; len];
                        generate_blocks_with(be, key, start, &mut got);
                        for (i, g) in got.iter().enumerate() {
                            let b = start.wrapping_add(i as u64);
                            let want = philox4x64_10(counter_for_block(b), key);
                            assert_eq!(*g, want, "{be:?} key {key:x?} block {b} len {len}");
                        }
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn backends_write_identical_blocks(
            key in proptest::prelude::any::<[u64; 2]>(),
            start in proptest::prop_oneof![
                proptest::prelude::any::<u64>(),
                (u64::MAX - 80)..=u64::MAX,
                0u64..80,
            ],
            len in 0usize..70,
        ) {
            let mut want = vec![[0u64; 4]; len];
            blocks_scalar(key, start, &mut want);
            for be in Backend::available() {
                let mut got = vec![[1u64; 4]; len];
                generate_blocks_with(be, key, start, &mut got);
                proptest::prop_assert_eq!(&got, &want, "{:?}", be);
            }
        }
    }

    #[test]
    fn counter_carries_into_second_word() {
        assert_eq!(counter_for_block(0), [1, 0, 0, 0]);
        assert_eq!(counter_for_block(u64::MAX), [0, 1, 0, 0]);
    }
}
