//! `mmrun reduce` against real NumPy: every operation over every kind of
//! axis for float, integer and bool files (N-d too), NaN and empty axes,
//! results the output dtype cannot hold, and the same bytes for any worker
//! count, schedule, chunk size and spawn mode.

use std::fs;

use crate::util::*;

/// Run configurations whose outputs must be byte-identical.
const CONFIGS: &[&[&str]] = &[
    &["-w", "1"],
    &["-w", "2"],
    &["-w", "3", "--spawn", "exec"],
    &["-w", "7", "--schedule", "dynamic", "--chunk-rows", "1"],
    &["-w", "2", "--schedule", "dynamic", "--chunk-rows", "1000"],
];

/// Writes `x.npy` with NumPy (`make` defines `x`), runs every op over every
/// axis in `axes` with every configuration, and checks the results: the
/// same bytes across configurations, NumPy's dtype and shape, and NumPy's
/// values (computed in float64) within `rtol` — exactly for integer sums,
/// min and max.
fn check(make: &str, axes: &[&str], ops: &[&str], rtol: f64) {
    let Some(py) = require_numpy("reduce") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\nrng = np.random.default_rng(3)\n{make}\nnp.save('x.npy', x)\n"
        ),
    );
    let mut cases = Vec::new();
    for axis in axes {
        for op in ops {
            let mut first: Option<Vec<u8>> = None;
            for (c, cfg) in CONFIGS.iter().enumerate() {
                let out = format!("{op}_{}_{c}.npy", axis.replace('-', "m"));
                let mut args = vec!["reduce", "x.npy", "--op", op, "--axis", axis, "--out", &out];
                args.extend_from_slice(cfg);
                d.ok(&args);
                let bytes = fs::read(d.join(&out)).unwrap();
                match &first {
                    None => first = Some(bytes),
                    Some(f) => assert!(
                        *f == bytes,
                        "{op} --axis {axis}: {cfg:?} differs from {:?}",
                        CONFIGS[0]
                    ),
                }
            }
            cases.push(format!("('{op}', '{axis}')"));
        }
    }
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             warnings.simplefilter('ignore')\n\
             x = np.load('x.npy')\n\
             for op, axis in [{cases}]:\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, x.ndim)) if axis == 'rows' else int(axis))\n\
             \x20   got = np.load(f\"{{op}}_{{axis.replace('-', 'm')}}_0.npy\")\n\
             \x20   kind = getattr(np, op)(x, axis=ax)\n\
             \x20   assert got.dtype == np.asarray(kind).dtype, (op, axis, got.dtype, np.asarray(kind).dtype)\n\
             \x20   assert got.shape == np.shape(kind), (op, axis, got.shape, np.shape(kind))\n\
             \x20   if x.dtype.kind in 'iub' and op in ('sum', 'min', 'max'):\n\
             \x20       assert np.array_equal(got, kind), (op, axis, got, kind)\n\
             \x20       continue\n\
             \x20   want = getattr(np, op)(x.astype(np.float64), axis=ax)\n\
             \x20   ok = np.isclose(got.astype(np.float64), want, rtol={rtol}, atol=0, equal_nan=True)\n\
             \x20   assert ok.all(), (op, axis, got[~ok] if got.ndim else got, np.asarray(want)[~ok] if got.ndim else want)\n",
            cases = cases.join(", ")
        ),
    );
}

const OPS: &[&str] = &["sum", "mean", "min", "max", "var", "std"];

#[test]
fn float32_3d_every_axis() {
    check(
        "x = (rng.random((61, 7, 5)) * 100 - 30).astype(np.float32)",
        &["all", "0", "1", "2", "-1", "rows"],
        OPS,
        4e-7,
    );
}

#[test]
fn float64_with_nan() {
    check(
        "x = rng.standard_normal((257, 9)) * 10.0 ** rng.integers(-5, 5, (257, 9))\nx[100, 3] = np.nan",
        &["all", "0", "1"],
        OPS,
        1e-12,
    );
}

#[test]
fn int32_and_uint8_and_bool() {
    check(
        "x = rng.integers(-2**31, 2**31, (100, 13), dtype=np.int32)",
        &["all", "0", "1"],
        OPS,
        1e-12,
    );
    check(
        "x = rng.integers(0, 256, (300, 8), dtype=np.uint8)",
        &["all", "0", "rows"],
        OPS,
        1e-12,
    );
    check(
        "x = rng.random((50, 4)) < 0.3",
        &["all", "0", "1"],
        &["sum", "mean", "min", "max", "var"],
        1e-12,
    );
}

