//! `x * 2 + 1` in place on a float32 `.npy` (or raw) file, written as a
//! Rust closure and run through the library's [`Runner`]: the same
//! workers, blocks, mapping and writeback as `mmrun apply FILE --expr
//! 'x * 2 + 1'`, without the expression engine. It is the baseline the
//! end-to-end benchmark (`benches/e2e/run.py --suite apply`) holds
//! `mmrun apply` against, and an example of a library kernel.
//!
//! ```sh
//! cargo run --release --example closure_apply -- FILE [-w N] [--sync full|none]
//! ```
//!
//! The file must exist and hold float32 (make one with `mmrun fill FILE
//! --shape 10000,10000 --dtype f4 --random uniform`).

use std::process::ExitCode;

use mmrun::kernels::{AnyRowsMut, Kernel, KernelSpec};
use mmrun::{DType, Error, Runner, SyncMode, Target, Workers};

/// A kernel from any `f32 -> f32` function, applied element-wise.
struct MapF32<F>(F);

impl<F: Fn(f32) -> f32 + Send + Sync> Kernel for MapF32<F> {
    fn spec(&self) -> KernelSpec {
        // Only the exec spawn path rebuilds kernels from their spec; a
        // closure cannot cross it, so this run forks (the default).
        KernelSpec {
            name: "closure".into(),
            params: serde_json::Value::Null,
        }
    }

    fn run(&self, rows: AnyRowsMut<'_>) -> Result<(), String> {
        let AnyRowsMut::F32(mut rows) = rows else {
            return Err("this example works on float32 files".into());
        };
        for v in rows.as_mut_slice() {
            *v = (self.0)(*v);
        }
        Ok(())
    }

    // The kernel reads the old values: the worker must map the rows (and
    // load them into any staging buffer) rather than write fresh blocks.
    fn reads_input(&self) -> bool {
        true
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let mut workers = Workers::Auto;
    let mut sync = SyncMode::Full;
    while let Some(a) = args.next() {
        match a.as_str() {
            "-w" | "--workers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => workers = Workers::Count(n),
                None => return usage("-w needs a number"),
            },
            "--sync" => match args.next().as_deref() {
                Some("full") => sync = SyncMode::Full,
                Some("none") => sync = SyncMode::None,
                _ => return usage("--sync is full or none"),
            },
            _ if file.is_none() && !a.starts_with('-') => file = Some(a),
            _ => return usage(&format!("unexpected argument {a}")),
        }
    }
    let Some(file) = file else {
        return usage("no FILE given");
    };
    let runner = Runner::new(Target::existing(&file))
        .workers(workers)
        .sync(sync);
    let result = runner.run(|layout| {
        if layout.dtype != DType::F32 {
            return Err(Error::refused(format!(
                "{file} holds {}, this example needs float32",
                layout.dtype
            )));
        }
        Ok(Some(
            Box::new(MapF32(|x: f32| x * 2.0 + 1.0)) as Box<dyn Kernel>
        ))
    });
    match result {
        Ok(s) => {
            eprintln!(
                "closure_apply: {file}: {} bytes by {} worker(s) in {:.3} s (run {:.3} s, flush {:.3} s)",
                s.bytes,
                s.workers.len(),
                s.prepare_s + s.run_s + s.flush_s,
                s.run_s,
                s.flush_s
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("closure_apply: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("closure_apply: {why}\nusage: closure_apply FILE [-w N] [--sync full|none]");
    ExitCode::from(2)
}
