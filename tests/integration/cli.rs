//! Command-line happy paths: create, info, fill (new and in place), --force
//! (mode kept, symlinks followed), dry runs, worker counts and the common
//! options.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use serde_json::Value;

use crate::bad_input::{sh, unchanged};
use crate::util::{stderr, stdout, Dir};

/// Where data starts in the page-padded headers mmrun writes.
const PAGE: usize = 4096;

#[test]
fn create_makes_a_zero_filled_page_aligned_npy() {
    let d = Dir::new();
    d.ok(&["create", "c.npy", "--shape", "4,3", "--dtype", "f4"]);
    let b = fs::read(d.join("c.npy")).unwrap();
    assert_eq!(b.len(), PAGE + 4 * 3 * 4);
    assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!(10 + hlen, PAGE, "data must start at byte 4096");
    let header = std::str::from_utf8(&b[10..PAGE]).unwrap();
    assert!(
        header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"),
        "{header:?}"
    );
    assert!(header.ends_with('\n'));
    assert!(b[PAGE..].iter().all(|&x| x == 0), "data not zero");
    assert_eq!(d.names(), vec!["c.npy"], "leftovers");

    // Raw files are data only (offset zero bytes first).
    d.ok(&["create", "d.npy", "--shape", "5", "--dtype", "f8"]);
    assert_eq!(
        fs::metadata(d.join("d.npy")).unwrap().len(),
        (PAGE + 40) as u64
    );
    d.ok(&[
        "create", "r.bin", "--raw", "--shape", "3,5", "--dtype", "i2", "--offset", "6",
    ]);
    let r = fs::read(d.join("r.bin")).unwrap();
    assert_eq!(r.len(), 6 + 30);
    assert!(r.iter().all(|&x| x == 0));
    // A compact header is as small as np.save's.
    d.ok(&[
        "create",
        "e.npy",
        "--shape",
        "3,4",
        "--dtype",
        "f4",
        "--npy-header",
        "compact",
    ]);
    assert_eq!(fs::metadata(d.join("e.npy")).unwrap().len(), 128 + 48);
}

#[test]
fn info_text_and_json_for_npy() {
    let d = Dir::new();
    d.ok(&["create", "c.npy", "--shape", "4,3", "--dtype", "float32"]);
    let text = stdout(&d.ok(&["info", "c.npy"]));
    for want in [
        "npy v1.0",
        "<f4",
        "float32",
        "(4, 3)",
        "C order",
        "data at byte 4096",
    ] {
        assert!(text.contains(want), "{want:?} missing: {text}");
    }
    let j: Value = serde_json::from_str(&stdout(&d.ok(&["info", "c.npy", "--json"]))).unwrap();
    assert_eq!(j["format"], "npy");
    assert_eq!(j["npy_version"], "1.0");
    assert_eq!(j["dtype"], "<f4");
    assert_eq!(j["dtype_name"], "float32");
    assert_eq!(j["shape"], serde_json::json!([4, 3]));
    assert_eq!(j["fortran_order"], false);
    assert_eq!(j["data_offset"], 4096);
    assert_eq!(j["data_bytes"], 48);
    assert_eq!(j["row_bytes"], 12);
    assert_eq!(j["file_bytes"], 4096 + 48);
    assert!(j["schema_version"].is_number());
}

