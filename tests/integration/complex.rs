//! complex64 and complex128 (`c8`, `c16`) through the real binary, against
//! live NumPy: `apply --expr` arithmetic, comparisons and functions, in
//! place and into `--out` files with `--dtype` casts, Python complex
//! literals under NEP 50, and the refusals (NumPy's own, and mmrun's where
//! it would drop an imaginary part or does not compute a function).
//!
//! Arithmetic, comparisons, `abs`, `real`/`imag`/`conj`, integral powers and
//! casts are compared bit for bit (NaN positions must match; NaN payloads
//! are not compared). `sqrt exp log log2 log10 sin cos tan tanh angle` and
//! non-integral `**` are
//! compared within 8 ULP of the result's magnitude, on finite inputs: NumPy
//! takes them from the C library (glibc's `csqrtf`…, computed in the
//! part's precision), mmrun computes complex64 through float64 and rounds
//! once, so the two differ in the last bit or two (measured: at most
//! 1.5e-7 relative for complex64, 3e-16 for complex128); for infinite and
//! NaN inputs the C library's special values (C99 Annex G) are not
//! reproduced.

use crate::util::*;

/// The input files: random complex values of both dtypes with NaN, ±inf
/// and zeros among them, an odd shape (tails of every SIMD width), and
/// real files for mixed-kind promotion.
const SETUP: &str = "import numpy as np\n\
rng = np.random.default_rng(13)\n\
for dt in ('c8', 'c16'):\n\
\x20   a = (rng.standard_normal((37, 29)) * 3 + 1j * rng.standard_normal((37, 29)) * 3).astype(dt)\n\
\x20   a[0, :8] = [0, np.nan, complex(np.inf, 1), complex(1, -np.inf), complex(np.nan, 2), -0.0, 1j, complex(-2, 0)]\n\
\x20   np.save(dt + '.npy', a)\n\
np.save('f4.npy', (rng.standard_normal((37, 29)) * 3).astype('f4'))\n\
np.save('i2.npy', rng.integers(-300, 300, (37, 29), dtype='i2'))\n";

/// Python that checks every `(file, expr, out, tolerance)` against NumPy's
/// `out[...] = EXPR` (`tolerance` in ULP of the result's magnitude; 0 is
/// bit for bit).
const CHECK: &str = "import numpy as np, warnings\n\
warnings.simplefilter('ignore')\n\
def same(got, want, ulps, what, x):\n\
\x20   assert got.dtype == want.dtype, (what, got.dtype, want.dtype)\n\
\x20   assert got.shape == want.shape, (what, got.shape, want.shape)\n\
\x20   if ulps:\n\
\x20       fin = np.isfinite(x)\n\
\x20       got, want = got[fin], want[fin]\n\
\x20   if got.dtype.kind == 'b' or got.dtype.kind in 'iu':\n\
\x20       assert (got == want).all(), what\n\
\x20       return\n\
\x20   parts = lambda a: (a.real, a.imag) if a.dtype.kind == 'c' else (a,)\n\
\x20   for g, w in zip(parts(got), parts(want)):\n\
\x20       assert (np.isnan(g) == np.isnan(w)).all(), (what, got[np.isnan(g) != np.isnan(w)], want[np.isnan(g) != np.isnan(w)])\n\
\x20   ok = ~np.isnan(np.abs(want))\n\
\x20   if ulps == 0:\n\
\x20       for g, w in zip(parts(got), parts(want)):\n\
\x20           m = ~np.isnan(w)\n\
\x20           bad = g[m].view(f'u{g.itemsize}') != w[m].view(f'u{w.itemsize}')\n\
\x20           assert not bad.any(), (what, g[m][bad][:4], w[m][bad][:4])\n\
\x20   else:\n\
\x20       eps = np.finfo(got.real.dtype).eps\n\
\x20       err = np.abs(got[ok].astype('c16') - want[ok].astype('c16'))\n\
\x20       lim = ulps * eps * np.maximum(np.abs(want[ok].astype('c16')), np.finfo(got.real.dtype).tiny)\n\
\x20       bad = ~(err <= lim) & np.isfinite(np.abs(want[ok]))\n\
\x20       assert not bad.any(), (what, got[ok][bad][:4], want[ok][bad][:4])\n\
def numpy_apply(f, e, dtype=None, rows=None, cols=None):\n\
\x20   x = np.load(f)\n\
\x20   i = np.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))\n\
\x20   env = {'np': np, 'x': x, 'i': i, 'abs': np.abs, 'sqrt': np.sqrt, 'exp': np.exp, 'log': np.log, 'sin': np.sin, 'cos': np.cos, 'real': np.real, 'imag': np.imag, 'conj': np.conj, 'angle': np.angle}\n\
\x20   r = np.asarray(eval(e, env))\n\
\x20   if dtype is None and rows is None and cols is None:\n\
\x20       return np.broadcast_to(r, x.shape).astype(r.dtype)\n\
\x20   out = x.astype(dtype or x.dtype)\n\
\x20   sel = (slice(*rows) if rows else slice(None), slice(*cols) if cols else slice(None))\n\
\x20   if rows or cols:\n\
\x20       env['x'] = x[sel]\n\
\x20       env['i'] = i[sel[0]]\n\
\x20       r = np.asarray(eval(e, env))\n\
\x20   out[sel] = r\n\
\x20   return out\n";

