//! Command-line definitions (clap) and their mapping to library calls.
//!
//! This module belongs to the binary only: the library never sees a clap
//! type. Raw arguments are parsed into the `*Args` structs, then turned into
//! a [`mmrun::Runner`] and kernel; everything the library refuses comes back
//! as an [`mmrun::Error`] whose kind decides the exit code.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mmrun::coordinator::{NewFile, Program, RunSummary};
use mmrun::{
    report, DType, Error, Fill, FillKind, HeaderStyle, Kernel, Layout, Prealloc, RawSpec, Result,
    RowSlice, Runner, Spawn, SyncMode, Target, Workers,
};

/// Run parallel computations over one shared memory-mapped array file.
#[derive(Debug, Parser)]
#[command(name = "mmrun", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

#[derive(Debug, Args)]
struct LayoutArgs {
    /// Shape, e.g. 10000,10000. With an existing .npy target this replaces it (needs --force).
    #[arg(long, value_name = "R,C,...")]
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
        let shape = self
            .shape
            .as_deref()
            .map(mmrun::layout::parse_shape)
            .transpose()?;
        let offset = self.offset.unwrap_or(0);
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

fn draw_seed() -> Result<u128> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| Error::refused(format!("cannot draw a seed from the OS: {e}")))?;
    Ok(u128::from_le_bytes(b))
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let cli = match Cli::try_parse() {
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
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            return Err(Error::refused(format!("{first} (see mmrun --help)")));
        }
    };
    match cli.command {
        Command::Info(a) => info(a),
        Command::Create(a) => create(a),
        Command::Fill(a) => fill(a),
        Command::Exec(a) => exec(a),
    }
}

fn info(a: InfoArgs) -> Result<()> {
    let target = a.layout.target(&a.file, false, HeaderStyle::Page, false)?;
    let mut file = File::open(&a.file).map_err(|e| Error::io_refused("cannot open", &a.file, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io_refused("cannot stat", &a.file, e))?;
    if meta.is_dir() {
        return Err(Error::refused(format!(
            "{} is a directory",
            a.file.display()
        )));
    }
    let layout = Layout::read(&a.file, &mut file, target.raw.as_ref())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::info_json(&a.file, &layout, meta.len()))
                .expect("json")
        );
    } else {
        println!("{}", report::info_text(&a.file, &layout, meta.len()));
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
        .dry_run(a.dry_run);
    let summary = runner.run(|_| Ok(None))?;
    print_outcome("create", &summary, a.dry_run, a.json);
    Ok(())
}

fn fill(a: FillArgs) -> Result<()> {
    let target = a
        .layout
        .target(&a.file, a.force, a.npy_header.into(), false)?;
    let (kind, seed) = match (&a.value, a.arange, a.random) {
        (Some(v), _, _) => (FillKind::Value { value: v.clone() }, None),
        (_, true, _) => (FillKind::Arange, None),
        (_, _, Some(r)) => {
            let seed = match a.seed {
                Some(s) => s,
                None => draw_seed()?,
            };
            let kind = match r {
                RandomArg::Uniform => FillKind::Uniform { seed },
                RandomArg::Normal => FillKind::Normal { seed },
            };
            (kind, Some(seed))
        }
        _ => {
            return Err(Error::refused(
                "fill needs one of --value, --arange, --random",
            ))
        }
    };
    let runner = a.run.runner(target).rows(a.rows).seed(seed);
    let summary = runner.run(|layout| {
        let k: Box<dyn Kernel> = Box::new(Fill::new(kind, layout.dtype)?);
        Ok(Some(k))
    })?;
    a.run.finish("fill", &summary);
    Ok(())
}

fn exec(a: ExecArgs) -> Result<()> {
    let target = a
        .layout
        .target(&a.file, a.force, a.npy_header.into(), false)?;
    let seed = match a.seed {
        Some(s) => s,
        None => draw_seed()?,
    };
    let program = Program {
        argv: a.command.clone(),
        keep_launcher_env: a.keep_launcher_env,
        tag_output: !a.no_tag,
        stdout_to_stderr: a.run.json,
    };
    let runner = a.run.runner(target).rows(a.rows).seed(Some(seed));
    let summary = runner.run_program(program)?;
    a.run.finish("exec", &summary);
    Ok(())
}

impl RunArgs {
    /// A runner on `target` with these options.
    fn runner(&self, target: Target) -> Runner {
        Runner::new(target)
            .workers(self.workers.unwrap_or(Workers::Auto))
            .spawn(match self.spawn {
                SpawnArg::Fork => Spawn::Fork,
                SpawnArg::Exec => Spawn::Exec,
            })
            .sync(self.sync.into())
            .prealloc(self.prealloc.into())
            .align(self.align)
            .lock(!self.no_lock)
            .dry_run(self.dry_run)
            .kill_after(Duration::from_secs(10))
    }

    /// Prints what a finished run reports: the plan of a dry run, the JSON
    /// report, and the human summary on stderr.
    fn finish(&self, command: &str, summary: &RunSummary) {
        print_outcome(command, summary, self.dry_run, self.json);
    }
}

fn print_outcome(command: &str, summary: &RunSummary, dry_run: bool, json: bool) {
    if json {
        let doc = report::run_json(command, summary);
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("report serialises")
        );
    } else if dry_run {
        print!("{}", report::plan_text(summary));
    }
    if !dry_run {
        eprintln!("{}", report::summary_text(summary));
    }
}