#[test]
fn info_text_and_json_for_raw() {
    let d = Dir::new();
    fs::write(d.join("r.bin"), [0u8; 6 + 60]).unwrap();
    // Shape inferred from the size, as numpy.memmap does.
    let j: Value = serde_json::from_str(&stdout(&d.ok(&[
        "info", "r.bin", "--raw", "--dtype", "i2", "--offset", "6", "--json",
    ])))
    .unwrap();
    assert_eq!(j["format"], "raw");
    assert_eq!(j["dtype"], "<i2");
    assert_eq!(j["shape"], serde_json::json!([30]));
    assert_eq!(j["data_offset"], 6);
    assert_eq!(j["data_bytes"], 60);
    assert_eq!(j["file_bytes"], 66);
    let j: Value = serde_json::from_str(&stdout(&d.ok(&[
        "info", "r.bin", "--raw", "--dtype", "u2", "--shape", "3,11", "--json",
    ])))
    .unwrap();
    assert_eq!(j["shape"], serde_json::json!([3, 11]));
    assert_eq!(j["row_bytes"], 22);
    let text = stdout(&d.ok(&["info", "r.bin", "--raw", "--dtype", "u1"]));
    for want in ["raw", "|u1", "uint8", "(66,)"] {
        assert!(text.contains(want), "{want:?} missing: {text}");
    }
    // --raw beats the magic string.
    d.ok(&["create", "c.npy", "--shape", "4", "--dtype", "u1"]);
    let j: Value = serde_json::from_str(&stdout(
        &d.ok(&["info", "c.npy", "--raw", "--dtype", "u1", "--json"]),
    ))
    .unwrap();
    assert_eq!(j["format"], "raw");
    assert_eq!(j["shape"], serde_json::json!([4096 + 4]));
}

#[test]
fn fill_new_then_in_place() {
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "40,1024", "--dtype", "f4", "--value", "3", "-w", "3",
    ]);
    let first = fs::read(d.join("x.npy")).unwrap();
    assert_f32(&first, |_| 3.0);
    assert_eq!(d.names(), vec!["x.npy"]);
    let ino = fs::metadata(d.join("x.npy")).unwrap().ino();

    // In place, whole file: header kept, same inode, every value new.
    d.ok(&["fill", "x.npy", "--value", "-2.5", "-w", "2"]);
    let b = fs::read(d.join("x.npy")).unwrap();
    assert!(b[..PAGE] == first[..PAGE], "header changed");
    assert_f32(&b, |_| -2.5);
    assert_eq!(fs::metadata(d.join("x.npy")).unwrap().ino(), ino);

    // In place, some rows (a Python slice, negative end allowed).
    d.ok(&[
        "fill", "x.npy", "--value", "7", "--rows", "10:-10", "-w", "3",
    ]);
    let b = fs::read(d.join("x.npy")).unwrap();
    assert!(b[..PAGE] == first[..PAGE], "header changed");
    assert_f32(&b, |i| {
        if (10..30).contains(&(i / 1024)) {
            7.0
        } else {
            -2.5
        }
    });
    // A matching --dtype is accepted in place.
    d.ok(&[
        "fill", "x.npy", "--dtype", "f4", "--value", "1", "--rows", ":5",
    ]);
    let b = fs::read(d.join("x.npy")).unwrap();
    assert_f32(&b, |i| match i / 1024 {
        0..=4 => 1.0,
        10..=29 => 7.0,
        _ => -2.5,
    });
    assert_eq!(d.names(), vec!["x.npy"], "leftovers");
}

