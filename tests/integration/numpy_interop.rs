//! Interoperability with real NumPy: files mmrun writes open with
//! `np.load(mmap_mode="r")` / `np.memmap`, compact headers are `np.save`'s
//! bytes, every stream equals NumPy's expression for it
//! (`python/mmrun/reference.py`), the bytes never depend on the
//! worker count or spawn mode, and files NumPy wrote are read, filled in
//! place or refused exactly as design.md says.

use std::fs;
use std::path::Path;

use super::util::{assert_refused, python, require_numpy, Dir};

/// Every dtype mmrun writes.
const DTYPES: [&str; 12] = [
    "b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8",
];

/// A 128-bit seed (2**127 + 3).
const SEED_128: &str = "170141183460469231731687303715884105731";
/// The largest seed (2**128 - 1).
const SEED_MAX: &str = "340282366920938463463374607431768211455";

/// Runs a Python snippet in `dir` with NumPy and the reference module imported.
fn py(py: &Path, dir: &Dir, body: &str) -> String {
    let code = format!(
        "import io, json, math, os, subprocess\n\
         import numpy as np\n\
         import mmrun.reference as R\n\
         {body}"
    );
    python(py, dir.path(), &code)
}

/// An mmrun shape (`2,3`, `7`, `()`) as a Python tuple literal.
fn tuple(shape: &str) -> String {
    let inner = shape.trim_start_matches('(').trim_end_matches(')');
    if inner.is_empty() {
        "()".to_string()
    } else {
        format!("({inner},)")
    }
}

/// Runs `mmrun fill FILE ARGS...` and asserts it succeeded.
fn fill(dir: &Dir, file: &str, args: &[&str]) {
    let mut all = vec!["fill", file];
    all.extend_from_slice(args);
    dir.ok(&all);
}

/// Asserts two files are byte-identical, naming the first differing byte.
fn assert_same_bytes(dir: &Dir, a: &str, b: &str) {
    let x = fs::read(dir.join(a)).unwrap();
    let y = fs::read(dir.join(b)).unwrap();
    if x != y {
        let at = x.iter().zip(&y).position(|(p, q)| p != q);
        panic!(
            "{a} ({} bytes) and {b} ({} bytes) differ, first at byte {at:?}",
            x.len(),
            y.len()
        );
    }
}

#[test]
fn np_load_reads_every_dtype_page_and_compact() {
    let Some(py_bin) = require_numpy("np_load_reads_every_dtype_page_and_compact") else {
        return;
    };
    let dir = Dir::new();
    let shapes = ["17", "2,3,4", "0,5", "5,0", "()"];
    let mut cases = Vec::new();
    for dt in DTYPES {
        for header in ["page", "compact"] {
            for (i, shape) in shapes.iter().enumerate() {
                let f = format!("{dt}_{header}_{i}.npy");
                fill(
                    &dir,
                    &f,
                    &[
                        "--shape",
                        shape,
                        "--dtype",
                        dt,
                        "--arange",
                        "--npy-header",
                        header,
                        "-w",
                        "2",
                    ],
                );
                cases.push(format!("({f:?}, {dt:?}, {}, {header:?})", tuple(shape)));
            }
        }
    }
    let out = py(
        &py_bin,
        &dir,
        &format!(
            r#"
cases = [{}]
for f, dt, shape, header in cases:
    a = np.load(f, mmap_mode="r")
    want = R.arange(shape, dt)
    assert a.dtype == want.dtype and a.dtype.isnative, (f, a.dtype)
    assert a.shape == shape, (f, a.shape, shape)
    assert np.asarray(a).tobytes() == want.tobytes(), (f, np.asarray(a), want)
    with open(f, "rb") as fh:
        assert np.lib.format.read_magic(fh) == (1, 0), f
        h_shape, h_fortran, h_dtype = np.lib.format.read_array_header_1_0(fh)
        offset = fh.tell()
    assert (h_shape, h_fortran, h_dtype) == (shape, False, want.dtype), f
    if header == "page":
        want_offset = 4096
    else:
        buf = io.BytesIO()
        np.save(buf, want)
        want_offset = len(buf.getvalue()) - want.nbytes
    assert offset == want_offset, (f, offset, want_offset)
    assert os.path.getsize(f) == offset + want.nbytes, (f, os.path.getsize(f))
    if a.size:
        assert isinstance(a, np.memmap) and a.offset == offset, (f, type(a))
print("checked", len(cases))
"#,
            cases.join(", ")
        ),
    );
    assert_eq!(out.trim(), format!("checked {}", cases.len()));
}

