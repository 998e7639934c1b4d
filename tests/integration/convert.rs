//! `mmrun convert` against real NumPy: every dtype pair against `astype`
//! bit for bit, the `--casting` matrix against `np.can_cast`, `--strict`,
//! big-endian, Fortran-order and raw inputs, worker counts and spawn modes,
//! N-d and empty shapes, and refusals that leave the directory untouched.

use std::fs;
use std::path::Path;

use crate::util::*;

const REFUSED: i32 = 2;
const FAILED: i32 = 1;

/// The dtypes convert supports, in the order NumPy's tables use.
const DTYPES: [&str; 12] = [
    "b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8",
];

/// Python helpers shared by the checks: `same(out, want)` asserts that the
/// file mmrun wrote holds exactly `want` (an array) as a native-endian,
/// C-order array of the same dtype and shape, byte for byte.
const SAME: &str = r#"
import numpy as np
def same(out, want, raw=False):
    want = np.array(want, dtype=want.dtype.newbyteorder('='), order='C')
    if raw:
        g = np.fromfile(out, dtype=want.dtype).reshape(want.shape)
    else:
        g = np.load(out)
        assert g.dtype == want.dtype and g.dtype.isnative, (out, g.dtype, want.dtype)
        assert g.flags.c_contiguous and not (g.ndim > 1 and np.isfortran(g)), out
    assert g.shape == want.shape, (out, g.shape, want.shape)
    assert g.tobytes() == want.tobytes(), (out, g.ravel()[:20], want.ravel()[:20])
"#;

fn py(py: &Path, d: &Dir, code: &str) -> String {
    python(py, d.path(), &format!("{SAME}\n{code}"))
}

/// Every pair of dtypes, on values whose conversion NumPy defines (float
/// to int only within range; everything else, wrapping and rounding
/// included), against `astype` bit for bit.
#[test]
fn every_dtype_pair_matches_astype() {
    let Some(p) = require_numpy("convert every_dtype_pair_matches_astype") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        r#"
ts = 'b1 i1 u1 i2 u2 i4 u4 i8 u8 f2 f4 f8'.split()
def values(s):
    dt = np.dtype(s)
    if dt.kind == 'b':
        return np.array([0, 1, 1, 0, 1], dtype=dt)
    if dt.kind in 'iu':
        info = np.iinfo(dt)
        v = [0, 1, 2, 3, 7, 100, 127, 128, 255, 256, 300, 2047, 2049, 65504, 65519, 65520,
             2**24 + 1, 2**31 - 1, 2**31, 2**53 + 1, 2**60 + 2**36 + 1, 2**63 - 2**39 - 1,
             2**64 - 2**39 - 1, -1, -2, -128, -129, -300, -32769, -2**31, -(2**60 + 2**36 + 1),
             int(info.max), int(info.max) - 1, int(info.min), int(info.min) + 1]
        return np.array([x for x in v if info.min <= x <= info.max], dtype=dt)
    f = np.finfo(dt)
    v = [0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -0.9, -1.5, 0.9999, 1.0, 3.7, -3.7, 127.9, 128.0,
         -128.9, -129.0, 255.5, 256.0, 1000.25, 2049.0000001, 32767.0, 65504.0, 65519.0, 65520.0,
         1e5, -1e5, 2.0**31 - 1, 2.0**31, 2.0**32 - 1, 2.0**53 + 2, 9.2e18, 1.8e19, 1e30, 3.5e38,
         1e300, -1e300, 1e-5, 1e-8, 6e-8, 2.9e-8, 1e-40, 1e-310, 1 / 3, float(f.max),
         float(f.tiny), float(f.smallest_subnormal), np.inf, -np.inf, np.nan, -np.nan]
    with np.errstate(all='ignore'):
        return np.array(v, dtype=np.float64).astype(dt)
n = 0
for s in ts:
    for t in ts:
        x = values(s)
        dt = np.dtype(t)
        if x.dtype.kind == 'f' and dt.kind in 'iu':
            # Only where NumPy's own result is defined: finite, in range
            # after truncation toward zero.
            info = np.iinfo(dt)
            lo, hi = float(info.min), float(int(info.max) + 1)
            with np.errstate(all='ignore'):
                tr = np.trunc(x.astype(np.float64))
            x = x[np.isfinite(tr) & (tr >= lo) & (tr < hi)]
        # Two rows per file where the length allows, so rows are real rows.
        if len(x) % 2 == 0:
            x = x.reshape(-1, 2)
        with np.errstate(all='ignore'):
            want = x.astype(dt)
        np.save(f'in_{s}_{t}.npy', x)
        np.save(f'want_{s}_{t}.npy', want)
        n += len(x.ravel())
print(n)
"#,
    );
    for (i, s) in DTYPES.iter().enumerate() {
        for t in DTYPES {
            let w = ["1", "2", "3"][i % 3];
            d.ok(&[
                "convert",
                &format!("in_{s}_{t}.npy"),
                &format!("out_{s}_{t}.npy"),
                "--dtype",
                t,
                "-w",
                w,
            ]);
        }
    }
    let report = py(
        &p,
        &d,
        r#"
ts = 'b1 i1 u1 i2 u2 i4 u4 i8 u8 f2 f4 f8'.split()
bad = []
for s in ts:
    for t in ts:
        g, w = np.load(f'out_{s}_{t}.npy'), np.load(f'want_{s}_{t}.npy')
        x = np.load(f'in_{s}_{t}.npy')
        if g.dtype != w.dtype or g.shape != w.shape:
            bad.append((s, t, 'dtype/shape', g.dtype, g.shape))
            continue
        gb = g.ravel().view(f'u{g.itemsize}')
        wb = w.ravel().view(f'u{w.itemsize}')
        for k in np.nonzero(gb != wb)[0][:3]:
            bad.append((s, t, x.ravel()[k], g.ravel()[k], w.ravel()[k]))
assert not bad, bad[:30]
print(len(ts) ** 2)
"#,
    );
    assert_eq!(report.trim(), "144");
}

