//! A user-defined [`Kernel`] run in place on an existing file, and proof
//! that its result does not depend on the worker count.
//!
//! `RowRamp { scale, step }` rewrites every element as
//! `x * scale + i * step`, where `i` is the element's *global* row index.
//! It has its own [`KernelSpec`] (its name and parameters as JSON, which is
//! what a registered kernel uses to cross `--spawn exec`; this one is not
//! registered, so it runs in forked workers), is generic over the float
//! dtypes through [`RowsMut<T>`], and says it reads the values it
//! overwrites, so mmrun refuses to retry or resume it in place.
//!
//! ```sh
//! cargo run --example custom_kernel -- [FILE] [-w N]
//! ```
//!
//! The example builds FILE (default `mmrun-custom_kernel.npy` in the
//! temporary directory) as `np.arange(R * C, dtype="f4").reshape(R, C)`,
//! copies it, runs the kernel in place with 1 worker on the copy and with N
//! workers (default 4) on FILE, and compares the two byte for byte. FILE
//! keeps the result; with NumPy:
//!
//! ```sh
//! python3 -c 'import numpy as np, sys; a = np.load(sys.argv[1]); r, c = a.shape; x = np.arange(r * c, dtype="f4").reshape(r, c); i = np.arange(r, dtype="f4")[:, None]; assert (a == x * np.float32(0.5) + i * np.float32(3)).all(); print("ok")' FILE
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mmrun::kernels::{AnyRowsMut, Kernel, KernelSpec, RowsMut};
use mmrun::{DType, Error, Fill, FillKind, Runner, Target, Workers};
use serde::{Deserialize, Serialize};

/// `x * scale + row * step`, in place.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RowRamp {
    scale: f64,
    step: f64,
}

/// The float types the kernel handles, converted from its f64 parameters.
trait Float: Copy + std::ops::Mul<Output = Self> + std::ops::Add<Output = Self> {
    fn from_f64(v: f64) -> Self;
}

impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl RowRamp {
    fn apply<T: Float>(&self, mut rows: RowsMut<'_, T>) {
        let scale = T::from_f64(self.scale);
        // The row index is global (`rows_mut` adds the block's first row),
        // so a row gets the same value in whichever worker and block it
        // lands.
        for (i, row) in rows.rows_mut() {
            let add = T::from_f64(i as f64) * T::from_f64(self.step);
            for v in row {
                *v = *v * scale + add;
            }
        }
    }
}

impl Kernel for RowRamp {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "row-ramp".into(),
            params: serde_json::to_value(self).expect("two floats serialise"),
        }
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> Result<(), String> {
        // One dispatch on the dtype per block, never per element.
        match rows {
            AnyRowsMut::F32(r) => self.apply(r),
            AnyRowsMut::F64(r) => self.apply(r),
            other => {
                return Err(format!(
                    "row-ramp needs float32 or float64, not {}",
                    other.dtype()
                ))
            }
        }
        Ok(())
    }

    fn reads_input(&self) -> bool {
        true
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut workers = 4usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-w" | "--workers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => workers = n,
                None => return usage("-w needs a number"),
            },
            _ if file.is_none() && !a.starts_with('-') => file = Some(PathBuf::from(a)),
            _ => return usage(&format!("unexpected argument {a}")),
        }
    }
    let file = file.unwrap_or_else(|| std::env::temp_dir().join("mmrun-custom_kernel.npy"));
    match run(&file, workers) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("custom_kernel: {e}");
            ExitCode::from(1)
        }
    }
}

/// Runs the kernel in place on `path` with `workers` workers.
fn ramp(path: &Path, workers: usize) -> Result<mmrun::RunSummary, Error> {
    let kernel = RowRamp {
        scale: 0.5,
        step: 3.0,
    };
    Runner::new(Target::existing(path))
        .workers(Workers::Count(workers))
        .run(|_| Ok(Some(Box::new(kernel) as Box<dyn Kernel>)))
}

fn run(file: &Path, workers: usize) -> Result<bool, Error> {
    // The starting array, built by mmrun's own fill kernel.
    let mut target = Target::new_npy(file, DType::F32, vec![3000, 700]);
    target.force = true;
    Runner::new(target)
        .workers(Workers::Count(workers))
        .run(|l| {
            Ok(Some(
                Box::new(Fill::new(FillKind::Arange, l.dtype)?) as Box<dyn Kernel>
            ))
        })?;
    let copy = file.with_extension("w1.npy");
    std::fs::copy(file, &copy).map_err(|e| Error::io_failed("cannot copy to", &copy, e))?;

    let one = ramp(&copy, 1)?;
    let many = ramp(file, workers)?;
    for s in [&one, &many] {
        let ranges: Vec<String> = s.workers.iter().map(|w| w.rows.to_string()).collect();
        println!(
            "custom_kernel: -w {}: rows {}, {:.3} s",
            s.workers.len(),
            ranges.join(" "),
            s.run_s
        );
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io_failed("cannot read", p, e));
    let (a, b) = (read(&copy)?, read(file)?);
    let _ = std::fs::remove_file(&copy);
    let same = a == b;
    println!(
        "custom_kernel: {} with 1 and with {workers} worker(s) ({} bytes): {}",
        file.display(),
        a.len(),
        if same { "identical" } else { "DIFFERENT" }
    );
    Ok(same)
}

fn usage(why: &str) -> ExitCode {
    eprintln!("custom_kernel: {why}\nusage: custom_kernel [FILE] [-w N]");
    ExitCode::from(2)
}
