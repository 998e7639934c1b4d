//! `mmrun reduce` with the operations a NumPy user reaches for beyond the
//! plain moments — `argmin argmax nanmean nanstd nanvar` — each checked
//! against live NumPy along every axis form, with the same bytes for any
//! worker count, schedule and spawn mode.

use crate::util::*;

/// `argmin argmax nanmean nanstd nanvar` (refused as unknown ops before):
/// NumPy's result dtypes (int64 indexes; float64 means of integers),
/// shapes and values for float files with NaN (an all-NaN row and column,
/// ties), integer files with ties and values past 2^53, and bool files;
/// `--ddof` of the nan variances; the same bytes for any split.
#[test]
fn argmin_argmax_and_nan_moments_agree_with_numpy() {
    let Some(py) = require_numpy("reduce_ops") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         rng = np.random.default_rng(13)\n\
         f = rng.standard_normal((37, 3, 4)).astype(np.float32)\n\
         f[rng.random(f.shape) < 0.2] = np.nan\n\
         f[:, 1, 2] = np.nan\n\
         f[5] = np.nan\n\
         f[rng.random(f.shape) < 0.1] = 0.5\n\
         f[9, 0, 0] = -np.inf\n\
         np.save('f.npy', f)\n\
         g = np.round(rng.standard_normal((50, 6)) * 3, 1)\n\
         g[rng.random(g.shape) < 0.1] = np.nan\n\
         g[:, 3] = -0.0\n\
         g[::4, 3] = 0.0\n\
         np.save('g.npy', g)\n\
         np.save('i.npy', rng.integers(-3, 3, (40, 5), dtype=np.int16))\n\
         np.save('l.npy', (2**62 + rng.integers(0, 3, (21, 4))).astype(np.int64))\n\
         np.save('b.npy', rng.random((29, 3)) < 0.8)\n",
    );
    let configs: &[&[&str]] = &[
        &["-w", "1"],
        &["-w", "3", "--spawn", "exec"],
        &["-w", "4", "--schedule", "dynamic", "--chunk-rows", "1"],
    ];
    let mut cases = Vec::new();
    for (file, axes) in [
        ("f.npy", &["all", "0", "1", "2", "-1"][..]),
        ("g.npy", &["all", "0", "1", "rows"][..]),
        ("i.npy", &["all", "0", "1"][..]),
        ("l.npy", &["all", "0", "1"][..]),
        ("b.npy", &["all", "0", "1"][..]),
    ] {
        for &axis in axes {
            for (op, ddof) in [
                ("argmin", 0),
                ("argmax", 0),
                ("nanmean", 0),
                ("nanstd", 0),
                ("nanvar", 0),
                ("nanvar", 1),
                ("nanstd", 2),
            ] {
                cases.push(ReduceCase {
                    file,
                    op,
                    axis,
                    ddof,
                });
            }
        }
    }
    reductions_agree_with_numpy(&py, &d, &cases, configs);
    // One number on stdout, as print() gives it.
    let printed = stdout(&d.ok(&["reduce", "f.npy", "--op", "argmax", "--axis", "all"]));
    let want = python(
        &py,
        d.path(),
        "import numpy as np\nprint(np.argmax(np.load('f.npy')))",
    );
    assert_eq!(printed.trim(), want.trim());
    let printed = stdout(&d.ok(&["reduce", "i.npy", "--op", "nanmean", "--axis", "all"]));
    let want = python(
        &py,
        d.path(),
        "import numpy as np\nprint(np.nanmean(np.load('i.npy')))",
    );
    assert_eq!(printed.trim(), want.trim());
}