/// `--casting` for every pair, every rule and both byte orders of the
/// input agrees with `np.can_cast`: refused ones exit 2 and change nothing.
#[test]
fn casting_matrix_matches_np_can_cast() {
    let Some(p) = require_numpy("convert casting_matrix_matches_np_can_cast") else {
        return;
    };
    let d = Dir::new();
    let table = py(
        &p,
        &d,
        r#"
ts = 'b1 i1 u1 i2 u2 i4 u4 i8 u8 f2 f4 f8'.split()
rules = ['no', 'equiv', 'safe', 'same_kind', 'unsafe']
for s in ts:
    for order in '<>':
        src = np.dtype(s).newbyteorder(order)
        if src.itemsize == 1 and order == '>':
            continue
        np.save(f'{s}{"be" if order == ">" else "le"}.npy', np.zeros((2, 3), dtype=src))
        for t in ts:
            for r in rules:
                ok = np.can_cast(src, np.dtype(t).newbyteorder('<'), r)
                print(f'{s} {order} {t} {r} {int(ok)}')
"#,
    );
    let before = d.snapshot();
    let (mut allowed, mut refused) = (0, 0);
    for line in table.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [s, order, t, rule, ok] = f[..] else {
            panic!("bad line {line}")
        };
        let file = format!("{s}{}.npy", if order == ">" { "be" } else { "le" });
        let out = d.run(&[
            "convert",
            &file,
            "out.npy",
            "--dtype",
            t,
            "--casting",
            rule,
            "--dry-run",
        ]);
        if ok == "1" {
            assert_eq!(
                code(&out),
                0,
                "{line}: NumPy allows it, mmrun refused: {}",
                stderr(&out)
            );
            allowed += 1;
        } else {
            assert_refused(&out, REFUSED, "np.can_cast(");
            assert!(stderr(&out).contains(rule), "{line}: {}", stderr(&out));
            refused += 1;
        }
        assert_eq!(d.snapshot(), before, "{line}: the directory changed");
    }
    // 12 little-endian + 9 big-endian sources, 12 targets, 5 rules.
    assert_eq!(allowed + refused, 21 * 12 * 5);
    assert!(refused > 500 && allowed > 500, "{allowed} {refused}");
    // A permitted conversion really runs: big-endian to native is 'equiv'.
    d.ok(&["convert", "f8be.npy", "out.npy", "--casting", "equiv"]);
    py(
        &p,
        &d,
        "same('out.npy', np.load('f8be.npy'))\nassert np.load('out.npy').dtype.str == '<f8'",
    );
}

