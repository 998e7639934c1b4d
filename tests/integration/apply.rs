//! `mmrun apply` against real NumPy: in place, into `--out` with row and
//! column selections, integer semantics, several worker counts and both
//! spawn modes, and refusals before any work.

use std::fs;

use crate::util::*;

/// Runs `mmrun apply` on a fresh copy of a seeded file and checks the
/// result with NumPy's evaluation of the same assignment.
fn check(dtype: &str, shape: &str, expr: &str, extra: &[&str], numpy: &str) {
    let Some(py) = require_numpy("apply") else {
        return;
    };
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", shape, "--dtype", dtype, "--random", "uniform", "--seed", "7",
    ]);
    if dtype.starts_with('i') || dtype.starts_with('u') {
        // Small integers with negatives, so // and % see both signs.
        d.ok(&["apply", "x.npy", "--expr", "x % 23 - 11"]);
    }
    fs::copy(d.join("x.npy"), d.join("orig.npy")).unwrap();
    for (w, spawn) in [("1", "fork"), ("3", "fork"), ("2", "exec")] {
        fs::copy(d.join("orig.npy"), d.join("x.npy")).unwrap();
        let _ = fs::remove_file(d.join("out.npy"));
        let mut args = vec!["apply", "x.npy", "--expr", expr, "-w", w, "--spawn", spawn];
        args.extend_from_slice(extra);
        d.ok(&args);
        python(
            &py,
            d.path(),
            &format!(
                "import numpy as np\n\
                 x = np.load('orig.npy')\n\
                 sh = x.shape\n\
                 i = np.arange(sh[0]).reshape((-1,) + (1,) * (len(sh) - 1))\n\
                 j = np.arange(sh[1]).reshape((1, -1) + (1,) * (len(sh) - 2)) if len(sh) > 1 else None\n\
                 {numpy}\n\
                 got = np.load('out.npy' if {has_out} else 'x.npy')\n\
                 assert got.dtype == want.dtype, (got.dtype, want.dtype)\n\
                 assert got.shape == want.shape\n\
                 assert np.array_equal(got, want, equal_nan=True), (got, want)\n",
                has_out = if extra.contains(&"--out") { "True" } else { "False" },
            ),
        );
    }
}

#[test]
fn in_place_arithmetic_on_floats() {
    check("f4", "200,30", "x * 2 + 1", &[], "want = x * 2 + 1");
}

#[test]
fn in_place_with_rows_and_cols_like_a_slice_assignment() {
    check(
        "f8",
        "120,40",
        "0",
        &["--rows", "10:100", "--cols", "5:35"],
        "want = x.copy(); want[10:100, 5:35] = 0",
    );
}

#[test]
fn out_file_in_another_dtype_with_a_selection() {
    check(
        "f4",
        "90,50",
        "where(x > 0.5, i, -j)",
        &[
            "--rows", "-40:", "--cols", ":20", "--out", "out.npy", "--dtype", "f8",
        ],
        "r = np.where(x > 0.5, i, -j); want = x.astype(np.float64); want[-40:, :20] = r[-40:, :20]",
    );
}

#[test]
fn integer_floor_division_remainder_and_wrapping() {
    check(
        "i2",
        "64,33",
        "x // 3 + x % 7 * 1000 + abs(x) * 300",
        &[],
        "want = (x // 3 + x % 7 * 1000 + abs(x) * 300).astype(np.int16)",
    );
}

#[test]
fn true_division_of_integers_goes_to_float64_in_out() {
    check(
        "i4",
        "40,10",
        "x / 4 + k",
        &["--out", "out.npy"],
        "k = np.arange(10)[None, :]; want = x / 4 + k",
    );
}

#[test]
fn bad_expressions_are_refused_with_their_column() {
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "10,4", "--dtype", "u1", "--value", "3",
    ]);
    let before = d.snapshot();
    for (expr, needle) in [
        ("x + y", "column 5"),
        ("x +", "column"),
        ("sqrt(x, 2)", "sqrt"),
        ("x + 300", "300"),
        ("x ** -1", "-1"),
    ] {
        let out = d.run(&["apply", "x.npy", "--expr", expr]);
        assert_refused(&out, 2, needle);
        assert_eq!(d.snapshot(), before, "{expr} changed the directory");
    }
    let out = d.run(&["apply", "x.npy", "--expr", "x * 2", "--out", "x.npy"]);
    assert_eq!(code(&out), 2);
    assert_eq!(d.snapshot(), before);
}

#[test]
fn in_place_apply_that_reads_x_is_never_retried_or_resumed() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "10,4", "--value", "1"]);
    let out = d.run(&["apply", "x.npy", "--expr", "x + 1", "--retries", "2"]);
    assert_refused(&out, 2, "--out");
    // An expression that does not read x may be retried.
    d.ok(&["apply", "x.npy", "--expr", "i + j", "--retries", "2"]);
}
