//! NumPy's own `.npy` format tests (numpy/lib/tests/test_format.py), case
//! for case, run through mmrun and NumPy side by side: the round-trip
//! arrays of every basic dtype in both byte orders and six shapes, record
//! arrays, format versions 1.0/2.0/3.0, bad magic strings and versions,
//! bad and malicious headers, Python 2's `L` suffixes, large headers,
//! truncated files and the descr spellings `np.dtype` reads.
//!
//! For each file NumPy's verdict (`np.load`, which refuses pickles) is the
//! oracle: where NumPy reads it, `mmrun info --json` must report the same
//! dtype, shape and order and `mmrun reduce --op sum --axis all` must give
//! `np.sum` (or, for a big-endian or Fortran-order file, refuse with a
//! `mmrun convert` command that works, after which the sum agrees; for a
//! layout-only dtype, refuse the sum); where NumPy refuses it, both mmrun
//! commands refuse it with exit 2 and one line.

use crate::util::{python, require_numpy, stderr, Dir};

/// Builds every case file and prints NumPy's verdict on each, one JSON
/// object per line.
const CASES: &str = r#"
import json, struct
import numpy as np
from numpy.lib import format as F

cases = []

def save(name, a, **kw):
    np.save(name, a, **kw)
    cases.append(name)

def raw(name, data):
    with open(name, 'wb') as f:
        f.write(data)
    cases.append(name)

