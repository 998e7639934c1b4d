//! Command-line definitions (clap) and their mapping to library calls.
//!
//! This module belongs to the binary only: the library never sees a clap
//! type. Raw arguments are parsed into the `*Args` structs, then turned into
//! a [`mmrun::Runner`] and kernel; everything the library refuses comes back
//! as an [`mmrun::Error`] whose kind decides the exit code.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mmrun::commands::Output;
use mmrun::coordinator::{NewFile, Program, RunSummary};
use mmrun::progress::ProgressMode;
use mmrun::{
    report, DType, Error, Fill, FillKind, HeaderStyle, Kernel, Prealloc, RawSpec, Result, RowSlice,
    Runner, Spawn, SyncMode, Target, Workers,
};

/// Run parallel computations over one shared memory-mapped array file.
#[derive(Debug, Parser)]
#[command(name = "mmrun", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v: info, -vv: debug, -vvv: trace); MMRUN_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    Auto,
    Always,
    Never,
}

/// The longest duration any option takes: a year, far beyond any batch
/// limit, and small enough that `Instant::now() + d` cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration as humantime spells it (`10s`, `500ms`, `2m`, `1h 30m`,
/// `2days`) or plain seconds (`1.5`), up to [`MAX_DURATION`].
fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let too_long = || format!("'{s}' is longer than the limit of 365 days");
    let d = match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => {
            if v > MAX_DURATION.as_secs_f64() {
                return Err(too_long());
            }
            Duration::from_secs_f64(v)
        }
        Ok(_) => return Err(format!("'{s}' is not a non-negative duration")),
        Err(_) => match humantime::parse_duration(t) {
            Ok(d) => d,
            Err(humantime::DurationError::NumberOverflow) => return Err(too_long()),
            Err(e) => {
                return Err(format!(
                    "'{s}' is not a duration ({e}; e.g. 30s, 500ms, 5m, 2h, 1h 30m)"
                ))
            }
        },
    };
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an array file filled with zeros (like numpy.memmap mode w+).
    Create(CreateArgs),
    /// Describe an array file: format, dtype, shape, data offset, bytes.
    Info(InfoArgs),
    /// Fill an array file with a value, arange or random numbers.
    Fill(FillArgs),
    /// Run PROGRAM as every worker, each over its own rows (protocol v1).
    Exec(ExecArgs),
    /// Evaluate a NumPy expression over the array, in place or into --out.
    Apply(ApplyArgs),
    /// Sum, mean, min, max, std or var along an axis, bit-identical for any split.
    Reduce(ReduceArgs),
    /// Recompute a deterministic fill and name the first row that differs.
    Verify(VerifyArgs),
    /// Write IN.astype(T) to OUT, native little-endian and C order (reads big-endian and Fortran order).
    Convert(ConvertArgs),
    /// Publish a file that the ranks of a distributed run filled.
    Commit(CommitArgs),
    /// Work with run reports: merge the ranks' reports of a distributed job.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Measure this machine or file system: mmrun against reference lines.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Bytes per file (B, KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "400MiB")]
    size: String,
    /// Worker counts to measure, comma-separated.
    #[arg(long, default_value = "1,2,4")]
    workers: String,
    /// Kernels to measure: fill-value, fill-uniform.
    #[arg(long, default_value = "fill-value,fill-uniform")]
    kernels: String,
    /// Directory (file system) to measure.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Measured rounds; every cell runs once per round, round-robin.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Rounds run first and discarded.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// warm, or cold (drop the file's pages between samples).
    #[arg(long, default_value = "warm")]
    cache: String,
    /// How mmrun starts workers.
    #[arg(long, value_enum, default_value_t = SpawnArg::Fork)]
    spawn: SpawnArg,
    /// Write raw samples and statistics as JSON (- for stdout).
    #[arg(long, value_name = "F")]
    export_json: Option<PathBuf>,
    /// Write one CSV row per cell (- for stdout).
    #[arg(long, value_name = "F")]
    export_csv: Option<PathBuf>,
    /// Write a Markdown table (- for stdout).
    #[arg(long, value_name = "F")]
    export_markdown: Option<PathBuf>,
    /// Plot GB/s against workers as SVG.
    #[arg(long, value_name = "F.svg")]
    plot: Option<PathBuf>,
    /// Print ratios against an earlier --export-json.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
}

impl From<SpawnArg> for Spawn {
    fn from(s: SpawnArg) -> Self {
        match s {
            SpawnArg::Fork => Spawn::Fork,
            SpawnArg::Exec => Spawn::Exec,
        }
    }
}

