//! `mmrun reduce` on the inputs a NumPy user reaches for beyond the common
//! case, each checked against live NumPy: zero-size arrays of every shape,
//! dtype, axis and op, and float results past their dtype's range (`inf`,
//! as `np.sum` gives).

use std::fs;

use crate::util::*;

/// Zero-size arrays whose first dimension is not zero used to panic in the
/// workers (`cast_slice` of an empty, unaligned slice) for every dtype wider
/// than a byte along `--axis all` and `0`. Every shape, dtype, op and axis
/// now answers as NumPy does: the same values, dtypes and shapes, or
/// NumPy's refusal for `min`/`max` with nothing to reduce (exit 2, nothing
/// written).
#[test]
fn zero_size_arrays_reduce_as_numpy_along_every_axis() {
    let Some(py) = require_numpy("reduce_numpy") else {
        return;
    };
    let d = Dir::new();
    let shapes = ["5,0", "0,3", "4,0,2", "3,2,0"];
    let dtypes = ["f2", "f4", "f8", "i2", "i8", "u4", "b1"];
    let ops = ["sum", "mean", "var", "std", "min", "max"];
    let mut cases = Vec::new();
    for (s, shape) in shapes.iter().enumerate() {
        for dt in dtypes {
            let input = format!("a{s}_{dt}.npy");
            d.ok(&["create", &input, "--shape", shape, "--dtype", dt]);
            let ndim = shape.split(',').count();
            let mut axes = vec!["all".to_string(), "0".to_string(), "rows".to_string()];
            axes.extend((1..ndim).map(|a| a.to_string()));
            for axis in &axes {
                for op in ops {
                    let out = format!("o{s}_{dt}_{op}_{axis}.npy");
                    let run = d.run(&[
                        "reduce", &input, "--op", op, "--axis", axis, "--out", &out, "-w", "3",
                    ]);
                    let rc = code(&run);
                    assert!(
                        rc == 0 || rc == 2,
                        "{input} {op} --axis {axis}: exit {rc}: {}",
                        stderr(&run)
                    );
                    if rc == 2 {
                        assert_refused(&run, 2, "zero-size array to reduction operation");
                        assert!(!d.join(&out).exists());
                    }
                    cases.push(format!("('{input}', '{op}', '{axis}', '{out}', {rc})"));
                }
            }
        }
    }
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, os, warnings\n\
             warnings.simplefilter('ignore')\n\
             for f, op, axis, out, rc in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, x.ndim)) if axis == 'rows' else int(axis))\n\
             \x20   try:\n\
             \x20       want = np.asarray(getattr(np, op)(x, axis=ax))\n\
             \x20   except ValueError:\n\
             \x20       assert rc == 2 and not os.path.exists(out), (f, op, axis, rc)\n\
             \x20       continue\n\
             \x20   assert rc == 0, (f, op, axis, 'numpy gives', want)\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis, got.dtype, got.shape, want.dtype, want.shape)\n\
             \x20   assert np.array_equal(got, want, equal_nan=True), (f, op, axis, got, want)\n",
            cases.join(", ")
        ),
    );
    // The printed value of `--axis all` too: 0.0 for a sum, as print() gives.
    for dt in ["f4", "i8"] {
        let printed = stdout(&d.ok(&[
            "reduce",
            &format!("a0_{dt}.npy"),
            "--op",
            "sum",
            "--axis",
            "all",
        ]));
        assert_eq!(printed.trim(), if dt == "f4" { "0.0" } else { "0" });
    }
}