def npy(version, text, data=b'', total=None):
    # A header as np.save lays it out: magic, version, length, dict,
    # spaces and a newline, the whole a multiple of 64 (or `total` long).
    text = text.encode('utf8' if version == (3, 0) else 'latin1')
    lb = 2 if version == (1, 0) else 4
    pre = 8 + lb
    n = pre + len(text) + 1
    end = total if total is not None else -(-n // 64) * 64
    text = text + b' ' * (end - n) + b'\n'
    fmt = '<H' if lb == 2 else '<I'
    return b'\x93NUMPY' + bytes(version) + struct.pack(fmt, len(text)) + text + data

# test_roundtrip's basic_arrays: every scalar type, both byte orders, six shapes.
scalars = ['u1', 'i1', 'u2', 'i2', 'u4', 'i4', 'u8', 'i8', 'f2', 'f4', 'f8',
           'c8', 'c16', 'b1', 'M8[s]', 'm8[ms]', 'S3', 'U2', 'g']
for s in scalars:
    for endian in '<>':
        dt = np.dtype(s).newbyteorder(endian)
        basic = np.arange(15).astype(dt)
        shapes = {
            'empty': np.array([], dtype=dt), 'zerod': np.array(10, dtype=dt),
            'flat': basic, 'c2d': basic.reshape((3, 5)), 'f2d': basic.reshape((3, 5)).T,
            'strided': basic.reshape((3, 5))[::-1, ::2],
        }
        tag = s.replace('[', '_').replace(']', '')
        for k, a in shapes.items():
            save(f'basic-{tag}-{"le" if endian == "<" else "be"}-{k}.npy', a)

# Object arrays need pickles: np.load refuses them by default, so does mmrun.
save('object.npy', np.array([1, 'a', None], dtype=object), allow_pickle=True)

# record_arrays: Pdescr and Ndescr, little- and big-endian.
Pdescr = [('x', 'i4', (2,)), ('y', 'f8', (2, 2)), ('z', 'u1')]
PbufferT = [([3, 2], [[6., 4.], [6., 4.]], 8), ([4, 3], [[7., 5.], [7., 5.]], 9)]
Ndescr = [('x', 'i4', (2,)),
          ('Info', [('value', 'c16'), ('y2', 'f8'),
                    ('Info2', [('name', 'S2'), ('value', 'c16', (2,)), ('y3', 'f8', (2,)),
                               ('z3', 'u4', (2,))]),
                    ('name', 'S2'), ('z2', 'b1')]),
          ('color', 'S2'), ('info', [('Name', 'U8'), ('Value', 'c16')]),
          ('y', 'f8', (2, 2)), ('z', 'u1')]
NbufferT = [([3, 2], (6j, 6., ('nn', [6j, 4j], [6., 4.], [1, 2]), 'NN', True), 'cc',
             ('NN', 6j), [[6., 4.], [6., 4.]], 8),
            ([4, 3], (7j, 7., ('oo', [7j, 5j], [7., 5.], [2, 1]), 'OO', False), 'dd',
             ('OO', 7j), [[7., 5.], [7., 5.]], 9)]
for e in '<>':
    save(f'record-P{e == ">" and "be" or "le"}.npy', np.array(PbufferT, dtype=np.dtype(Pdescr).newbyteorder(e)))
    save(f'record-N{e == ">" and "be" or "le"}.npy', np.array(NbufferT, dtype=np.dtype(Ndescr).newbyteorder(e)))

# Format versions written by NumPy itself (test_version_2_0, utf8 field names in 3.0).
a = np.arange(15, dtype='f8').reshape(3, 5)
for v in [(1, 0), (2, 0), (3, 0)]:
    with open(f'version-{v[0]}.npy', 'wb') as f:
        F.write_array(f, a, version=v)
    cases.append(f'version-{v[0]}.npy')
with open('version-3-utf8-fields.npy', 'wb') as f:
    F.write_array(f, np.zeros(3, dtype=[('\u00e9t\u00e9', 'f4'), ('b', 'i2')]), version=(3, 0))
cases.append('version-3-utf8-fields.npy')
# test_large_header: np.save picks version 2.0 for a header over 65535 bytes,
# which np.load then refuses for its size, as mmrun does.
save('large-v2-auto.npy', np.zeros(2, dtype=[(f'field{i:05d}', 'f4') for i in range(3000)]))

# test_read_magic_bad_magic and the bad versions of test_bad_magic_args.
good = npy((1, 0), "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), }", a.tobytes())
malformed = [b'\x92NUMPY\x01\x00', b'\x00NUMPY\x01\x00', b'\x93numpy\x01\x00',
             b'\x93MATLB\x01\x00', b'\x93NUMPY\x01', b'\x93NUMPY', b'']
for i, m in enumerate(malformed):
    raw(f'magic-malformed-{i}.npy', m + good[len(m):] if len(m) == 8 else m)
for v in [(1, 1), (0, 0), (0, 1), (2, 1), (2, 2), (255, 255), (4, 0)]:
    raw(f'magic-version-{v[0]}-{v[1]}.npy', good[:6] + bytes(v) + good[8:])

# test_bad_header: too short, shorter than the length it claims, keys
# missing or extra, and values of the wrong type.
raw('header-empty.npy', b'')
raw('header-one-byte.npy', b'1')
raw('header-short-prefix.npy', b'\x93NUMPY\x01\x00\x01')
raw('header-claims-more.npy', good[:8] + struct.pack('<H', 500) + good[10:100])
data = a.tobytes()
bad_dicts = {
    'no-fortran-key': "{'descr': '<f8', 'shape': (3, 5), }",
    'extra-key': "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), 'extrakey': -1, }",
    'shape-list': "{'descr': '<f8', 'fortran_order': False, 'shape': [3, 5], }",
    'shape-float': "{'descr': '<f8', 'fortran_order': False, 'shape': (3.0, 5), }",
    'shape-negative': "{'descr': '<f8', 'fortran_order': False, 'shape': (-3, 5), }",
    'shape-string': "{'descr': '<f8', 'fortran_order': False, 'shape': '3', }",
    'fortran-int': "{'descr': '<f8', 'fortran_order': 0, 'shape': (3, 5), }",
    'descr-x': "{'descr': 'x', 'fortran_order': False, 'shape': (3, 5), }",
    'descr-int': "{'descr': 8, 'fortran_order': False, 'shape': (3, 5), }",
    'descr-prefixed-name': "{'descr': '<float64', 'fortran_order': False, 'shape': (3, 5), }",
    'not-a-dict': "[('descr', '<f8'), ('fortran_order', False), ('shape', (3, 5))]",
    'arithmetic': "{'descr': '<f8', 'fortran_order': False, 'shape': (1+2, 5), }",
    'call': "{'descr': __import__('os').system('true'), 'fortran_order': False, 'shape': (3, 5), }",
    'unclosed': "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), ",
}
for k, t in bad_dicts.items():
    raw(f'header-{k}.npy', npy((1, 0), t, data))
raw('header-good.npy', npy((1, 0), "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), }", data))
raw('header-keys-reordered.npy', npy((1, 0), "{'shape': (3, 5), 'fortran_order': False, 'descr': '<f8'}", data))

# Python 2's longs (win64python2.npy): filtered for versions 1.0 and 2.0 only.
raw('long-v1.npy', npy((1, 0), "{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 5L), }", data))
raw('long-v2.npy', npy((2, 0), "{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 5L), }", data))
raw('long-v3.npy', npy((3, 0), "{'descr': '<f8', 'fortran_order': False, 'shape': (3L, 5L), }", data))
raw('long-in-string.npy', npy((1, 0), "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), 'x': '3L'}", data))

# Large headers around NumPy's 10000-byte limit (max_header_size).
d15 = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), }"
raw('large-v1-9984.npy', npy((1, 0), d15, data, total=10 + 9984))
raw('large-v1-10000.npy', npy((1, 0), d15, data, total=10 + 10000))
raw('large-v1-10001.npy', npy((1, 0), d15, data, total=10 + 10001))
raw('large-v2-10048.npy', npy((2, 0), d15, data, total=12 + 10048))

