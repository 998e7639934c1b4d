//! Rank mode: where a rank's number and the job's size come from.
//!
//! Under a launcher, `--distributed` takes rank and size from the first
//! source present, in this order: explicit options (`--rank R --ranks N` or
//! `--shard k/N`, both 0-based); Open MPI (`OMPI_COMM_WORLD_RANK`/`_SIZE`);
//! PMI (`PMI_RANK`/`PMI_SIZE`); Slurm (`SLURM_PROCID` +
//! `SLURM_STEP_NUM_TASKS`) **only inside a step** — an sbatch body outside
//! `srun` has `SLURM_PROCID=0` too, and trusting it would silently do 1/N of
//! the work; `PMIX_RANK` is cross-checked there; `PMIX_RANK` alone (its size
//! needs PMIx, which mmrun does not link, so it is refused); Slurm job arrays
//! (rank = (TASK_ID − MIN) / STEP, size = COUNT, checked against MAX).
//! A source that is inconsistent — rank ≥ size, size 0, not a number, or
//! contradicting an explicit option — is refused (exit 2), never guessed.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Alignment of rank boundaries in the file: 64 KiB covers every page size
/// in use (4 KiB x86-64, 16 KiB and 64 KiB aarch64), so no two nodes ever
/// write back the same page.
///
/// Sources: Linux `PAGE_SIZE` options for arm64 (4K/16K/64K).
pub const DISTRIBUTED_ALIGN: u64 = 64 * 1024;

/// A rank and the number of ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rank {
    /// 0-based rank.
    pub rank: u64,
    /// Number of ranks.
    pub size: u64,
    /// Where they came from.
    pub source: &'static str,
}

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rank {} of {} (from {})",
            self.rank, self.size, self.source
        )
    }
}

/// `--shard k/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based shard.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid shard '{s}': expected k/N, e.g. 0/4"))?;
        let index = k
            .trim()
            .parse()
            .map_err(|_| format!("invalid shard '{s}': '{k}' is not a number"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid shard '{s}': '{n}' is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("invalid shard '{s}': need 0 <= k < N"));
        }
        Ok(Shard { index, count })
    }
}

fn number(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<u64>> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::refused(format!("{name}={v} is not a non-negative integer"))),
    }
}

fn checked(rank: u64, size: u64, source: &'static str) -> Result<Rank> {
    if size == 0 {
        return Err(Error::refused(format!("{source} says the job has 0 ranks")));
    }
    if rank >= size {
        return Err(Error::refused(format!(
            "{source} says rank {rank} of {size}: a rank must be below the size"
        )));
    }
    Ok(Rank { rank, size, source })
}

fn pair(
    env: &dyn Fn(&str) -> Option<String>,
    rank_var: &str,
    size_var: &str,
    source: &'static str,
) -> Result<Option<Rank>> {
    match (number(env, rank_var)?, number(env, size_var)?) {
        (None, None) => Ok(None),
        (Some(r), Some(n)) => checked(r, n, source).map(Some),
        _ => Err(Error::refused(format!(
            "{source}: {rank_var} and {size_var} must both be set"
        ))),
    }
}

/// Finds this process's rank. `explicit` is `--rank/--ranks` or `--shard`;
/// `env` looks up environment variables.
pub fn detect(explicit: Option<(u64, u64)>, env: &dyn Fn(&str) -> Option<String>) -> Result<Rank> {
    let from_env = launcher_rank(env)?;
    if let Some((rank, size)) = explicit {
        let r = checked(rank, size, "--rank/--ranks")?;
        if let Some(e) = from_env {
            if (e.rank, e.size) != (rank, size) {
                return Err(Error::refused(format!(
                    "--rank {rank} --ranks {size} contradicts {e}"
                )));
            }
        }
        return Ok(r);
    }
    from_env.ok_or_else(|| {
        Error::refused(
            "--distributed needs a rank: run under srun or mpirun, or give --rank R --ranks N or --shard k/N \
             (an sbatch body outside srun is not a rank)",
        )
    })
}