/// What NumPy refuses for argmin/argmax is refused before any work, with
/// NumPy's reason: a tuple of axes (even one meaning every axis) and an
/// empty slice.
#[test]
fn argmin_argmax_refuse_what_numpy_refuses() {
    let d = Dir::new();
    d.ok(&["create", "x.npy", "--shape", "4,3,2", "--dtype", "f4"]);
    d.ok(&["create", "e.npy", "--shape", "4,0", "--dtype", "f8"]);
    for (file, op, axis, needle) in [
        ("x.npy", "argmax", "1,2", "takes one axis or all"),
        ("x.npy", "argmin", "0,1,2", "takes one axis or all"),
        ("x.npy", "argmax", "rows", "takes one axis or all"),
        (
            "e.npy",
            "argmax",
            "1",
            "attempt to get argmax of an empty sequence",
        ),
        (
            "e.npy",
            "argmin",
            "all",
            "attempt to get argmin of an empty sequence",
        ),
    ] {
        let before = d.snapshot();
        let out = d.run(&[
            "reduce", file, "--op", op, "--axis", axis, "--out", "no.npy",
        ]);
        assert_refused(&out, 2, needle);
        assert_eq!(d.snapshot(), before, "{file} {op} --axis {axis}");
    }
    // Along the empty axis 0 of a (0, 3) array there is nothing to index
    // either; along axis 1 the result is empty, as NumPy gives.
    d.ok(&["create", "z.npy", "--shape", "0,3", "--dtype", "i4"]);
    let out = d.run(&[
        "reduce", "z.npy", "--op", "argmin", "--axis", "0", "--out", "no.npy",
    ]);
    assert_refused(&out, 2, "attempt to get argmin of an empty sequence");
    d.ok(&[
        "reduce", "z.npy", "--op", "argmin", "--axis", "1", "--out", "z1.npy",
    ]);
}