fn bench(a: BenchArgs) -> Result<()> {
    use mmrun::bench::export::{Exporter, MarkdownExporter};
    use mmrun::bench::{self, BenchConfig, BenchReport, ExportFormat as F};
    let cfg = BenchConfig {
        size_bytes: bench::parse_size(&a.size)?,
        workers: bench::parse_workers(&a.workers)?,
        kernels: bench::parse_kernels(&a.kernels)?,
        dir: a.dir,
        repeat: a.repeat,
        warmup: a.warmup,
        cache: a.cache.parse()?,
        spawn: a.spawn.into(),
        exe: None,
    };
    // Read OLD before the exports are created: it may be the same path.
    let old = a.compare.as_deref().map(BenchReport::read).transpose()?;
    let requests: Vec<_> = [
        (F::Json, a.export_json),
        (F::Csv, a.export_csv),
        (F::Markdown, a.export_markdown),
        (F::Svg, a.plot),
    ]
    .into_iter()
    .filter_map(|(f, p)| Some((f, p?)))
    .collect();
    let mut exports = bench::open_exports(&requests)?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = bench::run(&cfg, &mut |s| {
        if tty {
            eprint!(
                "\r[{}/{}] {} x{}: {:.3} GB/s   ",
                s.round * s.cells + s.cell + 1,
                s.rounds * s.cells,
                s.line,
                s.workers,
                s.gbps()
            );
        }
    })?;
    if tty {
        eprintln!();
    }
    exports.write(&report)?;
    if !exports.uses_stdout() {
        print!(
            "{}",
            String::from_utf8_lossy(&MarkdownExporter.serialize(&report)?)
        );
    }
    if let Some(old) = old {
        print!("{}", bench::compare(&old, &report));
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(
    mut_arg("dtype", |a| a.help("dtype of --out (default: the expression's dtype); with --raw, the input's dtype")),
    mut_arg("shape", |a| a.help("Shape of a raw input (with --raw)"))
)]
struct ApplyArgs {
    /// The file to read (and, without --out, to rewrite in place).
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// The expression: x (element), i j k n (indices), + - * / // % **, comparisons, abs sqrt exp log … where.
    #[arg(long, allow_hyphen_values = true)]
    expr: String,
    /// Only these rows (Python slice A:B over axis 0).
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    rows: Option<RowSlice>,
    /// Only these axis-1 indices (Python slice A:B).
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    cols: Option<RowSlice>,
    /// Write the result to a new file (x.astype(T) with the selection replaced) instead of in place.
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Replace an existing OUT.
    #[arg(long, requires = "out")]
    force: bool,
    /// .npy header of OUT.
    #[arg(long, value_enum, default_value_t = HeaderArg::Page)]
    npy_header: HeaderArg,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
#[command(
    mut_arg("dtype", |a| a.help("dtype of the result (default: NumPy's result dtype); with --raw, the input's dtype")),
    mut_arg("shape", |a| a.help("Shape of a raw input (with --raw)"))
)]
struct ReduceArgs {
    /// The file to read.
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// The reduction: sum, mean, min, max, std, var, prod, any, all, nansum, nanmin or nanmax.
    #[arg(long, value_parser = parse_op)]
    op: mmrun::kernels::reduce::Op,
    /// NumPy's axis (0, 1, …, negative from the end), a tuple (1,2), rows (all but axis 0) or all.
    #[arg(long, allow_hyphen_values = true)]
    axis: String,
    /// Delta degrees of freedom of std and var (divide by N - K).
    #[arg(long, value_name = "K", default_value_t = 0)]
    ddof: u64,
    /// Write the result to this new file (needed unless the result is one number).
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Replace an existing OUT.
    #[arg(long, requires = "out")]
    force: bool,
    /// .npy header of OUT.
    #[arg(long, value_enum, default_value_t = HeaderArg::Page)]
    npy_header: HeaderArg,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// The array to read: a .npy in any byte order, C or Fortran order, or a raw file with --in-raw.
    #[arg(value_name = "IN")]
    input: PathBuf,
    /// The file to write: IN.astype(T), native little-endian, C order, published atomically.
    #[arg(value_name = "OUT")]
    output: PathBuf,
    /// Element type of OUT, NumPy spelling (default: IN's).
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,
    /// Write OUT headerless, as numpy.memmap reads it.
    #[arg(long, conflicts_with = "npy")]
    raw: bool,
    /// Write OUT as .npy (the default).
    #[arg(long)]
    npy: bool,
    /// Which conversions are allowed at all, as np.can_cast(IN.dtype, T, casting).
    #[arg(long, value_enum, default_value_t = CastingArg::Unsafe)]
    casting: CastingArg,
    /// Also refuse per value: NaN/inf to an integer, out-of-range values, finite values overflowing to inf (exit 1).
    #[arg(long)]
    strict: bool,
    /// IN is headerless: read it as numpy.memmap(IN, dtype=--in-dtype, shape=--in-shape, offset=--in-offset, order=--in-order).
    #[arg(long)]
    in_raw: bool,
    /// Element type of a raw IN; a big-endian spelling such as >f4 is accepted.
    #[arg(long, value_name = "DTYPE", allow_hyphen_values = true)]
    in_dtype: Option<String>,
    /// Shape of a raw IN (default: 1-D, from the file size; one -1 is inferred from it).
    #[arg(long, value_name = "R,C,...", allow_hyphen_values = true)]
    in_shape: Option<String>,
    /// Byte offset of the data in a raw IN (any value, as numpy.memmap allows; default 0).
    #[arg(long, value_name = "BYTES")]
    in_offset: Option<u64>,
    /// Memory order of a raw IN: C (row-major, the default) or F (Fortran, column-major).
    #[arg(long, value_enum, value_name = "C|F")]
    in_order: Option<OrderArg>,
    /// Replace an existing OUT (atomically), or discard a stale partial file.
    #[arg(long)]
    force: bool,
    /// .npy header of OUT: page (data at byte 4096) or compact (as np.save writes it).
    #[arg(long, value_enum, default_value_t = HeaderArg::Page)]
    npy_header: HeaderArg,
    #[command(flatten)]
    run: RunArgs,
}

