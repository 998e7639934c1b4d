//! Every fixed-size dtype NumPy writes, through the commands that only lay
//! out the file: `create` writes the header `np.save` writes (byte for
//! byte), `exec` lays out the rows for a program that writes them, and the
//! computing commands refuse such a file with nothing changed. NumPy is the
//! oracle throughout.

use std::fs;
use std::path::Path;

use crate::util::{assert_refused, python, require_numpy, stdout, Dir};

/// Dtypes the kernels do not compute on, as the CLI spells them, with a
/// NumPy spelling of the same dtype.
const LAYOUT_ONLY: &[(&str, &str)] = &[
    ("c8", "complex64"),
    ("complex128", "c16"),
    ("g", "longdouble"),
    ("c32", "clongdouble"),
    ("M8[ns]", "datetime64[ns]"),
    ("datetime64[D]", "M8[D]"),
    ("M8[10ms]", "M8[10ms]"),
    ("M8", "M8"),
    ("m8[s]", "timedelta64[s]"),
    ("<m8[us]", "m8[us]"),
    ("S8", "S8"),
    ("S3", "S3"),
    ("U4", "U4"),
    ("<U1", "U1"),
    ("V5", "V5"),
];

/// The program `exec` runs: fills its rows' bytes with a pattern that
/// depends on the byte's global position, whatever the dtype.
const PATTERN_PROGRAM: &str = r#"
import numpy as np
import mmrun.worker as w
r = w.rows()
b = r.view(np.uint8).reshape(-1)
start = w.row_start * (r.nbytes // max(len(r), 1))
b[:] = (np.arange(start, start + b.size) * 7 % 251).astype(np.uint8)
w.flush()
"#;

fn repo_python_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// `create --npy-header compact` writes the file `np.save(np.zeros(..))`
/// writes, byte for byte, for every layout-only dtype (and `np.load` reads
/// the page-padded default with the same dtype); `info` describes it.
#[test]
fn create_writes_what_np_save_writes_for_every_fixed_size_dtype() {
    let Some(py) = require_numpy("create_writes_what_np_save_writes_for_every_fixed_size_dtype")
    else {
        return;
    };
    let d = Dir::new();
    let mut script = String::from("import numpy as np\n");
    for (i, (cli, numpy)) in LAYOUT_ONLY.iter().enumerate() {
        d.ok(&[
            "create",
            &format!("c{i}.npy"),
            "--shape",
            "5,3",
            "--dtype",
            cli,
            "--npy-header",
            "compact",
        ]);
        d.ok(&[
            "create",
            &format!("p{i}.npy"),
            "--shape",
            "4",
            "--dtype",
            cli,
        ]);
        let info = crate::util::stdout(&d.ok(&["info", &format!("p{i}.npy"), "--json"]));
        let doc: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(doc["computable"], false, "{cli}: {doc}");
        script.push_str(&format!(
            "np.save('n{i}.npy', np.zeros((5, 3), '{numpy}'))\n\
             p = np.load('p{i}.npy')\n\
             assert p.dtype == np.dtype('{numpy}') and p.shape == (4,), ('{cli}', p.dtype)\n\
             assert p.tobytes() == bytes(p.nbytes)\n\
             print({i}, p.dtype.str, p.dtype.itemsize)\n"
        ));
    }
    let listing = python(&py, d.path(), &script);
    for line in listing.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let i = f[0];
        let doc: serde_json::Value = serde_json::from_str(&crate::util::stdout(&d.ok(&[
            "info",
            &format!("p{i}.npy"),
            "--json",
        ])))
        .unwrap();
        assert_eq!(doc["dtype"], f[1], "{line}");
        assert_eq!(doc["itemsize"].to_string(), f[2], "{line}");
        let ours = fs::read(d.join(&format!("c{i}.npy"))).unwrap();
        let numpys = fs::read(d.join(&format!("n{i}.npy"))).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&numpys),
            "{line}"
        );
        assert_eq!(ours, numpys, "{line}");
    }
    assert_eq!(listing.lines().count(), LAYOUT_ONLY.len());
}