fn check(py: &std::path::Path, d: &Dir, cases: &[String]) {
    python(
        py,
        d.path(),
        &format!(
            "{CHECK}for f, e, out, ulps, kw in [{}]:\n\
             \x20   same(np.load(out), numpy_apply(f, e, **kw), ulps, (f, e, kw), np.load(f))\n",
            cases.join(", ")
        ),
    );
}

/// `apply --expr` on c8 and c16 files into new files: NumPy's result dtype
/// (NEP 50 for Python complex literals) and NumPy's bytes.
#[test]
fn apply_complex_matches_numpy() {
    let Some(py) = require_numpy("complex apply") else {
        return;
    };
    let d = Dir::new();
    python(&py, d.path(), SETUP);
    let exact = [
        "x * 2.5",
        "x * x",
        "x * (1.5 - 2j)",
        "x / (x + 1j)",
        "x / 3",
        "x + 2 + 3j",
        "x - 1j",
        "-x",
        "x ** 2",
        "x ** 3",
        "x ** 5",
        "x ** -1",
        "x ** -2",
        "x ** 0",
        "abs(x)",
        "np.real(x)",
        "np.imag(x) * 2",
        "np.conj(x) + 1",
        "np.conjugate(x)",
        "x < 1",
        "x >= x * 1j",
        "x == x",
        "x != 1j",
        "np.isnan(x)",
        "np.isinf(x)",
        "np.isfinite(x)",
        "np.maximum(x, 1j)",
        "np.minimum(x, 2)",
        "np.where(np.real(x) > 0, x, 1j)",
        "x + np.float64(1)",
        "x + np.float32(1)",
        "x * i",
        "np.complex128(x) * 3",
        "x.astype('c8') + 1",
        "np.float32(np.abs(x))",
        "abs(3 + 4j) + x",
    ];
    let approx = [
        "sqrt(x)",
        "exp(x / 4)",
        "log(x)",
        "sin(x)",
        "cos(x)",
        "np.tan(x / 4)",
        "np.tanh(x)",
        "np.log2(x)",
        "np.log10(x)",
        "x ** 0.5",
        "x ** (1 + 1j)",
        "np.angle(x)",
    ];
    let mut cases = Vec::new();
    let mut k = 0;
    for f in ["c8.npy", "c16.npy"] {
        for (e, ulps) in exact
            .iter()
            .map(|e| (e, 0))
            .chain(approx.iter().map(|e| (e, 8)))
        {
            let out = format!("o{k}.npy");
            k += 1;
            d.ok(&["apply", f, "--expr", e, "--out", &out, "-w", "3"]);
            cases.push(format!("({f:?}, {e:?}, {out:?}, {ulps}, {{}})"));
        }
    }
    // Mixed kinds: a Python complex makes a real array complex (NEP 50:
    // float32 → complex64, int16 → complex128), a complex64 array with a
    // float64 one is complex128.
    for (f, e) in [
        ("f4.npy", "x * 1j"),
        ("f4.npy", "x + (2 - 1j)"),
        ("f4.npy", "np.angle(x)"),
        ("f4.npy", "np.imag(x) + np.real(x)"),
        ("i2.npy", "x * (2 + 1j)"),
        ("i2.npy", "np.conj(x)"),
        ("i2.npy", "x.astype(np.complex64) / 7"),
    ] {
        let out = format!("o{k}.npy");
        k += 1;
        d.ok(&["apply", f, "--expr", e, "--out", &out]);
        let ulps = if e.contains("angle") { 8 } else { 0 };
        cases.push(format!("({f:?}, {e:?}, {out:?}, {ulps}, {{}})"));
    }
    check(&py, &d, &cases);
}

