//! Micro-benchmarks of what a worker spends its CPU on: the random streams
//! (reported as bytes per second on one core) and the fill kernel over one
//! cache-sized block, the row reductions, plus the planner.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::f16;
use mmrun::kernels::{AnyRowsMut, Fill, FillKind, Kernel, RowsMut};
use mmrun::plan::{Plan, RowRange};
use mmrun::rng::{philox, Backend, Philox};
use mmrun::DType;

const BLOCK_BYTES: usize = 1 << 20;

/// Every stream once per block-function backend this CPU can run, so the
/// ids end in `/scalar` or `/avx2` and the two can be compared in one run.
fn rng(c: &mut Criterion) {
    let mut group = c.benchmark_group("rng");
    group.throughput(Throughput::Bytes(BLOCK_BYTES as u64));
    let mut f32s = vec![0f32; BLOCK_BYTES / 4];
    let mut f64s = vec![0f64; BLOCK_BYTES / 8];
    let mut f16s = vec![f16::ZERO; BLOCK_BYTES / 2];
    let mut u8s = vec![0u8; BLOCK_BYTES];
    for backend in Backend::available() {
        let g = Philox::new(42).with_backend(backend);
        let name = backend.name();
        // The block function alone, in the 16-block batches the fills use.
        let mut blocks = vec![[0u64; 4]; BLOCK_BYTES / 32];
        group.bench_function(format!("blocks/1MiB/{name}"), |b| {
            b.iter(|| {
                for (i, batch) in blocks.chunks_mut(16).enumerate() {
                    philox::generate_blocks_with(backend, g.key(), 386 + 16 * i as u64, batch);
                }
            })
        });
        group.bench_function(format!("uniform/f32/1MiB/{name}"), |b| {
            b.iter(|| g.fill_uniform_f32(12_345, &mut f32s))
        });
        group.bench_function(format!("uniform/f64/1MiB/{name}"), |b| {
            b.iter(|| g.fill_uniform_f64(12_345, &mut f64s))
        });
        group.bench_function(format!("normal/f64/1MiB/{name}"), |b| {
            b.iter(|| g.fill_normal_f64(12_345, &mut f64s))
        });
        group.bench_function(format!("uniform/f16/1MiB/{name}"), |b| {
            b.iter(|| g.fill_uniform_f16(12_345, &mut f16s))
        });
        group.bench_function(format!("raw/u1/1MiB/{name}"), |b| {
            b.iter(|| g.fill_int(12_345, &mut u8s))
        });
    }
    group.finish();
}

fn fill_kernel(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernel/fill");
    group.throughput(Throughput::Bytes(BLOCK_BYTES as u64));
    let mut data = vec![0f32; BLOCK_BYTES / 4];
    for (name, kind) in [
        ("value", FillKind::Value { value: "1".into() }),
        ("arange", FillKind::Arange),
        ("uniform", FillKind::Uniform { seed: 1 }),
    ] {
        let k = Fill::new(kind, DType::F32).unwrap();
        group.bench_with_input(BenchmarkId::new(name, "f32/1MiB"), &k, |b, k| {
            b.iter(|| {
                k.run(AnyRowsMut::F32(RowsMut::new(&mut data, 100, 1000)))
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// What progress and the journal add to a run: one counter store per block
/// (a block is ~1 MiB of rows, ~0.3–0.6 ms of fill) and one journal append
/// at most every 0.5 s.
fn bookkeeping(c: &mut Criterion) {
    let region = mmrun::os::progress::ProgressRegion::create(4).unwrap();
    let mut n = 0u64;
    c.bench_function("progress/store-per-block", |b| {
        b.iter(|| {
            n += 1;
            region.store(1, n)
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("bench.npy");
    let owner = mmrun::journal::Owner::this_process("bench".into());
    let (mut journal, _) =
        mmrun::journal::Journal::acquire(&target, &owner, true, mmrun::journal::Stale::Refuse)
            .unwrap();
    let ranges = [
        RowRange::new(0, 5000),
        RowRange::new(6000, 9000),
        RowRange::new(10_000, 12_000),
    ];
    c.bench_function("journal/record-written", |b| {
        b.iter(|| journal.record_written(&ranges).unwrap())
    });
    journal.remove().unwrap();
}

/// Row reductions on one 1 MiB block of float32 rows (64 rows of 4096):
/// per-row means into an output block (`--axis 1`), and the dyadic-tree
/// scan of `--axis all` and `--axis 0` (leaves, merges and node stack).
fn reduce_kernel(c: &mut Criterion) {
    use mmrun::kernels::reduce::{Axis, Op, Reduce, ReduceParams};
    use mmrun::kernels::RowsIn;
    let (rows, cols) = (64u64, 4096u64);
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| (i % 1000) as f32 * 0.001)
        .collect();
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let input = RowsIn {
        bytes,
        dtype: DType::F32,
        first_row: 0,
        row_len: cols,
    };
    let params = |op, axis| ReduceParams {
        op,
        axis,
        ddof: 0,
        dtype: DType::F32,
        shape: vec![rows, cols],
        out_dtype: DType::F32,
        cols: None,
        pairs: false,
    };
    let mut group = c.benchmark_group("kernel/reduce");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    let k = Reduce::new(params(Op::Mean, Axis::Inner { axis: 1, extra: 0 })).unwrap();
    let mut out = vec![0f32; rows as usize];
    group.bench_function("mean-axis1/f32/1MiB", |b| {
        b.iter(|| {
            let o = AnyRowsMut::from_bytes(DType::F32, bytemuck::cast_slice_mut(&mut out), 0, 1);
            k.run_io(input, o).unwrap()
        })
    });
    for (name, op, axis) in [
        ("mean-all/f32/1MiB", Op::Mean, Axis::All),
        ("var-all/f32/1MiB", Op::Var, Axis::All),
        ("sum-axis0/f32/1MiB", Op::Sum, Axis::Zero),
    ] {
        let k = Reduce::new(params(op, axis)).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                k.scan(input, rows).unwrap();
                k.take_result().unwrap()
            })
        });
    }
    group.finish();
}

fn plan(c: &mut Criterion) {
    c.bench_function("plan/split/1e9rows/64workers", |b| {
        b.iter(|| Plan::split(RowRange::new(0, 1_000_000_000), 64, 128, 40_000, 4096))
    });
}

criterion_group!(benches, rng, fill_kernel, reduce_kernel, bookkeeping, plan);
criterion_main!(benches);