/// Values `astype` leaves undefined get mmrun's documented result; with
/// `--strict` they fail the run (exit 1), nothing is published and the
/// error names the first offending row of each worker.
#[test]
fn undefined_values_saturate_and_strict_refuses_them() {
    let Some(p) = require_numpy("convert undefined_values_saturate_and_strict_refuses_them") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        r#"
x = np.linspace(-100, 100, 4096 * 8).reshape(4096, 8)
x[100, 3] = np.nan
x[200, 0] = np.inf
x[3000, 7] = -1e10
x[3001, 1] = 3e9
np.save('x.npy', x)
"#,
    );
    // Without --strict: NaN -> 0, out-of-range and inf saturate.
    d.ok(&["convert", "x.npy", "i4.npy", "--dtype", "i4", "-w", "2"]);
    py(
        &p,
        &d,
        r#"
x = np.load('x.npy')
with np.errstate(all='ignore'):
    want = np.where(np.isnan(x), 0, np.clip(np.trunc(x), -2**31, 2**31 - 1)).astype('i4')
same('i4.npy', want)
"#,
    );
    // With --strict: two workers (rows split at 2048), each names its first
    // offending row; the later one in the first worker is not reached.
    let before = d.names();
    let out = d.run(&[
        "convert", "x.npy", "s.npy", "--dtype", "i4", "--strict", "-w", "2",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), FAILED, "{err}");
    assert!(
        err.contains("row 100: element [100, 3] = nan cannot be converted to int32"),
        "{err}"
    );
    assert!(
        err.contains("row 3000: element [3000, 7] = -10000000000.0 cannot be converted to int32"),
        "{err}"
    );
    assert!(!err.contains("row 200:"), "{err}");
    assert!(err.contains("nothing was published"), "{err}");
    assert!(!d.join("s.npy").exists());
    // The failed run keeps its partial file and journal, as every failed
    // run does; --force discards them and starts over.
    let names = d.names();
    assert!(
        names.contains(&".s.npy.mmrun-partial".to_string()),
        "{names:?}"
    );
    assert!(names.len() > before.len());
    let again = d.run(&["convert", "x.npy", "s.npy", "--dtype", "i4"]);
    assert_refused(&again, REFUSED, "stale partial file");
    d.ok(&["convert", "x.npy", "s.npy", "--dtype", "i4", "--force"]);
    assert_eq!(
        fs::read(d.join("s.npy")).unwrap(),
        fs::read(d.join("i4.npy")).unwrap()
    );
    assert_eq!(d.names().len(), before.len() + 1, "{:?}", d.names());

    // --spawn exec workers refuse the same way.
    let out = d.run(&[
        "convert", "x.npy", "e.npy", "--dtype", "u8", "--strict", "--spawn", "exec",
    ]);
    assert_eq!(code(&out), FAILED, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("row 0: element [0, 0] = -100.0"),
        "{}",
        stderr(&out)
    );
    assert!(!d.join("e.npy").exists());
}