#[test]
fn a_scalar_result_is_printed_and_reported() {
    let Some(py) = require_numpy("reduce") else {
        return;
    };
    let d = Dir::new();
    d.ok(&[
        "fill", "v.npy", "--shape", "100003", "--random", "uniform", "--seed", "11",
    ]);
    let printed = stdout(&d.ok(&["reduce", "v.npy", "--op", "sum", "--axis", "all", "-w", "3"]));
    let by_axis0 = stdout(&d.ok(&["reduce", "v.npy", "--op", "sum", "--axis", "0"]));
    assert_eq!(printed, by_axis0, "axis 0 of a 1-d array is all of it");
    let report = stdout(&d.ok(&[
        "reduce", "v.npy", "--op", "std", "--axis", "all", "--ddof", "1", "--json",
    ]));
    let doc: serde_json::Value = serde_json::from_str(&report).unwrap();
    let std = doc["results"]["value"]
        .as_f64()
        .expect("value in the report");
    assert_eq!(doc["results"]["dtype"], "<f4");
    d.ok(&[
        "reduce", "v.npy", "--op", "mean", "--axis", "all", "--out", "m.npy",
    ]);
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             v = np.load('v.npy')\n\
             s = np.float32({printed:?}.strip())\n\
             assert str(s) == {printed:?}.strip(), (str(s), {printed:?})\n\
             assert abs(s - v.astype(np.float64).sum()) <= 1e-7 * abs(s), s\n\
             assert abs({std} - v.std(ddof=1)) <= 1e-6 * {std}\n\
             m = np.load('m.npy')\n\
             assert m.shape == () and m.dtype == np.float32, (m.shape, m.dtype)\n\
             assert abs(m - v.astype(np.float64).mean()) <= 1e-7 * m\n"
        ),
    );
}

#[test]
fn empty_axes_behave_as_numpy() {
    let Some(py) = require_numpy("reduce") else {
        return;
    };
    let d = Dir::new();
    d.ok(&["create", "r0.npy", "--shape", "0,5", "--dtype", "f8"]);
    d.ok(&["create", "c0.npy", "--shape", "5,0", "--dtype", "i4"]);
    d.ok(&[
        "reduce", "r0.npy", "--op", "sum", "--axis", "0", "--out", "s.npy",
    ]);
    d.ok(&[
        "reduce", "r0.npy", "--op", "mean", "--axis", "0", "--out", "m.npy",
    ]);
    d.ok(&[
        "reduce", "r0.npy", "--op", "min", "--axis", "1", "--out", "e.npy",
    ]);
    d.ok(&[
        "reduce", "c0.npy", "--op", "sum", "--axis", "1", "--out", "cs.npy",
    ]);
    d.ok(&[
        "reduce", "c0.npy", "--op", "var", "--axis", "rows", "--out", "cv.npy",
    ]);
    assert_eq!(
        stdout(&d.ok(&["reduce", "r0.npy", "--op", "sum", "--axis", "all"])).trim(),
        "0.0"
    );
    for (f, axis) in [("r0.npy", "0"), ("c0.npy", "1"), ("r0.npy", "all")] {
        let before = d.snapshot();
        let out = d.run(&[
            "reduce", f, "--op", "max", "--axis", axis, "--out", "no.npy",
        ]);
        assert_refused(&out, 2, "zero-size array to reduction operation maximum");
        assert_eq!(
            d.snapshot(),
            before,
            "a refused reduce changed the directory"
        );
    }
    python(
        &py,
        d.path(),
        "import numpy as np, warnings\n\
         warnings.simplefilter('ignore')\n\
         r0, c0 = np.load('r0.npy'), np.load('c0.npy')\n\
         for f, want in [('s.npy', r0.sum(axis=0)), ('m.npy', r0.mean(axis=0)),\n\
                         ('e.npy', r0.min(axis=1)), ('cs.npy', c0.sum(axis=1)),\n\
                         ('cv.npy', c0.var(axis=1))]:\n\
         \x20   got = np.load(f)\n\
         \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, got.dtype, want.dtype)\n\
         \x20   assert np.array_equal(got, want, equal_nan=True), (f, got, want)\n",
    );
}