#[test]
fn compact_header_is_byte_identical_to_np_save() {
    let Some(py_bin) = require_numpy("compact_header_is_byte_identical_to_np_save") else {
        return;
    };
    let dir = Dir::new();
    let mut cases: Vec<(String, String)> = Vec::new();
    for dt in DTYPES {
        for shape in ["()", "7", "0", "2,3,4", "5,0"] {
            cases.push((dt.to_string(), shape.to_string()));
        }
    }
    // Shapes whose header text grows digit by digit, across the 64-byte
    // padding boundaries np.save uses, and many dimensions.
    // (NumPy's dimensions are int64: at most 18 nines.)
    for digits in 1..=18 {
        let n = "9".repeat(digits);
        cases.push(("f4".to_string(), format!("0,{n}")));
        cases.push(("u1".to_string(), format!("{n},0,3")));
    }
    cases.push(("f8".to_string(), ["1"; 20].join(",")));
    cases.push(("i2".to_string(), ["2"; 12].join(",")));
    cases.push(("b1".to_string(), "1,1,1,1,1,1,1,0,1,1,1".to_string()));

    let mut refs = Vec::new();
    for (i, (dt, shape)) in cases.iter().enumerate() {
        let f = format!("c{i}.npy");
        fill(
            &dir,
            &f,
            &[
                "--shape",
                shape,
                "--dtype",
                dt,
                "--value",
                "0",
                "--npy-header",
                "compact",
            ],
        );
        refs.push(format!("(\"ref{i}.npy\", {dt:?}, {})", tuple(shape)));
    }
    // Non-zero data too: the whole file, header and values.
    fill(
        &dir,
        "u.npy",
        &[
            "--shape",
            "3,5",
            "--dtype",
            "f8",
            "--random",
            "uniform",
            "--seed",
            "1",
            "--npy-header",
            "compact",
        ],
    );
    fill(
        &dir,
        "a.npy",
        &[
            "--shape",
            "4,3,2",
            "--dtype",
            "i2",
            "--arange",
            "--npy-header",
            "compact",
        ],
    );
    py(
        &py_bin,
        &dir,
        &format!(
            r#"
for f, dt, shape in [{}]:
    np.save(f, np.zeros(shape, dtype=dt))
np.save("ref_u.npy", np.random.Generator(np.random.Philox(1)).random((3, 5)))
np.save("ref_a.npy", np.arange(24).astype("i2").reshape(4, 3, 2))
"#,
            refs.join(", ")
        ),
    );
    for (i, (dt, shape)) in cases.iter().enumerate() {
        let ours = fs::read(dir.join(&format!("c{i}.npy"))).unwrap();
        let theirs = fs::read(dir.join(&format!("ref{i}.npy"))).unwrap();
        assert!(
            ours == theirs,
            "dtype {dt} shape ({shape}): compact file differs from np.save's\nmmrun: {:?}\nnumpy: {:?}",
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }
    assert_same_bytes(&dir, "u.npy", "ref_u.npy");
    assert_same_bytes(&dir, "a.npy", "ref_a.npy");
}

#[test]
fn raw_files_read_by_np_memmap() {
    let Some(py_bin) = require_numpy("raw_files_read_by_np_memmap") else {
        return;
    };
    let dir = Dir::new();
    let f4 = ["--shape", "100,30", "--dtype", "f4"];
    fill(
        &dir,
        "x.dat",
        &[&["--raw"], &f4[..], &["--random", "uniform", "--seed", "5"]].concat(),
    );
    fill(
        &dir,
        "x16.dat",
        &[
            &["--raw", "--offset", "16"],
            &f4[..],
            &["--random", "uniform", "--seed", "5", "-w", "3"],
        ]
        .concat(),
    );
    // An offset that is not a multiple of the itemsize (numpy.memmap allows it).
    fill(
        &dir,
        "x3.dat",
        &[
            "--raw", "--offset", "3", "--shape", "101,7", "--dtype", "f8", "--random", "uniform",
            "--seed", "9", "-w", "3",
        ],
    );
    fill(
        &dir,
        "n3.dat",
        &[
            "--raw", "--offset", "3", "--shape", "257,3", "--dtype", "f4", "--random", "normal",
            "--seed", "9", "-w", "7",
        ],
    );
    fill(
        &dir,
        "a5.dat",
        &[
            "--raw", "--offset", "5", "--shape", "9,4,3", "--dtype", "i2", "--arange", "-w", "2",
        ],
    );
    // Existing raw files, filled in place: a 1-D shape inferred from the size.
    py(
        &py_bin,
        &dir,
        r#"
np.arange(1000, dtype="f4").tofile("y.dat")
with open("y5.dat", "wb") as f:
    f.write(b"HELLO" + np.full(200, 99, dtype="i2").tobytes())
np.save("t.npy", np.arange(32, dtype="f4"))
"#,
    );
    fill(
        &dir,
        "y.dat",
        &[
            "--raw", "--dtype", "f4", "--random", "uniform", "--seed", "7", "-w", "3",
        ],
    );
    fill(
        &dir,
        "y5.dat",
        &[
            "--raw", "--dtype", "i2", "--offset", "5", "--arange", "-w", "2",
        ],
    );
    // A .npy file opened with --raw is raw: its header is data too.
    fill(&dir, "t.npy", &["--raw", "--dtype", "u1", "--arange"]);
    py(
        &py_bin,
        &dir,
        r#"
gen = lambda seed: np.random.Generator(np.random.Philox(seed))
want = gen(5).random((100, 30), dtype=np.float32)
a = np.memmap("x.dat", dtype="f4", mode="r", shape=(100, 30))
assert os.path.getsize("x.dat") == 12000
assert np.array_equal(a.view("u4"), want.view("u4"))
a = np.memmap("x16.dat", dtype="f4", mode="r", offset=16, shape=(100, 30))
assert os.path.getsize("x16.dat") == 16 + 12000
assert open("x16.dat", "rb").read(16) == bytes(16)
assert np.array_equal(a.view("u4"), want.view("u4"))

a = np.memmap("x3.dat", dtype="f8", mode="r", offset=3, shape=(101, 7))
assert os.path.getsize("x3.dat") == 3 + 101 * 7 * 8
assert open("x3.dat", "rb").read(3) == bytes(3)
assert np.array_equal(np.asarray(a).view("u8"), gen(9).random((101, 7)).view("u8"))
assert R.verify("n3.dat", 9, "normal", raw=True, dtype_="f4", shape=(257, 3), offset=3) is None
a = np.memmap("n3.dat", dtype="f4", mode="r", offset=3)
assert a.shape == (771,)
a = np.memmap("a5.dat", dtype="i2", mode="r", offset=5, shape=(9, 4, 3))
assert np.array_equal(a, np.arange(108).astype("i2").reshape(9, 4, 3))

a = np.memmap("y.dat", dtype="f4", mode="r")
assert a.shape == (1000,)
assert np.array_equal(a.view("u4"), gen(7).random(1000, dtype=np.float32).view("u4"))
with open("y5.dat", "rb") as f:
    data = f.read()
assert len(data) == 405 and data[:5] == b"HELLO", data[:8]
assert np.array_equal(np.memmap("y5.dat", dtype="i2", mode="r", offset=5), np.arange(200, dtype="i2"))

with open("t.npy", "rb") as f:
    assert f.read() == bytes(range(256))

info = json.loads(subprocess.run([os.environ["MMRUN_BIN"], "info", "y5.dat", "--raw", "--dtype", "i2",
                                  "--offset", "5", "--json"], check=True, capture_output=True).stdout)
assert (info["format"], info["dtype"], info["shape"], info["data_offset"]) == ("raw", "<i2", [200], 5), info
info = json.loads(subprocess.run([os.environ["MMRUN_BIN"], "info", "t.npy", "--raw", "--dtype", "u1",
                                  "--json"], check=True, capture_output=True).stdout)
assert (info["format"], info["dtype"], info["shape"], info["data_offset"]) == ("raw", "|u1", [256], 0), info
"#,
    );
}

#[test]
fn uniform_f4_f8_equal_numpy_philox_bit_for_bit() {
    let Some(py_bin) = require_numpy("uniform_f4_f8_equal_numpy_philox_bit_for_bit") else {
        return;
    };
    let dir = Dir::new();
    let seeds = ["0", "1", "12345", SEED_128, SEED_MAX];
    let shapes = ["1000", "37,11", "3,5,7", "1", "4099,3"];
    let mut cases = Vec::new();
    for (s, seed) in seeds.iter().enumerate() {
        for dt in ["f4", "f8"] {
            // Not every shape for every seed: each seed meets two shapes.
            for shape in [shapes[s], shapes[(s + 2) % shapes.len()]] {
                let f = format!("u_{s}_{dt}_{}.npy", shape.replace(',', "x"));
                let w = if shape == "4099,3" { "7" } else { "3" };
                fill(
                    &dir,
                    &f,
                    &[
                        "--shape", shape, "--dtype", dt, "--random", "uniform", "--seed", seed,
                        "-w", w,
                    ],
                );
                cases.push(format!("({f:?}, {seed}, {dt:?}, {})", tuple(shape)));
            }
        }
    }
    let out = py(
        &py_bin,
        &dir,
        &format!(
            r#"
cases = [{}]
for f, seed, dt, shape in cases:
    a = np.load(f, mmap_mode="r")
    want = np.random.Generator(np.random.Philox(seed)).random(shape, dtype=np.dtype(dt).type)
    assert a.dtype == want.dtype and a.shape == shape, (f, a.dtype, a.shape)
    bad = np.flatnonzero(np.asarray(a).view("u%d" % a.itemsize).ravel() != want.view("u%d" % a.itemsize).ravel())
    assert bad.size == 0, (f, "first differing element", bad[:1])
    assert R.verify(f, seed, "uniform") is None, f
print("checked", len(cases))
"#,
            cases.join(", ")
        ),
    );
    assert_eq!(out.trim(), format!("checked {}", cases.len()));
}

#[test]
fn integer_bool_f2_and_normal_streams_equal_the_reference_expressions() {
    let Some(py_bin) =
        require_numpy("integer_bool_f2_and_normal_streams_equal_the_reference_expressions")
    else {
        return;
    };
    let dir = Dir::new();
    let mut cases = Vec::new();
    for (s, seed) in ["0", SEED_128].iter().enumerate() {
        for dt in DTYPES.iter().filter(|d| !matches!(**d, "f4" | "f8")) {
            let f = format!("u_{s}_{dt}.npy");
            fill(
                &dir,
                &f,
                &[
                    "--shape", "129,3", "--dtype", dt, "--random", "uniform", "--seed", seed, "-w",
                    "3",
                ],
            );
            cases.push(format!("({f:?}, {seed}, {dt:?}, \"uniform\")"));
        }
        for dt in ["f2", "f4", "f8"] {
            // An odd element count: the last pair is cut in half.
            for shape in ["1001", "7,3,5"] {
                let f = format!("n_{s}_{dt}_{}.npy", shape.replace(',', "x"));
                fill(
                    &dir,
                    &f,
                    &[
                        "--shape", shape, "--dtype", dt, "--random", "normal", "--seed", seed,
                        "-w", "3",
                    ],
                );
                cases.push(format!("({f:?}, {seed}, {dt:?}, \"normal\")"));
            }
        }
    }
    let out = py(
        &py_bin,
        &dir,
        &format!(
            r#"
def spec(seed, dt, shape, kind):
    """design.md's expressions, written out independently of the reference module."""
    n = math.prod(shape)
    raw = np.random.Philox(seed).random_raw(n + 1)
    dt = np.dtype(dt)
    if kind == "uniform":
        if dt.kind == "b":
            return (raw[:n] & np.uint64(1)).astype(bool).reshape(shape)
        if dt.kind in "iu":
            return raw[:n].astype(dt).reshape(shape)
        u32 = np.empty(2 * raw.size, dtype=np.uint64)
        u32[0::2] = raw & np.uint64(0xFFFFFFFF)
        u32[1::2] = raw >> np.uint64(32)
        return ((u32[:n] >> np.uint64(21)).astype(np.float64) * 2.0**-11).astype(dt).reshape(shape)
    out = np.empty(n, dtype=np.float64)
    for m in range((n + 1) // 2):
        a, b = int(raw[2 * m]), int(raw[2 * m + 1])
        u1 = ((a >> 11) + 0.5) * 2.0**-53
        u2 = (b >> 11) * 2.0**-53
        r = math.sqrt(-2.0 * math.log(u1))
        t = 2.0 * math.pi * u2
        out[2 * m] = r * math.cos(t)
        if 2 * m + 1 < n:
            out[2 * m + 1] = r * math.sin(t)
    return out.astype(dt).reshape(shape)

for f, seed, dt, kind in [{}]:
    a = np.asarray(np.load(f, mmap_mode="r"))
    want = spec(seed, dt, a.shape, kind)
    assert a.dtype == want.dtype, (f, a.dtype)
    # The reference module computes the same stream.
    ref = R.expected(kind, a.shape, dt, seed=seed)
    if kind == "uniform":
        assert a.tobytes() == want.tobytes(), (f, a.ravel()[:8], want.ravel()[:8])
        assert ref.tobytes() == want.tobytes(), f
    elif a.dtype == np.float64:
        np.testing.assert_allclose(a, want, rtol=1e-12, atol=0, err_msg=f)
        np.testing.assert_allclose(ref, want, rtol=1e-12, atol=0, err_msg=f)
    else:
        ints = "i%d" % a.itemsize
        ulps = np.abs(a.view(ints).astype(np.int64) - want.view(ints).astype(np.int64))
        assert ulps.max() <= 1, (f, "ulps", ulps.max(), np.flatnonzero(ulps > 1)[:5])
    assert np.isfinite(a).all() if a.dtype.kind == "f" else True, f
    assert R.verify(f, seed, kind) is None, f
print("ok")
"#,
            cases.join(", ")
        ),
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn reference_verify_names_the_first_differing_row() {
    let Some(py_bin) = require_numpy("reference_verify_names_the_first_differing_row") else {
        return;
    };
    let dir = Dir::new();
    fill(
        &dir,
        "v.npy",
        &[
            "--shape", "300,7", "--dtype", "f4", "--random", "normal", "--seed", "3",
        ],
    );
    let out = py(
        &py_bin,
        &dir,
        r#"
import shutil, sys
assert R.verify("v.npy", 3, "normal") is None
assert R.verify("v.npy", 4, "normal") == 0
shutil.copy("v.npy", "w.npy")
m = np.load("w.npy", mmap_mode="r+")
m[123, 4] = np.nextafter(m[123, 4], np.float32(np.inf))
m[123, 4] = np.nextafter(m[123, 4], np.float32(np.inf))
m.flush()
del m
assert R.verify("w.npy", 3, "normal", block_elements=64) == 123
ref = os.path.join(os.environ["PYTHONPATH"], "mmrun", "reference.py")
p = subprocess.run([sys.executable, ref, "w.npy", "--random", "normal", "--seed", "3"], capture_output=True, text=True)
assert p.returncode == 1 and "row 123" in p.stdout, (p.returncode, p.stdout, p.stderr)
p = subprocess.run([sys.executable, ref, "v.npy", "--random", "normal", "--seed", "3"], capture_output=True, text=True)
assert p.returncode == 0 and p.stdout.strip() == "ok", (p.stdout, p.stderr)
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn bytes_do_not_depend_on_workers_or_spawn_mode() {
    let Some(py_bin) = require_numpy("bytes_do_not_depend_on_workers_or_spawn_mode") else {
        return;
    };
    let dir = Dir::new();
    // (name, arguments, the reference's verify() arguments after seed/kind)
    let cases: [(&str, &[&str], &str); 9] = [
        // 52-byte rows: boundaries only every 1024 rows.
        (
            "f4u.npy",
            &[
                "--shape", "3001,13", "--dtype", "f4", "--random", "uniform", "--seed", "3",
            ],
            "3, 'uniform'",
        ),
        (
            "f8n.npy",
            &[
                "--shape",
                "2001,3",
                "--dtype",
                "f8",
                "--random",
                "normal",
                "--seed",
                "4",
                "--npy-header",
                "compact",
            ],
            "4, 'normal'",
        ),
        // Odd data offset: no aligned boundary exists, workers start at odd elements.
        (
            "f2u.dat",
            &[
                "--raw", "--offset", "3", "--shape", "999,7", "--dtype", "f2", "--random",
                "uniform", "--seed", "5",
            ],
            "5, 'uniform', raw=True, dtype_='f2', shape=(999, 7), offset=3",
        ),
        (
            "f4n.dat",
            &[
                "--raw", "--offset", "1", "--shape", "1025,3", "--dtype", "f4", "--random",
                "normal", "--seed", "6",
            ],
            "6, 'normal', raw=True, dtype_='f4', shape=(1025, 3), offset=1",
        ),
        // Data offset 128 with 4096-byte rows: balanced unaligned boundaries.
        (
            "f4c.npy",
            &[
                "--shape",
                "64,1024",
                "--dtype",
                "f4",
                "--random",
                "uniform",
                "--seed",
                "9",
                "--npy-header",
                "compact",
            ],
            "9, 'uniform'",
        ),
        (
            "i2a.npy",
            &[
                "--shape",
                "4099,5",
                "--dtype",
                "i2",
                "--arange",
                "--npy-header",
                "compact",
            ],
            "None, 'arange'",
        ),
        // Fewer rows than workers.
        (
            "i1few.npy",
            &[
                "--shape", "5,3", "--dtype", "i1", "--random", "uniform", "--seed", "7",
            ],
            "7, 'uniform'",
        ),
        (
            "u8few.npy",
            &[
                "--shape", "2,1000", "--dtype", "u8", "--random", "uniform", "--seed", "8",
            ],
            "8, 'uniform'",
        ),
        (
            "b1z.npy",
            &["--shape", "3,0", "--dtype", "b1", "--value", "true"],
            "None, 'value', v='true'",
        ),
    ];
    let configs: [&[&str]; 7] = [
        &["-w", "1"],
        &["-w", "2"],
        &["-w", "3"],
        &["-w", "7"],
        &["-w", "3", "--spawn", "fork"],
        &["-w", "7", "--spawn", "exec"],
        &["-w", "1", "--spawn", "exec"],
    ];
    let mut checks = Vec::new();
    for (name, args, verify) in cases {
        let (stem, ext) = name.split_once('.').unwrap();
        for (c, config) in configs.iter().enumerate() {
            let f = format!("{stem}_{c}.{ext}");
            fill(&dir, &f, &[args, config].concat());
            if c > 0 {
                assert_same_bytes(&dir, &format!("{stem}_0.{ext}"), &f);
            }
        }
        checks.push(format!("R.verify('{stem}_5.{ext}', {verify})"));
    }
    let out = py(
        &py_bin,
        &dir,
        &format!(
            "rows = [{}]\nassert rows == [None] * len(rows), rows\nprint('ok')\n",
            checks.join(", ")
        ),
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn arange_and_value_match_numpy() {
    let Some(py_bin) = require_numpy("arange_and_value_match_numpy") else {
        return;
    };
    let dir = Dir::new();
    // (dtype, shape, fill arguments, NumPy expression for the expected array)
    let cases: &[(&str, &str, &[&str], &str)] = &[
        (
            "f4",
            "4,5",
            &["--value", "0.1"],
            "np.full(S, 0.1, dtype=np.float32)",
        ),
        (
            "f8",
            "4,5",
            &["--value", "0.1"],
            "np.full(S, 0.1, dtype=np.float64)",
        ),
        (
            "f2",
            "4,5",
            &["--value", "0.1"],
            "np.full(S, 0.1, dtype=np.float16)",
        ),
        (
            "i2",
            "3,3",
            &["--value", "-7"],
            "np.full(S, -7, dtype=np.int16)",
        ),
        ("b1", "9", &["--value", "true"], "np.full(S, True)"),
        ("b1", "9", &["--value", "false"], "np.full(S, False)"),
        ("b1", "9", &["--value", "1"], "np.full(S, True)"),
        ("b1", "9", &["--value", "0"], "np.full(S, False)"),
        ("f8", "5", &["--value", "nan"], "np.full(S, np.nan)"),
        (
            "f4",
            "5",
            &["--value", "nan"],
            "np.full(S, np.nan, dtype=np.float32)",
        ),
        (
            "f2",
            "5",
            &["--value", "nan"],
            "np.full(S, np.nan, dtype=np.float16)",
        ),
        ("f8", "5", &["--value", "inf"], "np.full(S, np.inf)"),
        (
            "f4",
            "5",
            &["--value", "-inf"],
            "np.full(S, -np.inf, dtype=np.float32)",
        ),
        (
            "f2",
            "5",
            &["--value", "inf"],
            "np.full(S, np.inf, dtype=np.float16)",
        ),
        (
            "f4",
            "3",
            &["--value", "-0.0"],
            "np.full(S, -0.0, dtype=np.float32)",
        ),
        // Decimal -> f64 -> f32, as NumPy converts a Python float (a tie after the first rounding).
        (
            "f4",
            "3",
            &["--value", "1.00000005960464477550"],
            "np.full(S, 1.00000005960464477550, dtype=np.float32)",
        ),
        (
            "f4",
            "3",
            &["--value", "16777217"],
            "np.full(S, 16777217, dtype=np.float32)",
        ),
        (
            "f4",
            "3",
            &["--value", "1e-50"],
            "np.full(S, 1e-50, dtype=np.float32)",
        ),
        (
            "f2",
            "3",
            &["--value", "65504"],
            "np.full(S, 65504, dtype=np.float16)",
        ),
        (
            "f2",
            "3",
            &["--value", "0.0001"],
            "np.full(S, 0.0001, dtype=np.float16)",
        ),
        ("f8", "3", &["--value", "5e-324"], "np.full(S, 5e-324)"),
        (
            "f8",
            "3",
            &["--value", "1.7976931348623157e308"],
            "np.full(S, 1.7976931348623157e308)",
        ),
        (
            "u1",
            "3",
            &["--value", "255"],
            "np.full(S, 255, dtype=np.uint8)",
        ),
        (
            "i1",
            "3",
            &["--value", "-128"],
            "np.full(S, -128, dtype=np.int8)",
        ),
        (
            "u4",
            "3",
            &["--value", "4294967295"],
            "np.full(S, 4294967295, dtype=np.uint32)",
        ),
        (
            "u8",
            "3",
            &["--value", "18446744073709551615"],
            "np.full(S, 18446744073709551615, dtype=np.uint64)",
        ),
        (
            "i8",
            "3",
            &["--value", "-9223372036854775808"],
            "np.full(S, -9223372036854775808, dtype=np.int64)",
        ),
        ("f8", "2,3,4", &["--value", "-2.5"], "np.full(S, -2.5)"),
        // arange wraps like astype.
        (
            "u1",
            "1000",
            &["--arange"],
            "np.arange(1000).astype(np.uint8)",
        ),
        (
            "i1",
            "10,100",
            &["--arange"],
            "np.arange(1000).astype(np.int8).reshape(S)",
        ),
        (
            "i2",
            "70000",
            &["--arange"],
            "np.arange(70000).astype(np.int16)",
        ),
        (
            "u2",
            "70000",
            &["--arange"],
            "np.arange(70000).astype(np.uint16)",
        ),
        // f2 is exact up to 2048, then rounds to even, then overflows to inf past 65519.
        (
            "f2",
            "5000",
            &["--arange"],
            "np.arange(5000).astype(np.float16)",
        ),
        (
            "f2",
            "700,100",
            &["--arange"],
            "np.arange(70000).astype(np.float16).reshape(S)",
        ),
        (
            "b1",
            "5,3",
            &["--arange"],
            "np.arange(15).astype(bool).reshape(S)",
        ),
        (
            "i8",
            "7,3",
            &["--arange"],
            "np.arange(21).astype(np.int64).reshape(S)",
        ),
        ("u8", "21", &["--arange"], "np.arange(21).astype(np.uint64)"),
        (
            "u4",
            "3,4,5",
            &["--arange"],
            "np.arange(60).astype(np.uint32).reshape(S)",
        ),
        (
            "f4",
            "3,4,5",
            &["--arange"],
            "np.arange(60).astype(np.float32).reshape(S)",
        ),
        (
            "f8",
            "()",
            &["--arange"],
            "np.arange(1).astype(np.float64).reshape(S)",
        ),
        ("f8", "()", &["--value", "3.5"], "np.full(S, 3.5)"),
    ];
    let mut checks = Vec::new();
    for (i, (dt, shape, args, expr)) in cases.iter().enumerate() {
        let f = format!("v{i}.npy");
        let w = if i % 2 == 0 { "2" } else { "3" };
        fill(
            &dir,
            &f,
            &[&["--shape", shape, "--dtype", dt, "-w", w], *args].concat(),
        );
        checks.push(format!(
            "({f:?}, {}, lambda S: {expr}, {:?})",
            tuple(shape),
            format!("{dt} {}", args.join(" "))
        ));
    }
    let out = py(
        &py_bin,
        &dir,
        &format!(
            r#"
import warnings
warnings.simplefilter("ignore")
failed = []
for f, shape, make, what in [{}]:
    a = np.load(f)
    want = make(shape)
    if a.dtype != want.dtype or a.shape != want.shape or a.tobytes() != want.tobytes():
        failed.append((what, a.dtype, a.shape, a.ravel()[:6], want.ravel()[:6]))
    if what.split()[1] == "--value":
        ref = R.value(what.split(" ", 2)[2], shape, a.dtype)
        assert ref.tobytes() == want.tobytes(), what
    elif what.split()[1] == "--arange":
        assert R.arange(shape, a.dtype).tobytes() == want.tobytes(), what
assert not failed, "\n".join(map(repr, failed))
print("ok")
"#,
            checks.join(",\n")
        ),
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn fill_rows_in_place_writes_only_those_rows() {
    let Some(py_bin) = require_numpy("fill_rows_in_place_writes_only_those_rows") else {
        return;
    };
    let dir = Dir::new();
    py(
        &py_bin,
        &dir,
        r#"
np.save("s128.npy", np.arange(700, dtype="f4").reshape(100, 7) * -1.5)
m = np.lib.format.open_memmap("v2.npy", mode="w+", dtype="u2", shape=(64, 9), version=(2, 0))
m[:] = 7777
m.flush()
del m
m = np.lib.format.open_memmap("v3.npy", mode="w+", dtype="f8", shape=(33, 5), version=(3, 0))
m[:] = -1.0
m.flush()
del m
with open("r.dat", "wb") as f:
    f.write(b"abc" + np.full(120, -5, dtype="i4").tobytes())
"#,
    );
    fill(
        &dir,
        "pg.npy",
        &["--shape", "50,3", "--dtype", "f2", "--value", "0.5"],
    );
    // (base file, fill arguments, kind, seed, extra args as the reference reads the file)
    let bases: [(&str, &[&str], &str, &str, &str); 5] = [
        (
            "s128.npy",
            &["--random", "uniform", "--seed", "11"],
            "uniform",
            "11",
            "None",
        ),
        ("v2.npy", &["--arange"], "arange", "None", "None"),
        (
            "v3.npy",
            &["--random", "normal", "--seed", "12"],
            "normal",
            "12",
            "None",
        ),
        (
            "pg.npy",
            &["--random", "uniform", "--seed", "13"],
            "uniform",
            "13",
            "None",
        ),
        (
            "r.dat",
            &[
                "--raw", "--dtype", "i4", "--offset", "3", "--random", "uniform", "--seed", "14",
            ],
            "uniform",
            "14",
            "('i4', 3)",
        ),
    ];
    let specs = [
        "10:20", "-10:", ":5", "3:-3", "5:5", "90:200", "-200:3", "7:3", ":", "-1:",
    ];
    let mut cases = Vec::new();
    for (b, (base, args, kind, seed, raw)) in bases.iter().enumerate() {
        for (s, spec) in specs.iter().enumerate() {
            let (stem, ext) = base.split_once('.').unwrap();
            let f = format!("{stem}_{s}.{ext}");
            fs::copy(dir.join(base), dir.join(&f)).unwrap();
            let rows = format!("--rows={spec}");
            let w = ["1", "2", "3", "7"][(b + s) % 4];
            fill(&dir, &f, &[*args, &[rows.as_str(), "-w", w]].concat());
            cases.push(format!(
                "({f:?}, {base:?}, {kind:?}, {seed}, {spec:?}, {raw})"
            ));
        }
    }
    let out = py(
        &py_bin,
        &dir,
        &format!(
            r#"
def load(data, raw):
    if raw:
        dt, off = raw
        return np.frombuffer(data, dtype=dt, offset=off), off
    a = np.load(io.BytesIO(data))
    return a, len(data) - a.nbytes

for out, base, kind, seed, spec, raw in [{}]:
    ob = open(base, "rb").read()
    nb = open(out, "rb").read()
    assert len(nb) == len(ob), (out, len(nb), len(ob))
    a0, off = load(ob, raw)
    a1, _ = load(nb, raw)
    assert nb[:off] == ob[:off], (out, "header or prefix changed")
    start, end = [int(x) if x else None for x in spec.split(":")]
    lo, hi, _ = slice(start, end).indices(len(a0))
    hi = max(lo, hi)
    assert a1[:lo].tobytes() == a0[:lo].tobytes(), (out, spec, "rows before the slice changed")
    assert a1[hi:].tobytes() == a0[hi:].tobytes(), (out, spec, "rows after the slice changed")
    want = R.rows(kind, a0.shape, a0.dtype, start, end, seed=seed)
    assert want.tobytes() == R.expected(kind, a0.shape, a0.dtype, seed=seed)[lo:hi].tobytes()
    got = a1[lo:hi]
    if kind == "normal":
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=out)
    else:
        assert got.tobytes() == want.tobytes(), (out, spec, got[:3], want[:3])
print("ok")
"#,
            cases.join(",\n")
        ),
    );
    assert_eq!(out.trim(), "ok");
    // Nothing left beside the files.
    let stray: Vec<String> = dir
        .names()
        .into_iter()
        .filter(|n| n.contains("mmrun"))
        .collect();
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn rows_accepts_a_negative_start_as_its_own_argument() {
    let Some(py_bin) = require_numpy("rows_accepts_a_negative_start_as_its_own_argument") else {
        return;
    };
    let dir = Dir::new();
    py(
        &py_bin,
        &dir,
        "np.save('a.npy', np.zeros((20, 3), dtype='i4'))\n",
    );
    // `--rows -10:` as two words, the way design.md and --help write it.
    fill(&dir, "a.npy", &["--rows", "-10:", "--arange"]);
    let out = py(
        &py_bin,
        &dir,
        r#"
a = np.load("a.npy")
want = np.zeros((20, 3), dtype="i4")
want[-10:] = np.arange(60).astype("i4").reshape(20, 3)[-10:]
assert np.array_equal(a, want), a
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn info_reports_numpy_files_and_fill_refuses_fortran_and_big_endian() {
    let Some(py_bin) =
        require_numpy("info_reports_numpy_files_and_fill_refuses_fortran_and_big_endian")
    else {
        return;
    };
    let dir = Dir::new();
    let out = py(
        &py_bin,
        &dir,
        r#"
fmt = np.lib.format
np.save("v1.npy", np.arange(24, dtype="<i8").reshape(2, 3, 4))
np.save("v1s.npy", np.float64(3.0))
for name, version, dt, shape in [("v2.npy", (2, 0), "u1", (10,)), ("v3.npy", (3, 0), "f2", (0, 3)),
                                 ("v2b.npy", (2, 0), "f4", (5, 7))]:
    m = fmt.open_memmap(name, mode="w+", dtype=dt, shape=shape, version=version)
    del m
np.save("fo.npy", np.asfortranarray(np.arange(12.0).reshape(3, 4)))
np.save("be.npy", np.arange(12.0).reshape(3, 4).astype(">f8"))
np.save("bei.npy", np.arange(6).astype(">i4"))

def header(path):
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dt = read(f)
        return version, shape, fortran, dt, f.tell()

for name in ["v1.npy", "v1s.npy", "v2.npy", "v3.npy", "v2b.npy", "fo.npy", "be.npy", "bei.npy"]:
    version, shape, fortran, dt, offset = header(name)
    p = subprocess.run([os.environ["MMRUN_BIN"], "info", name, "--json"], capture_output=True, text=True)
    assert p.returncode == 0, (name, p.stderr)
    info = json.loads(p.stdout)
    want = {
        "format": "npy",
        "dtype": fmt.dtype_to_descr(dt),
        "shape": list(shape),
        "data_offset": offset,
        "npy_version": "%d.%d" % version,
        "fortran_order": fortran,
        "byte_order": "big" if dt.byteorder == ">" else "little",
        "data_bytes": math.prod(shape) * dt.itemsize,
        "file_bytes": os.path.getsize(name),
    }
    got = {k: info.get(k) for k in want}
    assert got == want, (name, got, want)
print("ok")
"#,
    );
    assert_eq!(out.trim(), "ok");

    for file in ["fo.npy", "be.npy", "bei.npy"] {
        let attempts: [&[&str]; 4] = [
            &["--arange"],
            &["--rows", "0:1", "--value", "1"],
            &["--random", "uniform", "--seed", "1", "-w", "2"],
            &["--random", "normal", "--seed", "1", "--spawn", "exec"],
        ];
        for args in attempts {
            let before = dir.snapshot();
            let mut all = vec!["fill", file];
            all.extend_from_slice(args);
            let out = dir.run(&all);
            assert_refused(&out, 2, "convert");
            assert_eq!(
                dir.snapshot(),
                before,
                "fill {file} {args:?} changed the directory"
            );
        }
    }
}
