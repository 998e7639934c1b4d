//! Every bad input of issue 2: the documented exit code, one error line
//! naming the problem, every existing file byte-for-byte untouched (hidden
//! ones included) and nothing left behind.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{assert_refused, code, is_root, missing_tool, mmrun_bin, stderr, Dir};

const REFUSED: i32 = 2;

/// A valid little-endian float32 (3, 2) header dictionary.
const GOOD_DICT: &str = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";

// ---------------------------------------------------------------- targets --

#[test]
fn missing_file_without_shape() {
    let d = Dir::new();
    let before = d.snapshot();
    let out = d.run(&["fill", "absent.npy", "--value", "1"]);
    refused(&out, REFUSED, "does not exist");
    unchanged(&d, &before);
    let out = d.run(&["info", "absent.npy"]);
    refused(&out, REFUSED, "absent.npy");
    unchanged(&d, &before);
}

#[test]
fn directory_as_target() {
    let d = Dir::new();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("sub/keep"), b"keep").unwrap();
    let before = d.snapshot();
    for args in [
        &["fill", "sub", "--value", "1"][..],
        &["fill", "sub", "--shape", "3", "--value", "1"],
        &["fill", "sub", "--shape", "3", "--value", "1", "--force"],
        &["create", "sub", "--shape", "3", "--force"],
        &["info", "sub"],
    ] {
        let out = d.run(args);
        refused(&out, REFUSED, "directory");
        unchanged(&d, &before);
    }
    assert_eq!(names_in(&d.join("sub")), vec!["keep".to_string()]);
}

#[test]
fn missing_target_directory() {
    let d = Dir::new();
    let before = d.snapshot();
    let out = d.run(&["fill", "nodir/x.npy", "--shape", "3", "--value", "1"]);
    refused(&out, REFUSED, "nodir");
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    unchanged(&d, &before);
    let out = d.run(&["create", "nodir/x.npy", "--shape", "3"]);
    refused(&out, REFUSED, "does not exist");
    unchanged(&d, &before);
}

#[test]
fn shape_on_existing_target_needs_force() {
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "4,3", "--dtype", "f4", "--value", "1",
    ]);
    let before = d.snapshot();
    let out = d.run(&[
        "fill", "x.npy", "--shape", "5,3", "--dtype", "f4", "--value", "2",
    ]);
    refused(&out, REFUSED, "--force");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    unchanged(&d, &before);
    let out = d.run(&["create", "x.npy", "--shape", "5,3", "--dtype", "f4"]);
    refused(&out, REFUSED, "already exists");
    unchanged(&d, &before);
}

// ------------------------------------------------------------ permissions --

#[test]
fn no_permission_to_write_an_existing_file() {
    let Some(nb) = Nobody::new("no_permission_to_write_an_existing_file") else {
        return;
    };
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "4,3", "--dtype", "f4", "--value", "1",
    ]);
    open_dir(&d, 0o755);
    fs::set_permissions(d.join("x.npy"), fs::Permissions::from_mode(0o444)).unwrap();
    let before = d.snapshot();
    let out = nb.run(&d, &["fill", "x.npy", "--value", "2", "-w", "2"]);
    refused(&out, REFUSED, "permission denied");
    assert!(stderr(&out).contains("x.npy"), "{}", stderr(&out));
    unchanged(&d, &before);
}

#[test]
fn no_permission_to_create_in_a_directory() {
    let Some(nb) = Nobody::new("no_permission_to_create_in_a_directory") else {
        return;
    };
    let d = Dir::new();
    fs::write(d.join("keep"), b"keep").unwrap();
    open_dir(&d, 0o555);
    let before = d.snapshot();
    let out = nb.run(&d, &["fill", "new.npy", "--shape", "4,3", "--value", "1"]);
    refused(&out, REFUSED, "permission denied");
    unchanged(&d, &before);
    let out = nb.run(&d, &["create", "new.npy", "--shape", "4,3"]);
    refused(&out, REFUSED, "permission denied");
    unchanged(&d, &before);
    open_dir(&d, 0o755);
}