#[test]
fn results_the_dtype_cannot_hold_are_errors_naming_the_rows() {
    let Some(py) = require_numpy("reduce") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         x = np.ones((40, 3), dtype=np.int64)\n\
         x[17, :] = 2**62\n\
         x[18:22, 1] = 2**62\n\
         np.save('x.npy', x)\n",
    );
    // NumPy wraps these sums silently; mmrun says where.
    let before = d.snapshot();
    let out = d.run(&[
        "reduce", "x.npy", "--op", "sum", "--axis", "1", "--out", "o.npy", "-w", "2",
    ]);
    assert_refused(&out, 1, "row 17");
    assert!(!d.join("o.npy").exists());
    let out = d.run(&[
        "reduce", "x.npy", "--op", "sum", "--axis", "0", "--out", "o.npy",
    ]);
    assert_refused(&out, 1, "element 1 of the sum over axis 0");
    assert!(
        stderr(&out).contains("does not fit in int64"),
        "{}",
        stderr(&out)
    );
    let out = d.run(&["reduce", "x.npy", "--op", "sum", "--axis", "all"]);
    assert_refused(&out, 1, "does not fit in int64");
    // A wider result type holds them: the exact sum as float64.
    let printed = stdout(&d.ok(&[
        "reduce", "x.npy", "--op", "sum", "--axis", "all", "--dtype", "f8",
    ]));
    let want = (3.0 * 2f64.powi(62) + 4.0 * 2f64.powi(62) + 40.0 * 3.0 - 7.0).to_string();
    let got: f64 = printed.trim().parse().unwrap();
    assert_eq!(got, want.parse::<f64>().unwrap());
    // The failed per-row run keeps its partial file and journal, as every
    // failed run does; the scans left nothing.
    let mut left: Vec<String> = d
        .names()
        .into_iter()
        .filter(|n| !before.contains_key(n))
        .collect();
    left.sort();
    assert_eq!(left, [".o.npy.mmrun-journal", ".o.npy.mmrun-partial"]);
}

#[test]
fn refusals_come_before_any_work() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "20,4", "--value", "1"]);
    d.ok(&["fill", "taken.npy", "--shape", "20", "--value", "1"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--op", "sum", "--axis", "1"], 2, "give --out"),
        (
            &["--op", "sum", "--axis", "2", "--out", "o.npy"],
            2,
            "axis 2 is out of bounds for array of dimension 2",
        ),
        (
            &["--op", "sum", "--axis", "one", "--out", "o.npy"],
            2,
            "is not an axis",
        ),
        (
            &["--op", "median", "--axis", "1", "--out", "o.npy"],
            2,
            "median",
        ),
        (
            &["--op", "sum", "--axis", "1", "--out", "taken.npy"],
            2,
            "taken.npy",
        ),
        (
            &["--op", "sum", "--axis", "1", "--out", "x.npy", "--force"],
            2,
            "input",
        ),
    ];
    for (args, want, needle) in cases {
        let before = d.snapshot();
        let mut all = vec!["reduce", "x.npy"];
        all.extend_from_slice(args);
        let out = d.run(&all);
        assert_refused(&out, *want, needle);
        assert_eq!(d.snapshot(), before, "{args:?} changed the directory");
    }
    let out = d.run(&["reduce", "missing.npy", "--op", "sum", "--axis", "all"]);
    assert_refused(&out, 2, "missing.npy");
}

#[test]
fn a_file_being_written_is_not_read() {
    let d = Dir::new();
    d.ok(&["create", "p.npy", "--shape", "64,4", "--pending"]);
    let out = d.run(&["reduce", "p.npy", "--op", "sum", "--axis", "all"]);
    // A pending file is not published yet: exit 2, naming what publishes it.
    assert_refused(&out, 2, "mmrun commit");
}

