//! `mmrun bench`: measure what a machine or a file system gives mmrun, and
//! what it would give any program, in the same run.
//!
//! A bench is a grid of *cells*: every (kernel × worker count) run through
//! the library [`Runner`] on a new float32 `.npy` file in the bench
//! directory, plus the *reference lines* (module `reference`) — anonymous
//! first-touch, the plain mmap writer and `pwrite` + writeback per worker
//! count, `pwrite` and hot memset once. Cells run **round-robin**: round r
//! runs every cell once in a fixed order, so drift (writeback, thermal, a
//! neighbour's job) hits all cells alike; the first `warmup` rounds are
//! discarded. Each mmrun cell is then read against the line on its own I/O
//! path: `pwrite` + writeback with the same worker count (the plain mmap
//! writer in reports exported before that line existed).
//!
//! The layering follows hyperfine: [`run`] measures and returns raw samples
//! with [`Stats`] (its `statistics`), and [`export`] turns one
//! [`BenchReport`] into JSON, CSV, Markdown or an SVG plot, one exporter per
//! format. The library prints nothing; progress goes through the
//! `on_sample` callback.
//!
//! Both mmrun's fork workers and the reference children are forked, so the
//! calling process must be single-threaded for the whole bench: [`run`]
//! refuses otherwise.

mod compare;
mod env;
pub mod export;
mod reference;
mod size;
mod stats;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use compare::{compare, Comparison, RatioLine};
pub use env::{CacheInfo, Environment, FsInfo};
pub use export::{open_exports, ExportFormat, Exporter, Exports};
pub use size::parse_size;
pub use stats::{gbps, Stats};

use crate::coordinator::{Runner, Spawn, SyncMode, Target, Workers};
use crate::error::{Error, Result};
use crate::kernels::{Fill, FillKind, Kernel};
use crate::layout::DType;
use reference::{CacheLog, Scratch};

/// Version of the bench report's JSON layout; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Seed of the `fill-uniform` kernel (any fixed value: the bench compares
/// speeds, not numbers).
const UNIFORM_SEED: u128 = 42;

/// An mmrun kernel the bench can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BenchKernel {
    /// `fill --value 1`.
    FillValue,
    /// `fill --random uniform` (Philox, as NumPy's `Generator.random`).
    FillUniform,
}

impl BenchKernel {
    /// Every kernel, in the order `--kernels` lists them by default.
    pub const ALL: [BenchKernel; 2] = [BenchKernel::FillValue, BenchKernel::FillUniform];

    /// The name `--kernels` takes: `fill-value`.
    pub fn name(self) -> &'static str {
        match self {
            BenchKernel::FillValue => "fill-value",
            BenchKernel::FillUniform => "fill-uniform",
        }
    }

    fn kernel(self, dtype: DType) -> Result<Box<dyn Kernel>> {
        let kind = match self {
            BenchKernel::FillValue => FillKind::Value { value: "1".into() },
            BenchKernel::FillUniform => FillKind::Uniform { seed: UNIFORM_SEED },
        };
        Ok(Box::new(Fill::new(kind, dtype)?))
    }
}

impl fmt::Display for BenchKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BenchKernel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BenchKernel::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = BenchKernel::ALL.iter().map(|k| k.name()).collect();
                Error::refused(format!(
                    "unknown bench kernel {s:?}: choose from {}",
                    names.join(", ")
                ))
            })
    }
}

/// Parses `--kernels fill-value,fill-uniform` (or `all`), keeping the first
/// of repeated names.
pub fn parse_kernels(text: &str) -> Result<Vec<BenchKernel>> {
    if text.trim() == "all" {
        return Ok(BenchKernel::ALL.to_vec());
    }
    let mut out: Vec<BenchKernel> = Vec::new();
    for part in text.split(',') {
        let k: BenchKernel = part.parse()?;
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Parses `--workers 1,2,4`: positive counts, returned sorted without
/// repeats.
pub fn parse_workers(text: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let n: usize = part.trim().parse().map_err(|_| {
            Error::refused(format!(
                "--workers {text:?}: expected positive counts separated by commas, e.g. 1,2,4"
            ))
        })?;
        if n == 0 {
            return Err(Error::refused("--workers counts must be at least 1"));
        }
        out.push(n);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Page-cache policy between samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cache {
    /// Leave the page cache alone.
    #[default]
    Warm,
    /// Drop each sample's file pages (`POSIX_FADV_DONTNEED`) after its
    /// `fsync`, before the file is removed. The environment block says what
    /// was actually done.
    Cold,
}

impl fmt::Display for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cache::Warm => "warm",
            Cache::Cold => "cold",
        })
    }
}