fn parse_op(s: &str) -> std::result::Result<mmrun::kernels::reduce::Op, String> {
    s.parse().map_err(|e: Error| e.message().to_string())
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// One job summary (and a reduction's cross-rank result) from the ranks' --report files.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// The ranks' reports (one per rank, any order).
    #[arg(required = true, value_name = "REPORT")]
    reports: Vec<PathBuf>,
    /// Print the job summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Write a reduction's result to this new file (needed unless it is one number).
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Replace an existing OUT.
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CastingArg {
    No,
    Equiv,
    Safe,
    #[value(name = "same_kind")]
    SameKind,
    Unsafe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OrderArg {
    #[value(name = "C", alias = "c")]
    C,
    #[value(name = "F", alias = "f")]
    F,
}

#[derive(Debug, Args)]
struct CommitArgs {
    /// The target of the pending run.
    file: PathBuf,
    /// Do not take the journal lock (a file system without locks).
    #[arg(long)]
    no_lock: bool,
    /// Print what was published as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["value", "arange", "random"])))]
struct VerifyArgs {
    /// The file to check.
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// The value the file should hold everywhere.
    #[arg(long, allow_hyphen_values = true)]
    value: Option<String>,
    /// The file should hold np.arange(size).astype(dtype).
    #[arg(long)]
    arange: bool,
    /// The file should hold this random stream.
    #[arg(long, value_enum, requires = "seed")]
    random: Option<RandomArg>,
    /// Seed of the random stream.
    #[arg(long)]
    seed: Option<u128>,
    /// Only check these rows (Python slice A:B).
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    rows: Option<RowSlice>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct LayoutArgs {
    /// Shape, e.g. 10000,10000. With an existing .npy target this replaces it (needs --force).
    #[arg(long, value_name = "R,C,...", allow_hyphen_values = true)]
    shape: Option<String>,
    /// Element type, NumPy spelling: f4 float32 f8 f2 i1 i2 i4 i8 u1 u2 u4 u8 b1 (default f4).
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,
    /// Headerless file, as numpy.memmap reads it (beats .npy magic detection).
    #[arg(long)]
    raw: bool,
    /// Byte offset of the data in a raw file (any value, as numpy.memmap allows).
    #[arg(long, value_name = "BYTES", requires = "raw")]
    offset: Option<u64>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Number of worker processes, or auto (CPUs available; Slurm's CPUs per task in a step).
    #[arg(short = 'w', long, value_name = "N|auto", env = "MMRUN_DEFAULT_WORKERS", value_parser = parse_workers)]
    workers: Option<Workers>,
    /// Start workers by fork, or by re-executing mmrun.
    #[arg(long, value_enum, default_value_t = SpawnArg::Fork)]
    spawn: SpawnArg,
    /// full: fsync before publishing; none: leave it to the kernel.
    #[arg(long, value_enum, default_value_t = SyncArg::Full)]
    sync: SyncArg,
    /// How to reserve space before workers start.
    #[arg(long, value_enum, default_value_t = PreallocArg::Auto)]
    prealloc: PreallocArg,
    /// Align worker boundaries to this many bytes in the file.
    #[arg(long, value_name = "BYTES", default_value_t = mmrun::plan::LOCAL_ALIGN)]
    align: u64,
    /// Do not take the journal lock.
    #[arg(long)]
    no_lock: bool,
    /// Print the plan and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the run report as JSON on stdout (worker output goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also write the JSON run report to this file (created before the run).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Progress: a bar on a terminal (auto), always a bar, or never.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Pin worker N to the N-th CPU this process may use (wrapping around).
    #[arg(long)]
    pin: bool,
    /// Start a failed range again, up to K times.
    #[arg(long, value_name = "K", default_value_t = 0)]
    retries: u32,
    /// Stop the run (exit 1) when it has not finished after DUR (e.g. 10m).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL when stopping workers.
    #[arg(long, value_name = "DUR", value_parser = parse_duration, default_value = "10s")]
    kill_after: Duration,
    /// Stop all workers at the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Finish what an interrupted run of the same command left (new or in place).
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Work on an existing raw file in place: --raw --dtype --shape --offset describe it instead of building a new one.
    #[arg(long, conflicts_with = "force")]
    in_place: bool,
    /// Declare that running the work twice over the same rows is harmless, so in-place exec (and apply reading x) may be retried and resumed.
    #[arg(long)]
    idempotent: bool,
    /// Sync and record finished rows as durable this often (also on SIGUSR1).
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    checkpoint_every: Option<Duration>,
    /// static: one range per worker; dynamic: chunks of --chunk-rows claimed by free workers.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Static)]
    schedule: ScheduleArg,
    /// Rows per chunk with --schedule dynamic (default: about 8 MiB of rows).
    #[arg(long, value_name = "K")]
    chunk_rows: Option<u64>,
    /// Run as one rank of a pending distributed run (rank from the launcher or the options below).
    #[arg(long)]
    distributed: bool,
    /// This rank (0-based), with --ranks.
    #[arg(long, value_name = "R", requires_all = ["ranks", "distributed"], conflicts_with = "shard")]
    rank: Option<u64>,
    /// Number of ranks, with --rank.
    #[arg(long, value_name = "N", requires_all = ["rank", "distributed"])]
    ranks: Option<u64>,
    /// This rank as k/N (0-based), e.g. for a Slurm job array.
    #[arg(long, value_name = "k/N", requires = "distributed")]
    shard: Option<mmrun::distributed::Shard>,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The file to create.
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// Replace an existing file (atomically), or discard a stale partial file.
    #[arg(long)]
    force: bool,
    /// .npy header: page (data at byte 4096) or compact (as np.save writes it).
    #[arg(long, value_enum, default_value_t = HeaderArg::Page)]
    npy_header: HeaderArg,
    /// Do not take the journal lock.
    #[arg(long)]
    no_lock: bool,
    /// full: fsync before publishing; none: leave it to the kernel.
    #[arg(long, value_enum, default_value_t = SyncArg::Full)]
    sync: SyncArg,
    /// How to reserve space.
    #[arg(long, value_enum, default_value_t = PreallocArg::Auto)]
    prealloc: PreallocArg,
    /// Print what would be done and touch nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the run report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Leave the new file pending for ranks (--distributed) and mmrun commit.
    #[arg(long)]
    pending: bool,
}

#[derive(Debug, Args)]
struct InfoArgs {
    /// The file to describe.
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// Print a JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["value", "arange", "random"])))]
struct FillArgs {
    /// The file to fill; created when --shape is given, else filled in place.
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// One value everywhere, converted as NumPy converts a Python scalar.
    #[arg(long, allow_hyphen_values = true)]
    value: Option<String>,
    /// np.arange(size).astype(dtype).reshape(shape).
    #[arg(long)]
    arange: bool,
    /// Random numbers: uniform (NumPy's Generator(Philox(seed)).random) or normal.
    #[arg(long, value_enum)]
    random: Option<RandomArg>,
    /// Seed (non-negative, up to 128 bits); drawn from the OS and echoed if absent.
    #[arg(long)]
    seed: Option<u128>,
    /// Only these rows, as a Python slice A:B (negative and open ends allowed).
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    rows: Option<RowSlice>,
    /// Replace an existing file (with --shape), or discard a stale partial file.
    #[arg(long)]
    force: bool,
    /// .npy header of a new file: page (data at byte 4096) or compact (as np.save).
    #[arg(long, value_enum, default_value_t = HeaderArg::Page)]
    npy_header: HeaderArg,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// The file the workers write; created when --shape is given, else worked on in place.
    file: PathBuf,
    #[command(flatten)]
    layout: LayoutArgs,
    /// The job's seed (MMRUN_SEED); drawn from the OS and echoed if absent.
    #[arg(long)]
    seed: Option<u128>,
    /// Only these rows, as a Python slice A:B.
    #[arg(long, value_name = "A:B", allow_hyphen_values = true)]
    rows: Option<RowSlice>,
    /// Replace an existing file (with --shape), or discard a stale partial file.
    #[arg(long)]
    force: bool,
    /// .npy header of a new file: page (data at byte 4096) or compact (as np.save).
    #[arg(long, value_enum, default_value_t = HeaderArg::Page)]
    npy_header: HeaderArg,
    /// Keep launcher variables (OMPI_COMM_WORLD_*, PMI_*, PMIX_RANK, SLURM_PROCID).
    #[arg(long)]
    keep_launcher_env: bool,
    /// Pass worker output through without the [w<ID>] prefix.
    #[arg(long)]
    no_tag: bool,
    #[command(flatten)]
    run: RunArgs,
    /// PROGRAM and its ARGS; {file} {start} {end} {worker} {workers} {seed} are filled in.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    Static,
    Dynamic,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SpawnArg {
    Fork,
    Exec,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SyncArg {
    Full,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PreallocArg {
    Auto,
    Fallocate,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum HeaderArg {
    Page,
    Compact,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RandomArg {
    Uniform,
    Normal,
}

fn parse_workers(s: &str) -> std::result::Result<Workers, String> {
    if s == "auto" {
        return Ok(Workers::Auto);
    }
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(Workers::Count(n)),
        Err(_) => Err(format!("'{s}' is neither a positive integer nor auto")),
    }
}

impl From<SyncArg> for SyncMode {
    fn from(s: SyncArg) -> Self {
        match s {
            SyncArg::Full => SyncMode::Full,
            SyncArg::None => SyncMode::None,
        }
    }
}

impl From<PreallocArg> for Prealloc {
    fn from(p: PreallocArg) -> Self {
        match p {
            PreallocArg::Auto => Prealloc::Auto,
            PreallocArg::Fallocate => Prealloc::Fallocate,
            PreallocArg::None => Prealloc::None,
        }
    }
}

impl From<HeaderArg> for HeaderStyle {
    fn from(h: HeaderArg) -> Self {
        match h {
            HeaderArg::Page => HeaderStyle::Page,
            HeaderArg::Compact => HeaderStyle::Compact,
        }
    }
}

fn parse_dtype(s: &str) -> Result<DType> {
    s.parse()
        .map_err(|e: mmrun::layout::dtype::ParseDTypeError| Error::refused(e.to_string()))
}

impl LayoutArgs {
    /// The target described by these options.
    fn target(
        &self,
        file: &std::path::Path,
        force: bool,
        header: HeaderStyle,
        create_only: bool,
    ) -> Result<Target> {
        let dtype = self.dtype.as_deref().map(parse_dtype).transpose()?;
        let offset = self.offset.unwrap_or(0);
        let shape = match (self.shape.as_deref(), dtype) {
            // A raw file's shape may leave one entry (-1) to its size.
            (Some(text), Some(d)) if self.raw => Some(mmrun::layout::parse_shape_inferring(
                text,
                d.itemsize(),
                || mmrun::commands::raw_data_bytes(file, offset),
            )?),
            (text, _) => text.map(mmrun::layout::parse_shape).transpose()?,
        };
        let raw = if self.raw {
            let dtype = dtype
                .ok_or_else(|| Error::refused("--raw needs --dtype (a raw file has no header)"))?;
            Some(RawSpec {
                dtype,
                shape: shape.clone(),
                offset,
            })
        } else {
            None
        };
        let create = shape.map(|shape| NewFile {
            dtype: dtype.unwrap_or(DType::F32),
            shape,
            raw: self.raw,
            offset,
            header,
        });
        Ok(Target {
            path: file.to_path_buf(),
            expect_dtype: if create.is_none() { dtype } else { None },
            create,
            raw,
            force,
            create_only,
        })
    }
}

/// A runner as this command line uses it. The `mmrun` binary is
/// single-threaded; the Python package runs this same command line inside
/// its interpreter (src/python), which may have threads of its own.
fn hosted(runner: Runner) -> Runner {
    #[cfg(feature = "python")]
    // SAFETY: in the Python package the command runs on the thread that
    // holds the GIL, so no other Python thread runs in the interpreter when
    // workers fork, as for `os.fork` (see src/python/mod.rs).
    let runner = unsafe { runner.fork_with_threads() };
    runner
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    run_from(std::env::args_os())
}

/// Parses `args` (the program name first) and runs it: what the Python
/// package's `mmrun` command calls, whose process arguments are the
/// interpreter's.
pub fn run_from<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print and succeed.
            let _ = e.print();
            return Ok(());
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return Err(Error::refused("no command given"));
        }
        Err(e) => {
            // Usage errors are refusals like any other: one line, exit 2.
            return Err(Error::refused(usage_error_line(&e)));
        }
    };
    init_logging(&cli);
    if matches!(
        cli.command,
        Command::Info(_) | Command::Verify(_) | Command::Bench(_)
    ) {
        // They publish nothing: a stop signal may end them at any point.
        let _ = mmrun::os::unblock_stop_signals();
    }
    let outputs = JsonOutputs::of(&cli.command);
    let result = dispatch(cli.command);
    if let (Err(e), Some(outputs)) = (&result, outputs) {
        outputs.refused(e);
    }
    result
}

/// Runs one parsed command.
fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Info(a) => info(a),
        Command::Create(a) => create(a),
        Command::Fill(a) => fill(a),
        Command::Exec(a) => exec(a),
        Command::Verify(a) => verify(a),
        Command::Apply(a) => apply(a),
        Command::Reduce(a) => reduce(a),
        Command::Convert(a) => convert(a),
        Command::Bench(a) => bench(a),
        Command::Report(ReportCommand::Merge(a)) => merge_reports(a),
        Command::Commit(a) => {
            let done = mmrun::coordinator::commit::commit_with(&a.file, !a.no_lock)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&done).expect("json"));
            }
            note(&format!(
                "mmrun: published {} from {} rank(s)",
                done.path.display(),
                done.ranks
            ));
            Ok(())
        }
    }
}

/// clap's error as one line: its message with the lines clap puts under it
/// (the missing arguments' names, a tip) joined on, then where help is. The
/// usage block is left out: `--help` shows it.
fn usage_error_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut parts: Vec<&str> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if line.starts_with("tip: to pass '") && line.contains("use '-- ") {
            // `-- VALUE` only works for positional arguments; an option's
            // value that starts with '-' is written as --OPTION=VALUE.
            parts.push("tip: write an option's value that starts with '-' as --OPTION=VALUE");
            continue;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    let mut msg = parts.join(" ");
    if let Some(rest) = msg.strip_prefix("error: ") {
        msg = rest.to_string();
    }
    if msg.is_empty() {
        msg = "invalid usage".into();
    }
    // `mmrun reduce --help` when clap knows the subcommand, else `mmrun --help`.
    let sub = std::env::args().skip(1).find(|a| Cli::command_for_help(a));
    match sub {
        Some(sub) => format!("{msg} (see mmrun {sub} --help)"),
        None => format!("{msg} (see mmrun --help)"),
    }
}

impl Cli {
    /// Whether `name` is one of mmrun's commands.
    fn command_for_help(name: &str) -> bool {
        use clap::CommandFactory;
        Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == name && !c.is_hide_set())
    }
}

/// `-q`, or a log filter of `error`/`off`: nothing on stderr but errors.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// `--log-format json`: every stderr line is a JSON object.
static JSON_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether stderr lines are JSON objects (`--log-format json`).
pub fn json_log() -> bool {
    JSON_LOG.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints a line for people (a run's summary, a verdict) on stderr: as is,
/// as a JSON log line with `--log-format json`, not at all with `-q`.
fn note(text: &str) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if json_log() {
        tracing::info!(target: "mmrun::summary", "{text}");
    } else {
        eprintln!("{text}");
    }
}

/// Installs the one `tracing` subscriber (the library never does): level
/// from `MMRUN_LOG`/`RUST_LOG`, else `-v`/`-q`; text or JSON lines on stderr.
/// At the default level, progress lines off a terminal are shown too.
fn init_logging(cli: &Cli) {
    use std::sync::atomic::Ordering;
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let from_env = std::env::var("MMRUN_LOG")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()));
    let quiet = cli.quiet
        || from_env
            .as_deref()
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "error" | "off"));
    QUIET.store(quiet, Ordering::Relaxed);
    JSON_LOG.store(cli.log_format == LogFormat::Json, Ordering::Relaxed);
    let mut filter = EnvFilter::try_from_env("MMRUN_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(level));
    if !quiet {
        filter = filter.add_directive("mmrun::summary=info".parse().expect("directive"));
        if from_env.is_none() && cli.verbose == 0 {
            filter = filter.add_directive("mmrun::progress=info".parse().expect("directive"));
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn convert(a: ConvertArgs) -> Result<()> {
    use mmrun::commands::convert::{Conversion, ConvertInput, OutputOptions};
    let described = ConvertInput {
        raw: a.in_raw,
        dtype: a.in_dtype.clone(),
        shape: a.in_shape.clone(),
        offset: a.in_offset,
        fortran_order: a.in_order.map(|o| o == OrderArg::F),
    };
    let input = described.open(&a.input)?;
    let out_dtype = a.dtype.as_deref().map(parse_dtype).transpose()?;
    let options = OutputOptions {
        force: a.force,
        raw: a.raw,
        header: a.npy_header.into(),
        rank: a.run.distributed,
    };
    let job = Conversion::with_output(
        input,
        &a.output,
        out_dtype,
        a.casting.into(),
        a.strict,
        options,
    )?;
    let runner = a.run.runner(job.target())?;
    a.run.finish("convert", || job.run(runner))
}

impl From<CastingArg> for mmrun::kernels::convert::Casting {
    fn from(c: CastingArg) -> Self {
        use mmrun::kernels::convert::Casting;
        match c {
            CastingArg::No => Casting::No,
            CastingArg::Equiv => Casting::Equiv,
            CastingArg::Safe => Casting::Safe,
            CastingArg::SameKind => Casting::SameKind,
            CastingArg::Unsafe => Casting::Unsafe,
        }
    }
}

fn apply(a: ApplyArgs) -> Result<()> {
    use mmrun::commands::apply::ApplySpec;
    let input = a.layout.target(&a.file, false, HeaderStyle::Page, false)?;
    if input.create.is_some() && input.raw.is_none() {
        return Err(Error::refused(
            "apply works on an existing file: --shape only describes a raw file (with --raw)",
        ));
    }
    let spec = ApplySpec {
        expr: a.expr.clone(),
        rows: a.rows,
        cols: a.cols,
    };
    match &a.out {
        None => {
            let expect = input.expect_dtype.filter(|_| input.raw.is_none());
            spec.check_in_place(&a.file, expect, a.run.distributed)?;
            let target = Target {
                create: None,
                force: false,
                expect_dtype: None,
                ..input
            };
            let runner = a.run.runner(target)?;
            a.run.finish("apply", || spec.in_place(runner))
        }
        Some(out) => {
            let out_dtype = match &a.layout.dtype {
                Some(_) if input.raw.is_some() => None,
                Some(d) => Some(parse_dtype(d)?),
                None => None,
            };
            let job = spec.to_file(&a.file, input.raw.clone(), out_dtype)?;
            let out = Output {
                path: out.clone(),
                force: a.force,
                header: a.npy_header.into(),
            };
            // Ranks write their rows of an output made by `create --pending`.
            let runner = a.run.runner(job.target(&out, a.run.distributed))?;
            a.run.finish("apply", || job.run(runner))
        }
    }
}

fn reduce(a: ReduceArgs) -> Result<()> {
    use mmrun::commands::reduce::{check_distributed, Reduction};
    let input = a.layout.target(&a.file, false, HeaderStyle::Page, false)?;
    if input.create.is_some() && input.raw.is_none() {
        return Err(Error::refused(
            "reduce reads an existing file: --shape only describes a raw file (with --raw)",
        ));
    }
    let out_dtype = match &a.layout.dtype {
        Some(d) if input.raw.is_none() => Some(parse_dtype(d)?),
        _ => None,
    };
    let r = Reduction::open(&a.file, input.raw, a.op, &a.axis, a.ddof, out_dtype)?;
    let out = a.out.as_ref().map(|p| Output {
        path: p.clone(),
        force: a.force,
        header: a.npy_header.into(),
    });
    r.check_out(out.as_ref(), a.run.distributed)?;
    if a.run.distributed {
        check_distributed(&r, out.is_some(), a.run.report.is_some() || a.run.json)?;
    }
    let runner = a.run.runner(r.target(out.as_ref(), a.run.distributed)?)?;
    let mut printed: Option<String> = None;
    a.run.finish("reduce", || {
        let done = r.run(runner, out.as_ref())?;
        printed = done.text();
        Ok(done.summary)
    })?;
    if let (Some(p), false) = (printed, a.run.json) {
        println!("{p}");
    }
    if a.run.dry_run && !a.run.json {
        println!("  {}", r.output_text(a.out.as_deref()));
    }
    Ok(())
}

fn merge_reports(a: MergeArgs) -> Result<()> {
    use mmrun::commands::merge::merge_reports;
    use mmrun::report::merge::merged_text;
    let out = a.out.as_ref().map(|p| Output {
        path: p.clone(),
        force: a.force,
        header: HeaderStyle::Page,
    });
    let merged = merge_reports(&a.reports, out.as_ref(), |t| hosted(Runner::new(t)))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&merged.doc).expect("json")
        );
    }
    note(&merged_text(&merged));
    if !merged.problems.is_empty() {
        return Err(Error::failed(merged.problems.join("; ")));
    }
    if let (Some(m), None, false) = (&merged.reduce, &a.out, a.json) {
        println!(
            "{}",
            mmrun::commands::reduce::scalar_text(&m.values, m.params.out_dtype)
        );
    }
    Ok(())
}

