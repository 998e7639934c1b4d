//! Reductions through the library, the two ways mmrun runs them:
//!
//! - **Across rows** (`--axis all`, `--axis 0`): [`Runner::scan`] runs the
//!   [`Reduce`] kernel read-only in every worker; each hands back the
//!   partial results of its rows, and a [`Forest`] combines them in mmrun's
//!   fixed tree, so the value is the same to the bit for any worker count.
//! - **Per row** (`--axis rows`): [`Runner::run`] with
//!   [`Runner::input`] builds a new file with one result per input row;
//!   each worker reads its input rows and writes the same output rows.
//!
//! ```sh
//! cargo run --example reduction -- [FILE] [-w N] [--op sum|mean|min|max|std|var]
//! ```
//!
//! FILE defaults to `mmrun-reduction.npy` in the temporary directory; when
//! it does not exist it is filled with float32 uniform numbers (seed 7,
//! shape 4000×300). The per-row result goes to `FILE.rows.npy`. The
//! example prints the results and checks that the mean of the per-row
//! results and of the axis-0 results agree with the `all` result (for
//! `sum` and `mean`). The same numbers from NumPy:
//!
//! ```sh
//! python3 -c 'import numpy as np, sys; a = np.load(sys.argv[1]); print(a.mean(), a.mean(axis=0)[:4], a.mean(axis=1)[:4])' FILE
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mmrun::kernels::reduce::{Axis, Forest, Op, Reduce, ReduceParams, Value};
use mmrun::kernels::Kernel;
use mmrun::{DType, Error, Fill, FillKind, Layout, Runner, Target, Workers};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut workers = Workers::Auto;
    let mut op = Op::Mean;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-w" | "--workers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => workers = Workers::Count(n),
                None => return usage("-w needs a number"),
            },
            "--op" => match args.next().and_then(|o| o.parse().ok()) {
                Some(o) => op = o,
                None => return usage("--op is sum, mean, min, max, std or var"),
            },
            _ if file.is_none() && !a.starts_with('-') => file = Some(PathBuf::from(a)),
            _ => return usage(&format!("unexpected argument {a}")),
        }
    }
    let file = file.unwrap_or_else(|| std::env::temp_dir().join("mmrun-reduction.npy"));
    match run(&file, workers, op) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reduction: {e}");
            ExitCode::from(1)
        }
    }
}

/// The parameters of `op` over `axis` of the file `layout` describes, with
/// NumPy's result dtype.
fn params(layout: &Layout, op: Op, axis: Axis) -> ReduceParams {
    ReduceParams {
        op,
        axis,
        ddof: 0,
        dtype: layout.dtype,
        shape: layout.shape.clone(),
        out_dtype: op.result_dtype(layout.dtype),
        cols: None,
        pairs: false,
    }
}

/// Reduces across rows: workers scan, the forest combines their partials.
fn across_rows(file: &Path, workers: Workers, op: Op, axis: Axis) -> Result<Vec<Value>, Error> {
    let scanned = Runner::new(Target::existing(file))
        .workers(workers)
        .scan(|l| Ok(Box::new(Reduce::new(params(l, op, axis))?) as Box<dyn Kernel>))?;
    let mut forest = Forest::new(&params(&scanned.summary.layout, op, axis));
    for partials in &scanned.results {
        forest.insert_encoded(partials)?;
    }
    // `bytes` is the result in the output dtype (what `--out` would
    // publish); the values are the same numbers before that conversion.
    let (_bytes, values) = forest.finish()?;
    Ok(values)
}

fn as_f64(v: &Value) -> f64 {
    match *v {
        Value::F(x) => x,
        Value::I(i) => i as f64,
    }
}