/// In place (with `--rows`/`--cols`), `--out` with `--dtype` casts, and the
/// same bytes for any worker count and schedule.
#[test]
fn apply_complex_in_place_casts_and_splits() {
    let Some(py) = require_numpy("complex apply in place") else {
        return;
    };
    let d = Dir::new();
    python(&py, d.path(), SETUP);
    let mut cases = Vec::new();
    for f in ["c8", "c16"] {
        let src = format!("{f}.npy");
        // In place: a copy of the input is rewritten.
        let copy = format!("{f}-in.npy");
        std::fs::copy(d.join(&src), d.join(&copy)).unwrap();
        d.ok(&["apply", &copy, "--expr", "x * (1 - 1j) + 2", "-w", "2"]);
        cases.push(format!(
            "({src:?}, 'x * (1 - 1j) + 2', {copy:?}, 0, {{'dtype': np.dtype({f:?})}})"
        ));
        // A real result stored into the complex file: the real part.
        let part = format!("{f}-abs.npy");
        std::fs::copy(d.join(&src), d.join(&part)).unwrap();
        d.ok(&[
            "apply", &part, "--expr", "abs(x)", "--rows", "3:30", "--cols", "2:-2",
        ]);
        cases.push(format!(
            "({src:?}, 'abs(x)', {part:?}, 0, {{'rows': (3, 30), 'cols': (2, -2)}})"
        ));
        // --out with casts NumPy's assignment makes.
        for (e, dt) in [
            ("x * 2", "c16"),
            ("x * 2", "c8"),
            ("np.real(x)", "f8"),
            ("abs(x)", "f2"),
            ("x != 0", "b1"),
            ("x", "b1"),
        ] {
            let out = format!("{f}-{dt}-{}.npy", cases.len());
            d.ok(&["apply", &src, "--expr", e, "--out", &out, "--dtype", dt]);
            cases.push(format!(
                "({src:?}, {e:?}, {out:?}, 0, {{'dtype': np.dtype({dt:?})}})"
            ));
        }
        // Into a wider complex, only some rows: the others are x cast.
        let out = format!("{f}-rows.npy");
        d.ok(&[
            "apply", &src, "--expr", "x * 1j", "--rows", "5:9", "--out", &out, "--dtype", "c16",
        ]);
        cases.push(format!(
            "({src:?}, 'x * 1j', {out:?}, 0, {{'dtype': np.dtype('c16'), 'rows': (5, 9)}})"
        ));
        // Any worker count and schedule: the same bytes.
        same_bytes_for_each(
            &d,
            &[
                "apply",
                &src,
                "--expr",
                "x * x / (x + 1)",
                "--out",
                "s.npy",
                "--force",
            ],
            "s.npy",
            &[
                &["-w", "1"],
                &["-w", "3"],
                &["-w", "2", "--schedule", "dynamic", "--chunk-rows", "3"],
            ],
        );
    }
    check(&py, &d, &cases);
}

