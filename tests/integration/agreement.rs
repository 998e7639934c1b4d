//! Every input answered as NumPy answers it (issue 13, input/output half):
//! `.npy` headers NumPy's reader accepts (legacy `L` suffixes, every descr
//! spelling `np.dtype` takes) and refuses, raw files as `numpy.memmap` maps
//! them, `-1` in shapes; no panic from any input (durations, closed pipes);
//! messages that name the problem and a fix that works; and the output
//! contract: `-q`, JSON logs, JSON for refusals, dry runs, reported values.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

use crate::util::*;

/// A v1.0 `.npy` file with `dict` as its header text and `data` after it,
/// padded as `np.save` pads (data at a multiple of 64).
fn write_npy_with_header(path: &Path, dict: &str, data: &[u8]) {
    let mut body = dict.as_bytes().to_vec();
    let prefix = 10;
    let pad = 64 - (prefix + body.len() + 1) % 64;
    body.resize(body.len() + pad, b' ');
    body.push(b'\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(body.len() as u16).to_le_bytes());
    v.extend_from_slice(&body);
    v.extend_from_slice(data);
    fs::write(path, v).unwrap();
}

fn json_out(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

#[test]
fn npy_header_spellings_agree_with_numpy() {
    let Some(py) = require_numpy("npy_header_spellings_agree_with_numpy") else {
        return;
    };
    let d = Dir::new();
    // descr spellings and shapes as NumPy 1.x/2.x and Python 2 wrote them,
    // and spellings NumPy refuses.
    let cases: &[(&str, &str)] = &[
        ("'float64'", "(3,)"),
        ("'<d'", "(3,)"),
        ("'d'", "(3,)"),
        ("'>d'", "(3,)"),
        ("'i'", "(2, 3)"),
        ("'?'", "(4,)"),
        ("'bool'", "(4,)"),
        ("'|i4'", "(3,)"),
        ("'l'", "(3,)"),
        ("'B'", "(5,)"),
        ("'h'", "(2,)"),
        ("'e'", "(2,)"),
        ("'int'", "(3,)"),
        ("'uint16'", "(3,)"),
        ("'<f4'", "(2L,)"),
        ("'<f4'", "(2L, 3L)"),
        ("'<f4'", "(2 L,)"),
        ("'<float64'", "(3,)"),
        ("'f3'", "(3,)"),
        ("'?1'", "(3,)"),
        ("'i0'", "(3,)"),
        ("'int32 '", "(3,)"),
        ("'<f4'", "(2l,)"),
        ("'<f4'", "(2La,)"),
    ];
    for (i, (descr, shape)) in cases.iter().enumerate() {
        let dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
        // 64 bytes of data: enough for every shape above.
        write_npy_with_header(&d.join(&format!("c{i}.npy")), &dict, &[0u8; 64]);
    }
    let verdicts = python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\nfor i in range({}):\n    try:\n        a = np.load(f'c{{i}}.npy', mmap_mode='r')\n        print(a.dtype.str, list(a.shape))\n    except Exception as e:\n        print('refused')\n",
            cases.len()
        ),
    );
    let verdicts: Vec<&str> = verdicts.lines().collect();
    assert_eq!(verdicts.len(), cases.len());
    let mut agreed = 0;
    for (i, want) in verdicts.iter().enumerate() {
        let name = format!("c{i}.npy");
        let out = d.run(&["info", &name, "--json"]);
        let case = &cases[i];
        if *want == "refused" {
            assert_refused(&out, 2, &name);
        } else {
            assert_eq!(
                code(&out),
                0,
                "{case:?}: NumPy reads it as {want}: {}",
                stderr(&out)
            );
            let doc = json_out(&out);
            let shape: Vec<u64> = serde_json::from_value(doc["shape"].clone()).unwrap();
            let got = format!("{} {:?}", doc["dtype"].as_str().unwrap(), shape);
            assert_eq!(got, *want, "{case:?}");
        }
        agreed += 1;
    }
    assert_eq!(agreed, cases.len());
}

#[test]
fn header_text_is_escaped_in_messages() {
    let d = Dir::new();
    let dict = "{'descr': '<x\\n\\x1b[31mred', 'fortran_order': False, 'shape': (3,), }";
    write_npy_with_header(&d.join("e.npy"), dict, &[0u8; 64]);
    let out = d.run(&["info", "e.npy"]);
    assert_refused(&out, 2, "not supported");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(!err.contains('\x1b'), "{err:?}");
    assert!(err.contains("\\u{1b}"), "{err:?}");
}

