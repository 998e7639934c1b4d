//! What the expression engine costs against the same arithmetic written in
//! Rust: `x * 2 + 1` on one worker block of float32 (~1 MiB, the block a
//! worker hands a kernel), in place and into another buffer, through the
//! engine directly (`Compiled::eval_in_place` / `eval_into`), through the
//! `Apply` kernel as workers call it, and as a plain closure over
//! `&mut [f32]` and a `Kernel` impl. Throughput is bytes of x per second
//! on one core. The end-to-end pair (`mmrun apply` against
//! `examples/closure_apply.rs` on a 400 MB file) is in `benches/e2e`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mmrun::expr::{Column, ColumnMut, Expr};
use mmrun::kernels::apply::ApplyParams;
use mmrun::kernels::{AnyRowsMut, Apply, Kernel, KernelSpec, RowsMut};
use mmrun::{DType, RowRange};

/// Rows of a 10000-column float32 file in one worker block: the worker
/// takes `1 MiB / row bytes` rows (26 here, 1.04 MB).
const COLS: usize = 10_000;
const ROWS: usize = (1 << 20) / (COLS * 4);
const N: usize = ROWS * COLS;
const EXPR: &str = "x * 2 + 1";

/// The closure baseline as a kernel, as a library user would write it.
struct Closure;

impl Kernel for Closure {
    fn spec(&self) -> KernelSpec {
        KernelSpec {
            name: "closure".into(),
            params: serde_json::Value::Null,
        }
    }
    fn run(&self, rows: AnyRowsMut<'_>) -> Result<(), String> {
        let AnyRowsMut::F32(mut r) = rows else {
            return Err("f32 only".into());
        };
        r.as_mut_slice()
            .iter_mut()
            .for_each(|v| *v = *v * 2.0 + 1.0);
        Ok(())
    }
    fn reads_input(&self) -> bool {
        true
    }
}

/// Values that stay finite and normal however often `x * 2 + 1` runs on
/// them (each iteration restarts from them), so no run hits slow paths the
/// other does not.
fn input() -> Vec<f32> {
    (0..N).map(|i| (i % 1000) as f32 / 1000.0).collect()
}

fn apply(c: &mut Criterion) {
    let shape = [10_000u64, COLS as u64];
    let compiled = Expr::parse(EXPR)
        .unwrap()
        .compile(DType::F32, &shape)
        .unwrap();
    let kernel = Apply::new(
        ApplyParams {
            expr: EXPR.into(),
            x_dtype: DType::F32,
            shape: shape.to_vec(),
            rows: RowRange::new(0, shape[0]),
            cols: None,
        },
        DType::F32,
    )
    .unwrap();
    let x = input();
    let mut data = x.clone();
    let mut out = vec![0f32; N];
    let mut scratch = compiled.new_scratch(N);

    let mut g = c.benchmark_group("apply/f32/x*2+1/1MiB");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    // In place: each iteration copies x back first (a memcpy of 1 MiB in
    // cache, the same for every contender) so values stay as above.
    g.bench_function("engine/eval_in_place", |b| {
        b.iter(|| {
            data.copy_from_slice(&x);
            compiled
                .eval_in_place(ColumnMut::F32(&mut data), 0, &mut scratch)
                .unwrap()
        })
    });
    g.bench_function("kernel/Apply::run", |b| {
        b.iter(|| {
            data.copy_from_slice(&x);
            kernel
                .run(AnyRowsMut::F32(RowsMut::new(&mut data, 0, COLS as u64)))
                .unwrap()
        })
    });
    g.bench_function("closure/in_place", |b| {
        b.iter(|| {
            data.copy_from_slice(&x);
            for v in black_box(&mut data[..]) {
                *v = *v * 2.0 + 1.0;
            }
        })
    });
    g.bench_function("closure/Kernel::run", |b| {
        b.iter(|| {
            data.copy_from_slice(&x);
            Closure
                .run(AnyRowsMut::F32(RowsMut::new(&mut data, 0, COLS as u64)))
                .unwrap()
        })
    });
    // Into another buffer (`apply --out`): no copy needed.
    g.bench_function("engine/eval_into", |b| {
        b.iter(|| {
            compiled
                .eval_into(Column::F32(&x), 0, ColumnMut::F32(&mut out), &mut scratch)
                .unwrap()
        })
    });
    g.bench_function("closure/into", |b| {
        b.iter(|| {
            for (o, v) in black_box(&mut out[..]).iter_mut().zip(&x) {
                *o = *v * 2.0 + 1.0;
            }
        })
    });
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
