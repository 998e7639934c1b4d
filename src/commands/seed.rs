//! A run's seed: the one given, or under `--resume` the one the
//! interrupted run recorded in its journal (a given one must match it), or
//! else one drawn from the OS. `fill --random` and `exec` (`MMRUN_SEED`)
//! take it.

use std::path::Path;

use crate::error::{Error, Result};

/// The seed of a run on `file`: `given`, or with `resume` the one the
/// interrupted run recorded (refused, exit 2, when `given` differs from
/// it), or else one drawn from the OS.
pub fn run_seed(file: &Path, resume: bool, given: Option<u128>) -> Result<u128> {
    let recorded = if resume {
        let real = std::fs::canonicalize(file).ok().or_else(|| {
            let parent = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            Some(std::fs::canonicalize(parent).ok()?.join(file.file_name()?))
        });
        match real {
            Some(real) => crate::journal::recorded_seed(&real)?,
            None => None,
        }
    } else {
        None
    };
    match (given, recorded) {
        (Some(g), Some(r)) if g != r => Err(Error::refused(format!(
            "{}: the interrupted run used seed {r}, not {g} (another job fingerprint): leave out --seed to resume it, or use --force without --resume to start over",
            file.display()
        ))),
        (Some(g), _) => Ok(g),
        (None, Some(r)) => Ok(r),
        (None, None) => draw_seed(),
    }
}

/// A seed drawn from the OS.
pub fn draw_seed() -> Result<u128> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| Error::refused(format!("cannot draw a seed from the OS: {e}")))?;
    Ok(u128::from_le_bytes(b))
}