/// What NumPy refuses on complex numbers, what mmrun refuses (an imaginary
/// part that would be dropped, functions it does not compute, big-endian
/// files), each exit 2 with one line and nothing written.
#[test]
fn complex_refusals() {
    let Some(py) = require_numpy("complex refusals") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.save('c.npy', (np.arange(12) + 1j).astype('c8').reshape(3, 4))\n\
         np.save('f.npy', np.arange(12, dtype='f4').reshape(3, 4))\n\
         np.save('big.npy', (np.arange(12) + 1j).astype('>c16').reshape(3, 4))\n",
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["c.npy", "--expr", "np.floor(x)"],
            "ufunc 'floor' not supported",
        ),
        (
            &["c.npy", "--expr", "x % 2"],
            "ufunc 'remainder' not supported",
        ),
        (
            &["c.npy", "--expr", "x // 2"],
            "ufunc 'floor_divide' not supported",
        ),
        (
            &["c.npy", "--expr", "x & 1"],
            "ufunc 'bitwise_and' not supported",
        ),
        (&["c.npy", "--expr", "~x"], "ufunc 'invert' not supported"),
        (
            &["c.npy", "--expr", "np.arctan2(x, 1)"],
            "ufunc 'arctan2' not supported",
        ),
        (
            &["c.npy", "--expr", "np.sign(x)"],
            "np.sign of complex64 is not computed by mmrun",
        ),
        (
            &["c.npy", "--expr", "np.clip(x, 0, 1)"],
            "np.clip of complex64",
        ),
        (&["c.npy", "--expr", "np.float32(1j)"], "not 'complex'"),
        (
            &["c.npy", "--expr", "1j < 2"],
            "'<' not supported between instances of 'complex' and 'int'",
        ),
        (&["c.npy", "--expr", "2jx"], "invalid number literal"),
        (
            &["c.npy", "--expr", "1j // 2"],
            "unsupported operand type(s) for //",
        ),
        (&["f.npy", "--expr", "x * 1j"], "drops the imaginary part"),
        (&["f.npy", "--expr", "1j"], "cannot be stored into float32"),
        (
            &[
                "c.npy", "--expr", "x + 1", "--out", "o.npy", "--dtype", "f4",
            ],
            "drops the imaginary part",
        ),
        (
            &[
                "c.npy", "--expr", "abs(x)", "--rows", "1:", "--out", "o.npy", "--dtype", "f8",
            ],
            "drops the imaginary part",
        ),
        (&["big.npy", "--expr", "x * 2"], "mmrun convert big.npy"),
    ];
    for (args, needle) in cases {
        let before = d.snapshot();
        let mut all = vec!["apply"];
        all.extend_from_slice(args);
        let out = d.run(&all);
        assert_refused(&out, 2, needle);
        assert_eq!(d.snapshot(), before, "{args:?} changed the directory");
    }
    // The suggestions work: --out with a complex dtype, and the convert
    // command for a big-endian file.
    d.ok(&[
        "apply", "f.npy", "--expr", "x * 1j", "--out", "o.npy", "--dtype", "c16",
    ]);
    d.ok(&["convert", "big.npy", "big-native.npy"]);
    d.ok(&["apply", "big-native.npy", "--expr", "x * 2"]);
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         assert (np.load('o.npy') == np.load('f.npy') * 1j).all()\n\
         assert (np.load('big-native.npy') == np.load('big.npy') * 2).all()\n",
    );
}

/// reduce computes sum and mean only on complex input; any other op is
/// refused (exit 2, one line, nothing written) naming commands that give
/// NumPy's answer from the parts: they do, run here against np.sum,
/// np.mean and np.var of the complex array.
#[test]
fn reduce_refuses_complex_with_commands_that_work() {
    let Some(py) = require_numpy("complex reduce refusal") else {
        return;
    };
    let d = Dir::new();
    python(&py, d.path(), SETUP);
    // Finite values: with NaN or inf parts NumPy's complex mean divides
    // (nan + 1j) by n into nan+nanj, where the parts keep 1j/n.
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         for f in ('c8', 'c16'):\n\
         \x20   x = np.load(f + '.npy')\n\
         \x20   x[0] = 1 - 2j\n\
         \x20   np.save(f + 'fin.npy', x)\n",
    );
    for f in ["c8fin", "c16fin"] {
        let file = format!("{f}.npy");
        for args in [
            &["reduce", &file, "--op", "var", "--axis", "all"][..],
            &[
                "reduce", &file, "--op", "max", "--axis", "0", "--out", "m.npy",
            ],
        ] {
            let before = d.snapshot();
            let out = d.run(args);
            assert_refused(&out, 2, "reduce computes sum and mean on");
            assert!(
                stderr(&out).contains("--expr 'real(x)'"),
                "{}",
                stderr(&out)
            );
            assert_eq!(d.snapshot(), before, "{args:?}");
        }
        // The commands the message names, with FILE filled in.
        let (re, im) = (format!("{f}.npy-real.npy"), format!("{f}.npy-imag.npy"));
        d.ok(&["apply", &file, "--expr", "real(x)", "--out", &re]);
        d.ok(&["apply", &file, "--expr", "imag(x)", "--out", &im]);
        for (op, out) in [("sum", "s"), ("mean", "m"), ("var", "v")] {
            for part in [&re, &im] {
                let o = format!("{part}-{out}.npy");
                d.ok(&["reduce", part, "--op", op, "--axis", "0", "--out", &o]);
            }
        }
        python(
            &py,
            d.path(),
            &format!(
                "import numpy as np\n\
                 part = lambda p, o: np.load('{f}.npy-' + p + '.npy-' + o + '.npy')\n\
                 x0 = np.load('{f}.npy')\n\
                 for o, fn in (('s', np.sum), ('m', np.mean), ('v', np.var)):\n\
                 \x20   want = fn(x0.astype('c16'), axis=0)\n\
                 \x20   got = part('real', o) + part('imag', o) if o == 'v' else np.empty(want.shape, 'c16')\n\
                 \x20   if o != 'v':\n\
                 \x20       got.real, got.imag = part('real', o), part('imag', o)\n\
                 \x20   close = lambda a, b: np.isclose(a, b, rtol=1e-5, equal_nan=True)\n\
                 \x20   ok = close(got.real, want.real) & close(got.imag, want.imag)\n\
                 \x20   assert ok.all(), (o, got[~ok], want[~ok])\n"
            ),
        );
    }
}

