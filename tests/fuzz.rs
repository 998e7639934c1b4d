//! Bounded-time fuzzing of the parsers that read untrusted input: `.npy`
//! headers, `--dtype` text (NumPy's spellings, datetime units, structured
//! descr lists and comma forms), `--expr` expressions (parser and type
//! checker) and the worker protocol's environment. Each harness draws inputs from proptest
//! strategies (structured pieces and raw mutations) for a time budget and
//! asserts only that nothing panics: every input is answered with `Ok` or
//! an error value. Executions and executions per second are printed.
//!
//! The budget per harness is `MMRUN_FUZZ_SECS` seconds (default 3); CI runs
//! the default, a longer local run is `MMRUN_FUZZ_SECS=600 cargo test
//! --test fuzz -- --nocapture`. A panic prints the input that caused it.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use mmrun::layout::npy::{encode_header, read_header, read_other_header, HeaderStyle};
use mmrun::layout::DType;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

fn budget() -> Duration {
    let secs = std::env::var("MMRUN_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Feeds `target` inputs from `strategy` until the budget is spent, at
/// least `min` of them; fails with the input on the first panic.
fn fuzz<T: std::fmt::Debug>(
    name: &str,
    min: u64,
    strategy: impl Strategy<Value = T>,
    target: impl Fn(&T),
) {
    let mut runner = TestRunner::deterministic();
    let start = Instant::now();
    let budget = budget();
    let mut n = 0u64;
    while n < min || start.elapsed() < budget {
        let input = strategy.new_tree(&mut runner).expect("strategy").current();
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            panic!("fuzz {name}: panic on input {input:?}");
        }
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {n} executions in {secs:.1} s ({:.0}/s), no panic",
        n as f64 / secs
    );
}

/// Pieces a `.npy` header dictionary is made of, good and bad.
fn header_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "(",
            ")",
            "[",
            "]",
            ",",
            ":",
            " ",
            "'descr'",
            "'shape'",
            "'fortran_order'",
            "True",
            "False",
            "None",
            "'<f4'",
            "'>f8'",
            "'|b1'",
            "'float64'",
            "'<d'",
            "'?'",
            "'i'",
            "'c8'",
            "'<U3'",
            "'M8[ns]'",
            "'O'",
            "2L",
            "3 L",
            "0",
            "-1",
            "18446744073709551615",
            "99999999999999999999999",
            "1e3",
            "0x10",
            "'\\n'",
            "'\\x1b[31m'",
            "\"\"",
            "'",
            "\\",
            "L",
            "l",
            "[('a', '<f4')]",
            "(1+2)",
            "__import__('os')",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,6}",
    ]
}

fn header_dict() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Well-formed dictionaries with fuzzed values.
        (
            header_piece(),
            header_piece(),
            prop::collection::vec(header_piece(), 0..4)
        )
            .prop_map(|(descr, order, shape)| format!(
                "{{'descr': {descr}, 'fortran_order': {order}, 'shape': ({}), }}",
                shape.join(", ")
            )
            .into_bytes()),
        // Token soup.
        prop::collection::vec(header_piece(), 0..24).prop_map(|v| v.concat().into_bytes()),
        // Raw bytes.
        prop::collection::vec(any::<u8>(), 0..96),
    ]
}

/// Whole files: a fuzzed dictionary behind a (mostly) valid prefix, or a
/// valid header with bytes flipped, cut or added.
fn npy_file() -> impl Strategy<Value = Vec<u8>> {
    let framed = (header_dict(), 0u8..5, any::<bool>(), 0usize..80).prop_map(
        |(dict, version, lie, extra)| {
            let mut v = b"\x93NUMPY".to_vec();
            v.push(version);
            v.push(0);
            let len = if lie { dict.len() + extra } else { dict.len() };
            if version >= 2 {
                v.extend_from_slice(&(len as u32).to_le_bytes());
            } else {
                v.extend_from_slice(&(len as u16).to_le_bytes());
            }
            v.extend_from_slice(&dict);
            v.resize(v.len() + extra, 0);
            v
        },
    );
    let mutated = (
        prop::collection::vec(0u64..100_000, 0..4),
        0usize..12,
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(shape, d, compact, flips, cut)| {
            let style = if compact {
                HeaderStyle::Compact
            } else {
                HeaderStyle::Page
            };
            let mut v = encode_header(DType::ALL[d], &shape, style).unwrap();
            for (at, b) in flips {
                let i = at.index(v.len());
                v[i] = b;
            }
            let keep = cut.index(v.len() + 1);
            v.truncate(keep.max(v.len() / 2));
            v
        });
    prop_oneof![framed, mutated]
}