#[test]
fn raw_files_as_numpy_memmap_maps_them() {
    let Some(py) = require_numpy("raw_files_as_numpy_memmap_maps_them") else {
        return;
    };
    let d = Dir::new();
    // 100 float32 values; the shape names only the first 60 (numpy.memmap
    // maps a prefix of a longer file), and -1 is inferred from the size.
    let want = python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.arange(100, dtype='<f4').tofile('r.bin')\n\
         print(repr(float(np.memmap('r.bin', dtype='<f4', mode='r', shape=(6, 10)).sum(dtype='f8'))))\n\
         print(list(np.memmap('r.bin', dtype='<f4', mode='r').reshape(4, -1).shape))",
    );
    let mut want = want.lines();
    let out = d.ok(&[
        "reduce", "r.bin", "--raw", "--dtype", "f4", "--shape", "6,10", "--op", "sum", "--axis",
        "all",
    ]);
    assert_eq!(stdout(&out).trim(), want.next().unwrap());
    let out = d.ok(&[
        "info", "r.bin", "--raw", "--dtype", "f4", "--shape", "4,-1", "--json",
    ]);
    let shape: Vec<u64> = serde_json::from_value(json_out(&out)["shape"].clone()).unwrap();
    assert_eq!(format!("{shape:?}"), want.next().unwrap());
    // NumPy's own refusals: two unknowns, a size that does not divide.
    let before = d.snapshot();
    let out = d.run(&[
        "info", "r.bin", "--raw", "--dtype", "f4", "--shape", "-1,-1",
    ]);
    assert_refused(&out, 2, "one unknown dimension");
    // clap's tip for a value that starts with '-' is one that works.
    let out = d.run(&[
        "fill",
        "r.bin",
        "--raw",
        "--dtype",
        "f4",
        "--value",
        "1",
        "--timeout",
        "-5",
    ]);
    assert_refused(&out, 2, "--OPTION=VALUE");
    let out = d.run(&["info", "r.bin", "--raw", "--dtype", "f4", "--shape=-1,-1"]);
    assert_refused(&out, 2, "one unknown dimension");
    let out = d.run(&["info", "r.bin", "--raw", "--dtype", "f4", "--shape", "3,-1"]);
    assert_refused(&out, 2, "cannot infer");
    // Shorter than the shape needs: numpy.memmap refuses too.
    let out = d.run(&["info", "r.bin", "--raw", "--dtype", "f4", "--shape", "101"]);
    assert_refused(&out, 2, "needs");
    assert_eq!(d.snapshot(), before);
}