# Data shorter and longer than the header says.
raw('data-truncated.npy', good[:-8])
raw('data-trailing.npy', good + b'\0' * 24)

# Fortran order in one dimension is C order.
raw('fortran-1d.npy', npy((1, 0), "{'descr': '<f8', 'fortran_order': True, 'shape': (15,), }", data))

# descr spellings np.dtype reads (test_descr_to_dtype), with matching data.
for s in ['float64', '<d', 'd', '=f8', 'i', '?', 'bool', '|i4', 'i8', '>i8', 'B', 'u1',
          'e', 'F', 'D', 'complex64', 'c8', '<M8[ns]', 'M8[10ms]', 'm8', '|S3', '<U2', 'V4',
          'float', 'int', 'O', '|O', 'c4', 'f3', 'U0', '<f', 'l', 'Q']:
    try:
        dt = np.dtype(s)
        body = np.zeros(15, dt).tobytes() if dt.itemsize else b''
    except TypeError:
        body = bytes(15 * 8)
    name = 'descr-' + ''.join(c if c.isalnum() else '_' for c in s) + '.npy'
    raw(name, npy((1, 0), "{'descr': %r, 'fortran_order': False, 'shape': (15,), }" % s, body))

for name in cases:
    v = {'name': name}
    try:
        arr = np.load(name)
        v.update(ok=True, dtype=arr.dtype.str, itemsize=arr.dtype.itemsize, shape=list(arr.shape),
                 structured=arr.dtype.names is not None,
                 fortran=bool(arr.flags.f_contiguous and not arr.flags.c_contiguous),
                 computable=(arr.dtype.kind in 'biuf' and arr.dtype.itemsize <= 8 or arr.dtype.kind == 'c' and arr.dtype.itemsize <= 16) and arr.dtype.names is None,
                 native=not arr.dtype.str.startswith('>'))
        if v['computable']:
            total = np.sum(arr)
            v['sum'] = float(total.real) if arr.dtype.kind in 'fc' else int(total)
            v['sum_imag'] = float(total.imag) if arr.dtype.kind == 'c' else 0.0
    except Exception as e:
        v.update(ok=False, error=type(e).__name__ + ': ' + str(e)[:80])
    print(json.dumps(v))
"#;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Exit 2 with exactly one error line.
fn refused_once(out: &std::process::Output) -> bool {
    let err = stderr(out);
    out.status.code() == Some(2)
        && err
            .lines()
            .filter(|l| l.starts_with("mmrun: error:"))
            .count()
            == 1
}

