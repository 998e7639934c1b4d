//! External workers through `mmrun exec` (protocol v1, design.md): the
//! Python worker module and examples against NumPy, the C example, `mmrun.py`,
//! templating, every `MMRUN_*` variable, the launcher scrub, stdin, output
//! tagging, `--json`, failing and missing programs, and a worker's own
//! children dying with a SIGKILLed coordinator.
//!
//! Tests that need NumPy take it from `require_numpy`; the protocol tests use
//! only `sh`. Races are resolved by polling with a deadline, never by a fixed
//! sleep.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::util::{assert_refused, code, missing_tool, python, require_numpy, stderr, stdout, Dir};

/// The repository root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `workers/examples/NAME`, as a string for a command line.
fn example(name: &str) -> String {
    repo()
        .join("workers/examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// `mmrun ARGS...` in `d` with the `mmrun` Python package (`python/`) on `PYTHONPATH`.
fn exec_cmd(d: &Dir, args: &[&str]) -> Command {
    let mut c = d.cmd(args);
    c.env("PYTHONPATH", repo().join("python"));
    c
}

/// Runs `mmrun ARGS...` (see [`exec_cmd`]) and asserts it succeeded.
fn exec_ok(d: &Dir, args: &[&str]) -> Output {
    let out = exec_cmd(d, args).output().expect("run mmrun");
    assert!(
        out.status.success(),
        "mmrun {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Asserts two files in `d` are byte-identical, naming the first differing byte.
fn assert_same_bytes(d: &Dir, a: &str, b: &str) {
    let x = fs::read(d.join(a)).unwrap();
    let y = fs::read(d.join(b)).unwrap();
    if x != y {
        let at = x.iter().zip(&y).position(|(p, q)| p != q);
        panic!(
            "{a} ({} bytes) and {b} ({} bytes) differ, first at byte {at:?}",
            x.len(),
            y.len()
        );
    }
}

/// `KEY=VALUE` lines (as `env` prints them) into a map.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Reads `d/NAME`, panicking with the directory listing if it is missing.
fn read(d: &Dir, name: &str) -> String {
    fs::read_to_string(d.join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}; directory holds {:?}", d.names()))
}

/// Polls `cond` every 20 ms until it holds or `secs` pass.
fn wait_for(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Removes the progress file whose path a worker wrote to `d/NAME`, if it
/// outlived a SIGKILLed coordinator (see
/// `killed_coordinator_leaves_no_progress_file`), so runs do not pile up files.
fn remove_progress_file(d: &Dir, name: &str) {
    let Ok(text) = fs::read_to_string(d.join(name)) else {
        return;
    };
    let p = Path::new(text.trim());
    if p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("mmrun-progress-"))
    {
        let _ = fs::remove_file(p);
    }
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it runs no code).
fn gone(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
        return true;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

// ---------------------------------------------------------------------------
// Python worker module and examples against NumPy

/// `fill_uniform()` through exec equals `mmrun fill --random uniform` byte
/// for byte (and NumPy's Generator) for several worker counts, f4 and f8.
/// 37 rows of 129 elements put worker boundaries at odd element indexes, so
/// an f4 worker must start on the high half of a raw u64. (Each Python
/// worker costs an interpreter and a NumPy import: few, well-chosen counts.)
#[test]
fn random_fill_equals_builtin_fill() {
    let Some(py) = require_numpy("random_fill_equals_builtin_fill") else {
        return;
    };
    let pys = py.to_string_lossy().into_owned();
    let script = example("random_fill.py");
    let d = Dir::new();
    for (dtype, counts) in [("f4", &["1", "2", "5"][..]), ("f8", &["1", "3"][..])] {
        let want = format!("{dtype}-want.npy");
        d.ok(&[
            "fill", &want, "--shape", "37,129", "--dtype", dtype, "--random", "uniform", "--seed",
            "3", "-w", "2",
        ]);
        for &w in counts {
            let name = format!("{dtype}-{w}.npy");
            let out = exec_ok(
                &d,
                &[
                    "exec", &name, "--shape", "37,129", "--dtype", dtype, "--seed", "3", "-w", w,
                    "--", &pys, &script,
                ],
            );
            assert!(stdout(&out).contains("[w0] rows 0.."), "{}", stdout(&out));
            assert_same_bytes(&d, &name, &want);
        }
    }
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         for name, t in (('f4-5.npy', np.float32), ('f8-3.npy', np.float64)):\n\
         \x20   a = np.load(name)\n\
         \x20   b = np.random.Generator(np.random.Philox(3)).random((37, 129), dtype=t)\n\
         \x20   assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name\n",
    );
}

/// The same with a 128-bit seed, a 3-d shape, a compact header, raw files
/// whose data offset is not a multiple of the itemsize, and the dtypes
/// `fill_uniform` takes from the reference streams (f2, i4, b1).
#[test]
fn random_fill_other_layouts() {
    let Some(py) = require_numpy("random_fill_other_layouts") else {
        return;
    };
    let pys = py.to_string_lossy().into_owned();
    let script = example("random_fill.py");
    let seed = "170141183460469231731687303715884105731";
    let d = Dir::new();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "a",
            "3",
            &[
                "--shape",
                "9,5,7",
                "--dtype",
                "f4",
                "--npy-header",
                "compact",
            ],
        ),
        (
            "b",
            "2",
            &["--shape", "11,3", "--dtype", "f8", "--raw", "--offset", "3"],
        ),
        (
            "c",
            "2",
            &["--shape", "21,5", "--dtype", "f4", "--raw", "--offset", "6"],
        ),
        ("d", "2", &["--shape", "20,3", "--dtype", "f2"]),
        ("e", "2", &["--shape", "20,3", "--dtype", "i4"]),
        ("f", "1", &["--shape", "20,3", "--dtype", "b1"]),
    ];
    for (name, w, layout) in cases {
        let want = format!("{name}.want");
        let got = format!("{name}.got");
        let mut args = vec![
            "fill", &want, "--random", "uniform", "--seed", seed, "-w", "1",
        ];
        args.extend_from_slice(layout);
        d.ok(&args);
        let mut args = vec!["exec", &got, "--seed", seed, "-w", w];
        args.extend_from_slice(layout);
        args.extend(["--", &pys, &script]);
        exec_ok(&d, &args);
        assert_same_bytes(&d, &got, &want);
    }
}

/// A 0-d array (one row, one worker, `MMRUN_SHAPE` empty) filled in place
/// through exec equals an in-place fill.
#[test]
fn random_fill_zero_d_in_place() {
    let Some(py) = require_numpy("random_fill_zero_d_in_place") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.save('a.npy', np.float64(0.0))\n\
         np.save('b.npy', np.float64(0.0))\n",
    );
    d.ok(&["fill", "a.npy", "--random", "uniform", "--seed", "9"]);
    let out = exec_ok(
        &d,
        &[
            "exec",
            "b.npy",
            "--seed",
            "9",
            "-w",
            "2",
            "--",
            "sh",
            "-c",
            "env > env.{worker}",
        ],
    );
    let e = parse_env(&read(&d, "env.0"));
    assert_eq!(e["MMRUN_SHAPE"], "", "{}", stderr(&out));
    assert_eq!(
        (e["MMRUN_ROW_START"].as_str(), e["MMRUN_ROW_END"].as_str()),
        ("0", "1")
    );
    assert_eq!(
        e["MMRUN_WORKERS"], "1",
        "a 0-d array has one row: one worker"
    );
    let pys = py.to_string_lossy().into_owned();
    let script = example("random_fill.py");
    exec_ok(&d, &["exec", "b.npy", "--seed", "9", "--", &pys, &script]);
    assert_same_bytes(&d, "a.npy", "b.npy");
}

/// `row_means.py` (chunked per-row means written to the exec'd output file)
/// equals NumPy's `x.reshape(R, -1).mean(axis=1, dtype=float64)` for
/// -w 1, 2, 5 (an f8 input) and -w 2 (a 3-d f4 input).
#[test]
fn row_means_example() {
    let Some(py) = require_numpy("row_means_example") else {
        return;
    };
    let pys = py.to_string_lossy().into_owned();
    let script = example("row_means.py");
    let d = Dir::new();
    d.ok(&[
        "fill", "in8.npy", "--shape", "300,257", "--dtype", "f8", "--random", "uniform", "--seed",
        "1",
    ]);
    d.ok(&[
        "fill", "in4.npy", "--shape", "300,16,3", "--dtype", "f4", "--random", "uniform", "--seed",
        "2",
    ]);
    let runs = [("in8", "1"), ("in8", "2"), ("in8", "5"), ("in4", "2")];
    for (input, w) in runs {
        let out = format!("means-{input}-{w}.npy");
        let input = format!("{input}.npy");
        exec_ok(
            &d,
            &[
                "exec",
                &out,
                "--shape",
                "300",
                "--dtype",
                "f8",
                "-w",
                w,
                "--",
                &pys,
                &script,
                "--input",
                &input,
                "--chunk-rows",
                "7",
            ],
        );
    }
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         for name, w in (('in8', 1), ('in8', 2), ('in8', 5), ('in4', 2)):\n\
         \x20   x = np.load(name + '.npy')\n\
         \x20   want = x.reshape(300, -1).mean(axis=1, dtype=np.float64)\n\
         \x20   got = np.load(f'means-{name}-{w}.npy')\n\
         \x20   assert got.dtype == np.float64 and got.shape == (300,), (got.dtype, got.shape)\n\
         \x20   assert np.array_equal(got, want), (name, w, np.flatnonzero(got != want)[:5])\n",
    );
}