impl FromStr for Cache {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "warm" => Ok(Cache::Warm),
            "cold" => Ok(Cache::Cold),
            _ => Err(Error::refused(format!(
                "--cache {s:?}: choose warm or cold"
            ))),
        }
    }
}

/// What a cell measures: an mmrun kernel or a reference line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Line {
    /// An mmrun kernel through the library [`Runner`].
    Mmrun(BenchKernel),
    /// Forked children store into fresh anonymous memory.
    AnonFirstTouch,
    /// Create + `fallocate` + forked children storing through shared
    /// mappings + one `fsync`, no mmrun code in the loop.
    MmapWriter,
    /// Create + `fallocate` + forked children `pwrite`-ing 1 MiB blocks and
    /// streaming writeback + one `fsync`: mmrun fill's path, hand-written.
    PwriteStream,
    /// One process, `pwrite` of 4 MiB blocks + `fsync`.
    Pwrite,
    /// One process overwriting memory it has already touched.
    HotMemset,
}

impl Line {
    /// Stable identifier, as JSON and CSV write it: `fill-value`,
    /// `anon-first-touch`, `mmap-writer`, `pwrite-stream`, `pwrite`,
    /// `hot-memset`.
    pub fn id(self) -> &'static str {
        match self {
            Line::Mmrun(k) => k.name(),
            Line::AnonFirstTouch => "anon-first-touch",
            Line::MmapWriter => "mmap-writer",
            Line::PwriteStream => "pwrite-stream",
            Line::Pwrite => "pwrite",
            Line::HotMemset => "hot-memset",
        }
    }

    /// What people read in tables and the plot legend.
    pub fn label(self) -> String {
        match self {
            Line::Mmrun(k) => format!("mmrun {}", k.name()),
            Line::AnonFirstTouch => "anonymous first-touch".into(),
            Line::MmapWriter => "plain mmap writer".into(),
            Line::PwriteStream => "pwrite + writeback".into(),
            Line::Pwrite => "pwrite 4 MiB + fsync".into(),
            Line::HotMemset => "hot memset".into(),
        }
    }

    /// Whether this is a reference line rather than mmrun.
    pub fn is_reference(self) -> bool {
        !matches!(self, Line::Mmrun(_))
    }

    /// Whether the line is measured per worker count (the others run in one
    /// process and are recorded with `workers: 1`).
    pub fn per_workers(self) -> bool {
        matches!(
            self,
            Line::Mmrun(_) | Line::AnonFirstTouch | Line::MmapWriter | Line::PwriteStream
        )
    }

    /// The reference line that binds this one, if it is an mmrun line: the
    /// hand-written code on the same I/O path (every bench kernel is a
    /// fill, which `pwrite`s and streams writeback).
    pub fn binding(self) -> Option<Line> {
        (!self.is_reference()).then_some(Line::PwriteStream)
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl From<Line> for String {
    fn from(l: Line) -> String {
        l.id().to_string()
    }
}

impl TryFrom<String> for Line {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Line, String> {
        let refs = [
            Line::AnonFirstTouch,
            Line::MmapWriter,
            Line::PwriteStream,
            Line::Pwrite,
            Line::HotMemset,
        ];
        refs.into_iter()
            .chain(BenchKernel::ALL.into_iter().map(Line::Mmrun))
            .find(|l| l.id() == s)
            .ok_or_else(|| format!("unknown bench line {s:?}"))
    }
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Bytes of data each sample writes (rounded down to whole float32s).
    pub size_bytes: u64,
    /// Worker counts.
    pub workers: Vec<usize>,
    /// mmrun kernels; may be empty (reference lines only).
    pub kernels: Vec<BenchKernel>,
    /// Directory on the file system under test; sample files are created
    /// and removed here.
    pub dir: PathBuf,
    /// Measured rounds (samples per cell).
    pub repeat: usize,
    /// Rounds run first and discarded.
    pub warmup: usize,
    /// Page-cache policy between samples.
    pub cache: Cache,
    /// How mmrun's workers are started.
    pub spawn: Spawn,
    /// The mmrun binary `Spawn::Exec` re-executes; `None`: the running
    /// executable (right for the `mmrun` binary).
    pub exe: Option<PathBuf>,
}

impl Default for BenchConfig {
    /// `--size 400MiB --workers 1,2,4 --kernels fill-value,fill-uniform
    /// --dir . --repeat 5 --warmup 1 --cache warm`, fork workers.
    fn default() -> Self {
        BenchConfig {
            size_bytes: 400 << 20,
            workers: vec![1, 2, 4],
            kernels: BenchKernel::ALL.to_vec(),
            dir: PathBuf::from("."),
            repeat: 5,
            warmup: 1,
            cache: Cache::Warm,
            spawn: Spawn::Fork,
            exe: None,
        }
    }
}

/// One measured sample, as `run` reports it to its callback.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Round, from 0 (warm-up rounds first).
    pub round: usize,
    /// Rounds in all, warm-up included.
    pub rounds: usize,
    /// Whether this round is a discarded warm-up round.
    pub warmup: bool,
    /// Index of the cell within a round, from 0.
    pub cell: usize,
    /// Cells per round.
    pub cells: usize,
    /// What was measured.
    pub line: Line,
    /// Worker count (1 for single-process lines).
    pub workers: usize,
    /// Bytes written.
    pub bytes: u64,
    /// Seconds.
    pub seconds: f64,
}