fn fill_kind(
    value: &Option<String>,
    arange: bool,
    random: Option<RandomArg>,
    seed: Option<u128>,
) -> Result<FillKind> {
    Ok(match (value, arange, random) {
        (Some(v), _, _) => FillKind::Value { value: v.clone() },
        (_, true, _) => FillKind::Arange,
        (_, _, Some(r)) => {
            let seed = seed.ok_or_else(|| Error::refused("--random needs --seed"))?;
            match r {
                RandomArg::Uniform => FillKind::Uniform { seed },
                RandomArg::Normal => FillKind::Normal { seed },
            }
        }
        _ => return Err(Error::refused("give one of --value, --arange, --random")),
    })
}

fn verify(a: VerifyArgs) -> Result<()> {
    let target = a.layout.target(&a.file, false, HeaderStyle::Page, false)?;
    let kind = fill_kind(&a.value, a.arange, a.random, a.seed)?;
    let (layout, verdict) =
        mmrun::commands::verify::verify_file(&a.file, target.raw.as_ref(), kind, a.rows)?;
    if a.json {
        let doc = serde_json::json!({
            "schema_version": report::SCHEMA_VERSION,
            "file": a.file,
            "rows": verdict.rows,
            "ok": verdict.first_difference.is_none(),
            "first_row": verdict.first_difference.map(|d| d.0),
            "first_element": verdict.first_difference.map(|d| d.1),
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
    match verdict.first_difference {
        None => {
            note(&format!(
                "mmrun: {}: rows {} of {} {} match",
                a.file.display(),
                verdict.rows,
                layout.dtype,
                layout.shape_text()
            ));
            Ok(())
        }
        Some((row, element)) => Err(Error::failed(format!(
            "{}: row {row} differs (first at flat element {element})",
            a.file.display()
        ))),
    }
}

fn info(a: InfoArgs) -> Result<()> {
    let target = a.layout.target(&a.file, false, HeaderStyle::Page, false)?;
    let described = mmrun::commands::info::describe(&a.file, target.raw.as_ref())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&described.json()).expect("json")
        );
    } else {
        println!("{}", described.text());
    }
    Ok(())
}