/// A scanning worker killed mid-way: without retries the run fails (exit 1)
/// and prints no number; with `--retries` the retried range's partials
/// replace the dead attempt's, and the result is the same bytes as an
/// undisturbed run.
#[test]
fn a_killed_scan_worker_gives_no_result_or_a_retried_exact_one() {
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "3000,700", "--random", "uniform", "--seed", "9",
    ]);
    let clean = d.ok(&["reduce", "x.npy", "--op", "var", "--axis", "all", "-w", "2"]);
    let fault = |args: &[&str]| {
        d.cmd(args)
            .env("__MMRUN_TEST_WORKER_FAULT", "1:kill@2000")
            .output()
            .unwrap()
    };
    let failed = fault(&["reduce", "x.npy", "--op", "var", "--axis", "all", "-w", "2"]);
    assert_refused(&failed, 1, "SIGKILL");
    assert!(
        stdout(&failed).is_empty(),
        "a failed scan printed {}",
        stdout(&failed)
    );
    let retried = fault(&[
        "reduce",
        "x.npy",
        "--op",
        "var",
        "--axis",
        "all",
        "-w",
        "2",
        "--retries",
        "1",
    ]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    assert_eq!(stdout(&retried), stdout(&clean));
    // Axis 0 through dynamic chunks, the killed chunk retried.
    d.ok(&[
        "reduce", "x.npy", "--op", "sum", "--axis", "0", "--out", "a.npy", "-w", "3",
    ]);
    let retried = fault(&[
        "reduce",
        "x.npy",
        "--op",
        "sum",
        "--axis",
        "0",
        "--out",
        "b.npy",
        "-w",
        "3",
        "--schedule",
        "dynamic",
        "--chunk-rows",
        "64",
        "--retries",
        "2",
    ]);
    assert!(retried.status.success(), "{}", stderr(&retried));
    assert_eq!(
        fs::read(d.join("a.npy")).unwrap(),
        fs::read(d.join("b.npy")).unwrap()
    );
}

/// The reference text's chunked loop — `np.memmap` of a raw float32
/// `.dat`, `np.mean(chunk, axis=1)` per 1000 rows — as one command.
#[test]
fn the_reference_chunked_mean_is_one_command() {
    let Some(py) = require_numpy("reduce") else {
        return;
    };
    let d = Dir::new();
    d.ok(&[
        "fill",
        "huge_array.dat",
        "--raw",
        "--dtype",
        "f4",
        "--shape",
        "2500,300",
        "--random",
        "uniform",
        "--seed",
        "4",
    ]);
    d.ok(&[
        "reduce",
        "huge_array.dat",
        "--raw",
        "--dtype",
        "f4",
        "--shape",
        "2500,300",
        "--op",
        "mean",
        "--axis",
        "1",
        "--out",
        "means.npy",
        "-w",
        "3",
    ]);
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         fp = np.memmap('huge_array.dat', dtype=np.float32, mode='r', shape=(2500, 300))\n\
         parts = [np.mean(fp[i:i + 1000, :], axis=1) for i in range(0, 2500, 1000)]\n\
         want = np.concatenate(parts)\n\
         got = np.load('means.npy')\n\
         assert got.dtype == want.dtype == np.float32 and got.shape == (2500,)\n\
         assert np.allclose(got, want, rtol=1e-6, atol=0), np.abs(got - want).max()\n\
         exact = fp.astype(np.float64).mean(axis=1).astype(np.float32)\n\
         assert np.array_equal(got, exact), 'mmrun accumulates in float64 and rounds once'\n",
    );
}

/// A file an in-place run is writing is not read (exit 75), nor one an
/// interrupted run left half written (exit 2); once the run is finished
/// with --resume the reduce goes ahead.
#[test]
fn a_file_another_run_writes_or_left_half_written_is_not_read() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "400,64", "--value", "1"]);
    /// The writer is stopped whatever the test's outcome.
    struct Writer(std::process::Child);
    impl Drop for Writer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut writer = Writer(
        d.cmd(&[
            "fill",
            "x.npy",
            "--value",
            "2",
            "-w",
            "2",
            "--kill-after",
            "1s",
        ])
        .env("__MMRUN_TEST_WORKER_FAULT", "0:hang@100")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap(),
    );
    let journal = d.join(".x.npy.mmrun-journal");
    let t0 = std::time::Instant::now();
    while !journal.exists() && t0.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = d.run(&["reduce", "x.npy", "--op", "sum", "--axis", "all"]);
    assert_refused(&out, 75, "in use by");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(writer.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    writer.0.wait().unwrap();
    let out = d.run(&["reduce", "x.npy", "--op", "sum", "--axis", "all"]);
    assert_refused(&out, 2, "interrupted run");
    d.ok(&["fill", "x.npy", "--value", "2", "-w", "2", "--resume"]);
    let sum = stdout(&d.ok(&["reduce", "x.npy", "--op", "sum", "--axis", "all"]));
    assert_eq!(sum.trim(), "51200.0");
}