#[test]
fn no_permission_to_traverse_the_directory() {
    let Some(nb) = Nobody::new("no_permission_to_traverse_the_directory") else {
        return;
    };
    let d = Dir::new();
    fs::create_dir(d.join("sub")).unwrap();
    d.ok(&[
        "fill",
        "sub/x.npy",
        "--shape",
        "4,3",
        "--dtype",
        "f4",
        "--value",
        "1",
    ]);
    open_dir(&d, 0o755);
    let sub_before = tree(&d.join("sub"));
    // Nobody may traverse sub/ (and neither may its owner, unless root).
    fs::set_permissions(d.join("sub"), fs::Permissions::from_mode(0o000)).unwrap();
    let before = d.snapshot();
    for args in [
        &["fill", "sub/x.npy", "--value", "2"][..],
        &["fill", "sub/y.npy", "--shape", "3", "--value", "2"],
        &[
            "fill",
            "sub/x.npy",
            "--shape",
            "3",
            "--value",
            "2",
            "--force",
        ],
        &["info", "sub/x.npy"],
    ] {
        let out = nb.run(&d, args);
        refused(&out, REFUSED, "permission denied");
        unchanged(&d, &before);
    }
    fs::set_permissions(d.join("sub"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(tree(&d.join("sub")), sub_before, "sub/ changed");
}

#[test]
fn no_permission_to_read_for_info() {
    let Some(nb) = Nobody::new("no_permission_to_read_for_info") else {
        return;
    };
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "4,3", "--dtype", "f4", "--value", "1",
    ]);
    open_dir(&d, 0o755);
    fs::set_permissions(d.join("x.npy"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = nb.run(&d, &["info", "x.npy"]);
    refused(&out, REFUSED, "permission denied");
    fs::set_permissions(d.join("x.npy"), fs::Permissions::from_mode(0o644)).unwrap();
    let before = d.snapshot();
    fs::set_permissions(d.join("x.npy"), fs::Permissions::from_mode(0o000)).unwrap();
    let out = nb.run(&d, &["fill", "x.npy", "--value", "2"]);
    refused(&out, REFUSED, "permission denied");
    fs::set_permissions(d.join("x.npy"), fs::Permissions::from_mode(0o644)).unwrap();
    unchanged(&d, &before);
}

// ----------------------------------------------------------------- shapes --

#[test]
fn shape_with_a_negative_entry() {
    let d = Dir::new();
    let before = d.snapshot();
    let out = d.run(&["fill", "x.npy", "--shape", "4,-3", "--value", "1"]);
    refused(&out, REFUSED, "negative");
    assert!(stderr(&out).contains("shape"), "{}", stderr(&out));
    unchanged(&d, &before);
    let out = d.run(&["create", "x.npy", "--shape=-4"]);
    refused(&out, REFUSED, "negative");
    unchanged(&d, &before);
}

#[test]
fn shape_with_a_non_numeric_entry() {
    let d = Dir::new();
    let before = d.snapshot();
    for shape in ["4,x", "4,,3", "four", "4.5,3"] {
        let out = d.run(&["fill", "x.npy", "--shape", shape, "--value", "1"]);
        refused(&out, REFUSED, "invalid shape");
        unchanged(&d, &before);
    }
}

#[test]
fn shape_whose_byte_size_overflows_u64() {
    let d = Dir::new();
    let before = d.snapshot();
    for (shape, dtype) in [
        ("4611686018427387904,8", "f8"),
        ("18446744073709551615,2", "u1"),
        ("4294967296,4294967296", "f4"),
    ] {
        let out = d.run(&[
            "fill", "x.npy", "--shape", shape, "--dtype", dtype, "--value", "1",
        ]);
        refused(&out, REFUSED, "overflow");
        unchanged(&d, &before);
        let out = d.run(&[
            "create", "x.raw", "--raw", "--shape", shape, "--dtype", dtype,
        ]);
        refused(&out, REFUSED, "overflow");
        unchanged(&d, &before);
    }
    // The raw offset is part of the size too.
    let out = d.run(&[
        "create",
        "x.raw",
        "--raw",
        "--dtype",
        "u1",
        "--shape",
        "18446744073709551615",
        "--offset",
        "1",
    ]);
    refused(&out, REFUSED, "overflow");
    unchanged(&d, &before);
}

#[test]
fn shape_in_a_header_whose_byte_size_overflows_u64() {
    let d = Dir::new();
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 8), }";
    fs::write(d.join("x.npy"), npy_bytes(1, dict, None, 64)).unwrap();
    let before = d.snapshot();
    for args in [&["fill", "x.npy", "--value", "1"][..], &["info", "x.npy"]] {
        let out = d.run(args);
        refused(&out, REFUSED, "overflow");
        unchanged(&d, &before);
    }
}