fn create(a: CreateArgs) -> Result<()> {
    if a.layout.shape.is_none() {
        return Err(Error::refused(
            "create needs --shape (and --dtype; the default is f4)",
        ));
    }
    let target = a
        .layout
        .target(&a.file, a.force, a.npy_header.into(), true)?;
    let runner = Runner::new(target)
        .sync(a.sync.into())
        .prealloc(a.prealloc.into())
        .lock(!a.no_lock)
        .pending(a.pending)
        .dry_run(a.dry_run);
    let result = runner.run(|_| Ok(None));
    let late = result
        .as_ref()
        .ok()
        .and_then(|_| mmrun::os::take_pending_stop());
    report_outcome("create", &result, a.dry_run, a.json, None, late);
    result.map(|_| ())
}

fn fill(a: FillArgs) -> Result<()> {
    let target = a
        .layout
        .target(&a.file, a.force, a.npy_header.into(), false)?;
    let target = a.run.in_place(target)?;
    if a.run.distributed && a.random.is_some() && a.seed.is_none() {
        return Err(Error::refused(
            "--distributed --random needs --seed: every rank must draw the same stream",
        ));
    }
    // A random fill without --seed draws one, echoed in the summary (or
    // takes the one the interrupted run recorded, under --resume).
    let seed = match (a.random, a.seed) {
        (Some(_), None) => Some(mmrun::commands::seed::run_seed(
            &a.file,
            a.run.resume,
            None,
        )?),
        (Some(_), Some(s)) => Some(mmrun::commands::seed::run_seed(
            &a.file,
            a.run.resume,
            Some(s),
        )?),
        (None, _) => None,
    };
    let kind = fill_kind(&a.value, a.arange, a.random, seed)?;
    let runner = a.run.runner(target)?.rows(a.rows).seed(seed);
    a.run.finish("fill", || {
        runner.run(|layout| {
            let k: Box<dyn Kernel> = Box::new(Fill::new(kind, layout.dtype)?);
            Ok(Some(k))
        })
    })
}

