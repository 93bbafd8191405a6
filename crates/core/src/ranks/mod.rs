//! One run spread over many machines: each process is one *rank* of a *world* of ranks, and
//! filters its share of the shards into the same output directory.
//!
//! * **Who am I.** [`RankRequest::resolve`] reads `--rank`/`--world-size`, or the scheduler's
//!   variables: a Slurm array's `SLURM_ARRAY_TASK_ID`, `srun`'s `SLURM_PROCID`/`SLURM_NTASKS`
//!   (inside a job step only: `SLURM_STEP_ID` set), a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`. An array's or an Indexed Job's world size
//!   comes from `--world-size` or from the run's own record, never from
//!   `SLURM_ARRAY_TASK_COUNT`: a retry of some tasks (`--array=1,3`) counts only those.
//! * **My share.** Every rank lists the same global shard set (output names are computed from
//!   all of it, so they equal a one-machine run's) and keeps the shards [`assign`] gives it:
//!   greedy by bytes, deterministic, computed by every rank alike with no coordination.
//! * **The run's record** (`ranks/run.json`, [`records`]) pins the world size, the config and a
//!   fingerprint of the listing; the first rank creates it (create-if-absent), every later one
//!   checks it. A rank with another world size or listing is refused unless `--repartition`
//!   (see [`records::claim`]).
//! * **Completion is per shard**: one small record per finished shard,
//!   `ranks/done/NAME.json`, written after the shard's outputs. A rank rerun, or the whole job
//!   under another world size, skips the shards with a record and redoes the rest. Each rank
//!   writes `ranks/rank-RRRRR-of-WWWWW.json` when it ends (its failures and figures).
//! * **Merge** ([`merge`]) folds the records into the `manifest.json`, `report.json` a
//!   one-machine run writes.
//!
//! Nothing here appends to or renames over a file another rank writes: every record is one
//! object written whole by one rank, through [`crate::output::Storage`]: on object storage one
//! PUT each, `run.json` with a conditional create, its re-pin a conditional update on the ETag
//! read, and the locks lease objects (see `sluice_io::ObjectLock`).

pub mod merge;
pub mod records;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use merge::{merge, MergeOutcome};
pub use records::{claim, Claim, RankRecord, RunRecord};

/// The most ranks a run may have.
pub const MAX_WORLD_SIZE: usize = 1_000_000;

/// Where a rank's number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RankSource {
    /// `--rank`.
    Flag,
    /// `SLURM_ARRAY_TASK_ID` (an sbatch array task).
    SlurmArray,
    /// `SLURM_PROCID` (a task of `srun -n N`).
    Srun,
    /// `JOB_COMPLETION_INDEX` (a pod of a Kubernetes Indexed Job).
    Kubernetes,
    /// None: a one-process run writing to object storage, kept as rank 0 of 1.
    Single,
}

impl RankSource {
    /// The flag or variable, for messages and logs.
    pub fn variable(self) -> &'static str {
        match self {
            RankSource::Flag => "--rank",
            RankSource::SlurmArray => "SLURM_ARRAY_TASK_ID",
            RankSource::Srun => "SLURM_PROCID",
            RankSource::Kubernetes => "JOB_COMPLETION_INDEX",
            RankSource::Single => "a one-process run",
        }
    }
}

/// Where the world size came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldSource {
    /// `--world-size`.
    Flag,
    /// `SLURM_NTASKS` (under `srun`, fixed for the job step).
    Srun,
    /// The run's own record, `ranks/run.json`, pinned by the rank that created it.
    RunRecord,
    /// A one-process run writing to object storage: 1.
    Single,
}

impl WorldSource {
    pub fn variable(self) -> &'static str {
        match self {
            WorldSource::Flag => "--world-size",
            WorldSource::Srun => "SLURM_NTASKS",
            WorldSource::RunRecord => "ranks/run.json",
            WorldSource::Single => "a one-process run",
        }
    }
}