impl Sample {
    /// Decimal GB/s of this sample.
    pub fn gbps(&self) -> f64 {
        gbps(self.bytes, self.seconds)
    }
}

/// The parameters a report was measured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchParams {
    /// `--size` as given, in bytes.
    pub size_bytes: u64,
    /// Bytes each sample writes.
    pub bytes: u64,
    /// Worker counts.
    pub workers: Vec<usize>,
    /// mmrun kernels.
    pub kernels: Vec<BenchKernel>,
    /// Measured rounds.
    pub repeat: usize,
    /// Discarded rounds.
    pub warmup: usize,
    /// `fork` or `exec`.
    pub spawn: String,
}

/// One cell's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// What was measured.
    pub line: Line,
    /// `mmrun` or `reference`.
    pub kind: String,
    /// Worker count (1 for single-process lines).
    pub workers: usize,
    /// Bytes each sample wrote.
    pub bytes: u64,
    /// Raw samples in seconds, in round order.
    pub samples: Vec<f64>,
    /// Statistics of the samples, in seconds.
    pub stats: Stats,
    /// Decimal GB/s from the median.
    pub gbps: f64,
    /// The reference line that binds this cell (mmrun cells only).
    pub reference: Option<Binding>,
}

/// An mmrun cell held against its reference line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    /// The reference line.
    pub line: Line,
    /// Its worker count.
    pub workers: usize,
    /// Its GB/s.
    pub gbps: f64,
    /// This cell's GB/s over the reference's (0.9: 90 % of it).
    pub ratio: f64,
}

/// Everything one bench measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Parameters.
    pub params: BenchParams,
    /// Where it ran.
    pub environment: Environment,
    /// One entry per cell, in the order each round ran them.
    pub cells: Vec<CellResult>,
}

impl BenchReport {
    /// Reads a report from its JSON export; refuses other schema versions.
    pub fn from_json(text: &str) -> Result<BenchReport> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::refused(format!("not a bench report: {e}")))?;
        match v.get("schema_version").and_then(|s| s.as_u64()) {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            Some(n) => {
                return Err(Error::refused(format!(
                "bench report schema version {n} is not {SCHEMA_VERSION}, the one this mmrun reads"
            )))
            }
            None => return Err(Error::refused("not a bench report: no schema_version")),
        }
        serde_json::from_value(v).map_err(|e| Error::refused(format!("bad bench report: {e}")))
    }

    /// Reads a report from a JSON export file (`--compare OLD.json`).
    pub fn read(path: &Path) -> Result<BenchReport> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io_refused("cannot read", path, e))?;
        BenchReport::from_json(&text).map_err(|e| e.context(path.display()))
    }

    /// The cell for `line` with `workers`, if measured.
    pub fn cell(&self, line: Line, workers: usize) -> Option<&CellResult> {
        self.cells
            .iter()
            .find(|c| c.line == line && c.workers == workers)
    }
}

/// A cell of the round: what and with how many workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    line: Line,
    workers: usize,
}

