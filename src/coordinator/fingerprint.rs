//! Job fingerprints: a short hash of a job's parameters, recorded in the
//! journal so a resumed run can tell it is the same job.

use super::target::Mode;
use super::Work;
use crate::layout::Layout;
use crate::plan::RowRange;

/// A short hash of the job's parameters (FNV-1a over their JSON), recorded in
/// the journal so a resumed run can tell it is the same job.
pub(super) fn fingerprint(
    layout: &Layout,
    rows: RowRange,
    work: &Work,
    seed: Option<u128>,
    mode: &Mode,
) -> String {
    // A rebuild (new file) and an in-place run of the same command are
    // different jobs: their rows live in different files.
    let mode = match mode {
        Mode::New { .. } => "new",
        Mode::InPlace { .. } => "in_place",
        Mode::Rank { .. } => "rank",
    };
    let what = match work {
        Work::Create => serde_json::Value::Null,
        Work::Kernel(k) => serde_json::json!(k.describe()),
        Work::Program(p, _) => serde_json::json!(p.argv),
    };
    let text = serde_json::json!({
        "layout": layout,
        "rows": rows,
        "work": what,
        "seed": seed.map(|s| s.to_string()),
        "mode": mode,
    })
    .to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}