#[test]
fn durations_out_of_range_are_refused_not_panics() {
    let d = Dir::new();
    d.ok(&["create", "a.npy", "--shape", "3,4"]);
    let before = d.snapshot();
    for dur in [
        "99999999999999999999h",
        "400days",
        "1e30",
        "-5",
        "10 parsecs",
    ] {
        let out = d.run(&["fill", "a.npy", "--value", "1", &format!("--timeout={dur}")]);
        assert_refused(&out, 2, "--timeout");
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    assert_eq!(d.snapshot(), before);
    d.ok(&[
        "fill",
        "a.npy",
        "--value",
        "1",
        "--timeout",
        "1h 30m",
        "--kill-after",
        "1.5",
    ]);
}

#[test]
fn closed_stdout_ends_quietly() {
    let d = Dir::new();
    d.ok(&["create", "a.npy", "--shape", "3,4"]);
    // The read end is closed before mmrun starts: every write is EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = d
        .cmd(&["info", "a.npy", "--json"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn missing_arguments_are_named() {
    let d = Dir::new();
    d.ok(&["create", "x.npy", "--shape", "3,4"]);
    for (args, name, help) in [
        (
            &["reduce", "x.npy", "--op", "sum"][..],
            "--axis",
            "mmrun reduce --help",
        ),
        (&["info"][..], "<FILE>", "mmrun info --help"),
        (&["apply", "x.npy"][..], "--expr", "mmrun apply --help"),
    ] {
        let out = d.run(args);
        assert_refused(&out, 2, name);
        assert!(stderr(&out).contains(help), "{}", stderr(&out));
        // The help it points to exists.
        let words: Vec<&str> = help.split_whitespace().skip(1).collect();
        d.ok(&words);
    }
}

#[test]
fn advice_in_refusals_works_when_followed() {
    let d = Dir::new();
    d.ok(&["create", "a.npy", "--shape", "4,3"]);
    // apply never creates a file, whatever options it has.
    let out = d.run(&[
        "apply", "nope.bin", "--raw", "--dtype", "f4", "--shape", "3", "--expr", "x+1",
    ]);
    assert_refused(&out, 2, "does not exist");
    assert!(!stderr(&out).contains("to create it"), "{}", stderr(&out));
    let out = d.run(&["apply", "nope.npy", "--expr", "x+1"]);
    assert_refused(&out, 2, "apply works on an existing file");
    // In place, apply keeps the dtype: the advice is --out, and it works.
    let out = d.run(&["apply", "a.npy", "--expr", "x+1", "--dtype", "f8"]);
    assert_refused(&out, 2, "add --out OUT");
    assert!(!stderr(&out).contains("--shape"), "{}", stderr(&out));
    d.ok(&[
        "apply", "a.npy", "--expr", "x+1", "--dtype", "f8", "--out", "b.npy",
    ]);
    // reduce has no --shape to leave out; --force is what works.
    let out = d.run(&[
        "reduce", "a.npy", "--op", "sum", "--axis", "1", "--out", "b.npy",
    ]);
    assert_refused(&out, 2, "use --force");
    assert!(!stderr(&out).contains("--shape"), "{}", stderr(&out));
    d.ok(&[
        "reduce", "a.npy", "--op", "sum", "--axis", "1", "--out", "b.npy", "--force",
    ]);
}

#[test]
fn quiet_means_nothing_on_success() {
    let d = Dir::new();
    let out = d.ok(&["-q", "create", "a.npy", "--shape", "4,3"]);
    assert_eq!(stderr(&out), "");
    let out = d.ok(&["fill", "a.npy", "--value", "2", "-q"]);
    assert_eq!(stderr(&out), "");
    let out = d
        .cmd(&["fill", "a.npy", "--value", "3"])
        .env("MMRUN_LOG", "error")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    assert_eq!(stderr(&out), "");
    // Errors still show.
    let out = d.run(&["-q", "fill", "nope.npy", "--value", "1"]);
    assert_refused(&out, 2, "nope.npy");
}

#[test]
fn json_logs_are_json_on_every_line() {
    let d = Dir::new();
    for args in [
        &["--log-format", "json", "create", "a.npy", "--shape", "4,3"][..],
        &["--log-format", "json", "fill", "a.npy", "--value", "2"][..],
        &["--log-format", "json", "fill", "nope.npy", "--value", "2"][..],
    ] {
        let out = d.run(args);
        let err = stderr(&out);
        assert!(!err.is_empty(), "{args:?} printed nothing");
        for line in err.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {line}"));
            assert!(v["fields"]["message"].is_string(), "{line}");
        }
    }
}

#[test]
fn refusals_are_reported_as_json_and_dry_runs_touch_no_report() {
    let d = Dir::new();
    d.ok(&["create", "a.npy", "--shape", "4,3"]);
    let before = d.snapshot();
    // Refused before any plan: --json and --report both say so.
    let out = d.run(&[
        "fill", "nope.npy", "--value", "1", "--json", "--report", "r.json",
    ]);
    assert_refused(&out, 2, "nope.npy");
    let doc = json_out(&out);
    assert_eq!(doc["outcome"], "refused");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["written"], false);
    let file: Value = serde_json::from_str(&fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(file, doc);
    fs::remove_file(d.join("r.json")).unwrap();
    // Refused inside the run (a bad value for the dtype).
    let out = d.run(&[
        "fill", "a.npy", "--value", "x", "--json", "--report", "r.json",
    ]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let doc = json_out(&out);
    assert_eq!(doc["exit_code"], 2);
    let text = fs::read_to_string(d.join("r.json")).unwrap();
    assert!(!text.is_empty(), "the report of a refused run is empty");
    fs::remove_file(d.join("r.json")).unwrap();
    assert_eq!(d.snapshot(), before);
    // A dry run never touches --report's file.
    d.ok(&[
        "fill",
        "a.npy",
        "--value",
        "1",
        "--dry-run",
        "--report",
        "r.json",
    ]);
    assert!(!d.join("r.json").exists());
    let out = d.ok(&[
        "reduce",
        "a.npy",
        "--op",
        "sum",
        "--axis",
        "all",
        "--dry-run",
        "--report",
        "r.json",
    ]);
    assert!(!d.join("r.json").exists());
    // A scan's plan says it only reads the file (it said "written in place").
    let plan = stdout(&out) + &stderr(&out);
    assert!(plan.contains("the file would only be read"), "{plan}");
    assert!(!plan.contains("written in place"), "{plan}");
    assert_eq!(d.snapshot(), before);
}

#[test]
fn reduced_value_is_the_value_its_bytes_hold() {
    let Some(py) = require_numpy("reduced_value_is_the_value_its_bytes_hold") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.save('a.npy', np.random.default_rng(7).random((1000, 37), dtype='f4'))",
    );
    for op in ["mean", "sum", "std"] {
        let out = d.ok(&["reduce", "a.npy", "--op", op, "--axis", "all", "--json"]);
        let doc = json_out(&out);
        let r = &doc["results"];
        assert_eq!(r["dtype"], "<f4");
        let hex = r["bytes_hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let stored = f32::from_le_bytes(bytes.try_into().unwrap());
        assert_eq!(r["value"].as_f64().unwrap(), f64::from(stored), "{op}: {r}");
    }
}

#[test]
fn info_describes_every_dtype_numpy_writes() {
    let Some(py) = require_numpy("info_describes_every_dtype_numpy_writes") else {
        return;
    };
    let d = Dir::new();
    let listing = python(
        &py,
        d.path(),
        r#"
import numpy as np
arrays = {
    'c8': np.zeros(3, 'c8'), 'c16': np.zeros((2, 3), '>c16'),
    'dt': np.zeros(4, 'M8[ns]'), 'td': np.zeros(4, 'm8[s]'),
    'u': np.array(['abc', 'de']), 's': np.array([b'abcde']), 'v': np.zeros(2, 'V4'),
    'g': np.zeros(2, 'g'),
    'st': np.zeros(5, dtype=[('a', '<f4'), ('b', '<i8', (2,)), ('c', [('x', 'u1'), ('y', '<U2')])]),
}
for name, a in arrays.items():
    np.save(name + '.npy', a)
    print(name, a.dtype.str, a.dtype.itemsize, list(a.shape), a.dtype.names is not None)
"#,
    );
    for line in listing.lines() {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        let (name, descr, itemsize) = (f[0], f[1], f[2]);
        let (shape, structured) = f[3].rsplit_once(' ').unwrap();
        let file = format!("{name}.npy");
        let out = d.ok(&["info", &file, "--json"]);
        let doc = json_out(&out);
        assert_eq!(doc["itemsize"].to_string(), itemsize, "{line}: {doc}");
        let got: Vec<u64> = serde_json::from_value(doc["shape"].clone()).unwrap();
        assert_eq!(format!("{got:?}"), shape, "{line}");
        if structured == "False" {
            assert_eq!(doc["dtype"], descr, "{line}");
        }
        assert_eq!(doc["computable"], false);
        let text = stdout(&d.ok(&["info", &file]));
        assert!(text.contains("refuse"), "{text}");
        // The work it cannot do is refused, with nothing changed (a
        // big-endian file with the convert command that makes it native).
        let before = d.snapshot();
        let out = d.run(&["fill", &file, "--random", "uniform", "--seed", "1"]);
        let needle = if descr.starts_with('>') {
            "convert it first: mmrun convert"
        } else {
            "not supported"
        };
        assert_refused(&out, 2, needle);
        assert_eq!(d.snapshot(), before);
    }
}

#[test]
fn reduce_along_rows_counts_bytes_read_and_written() {
    let d = Dir::new();
    d.ok(&[
        "fill", "a.npy", "--shape", "1000,64", "--arange", "--dtype", "f8",
    ]);
    let out = d.ok(&[
        "reduce", "a.npy", "--op", "sum", "--axis", "1", "--out", "s.npy", "--json",
    ]);
    let doc = json_out(&out);
    // 1000 rows of 64 f8 read, 1000 f8 written.
    assert_eq!(doc["bytes"], 1000 * 64 * 8 + 1000 * 8, "{doc}");
    // Its dry run names the output and writes nothing.
    let before = d.snapshot();
    let out = d.ok(&[
        "reduce",
        "a.npy",
        "--op",
        "sum",
        "--axis",
        "all",
        "--dry-run",
    ]);
    assert!(
        stdout(&out).contains("output: one float64 number on stdout"),
        "{}",
        stdout(&out)
    );
    assert_eq!(d.snapshot(), before);
}