/// Each kind of value `--strict` refuses, and values it lets through.
#[test]
fn strict_checks_each_kind_of_loss() {
    let Some(p) = require_numpy("convert strict_checks_each_kind_of_loss") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        r#"
np.save('wrap.npy', np.array([1, 2, 300, 4], dtype='i4'))
np.save('neg.npy', np.array([[0, 5], [-1, 7]], dtype='i8'))
np.save('big.npy', np.array([1.0, 1e300, 2.0], dtype='f8'))
np.save('f2.npy', np.array([1, 65504, 70000], dtype='i8'))
np.save('u8.npy', np.array([0, 2**63], dtype='u8'))
np.save('inf.npy', np.array([1.0, np.inf], dtype='>f8'))
np.save('fine.npy', np.array([0.5, -0.9, 255.9, np.nan, np.inf, 1e-300, 3.0], dtype='f8'))
"#,
    );
    // (IN, T, the error, OUT without --strict: astype's values, or mmrun's
    // documented saturation where NumPy's result is undefined).
    let astype = "np.load(IN).astype(T)";
    let cases = [
        (
            "wrap.npy",
            "u1",
            "row 2: element [2] = 300 cannot be converted to uint8",
            astype,
        ),
        (
            "neg.npy",
            "u4",
            "row 1: element [1, 0] = -1 cannot be converted to uint32",
            astype,
        ),
        (
            "big.npy",
            "f4",
            "row 1: element [1] = 1e300 cannot be converted to float32",
            astype,
        ),
        (
            "f2.npy",
            "f2",
            "row 2: element [2] = 70000 cannot be converted to float16",
            astype,
        ),
        (
            "u8.npy",
            "i8",
            "row 1: element [1] = 9223372036854775808 cannot be converted to int64",
            astype,
        ),
        (
            "inf.npy",
            "i2",
            "row 1: element [1] = inf cannot be converted to int16",
            "np.array([1, 32767], T)",
        ),
    ];
    for (file, t, needle, want) in cases {
        let out = d.run(&["convert", file, "out.npy", "--dtype", t, "--strict"]);
        assert_eq!(code(&out), FAILED, "{file} {t}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{file} {t}: {}",
            stderr(&out)
        );
        assert!(!d.join("out.npy").exists());
        // Without --strict (and --force over the kept partial file).
        d.ok(&["convert", file, "out.npy", "--dtype", t, "--force"]);
        py(
            &p,
            &d,
            &format!(
                "IN, T = '{file}', '{t}'\nwith np.errstate(all='ignore'):\n    w = {want}\nsame('out.npy', w)"
            ),
        );
        fs::remove_file(d.join("out.npy")).unwrap();
    }
    // Truncation toward zero, NaN/inf to bool, underflow to zero and a
    // float that stays in range are all defined: --strict passes them.
    for t in ["b1", "f4"] {
        d.ok(&[
            "convert",
            "fine.npy",
            &format!("fine_{t}.npy"),
            "--dtype",
            t,
            "--strict",
        ]);
        py(
            &p,
            &d,
            &format!("same('fine_{t}.npy', np.load('fine.npy').astype('{t}'))"),
        );
    }
    let out = d.run(&["convert", "fine.npy", "u1.npy", "--dtype", "u1", "--strict"]);
    assert!(
        stderr(&out).contains("row 3: element [3] = nan"),
        "{}",
        stderr(&out)
    );
}

/// Big-endian and Fortran-order inputs (2-D, 3-D, 4-D, and both at once)
/// become native C-order files equal to NumPy's, with every worker count,
/// both spawn modes and dynamic scheduling giving identical bytes.
#[test]
fn big_endian_and_fortran_inputs_give_identical_bytes_for_any_workers() {
    let Some(p) = require_numpy("convert big_endian_and_fortran_inputs") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        r#"
rng = np.random.default_rng(5)
def arr(shape, dt):
    a = rng.standard_normal(shape) * 1000
    return a.astype(dt)
# 20000 rows of 120 bytes: several 1 MiB blocks per worker.
np.save('be2.npy', arr((20000, 15), '>f8'))
np.save('f2d.npy', np.asfortranarray(arr((3000, 7), '<i4')))
np.save('f3d.npy', np.asfortranarray(arr((3000, 7, 5), '<f4')))
np.save('f4d.npy', np.asfortranarray(arr((40, 3, 4, 5), '<u2')))
np.save('bef3.npy', np.asfortranarray(arr((2500, 6, 3), '>i8')))
np.save('be1.npy', arr((1000,), '>f2'))
"#,
    );
    let cases = [
        ("be2.npy", None),
        ("be2.npy", Some("f4")),
        ("f2d.npy", None),
        ("f2d.npy", Some("f8")),
        ("f3d.npy", Some("i2")),
        ("f4d.npy", None),
        ("bef3.npy", Some("f8")),
        ("be1.npy", Some("f4")),
    ];
    let runs: [&[&str]; 5] = [
        &["-w", "1"],
        &["-w", "2"],
        &["-w", "3"],
        &["-w", "3", "--spawn", "exec"],
        &["-w", "2", "--schedule", "dynamic", "--chunk-rows", "700"],
    ];
    for (file, dtype) in cases {
        let mut first: Option<Vec<u8>> = None;
        for (i, extra) in runs.iter().enumerate() {
            let out = format!("out{i}.npy");
            let mut args = vec!["convert", file, out.as_str()];
            if let Some(t) = dtype {
                args.extend(["--dtype", t]);
            }
            args.extend_from_slice(extra);
            d.ok(&args);
            let bytes = fs::read(d.join(&out)).unwrap();
            match &first {
                None => first = Some(bytes),
                Some(f) => assert!(*f == bytes, "{file} {extra:?} differs from -w 1"),
            }
        }
        let t = dtype.map_or("a.dtype".to_string(), |t| format!("'{t}'"));
        py(
            &p,
            &d,
            &format!(
                "a = np.load('{file}')\nwith np.errstate(all='ignore'):\n    w = a.astype({t})\nsame('out0.npy', w)"
            ),
        );
        for i in 0..runs.len() {
            fs::remove_file(d.join(&format!("out{i}.npy"))).unwrap();
        }
    }
    // The other commands' refusal names the exact command that fixes it.
    for (file, fixed) in [("be2.npy", "be2-native.npy"), ("f3d.npy", "f3d-native.npy")] {
        let out = d.run(&["fill", file, "--value", "1"]);
        let cmd = format!("mmrun convert {file} {fixed}");
        assert_refused(&out, REFUSED, &cmd);
        let argv: Vec<&str> = cmd.split(' ').skip(1).collect();
        d.ok(&argv);
        d.ok(&["fill", fixed, "--value", "1"]);
    }
}