/// `exec --dtype D` lays out a new file of every layout-only dtype (and a
/// raw one at an odd offset) and the program's bytes land where NumPy reads
/// them, for 1 and 3 workers; an existing file is worked on in place.
#[test]
fn exec_lays_out_rows_of_every_fixed_size_dtype() {
    let Some(py) = require_numpy("exec_lays_out_rows_of_every_fixed_size_dtype") else {
        return;
    };
    let pys = py.to_string_lossy().into_owned();
    let d = Dir::new();
    fs::write(d.join("prog.py"), PATTERN_PROGRAM).unwrap();
    let mut script = String::from(
        "import numpy as np\n\
         def want(shape, dt):\n\
         \x20   n = int(np.prod(shape)) * np.dtype(dt).itemsize\n\
         \x20   return (np.arange(n) * 7 % 251).astype(np.uint8).tobytes()\n",
    );
    for (i, (cli, numpy)) in LAYOUT_ONLY.iter().enumerate() {
        let w = if i % 2 == 0 { "3" } else { "1" };
        let name = format!("e{i}.npy");
        let out = d
            .cmd(&[
                "exec", &name, "--shape", "7,2", "--dtype", cli, "-w", w, "--", &pys, "prog.py",
            ])
            .env("PYTHONPATH", repo_python_path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{cli}: {}", crate::util::stderr(&out));
        script.push_str(&format!(
            "a = np.load('{name}')\n\
             assert a.dtype == np.dtype('{numpy}') and a.shape == (7, 2), ('{cli}', a.dtype)\n\
             assert a.tobytes() == want((7, 2), '{numpy}'), '{cli}'\n"
        ));
    }
    // A raw file at an offset that is no multiple of the itemsize.
    let out = d
        .cmd(&[
            "exec", "r.dat", "--raw", "--shape", "5,2", "--dtype", "U3", "--offset", "5", "-w",
            "2", "--", &pys, "prog.py",
        ])
        .env("PYTHONPATH", repo_python_path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    script.push_str(
        "a = np.memmap('r.dat', dtype='U3', mode='r', offset=5, shape=(5, 2))\n\
         assert a.tobytes() == want((5, 2), 'U3')\n\
         print('ok')\n",
    );
    let got = python(&py, d.path(), &script);
    assert!(got.trim_end().ends_with("ok"), "{got}");
}

/// fill, apply, reduce, convert and verify refuse a file of a layout-only
/// dtype (exit 2, one line, nothing changed), and what the message offers
/// instead — `mmrun exec FILE -- PROGRAM` — works on that file.
#[test]
fn computing_commands_refuse_layout_only_dtypes_and_exec_works_instead() {
    let Some(py) = require_numpy("computing_commands_refuse_layout_only_dtypes") else {
        return;
    };
    let pys = py.to_string_lossy().into_owned();
    let d = Dir::new();
    fs::write(d.join("prog.py"), PATTERN_PROGRAM).unwrap();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.save('c.npy', np.arange(12, dtype='c8').reshape(4, 3))\n\
         np.save('t.npy', np.arange(6).astype('M8[s]'))\n\
         np.save('s.npy', np.array([b'ab', b'cd']))\n",
    );
    for file in ["c.npy", "t.npy", "s.npy"] {
        let before = d.snapshot();
        for args in [
            &["fill", file, "--value", "1"][..],
            &["fill", file, "--random", "uniform", "--seed", "1"],
            &["fill", file, "--arange"],
            &["apply", file, "--expr", "x"],
            &["apply", file, "--expr", "x", "--out", "o.npy"],
            &["reduce", file, "--op", "sum", "--axis", "all"],
            &["convert", file, "o.npy", "--dtype", "V3"],
            &["verify", file, "--value", "0"],
        ] {
            // Constants, arange and apply are computed for complex (see
            // below and complex.rs); reduce names other commands for it
            // (complex.rs).
            if file == "c.npy"
                && (args[2] == "--value"
                    || args[2] == "--arange"
                    || args[0] == "apply"
                    || args[0] == "reduce")
            {
                continue;
            }
            let out = d.run(args);
            assert_refused(&out, 2, "not supported by mmrun's kernels");
            assert!(
                crate::util::stderr(&out).contains("mmrun exec FILE -- PROGRAM"),
                "{args:?}: {}",
                crate::util::stderr(&out)
            );
            assert_eq!(d.snapshot(), before, "{args:?}");
        }
        let out = d
            .cmd(&["exec", file, "-w", "2", "--", &pys, "prog.py"])
            .env("PYTHONPATH", repo_python_path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            crate::util::stderr(&out)
        );
        assert_ne!(d.snapshot(), before, "{file}");
    }
}

/// Dtype spellings NumPy refuses, or that have no size, are refused by
/// `create` and `exec` before anything is created (exit 2, one line).
#[test]
fn unsized_and_unknown_dtypes_are_refused() {
    let d = Dir::new();
    for dt in [
        "S0",
        "U",
        "V",
        "M8[xs]",
        "M4",
        "O",
        "datetime64[3]",
        "bytes7",
        "c4",
        ">U4",
    ] {
        for cmd in ["create", "exec"] {
            let mut args = vec![cmd, "a.npy", "--shape", "3", "--dtype", dt];
            if cmd == "exec" {
                args.extend(["--", "true"]);
            }
            let out = d.run(&args);
            assert_refused(&out, 2, "dtype");
            assert!(d.names().is_empty(), "{cmd} {dt}: {:?}", d.names());
        }
    }
    let out = d.run(&["create", "a.npy", "--shape", "3", "--dtype", "S0"]);
    assert!(stdout(&out).is_empty());
}

/// `convert` to or from complex64/complex128 allows exactly what
/// `np.can_cast(a, b, casting)` allows, for every casting rule, and writes
/// `a.astype(b)`'s bytes.
#[test]
fn convert_casts_complex_as_numpy_does() {
    let Some(py) = require_numpy("convert_casts_complex_as_numpy_does") else {
        return;
    };
    let d = Dir::new();
    let types = [
        "b1", "u1", "i2", "i4", "u8", "i8", "f2", "f4", "f8", "c8", "c16",
    ];
    let castings = ["no", "equiv", "safe", "same_kind", "unsafe"];
    let verdicts = python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             ts = {types:?}\n\
             for t in ts:\n\
             \x20   v = np.arange(12).reshape(3, 4) * 1.5\n\
             \x20   if t.startswith('c'): v = v * (1 + 2j) - 0.25j\n\
             \x20   np.save('x_' + t + '.npy', v.astype(t))\n\
             for a in ts:\n\
             \x20   for b in ts:\n\
             \x20       if 'c' in a[0] + b[0]:\n\
             \x20           print(a, b, ' '.join(str(int(np.can_cast(a, b, c))) for c in {castings:?}))\n"
        ),
    );
    let mut allowed = Vec::new();
    for line in verdicts.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (a, b) = (f[0], f[1]);
        for (c, want) in castings.iter().zip(&f[2..]) {
            let out_name = format!("o_{a}_{b}_{c}.npy");
            let input = format!("x_{a}.npy");
            let out = d.run(&[
                "convert",
                &input,
                &out_name,
                "--dtype",
                b,
                "--casting",
                c,
                "-w",
                "2",
            ]);
            if *want == "1" {
                assert!(
                    out.status.success(),
                    "{a}->{b} {c}: {}",
                    crate::util::stderr(&out)
                );
                allowed.push(format!("('{a}', '{b}', '{c}')"));
            } else {
                assert_refused(&out, 2, "cannot convert");
                assert!(
                    crate::util::stderr(&out).contains("is False"),
                    "{a}->{b} {c}: {}",
                    crate::util::stderr(&out)
                );
                assert!(!d.join(&out_name).exists(), "{out_name}");
            }
        }
    }
    // 83 of the 200 (pair, casting) cases are allowed.
    assert!(allowed.len() > 60, "{}", allowed.len());
    let got = python(
        &py,
        d.path(),
        &format!(
            "import warnings\n\
             import numpy as np\n\
             warnings.simplefilter('ignore')\n\
             for a, b, c in [{}]:\n\
             \x20   o = np.load(f'o_{{a}}_{{b}}_{{c}}.npy')\n\
             \x20   w = np.load(f'x_{{a}}.npy').astype(b)\n\
             \x20   assert o.dtype == w.dtype and o.tobytes() == w.tobytes(), (a, b, c, o, w)\n\
             print('ok')\n",
            allowed.join(", ")
        ),
    );
    assert!(got.trim_end().ends_with("ok"), "{got}");
}