/// `reduce --op sum|mean` of complex64/complex128 (refused before, "reduce
/// does not compute on complex64"): NumPy's result dtype (the input's, or
/// `--dtype c16`) and shape along every axis form, `--rows`/`--cols`, the
/// same bytes for any worker count, schedule and spawn mode, values equal
/// to NumPy's complex128 answer to float32/float64 rounding (mmrun
/// accumulates each part in float64), a one-number result printed as
/// NumPy prints it and reported as that text, and a real `--dtype`
/// refused as NumPy refuses the cast.
#[test]
fn reduce_sum_and_mean_of_complex_agree_with_numpy() {
    let Some(py) = require_numpy("complex reduce") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         rng = np.random.default_rng(3)\n\
         for dt in ('c8', 'c16'):\n\
         \x20   a = (rng.standard_normal((37, 5, 6)) + 1j * rng.standard_normal((37, 5, 6))).astype(dt)\n\
         \x20   np.save(dt + '3.npy', a)\n\
         \x20   np.save(dt + '2.npy', a.reshape(37, 30))\n\
         \x20   np.save(dt + '1.npy', a.reshape(-1))\n",
    );
    let configs: &[&[&str]] = &[
        &["-w", "1"],
        &[
            "-w",
            "3",
            "--spawn",
            "exec",
            "--schedule",
            "dynamic",
            "--chunk-rows",
            "1",
        ],
    ];
    // Every axis form on c8 and c16 (sum of one, mean of the other, and the
    // reverse on the 3-D file); --dtype c16 and --rows/--cols on some.
    let mut cases = Vec::new();
    let mut run = |f: &str, op: &str, axis: &str, extra: &[&str]| {
        let out = format!("o{}.npy", cases.len());
        let mut args = vec![
            "reduce", f, "--op", op, "--axis", axis, "--out", &out, "--force",
        ];
        args.extend_from_slice(extra);
        same_bytes_for_each(&d, &args, &out, configs);
        cases.push(format!(
            "('{f}', '{op}', '{axis}', {:?}, '{out}')",
            extra.join(" ")
        ));
    };
    for (dt, op, other) in [("c8", "sum", "mean"), ("c16", "mean", "sum")] {
        for axis in ["all", "0"] {
            run(&format!("{dt}1.npy"), op, axis, &[]);
        }
        for axis in ["all", "0", "1", "-1", "rows"] {
            run(&format!("{dt}2.npy"), op, axis, &[]);
        }
        for axis in ["all", "0", "1", "2", "1,2", "0,2", "0,1", "rows"] {
            run(&format!("{dt}3.npy"), other, axis, &[]);
        }
        for axis in ["all", "1"] {
            run(
                &format!("{dt}2.npy"),
                other,
                axis,
                &["--rows", "3:30", "--cols", "1:4"],
            );
        }
    }
    run("c82.npy", "sum", "0", &["--dtype", "c16"]);
    run("c83.npy", "mean", "all", &["--dtype", "c16"]);
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             for f, op, axis, extra, out in [{}]:\n\
             \x20   x = np.load(f)\n\
             \x20   if '--rows' in extra: x = x[3:30, 1:4]\n\
             \x20   ax = None if axis == 'all' else (tuple(range(1, x.ndim)) if axis == 'rows' else eval('(' + axis + ',)'))\n\
             \x20   kw = {{'dtype': 'c16'}} if 'c16' in extra else {{}}\n\
             \x20   want = np.asarray(getattr(np, op)(x, axis=ax, **kw))\n\
             \x20   got = np.load(out)\n\
             \x20   assert got.dtype == want.dtype and got.shape == want.shape, (f, op, axis, extra, got.dtype, got.shape, want.dtype, want.shape)\n\
             \x20   exact = np.asarray(getattr(np, op)(x.astype('c16'), axis=ax))\n\
             \x20   rtol = 1e-6 if got.dtype == np.complex64 else 1e-12\n\
             \x20   scale = getattr(np, op)(np.abs(x.real) + np.abs(x.imag), axis=ax)\n\
             \x20   ok = np.abs(got - exact) <= rtol * scale\n\
             \x20   assert np.all(ok), (f, op, axis, extra, got, exact)\n",
            cases.join(", ")
        ),
    );
    // One number: printed as print() prints NumPy's, reported as that text.
    for (f, op) in [("c82.npy", "sum"), ("c163.npy", "mean")] {
        let out = d.ok(&["reduce", f, "--op", op, "--axis", "all", "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = stdout(&d.ok(&["reduce", f, "--op", op, "--axis", "all"]));
        assert_eq!(report["results"]["value"].as_str(), Some(text.trim()));
        let want = python(
            &py,
            d.path(),
            &format!(
                "import numpy as np\n\
                 x = np.load('{f}')\n\
                 v = complex(np.{op}(x.astype('c16')))\n\
                 t = np.complex64(v) if x.dtype == np.complex64 else np.complex128(v)\n\
                 print(t)\n"
            ),
        );
        assert_eq!(text.trim(), want.trim(), "{f} {op}");
    }
    // inf and NaN parts: NumPy's complex mean divides by n + 0j, so a part
    // is NaN where the other part's sum is inf or NaN; sums keep each part.
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         a = np.ones((6, 4), 'c8') * (1 - 2j)\n\
         a[0, 1] = complex(np.inf, 1)\n\
         a[2, 2] = complex(1, -np.inf)\n\
         a[3, 0] = complex(np.nan, 0)\n\
         a[4, 3] = complex(0, np.nan)\n\
         np.save('cn.npy', a)\n\
         np.save('cn16.npy', a.astype('c16'))\n",
    );
    for f in ["cn.npy", "cn16.npy"] {
        for (op, axis) in [("mean", "0"), ("mean", "1"), ("sum", "0"), ("mean", "all")] {
            let out = format!("n_{op}_{axis}_{f}");
            d.ok(&["reduce", f, "--op", op, "--axis", axis, "--out", &out]);
            python(
                &py,
                d.path(),
                &format!(
                    "import numpy as np, warnings\n\
                     warnings.simplefilter('ignore')\n\
                     x = np.load('{f}')\n\
                     want = np.asarray(np.{op}(x, axis=None if '{axis}' == 'all' else {axis}))\n\
                     got = np.load('{out}')\n\
                     assert got.dtype == want.dtype and got.shape == want.shape\n\
                     for g, w in ((got.real, want.real), (got.imag, want.imag)):\n\
                     \x20   assert (np.isnan(g) == np.isnan(w)).all(), ('{f} {op} {axis}', got, want)\n\
                     \x20   assert np.allclose(g[~np.isnan(g)], w[~np.isnan(w)], rtol=1e-6), ('{f} {op} {axis}', got, want)\n"
                ),
            );
        }
    }
    // Complex to real is a cast NumPy refuses (same_kind): nothing written.
    let before = d.snapshot();
    let out = d.run(&[
        "reduce", "c82.npy", "--op", "sum", "--axis", "0", "--dtype", "f4", "--out", "r.npy",
    ]);
    assert_refused(&out, 2, "NumPy refuses to cast it to float32");
    assert_eq!(d.snapshot(), before);
}
