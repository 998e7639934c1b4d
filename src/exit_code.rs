//! The exit codes mmrun promises to scripts, in one table.
//!
//! Batch scripts and benchmark harnesses branch on these, so they are part of
//! the command-line contract (see the README's table, which mirrors this one).
//! Interrupted runs do not use a code at all: the coordinator re-raises the
//! signal it received, so a shell sees 128+N and Slurm sees a signal death.

/// The command did what it was asked.
pub const SUCCESS: i32 = 0;
/// The run failed: a worker failed, was killed or timed out, or an I/O error
/// happened at flush. Nothing was published.
pub const RUN_FAILED: i32 = 1;
/// Refused before any work: usage, bad input, not enough space, hostile file.
/// Nothing was modified.
pub const REFUSED: i32 = 2;
/// The file is busy: locked by another mmrun, or a pending distributed run.
/// Retrying later may succeed (`EX_TEMPFAIL` from sysexits.h).
pub const BUSY: i32 = 75;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_match_the_contract() {
        let all = [SUCCESS, RUN_FAILED, REFUSED, BUSY];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!((SUCCESS, RUN_FAILED, REFUSED, BUSY), (0, 1, 2, 75));
    }
}