/// A float sum beyond its dtype's range is `inf` as in NumPy (it used to be
/// an error "… does not fit in float16"); float means of the same data stay
/// finite; an integer result past int64 is still an error (NumPy wraps).
#[test]
fn float_results_past_their_dtype_are_inf_as_in_numpy() {
    let Some(py) = require_numpy("reduce_numpy") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         h = np.full((300, 7), 60000, np.float16)\n\
         h[:, 3] = -60000\n\
         np.save('h.npy', h)\n\
         f = np.full((64, 3), 3e38, np.float32)\n\
         f[:, 1] = -3e38\n\
         np.save('f.npy', f)\n",
    );
    let mut cases = Vec::new();
    for (f, op, axis) in [
        ("h.npy", "sum", "all"),
        ("h.npy", "sum", "0"),
        ("h.npy", "sum", "1"),
        ("h.npy", "mean", "0"),
        ("f.npy", "sum", "all"),
        ("f.npy", "sum", "0"),
        ("f.npy", "sum", "1"),
        ("f.npy", "mean", "1"),
    ] {
        let out = format!("{}_{op}_{axis}.npy", &f[..1]);
        let mut first: Option<Vec<u8>> = None;
        for w in ["1", "3"] {
            d.ok(&[
                "reduce", f, "--op", op, "--axis", axis, "--out", &out, "-w", w, "--force",
            ]);
            let bytes = fs::read(d.join(&out)).unwrap();
            if let Some(b) = &first {
                assert_eq!(*b, bytes, "{f} {op} --axis {axis}: -w {w} differs");
            }
            first = Some(bytes);
        }
        cases.push(format!("('{f}', '{op}', '{axis}', '{out}')"));
    }
    let printed = stdout(&d.ok(&["reduce", "h.npy", "--op", "sum", "--axis", "all"]));
    assert_eq!(printed.trim(), "inf");
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             warnings.simplefilter('ignore')\n\
             for f, op, axis, out in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   want = np.asarray(getattr(np, op)(x, axis=None if axis == 'all' else int(axis)))\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis)\n\
             \x20   assert np.array_equal(got, want), (f, op, axis, got, want)\n",
            cases.join(", ")
        ),
    );
}

/// `prod any all nansum nanmin nanmax` (refused as unknown ops before):
/// NumPy's result dtypes, shapes and values for float (with NaN, an all-NaN
/// column and row), integer and bool files along every kind of axis, the
/// same bytes for any worker count, schedule and spawn mode.
#[test]
fn prod_any_all_and_nan_ops_agree_with_numpy() {
    let Some(py) = require_numpy("reduce_numpy") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         rng = np.random.default_rng(9)\n\
         f = rng.standard_normal((37, 3, 4)).astype(np.float32)\n\
         f[rng.random(f.shape) < 0.2] = np.nan\n\
         f[:, 1, 2] = np.nan\n\
         f[5] = np.nan\n\
         f[7, 0] = 0\n\
         np.save('f.npy', f)\n\
         g = rng.standard_normal((50, 6)) * 3\n\
         g[rng.random(g.shape) < 0.1] = np.nan\n\
         np.save('g.npy', g)\n\
         np.save('i.npy', rng.choice(np.array([-1, 1, 1, 1, 2, 0], np.int16), (40, 5), p=[.2, .5, .1, .1, .09, .01]))\n\
         np.save('u.npy', rng.integers(0, 4, (33, 2), dtype=np.uint8))\n\
         np.save('b.npy', rng.random((29, 3)) < 0.8)\n",
    );
    let configs: &[&[&str]] = &[
        &["-w", "1"],
        &["-w", "3", "--spawn", "exec"],
        &["-w", "4", "--schedule", "dynamic", "--chunk-rows", "1"],
    ];
    let ops = ["prod", "any", "all", "nansum", "nanmin", "nanmax"];
    let mut cases = Vec::new();
    for (f, axes) in [
        ("f.npy", &["all", "0", "1", "2", "rows"][..]),
        ("g.npy", &["all", "0", "1"][..]),
        ("i.npy", &["all", "0", "1"][..]),
        ("u.npy", &["all", "0", "-1"][..]),
        ("b.npy", &["all", "0", "1"][..]),
    ] {
        for axis in axes {
            for op in ops {
                let out = format!("{}_{op}_{}.npy", &f[..1], axis.replace('-', "m"));
                let args = [
                    "reduce", f, "--op", op, "--axis", axis, "--out", &out, "--force",
                ];
                same_bytes_for_each(&d, &args, &out, configs);
                cases.push(format!("('{f}', '{op}', '{axis}', '{out}')"));
            }
        }
    }
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             warnings.simplefilter('ignore')\n\
             for f, op, axis, out in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, x.ndim)) if axis == 'rows' else int(axis))\n\
             \x20   want = np.asarray(getattr(np, op)(x, axis=ax))\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis, got.dtype, got.shape, want.dtype, want.shape)\n\
             \x20   if want.dtype.kind == 'f':\n\
             \x20       # mmrun accumulates floats in float64, as the README says.\n\
             \x20       want = np.asarray(getattr(np, op)(x.astype(np.float64), axis=ax))\n\
             \x20       ok = np.isclose(got, want, rtol=2e-7, atol=0, equal_nan=True)\n\
             \x20       assert ok.all(), (f, op, axis, got[~ok] if got.ndim else got, want[~ok] if got.ndim else want)\n\
             \x20   else:\n\
             \x20       assert np.array_equal(got, want), (f, op, axis, got, want)\n",
            cases.join(", ")
        ),
    );
    // Nothing to reduce: nanmin has no identity (NumPy's ValueError), prod is 1.
    d.ok(&["create", "e.npy", "--shape", "0,3", "--dtype", "f8"]);
    let out = d.run(&[
        "reduce", "e.npy", "--op", "nanmin", "--axis", "0", "--out", "n.npy",
    ]);
    assert_refused(&out, 2, "zero-size array to reduction operation fmin");
    let printed = stdout(&d.ok(&["reduce", "e.npy", "--op", "prod", "--axis", "all"]));
    assert_eq!(printed.trim(), "1.0");
    let printed = stdout(&d.ok(&["reduce", "e.npy", "--op", "all", "--axis", "all"]));
    assert_eq!(printed.trim(), "True");
}