fn run(file: &Path, workers: Workers, op: Op) -> Result<(), Error> {
    if !file.exists() {
        Runner::new(Target::new_npy(file, DType::F32, vec![4000, 300]))
            .workers(workers)
            .run(|l| {
                let fill = Fill::new(FillKind::Uniform { seed: 7 }, l.dtype)?;
                Ok(Some(Box::new(fill) as Box<dyn Kernel>))
            })?;
        println!("reduction: filled {} (uniform, seed 7)", file.display());
    }
    let name = op.name();

    let all = across_rows(file, workers, op, Axis::All)?;
    println!("{name} over all elements: {}", all[0]);
    let axis0 = across_rows(file, workers, op, Axis::Zero)?;
    let head: Vec<String> = axis0.iter().take(4).map(Value::to_string).collect();
    println!(
        "{name} over axis 0: {} values, first {}",
        axis0.len(),
        head.join(" ")
    );

    // Per row: a new file of one result per row, built like any other
    // output (beside the target, published when every worker succeeded).
    let mut f = File::open(file).map_err(|e| Error::io_failed("cannot open", file, e))?;
    let layout = Layout::read(file, &mut f, None)?;
    if !matches!(layout.dtype, DType::F32 | DType::F64) {
        return Err(Error::refused(format!(
            "{} holds {}: this example reads float32 or float64 files",
            file.display(),
            layout.dtype
        )));
    }
    let p = params(&layout, op, Axis::Rows);
    let out = PathBuf::from(format!("{}.rows.npy", file.display()));
    let mut target = Target::new_npy(&out, p.out_dtype, vec![layout.rows()]);
    target.force = true;
    Runner::new(target)
        .workers(workers)
        .input(file, None)
        .run(|_| Ok(Some(Box::new(Reduce::new(p.clone())?) as Box<dyn Kernel>)))?;
    let per_row = read_values(&out, p.out_dtype)?;
    let head: Vec<String> = per_row.iter().take(4).map(f64::to_string).collect();
    println!(
        "{name} of each row: {} values in {}, first {}",
        per_row.len(),
        out.display(),
        head.join(" ")
    );

    if matches!(op, Op::Sum | Op::Mean) {
        // The same total three ways; they differ only by rounding (the
        // per-row file holds float32 for a float32 input).
        let total = as_f64(&all[0]);
        let combine = |v: &mut dyn Iterator<Item = f64>, n: f64| {
            let s: f64 = v.sum();
            if op == Op::Mean {
                s / n
            } else {
                s
            }
        };
        let from_rows = combine(&mut per_row.iter().copied(), per_row.len() as f64);
        let from_cols = combine(&mut axis0.iter().map(as_f64), axis0.len() as f64);
        let close = |x: f64| (x - total).abs() <= 1e-5 * total.abs().max(1.0);
        println!(
            "  from the per-row results: {from_rows}\n  from the axis-0 results:  {from_cols}"
        );
        if !(close(from_rows) && close(from_cols)) {
            return Err(Error::failed("the three results disagree"));
        }
        println!("reduction: ok");
    }
    Ok(())
}

/// The elements of a 1-d float32 or float64 `.npy` file, as f64.
fn read_values(path: &Path, dtype: DType) -> Result<Vec<f64>, Error> {
    let mut f = File::open(path).map_err(|e| Error::io_failed("cannot open", path, e))?;
    let layout = Layout::read(path, &mut f, None)?;
    let mut bytes = vec![0u8; layout.data_bytes()? as usize];
    f.read_exact_at(&mut bytes, layout.data_offset)
        .map_err(|e| Error::io_failed("cannot read", path, e))?;
    let size = dtype.itemsize() as usize;
    Ok(bytes
        .chunks_exact(size)
        .map(|b| match dtype {
            DType::F32 => f32::from_le_bytes(b.try_into().unwrap()) as f64,
            _ => f64::from_le_bytes(b.try_into().unwrap()),
        })
        .collect())
}

fn usage(why: &str) -> ExitCode {
    eprintln!("reduction: {why}\nusage: reduction [FILE] [-w N] [--op sum|mean|min|max|std|var]");
    ExitCode::from(2)
}
