//! NumPy's `SeedSequence` reduced to what seeding Philox needs.
//!
//! `np.random.Philox(seed)` never uses the integer seed directly: it hashes it
//! through `SeedSequence(seed).generate_state(2, np.uint64)`. Reproducing that
//! hash bit for bit is what lets a file filled by `mmrun` match NumPy for the
//! same seed. Only integer entropy up to 128 bits with no spawn key is
//! supported, which keeps everything on the stack.

/// Words in the entropy pool; NumPy's default `pool_size`.
const POOL_SIZE: usize = 4;

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;

/// Running state of NumPy's `hashmix`: each call advances the multiplier, so
/// the order of calls is part of the algorithm.
struct HashMix {
    hash_const: u32,
}

impl HashMix {
    fn new() -> Self {
        Self { hash_const: INIT_A }
    }

    fn hash(&mut self, value: u32) -> u32 {
        let mut v = value ^ self.hash_const;
        self.hash_const = self.hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(self.hash_const);
        v ^ (v >> XSHIFT)
    }
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// The seed as NumPy coerces an integer to entropy: little-endian 32-bit words
/// with no leading zero words, except that 0 becomes the single word `[0]`.
fn entropy_words(seed: u128) -> ([u32; 4], usize) {
    let words = [
        seed as u32,
        (seed >> 32) as u32,
        (seed >> 64) as u32,
        (seed >> 96) as u32,
    ];
    let bits = 128 - seed.leading_zeros() as usize;
    (words, bits.div_ceil(32).max(1))
}

/// The mixed entropy pool of `SeedSequence(seed)`.
fn pool(seed: u128) -> [u32; POOL_SIZE] {
    let (words, len) = entropy_words(seed);
    let mut hash = HashMix::new();
    // A u128 never has more words than the pool, so NumPy's extra pass that
    // folds surplus entropy into the pool never runs; missing words hash as 0.
    let mut pool = [0u32; POOL_SIZE];
    for (i, slot) in pool.iter_mut().enumerate() {
        *slot = hash.hash(if i < len { words[i] } else { 0 });
    }
    for src in 0..POOL_SIZE {
        for dst in 0..POOL_SIZE {
            if src != dst {
                let h = hash.hash(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    pool
}

/// `SeedSequence.generate_state` as 32-bit words, cycling over the pool.
fn generate_state_u32(pool: &[u32; POOL_SIZE], out: &mut [u32]) {
    let mut hash_const = INIT_B;
    for (dst, &src) in out.iter_mut().zip(pool.iter().cycle()) {
        let mut v = src ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash_const);
        *dst = v ^ (v >> XSHIFT);
    }
}

/// The Philox key NumPy derives from an integer seed:
/// `np.random.SeedSequence(seed).generate_state(2, np.uint64)`.
pub fn philox_key(seed: u128) -> [u64; 2] {
    let mut words = [0u32; 4];
    generate_state_u32(&pool(seed), &mut words);
    // NumPy views the u32 state as u64 on a little-endian machine.
    [
        u64::from(words[0]) | u64::from(words[1]) << 32,
        u64::from(words[2]) | u64::from(words[3]) << 32,
    ]
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    #[test]
    fn keys_match_numpy() {
        let cases = testdata::cases();
        for case in &cases {
            assert_eq!(philox_key(case.seed), case.key, "seed {}", case.seed);
        }
        // The reference file must exercise seeds wider than one and two words.
        assert!(cases.iter().any(|c| c.seed > u128::from(u64::MAX)));
        assert!(cases.iter().any(|c| c.seed > u128::from(u32::MAX)));
    }

    #[test]
    fn entropy_word_counts() {
        assert_eq!(entropy_words(0).1, 1);
        assert_eq!(entropy_words(1).1, 1);
        assert_eq!(entropy_words(u128::from(u32::MAX)).1, 1);
        assert_eq!(entropy_words(1 << 32).1, 2);
        assert_eq!(entropy_words(1 << 96).1, 4);
        assert_eq!(entropy_words(u128::MAX).1, 4);
    }

    #[test]
    fn leading_zero_words_do_not_collide() {
        // 0 and 2^32 differ only in word count handling; they must not alias.
        assert_ne!(philox_key(0), philox_key(1 << 32));
        assert_ne!(philox_key(1), philox_key(1 | 1 << 64));
    }
}