/// Raw files in and out: a raw IN at an offset that is not a multiple of
/// the itemsize, big-endian and Fortran raw INs, `--raw` output, and a raw
/// IN whose size does not match refused.
#[test]
fn raw_inputs_and_outputs() {
    let Some(p) = require_numpy("convert raw_inputs_and_outputs") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        r#"
a = np.arange(-300, 300, dtype='<i2').reshape(50, 12)
open('odd.bin', 'wb').write(b'xyz' + a.tobytes())
b = (np.arange(60, dtype='>f4') / 7).reshape(6, 10)
b.tofile('be.bin')
c = np.asfortranarray(np.arange(24, dtype='<u4').reshape(2, 3, 4))
open('f.bin', 'wb').write(c.tobytes(order='A'))
"#,
    );
    d.ok(&[
        "convert",
        "odd.bin",
        "odd.npy",
        "--in-raw",
        "--in-dtype",
        "i2",
        "--in-shape",
        "50,12",
        "--in-offset",
        "3",
        "--dtype",
        "f4",
        "-w",
        "2",
    ]);
    d.ok(&[
        "convert",
        "be.bin",
        "be.raw",
        "--in-raw",
        "--in-dtype",
        ">f4",
        "--in-shape",
        "6,10",
        "--raw",
        "--dtype",
        "f8",
    ]);
    d.ok(&[
        "convert",
        "f.bin",
        "f.npy",
        "--in-raw",
        "--in-dtype",
        "u4",
        "--in-shape",
        "2,3,4",
        "--in-order",
        "F",
    ]);
    // A raw IN without --in-shape is 1-D, as numpy.memmap reads it.
    d.ok(&[
        "convert",
        "be.bin",
        "flat.npy",
        "--in-raw",
        "--in-dtype",
        ">f4",
    ]);
    py(
        &p,
        &d,
        r#"
a = np.memmap('odd.bin', dtype='<i2', mode='r', offset=3, shape=(50, 12))
same('odd.npy', a.astype('f4'))
b = np.memmap('be.bin', dtype='>f4', mode='r', shape=(6, 10))
same('be.raw', b.astype('f8'), raw=True)
import os
assert os.path.getsize('be.raw') == 6 * 10 * 8
c = np.memmap('f.bin', dtype='<u4', mode='r', shape=(2, 3, 4), order='F')
same('f.npy', np.ascontiguousarray(c))
same('flat.npy', np.fromfile('be.bin', dtype='>f4'))
"#,
    );
    let before = d.snapshot();
    let out = d.run(&[
        "convert",
        "be.bin",
        "x.npy",
        "--in-raw",
        "--in-dtype",
        ">f4",
        "--in-shape",
        "7,10",
    ]);
    assert_refused(&out, REFUSED, "needs 280");
    let out = d.run(&[
        "convert",
        "odd.bin",
        "x.npy",
        "--in-raw",
        "--in-dtype",
        "i2",
    ]);
    assert_refused(&out, REFUSED, "not a multiple");
    let out = d.run(&["convert", "odd.bin", "x.npy"]);
    assert_refused(&out, REFUSED, "--in-raw --in-dtype");
    let out = d.run(&["convert", "odd.bin", "x.npy", "--in-dtype", "i2"]);
    assert_refused(&out, REFUSED, "add --in-raw");
    let out = d.run(&["convert", "odd.bin", "x.npy", "--in-raw"]);
    assert_refused(&out, REFUSED, "--in-raw needs --in-dtype");
    assert_eq!(d.snapshot(), before);
}

