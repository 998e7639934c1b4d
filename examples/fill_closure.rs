//! Fill a new `.npy` file from a Rust closure with [`Runner`] and
//! [`mmrun::kernels::from_fn`]: `out[i, j] = i * cols + j` as float64 (the
//! same bytes as `np.arange(rows * cols, dtype="f8").reshape(rows, cols)`),
//! then read a few elements back through the file's header and check them.
//!
//! ```sh
//! cargo run --example fill_closure -- [FILE] [-w N] [--shape R,C]
//! ```
//!
//! FILE defaults to `mmrun-fill_closure.npy` in the temporary directory and
//! is replaced if it exists. The closure computes each element from its
//! *global* row index (`rows_mut` yields it), so the file is the same
//! whatever `-w` is. Check it with NumPy:
//!
//! ```sh
//! python3 -c 'import numpy as np, sys; a = np.load(sys.argv[1]); assert (a == np.arange(a.size).reshape(a.shape)).all(); print("ok")' FILE
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::ExitCode;

use mmrun::kernels::{from_fn, AnyRowsMut, Kernel};
use mmrun::{DType, Error, Layout, Runner, Target, Workers};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut workers = Workers::Auto;
    let mut shape = vec![2000u64, 500];
    while let Some(a) = args.next() {
        match a.as_str() {
            "-w" | "--workers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => workers = Workers::Count(n),
                None => return usage("-w needs a number"),
            },
            "--shape" => match args
                .next()
                .and_then(|s| mmrun::layout::parse_shape(&s).ok())
            {
                Some(s) if s.len() == 2 => shape = s,
                _ => return usage("--shape is R,C"),
            },
            _ if file.is_none() && !a.starts_with('-') => file = Some(PathBuf::from(a)),
            _ => return usage(&format!("unexpected argument {a}")),
        }
    }
    let file = file.unwrap_or_else(|| std::env::temp_dir().join("mmrun-fill_closure.npy"));
    match run(&file, workers, shape) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fill_closure: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(file: &PathBuf, workers: Workers, shape: Vec<u64>) -> Result<(), Error> {
    let cols = shape[1];
    // Every element is a function of its global position: no worker id,
    // no per-worker counter, so the bytes do not depend on the split.
    let kernel = from_fn(move |rows: AnyRowsMut<'_>| {
        let AnyRowsMut::F64(mut rows) = rows else {
            return Err("this example writes float64".into());
        };
        for (i, row) in rows.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (i * cols + j as u64) as f64;
            }
        }
        Ok(())
    })
    // It writes every element without reading any: a retried range
    // (`Runner::retries`) would be safe.
    .overwrites();

    let mut target = Target::new_npy(file, DType::F64, shape);
    target.force = true;
    let summary = Runner::new(target)
        .workers(workers)
        .run(|_| Ok(Some(Box::new(kernel) as Box<dyn Kernel>)))?;
    println!(
        "fill_closure: wrote {} ({} bytes, shape {}) with {} worker(s) in {:.3} s",
        file.display(),
        summary.bytes,
        summary.layout.shape_text(),
        summary.workers.len(),
        summary.prepare_s + summary.run_s + summary.flush_s
    );

    // Read back through the header, as any reader of the file would.
    let mut f = File::open(file).map_err(|e| Error::io_failed("cannot open", file, e))?;
    let layout = Layout::read(file, &mut f, None)?;
    let (rows, cols) = (layout.shape[0], layout.shape[1]);
    for (i, j) in [(0, 0), (1, 2), (rows / 2, cols / 3), (rows - 1, cols - 1)] {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, layout.data_offset + (i * cols + j) * 8)
            .map_err(|e| Error::io_failed("cannot read", file, e))?;
        let got = f64::from_le_bytes(b);
        let want = (i * cols + j) as f64;
        println!("  out[{i}, {j}] = {got} (expected {want})");
        if got != want {
            return Err(Error::failed(format!("out[{i}, {j}] is {got}, not {want}")));
        }
    }
    println!("fill_closure: ok");
    Ok(())
}

fn usage(why: &str) -> ExitCode {
    eprintln!("fill_closure: {why}\nusage: fill_closure [FILE] [-w N] [--shape R,C]");
    ExitCode::from(2)
}