/// What this process was asked to be: a rank, and the world size when it was given (else the
/// run record's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankRequest {
    pub rank: usize,
    pub world_size: Option<usize>,
    pub rank_source: RankSource,
    pub world_source: WorldSource,
}

impl RankRequest {
    /// The rank from the flags, else from the environment (`env` reads a variable); `None` when
    /// neither names one: a one-process run.
    pub fn resolve(
        rank: Option<usize>,
        world_size: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RankRequest>, RankError> {
        let number = |var: &'static str| -> Result<Option<usize>, RankError> {
            match env(var) {
                None => Ok(None),
                Some(value) => value
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| RankError::BadVariable { var, value }),
            }
        };
        let given = |rank, rank_source| {
            Some(RankRequest {
                rank,
                world_size,
                rank_source,
                world_source: WorldSource::Flag,
            })
        };
        let request = if let Some(rank) = rank {
            given(rank, RankSource::Flag)
        } else if let Some(rank) = number("SLURM_ARRAY_TASK_ID")? {
            given(rank, RankSource::SlurmArray)
        } else if let Some(rank) = number("JOB_COMPLETION_INDEX")? {
            given(rank, RankSource::Kubernetes)
        } else if let (Some(rank), Some(tasks), Some(_step)) = (
            number("SLURM_PROCID")?,
            number("SLURM_NTASKS")?,
            env("SLURM_STEP_ID"),
        ) {
            // Only inside a job step (`srun`): a batch script has SLURM_PROCID=0 and
            // SLURM_NTASKS=N too, and a plain `sluice run` there must filter everything. A step
            // of one task is a one-process run, unless the world size is given.
            match world_size {
                Some(_) => given(rank, RankSource::Srun),
                None if tasks > 1 => Some(RankRequest {
                    rank,
                    world_size: Some(tasks),
                    rank_source: RankSource::Srun,
                    world_source: WorldSource::Srun,
                }),
                None => None,
            }
        } else if world_size.is_some() {
            return Err(RankError::WorldWithoutRank);
        } else {
            None
        };
        if let Some(RankRequest {
            world_size: Some(world),
            ..
        }) = request
        {
            if world == 0 || world > MAX_WORLD_SIZE {
                return Err(RankError::BadWorldSize { world });
            }
        }
        Ok(request)
    }
}

impl fmt::Display for RankRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank {} ({})", self.rank, self.rank_source.variable())
    }
}

/// The rank of each shard, given their sizes in listing order: greedy by bytes (largest shard
/// first, each to the rank with the fewest bytes so far, ties to the lower rank and the earlier
/// shard). Deterministic for the same listing, so every rank computes the same partition alone;
/// the most loaded rank has at most one shard more than a perfect split.
pub fn assign(sizes: &[u64], world_size: usize) -> Vec<usize> {
    let world_size = world_size.max(1);
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (Reverse(sizes[i]), i));
    let mut loads: BinaryHeap<Reverse<(u64, usize)>> =
        (0..world_size).map(|r| Reverse((0, r))).collect();
    let mut ranks = vec![0; sizes.len()];
    for i in order {
        let Reverse((load, rank)) = loads.pop().expect("at least one rank");
        ranks[i] = rank;
        loads.push(Reverse((load + sizes[i], rank)));
    }
    ranks
}