fn exec(a: ExecArgs) -> Result<()> {
    let target = a
        .layout
        .target(&a.file, a.force, a.npy_header.into(), false)?;
    let target = a.run.in_place(target)?;
    if a.run.distributed && a.seed.is_none() {
        return Err(Error::refused(
            "exec --distributed needs --seed: every rank must pass its workers the same MMRUN_SEED",
        ));
    }
    let seed =
        mmrun::commands::seed::run_seed(&a.file, a.run.resume && !a.run.distributed, a.seed)?;
    let program = Program {
        argv: a.command.clone(),
        keep_launcher_env: a.keep_launcher_env,
        tag_output: !a.no_tag,
        stdout_to_stderr: a.run.json,
    };
    let runner = a.run.runner(target)?.rows(a.rows).seed(Some(seed));
    a.run.finish("exec", || runner.run_program(program))
}

impl RunArgs {
    /// `target` as `--in-place` asks: an existing raw file that the layout
    /// options describe, never a new one.
    fn in_place(&self, mut target: Target) -> Result<Target> {
        if !self.in_place {
            return Ok(target);
        }
        if target.raw.is_none() {
            return Err(Error::refused(
                "--in-place describes an existing raw file: add --raw (a .npy file is worked on in place when --shape is left out)",
            ));
        }
        if !target.path.exists() {
            return Err(Error::refused(format!(
                "{} does not exist: --in-place works on an existing file (leave it out to build one)",
                target.path.display()
            )));
        }
        target.expect_dtype = target.create.take().map(|n| n.dtype);
        Ok(target)
    }