fn launcher_rank(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Rank>> {
    if let Some(r) = pair(
        env,
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "Open MPI",
    )? {
        return Ok(Some(r));
    }
    if let Some(r) = pair(env, "PMI_RANK", "PMI_SIZE", "PMI")? {
        return Ok(Some(r));
    }
    if env("SLURM_STEP_ID").is_some() {
        if let Some(r) = pair(env, "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "Slurm step")? {
            if let Some(p) = number(env, "PMIX_RANK")? {
                if p != r.rank {
                    return Err(Error::refused(format!(
                        "PMIX_RANK={p} disagrees with SLURM_PROCID={}",
                        r.rank
                    )));
                }
            }
            return Ok(Some(r));
        }
    }
    if number(env, "PMIX_RANK")?.is_some() {
        return Err(Error::refused(
            "PMIX_RANK is set but no launcher says the job's size (mmrun does not link PMIx): give --ranks N",
        ));
    }
    if let Some(task) = number(env, "SLURM_ARRAY_TASK_ID")? {
        let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let max = number(env, "SLURM_ARRAY_TASK_MAX")?;
        let step = number(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let count = number(env, "SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            Error::refused("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")
        })?;
        let max = max.ok_or_else(|| Error::refused("SLURM_ARRAY_TASK_MAX is not set"))?;
        if task < min || (task - min) % step != 0 || max < min || (max - min) / step + 1 != count {
            return Err(Error::refused(format!(
                "Slurm job array is not a plain range (task {task}, min {min}, max {max}, step {step}, count {count}): use --shard k/N"
            )));
        }
        return checked((task - min) / step, count, "Slurm job array").map(Some);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn rank(pairs: &[(&str, &str)]) -> Result<Rank> {
        detect(None, &env(pairs))
    }

    #[test]
    fn each_launcher_is_read() {
        let r = rank(&[("OMPI_COMM_WORLD_RANK", "2"), ("OMPI_COMM_WORLD_SIZE", "4")]).unwrap();
        assert_eq!((r.rank, r.size, r.source), (2, 4, "Open MPI"));
        let r = rank(&[("PMI_RANK", "1"), ("PMI_SIZE", "3")]).unwrap();
        assert_eq!((r.rank, r.size), (1, 3));
        let r = rank(&[
            ("SLURM_STEP_ID", "0"),
            ("SLURM_PROCID", "3"),
            ("SLURM_STEP_NUM_TASKS", "8"),
        ])
        .unwrap();
        assert_eq!((r.rank, r.size, r.source), (3, 8, "Slurm step"));
        let r = rank(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "9"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "5"),
        ])
        .unwrap();
        assert_eq!((r.rank, r.size), (3, 5));
    }

    #[test]
    fn an_sbatch_body_outside_srun_is_not_a_rank() {
        let e = rank(&[
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_ID", "12"),
        ])
        .unwrap_err();
        assert!(e.message().contains("sbatch"), "{e}");
    }

    #[test]
    fn open_mpi_wins_over_slurm_and_pmix_is_cross_checked() {
        let r = rank(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("SLURM_STEP_ID", "0"),
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_NUM_TASKS", "1"),
        ])
        .unwrap();
        assert_eq!(r.source, "Open MPI");
        assert!(rank(&[
            ("SLURM_STEP_ID", "0"),
            ("SLURM_PROCID", "1"),
            ("SLURM_STEP_NUM_TASKS", "2"),
            ("PMIX_RANK", "0")
        ])
        .is_err());
        assert!(rank(&[("PMIX_RANK", "0")]).is_err());
    }

    #[test]
    fn inconsistent_sources_are_refused() {
        for bad in [
            vec![("OMPI_COMM_WORLD_RANK", "4"), ("OMPI_COMM_WORLD_SIZE", "4")],
            vec![("PMI_RANK", "0"), ("PMI_SIZE", "0")],
            vec![("PMI_RANK", "x"), ("PMI_SIZE", "2")],
            vec![("PMI_RANK", "0")],
            vec![
                ("SLURM_ARRAY_TASK_ID", "2"),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "9"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ] {
            assert!(rank(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn explicit_options_must_agree_with_the_launcher() {
        let e = env(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2")]);
        assert!(detect(Some((0, 2)), &e).is_err());
        assert_eq!(detect(Some((1, 2)), &e).unwrap().rank, 1);
        assert_eq!(detect(Some((3, 4)), &env(&[])).unwrap().size, 4);
        assert!(detect(Some((4, 4)), &env(&[])).is_err());
        assert!(detect(None, &env(&[])).is_err());
    }

    #[test]
    fn shards_parse() {
        assert_eq!("3/8".parse::<Shard>(), Ok(Shard { index: 3, count: 8 }));
        for bad in ["8/8", "1", "a/2", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