/// `zero_block.py` in place equals `a[100:200, 100:200] = 0` for -w 1, 2, 5.
#[test]
fn zero_block_example() {
    let Some(py) = require_numpy("zero_block_example") else {
        return;
    };
    let pys = py.to_string_lossy().into_owned();
    let script = example("zero_block.py");
    let d = Dir::new();
    for w in ["1", "2", "5"] {
        let name = format!("z{w}.npy");
        d.ok(&[
            "fill", &name, "--shape", "300,250", "--dtype", "f4", "--arange",
        ]);
        exec_ok(&d, &["exec", &name, "-w", w, "--", &pys, &script]);
    }
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         want = np.arange(300 * 250).astype(np.float32).reshape(300, 250)\n\
         want[100:200, 100:200] = 0\n\
         for w in (1, 2, 5):\n\
         \x20   got = np.load(f'z{w}.npy')\n\
         \x20   assert got.tobytes() == want.tobytes(), w\n",
    );
}

/// `mmrun_worker` by hand (no mmrun): metadata from the environment, module
/// attributes, `rows()` of exactly the worker's rows at any data offset,
/// `progress()` as one u64 at byte 128 * slot (a no-op without a file), and
/// `ProtocolError` outside mmrun.
#[test]
fn worker_module_by_hand() {
    let Some(py) = require_numpy("worker_module_by_hand") else {
        return;
    };
    let d = Dir::new();
    let out = python(
        &py,
        d.path(),
        r#"import os, subprocess, sys
import numpy as np
code = """
import numpy as np
import mmrun.worker as w
i = w.info()
assert i["shape"] == (6, 4) and i["dtype"] == np.dtype("<u2") and i["seed"] == 2**100
assert (w.row_start, w.row_end, w.worker, w.workers, w.format) == (2, 5, 1, 3, "raw")
r = w.rows()
assert isinstance(r, np.memmap) and r.shape == (3, 4) and r.dtype == np.uint16
r[:] = np.arange(12).reshape(3, 4) + 1
w.progress(1); w.progress(3); w.flush()
"""
base = dict(os.environ, MMRUN_PROTOCOL="1", MMRUN_FILE="r.dat", MMRUN_FORMAT="raw",
            MMRUN_DTYPE="<u2", MMRUN_SHAPE="6,4", MMRUN_DATA_OFFSET="5", MMRUN_ROW_START="2",
            MMRUN_ROW_END="5", MMRUN_WORKER="1", MMRUN_WORKERS="3", MMRUN_SEED=str(2**100))
with open("r.dat", "wb") as f:
    f.write(b"\xee" * (5 + 48 + 3))
with open("p", "wb") as f:
    f.write(bytes(128 * 4))
subprocess.run([sys.executable, "-c", code], check=True,
               env=dict(base, MMRUN_PROGRESS_FILE="p", MMRUN_PROGRESS_SLOT="2"))
data = open("r.dat", "rb").read()
assert data[:5 + 16] == b"\xee" * 21 and data[5 + 40:] == b"\xee" * 11, data
got = np.frombuffer(data[5 + 16:5 + 40], dtype="<u2")
assert (got == np.arange(12) + 1).all(), got
slots = np.fromfile("p", dtype=np.uint64).reshape(4, 16)
assert slots[2, 0] == 3 and slots.sum() == 3, slots
# In this process: outside mmrun, importing works and info() raises ProtocolError.
for k in [k for k in os.environ if k.startswith("MMRUN_")]:
    del os.environ[k]
import mmrun.worker as w
try:
    w.info()
    raise AssertionError("info() outside mmrun")
except w.ProtocolError as e:
    assert "MMRUN_PROTOCOL is not set" in str(e), e
# Without a progress file, progress() is a no-op.
os.environ.update({k: v for k, v in base.items() if k.startswith("MMRUN_")})
w._info = None
w.progress(5)
assert w.info()["progress_file"] is None
assert (np.fromfile("p", dtype=np.uint64).reshape(4, 16) == slots).all()
print("ok")
"#,
    );
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

// ---------------------------------------------------------------------------
// The C worker

/// `fill_c.c` compiled with `cc` writes `np.arange(n).astype(dtype)`, the
/// same bytes as `mmrun fill --arange`, for .npy and raw files (one with a
/// data offset that is neither page- nor itemsize-aligned).
#[test]
fn c_example_writes_arange() {
    let d = Dir::new();
    let bin = d.join("fill_c");
    let cc = Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(example("fill_c.c"))
        .output();
    let cc = match cc {
        Ok(o) => o,
        Err(_) => return missing_tool("c_example_writes_arange", "a C compiler (cc)"),
    };
    assert!(cc.status.success(), "cc failed: {}", stderr(&cc));
    let bin = bin.to_string_lossy().into_owned();
    let cases: &[(&str, &[&str])] = &[
        ("f4", &["--shape", "50,33", "--dtype", "f4"]),
        (
            "f8",
            &[
                "--shape",
                "40,7",
                "--dtype",
                "f8",
                "--npy-header",
                "compact",
            ],
        ),
        ("i2", &["--shape", "300,300", "--dtype", "i2"]),
        ("u1", &["--shape", "700,5", "--dtype", "u1"]),
        (
            "raw",
            &[
                "--shape", "64,130", "--dtype", "f4", "--raw", "--offset", "4099",
            ],
        ),
    ];
    for (name, layout) in cases {
        let want = format!("{name}.want");
        let mut args = vec!["fill", &want, "--arange", "-w", "1"];
        args.extend_from_slice(layout);
        d.ok(&args);
        for w in ["1", "2", "5"] {
            let got = format!("{name}-{w}.got");
            let mut args = vec!["exec", &got, "-w", w];
            args.extend_from_slice(layout);
            args.extend(["--", &bin]);
            let out = exec_ok(&d, &args);
            assert!(
                stdout(&out).contains("[w0] fill_c: rows 0.."),
                "{}",
                stdout(&out)
            );
            assert_same_bytes(&d, &got, &want);
        }
    }
}

// ---------------------------------------------------------------------------
// mmrun.py

/// `mmrun.py` round-trips: fill (new, in place, raw), create, info, exec_,
/// and errors raised as `MmrunError` with mmrun's message and exit code.
#[test]
fn mmrun_py_round_trips() {
    let Some(py) = require_numpy("mmrun_py_round_trips") else {
        return;
    };
    let d = Dir::new();
    let code = format!(
        r#"import sys
import numpy as np
import mmrun

a = mmrun.fill("a.npy", shape=(40, 9), dtype=np.float32, random="uniform", seed=7, workers=3)
assert isinstance(a, np.memmap) or a.flags.writeable is False
want = np.random.Generator(np.random.Philox(7)).random((40, 9), dtype=np.float32)
assert a.tobytes() == want.tobytes()

i = mmrun.info("a.npy")
assert i["shape"] == [40, 9] and i["dtype"] == "<f4" and i["format"] == "npy", i

b = mmrun.fill("a.npy", value=2.5, rows=slice(10, 20))
assert (b[10:20] == 2.5).all() and (b[:10] == want[:10]).all() and (b[20:] == want[20:]).all()

c = mmrun.create("c.npy", shape=(5,), dtype="i8", npy_header="compact")
assert c.dtype == np.int64 and c.shape == (5,) and not c.any()
with open("c.npy", "rb") as f:
    head = f.read()[:-40]
buf = __import__("io").BytesIO(); np.save(buf, np.zeros(5, np.int64))
assert head == buf.getvalue()[:-40]

r = mmrun.fill("r.dat", shape=(4, 3), dtype="u2", arange=True, raw=True, offset=5)
assert isinstance(r, np.memmap) and r.offset == 5 and r.shape == (4, 3), (r.offset, r.shape)
assert (r == np.arange(12, dtype=np.uint16).reshape(4, 3)).all()
assert mmrun.info("r.dat", raw=True, dtype="u2", offset=5)["data_offset"] == 5

f = mmrun.fill("n.npy", shape=3, dtype="f8", value=float("nan"))
assert np.isnan(f).all()
t = mmrun.fill("t.npy", shape=(2, 2), dtype=bool, value=True)
assert t.dtype == np.bool_ and t.all()
z = mmrun.fill("t.npy", value=False)
assert not z.any()

rep = mmrun.exec_("e.npy", [sys.executable, r"{script}"], shape=(30, 4), dtype="f8", seed=11,
                  workers=3, echo=False)
assert rep["schema_version"] >= 1 and len(rep["workers"]) == 3, rep
e = np.load("e.npy")
assert e.tobytes() == np.random.Generator(np.random.Philox(11)).random((30, 4)).tobytes()

def raises(code, needle, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except mmrun.MmrunError as err:
        assert err.code == code, (err.code, err.message)
        assert needle in err.message.lower(), err.message
        assert "\n" not in err.message and not err.message.startswith("mmrun:"), err.message
        return err
    raise AssertionError(f"{{fn.__name__}} did not raise")

raises(2, "300", mmrun.fill, "u.npy", shape=(3,), dtype="u1", value=300)
raises(2, "exists", mmrun.fill, "a.npy", shape=(3,), dtype="f4", value=1)
raises(2, "missing.npy", mmrun.info, "missing.npy")
err = raises(1, "worker 1", mmrun.exec_, "x.npy", ["sh", "-c", "exit {{worker}}"],
             shape=(8, 1024), workers=2, echo=False)
assert "code 1" in err.message, err.message
import os
assert not os.path.exists("x.npy") and not os.path.exists("u.npy")
print("ok")
"#,
        script = example("random_fill.py"),
    );
    let out = python(&py, d.path(), &code);
    assert!(out.trim_end().ends_with("ok"), "{out}");
}

// ---------------------------------------------------------------------------
// The protocol: variables, templating, stdin, launcher scrub

/// Every `MMRUN_*` variable, templated arguments equal to them, launcher
/// variables removed, `MMRUN_DEFAULT_WORKERS` removed, `PYTHONUNBUFFERED=1`,
/// other variables kept, stdin `/dev/null` (not mmrun's own stdin).
#[test]
fn worker_environment_and_templates() {
    let d = Dir::new();
    let seed = "123456789012345678901234567890123";
    let script = "env > env.{worker}; readlink /proc/$$/fd/0 > stdin.{worker}; \
                  printf '%s\\n' \"$@\" > argv.{worker}";
    let mut c = d.cmd(&[
        "exec",
        "t.npy",
        "--shape",
        "10,4",
        "--dtype",
        "float64",
        "--seed",
        seed,
        "-w",
        "3",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        "{file}",
        "{start}",
        "{end}",
        "{worker}",
        "{workers}",
        "{seed}",
        "{{",
        "}}",
        "{{start}}",
        "a{worker}b{end}",
        "{{{worker}}}",
        "x}}{{y",
    ]);
    c.env("MMRUN_DEFAULT_WORKERS", "2")
        .env("OMPI_COMM_WORLD_RANK", "5")
        .env("OMPI_COMM_WORLD_SIZE", "9")
        .env("PMI_RANK", "1")
        .env("PMI_SIZE", "4")
        .env("PMIX_RANK", "2")
        .env("SLURM_PROCID", "3")
        .env("EXEC_TEST_OTHER_VAR", "kept")
        .env_remove("PYTHONUNBUFFERED")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"not for workers\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(d.join("t.npy").exists());

    let mut next_start = 0;
    let mut slots = std::collections::BTreeSet::new();
    for w in 0..3 {
        let e = parse_env(&read(&d, &format!("env.{w}")));
        let file = PathBuf::from(&e["MMRUN_FILE"]);
        assert_eq!(
            file.file_name().unwrap(),
            ".t.npy.mmrun-partial",
            "a new target's workers open the partial file"
        );
        let parent = if file.is_absolute() {
            file.parent().unwrap().to_path_buf()
        } else {
            d.path().join(file.parent().unwrap())
        };
        assert_eq!(
            parent.canonicalize().unwrap(),
            d.path().canonicalize().unwrap()
        );
        assert_eq!(e["MMRUN_PROTOCOL"], "1");
        assert_eq!(e["MMRUN_FORMAT"], "npy");
        assert_eq!(e["MMRUN_DTYPE"], "<f8");
        assert_eq!(e["MMRUN_SHAPE"], "10,4");
        assert_eq!(e["MMRUN_DATA_OFFSET"], "4096");
        assert_eq!(e["MMRUN_WORKER"], w.to_string());
        assert_eq!(e["MMRUN_WORKERS"], "3");
        assert_eq!(e["MMRUN_SEED"], seed);
        let start: u64 = e["MMRUN_ROW_START"].parse().unwrap();
        let end: u64 = e["MMRUN_ROW_END"].parse().unwrap();
        assert_eq!(
            start, next_start,
            "worker {w}: ranges are contiguous in worker order"
        );
        assert!(end > start, "worker {w}: empty range {start}..{end}");
        next_start = end;
        // Optional: when given, a file and a slot of this worker's own.
        if let Some(p) = e.get("MMRUN_PROGRESS_FILE") {
            assert!(!p.is_empty(), "MMRUN_PROGRESS_FILE is empty");
            let slot: u64 = e
                .get("MMRUN_PROGRESS_SLOT")
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("worker {w}: MMRUN_PROGRESS_SLOT missing or bad"));
            assert!(slots.insert(slot), "worker {w}: slot {slot} is shared");
        }
        assert_eq!(e.get("PYTHONUNBUFFERED").map(String::as_str), Some("1"));
        assert_eq!(
            e.get("EXEC_TEST_OTHER_VAR").map(String::as_str),
            Some("kept")
        );
        for k in [
            "MMRUN_DEFAULT_WORKERS",
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "PMI_RANK",
            "PMI_SIZE",
            "PMIX_RANK",
            "SLURM_PROCID",
        ] {
            assert!(!e.contains_key(k), "worker {w} sees {k}");
        }
        assert_eq!(read(&d, &format!("stdin.{w}")).trim(), "/dev/null");

        let argv = read(&d, &format!("argv.{w}"));
        let argv: Vec<&str> = argv.lines().collect();
        let tagged = format!("a{w}b{end}");
        let braced = format!("{{{w}}}");
        let want: Vec<&str> = vec![
            e["MMRUN_FILE"].as_str(),
            e["MMRUN_ROW_START"].as_str(),
            e["MMRUN_ROW_END"].as_str(),
            e["MMRUN_WORKER"].as_str(),
            e["MMRUN_WORKERS"].as_str(),
            seed,
            "{",
            "}",
            "{start}",
            tagged.as_str(),
            braced.as_str(),
            "x}{y",
        ];
        assert_eq!(argv, want, "worker {w}'s arguments");
    }
    assert_eq!(next_start, 10, "ranges cover every row");
}

/// `--keep-launcher-env` keeps the launcher variables; `MMRUN_DEFAULT_WORKERS`
/// is removed all the same.
#[test]
fn keep_launcher_env() {
    let d = Dir::new();
    let out = d
        .cmd(&[
            "exec",
            "t.npy",
            "--shape",
            "4",
            "-w",
            "1",
            "--keep-launcher-env",
            "--",
            "sh",
            "-c",
            "env > env.{worker}",
        ])
        .env("MMRUN_DEFAULT_WORKERS", "2")
        .env("OMPI_COMM_WORLD_RANK", "5")
        .env("PMI_RANK", "1")
        .env("PMIX_RANK", "2")
        .env("SLURM_PROCID", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let e = parse_env(&read(&d, "env.0"));
    for (k, v) in [
        ("OMPI_COMM_WORLD_RANK", "5"),
        ("PMI_RANK", "1"),
        ("PMIX_RANK", "2"),
        ("SLURM_PROCID", "3"),
    ] {
        assert_eq!(e.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(!e.contains_key("MMRUN_DEFAULT_WORKERS"));
}

/// A raw file worked on in place: format, dtype, offset, and `--rows`
/// restricting the workers' ranges; `{file}` is the target itself.
#[test]
fn raw_in_place_environment_and_rows() {
    let d = Dir::new();
    d.ok(&[
        "create", "r.dat", "--raw", "--shape", "60,5", "--dtype", "u2", "--offset", "3",
    ]);
    let before = fs::read(d.join("r.dat")).unwrap();
    exec_ok(
        &d,
        &[
            "exec",
            "r.dat",
            "--in-place",
            "--raw",
            "--shape",
            "60,5",
            "--dtype",
            "u2",
            "--offset",
            "3",
            "--rows",
            "10:50",
            "-w",
            "2",
            "--",
            "sh",
            "-c",
            "env > env.{worker}",
        ],
    );
    assert_eq!(
        fs::read(d.join("r.dat")).unwrap(),
        before,
        "the workers wrote nothing"
    );
    let mut covered = Vec::new();
    for w in 0..2 {
        let e = parse_env(&read(&d, &format!("env.{w}")));
        assert_eq!(e["MMRUN_FORMAT"], "raw");
        assert_eq!(e["MMRUN_DTYPE"], "<u2");
        assert_eq!(e["MMRUN_SHAPE"], "60,5");
        assert_eq!(e["MMRUN_DATA_OFFSET"], "3");
        assert!(!e["MMRUN_SEED"].is_empty(), "MMRUN_SEED is always set");
        let f = PathBuf::from(&e["MMRUN_FILE"]);
        let f = if f.is_absolute() { f } else { d.path().join(f) };
        assert_eq!(
            f.canonicalize().unwrap(),
            d.join("r.dat").canonicalize().unwrap()
        );
        covered.push((
            e["MMRUN_ROW_START"].parse::<u64>().unwrap(),
            e["MMRUN_ROW_END"].parse::<u64>().unwrap(),
        ));
    }
    assert_eq!(covered[0].0, 10, "{covered:?}");
    assert_eq!(covered[0].1, covered[1].0, "{covered:?}");
    assert_eq!(covered[1].1, 50, "{covered:?}");
}

/// An unknown `{name}` or an unmatched brace: exit 2 before anything is created.
#[test]
fn bad_templates_are_refused() {
    for arg in ["{nope}", "{start", "a}b", "{}", "{Worker}"] {
        let d = Dir::new();
        let out = d.run(&["exec", "t.npy", "--shape", "4", "--", "echo", arg]);
        assert_refused(&out, 2, "");
        assert!(d.names().is_empty(), "{arg}: left {:?}", d.names());
    }
    let d = Dir::new();
    let out = d.run(&["exec", "t.npy", "--shape", "4", "--", "echo", "{nope}"]);
    assert!(stderr(&out).contains("{nope}"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// Output

/// Lines are tagged `[wN] `, stdout to stdout and stderr to stderr; an
/// unterminated last line is not lost; long lines from several workers never
/// interleave inside a line. `--no-tag` passes them raw.
#[test]
fn output_is_tagged_per_worker() {
    let d = Dir::new();
    let script = "echo out{worker}; echo err{worker} >&2; \
                  i=0; while [ $i -lt 50 ]; do printf '%0800d\\n' {worker}; i=$((i+1)); done; \
                  printf 'tail{worker}'";
    let out = exec_ok(
        &d,
        &[
            "exec", "t.npy", "--shape", "3", "-w", "3", "--", "sh", "-c", script,
        ],
    );
    let (so, se) = (stdout(&out), stderr(&out));
    let long = |w: usize| format!("[w{w}] {w:0>800}");
    for w in 0..3 {
        let lines: Vec<&str> = so.lines().collect();
        assert!(lines.contains(&format!("[w{w}] out{w}").as_str()), "{so}");
        assert!(lines.contains(&format!("[w{w}] tail{w}").as_str()), "{so}");
        assert!(se.lines().any(|l| l == format!("[w{w}] err{w}")), "{se}");
        assert!(!so.contains(&format!("err{w}")), "stderr leaked to stdout");
        assert_eq!(lines.iter().filter(|l| **l == long(w)).count(), 50);
    }
    for l in so.lines() {
        assert!(l.starts_with("[w"), "untagged stdout line {l:?}");
    }

    let d = Dir::new();
    let out = exec_ok(
        &d,
        &[
            "exec",
            "t.npy",
            "--shape",
            "2",
            "-w",
            "2",
            "--no-tag",
            "--",
            "sh",
            "-c",
            "echo out{worker}; echo err{worker} >&2",
        ],
    );
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["out0", "out1"]);
    let se = stderr(&out);
    assert!(
        se.lines().any(|l| l == "err0") && se.lines().any(|l| l == "err1"),
        "{se}"
    );
}

/// With `--json`, stdout is one JSON document even while workers print to
/// stdout (their lines go to stderr, still tagged).
#[test]
fn json_stdout_parses_while_workers_print() {
    let d = Dir::new();
    let out = exec_ok(
        &d,
        &[
            "exec",
            "t.npy",
            "--shape",
            "6,2",
            "-w",
            "3",
            "--seed",
            "5",
            "--json",
            "--",
            "sh",
            "-c",
            "echo 'hello {worker} {{\"x\": 1}}'; echo oops >&2",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(&out)));
    assert!(v["schema_version"].is_u64(), "{v}");
    let workers = v["workers"].as_array().expect("workers list");
    assert_eq!(workers.len(), 3, "{v}");
    let mut next = 0;
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["worker"], i as u64, "{w}");
        assert!(w["pid"].as_u64().is_some_and(|p| p > 0), "{w}");
        assert!(!w["outcome"].is_null(), "{w}");
        assert_eq!(w["rows"]["start"], next, "{w}");
        next = w["rows"]["end"].as_u64().expect("rows.end");
    }
    assert_eq!(next, 6);
    let se = stderr(&out);
    for w in 0..3 {
        assert!(
            se.lines()
                .any(|l| l == format!("[w{w}] hello {w} {{\"x\": 1}}")),
            "{se}"
        );
    }
}

// ---------------------------------------------------------------------------
// Failures

/// 300 rows of 4096 bytes: with `-w 3`, workers own rows 0..100, 100..200, 200..300.
const SHAPE: &str = "300,1024";

/// A worker that SIGKILLs itself fails the run: exit 1, that worker and its
/// rows named, nothing published.
#[test]
fn worker_killing_itself_fails_the_run() {
    let d = Dir::new();
    let out = d.run(&[
        "exec",
        "x.npy",
        "--shape",
        SHAPE,
        "-w",
        "3",
        "--",
        "sh",
        "-c",
        "if [ {worker} = 1 ]; then kill -KILL $$; fi",
    ]);
    assert_refused(&out, 1, "worker 1");
    let err = stderr(&out);
    assert!(err.contains("100..200"), "{err}");
    assert!(err.contains("KILL"), "{err}");
    assert!(
        !err.contains("worker 0") && !err.contains("worker 2"),
        "{err}"
    );
    assert!(!d.join("x.npy").exists(), "published after a failure");
}

/// A worker exiting non-zero: exit 1, every failing worker named with its
/// code; nothing published. In place, exit 1 too.
#[test]
fn worker_exit_code_fails_the_run() {
    let d = Dir::new();
    let out = d.run(&[
        "exec",
        "x.npy",
        "--shape",
        SHAPE,
        "-w",
        "3",
        "--",
        "sh",
        "-c",
        "exit {worker}",
    ]);
    assert_refused(&out, 1, "worker 2");
    let err = stderr(&out);
    assert!(err.contains("worker 1") && err.contains("code 1"), "{err}");
    assert!(err.contains("200..300") && err.contains("code 2"), "{err}");
    assert!(!d.join("x.npy").exists(), "published after a failure");

    let d = Dir::new();
    d.ok(&["create", "y.npy", "--shape", SHAPE]);
    let out = d.run(&["exec", "y.npy", "-w", "2", "--", "sh", "-c", "exit 3"]);
    assert_refused(&out, 1, "code 3");
}

/// PROGRAM missing, not executable or a directory: exit 2 before anything is
/// created (new target) or changed (in place).
#[test]
fn missing_or_unexecutable_program_is_refused() {
    let d = Dir::new();
    fs::write(d.join("script.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(d.join("script.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::create_dir(d.join("adir")).unwrap();
    d.ok(&["create", "old.npy", "--shape", "8,4"]);
    let before = d.snapshot();
    let absolute = d.join("script.sh").to_string_lossy().into_owned();
    for program in [
        "./nope",
        "no-such-program-mmrun-test",
        "./script.sh",
        "./adir",
        absolute.as_str(),
    ] {
        for target in [&["new.npy", "--shape", "4"][..], &["old.npy"][..]] {
            let mut args = vec!["exec"];
            args.extend_from_slice(target);
            args.extend(["-w", "2", "--", program]);
            let out = d.run(&args);
            assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
            assert_refused(&out, 2, "");
            assert_eq!(d.snapshot(), before, "{args:?} changed the directory");
        }
    }
}

/// `--dry-run` starts no worker and touches nothing.
#[test]
fn dry_run_runs_no_worker() {
    let d = Dir::new();
    let out = d.run(&[
        "exec",
        "t.npy",
        "--shape",
        "4",
        "-w",
        "2",
        "--dry-run",
        "--",
        "sh",
        "-c",
        "touch ran",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(d.names().is_empty(), "{:?}", d.names());
}

/// A SIGKILLed coordinator leaves neither a worker nor a worker's own
/// background child behind (the shim of design.md).
#[test]
fn worker_children_die_with_the_coordinator() {
    let d = Dir::new();
    let mut child = d
        .cmd(&[
            "exec",
            "t.npy",
            "--shape",
            "2",
            "-w",
            "2",
            "--",
            "sh",
            "-c",
            "echo \"${{MMRUN_PROGRESS_FILE:-}}\" > pf.{worker}; \
             sleep 1000 & echo $! > child.{worker}.tmp; mv child.{worker}.tmp child.{worker}; \
             echo $$ > sh.{worker}.tmp; mv sh.{worker}.tmp sh.{worker}; wait",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let files = ["child.0", "child.1", "sh.0", "sh.1"];
    let ready = wait_for(20, || files.iter().all(|f| d.join(f).exists()));
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        panic!("workers did not start: {:?}", d.names());
    }
    let pids: Vec<i32> = files
        .iter()
        .map(|f| read(&d, f).trim().parse().unwrap())
        .collect();
    for &p in &pids {
        assert!(!gone(p), "pid {p} not running before the kill");
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let all_gone = wait_for(10, || pids.iter().all(|&p| gone(p)));
    let left: Vec<i32> = pids.iter().copied().filter(|&p| !gone(p)).collect();
    // Clean up before failing, so no sleep outlives the test.
    for &p in &left {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    remove_progress_file(&d, "pf.0");
    assert!(
        all_gone,
        "still running after the coordinator was SIGKILLed: {left:?} (of {files:?} = {pids:?})"
    );
}

/// A SIGKILLed coordinator cannot clean up after itself, so nothing it
/// creates for the workers' sake (here the progress file handed out as
/// `MMRUN_PROGRESS_FILE`) may outlive it: it should be unlinked, or an
/// anonymous memfd, once the workers hold it.
#[test]
fn killed_coordinator_leaves_no_progress_file() {
    let d = Dir::new();
    let mut child = d
        .cmd(&[
            "exec",
            "t.npy",
            "--shape",
            "2",
            "-w",
            "1",
            "--",
            "sh",
            "-c",
            "echo \"${{MMRUN_PROGRESS_FILE:-none}}\" > pf.tmp; mv pf.tmp pf; exec sleep 1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_for(20, || {
        d.join("pf").exists() || child.try_wait().is_ok_and(|s| s.is_some())
    }) && d.join("pf").exists();
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    child.wait().unwrap();
    assert!(ready, "the worker did not start: {:?}", d.names());
    let pf = read(&d, "pf").trim().to_string();
    if pf == "none" {
        return;
    }
    // A path under /proc (an inherited descriptor) goes away with its owner.
    let left = !pf.starts_with("/proc/") && !wait_for(3, || !Path::new(&pf).exists());
    remove_progress_file(&d, "pf");
    assert!(
        !left,
        "{pf} is left behind after the coordinator was SIGKILLed"
    );
}

/// The coordinator's children (pid, state letter), from `/proc`.
fn children_of(parent: i32) -> Vec<(i32, char)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the parenthesised name: state, then ppid.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

/// `--retries` runs a failed worker's whole range again *as that worker*:
/// `MMRUN_WORKER` / `{worker}` name a range, so a retry must not take
/// another worker's id (per-worker side files such as `log.{worker}` would
/// be overwritten). Made deterministic by stopping the coordinator while all
/// three workers exit, so it reaps them in one batch.
#[test]
fn retried_range_keeps_its_worker_id() {
    let d = Dir::new();
    let script = "echo \"$MMRUN_WORKER $MMRUN_ROW_START\" >> attempts; \
                  if [ -e retry.{worker} ]; then exit 0; fi; \
                  while [ ! -e go ]; do sleep 0.02; done; \
                  if [ {worker} = 1 ]; then touch retry.1; exit 5; fi";
    let mut child = d
        .cmd(&[
            "exec",
            "t.npy",
            "--shape",
            SHAPE,
            "-w",
            "3",
            "--retries",
            "1",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let coord = child.id() as i32;
    let started = wait_for(20, || {
        fs::read_to_string(d.join("attempts")).is_ok_and(|s| s.lines().count() == 3)
            || child.try_wait().is_ok_and(|s| s.is_some())
    });
    let stopped = started && kill(Pid::from_raw(coord), Signal::SIGSTOP).is_ok();
    fs::write(d.join("go"), "").unwrap();
    // Every worker (its shim, mmrun's child) has exited and awaits reaping.
    let zombies = stopped
        && wait_for(20, || {
            let c = children_of(coord);
            c.len() == 3 && c.iter().all(|&(_, s)| s == 'Z')
        });
    let _ = kill(Pid::from_raw(coord), Signal::SIGCONT);
    let out = child.wait_with_output().unwrap();
    assert!(started && zombies, "setup failed: {:?}", d.names());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let attempts = read(&d, "attempts");
    let mut first: BTreeMap<&str, &str> = BTreeMap::new();
    for line in attempts.lines() {
        let (w, start) = line.split_once(' ').unwrap();
        let was = *first.entry(w).or_insert(start);
        assert_eq!(
            was, start,
            "worker {w} ran rows from {start} after rows from {was}: attempts:\n{attempts}"
        );
    }
    assert_eq!(attempts.lines().count(), 4, "{attempts}");
}

/// Under `--json` a failed run still prints one report: the run failed and
/// the killed worker's outcome is a SIGKILL.
#[test]
fn json_report_of_a_failed_run() {
    let d = Dir::new();
    let out = d.run(&[
        "exec",
        "x.npy",
        "--shape",
        SHAPE,
        "-w",
        "3",
        "--json",
        "--",
        "sh",
        "-c",
        "echo before; if [ {worker} = 1 ]; then kill -KILL $$; fi",
    ]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(&out)));
    let workers = v["workers"].as_array().expect("workers list");
    let w1: Vec<&serde_json::Value> = workers.iter().filter(|w| w["worker"] == 1).collect();
    assert_eq!(w1.len(), 1, "{v}");
    assert_eq!(w1[0]["rows"]["start"], 100, "{v}");
    let outcome = w1[0]["outcome"].to_string();
    assert!(
        outcome.contains("KILL") || outcome.contains('9'),
        "{outcome}"
    );
    assert!(!d.join("x.npy").exists());
}

/// SIGTERM to the coordinator: the workers are stopped, nothing is
/// published, and mmrun dies of SIGTERM itself (the shell sees 143).
#[test]
fn sigterm_stops_exec_workers_and_is_reraised() {
    use std::os::unix::process::ExitStatusExt;
    let d = Dir::new();
    let mut child = d
        .cmd(&[
            "exec",
            "t.npy",
            "--shape",
            "2",
            "-w",
            "2",
            "--",
            "sh",
            "-c",
            "echo $$ > sh.{worker}.tmp; mv sh.{worker}.tmp sh.{worker}; exec sleep 1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = wait_for(20, || {
        (d.join("sh.0").exists() && d.join("sh.1").exists())
            || child.try_wait().is_ok_and(|s| s.is_some())
    }) && d.join("sh.1").exists();
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(ready, "workers did not start: {}", stderr(&out));
    assert_eq!(
        out.status.signal(),
        Some(Signal::SIGTERM as i32),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    let pids: Vec<i32> = ["sh.0", "sh.1"]
        .iter()
        .map(|f| read(&d, f).trim().parse().unwrap())
        .collect();
    let all_gone = wait_for(10, || pids.iter().all(|&p| gone(p)));
    for &p in &pids {
        if !gone(p) {
            let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
        }
    }
    assert!(all_gone, "workers {pids:?} outlived the coordinator");
    assert!(!d.join("t.npy").exists(), "published after an interrupt");
}

/// `--pin`: worker N runs on the N-th CPU the coordinator may use (its
/// children too, since affinity is inherited); without it, on all of them.
#[test]
fn pin_puts_each_worker_on_its_own_cpu() {
    let d = Dir::new();
    let ours = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|v| v.trim().to_string())
        })
        .unwrap();
    let lists = |pin: bool| -> Vec<String> {
        let mut args = vec!["exec", "p.npy", "--shape", "4,4", "--force", "-w", "2"];
        if pin {
            args.push("--pin");
        }
        args.extend([
            "--",
            "sh",
            "-c",
            "sh -c 'grep Cpus_allowed_list /proc/self/status'",
        ]);
        let out = d.ok(&args);
        let mut v: Vec<String> = stdout(&out)
            .lines()
            .filter_map(|l| {
                l.split_once("Cpus_allowed_list:")
                    .map(|(w, c)| format!("{w}{}", c.trim()))
            })
            .collect();
        v.sort();
        v
    };
    let free = lists(false);
    assert_eq!(free, vec![format!("[w0] {ours}"), format!("[w1] {ours}")]);
    let pinned = lists(true);
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    let cpus: Vec<&str> = pinned
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    for c in &cpus {
        assert!(
            c.parse::<usize>().is_ok(),
            "a pinned worker may run on one CPU only: {pinned:?}"
        );
    }
    if ours.contains(['-', ',']) {
        assert_ne!(
            cpus[0], cpus[1],
            "two CPUs available, two workers on one: {pinned:?}"
        );
    }
}
