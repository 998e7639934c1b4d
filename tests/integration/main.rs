//! Integration tests of the real `mmrun` binary. One test binary; each
//! module covers one part of the contract.

mod util;

// Command-line behaviour: create, info, fill, dry runs, spawn modes.
mod cli;
// Every bad input: one-line error, documented exit code, nothing changed.
mod bad_input;
// Failing and interrupted workers: exit codes, nothing published, no orphans.
mod failure;
// Interoperability with real NumPy (np.load, np.memmap, Philox streams).
mod numpy_interop;
// External workers through `mmrun exec`: protocol, templating, Python and C workers.
mod exec;
// Crashed workers, interrupts, resume, durability, hostile files and headers.
mod reliability;
// A bounded, seeded soak: random jobs, random kills, resume until verified.
mod soak;
// Rank mode under real launchers (mpirun, srun).
mod distributed;
// Clusters as they are: NFS lock semantics (LD_PRELOAD shim), any shape on any rank count.
mod clusters;
// Loop-mounted XFS and Btrfs, a small tmpfs: fill, apply, resume, full disk.
mod filesystems;
// The JSON run report and its schema, progress, logs, and mmrun bench.
mod report;
// mmrun apply against NumPy's evaluation of the same assignment.
mod apply;
// mmrun reduce against NumPy: ops, axes, dtypes, identical bytes for any split.
mod reduce;
// mmrun apply --expr with NumPy's spellings (np. prefixes, bitwise, casts).
mod expr_vocab;
// mmrun reduce on zero-size arrays and overflowing floats, against NumPy.
mod reduce_numpy;
// mmrun reduce argmin/argmax and the nan* moments against NumPy.
mod reduce_ops;
// complex64/complex128: apply --expr against NumPy, in place and --out, and the refusals.
mod complex;
// mmrun convert against NumPy's astype and can_cast.
mod convert;
// Every fixed-size dtype NumPy writes: create and exec lay it out, kernels refuse it.
mod dtypes;
// NumPy's own .npy format tests, case for case, through mmrun and NumPy.
mod numpy_format;
// Files four times larger than the memory limit of their cgroup.
mod memory;
// Rows wider than a block: NumPy's bytes, bounded memory for the (2, 2e9) file.
mod wide_rows;
// Signals around publishing, worker descriptors, reaping, stopping programs.
mod supervisor;
// Readers never use a file a run changes; nothing rewritten without --force.
mod integrity;
// The mapped path over many windows: results against NumPy, populate and
// madvise calls under strace.
mod mapped_path;
// The module import graph of src/: no cycle, layers as design.md draws them.
mod layering;
// Inputs answered as NumPy answers them, no panics, helpful messages, quiet and JSON output.
mod agreement;
// NumPy's RuntimeWarnings of per-row reductions and apply --expr, counted the same for any split.
mod runtime_warnings;
// mmrun convert between datetime64 units, timedelta64 units and S/U strings, against NumPy.
mod convert_units;
