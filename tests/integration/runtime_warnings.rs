//! NumPy's data-dependent RuntimeWarnings, counted for the runs whose
//! workers write rows: reductions along per-row axes (`--axis 1`, `rows`,
//! tuples without 0) and `apply --expr`. Each case runs under several
//! worker counts and schedules, which must report the same counts, and
//! live NumPy, running the same operation on the same data under
//! `warnings.catch_warnings(record=True)`, must raise the same set of
//! messages.

use crate::util::*;

/// The `results.warnings` of a `--json` report, as `(message, count)`.
fn reported(out: &std::process::Output) -> Vec<(String, u64)> {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["results"]["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no results.warnings in {doc}"))
        .iter()
        .map(|w| {
            let text = w["warning"].as_str().unwrap();
            let text = text.strip_prefix("RuntimeWarning: ").unwrap();
            (text.to_string(), w["count"].as_u64().unwrap())
        })
        .collect()
}

/// Runs `args` (writing `out`) with `--json` under each worker
/// configuration; all must report the same warnings, which are returned.
/// The summary line of a plain run names each of them.
fn same_warnings_for_each(d: &Dir, args: &[&str], out: &str) -> Vec<(String, u64)> {
    let configs: &[&[&str]] = &[
        &["-w", "1"],
        &["-w", "3"],
        &["-w", "2", "--schedule", "dynamic", "--chunk-rows", "1"],
    ];
    let mut first: Option<Vec<(String, u64)>> = None;
    for c in configs {
        let _ = std::fs::remove_file(d.join(out));
        let mut a = args.to_vec();
        a.extend_from_slice(c);
        a.push("--json");
        let got = reported(&d.ok(&a));
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(&got, f, "{args:?} {c:?}"),
        }
    }
    let _ = std::fs::remove_file(d.join(out));
    let line = stderr(&d.ok(args));
    let want = first.unwrap();
    for (w, n) in &want {
        assert!(
            line.contains(&format!("; RuntimeWarning: {w} ({n} result(s))")),
            "{args:?}: {line}"
        );
    }
    want
}

/// Checks, in one Python run, that NumPy raises exactly the messages of
/// each `(python statement, messages)` pair.
fn numpy_raises(py: &std::path::Path, d: &Dir, checks: &[(String, Vec<(String, u64)>)]) {
    let cases: Vec<String> = checks
        .iter()
        .map(|(code, want)| {
            let names: Vec<String> = want.iter().map(|(w, _)| format!("{w:?}")).collect();
            format!("({code:?}, [{}])", names.join(", "))
        })
        .collect();
    python(
        py,
        d.path(),
        &format!(
            "import numpy as np, warnings\n\
             for code, want in [{}]:\n\
             \x20   with warnings.catch_warnings(record=True) as r:\n\
             \x20       warnings.simplefilter('always')\n\
             \x20       exec(code, {{'np': np}})\n\
             \x20   got = sorted(set(str(w.message) for w in r))\n\
             \x20   assert got == sorted(set(want)), (code, got, want)\n",
            cases.join(", ")
        ),
    );
}

/// Per-row reductions (warnings were counted only across rows before):
/// float16 sums overflowing to inf, all-NaN rows of nanmean and nanmin,
/// variances whose degrees of freedom run out on rows with and without
/// spread, empty means, a tuple axis; the same counts for any split and
/// NumPy's messages.
#[test]
fn per_row_reductions_count_numpy_warnings() {
    let Some(py) = require_numpy("runtime_warnings") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         h = np.full((6, 3), 30000, np.float16); h[1] = 1; h[4, 0] = np.inf\n\
         np.save('h.npy', h)\n\
         a = np.ones((7, 4)); a[2] = np.nan; a[5] = np.nan; a[:, 1] = np.nan\n\
         np.save('n.npy', a)\n\
         v = np.ones((5, 2)); v[1] = [1, 3]; v[3] = [0, 7]\n\
         np.save('v.npy', v)\n\
         np.save('e.npy', np.zeros((4, 0), 'f4'))\n\
         t = np.ones((4, 2, 3), np.float16) * 30000; t[0] = 1\n\
         np.save('t.npy', t)\n\
         np.save('q.npy', np.zeros((3, 2, 0), 'f8'))\n",
    );
    // (file, op, axis, ddof, NumPy's axis)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("h.npy", "sum", "1", "0", "1"),
        ("h.npy", "sum", "rows", "0", "1"),
        ("h.npy", "prod", "1", "0", "1"),
        ("h.npy", "mean", "1", "0", "1"),
        ("n.npy", "nanmean", "1", "0", "1"),
        ("n.npy", "nanmin", "1", "0", "1"),
        ("n.npy", "nanmax", "-1", "0", "-1"),
        ("n.npy", "nanvar", "1", "3", "1"),
        ("v.npy", "var", "1", "2", "1"),
        ("v.npy", "std", "1", "3", "1"),
        ("e.npy", "mean", "1", "0", "1"),
        ("e.npy", "var", "1", "0", "1"),
        ("t.npy", "sum", "1,2", "0", "(1, 2)"),
        ("t.npy", "sum", "1", "0", "1"),
        ("q.npy", "mean", "1,2", "0", "(1, 2)"),
    ];
    let mut checks = Vec::new();
    let mut counted = 0;
    for &(f, op, axis, ddof, np_axis) in cases {
        let got = same_warnings_for_each(
            &d,
            &[
                "reduce", f, "--op", op, "--axis", axis, "--ddof", ddof, "--out", "r.npy",
            ],
            "r.npy",
        );
        counted += got.len();
        let kw = if op.contains("var") || op.contains("std") {
            format!(", ddof={ddof}")
        } else {
            String::new()
        };
        checks.push((format!("np.{op}(np.load('{f}'), axis={np_axis}{kw})"), got));
    }
    assert!(counted >= 12, "too few warnings seen: {checks:?}");
    // The counts are by result element: three rows of h overflow.
    assert_eq!(
        checks[0].1,
        vec![("overflow encountered in reduce".to_string(), 4)]
    );
    numpy_raises(&py, &d, &checks);
}