/// `reduce --rows A:B --cols C:D` (unknown arguments before) is NumPy's
/// `np.OP(a[A:B, C:D], axis=…)` for every axis form, Python's slice rules
/// (negative and open ends, empty slices) and a raw input; indexes count
/// from the slice as NumPy's do; the same bytes for any split.
#[test]
fn rows_and_cols_select_as_numpy_slices() {
    let Some(py) = require_numpy("reduce_ops") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         rng = np.random.default_rng(12)\n\
         s = rng.standard_normal((37, 6, 4)).astype(np.float32)\n\
         s[rng.random(s.shape) < 0.1] = np.nan\n\
         np.save('s.npy', s)\n\
         rng.integers(-50, 50, (29, 7), dtype=np.int32).tofile('r.dat')\n",
    );
    let mut cases = Vec::new();
    let mut n = 0;
    for (f, raw, axes) in [
        ("s.npy", &[][..], &["all", "0", "1", "2", "0,2", "rows"][..]),
        (
            "r.dat",
            &["--raw", "--dtype", "i4", "--shape", "29,7"][..],
            &["all", "0", "1"][..],
        ),
    ] {
        for sel in [
            &["--rows", "3:20"][..],
            &["--rows", "-10:"][..],
            &["--cols", "1:4"][..],
            &["--rows", "5:30", "--cols", "-3:"][..],
            &["--rows", ":-5", "--cols", ":5"][..],
            &["--rows", "7:7"][..],
        ] {
            for axis in axes {
                for op in ["sum", "argmax", "nanmean", "var", "min"] {
                    n += 1;
                    let out = format!("o{n}.npy");
                    let mut first: Option<Vec<u8>> = None;
                    let mut rc = 0;
                    for w in [&["-w", "1"][..], &["-w", "3", "--spawn", "exec"][..]] {
                        let mut args = vec!["reduce", f, "--op", op, "--axis", axis];
                        args.extend_from_slice(raw);
                        args.extend_from_slice(sel);
                        args.extend_from_slice(&["--out", &out, "--force"]);
                        args.extend_from_slice(w);
                        let run = d.run(&args);
                        rc = code(&run);
                        assert!(rc == 0 || rc == 2, "{args:?}: {}", stderr(&run));
                        if rc == 2 {
                            assert!(!d.join(&out).exists());
                            continue;
                        }
                        let bytes = std::fs::read(d.join(&out)).unwrap();
                        if let Some(b) = &first {
                            assert!(*b == bytes, "{args:?} differs");
                        }
                        first = Some(bytes);
                    }
                    cases.push(format!(
                        "('{f}', {:?}, '{axis}', '{op}', '{out}', {rc})",
                        sel.join(" ")
                    ));
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
             def sl(t):\n\
             \x20   a, b = t.split(':')\n\
             \x20   return slice(int(a) if a else None, int(b) if b else None)\n\
             for f, sel, axis, op, out, rc in [{}]:\n\
             \x20   x = np.load(f) if f.endswith('.npy') else np.fromfile(f, np.int32).reshape(29, 7)\n\
             \x20   p = sel.split()\n\
             \x20   r = dict(zip(p[::2], p[1::2]))\n\
             \x20   v = x[sl(r.get('--rows', ':'))][:, sl(r.get('--cols', ':'))]\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, v.ndim)) if axis == 'rows' else tuple(int(a) for a in axis.split(',')))\n\
             \x20   if op == 'argmax' and ax is not None:\n\
             \x20       ax = ax[0] if len(ax) == 1 else ax\n\
             \x20   try:\n\
             \x20       want = np.asarray(getattr(np, op)(v, axis=ax))\n\
             \x20   except (ValueError, TypeError):\n\
             \x20       assert rc == 2 and not os.path.exists(out), (f, sel, axis, op, rc)\n\
             \x20       continue\n\
             \x20   assert rc == 0, (f, sel, axis, op, 'numpy gives', want)\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, sel, axis, op, got.shape, want.shape)\n\
             \x20   if want.dtype.kind == 'f':\n\
             \x20       want = np.asarray(getattr(np, op)(v.astype(np.float64), axis=ax)).astype(want.dtype)\n\
             \x20       assert np.allclose(got, want, rtol=1e-6, atol=0, equal_nan=True), (f, sel, axis, op)\n\
             \x20   else:\n\
             \x20       assert np.array_equal(got, want), (f, sel, axis, op, got, want)\n",
            cases.join(", ")
        ),
    );
    // One number on stdout, as print() gives it.
    let printed = stdout(&d.ok(&[
        "reduce", "s.npy", "--op", "argmax", "--axis", "all", "--rows", "4:9", "--cols", "2:",
    ]));
    let want = python(
        &py,
        d.path(),
        "import numpy as np\nprint(np.argmax(np.load('s.npy')[4:9, 2:]))",
    );
    assert_eq!(printed.trim(), want.trim());
    // --cols needs an axis 1; bad slices are refused before any work.
    d.ok(&["create", "v.npy", "--shape", "10", "--dtype", "f8"]);
    for (args, needle) in [
        (
            &[
                "reduce", "v.npy", "--op", "sum", "--axis", "all", "--cols", "1:2",
            ][..],
            "--cols selects along axis 1",
        ),
        (
            &[
                "reduce", "s.npy", "--op", "sum", "--axis", "all", "--rows", "1:2:3",
            ][..],
            "steps are not supported",
        ),
    ] {
        let before = d.snapshot();
        assert_refused(&d.run(args), 2, needle);
        assert_eq!(d.snapshot(), before);
    }
}

/// A reduction (file, op, axis, ddof) and the warnings it raises, with
/// the result elements each concerns.
type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