/// The cells of one round, in their fixed order: per worker count the
/// reference lines then the kernels, then the single-process lines.
fn round_cells(workers: &[usize], kernels: &[BenchKernel]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &w in workers {
        for line in [Line::AnonFirstTouch, Line::MmapWriter, Line::PwriteStream]
            .into_iter()
            .chain(kernels.iter().map(|&k| Line::Mmrun(k)))
        {
            cells.push(Cell { line, workers: w });
        }
    }
    for line in [Line::Pwrite, Line::HotMemset] {
        cells.push(Cell { line, workers: 1 });
    }
    cells
}

/// The number of threads in `/proc/self/status` text.
fn threads_in(status: &str) -> Option<usize> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
}

/// Checked options: bytes per sample, sorted worker counts, kernels
/// without repeats, the resolved directory.
fn check(cfg: &BenchConfig) -> Result<(u64, Vec<usize>, Vec<BenchKernel>, PathBuf)> {
    let bytes = cfg.size_bytes / 4 * 4;
    if bytes < 4096 {
        return Err(Error::refused(format!(
            "--size {} is too small: a bench needs at least 4 KiB",
            cfg.size_bytes
        )));
    }
    if cfg.workers.is_empty() || cfg.workers.contains(&0) {
        return Err(Error::refused(
            "--workers needs one or more counts of at least 1",
        ));
    }
    if cfg.repeat == 0 {
        return Err(Error::refused("--repeat must be at least 1"));
    }
    let mut workers = cfg.workers.clone();
    workers.sort_unstable();
    workers.dedup();
    let mut kernels: Vec<BenchKernel> = Vec::new();
    for &k in &cfg.kernels {
        if !kernels.contains(&k) {
            kernels.push(k);
        }
    }
    let dir = std::fs::canonicalize(&cfg.dir)
        .map_err(|e| Error::io_refused("cannot use bench directory", &cfg.dir, e))?;
    if !dir.is_dir() {
        return Err(Error::refused(format!(
            "{} is not a directory",
            cfg.dir.display()
        )));
    }
    // One sample file exists at a time: its data, an .npy header page and
    // some slack for the journal.
    let need = bytes + (1 << 20);
    if let Some(avail) = crate::os::available_bytes(&dir) {
        if avail < need {
            return Err(Error::refused(format!(
                "not enough space in {} for a {}-byte bench file: {avail} bytes available",
                dir.display(),
                bytes
            )));
        }
    }
    Ok((bytes, workers, kernels, dir))
}

/// Runs the bench: `warmup + repeat` rounds of every cell, calling
/// `on_sample` after each sample (warm-up ones included, flagged).
///
/// Refused (before anything is measured) for bad options, a directory that
/// cannot hold the file, or a multi-threaded process: mmrun's workers and
/// the reference children are forked, and a fork of a multi-threaded
/// process may inherit a lock no thread will release (see
/// [`crate::os::fork_child`]).
pub fn run(cfg: &BenchConfig, on_sample: &mut dyn FnMut(&Sample)) -> Result<BenchReport> {
    let (bytes, workers, kernels, dir) = check(cfg)?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(n) = threads_in(&status).filter(|&n| n > 1) {
        return Err(Error::refused(format!(
            "bench forks worker processes and must run in a single-threaded process; this one has {n} threads"
        )));
    }
    let mut environment = Environment::detect(&dir, cfg.cache);
    let cells = round_cells(&workers, &kernels);
    let rounds = cfg.warmup + cfg.repeat;
    let pid = std::process::id();
    let npy = dir.join(format!("mmrun-bench-{pid}.npy"));
    let raw = dir.join(format!("mmrun-bench-{pid}.raw"));
    let cold = cfg.cache == Cache::Cold;
    let mut log = CacheLog::default();
    let mut reserved = None;
    let mut samples = vec![Vec::with_capacity(cfg.repeat); cells.len()];

    for round in 0..rounds {
        for (i, cell) in cells.iter().enumerate() {
            let w = cell.workers;
            let cache = cold.then_some(&mut log);
            let seconds = match cell.line {
                Line::AnonFirstTouch => reference::anon_first_touch(bytes, w)?,
                Line::MmapWriter => {
                    let (s, r) = reference::mmap_writer(&raw, bytes, w, cache)?;
                    reserved = Some(r);
                    s
                }
                Line::PwriteStream => reference::pwrite_stream(&raw, bytes, w, cache)?,
                Line::Pwrite => reference::pwrite(&raw, bytes, cache)?,
                Line::HotMemset => reference::hot_memset(bytes)?,
                Line::Mmrun(k) => mmrun_sample(cfg, &npy, bytes, k, w, cache)?,
            };
            let warmup = round < cfg.warmup;
            if !warmup {
                samples[i].push(seconds);
            }
            on_sample(&Sample {
                round,
                rounds,
                warmup,
                cell: i,
                cells: cells.len(),
                line: cell.line,
                workers: w,
                bytes,
                seconds,
            });
        }
    }

    environment.cache.method = cache_method(cfg.cache, &log);
    environment.reserve = reserved.unwrap_or("not measured").into();
    let results = cells
        .iter()
        .zip(samples)
        .map(|(cell, s)| {
            let stats = Stats::of(&s).expect("repeat is at least 1");
            CellResult {
                line: cell.line,
                kind: if cell.line.is_reference() {
                    "reference"
                } else {
                    "mmrun"
                }
                .into(),
                workers: cell.workers,
                bytes,
                gbps: gbps(bytes, stats.median),
                samples: s,
                stats,
                reference: None,
            }
        })
        .collect();
    let mut report = BenchReport {
        schema_version: SCHEMA_VERSION,
        params: BenchParams {
            size_bytes: cfg.size_bytes,
            bytes,
            workers,
            kernels,
            repeat: cfg.repeat,
            warmup: cfg.warmup,
            spawn: match cfg.spawn {
                Spawn::Fork => "fork",
                Spawn::Exec => "exec",
            }
            .into(),
        },
        environment,
        cells: results,
    };
    bind_references(&mut report);
    Ok(report)
}