/// `apply --expr` counts the floating-point warnings NumPy raises for the
/// same expression on the same data, by the ufunc that raised them:
/// overflow, invalid values and division by zero in arithmetic, powers,
/// logarithms and roots; integer division by zero; float16 arithmetic;
/// casts to the output's dtype. Same counts for any split.
#[test]
fn apply_counts_numpy_floating_point_warnings() {
    let Some(py) = require_numpy("runtime_warnings") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         f = np.array([[1.0, -1.0, 0.0, 1e300], [2.0, np.inf, np.nan, -0.0],\n\
         \x20             [1e-300, 3.0, -8.0, 1e308], [0.5, 0.25, 5.0, 7.0]])\n\
         np.save('f.npy', f)\n\
         np.save('s.npy', f.astype(np.float32))\n\
         np.save('h.npy', np.array([[1, 30000, -30000, 12], [0, 2, 3, 60000]], np.float16))\n\
         np.save('i.npy', np.array([[3, 0, -128, 7], [0, 1, -1, 2]], np.int8))\n\
         np.save('c.npy', np.array([[0, 1, 2, 3]] * 3, np.int64))\n",
    );
    // (file, expression, output dtype or "")
    let cases: &[(&str, &str, &str)] = &[
        ("f.npy", "x * 1e10", ""),
        ("f.npy", "x + x", ""),
        ("f.npy", "x - np.inf", ""),
        ("f.npy", "1 / x", ""),
        ("f.npy", "x / 0", ""),
        ("f.npy", "x // 0", ""),
        ("f.npy", "x % 0", ""),
        ("f.npy", "np.log(x)", ""),
        ("f.npy", "np.log10(x) + np.log2(x)", ""),
        ("f.npy", "np.sqrt(x)", ""),
        ("f.npy", "x ** 0.5", ""),
        ("f.npy", "x ** -1", ""),
        ("f.npy", "x ** 2", ""),
        ("f.npy", "x ** 3.5", ""),
        ("f.npy", "np.exp(x)", ""),
        ("f.npy", "np.sin(x) + np.cos(x)", ""),
        ("f.npy", "np.where(x > 0, np.log(x), 0)", ""),
        ("f.npy", "x * 2", "f4"),
        ("f.npy", "x", "i4"),
        ("f.npy", "x * 1e10", "i8"),
        ("s.npy", "x * x", ""),
        ("s.npy", "np.log(x) * 3", ""),
        ("h.npy", "x + x", ""),
        ("h.npy", "np.exp(x)", ""),
        ("h.npy", "x * 3 - 1", ""),
        ("i.npy", "x // (x - 3)", ""),
        ("i.npy", "x % (x - 3)", ""),
        ("i.npy", "x // -1", ""),
        ("i.npy", "x / (x - 3)", ""),
        ("c.npy", "x * 30000", "f2"),
    ];
    let mut checks = Vec::new();
    let mut counted = 0;
    for &(f, expr, dt) in cases {
        let mut args = vec!["apply", f, "--expr", expr, "--out", "o.npy"];
        if !dt.is_empty() {
            args.extend_from_slice(&["--dtype", dt]);
        }
        let got = same_warnings_for_each(&d, &args, "o.npy");
        counted += got.len();
        let e = expr;
        let code = if dt.is_empty() {
            format!("x = np.load('{f}'); y = {e}")
        } else {
            format!("x = np.load('{f}'); y = np.asarray({e}).astype('{dt}')")
        };
        checks.push((code, got));
    }
    assert!(counted >= 30, "too few warnings seen: {checks:?}");
    // Counted by element: 1 / x divides 0.0 and -0.0 by zero.
    assert_eq!(
        checks[3].1,
        vec![("divide by zero encountered in divide".to_string(), 2)]
    );
    numpy_raises(&py, &d, &checks);
}