#[test]
fn fill_raw_in_place() {
    let d = Dir::new();
    d.ok(&[
        "fill", "r.bin", "--raw", "--shape", "10,3", "--dtype", "i2", "--offset", "6", "--arange",
    ]);
    let b = fs::read(d.join("r.bin")).unwrap();
    assert_eq!(b.len(), 66);
    assert!(b[..6].iter().all(|&x| x == 0));
    let vals: Vec<i16> = b[6..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(vals, (0..30).collect::<Vec<i16>>());
    d.ok(&[
        "fill",
        "r.bin",
        "--raw",
        "--shape",
        "10,3",
        "--dtype",
        "i2",
        "--offset",
        "6",
        "--value",
        "-3",
        "--rows",
        "8:",
        "--in-place",
    ]);
    let b = fs::read(d.join("r.bin")).unwrap();
    let vals: Vec<i16> = b[6..]
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    let want: Vec<i16> = (0..30).map(|i| if i >= 24 { -3 } else { i }).collect();
    assert_eq!(vals, want);
}

#[test]
fn force_replaces_atomically_keeping_the_mode() {
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", "4,3", "--dtype", "f4", "--value", "1",
    ]);
    fs::set_permissions(d.join("x.npy"), fs::Permissions::from_mode(0o640)).unwrap();
    let old = fs::read(d.join("x.npy")).unwrap();
    // A second name for the old inode: replacement must not rewrite it.
    fs::hard_link(d.join("x.npy"), d.join("old.npy")).unwrap();
    d.ok(&[
        "fill", "x.npy", "--shape", "5,2", "--dtype", "i4", "--value", "9", "--force",
    ]);
    let m = fs::metadata(d.join("x.npy")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    let b = fs::read(d.join("x.npy")).unwrap();
    assert_eq!(b.len(), PAGE + 40);
    assert!(b[PAGE..]
        .chunks_exact(4)
        .all(|c| i32::from_le_bytes(c.try_into().unwrap()) == 9));
    assert_eq!(
        fs::read(d.join("old.npy")).unwrap(),
        old,
        "old inode rewritten"
    );
    assert_ne!(m.ino(), fs::metadata(d.join("old.npy")).unwrap().ino());
    assert_eq!(d.names(), vec!["old.npy", "x.npy"], "leftovers");

    // create --force too.
    d.ok(&[
        "create", "x.npy", "--shape", "2", "--dtype", "u1", "--force",
    ]);
    assert_eq!(fs::read(d.join("x.npy")).unwrap().len(), PAGE + 2);
    let m = fs::metadata(d.join("x.npy")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
}

#[test]
fn force_through_a_symlink_replaces_the_real_file() {
    let d = Dir::new();
    fs::create_dir(d.join("real")).unwrap();
    d.ok(&[
        "fill",
        "real/x.npy",
        "--shape",
        "4,3",
        "--dtype",
        "f4",
        "--value",
        "1",
    ]);
    fs::set_permissions(d.join("real/x.npy"), fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("real/x.npy", d.join("link.npy")).unwrap();
    d.ok(&[
        "fill", "link.npy", "--shape", "6,1024", "--dtype", "f4", "--value", "2", "--force",
    ]);
    let l = fs::symlink_metadata(d.join("link.npy")).unwrap();
    assert!(l.file_type().is_symlink(), "the symlink was replaced");
    assert_eq!(
        fs::read_link(d.join("link.npy")).unwrap(),
        std::path::Path::new("real/x.npy")
    );
    let b = fs::read(d.join("real/x.npy")).unwrap();
    assert_f32(&b, |_| 2.0);
    assert_eq!(b.len(), PAGE + 6 * 4096);
    let m = fs::metadata(d.join("real/x.npy")).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o640);
    // The partial file was built beside the real file, and nothing is left.
    assert_eq!(d.names(), vec!["link.npy", "real"]);
    let mut real: Vec<_> = fs::read_dir(d.join("real"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    real.sort();
    assert_eq!(real, vec!["x.npy"]);
    // In place through the symlink.
    d.ok(&["fill", "link.npy", "--value", "5", "--rows", "0:1"]);
    let b = fs::read(d.join("real/x.npy")).unwrap();
    assert_f32(&b, |i| if i < 1024 { 5.0 } else { 2.0 });
    assert!(fs::symlink_metadata(d.join("link.npy"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let d = Dir::new();
    d.ok(&[
        "fill", "old.npy", "--shape", "30,1024", "--dtype", "f4", "--value", "1",
    ]);
    let before = d.snapshot();
    let out = d.ok(&[
        "fill",
        "x.npy",
        "--shape",
        "30,1024",
        "--dtype",
        "f4",
        "--value",
        "1",
        "-w",
        "3",
        "--dry-run",
    ]);
    let plan = stdout(&out);
    let lines: Vec<&str> = plan
        .lines()
        .filter(|l| l.trim_start().starts_with("worker "))
        .collect();
    assert_eq!(lines.len(), 3, "one line per worker: {plan}");
    for (i, want) in ["rows 0..10", "rows 10..20", "rows 20..30"]
        .iter()
        .enumerate()
    {
        assert!(lines[i].contains(&format!("worker {i}")), "{plan}");
        assert!(lines[i].contains(want), "{plan}");
    }
    assert!(plan.contains("3 worker(s)"), "{plan}");
    assert!(plan.contains("aligned"), "{plan}");
    unchanged(&d, &before);
    // In place, a replacement, and create: nothing touched either.
    for args in [
        &["fill", "old.npy", "--value", "2", "-w", "2", "--dry-run"][..],
        &[
            "fill",
            "old.npy",
            "--shape",
            "8",
            "--value",
            "2",
            "--force",
            "--dry-run",
        ],
        &["create", "new.npy", "--shape", "8", "--dry-run"],
    ] {
        let out = d.ok(args);
        assert!(stdout(&out).contains("plan"), "{args:?}: {}", stdout(&out));
        unchanged(&d, &before);
    }
}

/// `--dry-run` says "whether space will be reserved" (design.md): with
/// `--prealloc none` it will not be.
#[test]
fn dry_run_says_whether_space_is_reserved() {
    let d = Dir::new();
    let args = [
        "fill",
        "x.npy",
        "--shape",
        "30,1024",
        "--dtype",
        "f4",
        "--value",
        "1",
        "--dry-run",
    ];
    let plan = stdout(&d.ok(&args));
    assert!(plan.contains("fallocate"), "{plan}");
    let mut none = args.to_vec();
    none.extend(["--prealloc", "none"]);
    let plan = stdout(&d.ok(&none));
    assert!(
        !plan.contains("reserved with fallocate"),
        "--prealloc none reserves nothing, but the plan says:\n{plan}"
    );
    assert_eq!(d.names(), Vec::<String>::new());
}

#[test]
fn more_workers_than_rows_are_clamped() {
    let d = Dir::new();
    let args = [
        "fill", "x.npy", "--shape", "3,5", "--dtype", "f8", "--value", "1", "-w", "7",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let plan = stdout(&d.ok(&dry));
    assert!(plan.contains("clamped from 7"), "{plan}");
    assert_eq!(
        plan.lines()
            .filter(|l| l.trim_start().starts_with("worker "))
            .count(),
        3,
        "{plan}"
    );
    let out = d.ok(&args);
    let summary = stderr(&out);
    assert!(summary.contains("3 worker(s)"), "{summary}");
    assert!(summary.contains("clamped"), "{summary}");
    let b = fs::read(d.join("x.npy")).unwrap();
    assert!(b[PAGE..]
        .chunks_exact(8)
        .all(|c| f64::from_le_bytes(c.try_into().unwrap()) == 1.0));
}

#[test]
fn default_workers_from_the_environment() {
    let d = Dir::new();
    let args = [
        "fill",
        "x.npy",
        "--shape",
        "30,1024",
        "--dtype",
        "f4",
        "--value",
        "1",
        "--dry-run",
    ];
    let out = d
        .cmd(&args)
        .env("MMRUN_DEFAULT_WORKERS", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.contains("3 worker(s)"), "{plan}");
    // -w beats the environment.
    let mut w2 = args.to_vec();
    w2.extend(["-w", "2"]);
    let out = d
        .cmd(&w2)
        .env("MMRUN_DEFAULT_WORKERS", "3")
        .output()
        .unwrap();
    assert!(stdout(&out).contains("2 worker(s)"), "{}", stdout(&out));
    // And the real run uses it.
    let out = d
        .cmd(&args[..args.len() - 1])
        .env("MMRUN_DEFAULT_WORKERS", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("3 worker(s)"), "{}", stderr(&out));
}

#[test]
fn workers_auto() {
    let d = Dir::new();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let rows = 64;
    let args = [
        "fill",
        "x.npy",
        "--shape",
        "64,1024",
        "--dtype",
        "f4",
        "--value",
        "4",
        "--workers",
        "auto",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let plan = stdout(&d.ok(&dry));
    assert!(
        plan.contains(&format!("{} worker(s)", cpus.min(rows))),
        "{cpus} CPUs: {plan}"
    );
    d.ok(&args);
    assert_f32(&fs::read(d.join("x.npy")).unwrap(), |_| 4.0);
}

/// Options that change how a run works, never what it writes.
#[test]
fn common_options_give_the_same_bytes() {
    let d = Dir::new();
    let base = [
        "fill", "--shape", "48,1024", "--dtype", "f4", "--random", "uniform", "--seed", "7",
    ];
    let run = |name: &str, extra: &[&str]| -> Vec<u8> {
        let mut args = vec![base[0], name];
        args.extend_from_slice(&base[1..]);
        args.extend_from_slice(extra);
        d.ok(&args);
        fs::read(d.join(name)).unwrap()
    };
    let want = run("base.npy", &["-w", "1"]);
    assert_eq!(want.len(), PAGE + 48 * 4096);
    for (i, extra) in [
        &["-w", "3"][..],
        &["-w", "3", "--spawn", "exec"],
        &["-w", "2", "--spawn", "fork"],
        &["--sync", "none"],
        &["--prealloc", "none"],
        &["--prealloc", "fallocate"],
        &["--prealloc", "auto"],
        &["--no-lock", "-w", "2"],
        &["--align", "65536", "-w", "3"],
        &["--align", "1", "-w", "5"],
    ]
    .iter()
    .enumerate()
    {
        let name = format!("o{i}.npy");
        assert!(run(&name, extra) == want, "{extra:?} changed the bytes");
    }
    // Nothing but the targets is left behind.
    assert_eq!(d.names().iter().filter(|n| n.starts_with('.')).count(), 0);
}

#[test]
fn align_option_moves_the_boundaries() {
    let d = Dir::new();
    // 64 rows of 4 KiB after a 4 KiB header: 64 KiB-aligned boundaries are
    // at rows 15, 31, 47.
    let plan = stdout(&d.ok(&[
        "fill",
        "x.npy",
        "--shape",
        "64,1024",
        "--dtype",
        "f4",
        "--value",
        "1",
        "-w",
        "4",
        "--align",
        "65536",
        "--dry-run",
    ]));
    assert!(plan.contains("aligned to 65536"), "{plan}");
    assert!(plan.contains("rows 0..15"), "{plan}");
    assert!(plan.contains("rows 47..64"), "{plan}");
}

#[test]
fn seed_is_drawn_and_echoed_when_absent() {
    let d = Dir::new();
    let out = d.ok(&[
        "fill", "a.npy", "--shape", "16,1024", "--dtype", "f4", "--random", "uniform", "-w", "2",
    ]);
    let summary = stderr(&out);
    let seed = summary
        .split("seed ")
        .nth(1)
        .and_then(|s| {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_else(|| panic!("no seed in the summary: {summary}"));
    // The echoed seed reproduces the file.
    let out = d.ok(&[
        "fill", "b.npy", "--shape", "16,1024", "--dtype", "f4", "--random", "uniform", "--seed",
        &seed, "-w", "3",
    ]);
    assert!(
        stderr(&out).contains(&format!("seed {seed}")),
        "{}",
        stderr(&out)
    );
    assert!(
        fs::read(d.join("a.npy")).unwrap() == fs::read(d.join("b.npy")).unwrap(),
        "seed {seed} does not reproduce the file"
    );
    // Two draws differ.
    d.ok(&[
        "fill", "c.npy", "--shape", "16,1024", "--dtype", "f4", "--random", "uniform",
    ]);
    assert!(fs::read(d.join("a.npy")).unwrap() != fs::read(d.join("c.npy")).unwrap());
}

#[test]
fn zero_row_arrays() {
    let d = Dir::new();
    d.ok(&["fill", "z.npy", "--shape", "0,5", "--value", "1", "-w", "3"]);
    assert_eq!(fs::metadata(d.join("z.npy")).unwrap().len(), PAGE as u64);
    let j: Value = serde_json::from_str(&stdout(&d.ok(&["info", "z.npy", "--json"]))).unwrap();
    assert_eq!(j["shape"], serde_json::json!([0, 5]));
    assert_eq!(j["data_bytes"], 0);
    d.ok(&["fill", "z.npy", "--value", "2"]);
    d.ok(&["create", "e.npy", "--shape", "4,0", "--dtype", "i2"]);
    d.ok(&["fill", "e.npy", "--arange", "-w", "2"]);
    d.ok(&[
        "fill", "r.bin", "--raw", "--shape", "0", "--dtype", "u1", "--random", "uniform",
    ]);
    assert_eq!(fs::metadata(d.join("r.bin")).unwrap().len(), 0);
    assert_eq!(d.names(), vec!["e.npy", "r.bin", "z.npy"]);
}

#[test]
fn new_files_get_0666_minus_umask() {
    let d = Dir::new();
    for (umask, file, want) in [
        ("027", "a.npy", 0o640),
        ("022", "b.npy", 0o644),
        ("0", "c.npy", 0o666),
    ] {
        let out = sh(
            &d,
            &format!("umask {umask}"),
            &["fill", file, "--shape", "4", "--value", "1"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let mode = fs::metadata(d.join(file)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, want, "umask {umask}: mode {mode:o}");
    }
    let out = sh(&d, "umask 077", &["create", "d.npy", "--shape", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = fs::metadata(d.join("d.npy")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

// ---------------------------------------------------------------- helpers --

/// Asserts a page-header f4 file holds `want(i)` at flat index `i`.
fn assert_f32(file: &[u8], want: impl Fn(usize) -> f32) {
    let bad = file[PAGE..]
        .chunks_exact(4)
        .enumerate()
        .find(|(i, c)| f32::from_le_bytes((*c).try_into().unwrap()) != want(*i));
    if let Some((i, c)) = bad {
        panic!(
            "element {i} is {} but should be {}",
            f32::from_le_bytes(c.try_into().unwrap()),
            want(i)
        );
    }
}

/// Dynamic scheduling hands out chunks to free workers; the bytes are those
/// of a static run, and exec refuses it.
#[test]
fn dynamic_schedule_gives_the_same_bytes_and_exec_refuses_it() {
    let d = Dir::new();
    d.ok(&[
        "fill", "s.npy", "--shape", "700,300", "--dtype", "f8", "--random", "normal", "--seed",
        "3", "-w", "2",
    ]);
    for (w, k) in [("1", "50"), ("3", "7"), ("2", "1000")] {
        let _ = std::fs::remove_file(d.join("d.npy"));
        let out = d.ok(&[
            "fill",
            "d.npy",
            "--shape",
            "700,300",
            "--dtype",
            "f8",
            "--random",
            "normal",
            "--seed",
            "3",
            "-w",
            w,
            "--schedule",
            "dynamic",
            "--chunk-rows",
            k,
            "--json",
        ]);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let ranges = doc["plan"]["ranges"].as_array().unwrap();
        let chunk: u64 = k.parse().unwrap();
        assert!(ranges.len() as u64 >= 700u64.div_ceil(chunk.max(1) * 2).max(1));
        assert_eq!(
            std::fs::read(d.join("d.npy")).unwrap(),
            std::fs::read(d.join("s.npy")).unwrap(),
            "-w {w} chunk {k}"
        );
    }
    let out = d.run(&["exec", "s.npy", "--schedule", "dynamic", "--", "true"]);
    crate::util::assert_refused(&out, 2, "dynamic");
    let out = d.run(&["fill", "s.npy", "--value", "1", "--chunk-rows", "5"]);
    crate::util::assert_refused(&out, 2, "--schedule dynamic");
}