/// A big-endian or Fortran-order file of any layout-only dtype is refused
/// by the computing commands with a `mmrun convert` command; that command
/// works and writes NumPy's native C-order copy. Casts mmrun does not do
/// (datetime units, strings) are refused with nothing written.
#[test]
fn convert_copies_every_dtype_to_native_c_order() {
    let Some(py) = require_numpy("convert_copies_every_dtype_to_native_c_order") else {
        return;
    };
    let d = Dir::new();
    let dts = [
        ">c8", ">c16", ">M8[ns]", ">m8[s]", "|S3", ">U2", "<U2", "|V5", ">g", ">c32", "<M8[D]",
    ];
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             for i, dt in enumerate({dts:?}):\n\
             \x20   if dt.endswith('V5'):\n\
             \x20       a = np.frombuffer(bytes(range(60)), dt).reshape(3, 4)\n\
             \x20   else:\n\
             \x20       a = np.arange(12).astype(dt).reshape(3, 4)\n\
             \x20   np.save(f'y{{i}}.npy', np.asfortranarray(a))\n"
        ),
    );
    for i in 0..dts.len() {
        let file = format!("y{i}.npy");
        let before = d.snapshot();
        let out = d.run(&["reduce", &file, "--op", "sum", "--axis", "all"]);
        assert_refused(&out, 2, "convert it first: mmrun convert");
        assert_eq!(d.snapshot(), before);
        let err = crate::util::stderr(&out);
        let cmd = err.split("convert it first: ").nth(1).unwrap().trim();
        let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
        assert_eq!(args, ["convert", &file, &format!("y{i}-native.npy")]);
        d.ok(&args);
    }
    let got = python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             for i in range({}):\n\
             \x20   a = np.load(f'y{{i}}.npy')\n\
             \x20   want = np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<'))\n\
             \x20   got = np.load(f'y{{i}}-native.npy')\n\
             \x20   assert got.dtype == want.dtype and got.flags.c_contiguous, (i, got.dtype)\n\
             \x20   assert got.tobytes() == want.tobytes(), (i, got, want)\n\
             print('ok')\n",
            dts.len()
        ),
    );
    assert!(got.trim_end().ends_with("ok"), "{got}");
    // y2 is M8[ns], y4 S3: casts NumPy allows that mmrun does not do
    // (across kinds), and one NumPy refuses under safe casting.
    d.ok(&["create", "s.npy", "--shape", "3", "--dtype", "S3"]);
    let before = d.snapshot();
    for args in [
        &["convert", "y2-native.npy", "o.npy", "--dtype", "m8[ms]"][..],
        &["convert", "s.npy", "o.npy", "--dtype", "i4"],
        &[
            "convert",
            "s.npy",
            "o.npy",
            "--dtype",
            "S2",
            "--casting",
            "safe",
        ],
        &[
            "convert",
            "y0-native.npy",
            "o.npy",
            "--dtype",
            "f8",
            "--strict",
        ],
    ] {
        let out = d.run(args);
        assert_refused(&out, 2, "not");
        assert_eq!(d.snapshot(), before, "{args:?}");
    }
}