    /// This rank under `--distributed` (from the options or the launcher).
    fn rank(&self) -> Result<Option<mmrun::distributed::Rank>> {
        if !self.distributed {
            return Ok(None);
        }
        let explicit = match (self.rank, self.ranks, self.shard) {
            (Some(r), Some(n), _) => Some((r, n)),
            (_, _, Some(s)) => Some((s.index, s.count)),
            _ => None,
        };
        Ok(Some(mmrun::distributed::detect(explicit, &|k| {
            std::env::var(k).ok()
        })?))
    }

    /// `--report`, with `{rank}` and `{ranks}` filled in for a rank, so
    /// one command line run by a launcher gives every rank its own file.
    fn report_path(&self) -> Result<Option<PathBuf>> {
        let Some(p) = &self.report else {
            return Ok(None);
        };
        let text = p.to_string_lossy();
        if !text.contains("{rank}") && !text.contains("{ranks}") {
            return Ok(Some(p.clone()));
        }
        let rank = self
            .rank()?
            .ok_or_else(|| Error::refused("--report with {rank} or {ranks} needs --distributed"))?;
        Ok(Some(PathBuf::from(
            text.replace("{rank}", &rank.rank.to_string())
                .replace("{ranks}", &rank.size.to_string()),
        )))
    }