#[test]
fn unknown_dtype() {
    let d = Dir::new();
    let before = d.snapshot();
    for dtype in ["f7", "float128", "c4", "c32", "O", "<U4"] {
        let out = d.run(&[
            "fill", "x.npy", "--shape", "3", "--dtype", dtype, "--value", "1",
        ]);
        refused(&out, REFUSED, "dtype");
        assert!(stderr(&out).contains(dtype), "{}", stderr(&out));
        unchanged(&d, &before);
    }
}

#[test]
fn raw_size_not_matching_shape_itemsize_offset() {
    let d = Dir::new();
    fs::write(d.join("x.raw"), [7u8; 25]).unwrap();
    let before = d.snapshot();
    // Shorter than the shape needs (a longer file is mapped as numpy.memmap
    // maps it: see agreement.rs).
    for args in [
        &[
            "fill",
            "x.raw",
            "--raw",
            "--dtype",
            "f4",
            "--shape",
            "3,3",
            "--value",
            "1",
            "--in-place",
        ][..],
        &[
            "fill",
            "x.raw",
            "--raw",
            "--dtype",
            "f4",
            "--shape",
            "3,2",
            "--offset",
            "2",
            "--value",
            "1",
            "--in-place",
        ],
        &["fill", "x.raw", "--raw", "--dtype", "f4", "--value", "1"],
        &["info", "x.raw", "--raw", "--dtype", "f4", "--shape", "3,3"],
        &["info", "x.raw", "--raw", "--dtype", "i2"],
    ] {
        let out = d.run(args);
        refused(&out, REFUSED, "x.raw");
        let err = stderr(&out);
        assert!(
            err.contains("25") || err.contains("itemsize"),
            "{args:?}: {err}"
        );
        unchanged(&d, &before);
    }
    // An offset past the end of the file.
    let out = d.run(&[
        "fill", "x.raw", "--raw", "--dtype", "u1", "--offset", "26", "--value", "1",
    ]);
    refused(&out, REFUSED, "offset");
    unchanged(&d, &before);
}

// ---------------------------------------------------------------- headers --

#[test]
fn truncated_header() {
    let d = Dir::new();
    let whole = npy_bytes(1, GOOD_DICT, None, 24);
    fs::write(d.join("short.npy"), &whole[..9]).unwrap();
    fs::write(d.join("magic.npy"), &whole[..6]).unwrap();
    fs::write(d.join("cut.npy"), &whole[..30]).unwrap();
    fs::write(d.join("v2.npy"), &npy_bytes(2, GOOD_DICT, None, 24)[..11]).unwrap();
    fs::write(d.join("data.npy"), &whole[..whole.len() - 1]).unwrap();
    let before = d.snapshot();
    for f in ["short.npy", "magic.npy", "cut.npy", "v2.npy", "data.npy"] {
        for args in [&["fill", f, "--value", "1"][..], &["info", f]] {
            let out = d.run(args);
            refused(&out, REFUSED, "truncated");
            assert!(stderr(&out).contains(f), "{}", stderr(&out));
            unchanged(&d, &before);
        }
    }
}

#[test]
fn corrupted_header_bad_magic() {
    let d = Dir::new();
    let mut bytes = npy_bytes(1, GOOD_DICT, None, 24);
    bytes[5] = b'X';
    fs::write(d.join("x.npy"), &bytes).unwrap();
    let mut bytes = npy_bytes(1, GOOD_DICT, None, 24);
    bytes[6] = 9; // format version 9.0
    fs::write(d.join("v9.npy"), &bytes).unwrap();
    let before = d.snapshot();
    for args in [&["fill", "x.npy", "--value", "1"][..], &["info", "x.npy"]] {
        let out = d.run(args);
        refused(&out, REFUSED, "not a .npy file");
        unchanged(&d, &before);
    }
    for args in [&["fill", "v9.npy", "--value", "1"][..], &["info", "v9.npy"]] {
        let out = d.run(args);
        refused(&out, REFUSED, "version");
        unchanged(&d, &before);
    }
}

