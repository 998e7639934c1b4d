//! The values kernel: writes given bytes into the rows of a new file. A
//! result the coordinator finished (a reduction across rows, a merged
//! distributed reduction) is published through it, with the same file
//! safety as every other output ([`crate::commands::publish_values`]).

use super::{AnyRowsMut, Kernel, KernelSpec};
use crate::error::{Error, Result};
use crate::layout::DType;

/// Writes given bytes into the rows of a new file: how a reduction across
/// rows, finished by the coordinator, is published with the same file
/// safety as every other output.
#[derive(Debug)]
pub struct Values {
    bytes: Vec<u8>,
}

impl Values {
    /// A kernel writing `bytes` (the whole data of the file, C order).
    pub fn new(bytes: Vec<u8>) -> Self {
        Values { bytes }
    }
}

/// Registry constructor for [`Values`].
pub(super) fn build(params: &serde_json::Value, _dtype: DType) -> Result<Box<dyn Kernel>> {
    let bad = || Error::refused("bad values parameters: expected {\"hex\": \"…\"}");
    let hex = params.get("hex").and_then(|h| h.as_str()).ok_or_else(bad)?;
    Ok(Box::new(Values {
        bytes: crate::hex::decode(hex).ok_or_else(bad)?,
    }))
}

impl Kernel for Values {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "values".into(),
            params: serde_json::json!({ "hex": crate::hex::encode(&self.bytes) }),
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
