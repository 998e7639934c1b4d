//! Test-only loaders for the reference vectors in `tests/data/philox.json`
//! (NumPy) and `tests/data/normal_vectors.json` (correctly rounded normals).
//!
//! The Philox vectors were produced by NumPy itself, so they are the ground truth the
//! seeding, block function and every float conversion are checked against.
//! Floats are stored as hex bit patterns so comparisons are exact.

use serde_json::Value;

/// One value NumPy produced at a far flat index of a stream.
pub(super) struct At {
    pub index: u64,
    pub raw: u64,
    pub f32_bits: u32,
    pub f64_bits: u64,
}

/// Everything NumPy produced for one seed.
pub(super) struct Case {
    pub seed: u128,
    pub key: [u64; 2],
    pub raw: Vec<u64>,
    pub f32_bits: Vec<u32>,
    pub f64_bits: Vec<u64>,
    pub at: Vec<At>,
}

fn hex64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("hex string"), 16).expect("valid hex")
}

fn hex32(v: &Value) -> u32 {
    u32::from_str_radix(v.as_str().expect("hex string"), 16).expect("valid hex")
}

fn hex64_list(v: &Value) -> Vec<u64> {
    v.as_array().expect("array").iter().map(hex64).collect()
}

pub(super) fn cases() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/philox.json");
    let text = std::fs::read_to_string(path).expect("read philox.json");
    let root: Value = serde_json::from_str(&text).expect("parse philox.json");
    let cases: Vec<Case> = root["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .map(|c| {
            let key = hex64_list(&c["key"]);
            Case {
                seed: c["seed"].as_str().expect("seed").parse().expect("seed"),
                key: [key[0], key[1]],
                raw: hex64_list(&c["raw_u64"]),
                f32_bits: c["f32"]
                    .as_array()
                    .expect("f32")
                    .iter()
                    .map(hex32)
                    .collect(),
                f64_bits: hex64_list(&c["f64"]),
                at: c["at"]
                    .as_object()
                    .expect("at object")
                    .iter()
                    .map(|(index, v)| At {
                        index: index.parse().expect("index"),
                        raw: hex64(&v["raw_u64"]),
                        f32_bits: hex32(&v["f32"]),
                        f64_bits: hex64(&v["f64"]),
                    })
                    .collect(),
            }
        })
        .collect();
    assert!(!cases.is_empty(), "philox.json has no cases");
    cases
}

/// One correctly rounded Box–Muller value from `tests/data/normal_vectors.json`.
pub(super) struct NormalCase {
    pub seed: u128,
    pub index: u64,
    pub raw: [u64; 2],
    pub f64_bits: u64,
    pub f32_bits: u32,
}

/// The vectors `tests/data/gen_normal_vectors.py` computed with every
/// elementary function correctly rounded (mpmath), independently of mmrun.
pub(super) fn normal_cases() -> Vec<NormalCase> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/normal_vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("read normal_vectors.json");
    let root: Value = serde_json::from_str(&text).expect("parse normal_vectors.json");
    let cases: Vec<NormalCase> = root["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .map(|c| {
            let raw = hex64_list(&c["raw"]);
            NormalCase {
                seed: c["seed"].as_str().expect("seed").parse().expect("seed"),
                index: c["index"].as_str().expect("index").parse().expect("index"),
                raw: [raw[0], raw[1]],
                f64_bits: hex64(&c["f64"]),
                f32_bits: hex32(&c["f32"]),
            }
        })
        .collect();
    assert!(!cases.is_empty(), "normal_vectors.json has no cases");
    cases
}