#[test]
fn corrupted_header_garbage_dict() {
    let d = Dir::new();
    let cases = [
        ("cut.npy", "{'descr': '<f4', 'fortran_order': Fal"),
        ("text.npy", "hello world"),
        ("nokey.npy", "{'descr': '<f4', 'shape': (3, 2), }"),
        (
            "badshape.npy",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2), }",
        ),
        ("notdict.npy", "[1, 2, 3]"),
    ];
    for (f, dict) in cases {
        fs::write(d.join(f), npy_bytes(1, dict, None, 24)).unwrap();
    }
    fs::write(d.join("binary.npy"), {
        let mut b = npy_bytes(1, GOOD_DICT, None, 24);
        b[12..20].copy_from_slice(&[0xff, 0xfe, 0, 1, 2, 0x80, 0x81, 0x82]);
        b
    })
    .unwrap();
    let before = d.snapshot();
    for f in cases.iter().map(|c| c.0).chain(["binary.npy"]) {
        for args in [&["fill", f, "--value", "1"][..], &["info", f]] {
            let out = d.run(args);
            refused(&out, REFUSED, "header");
            assert!(stderr(&out).contains(f), "{}", stderr(&out));
            unchanged(&d, &before);
        }
    }
}

#[test]
fn header_length_over_10000() {
    let d = Dir::new();
    // The declared length is over the limit although the file holds it all.
    fs::write(
        d.join("v1.npy"),
        npy_bytes(1, GOOD_DICT, Some(20_000), 20_100),
    )
    .unwrap();
    fs::write(
        d.join("v2.npy"),
        npy_bytes(2, GOOD_DICT, Some(10_001), 10_100),
    )
    .unwrap();
    fs::write(
        d.join("huge.npy"),
        npy_bytes(3, GOOD_DICT, Some(u32::MAX), 64),
    )
    .unwrap();
    let before = d.snapshot();
    for f in ["v1.npy", "v2.npy", "huge.npy"] {
        for args in [&["fill", f, "--value", "1"][..], &["info", f]] {
            let out = d.run(args);
            refused(&out, REFUSED, "10000");
            assert!(stderr(&out).contains(f), "{}", stderr(&out));
            unchanged(&d, &before);
        }
    }
}

#[test]
fn header_length_past_eof() {
    let d = Dir::new();
    // 5000 and 9999 are within the limit but far past the end of the file.
    fs::write(d.join("a.npy"), npy_bytes(1, GOOD_DICT, Some(5000), 0)).unwrap();
    fs::write(d.join("b.npy"), npy_bytes(2, GOOD_DICT, Some(9999), 24)).unwrap();
    let before = d.snapshot();
    for f in ["a.npy", "b.npy"] {
        for args in [&["fill", f, "--value", "1"][..], &["info", f]] {
            let out = d.run(args);
            refused(&out, REFUSED, "truncated");
            unchanged(&d, &before);
        }
    }
}

#[test]
fn non_literal_header_text() {
    let d = Dir::new();
    let marker = d.join("pwned");
    let cases = [
        format!(
            "{{'descr': __import__('os').system('touch {}'), 'fortran_order': False, 'shape': (3, 2), }}",
            marker.display()
        ),
        "{'descr': '<f4', 'fortran_order': False, 'shape': tuple([3, 2]), }".to_string(),
        "{'descr': '<f4', 'fortran_order': not True, 'shape': (3, 2), }".to_string(),
    ];
    for (i, dict) in cases.iter().enumerate() {
        fs::write(d.join(&format!("x{i}.npy")), npy_bytes(1, dict, None, 24)).unwrap();
    }
    let before = d.snapshot();
    for i in 0..cases.len() {
        let f = format!("x{i}.npy");
        for args in [&["fill", &f, "--value", "1"][..], &["info", &f]] {
            let out = d.run(args);
            refused(&out, REFUSED, "header");
            unchanged(&d, &before);
        }
    }
    assert!(!marker.exists());
}

/// NumPy reads headers with `ast.literal_eval`, which refuses arithmetic
/// (only complex literals such as `1+2j` may use `+`): `(1+2, 2)` is not a
/// literal and NumPy cannot open such a file.
#[test]
fn arithmetic_in_header_is_not_a_literal() {
    let d = Dir::new();
    let cases = [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1+2, 2), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4-2), }",
    ];
    for (i, dict) in cases.iter().enumerate() {
        fs::write(d.join(&format!("x{i}.npy")), npy_bytes(1, dict, None, 24)).unwrap();
    }
    let before = d.snapshot();
    for i in 0..cases.len() {
        let f = format!("x{i}.npy");
        for args in [&["fill", &f, "--value", "1"][..], &["info", &f]] {
            let out = d.run(args);
            refused(&out, REFUSED, "header");
            unchanged(&d, &before);
        }
    }
}