/// Fills in each mmrun cell's [`Binding`] from the cells of `report`.
pub fn bind_references(report: &mut BenchReport) {
    let bindings: Vec<Option<Binding>> = report
        .cells
        .iter()
        .map(|c| {
            let line = c.line.binding()?;
            // Reports exported before the pwrite + writeback line held
            // mmrun against the plain mmap writer.
            let (line, r) = match report.cell(line, c.workers) {
                Some(r) => (line, r),
                None => (Line::MmapWriter, report.cell(Line::MmapWriter, c.workers)?),
            };
            Some(Binding {
                line,
                workers: r.workers,
                gbps: r.gbps,
                ratio: if r.gbps > 0.0 { c.gbps / r.gbps } else { 0.0 },
            })
        })
        .collect();
    for (c, b) in report.cells.iter_mut().zip(bindings) {
        c.reference = b;
    }
}

/// One sample of an mmrun kernel: a new file through [`Runner`], `--sync
/// full`, timed from the call to its return (prepare, lock, reserve, run,
/// fsync, rename, directory fsync), then removed.
fn mmrun_sample(
    cfg: &BenchConfig,
    path: &Path,
    bytes: u64,
    kernel: BenchKernel,
    workers: usize,
    cache: Option<&mut CacheLog>,
) -> Result<f64> {
    let mut target = Target::new_npy(path, DType::F32, vec![bytes / 4]);
    // The name holds this process's id: an old file under it is a leftover
    // of a killed bench that had the same id.
    target.force = true;
    let mut runner = Runner::new(target)
        .workers(Workers::Count(workers))
        .spawn(cfg.spawn)
        .sync(SyncMode::Full);
    if let Some(exe) = &cfg.exe {
        runner = runner.worker_exe(exe);
    }
    let t = Instant::now();
    let result = runner.run(|layout| Ok(Some(kernel.kernel(layout.dtype)?)));
    let seconds = t.elapsed().as_secs_f64();
    result.map_err(|e| e.context(format!("bench {kernel} with {workers} worker(s)")))?;
    let scratch = Scratch(path.to_path_buf());
    if let Some(log) = cache {
        if let Ok(f) = File::open(path) {
            log.drop_pages(&f);
        }
    }
    drop(scratch);
    Ok(seconds)
}

