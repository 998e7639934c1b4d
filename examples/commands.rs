//! Every `mmrun` command as a library call ([`mmrun::commands`]), on small
//! files in a temporary directory, each result checked:
//!
//! ```sh
//! cargo run --example commands
//! ```
//!
//! `fill` and `create` are a [`Runner`] with a kernel or none; `reduce
//! --axis 0 --out`, `reduce --axis all`, `apply --out` with the output
//! typed as NumPy types it, `convert`, `verify`, `info`, `create --pending`
//! + ranks + `commit`, and `report merge` of two ranks' reduction reports.

use std::path::Path;
use std::process::ExitCode;

use mmrun::commands::apply::ApplySpec;
use mmrun::commands::convert::{Conversion, ConvertInput};
use mmrun::commands::info::{describe, Description};
use mmrun::commands::merge::merge_reports;
use mmrun::commands::reduce::{scalar_text, Reduction};
use mmrun::commands::verify::verify_file;
use mmrun::commands::Output;
use mmrun::coordinator::commit::commit_with;
use mmrun::distributed::Rank;
use mmrun::kernels::convert::Casting;
use mmrun::kernels::reduce::Op;
use mmrun::{DType, Fill, FillKind, Kernel, Layout, Runner, Target, Workers};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("commands: {e}");
            ExitCode::from(1)
        }
    }
}

/// The data of `path`, as its layout says.
fn data(path: &Path) -> Result<(Layout, Vec<u8>)> {
    let mut f = std::fs::File::open(path)?;
    let layout = Layout::read(path, &mut f, None)?;
    let bytes = std::fs::read(path)?;
    Ok((
        layout.clone(),
        bytes[layout.data_offset as usize..].to_vec(),
    ))
}

fn arange(layout: &Layout) -> mmrun::Result<Option<Box<dyn Kernel>>> {
    Ok(Some(Box::new(Fill::new(FillKind::Arange, layout.dtype)?)))
}

fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let x = dir.path().join("x.npy");

    // mmrun fill x.npy --shape 1000,64 --dtype f4 --arange -w 4
    Runner::new(Target::new_npy(&x, DType::F32, vec![1000, 64]))
        .workers(Workers::Count(4))
        .run(arange)?;

    // mmrun reduce x.npy --op sum --axis 0 --out sums.npy
    let sums = Output::new(dir.path().join("sums.npy"));
    let r = Reduction::open(&x, None, Op::Sum, "0", 0, None)?;
    r.run(
        Runner::new(r.target(Some(&sums), false)?).workers(Workers::Count(3)),
        Some(&sums),
    )?;
    let (layout, bytes) = data(&sums.path)?;
    assert_eq!((layout.dtype, layout.shape.clone()), (DType::F32, vec![64]));
    // Column 0 is 0 + 64 + 128 + … = 64 * (0 + 1 + … + 999).
    assert_eq!(f32::from_le_bytes(bytes[..4].try_into()?), 64.0 * 499_500.0);
    println!("reduce --axis 0 --out: {} {:?}", layout.dtype, layout.shape);

    // mmrun reduce x.npy --op mean --axis all: one number, as NumPy prints it.
    let r = Reduction::open(&x, None, Op::Mean, "all", 0, None)?;
    let mean = r.run(Runner::new(r.target(None, false)?), None)?;
    assert_eq!(mean.text().as_deref(), Some("31999.5"));
    println!("reduce --axis all: {}", mean.text().unwrap_or_default());

    // mmrun apply x.npy --expr 'x > 500' --out big.npy: NumPy types it bool.
    let job = ApplySpec::new("x > 500").to_file(&x, None, None)?;
    assert_eq!(job.out_dtype, DType::Bool);
    let big = Output::new(dir.path().join("big.npy"));
    let target = job.target(&big, false);
    job.run(Runner::new(target))?;
    let (_, bytes) = data(&big.path)?;
    assert_eq!(bytes.iter().filter(|&&b| b == 1).count(), 64_000 - 501);
    println!("apply --out: bool, {} true", 64_000 - 501);

    // mmrun convert x.npy x16.npy --dtype i2
    let x16 = dir.path().join("x16.npy");
    let input = ConvertInput::default().open(&x)?;
    let conversion = Conversion::new(input, &x16, Some(DType::I16), Casting::Unsafe, false)?;
    let target = conversion.target();
    conversion.run(Runner::new(target))?;
    let (layout, bytes) = data(&x16)?;
    assert_eq!(layout.dtype, DType::I16);
    assert_eq!(i16::from_le_bytes(bytes[2 * 300..][..2].try_into()?), 300);
    println!("convert: {}", layout.dtype);

    // mmrun verify x.npy --arange
    let (_, verdict) = verify_file(&x, None, FillKind::Arange, None)?;
    assert_eq!(verdict.first_difference, None);
    println!("verify: rows {} match", verdict.rows);

    // mmrun info x.npy
    let described = describe(&x, None)?;
    assert!(matches!(described, Description::Array { .. }));
    println!("info: {}", described.text());

    // mmrun create --pending p.npy, two ranks fill it, mmrun commit p.npy
    let p = dir.path().join("p.npy");
    Runner::new(Target::new_npy(&p, DType::U8, vec![256, 1024]))
        .pending(true)
        .run(|_| Ok(None))?;
    for rank in 0..2 {
        let me = Rank {
            rank,
            size: 2,
            source: "example",
        };
        Runner::new(Target::existing(&p))
            .distributed(Some(me))
            .run(arange)?;
    }
    let done = commit_with(&p, true)?;
    assert_eq!(done.ranks, 2);
    assert_eq!(
        verify_file(&p, None, FillKind::Arange, None)?
            .1
            .first_difference,
        None
    );
    println!("commit: {} from {} ranks", done.path.display(), done.ranks);

    // Two ranks reduce x.npy --axis all --distributed --report rank{rank}.json,
    // then mmrun report merge rank0.json rank1.json.
    let r = Reduction::open(&x, None, Op::Mean, "all", 0, None)?;
    let mut reports = Vec::new();
    for rank in 0..2 {
        let me = Rank {
            rank,
            size: 2,
            source: "example",
        };
        let runner = Runner::new(r.target(None, true)?).distributed(Some(me));
        let part = r.run(runner, None)?;
        let path = dir.path().join(format!("rank{rank}.json"));
        let doc = mmrun::report::run_json("reduce", &part.summary, None);
        std::fs::write(&path, serde_json::to_string(&doc)?)?;
        reports.push(path);
    }
    let merged = merge_reports(&reports, None, Runner::new)?;
    let m = merged.reduce.as_ref().ok_or("no merged reduction")?;
    assert!(merged.problems.is_empty(), "{:?}", merged.problems);
    // The same bits as the local run: the tree does not depend on ranks.
    let text = scalar_text(&m.values, m.params.out_dtype);
    assert_eq!(Some(text.clone()), mean.text());
    println!("report merge: {text}");
    Ok(())
}