#[test]
fn fortran_order_is_reported_and_refused_for_work() {
    let d = Dir::new();
    let dict = "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }";
    fs::write(d.join("f.npy"), npy_bytes(1, dict, None, 24)).unwrap();
    let before = d.snapshot();
    let info = d.ok(&["info", "f.npy"]);
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("Fortran"),
        "{info:?}"
    );
    let out = d.run(&["fill", "f.npy", "--value", "1"]);
    refused(&out, REFUSED, "Fortran");
    assert!(stderr(&out).contains("convert"), "{}", stderr(&out));
    unchanged(&d, &before);
    let out = d.run(&["fill", "f.npy", "--value", "1", "--rows", "0:1", "-w", "1"]);
    refused(&out, REFUSED, "Fortran");
    unchanged(&d, &before);
}

#[test]
fn big_endian_is_reported_and_refused_for_work() {
    let d = Dir::new();
    let dict = "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }";
    fs::write(d.join("b.npy"), npy_bytes(1, dict, None, 24)).unwrap();
    let dict = "{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }";
    fs::write(d.join("i.npy"), npy_bytes(1, dict, None, 24)).unwrap();
    let before = d.snapshot();
    for f in ["b.npy", "i.npy"] {
        let info = d.ok(&["info", f]);
        assert!(
            String::from_utf8_lossy(&info.stdout).contains("big-endian"),
            "{info:?}"
        );
        let out = d.run(&["fill", f, "--value", "1"]);
        refused(&out, REFUSED, "big-endian");
        assert!(stderr(&out).contains("convert"), "{}", stderr(&out));
        unchanged(&d, &before);
    }
}

#[test]
fn object_and_structured_dtypes() {
    let d = Dir::new();
    let cases = [
        (
            "obj.npy",
            "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
        ),
        (
            "rec.npy",
            "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (3,), }",
        ),
        (
            "cplx.npy",
            "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }",
        ),
        (
            "str.npy",
            "{'descr': '<U4', 'fortran_order': False, 'shape': (3,), }",
        ),
        (
            "void.npy",
            "{'descr': '|V8', 'fortran_order': False, 'shape': (3,), }",
        ),
    ];
    for (f, dict) in cases {
        fs::write(d.join(f), npy_bytes(1, dict, None, 48)).unwrap();
    }
    let before = d.snapshot();
    for (f, _) in cases {
        // (fill --value takes c8 since complex fills landed; --random
        // is refused for every one of these.)
        let out = d.run(&["fill", f, "--random", "uniform", "--seed", "1"]);
        refused(&out, REFUSED, "not supported");
        assert!(stderr(&out).contains("dtype"), "{}", stderr(&out));
        unchanged(&d, &before);
        // info describes every dtype NumPy reads without pickles (issue 13);
        // an object array's data is a pickle.
        let out = d.run(&["info", f]);
        if f == "obj.npy" {
            refused(&out, REFUSED, "not supported");
        } else {
            assert_eq!(code(&out), 0, "{f}: {}", stderr(&out));
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("refuse"), "{text}");
        }
        unchanged(&d, &before);
    }
}

// ---------------------------------------------------------------- options --

#[test]
fn zero_workers() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "4,3", "--value", "1"]);
    let before = d.snapshot();
    for args in [
        &["fill", "y.npy", "--shape", "4,3", "--value", "1", "-w", "0"][..],
        &["fill", "x.npy", "--value", "2", "--workers", "0"],
    ] {
        let out = d.run(args);
        refused(&out, REFUSED, "workers");
        unchanged(&d, &before);
    }
    let out = d
        .cmd(&["fill", "y.npy", "--shape", "4,3", "--value", "1"])
        .env("MMRUN_DEFAULT_WORKERS", "0")
        .output()
        .unwrap();
    refused(&out, REFUSED, "workers");
    unchanged(&d, &before);
}

#[test]
fn malformed_rows() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "4,3", "--value", "1"]);
    let before = d.snapshot();
    for rows in ["abc", "1", "1:2:1", "a:3", "1:b", "1.5:2"] {
        let out = d.run(&["fill", "x.npy", "--value", "2", "--rows", rows]);
        refused(&out, REFUSED, "rows");
        unchanged(&d, &before);
    }
}