/// The environment block's account of the cache policy.
fn cache_method(cache: Cache, log: &CacheLog) -> String {
    let common = "every sample writes a new file, removed after it, so no sample starts with its target's pages cached";
    match cache {
        Cache::Warm => format!("nothing dropped; {common}"),
        Cache::Cold => {
            let mut s = format!(
                "posix_fadvise(POSIX_FADV_DONTNEED) on each sample's file after its fsync, before removal ({} files); {common}; anonymous and memset lines are unaffected",
                log.dropped
            );
            if let Some(f) = &log.failure {
                s.push_str("; ");
                s.push_str(f);
            }
            s
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A report with fixed timings, for exporter and compare tests.
    pub(crate) fn fixed_report() -> BenchReport {
        let bytes = 4 << 20;
        let cell = |line: Line, workers: usize, samples: &[f64]| {
            let stats = Stats::of(samples).unwrap();
            CellResult {
                line,
                kind: if line.is_reference() {
                    "reference"
                } else {
                    "mmrun"
                }
                .into(),
                workers,
                bytes,
                gbps: gbps(bytes, stats.median),
                samples: samples.to_vec(),
                stats,
                reference: None,
            }
        };
        let mut report = BenchReport {
            schema_version: SCHEMA_VERSION,
            params: BenchParams {
                size_bytes: 4 << 20,
                bytes,
                workers: vec![1, 2],
                kernels: vec![BenchKernel::FillValue],
                repeat: 2,
                warmup: 1,
                spawn: "fork".into(),
            },
            environment: Environment {
                kernel: "6.1.0-test".into(),
                arch: "x86_64".into(),
                cpu: "Test CPU @ 3.00GHz".into(),
                nproc: 8,
                hostname: "node1".into(),
                page_size: 4096,
                thp: "madvise".into(),
                fs: FsInfo {
                    dir: PathBuf::from("/scratch/b"),
                    mount_point: "/scratch".into(),
                    fs_type: "xfs".into(),
                    source: "/dev/md0".into(),
                    mount_options: "rw,relatime".into(),
                    super_options: "rw,inode64".into(),
                },
                mmrun_version: "0.1.0".into(),
                build_profile: "release".into(),
                cache: CacheInfo {
                    mode: Cache::Warm,
                    method: "nothing dropped".into(),
                },
                reserve: "fallocate".into(),
            },
            cells: vec![
                cell(Line::AnonFirstTouch, 1, &[0.002, 0.004]),
                cell(Line::MmapWriter, 1, &[0.004, 0.004]),
                cell(Line::Mmrun(BenchKernel::FillValue), 1, &[0.005, 0.005]),
                cell(Line::AnonFirstTouch, 2, &[0.001, 0.001]),
                cell(Line::MmapWriter, 2, &[0.002, 0.003]),
                cell(Line::Mmrun(BenchKernel::FillValue), 2, &[0.004, 0.0025]),
                cell(Line::Pwrite, 1, &[0.008, 0.008]),
                cell(Line::HotMemset, 1, &[0.0005, 0.0005]),
            ],
        };
        bind_references(&mut report);
        report
    }

    #[test]
    fn kernels_workers_and_cache_parse() {
        assert_eq!(
            parse_kernels("fill-uniform,fill-value,fill-uniform").unwrap(),
            vec![BenchKernel::FillUniform, BenchKernel::FillValue]
        );
        assert_eq!(parse_kernels("all").unwrap(), BenchKernel::ALL.to_vec());
        assert!(parse_kernels("fill-value,reduce").is_err());
        assert!(parse_kernels("").is_err());
        assert_eq!(parse_workers("4, 1,2,2").unwrap(), vec![1, 2, 4]);
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("1,x").is_err());
        assert_eq!("cold".parse::<Cache>().unwrap(), Cache::Cold);
        assert!("hot".parse::<Cache>().is_err());
    }

    #[test]
    fn lines_round_trip_through_their_ids() {
        for line in [
            Line::Mmrun(BenchKernel::FillValue),
            Line::Mmrun(BenchKernel::FillUniform),
            Line::AnonFirstTouch,
            Line::MmapWriter,
            Line::PwriteStream,
            Line::Pwrite,
            Line::HotMemset,
        ] {
            assert_eq!(Line::try_from(line.id().to_string()).unwrap(), line);
            let json = serde_json::to_string(&line).unwrap();
            assert_eq!(serde_json::from_str::<Line>(&json).unwrap(), line);
        }
        assert!(Line::try_from("apply".to_string()).is_err());
    }

    #[test]
    fn rounds_hold_every_cell_in_a_fixed_order() {
        let cells = round_cells(&[1, 2], &[BenchKernel::FillValue, BenchKernel::FillUniform]);
        let ids: Vec<String> = cells
            .iter()
            .map(|c| format!("{}x{}", c.line, c.workers))
            .collect();
        assert_eq!(
            ids,
            [
                "anon-first-touchx1",
                "mmap-writerx1",
                "pwrite-streamx1",
                "fill-valuex1",
                "fill-uniformx1",
                "anon-first-touchx2",
                "mmap-writerx2",
                "pwrite-streamx2",
                "fill-valuex2",
                "fill-uniformx2",
                "pwritex1",
                "hot-memsetx1",
            ]
        );
    }

    #[test]
    fn mmrun_cells_bind_to_the_mmap_writer_with_their_worker_count() {
        // A report without the pwrite + writeback line (exported before it
        // existed) binds to the plain mmap writer.
        let r = fixed_report();
        let c = r.cell(Line::Mmrun(BenchKernel::FillValue), 2).unwrap();
        let b = c.reference.as_ref().unwrap();
        assert_eq!((b.line, b.workers), (Line::MmapWriter, 2));
        // Medians 3.25 ms against 2.5 ms.
        assert!((b.ratio - 2.5 / 3.25).abs() < 1e-12);
        assert!(r.cell(Line::MmapWriter, 2).unwrap().reference.is_none());
    }

    #[test]
    fn fills_bind_to_pwrite_with_writeback_when_it_was_measured() {
        let mut r = fixed_report();
        let mut line = r.cell(Line::MmapWriter, 2).unwrap().clone();
        line.line = Line::PwriteStream;
        line.samples = vec![0.002, 0.002];
        line.stats = Stats::of(&line.samples).unwrap();
        line.gbps = gbps(line.bytes, line.stats.median);
        r.cells.push(line);
        bind_references(&mut r);
        let b = r
            .cell(Line::Mmrun(BenchKernel::FillValue), 2)
            .unwrap()
            .reference
            .clone()
            .unwrap();
        assert_eq!((b.line, b.workers), (Line::PwriteStream, 2));
        assert!((b.ratio - 2.0 / 3.25).abs() < 1e-12);
        // Worker count 1 has no such cell here: the mmap writer binds it.
        let b1 = r
            .cell(Line::Mmrun(BenchKernel::FillValue), 1)
            .unwrap()
            .reference
            .clone()
            .unwrap();
        assert_eq!(b1.line, Line::MmapWriter);
    }

    #[test]
    fn options_are_checked_before_measuring() {
        let dir = tempfile::tempdir().unwrap();
        let ok = BenchConfig {
            dir: dir.path().to_path_buf(),
            size_bytes: 4 << 20,
            ..BenchConfig::default()
        };
        let refused = |cfg: BenchConfig| {
            let e = run(&cfg, &mut |_| panic!("measured")).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Refused, "{e}");
            e.message().to_string()
        };
        assert!(refused(BenchConfig {
            size_bytes: 100,
            ..ok.clone()
        })
        .contains("too small"));
        assert!(refused(BenchConfig {
            workers: vec![],
            ..ok.clone()
        })
        .contains("--workers"));
        assert!(refused(BenchConfig {
            repeat: 0,
            ..ok.clone()
        })
        .contains("--repeat"));
        let missing = dir.path().join("nope");
        assert!(refused(BenchConfig {
            dir: missing,
            ..ok.clone()
        })
        .contains("nope"));
        assert!(refused(BenchConfig {
            size_bytes: u64::MAX / 2,
            ..ok
        })
        .contains("space"));
    }

    #[test]
    fn thread_count_is_read_from_proc_status() {
        assert_eq!(threads_in("Name:\tx\nThreads:\t3\nVmRSS: 1 kB\n"), Some(3));
        assert_eq!(threads_in("Name:\tx\n"), None);
    }

    #[test]
    fn reports_round_trip_and_other_versions_are_refused() {
        let r = fixed_report();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(BenchReport::from_json(&json).unwrap(), r);
        let other = json.replacen("\"schema_version\":1", "\"schema_version\":9", 1);
        assert!(BenchReport::from_json(&other)
            .unwrap_err()
            .message()
            .contains("version 9"));
        assert!(BenchReport::from_json("{}").is_err());
        assert!(BenchReport::from_json("not json").is_err());
    }
}
