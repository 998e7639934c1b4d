//! The values kernel: writes given bytes into the rows of a new file. A
//! result the coordinator finished (a reduction across rows, a merged
//! distributed reduction) is published through it, with the same file
//! safety as every other output ([`crate::commands::publish_values`]).
//!
//! The bytes travel as bytes. What every run asks of a kernel
//! ([`Kernel::describe`]: the report's parameters, the journal's
//! fingerprint) names them by length and digest, so it costs nothing
//! whatever their size; only re-executed workers get them as hex, through
//! [`Kernel::spec`] (publishing forks its worker, so it never asks).

use super::{AnyRowsMut, Kernel, KernelSpec};
use crate::error::{Error, Result};
use crate::layout::DType;

/// Writes given bytes into the rows of a new file: how a reduction across
/// rows, finished by the coordinator, is published with the same file
/// safety as every other output.
#[derive(Debug)]
pub struct Values {
    bytes: Vec<u8>,
    /// FNV-1a of `bytes`: what tells two jobs' values apart.
    digest: u64,
}

impl Values {
    /// A kernel writing `bytes` (the whole data of the file, C order).
    pub fn new(bytes: Vec<u8>) -> Self {
        let digest = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Values { bytes, digest }
    }
}

/// Registry constructor for [`Values`].
pub(super) fn build(params: &serde_json::Value, _dtype: DType) -> Result<Box<dyn Kernel>> {
    let bad = || Error::refused("bad values parameters: expected {\"hex\": \"…\"}");
    let hex = params.get("hex").and_then(|h| h.as_str()).ok_or_else(bad)?;
    Ok(Box::new(Values::new(
        crate::hex::decode(hex).ok_or_else(bad)?,
    )))
}

impl Kernel for Values {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "values".into(),
            params: serde_json::json!({ "hex": crate::hex::encode(&self.bytes) }),
        }
    }

    fn describe(&self) -> KernelSpec {
        KernelSpec {
            name: "values".into(),
            params: serde_json::json!({
                "bytes": self.bytes.len(),
                "fnv1a64": format!("{:016x}", self.digest),
            }),
        }
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> std::result::Result<(), String> {
        let item = rows.dtype().itemsize() as usize;
        let (bytes, first_row, row_len) = rows.into_bytes();
        let start = first_row as usize * row_len as usize * item;
        let src = self
            .bytes
            .get(start..start + bytes.len())
            .ok_or("the values do not cover the file")?;
        bytes.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Values;
    use crate::kernels::Kernel;

    #[test]
    fn the_description_names_the_bytes_without_carrying_them() {
        let big = Values::new(vec![7; 1 << 20]).describe();
        let text = serde_json::to_string(&big).expect("json");
        assert!(
            text.len() < 100,
            "1 MiB of values described in {} bytes",
            text.len()
        );
        assert_eq!(big.params["bytes"], 1 << 20);
        // Different values, different descriptions (the journal's fingerprint).
        assert_ne!(
            Values::new(vec![7; 16]).describe(),
            Values::new(vec![8; 16]).describe()
        );
        // Re-executed workers still rebuild it from its spec.
        let v = Values::new(vec![1, 2, 255]);
        let again = crate::kernels::build(&v.spec(), crate::layout::DType::U8).expect("build");
        assert_eq!(again.describe(), v.describe());
    }
}