#[test]
fn value_numpy_would_refuse_for_the_dtype() {
    let d = Dir::new();
    d.ok(&[
        "fill", "u.npy", "--shape", "4", "--dtype", "u1", "--value", "1",
    ]);
    let before = d.snapshot();
    let cases: [(&str, &str, &str); 9] = [
        ("u1", "300", "300"),
        ("u1", "-1", "-1"),
        ("i1", "128", "128"),
        ("i4", "1.5", "1.5"),
        ("i4", "nan", "nan"),
        ("i8", "1e3", "1e3"),
        ("f4", "1e39", "1e39"),
        ("f2", "70000", "70000"),
        ("b1", "2", "2"),
    ];
    for (dtype, value, needle) in cases {
        let out = d.run(&[
            "fill", "x.npy", "--shape", "4", "--dtype", dtype, "--value", value,
        ]);
        refused(&out, REFUSED, needle);
        unchanged(&d, &before);
    }
    // In place too: the existing u1 file is left as it was.
    let out = d.run(&["fill", "u.npy", "--value", "300"]);
    refused(&out, REFUSED, "300");
    unchanged(&d, &before);
    let out = d.run(&[
        "fill", "x.npy", "--shape", "4", "--dtype", "f4", "--value", "one",
    ]);
    refused(&out, REFUSED, "one");
    unchanged(&d, &before);
}

// ------------------------------------------------------------------ space --

#[test]
fn not_enough_space() {
    const TEST: &str = "not_enough_space";
    let d = Dir::new();
    fs::write(d.join("keep"), b"keep").unwrap();
    let small = d.join("small");
    fs::create_dir(&small).unwrap();
    let Some(_mount) = Tmpfs::mount(TEST, &small, "1m") else {
        return;
    };
    fs::write(small.join("old.npy"), b"old").unwrap();
    let before = d.snapshot();
    // 4 MiB of f4 into a 1 MiB file system: new, and replacing with --force.
    for args in [
        &[
            "fill",
            "small/big.npy",
            "--shape",
            "1024,1024",
            "--dtype",
            "f4",
            "--value",
            "1",
        ][..],
        &[
            "fill",
            "small/old.npy",
            "--shape",
            "1024,1024",
            "--dtype",
            "f4",
            "--value",
            "1",
            "--force",
        ],
        &[
            "create",
            "small/c.npy",
            "--shape",
            "1024,1024",
            "--dtype",
            "f4",
        ],
        &[
            "fill",
            "small/big.npy",
            "--shape",
            "1024,1024",
            "--dtype",
            "f4",
            "--value",
            "1",
            "--prealloc",
            "fallocate",
        ],
    ] {
        let out = d.run(args);
        refused(&out, REFUSED, "space");
        unchanged(&d, &before);
        assert_eq!(
            tree(&small),
            BTreeMap::from([("old.npy".to_string(), b"old".to_vec())]),
            "{args:?} left something on the small file system"
        );
    }
}

#[test]
fn file_size_limit() {
    let d = Dir::new();
    fs::write(d.join("keep"), b"keep").unwrap();
    let before = d.snapshot();
    // `ulimit -f 100` is 50 or 100 KiB depending on the shell: 4 MiB is over both.
    let out = sh(
        &d,
        "ulimit -f 100",
        &[
            "fill",
            "x.npy",
            "--shape",
            "1024,1024",
            "--dtype",
            "f4",
            "--value",
            "1",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(REFUSED),
        "want exit 2, not a signal death: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    refused(&out, REFUSED, "ulimit");
    unchanged(&d, &before);
}

// ---------------------------------------------------------------- helpers --

/// [`assert_refused`], and the whole of stderr is that one line: a message
/// spread over several lines is not "a one-line error".
pub(crate) fn refused(out: &Output, want: i32, needle: &str) {
    assert_refused(out, want, needle);
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "want stderr to be one error line (exit {}), got {} lines:\n{err}",
        code(out),
        lines.len()
    );
}

/// Asserts the directory is byte-for-byte what `before` recorded.
pub(crate) fn unchanged(d: &Dir, before: &BTreeMap<String, Vec<u8>>) {
    let now = d.snapshot();
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&now), names(before), "files appeared or vanished");
    for (name, bytes) in before {
        assert!(now[name] == *bytes, "{name} changed");
    }
}