    /// A runner on `target` with these options.
    fn runner(&self, target: Target) -> Result<Runner> {
        let rank = self.rank()?;
        if let Some(rank) = rank {
            tracing::info!("distributed: {rank}");
        }
        let schedule = match (self.schedule, self.chunk_rows) {
            (ScheduleArg::Static, None) => mmrun::coordinator::Schedule::Static,
            (ScheduleArg::Static, Some(_)) => {
                return Err(Error::refused("--chunk-rows needs --schedule dynamic"))
            }
            (ScheduleArg::Dynamic, Some(0)) => {
                return Err(Error::refused("--chunk-rows must be at least 1"))
            }
            (ScheduleArg::Dynamic, k) => mmrun::coordinator::Schedule::Dynamic {
                chunk_rows: k.unwrap_or(0),
            },
        };
        // Re-executed workers run this very binary as `mmrun __worker` (or
        // the Python package's launcher, named by MMRUN_WORKER_EXE).
        let exe = match std::env::var_os("MMRUN_WORKER_EXE").filter(|v| !v.is_empty()) {
            Some(p) => PathBuf::from(p),
            None => std::env::current_exe()
                .map_err(|e| Error::refused(format!("cannot find mmrun's own executable: {e}")))?,
        };
        Ok(hosted(Runner::new(target))
            .worker_exe(exe)
            .schedule(schedule)
            .distributed(rank)
            .workers(self.workers.unwrap_or(Workers::Auto))
            .spawn(self.spawn.into())
            .sync(self.sync.into())
            .prealloc(self.prealloc.into())
            .align(self.align)
            .lock(!self.no_lock)
            .dry_run(self.dry_run)
            .kill_after(self.kill_after)
            .retries(self.retries)
            .timeout(self.timeout)
            .fail_fast(self.fail_fast)
            .pin(self.pin)
            .resume(self.resume)
            .idempotent(self.idempotent)
            .checkpoint_every(self.checkpoint_every)
            .progress(match self.progress {
                ProgressArg::Auto => ProgressMode::Auto,
                ProgressArg::Always => ProgressMode::Always,
                ProgressArg::Never => ProgressMode::Never,
            }))
    }

    /// Runs `run` and reports its outcome: the JSON report (stdout and/or
    /// `--report`), the plan of a dry run, the human summary on stderr.
    /// Failed runs are reported too, with their error.
    fn finish(&self, command: &str, run: impl FnOnce() -> Result<RunSummary>) -> Result<()> {
        // A dry run touches nothing, --report's file included.
        let report_file = match self.report_path()?.filter(|_| !self.dry_run) {
            Some(p) => Some(
                File::create(&p).map_err(|e| Error::io_refused("cannot create report", &p, e))?,
            ),
            None => None,
        };
        let result = run();
        // The target is published: a stop signal that came during the final
        // sync or after it changes nothing but the report.
        let late = result
            .as_ref()
            .ok()
            .and_then(|_| mmrun::os::take_pending_stop());
        if let Some(sig) = late {
            eprintln!("mmrun: {sig} arrived after the work was done and published: exit 0");
        }
        report_outcome(command, &result, self.dry_run, self.json, report_file, late);
        result.map(|_| ())
    }
}

/// Set once a run's outcome was printed or written as JSON.
static OUTCOME_REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The JSON a refused command prints with `--json` and writes to
/// `--report`: what was refused and why; nothing else was written.
fn report_refusal(command: &str, e: &Error, json: bool, report_file: Option<File>) {
    OUTCOME_REPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
    if !json && report_file.is_none() {
        return;
    }
    let doc = report::refusal_json(command, e);
    let text = serde_json::to_string_pretty(&doc).expect("report serialises");
    if let Some(mut f) = report_file {
        let _ = writeln!(f, "{text}");
    }
    if json {
        println!("{text}");
    }
}

/// Where a command's outcome goes as JSON: its name, `--json`, `--report`'s
/// file (rank placeholders filled in); `None` for a dry run.
struct JsonOutputs {
    command: &'static str,
    json: bool,
    report: Option<PathBuf>,
}

impl JsonOutputs {
    fn of(command: &Command) -> Option<Self> {
        let (name, run) = match command {
            Command::Fill(a) => ("fill", &a.run),
            Command::Exec(a) => ("exec", &a.run),
            Command::Apply(a) => ("apply", &a.run),
            Command::Reduce(a) => ("reduce", &a.run),
            Command::Convert(a) => ("convert", &a.run),
            Command::Create(a) if !a.dry_run => {
                return Some(JsonOutputs {
                    command: "create",
                    json: a.json,
                    report: None,
                })
            }
            _ => return None,
        };
        if run.dry_run {
            return None;
        }
        Some(JsonOutputs {
            command: name,
            json: run.json,
            report: run.report_path().ok().flatten(),
        })
    }

    /// For a command refused before its run started (bad options, a
    /// missing input): the refusal as `--json` and `--report` ask, unless
    /// the run already reported its outcome.
    fn refused(self, e: &Error) {
        if OUTCOME_REPORTED.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let report_file = self.report.and_then(|p| File::create(p).ok());
        report_refusal(self.command, e, self.json, report_file);
    }
}

/// Prints the outcome of a run as the options ask.
fn report_outcome(
    command: &str,
    result: &Result<RunSummary>,
    dry_run: bool,
    json: bool,
    report_file: Option<File>,
    late: Option<nix::sys::signal::Signal>,
) {
    let summary = match result {
        Ok(s) => Some(s),
        Err(e) => e.summary(),
    };
    let Some(summary) = summary else {
        // Refused before a plan existed: the report still says so.
        if let Err(e) = result {
            report_refusal(command, e, json, report_file);
        }
        return;
    };
    OUTCOME_REPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
    let error = result.as_ref().err();
    if json || report_file.is_some() {
        let mut doc = report::run_json(command, summary, error);
        if let Some(sig) = late {
            doc["signal_after_publish"] = serde_json::json!({
                "signal": sig as i32,
                "name": mmrun::os::signal_name(sig as i32),
                "when": "after the workers finished: the target was published",
            });
        }
        let text = serde_json::to_string_pretty(&doc).expect("report serialises");
        if let Some(mut f) = report_file {
            let _ = writeln!(f, "{text}");
        }
        if json {
            println!("{text}");
        }
    }
    if dry_run && !json {
        print!("{}", report::plan_text(summary));
    }
    if !dry_run && error.is_none() {
        note(&report::summary_text(summary));
    }
}