/// Why a rank cannot run, or a merge cannot be made. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    #[error("{var}={value:?} is not a rank number")]
    BadVariable { var: &'static str, value: String },
    #[error("--world-size needs --rank (or a scheduler's rank variable: SLURM_ARRAY_TASK_ID, SLURM_PROCID, JOB_COMPLETION_INDEX)")]
    WorldWithoutRank,
    #[error("world size {world} must be between 1 and {MAX_WORLD_SIZE}")]
    BadWorldSize { world: usize },
    #[error(
        "the world size of {variable} is unknown: give --world-size (SLURM_ARRAY_TASK_COUNT is not \
         used: a retry of some array tasks counts only those); later ranks may leave it out once \
         the run's record pins it"
    )]
    NoWorldSize { variable: &'static str },
    #[error("rank {rank} ({variable}) is not below the world size {world} ({world_source}); ranks are 0 to {}", world - 1)]
    RankOutOfRange {
        rank: usize,
        variable: &'static str,
        world: usize,
        world_source: &'static str,
    },
    #[error(
        "output directory {} is pinned to {pinned} ranks (ranks/run.json) and this is rank {rank} \
         of {world}: re-run with --world-size {pinned}, or, once no rank of the {pinned} is \
         running, pass --repartition to every rank of the new world (finished shards are kept)",
        dir.display()
    )]
    WorldChanged {
        dir: PathBuf,
        pinned: usize,
        rank: usize,
        world: usize,
    },
    #[error(
        "the inputs differ from those output directory {} was pinned to (ranks/run.json: {pinned}; \
         listed here: {listed}): the ranks would split different lists. If they changed on \
         purpose, re-run every rank with --repartition once no rank is running",
        dir.display()
    )]
    ListingChanged {
        dir: PathBuf,
        pinned: String,
        listed: String,
    },
    #[error(
        "output directory {} holds a run with another config ({found}, ranks/run.json); use \
         --force to re-pin it (every rank must then be re-run), or another directory",
        dir.display()
    )]
    ConfigChanged { dir: PathBuf, found: String },
    #[error("rank {rank} of {world} is already running in {}: {}", dir.display(), holder)]
    RankRunning {
        dir: PathBuf,
        rank: usize,
        world: usize,
        holder: String,
    },
    #[error(
        "cannot re-partition {}: rank {rank} of {world} is still running ({holder}); wait for it \
         to end",
        dir.display()
    )]
    OldRankRunning {
        dir: PathBuf,
        rank: usize,
        world: usize,
        holder: String,
    },
    #[error(
        "cannot merge {}: {} still running; wait for them to end",
        dir.display(),
        list_ranks(ranks)
    )]
    StillRunning { dir: PathBuf, ranks: Vec<usize> },
    #[error(transparent)]
    Locked(sluice_io::LockError),
    #[error(
        "output directory {} holds a one-machine run (manifest.json, no ranks/run.json): use \
         another directory for a run over ranks, or --force to redo it over ranks",
        dir.display()
    )]
    SingleRunHere { dir: PathBuf },
    #[error(
        "output directory {} holds a run spread over {world} ranks (ranks/run.json): run each \
         rank with --rank R --world-size {world} (or --rank 0 --world-size 1 --repartition for \
         one process), or use another directory",
        dir.display()
    )]
    RankedRunHere { dir: PathBuf, world: usize },
    #[error(
        "{} holds no run spread over ranks (no ranks/run.json){}",
        dir.display(),
        if *single { ": it is a one-machine run, already whole" } else { "" }
    )]
    NotRanked { dir: PathBuf, single: bool },
    #[error(
        "cannot merge {}: the records were made with different configs: {details}; re-run \
         ranks {} with the run's config ({pinned}): their shards are redone",
        dir.display(),
        join_numbers(ranks)
    )]
    MixedConfigs {
        dir: PathBuf,
        pinned: String,
        details: String,
        ranks: Vec<usize>,
    },
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] sluice_io::IoError),
}

fn list_ranks(ranks: &[usize]) -> String {
    match ranks.len() {
        1 => format!("rank {} is", ranks[0]),
        _ => format!("ranks {} are", join_numbers(ranks)),
    }
}