/// A complex number as Python prints it (`(1.5-2j)`, `2j`): its parts.
fn parse_complex(text: &str) -> Option<(f64, f64)> {
    let t = text.trim().trim_start_matches('(').trim_end_matches(')');
    let body = t.strip_suffix('j')?;
    let b = body.as_bytes();
    let split = (1..b.len())
        .rev()
        .find(|&i| (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E'));
    match split {
        Some(i) => Some((
            body[..i].parse().ok()?,
            body[i..].trim_start_matches('+').parse().ok()?,
        )),
        None => Some((0.0, body.parse().ok()?)),
    }
}

/// `mmrun reduce FILE --op sum --axis all --json`'s value, as (real,
/// imaginary) parts (the imaginary part 0 but for complex files).
fn mmrun_sum(d: &Dir, file: &str) -> Result<(f64, f64), std::process::Output> {
    let out = d.run(&[
        "reduce", file, "--op", "sum", "--axis", "all", "--json", "-w", "2",
    ]);
    if !out.status.success() {
        return Err(out);
    }
    let doc = json(&out);
    // Integer results are strings (exact beyond 2**53), floats numbers.
    let v = &doc["results"]["value"];
    Ok(v.as_f64()
        .map(|x| (x, 0.0))
        .or_else(|| v.as_str().and_then(|t| t.parse().ok().map(|x| (x, 0.0))))
        .or_else(|| v.as_str().and_then(parse_complex))
        .unwrap_or_else(|| panic!("{file}: no numeric value in {doc}")))
}

#[test]
fn numpy_format_tests_agree_case_for_case() {
    let Some(py) = require_numpy("numpy_format_tests_agree_case_for_case") else {
        return;
    };
    let d = Dir::new();
    let verdicts = python(&py, d.path(), CASES);
    let mut checked = 0;
    let mut disagreements = Vec::new();
    for line in verdicts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = v["name"].as_str().unwrap().to_string();
        let info = d.run(&["info", &name, "--json"]);
        let mut problem = |what: String| disagreements.push(format!("{name}: {what}"));
        if v["ok"] == false {
            if !refused_once(&info) {
                problem(format!(
                    "NumPy refuses it ({}), mmrun info: {:?} {}",
                    v["error"],
                    info.status.code(),
                    stderr(&info)
                ));
            }
            if let Ok(sum) = mmrun_sum(&d, &name) {
                problem(format!("NumPy refuses it, mmrun reduce gives {sum:?}"));
            }
            checked += 1;
            continue;
        }
        if !info.status.success() {
            problem(format!(
                "NumPy reads it ({line}), mmrun info: {}",
                stderr(&info)
            ));
            continue;
        }
        let doc = json(&info);
        if doc["shape"] != v["shape"] || doc["itemsize"] != v["itemsize"] {
            problem(format!("shape/itemsize: mmrun {doc}, NumPy {line}"));
        }
        if v["structured"] == false && doc["dtype"] != v["dtype"] {
            problem(format!(
                "dtype: mmrun {}, NumPy {}",
                doc["dtype"], v["dtype"]
            ));
        }
        // np.load gives a 1-d Fortran-order array back as C-contiguous too.
        let fortran = doc["fortran_order"] == true && v["shape"].as_array().unwrap().len() > 1;
        if serde_json::Value::Bool(fortran) != v["fortran"] {
            problem(format!("order: mmrun {doc}, NumPy {line}"));
        }
        let sum = mmrun_sum(&d, &name);
        if v["computable"] == false {
            match sum {
                Ok(s) => problem(format!("layout-only dtype, mmrun reduce gives {s:?}")),
                Err(out) if !refused_once(&out) => {
                    problem(format!("reduce not refused cleanly: {}", stderr(&out)))
                }
                Err(_) => {}
            }
            checked += 1;
            continue;
        }
        let want = (v["sum"].as_f64().unwrap(), v["sum_imag"].as_f64().unwrap());
        let got = match sum {
            Ok(s) => s,
            // Big-endian or Fortran order: refused with the convert command
            // that makes a native C-order copy; that command must work.
            Err(out) if v["native"] == false || v["fortran"] == true => {
                let err = stderr(&out);
                let Some(cmd) = err.split("convert it first: ").nth(1) else {
                    problem(format!("refused without a convert command: {err}"));
                    continue;
                };
                let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
                let conv = d.run(&args);
                if !conv.status.success() {
                    problem(format!("the advised {cmd} fails: {}", stderr(&conv)));
                    continue;
                }
                match mmrun_sum(&d, args[2]) {
                    Ok(s) => s,
                    Err(out) => {
                        problem(format!("after convert: {}", stderr(&out)));
                        continue;
                    }
                }
            }
            Err(out) => {
                problem(format!(
                    "NumPy sums it to {want:?}, mmrun: {}",
                    stderr(&out)
                ));
                continue;
            }
        };
        if got != want {
            problem(format!("sum: mmrun {got:?}, NumPy {want:?}"));
        }
        checked += 1;
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree with NumPy:\n{}",
        disagreements.len(),
        verdicts.lines().count(),
        disagreements.join("\n")
    );
    assert!(checked > 250, "only {checked} cases checked");
}