/// Tuple axes as NumPy's `axis=(1, 2)` (refused as "not an axis" before):
/// consecutive axes after 0, with or without axis 0 (`0,2`, `(0, 2, 3)`:
/// refused before this change too), and the tuples that mean axis 0, every
/// axis but 0, or every axis; other tuples are refused before any work.
#[test]
fn tuple_axes_reduce_as_numpy() {
    let Some(py) = require_numpy("reduce_numpy") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         rng = np.random.default_rng(4)\n\
         np.save('x.npy', (rng.standard_normal((13, 3, 4, 5)) * 10).astype(np.float32))\n\
         np.save('n.npy', rng.integers(-9, 9, (9, 2, 3), dtype=np.int32))\n",
    );
    let mut cases = Vec::new();
    for (f, axes) in [
        (
            "x.npy",
            &[
                "1,2",
                "2,3",
                "(1, 2, 3)",
                "-1,-2",
                "0,1,2,3",
                "(0,)",
                "(2,)",
                "0,2",
                "0,1",
                "(0, 2, 3)",
                "3,0",
            ][..],
        ),
        ("n.npy", &["1,2", "(0, 1, 2)", "2,1", "0,2", "1,0"][..]),
    ] {
        for (k, axis) in axes.iter().enumerate() {
            for op in ["sum", "mean", "var", "max", "prod", "any"] {
                let out = format!("{}_{op}_{k}.npy", &f[..1]);
                let mut first: Option<Vec<u8>> = None;
                for w in [&["-w", "1"][..], &["-w", "3", "--spawn", "exec"][..]] {
                    let mut args = vec![
                        "reduce", f, "--op", op, "--axis", axis, "--out", &out, "--force",
                    ];
                    args.extend_from_slice(w);
                    d.ok(&args);
                    let bytes = std::fs::read(d.join(&out)).unwrap();
                    if let Some(b) = &first {
                        assert!(*b == bytes, "{f} {op} --axis {axis}: {w:?} differs");
                    }
                    first = Some(bytes);
                }
                cases.push(format!("('{f}', '{op}', '{axis}', '{out}')"));
            }
        }
    }
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             warnings.simplefilter('ignore')\n\
             for f, op, axis, out in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   ax = tuple(int(a) for a in axis.strip('()').split(',') if a.strip())\n\
             \x20   want = np.asarray(getattr(np, op)(x, axis=ax))\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis, got.shape, want.shape)\n\
             \x20   if want.dtype.kind == 'f':\n\
             \x20       # float64 accumulation, rounded once (past float32's range: inf).\n\
             \x20       want = np.asarray(getattr(np, op)(x.astype(np.float64), axis=ax)).astype(want.dtype)\n\
             \x20       assert np.allclose(got, want, rtol=1e-6, atol=0), (f, op, axis)\n\
             \x20   else:\n\
             \x20       assert np.array_equal(got, want), (f, op, axis)\n",
            cases.join(", ")
        ),
    );
    for (axis, needle) in [
        ("1,3", "one run of consecutive axes after 0"),
        ("0,1,3", "one run of consecutive axes after 0"),
        ("1,1", "duplicate value in 'axis'"),
        ("1,4", "axis 4 is out of bounds for array of dimension 4"),
    ] {
        let before = d.snapshot();
        let out = d.run(&[
            "reduce", "x.npy", "--op", "sum", "--axis", axis, "--out", "no.npy",
        ]);
        assert_refused(&out, 2, needle);
        assert_eq!(d.snapshot(), before);
    }
}