/// NumPy's floating-point RuntimeWarnings (not reported before) are named
/// and counted by result element in the summary line and in the report's
/// `results.warnings`: the same messages live NumPy raises for float16
/// overflow, all-NaN slices of the nan* functions, empty means and
/// variances without degrees of freedom.
#[test]
fn numpy_runtime_warnings_are_counted() {
    let Some(py) = require_numpy("reduce_ops") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.save('h.npy', np.full((4, 3), 30000, np.float16))\n\
         a = np.ones((5, 4)); a[2] = np.nan; a[:, 1] = np.nan; a[:, 3] = np.nan\n\
         np.save('n.npy', a)\n\
         np.save('e.npy', np.zeros((3, 0), 'f4'))\n\
         np.save('z.npy', np.zeros((0, 3), 'f8'))\n\
         np.save('o.npy', np.arange(6.0).reshape(3, 2))\n",
    );
    // (file, op, axis, ddof, warnings by element count)
    let cases: &[Case] = &[
        (
            "h.npy",
            "sum",
            "all",
            "0",
            &[("overflow encountered in reduce", 1)],
        ),
        (
            "h.npy",
            "sum",
            "0",
            "0",
            &[("overflow encountered in reduce", 3)],
        ),
        ("h.npy", "max", "1", "0", &[]),
        ("n.npy", "nanmean", "0", "0", &[("Mean of empty slice", 2)]),
        (
            "n.npy",
            "nanvar",
            "0",
            "4",
            &[("Degrees of freedom <= 0 for slice.", 4)],
        ),
        ("n.npy", "nanmean", "all", "0", &[]),
        (
            "e.npy",
            "mean",
            "1",
            "0",
            &[
                ("Mean of empty slice", 3),
                ("invalid value encountered in divide", 3),
            ],
        ),
        (
            "e.npy",
            "var",
            "all",
            "0",
            &[
                ("Degrees of freedom <= 0 for slice", 1),
                ("invalid value encountered in divide", 1),
            ],
        ),
        (
            "z.npy",
            "mean",
            "0",
            "0",
            &[
                ("Mean of empty slice", 3),
                ("invalid value encountered in divide", 3),
            ],
        ),
        (
            "o.npy",
            "std",
            "0",
            "3",
            &[
                ("Degrees of freedom <= 0 for slice", 2),
                ("divide by zero encountered in divide", 2),
            ],
        ),
    ];
    let mut checks = Vec::new();
    for (k, &(f, op, axis, ddof, want)) in cases.iter().enumerate() {
        let out = format!("w{k}.npy");
        let mut args = vec!["reduce", f, "--op", op, "--axis", axis, "--ddof", ddof];
        if axis != "all" {
            args.extend_from_slice(&["--out", &out]);
        }
        let run = d.ok(&args);
        let mut again = args.clone();
        again.push("--json");
        if axis != "all" {
            again.push("--force");
        }
        let report = d.ok(&again);
        let doc: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
        let got: Vec<(String, u64)> = doc["results"]["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["warning"].as_str().unwrap().to_string(),
                    w["count"].as_u64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64)> = want
            .iter()
            .map(|(w, n)| (format!("RuntimeWarning: {w}"), *n))
            .collect();
        assert_eq!(got, want, "{f} {op} --axis {axis} --ddof {ddof}");
        let line = stderr(&run);
        for (w, n) in &want {
            assert!(
                line.contains(&format!("; {w} ({n} result(s))")),
                "{f} {op} --axis {axis}: {line}"
            );
        }
        let names: Vec<String> = want
            .iter()
            .map(|(w, _)| format!("{:?}", &w[16..]))
            .collect();
        checks.push(format!(
            "('{f}', '{op}', '{axis}', {ddof}, [{}])",
            names.join(", ")
        ));
    }
    // The same messages as NumPy raises for each case.
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             for f, op, axis, ddof, want in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   kw = {{'ddof': ddof}} if 'var' in op or 'std' in op else {{}}\n\
             \x20   with warnings.catch_warnings(record=True) as r:\n\
             \x20       warnings.simplefilter('always')\n\
             \x20       getattr(np, op)(x, axis=None if axis == 'all' else int(axis), **kw)\n\
             \x20   got = sorted(set(str(w.message) for w in r))\n\
             \x20   assert got == sorted(want), (f, op, axis, got, want)\n",
            checks.join(", ")
        ),
    );
}