/// `0, 2, 3`.
pub fn join_numbers(numbers: &[usize]) -> String {
    numbers
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn resolve(
        rank: Option<usize>,
        world: Option<usize>,
        vars: &[(&str, &str)],
    ) -> Result<Option<RankRequest>, RankError> {
        RankRequest::resolve(rank, world, env(vars))
    }

    #[test]
    fn flags_win_over_the_environment() {
        let r = resolve(Some(2), Some(4), &[("SLURM_ARRAY_TASK_ID", "1")])
            .unwrap()
            .unwrap();
        assert_eq!((r.rank, r.world_size), (2, Some(4)));
        assert_eq!(r.rank_source, RankSource::Flag);
    }

    #[test]
    fn a_slurm_array_never_takes_its_task_count_as_the_world_size() {
        let vars = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            // A retry of tasks 1 and 3: the count is 2, not the run's 4 ranks.
            ("SLURM_ARRAY_TASK_COUNT", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ];
        let r = resolve(None, None, &vars).unwrap().unwrap();
        assert_eq!(r.rank, 3);
        assert_eq!(r.world_size, None, "left to the run record");
        assert_eq!(r.rank_source, RankSource::SlurmArray);
        let r = resolve(None, Some(4), &vars).unwrap().unwrap();
        assert_eq!((r.world_size, r.world_source), (Some(4), WorldSource::Flag));
    }

    #[test]
    fn srun_tasks_and_kubernetes_indexes_are_ranks() {
        let step = |procid, ntasks| {
            [
                ("SLURM_PROCID", procid),
                ("SLURM_NTASKS", ntasks),
                ("SLURM_STEP_ID", "0"),
            ]
        };
        let r = resolve(None, None, &step("1", "2")).unwrap().unwrap();
        assert_eq!((r.rank, r.world_size), (1, Some(2)));
        assert_eq!(
            (r.rank_source, r.world_source),
            (RankSource::Srun, WorldSource::Srun)
        );
        // A step of one task: one process, not a rank.
        assert!(resolve(None, None, &step("0", "1")).unwrap().is_none());
        // The batch script (no step) of `sbatch --ntasks=4` has PROCID 0 of 4: not a rank.
        let batch = [("SLURM_PROCID", "0"), ("SLURM_NTASKS", "4")];
        assert!(resolve(None, None, &batch).unwrap().is_none());
        let r = resolve(None, Some(8), &[("JOB_COMPLETION_INDEX", "7")])
            .unwrap()
            .unwrap();
        assert_eq!((r.rank, r.rank_source), (7, RankSource::Kubernetes));
        assert!(resolve(None, None, &[]).unwrap().is_none());
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        let err = resolve(None, None, &[("SLURM_ARRAY_TASK_ID", "x")]).unwrap_err();
        assert!(
            err.to_string().contains("SLURM_ARRAY_TASK_ID=\"x\""),
            "{err}"
        );
        let err = resolve(None, Some(4), &[]).unwrap_err();
        assert!(
            err.to_string().contains("--world-size needs --rank"),
            "{err}"
        );
        assert!(resolve(Some(0), Some(0), &[]).is_err());
    }

    #[test]
    fn assignment_is_greedy_by_bytes_not_by_count() {
        // One big shard and six small ones over two ranks: by count rank 0 would get the big
        // one and three small; by bytes it gets the big one alone.
        let sizes = [100, 10, 10, 10, 10, 10, 10];
        let ranks = assign(&sizes, 2);
        assert_eq!(ranks, [0, 1, 1, 1, 1, 1, 1]);
        let ranks = assign(&[5, 5, 5, 5, 5, 5], 4);
        let mut counts = [0; 4];
        for r in &ranks {
            counts[*r] += 1;
        }
        assert_eq!(counts, [2, 2, 1, 1]);
        // Every rank gets a share within one shard of the mean, and the result is the same
        // each time.
        let sizes: Vec<u64> = (0..1000u64).map(|i| (i * 7919) % 1013 + 1).collect();
        let ranks = assign(&sizes, 7);
        assert_eq!(ranks, assign(&sizes, 7));
        let mut loads = [0u64; 7];
        for (i, r) in ranks.iter().enumerate() {
            loads[*r] += sizes[i];
        }
        let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        assert!(max - min <= 1013, "{loads:?}");
        // More ranks than shards: the extra ranks have nothing to do.
        assert_eq!(assign(&[3, 1], 4), [0, 1]);
        assert!(assign(&[], 3).is_empty());
    }
}