/// 0-d, 1-d, 5-d and empty arrays.
#[test]
fn nd_and_empty_shapes() {
    let Some(p) = require_numpy("convert nd_and_empty_shapes") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        r#"
np.save('s0.npy', np.array(3.75, dtype='>f8'))
np.save('s1.npy', np.arange(10, dtype='i8'))
np.save('s5.npy', np.asfortranarray(np.arange(2 * 3 * 2 * 4 * 3, dtype='i2').reshape(2, 3, 2, 4, 3)))
np.save('e05.npy', np.zeros((0, 5), dtype='f4'))
np.save('e50.npy', np.asfortranarray(np.zeros((5, 0), dtype='>u2')))
np.save('e000.npy', np.zeros((0,), dtype='b1'))
"#,
    );
    for (file, t) in [
        ("s0.npy", "i4"),
        ("s1.npy", "u1"),
        ("s5.npy", "f2"),
        ("e05.npy", "i8"),
        ("e50.npy", "f4"),
        ("e000.npy", "f8"),
    ] {
        for w in ["1", "3"] {
            d.ok(&["convert", file, "out.npy", "--dtype", t, "-w", w, "--force"]);
            py(
                &p,
                &d,
                &format!("same('out.npy', np.load('{file}').astype('{t}'))"),
            );
        }
    }
}

/// Refusals before any work: one line, exit 2, nothing created.
#[test]
fn refusals_change_nothing() {
    let Some(p) = require_numpy("convert refusals_change_nothing") else {
        return;
    };
    let d = Dir::new();
    py(
        &p,
        &d,
        "np.save('x.npy', np.ones((4, 3), dtype='f4'))\nnp.save('y.npy', np.ones(2))\n\
         open('notes.txt', 'w').write('hello there')\nimport os\nos.mkdir('sub')\n\
         os.symlink('x.npy', 'link.npy')",
    );
    let before = d.snapshot();
    let cases: [(&[&str], &str); 11] = [
        (&["convert", "missing.npy", "o.npy"], "missing.npy"),
        (&["convert", "sub", "o.npy"], "is a directory"),
        (&["convert", "notes.txt", "o.npy"], "not a .npy file"),
        (&["convert", "x.npy", "x.npy"], "is the input file"),
        (
            &["convert", "x.npy", "x.npy", "--force"],
            "is the input file",
        ),
        (
            &["convert", "x.npy", "link.npy", "--force"],
            "is the input file",
        ),
        (
            &["convert", "x.npy", "y.npy"],
            "already exists: use --force",
        ),
        (
            &["convert", "x.npy", "o.npy", "--dtype", "M8[s]"],
            "convert from float32 (<f4) to datetime64[s] (<M8[s]) is not supported",
        ),
        (
            &["convert", "x.npy", "o.npy", "--dtype", ">f4"],
            "big-endian",
        ),
        (
            &[
                "convert",
                "x.npy",
                "o.npy",
                "--dtype",
                "i4",
                "--casting",
                "safe",
            ],
            "np.can_cast('<f4', '<i4', 'safe') is False",
        ),
        (
            &["convert", "x.npy", "o.npy", "--casting", "sometimes"],
            "sometimes",
        ),
    ];
    for (args, needle) in cases {
        let out = d.run(args);
        assert_refused(&out, REFUSED, needle);
        assert_eq!(d.snapshot(), before, "{args:?} changed the directory");
    }
    // --force replaces an existing OUT atomically with the conversion.
    d.ok(&["convert", "x.npy", "y.npy", "--force", "--dtype", "u1"]);
    py(&p, &d, "same('y.npy', np.ones((4, 3), dtype='u1'))");
}