/// Every file under `dir` (recursively, hidden ones included) with its bytes.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, m: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                m.insert(format!("{rel}/"), Vec::new());
                walk(base, &p, m);
            } else {
                m.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(dir, dir, &mut m);
    m
}

fn names_in(dir: &Path) -> Vec<String> {
    tree(dir).into_keys().collect()
}

/// `.npy` bytes by hand: version `major`.0, header `dict` padded to a
/// newline, its length field (or `hlen` instead), then `data` zero bytes.
pub(crate) fn npy_bytes(major: u8, dict: &str, hlen: Option<u32>, data: usize) -> Vec<u8> {
    let mut body = dict.as_bytes().to_vec();
    let prefix = if major == 1 { 10 } else { 12 };
    while !(prefix + body.len() + 1).is_multiple_of(64) {
        body.push(b' ');
    }
    body.push(b'\n');
    let len = hlen.unwrap_or(body.len() as u32);
    let mut v = b"\x93NUMPY".to_vec();
    v.extend_from_slice(&[major, 0]);
    if major == 1 {
        v.extend_from_slice(&(len as u16).to_le_bytes());
    } else {
        v.extend_from_slice(&len.to_le_bytes());
    }
    v.extend_from_slice(&body);
    v.resize(v.len() + data, 0);
    v
}

/// Lets other users into the scratch directory (tempdirs are 0700).
pub(crate) fn open_dir(d: &Dir, mode: u32) {
    fs::set_permissions(d.path(), fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs mmrun as an unprivileged user: `setpriv` to nobody when root, or
/// directly when the tests already run unprivileged (the modes the tests
/// set deny the owner too).
pub(crate) struct Nobody {
    setpriv: bool,
    bin: PathBuf,
    _bin_dir: Option<Dir>,
}

impl Nobody {
    pub(crate) fn new(test: &str) -> Option<Nobody> {
        if !is_root() {
            return Some(Nobody {
                setpriv: false,
                bin: mmrun_bin(),
                _bin_dir: None,
            });
        }
        let probe = |bin: &Path| {
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(bin)
                .arg("--version")
                .output()
        };
        match probe(&mmrun_bin()) {
            Err(_) => {
                missing_tool(test, "setpriv (util-linux)");
                return None;
            }
            Ok(o) if o.status.success() => {
                return Some(Nobody {
                    setpriv: true,
                    bin: mmrun_bin(),
                    _bin_dir: None,
                })
            }
            Ok(_) => {}
        }
        // The build directory is not reachable by nobody: use a copy.
        let dir = Dir::new();
        open_dir(&dir, 0o755);
        let bin = dir.join("mmrun");
        fs::copy(mmrun_bin(), &bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let o = probe(&bin).expect("run setpriv");
        assert!(
            o.status.success(),
            "setpriv cannot run mmrun as nobody: {}",
            stderr(&o)
        );
        Some(Nobody {
            setpriv: true,
            bin,
            _bin_dir: Some(dir),
        })
    }

    pub(crate) fn run(&self, d: &Dir, args: &[&str]) -> Output {
        let mut c = if self.setpriv {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        c.args(args).current_dir(d.path());
        clean_env(&mut c);
        c.output().expect("run mmrun as nobody")
    }
}

/// Removes mmrun's own variables from `c`'s environment, as `Dir::cmd` does.
pub(crate) fn clean_env(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("MMRUN_") || k.starts_with("__MMRUN_") || k.starts_with("SLURM_") {
            c.env_remove(k);
        }
    }
}

/// Runs `sh -c 'PRELUDE; exec mmrun ARGS'` in `d`.
pub(crate) fn sh(d: &Dir, prelude: &str, args: &[&str]) -> Output {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{prelude}; exec \"$0\" \"$@\""))
        .arg(mmrun_bin())
        .args(args)
        .current_dir(d.path());
    clean_env(&mut c);
    c.output().expect("run sh")
}

/// A small tmpfs mounted for one test, unmounted at drop.
pub(crate) struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    pub(crate) fn mount(test: &str, at: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                at: at.to_path_buf(),
            }),
            Ok(o) => {
                missing_tool(
                    test,
                    &format!("mounting a tmpfs (needs root): {}", stderr(&o).trim()),
                );
                None
            }
            Err(e) => {
                missing_tool(test, &format!("mount(8): {e}"));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).output();
    }
}