#[test]
fn fuzz_npy_header_reader() {
    fuzz("npy header", 2_000, npy_file(), |bytes| {
        let claimed = [bytes.len() as u64, bytes.len() as u64 + (1 << 20), 0, 9];
        for len in claimed {
            let _ = read_header(&mut Cursor::new(bytes), len);
            let _ = read_other_header(&mut Cursor::new(bytes), len);
        }
        if let Ok(text) = std::str::from_utf8(bytes) {
            let _ = DType::from_numpy(text);
            let _ = text.parse::<DType>();
            let _ = mmrun::layout::parse_shape(text);
            let _ = mmrun::layout::parse_shape_inferring(text, 4, || Ok(1 << 20));
        }
    });
}

/// Pieces of dtype text: byte orders, kinds, sizes, datetime units,
/// structured lists, good and bad.
fn dtype_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "<", ">", "=", "|", "!", "f", "i", "u", "b", "c", "M", "m", "S", "U", "V", "a",
            "O", "g", "G", "?", "e", "d", "q", "1", "2", "4", "8", "16", "0", "10",
            "99999999999", "18446744073709551617", "[", "]", "Y", "M", "W", "D", "h",
            "s", "ms", "us", "μs", "ns", "ps", "fs", "as", "10ms", "0s", "-1", "float",
            "int", "uint", "complex", "datetime64", "timedelta64", "bytes", "str",
            "void", "bool_", "float16", "longdouble", ",", "(", ")", "'", "\"", " ",
            "'a'", "'<f4'", "('a', '<f4')", "('b', '<i8', (3,))", "('', '|V4')",
            "[('a', '<f4'), ('b', '<i8')]", "(('t', 'n'), '<f4')", "(2, 3)", "(-1,)",
        ])
        .prop_map(str::to_string),
        1 => "[ -~]{0,6}",
        1 => "\\PC{0,3}",
    ]
}

/// Dtype text: pieces joined, nested lists of fields, long or deep inputs.
fn dtype_text() -> impl Strategy<Value = String> {
    let field = (
        "[a-z]{0,3}",
        prop::sample::select(vec![
            "<f4",
            ">f8",
            "|b1",
            "<i8",
            "<M8[ns]",
            ">m8[10ms]",
            "|S3",
            "<U2",
            "|V5",
            "<c8",
            "f4,i8",
            "O",
            "<f16",
            "",
        ]),
        prop::option::of(prop::collection::vec(0u64..4, 0..3)),
    )
        .prop_map(|(n, d, shape)| match shape {
            None => format!("('{n}', '{d}')"),
            Some(s) => format!(
                "('{n}', '{d}', ({}))",
                s.iter().map(|v| format!("{v},")).collect::<String>()
            ),
        });
    let fields = prop::collection::vec(field, 0..5).prop_map(|f| format!("[{}]", f.join(", ")));
    prop_oneof![
        6 => prop::collection::vec(dtype_piece(), 0..12).prop_map(|v| v.concat()),
        3 => fields,
        1 => (1usize..500, prop::sample::select(vec!["[('a', ", "f4,", "(", "[", "M8["]))
            .prop_map(|(n, unit)| unit.repeat(n)),
    ]
}

#[test]
fn fuzz_dtype_text_parser() {
    fuzz("dtype text", 5_000, dtype_text(), |text| {
        if let Ok(d) = text.parse::<DType>() {
            // What the parser accepts, it writes as a descr NumPy and
            // mmrun read back as the same dtype.
            assert_eq!(
                DType::from_numpy(&d.descr()).map(|(d, _)| d),
                Some(d),
                "{text}"
            );
        }
        let _ = DType::from_numpy(text);
        let _ = mmrun::layout::dtype::TimeUnit::parse(text);
        // The same text as a header's descr, quoted and bare (a list).
        for descr in [format!("'{text}'"), text.clone()] {
            let dict = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (3,), }}");
            let mut file = b"\x93NUMPY\x01\x00".to_vec();
            let len = dict.len() as u16 + 1;
            file.extend_from_slice(&len.to_le_bytes());
            file.extend_from_slice(dict.as_bytes());
            file.push(b'\n');
            let n = file.len() as u64;
            let _ = read_header(&mut Cursor::new(&file), n + 1024);
            let _ = read_other_header(&mut Cursor::new(&file), n + 1024);
        }
    });
}

/// Tokens of `--expr`, NumPy's vocabulary included.
fn expr_token() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec![
            "x", "i", "j", "k", "n", "0", "1", "2.5", "1e308", "-1", "255", "300",
            "9223372036854775808", "1j", "True", "False", "nan", "inf", "+", "-", "*",
            "/", "//", "%", "**", "(", ")", ",", "==", "!=", "<", "<=", ">", ">=",
            "and", "or", "not", "&", "|", "^", "~", "<<", ">>", "abs", "sqrt", "exp",
            "log", "sin", "cos", "floor", "ceil", "minimum", "maximum", "where", "clip",
            "tanh", "isnan", "np.", "numpy.", "np.sqrt", ".", "astype", "float32",
            "int8", "if", "else", "lambda", "[", "]", "'", "\"", "2+3j", "1.5J", "1e3j", "0j",
            "real", "imag", "conj", "conjugate", "angle", "complex64", "np.complex128", "'c8'",
        ])
        .prop_map(str::to_string),
        1 => "[ -~]{0,4}",
        1 => "\\PC{0,3}",
    ]
}