/// `fill --value` takes Python's complex literals for `c8`/`c16` and writes
/// `np.full(shape, complex(v), dtype)`; `--arange` writes
/// `np.arange(n).astype(dtype)`; `verify` checks both. Spellings Python's
/// `complex()` refuses, overflow and `--random` are refused.
#[test]
fn fill_takes_complex_values_as_numpy_does() {
    let Some(py) = require_numpy("fill_takes_complex_values_as_numpy_does") else {
        return;
    };
    let d = Dir::new();
    let values = [
        "1+2j",
        "2j",
        "-1.5e3J",
        "(1-2j)",
        "nan+infj",
        "j",
        "-j",
        "3",
        "-0.0",
        "1e-3-4.5e+2j",
        "inf",
        "0.1+0.2j",
    ];
    let mut script = String::from("import numpy as np\n");
    for (i, v) in values.iter().enumerate() {
        for (dt, w) in [("c8", "2"), ("c16", "3")] {
            let f = format!("v{i}{dt}.npy");
            d.ok(&[
                "fill", &f, "--shape", "5,3", "--dtype", dt, "--value", v, "-w", w,
            ]);
            d.ok(&["verify", &f, "--value", v]);
            script.push_str(&format!(
                "a = np.load('{f}'); w = np.full((5, 3), complex('{v}'), '{dt}')\n\
                 assert a.dtype == w.dtype and a.tobytes() == w.tobytes(), ('{f}', a[0, 0], w[0, 0])\n"
            ));
        }
    }
    for dt in ["c8", "c16"] {
        let f = format!("a{dt}.npy");
        d.ok(&[
            "fill", &f, "--shape", "7,3", "--dtype", dt, "--arange", "-w", "3",
        ]);
        d.ok(&["verify", &f, "--arange"]);
        script.push_str(&format!(
            "a = np.load('{f}'); w = np.arange(21).astype('{dt}').reshape(7, 3)\n\
             assert a.dtype == w.dtype and a.tobytes() == w.tobytes(), '{f}'\n"
        ));
    }
    script.push_str("print('ok')\n");
    let got = python(&py, d.path(), &script);
    assert!(got.trim_end().ends_with("ok"), "{got}");
    let before = d.snapshot();
    for (args, needle) in [
        (
            &["fill", "v0c8.npy", "--value", "1 + 2j"][..],
            "complex literal",
        ),
        (&["fill", "v0c8.npy", "--value", "1+2i"], "complex literal"),
        (
            &["fill", "v0c8.npy", "--value", "1e39j"],
            "overflows complex64",
        ),
        (
            &["fill", "v0c8.npy", "--random", "uniform", "--seed", "1"],
            "fill --random does not compute on complex64",
        ),
    ] {
        let out = d.run(args);
        assert_refused(&out, 2, needle);
        assert_eq!(d.snapshot(), before, "{args:?}");
    }
}