fn expression() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(expr_token(), 0..30).prop_map(|v| v.join(" ")),
        1 => (1usize..3000, prop::sample::select(vec!["x+", "(", "-", "abs(", "x**", "not "]))
            .prop_map(|(n, unit)| format!("{}x", unit.repeat(n))),
        1 => (1usize..3000).prop_map(|n| format!("{}x{}", "(".repeat(n), ")".repeat(n))),
    ]
}

#[test]
fn fuzz_expression_parser_and_type_checker() {
    fuzz("expr parse+compile", 2_000, expression(), |text| {
        let Ok(expr) = mmrun::expr::Expr::parse(text) else {
            return;
        };
        for (dtype, shape) in [
            (DType::F32, &[4u64, 3][..]),
            (DType::U8, &[5][..]),
            (DType::Bool, &[2, 2, 2][..]),
            (DType::I64, &[0, 3][..]),
            (DType::F16, &[][..]),
            (DType::C64, &[3, 2][..]),
            (DType::C128, &[5][..]),
        ] {
            let Ok(c) = expr.compile(dtype, shape) else {
                continue;
            };
            // Complex kernels run on special values too: no panic.
            if dtype.is_complex() {
                let vals = [
                    0.0,
                    -0.0,
                    1.5,
                    -2.0,
                    f64::NAN,
                    f64::INFINITY,
                    -1e300,
                    1e-310,
                ];
                let n: usize = shape.iter().product::<u64>() as usize;
                let mut x: Vec<[f64; 2]> = (0..n)
                    .map(|k| [vals[k % vals.len()], vals[(k * 3 + 1) % vals.len()]])
                    .collect();
                let mut scratch = c.new_scratch(n);
                if dtype == DType::C128 {
                    let col = mmrun::expr::ColumnMut::C128(&mut x);
                    let _ = c.eval_in_place(col, 0, &mut scratch);
                } else {
                    let mut x32: Vec<[f32; 2]> =
                        x.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
                    let col = mmrun::expr::ColumnMut::C64(&mut x32);
                    let _ = c.eval_in_place(col, 0, &mut scratch);
                }
            }
        }
    });
}

/// The protocol-v1 variables, each absent, plausible or garbage.
fn worker_env() -> impl Strategy<Value = BTreeMap<String, String>> {
    let value = prop_oneof![
        prop::sample::select(vec![
            "1",
            "0",
            "npy",
            "raw",
            "f4",
            "<f4",
            "c8",
            "u1",
            "3,4",
            "(3, 4)",
            "-1",
            "",
            "18446744073709551615",
            "18446744073709551616",
            "4096",
            "0..5",
            "a",
            "2/4",
            "/tmp/x.npy",
            "340282366920938463463374607431768211455",
            "9,9,9,9,9,9,9,9",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
    ];
    let keys = vec![
        "MMRUN_PROTOCOL",
        "MMRUN_DTYPE",
        "MMRUN_FORMAT",
        "MMRUN_SHAPE",
        "MMRUN_DATA_OFFSET",
        "MMRUN_FILE",
        "MMRUN_ROW_START",
        "MMRUN_ROW_END",
        "MMRUN_WORKER",
        "MMRUN_WORKERS",
        "MMRUN_SEED",
        "MMRUN_INPUT_FILE",
        "MMRUN_INPUT_DTYPE",
        "MMRUN_INPUT_FORMAT",
        "MMRUN_INPUT_SHAPE",
        "MMRUN_INPUT_DATA_OFFSET",
        "MMRUN_ATTEMPT",
        "MMRUN_SYNC",
        "MMRUN_RESULT_FILE",
    ];
    prop::collection::vec(
        (prop::sample::select(keys).prop_map(str::to_string), value),
        0..24,
    )
    .prop_map(|pairs| {
        let mut m: BTreeMap<String, String> = [
            ("MMRUN_PROTOCOL", "1"),
            ("MMRUN_DTYPE", "f4"),
            ("MMRUN_FORMAT", "npy"),
            ("MMRUN_SHAPE", "8,4"),
            ("MMRUN_DATA_OFFSET", "4096"),
            ("MMRUN_FILE", "/tmp/x.npy"),
            ("MMRUN_ROW_START", "0"),
            ("MMRUN_ROW_END", "8"),
            ("MMRUN_WORKER", "0"),
            ("MMRUN_WORKERS", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in pairs {
            if v == "a" {
                m.remove(&k);
            } else {
                m.insert(k, v);
            }
        }
        m
    })
}

#[test]
fn fuzz_worker_protocol_environment() {
    fuzz("worker env", 2_000, worker_env(), |env| {
        let _ = mmrun::worker::WorkerTask::from_env(|k| env.get(k).cloned());
    });
}
