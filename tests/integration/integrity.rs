//! Nothing torn, nothing overwritten: readers never use a file a run is
//! changing, `--shape` never rewrites an existing file in place, drawn seeds
//! survive for `--resume`, retries never apply an in-place worker twice, and
//! `--force` respects permissions.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::bad_input::{open_dir, Nobody};
use crate::memory::{disk_dir, run_limited, Cgroup, LIMIT};
use crate::util::*;

/// A background mmrun, stopped whatever the test's outcome.
struct Bg(Option<Child>);

impl Bg {
    fn spawn(c: &mut std::process::Command) -> Bg {
        Bg(Some(c.spawn().expect("start mmrun")))
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.0.as_ref().expect("running").id() as i32)
    }

    /// Waits for it and returns its output.
    fn finish(mut self) -> std::process::Output {
        self.0.take().expect("running").wait_with_output().unwrap()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits (up to a minute) for `cond`; whether it became true.
fn wait_for(cond: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() > Duration::from_secs(60) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The reading commands, each on `x.npy`, with the file each would publish.
const READERS: &[(&[&str], Option<&str>)] = &[
    (
        &["convert", "x.npy", "c.npy", "--dtype", "f8"],
        Some("c.npy"),
    ),
    (
        &["apply", "x.npy", "--expr", "x * 2", "--out", "a.npy"],
        Some("a.npy"),
    ),
    (
        &[
            "reduce", "x.npy", "--op", "sum", "--axis", "1", "--out", "r.npy",
        ],
        Some("r.npy"),
    ),
    (&["reduce", "x.npy", "--op", "sum", "--axis", "all"], None),
    (
        &[
            "reduce", "x.npy", "--op", "max", "--axis", "0", "--out", "m.npy",
        ],
        Some("m.npy"),
    ),
    (&["verify", "x.npy", "--value", "1"], None),
];

/// Every reader started while `writer` holds x.npy gets exit 75 naming the
/// holder, prints nothing on stdout and publishes nothing.
fn readers_are_busy(d: &Dir, holder: u32) {
    for (args, out) in READERS {
        let o = d.run(args);
        assert_refused(&o, 75, &format!("in use by pid {holder}"));
        assert!(stdout(&o).is_empty(), "{args:?} printed {}", stdout(&o));
        if let Some(out) = out {
            assert!(!d.join(out).exists(), "{args:?} published {out}");
        }
    }
    let names = d.names();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("partial") && !n.contains("x.npy")),
        "a reader left a partial file: {names:?}"
    );
}

/// A reader started during an in-place run of each kind — fill, apply and
/// exec — gets 75 and publishes nothing. Before, convert, apply --out,
/// reduce --axis 1 and verify read the file regardless (exit 0).
#[test]
fn a_reader_during_an_in_place_run_gets_75_and_publishes_nothing() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "64,32", "--value", "1"]);
    let journal = d.join(".x.npy.mmrun-journal");
    let writers: [(&str, Vec<&str>); 3] = [
        ("fill", vec!["fill", "x.npy", "--value", "2", "-w", "2"]),
        (
            "apply",
            vec!["apply", "x.npy", "--expr", "x + 1", "-w", "2"],
        ),
        (
            "exec",
            vec![
                "exec",
                "x.npy",
                "-w",
                "2",
                "--",
                "sh",
                "-c",
                "while [ ! -e go ]; do sleep 0.02; done",
            ],
        ),
    ];
    for (kind, args) in writers {
        let mut args = args.clone();
        args.extend(["--kill-after", "1s"]);
        let mut c = d.cmd(&args);
        if kind != "exec" {
            c.env("__MMRUN_TEST_WORKER_FAULT", "0:hang");
        }
        let w = Bg::spawn(c.stdout(Stdio::null()).stderr(Stdio::null()));
        assert!(wait_for(|| journal.exists()), "{kind}: no journal");
        readers_are_busy(&d, w.pid().as_raw() as u32);
        if kind == "exec" {
            fs::write(d.join("go"), "").unwrap();
            assert!(w.finish().status.success(), "{kind}");
            fs::remove_file(d.join("go")).unwrap();
        } else {
            kill(w.pid(), Signal::SIGTERM).unwrap();
            w.finish();
            // Interrupted: half written, and the refusal names the command
            // that finishes it.
            let o = d.run(&["convert", "x.npy", "c.npy"]);
            assert_refused(&o, 2, "--resume");
            assert!(
                stderr(&o).contains(&format!("{kind} x.npy")),
                "{}",
                stderr(&o)
            );
            assert!(!d.join("c.npy").exists());
            d.ok(&["fill", "x.npy", "--value", "1", "--force", "-q"]);
        }
        assert!(!journal.exists(), "{kind}: {:?}", d.names());
    }
}

/// Runs reader `args` with its workers held before they read, changes
/// x.npy with `change` meanwhile, and lets them go.
fn read_while_changed(d: &Dir, args: &[&str], change: impl FnOnce()) -> std::process::Output {
    let go = d.join("go");
    let waiting = d.join("go.waiting");
    let _ = fs::remove_file(&go);
    let _ = fs::remove_file(&waiting);
    let r = Bg::spawn(
        d.cmd(args)
            .env("__MMRUN_TEST_WORKER_WAIT", &go)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    assert!(
        wait_for(|| waiting.exists()),
        "{args:?}: workers never started"
    );
    change();
    fs::write(&go, "").unwrap();
    r.finish()
}

/// A file rewritten while a reader's workers read it: the reader fails
/// (exit 1), prints no result and publishes nothing. Before, convert exited
/// 0 with a copy that mixed old and new rows.
#[test]
fn a_file_changed_while_it_is_read_gives_no_result() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "64,32", "--value", "1"]);
    for (args, out) in READERS.iter().filter(|(a, _)| a[0] != "verify") {
        let o = read_while_changed(&d, args, || {
            d.ok(&["fill", "x.npy", "--value", "3", "-q"]);
        });
        assert_refused(&o, 1, "changed while it was read");
        assert!(stdout(&o).trim().is_empty() || stdout(&o).starts_with('{'));
        if let Some(out) = out {
            assert!(!d.join(out).exists(), "{args:?} published {out}");
        }
        assert_eq!(
            d.names()
                .into_iter()
                .filter(|n| n.starts_with('.'))
                .collect::<Vec<_>>(),
            Vec::<String>::new(),
            "{args:?} left something behind"
        );
        // Replaced by another file (rename over it) is a change too.
        let o = read_while_changed(&d, args, || {
            d.ok(&["fill", "y.npy", "--shape", "64,32", "--value", "4", "-q"]);
            fs::rename(d.join("y.npy"), d.join("x.npy")).unwrap();
        });
        assert_refused(&o, 1, "changed while it was read");
        if let Some(out) = out {
            assert!(!d.join(out).exists(), "{args:?} published {out}");
        }
    }
    // Unchanged, every reader succeeds.
    for (args, _) in READERS.iter().filter(|(a, _)| a[0] != "verify") {
        let o = read_while_changed(&d, args, || {});
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    }
}

/// An interrupted rebuild (`--shape --force`) never touched its target:
/// readers read it, whole, while the rebuild's journal waits for
/// `--resume` or `--force`.
#[test]
fn an_interrupted_rebuild_leaves_the_target_readable() {
    let d = Dir::new();
    d.ok(&["fill", "x.npy", "--shape", "64,32", "--value", "1"]);
    let o = d
        .cmd(&[
            "fill", "x.npy", "--shape", "64,32", "--value", "2", "--force", "-w", "2",
        ])
        .env("__MMRUN_TEST_WORKER_FAULT", "1:exit:3")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(d.join(".x.npy.mmrun-journal").exists());
    d.ok(&["verify", "x.npy", "--value", "1"]);
    d.ok(&["convert", "x.npy", "c.npy"]);
    d.ok(&["verify", "c.npy", "--value", "1"]);
}

/// A pending distributed run's file is not read (exit 2, naming commit).
#[test]
fn a_pending_file_is_not_read() {
    let d = Dir::new();
    d.ok(&["create", "--pending", "x.npy", "--shape", "64,32"]);
    for (args, out) in READERS {
        let o = d.run(args);
        assert_refused(&o, 2, "mmrun commit");
        if let Some(out) = out {
            assert!(!d.join(out).exists(), "{args:?} published {out}");
        }
    }
}

/// `--shape` over an existing raw file is refused without `--force` and
/// changes nothing; with `--force` the file is rebuilt beside it and
/// renamed over it (a new inode). Before, it was rewritten in place, exit 0.
#[test]
fn shape_over_an_existing_raw_file_needs_force_and_is_atomic() {
    let d = Dir::new();
    d.ok(&[
        "fill", "h.dat", "--raw", "--shape", "100,100", "--dtype", "f4", "--value", "1",
    ]);
    let before = fs::read(d.join("h.dat")).unwrap();
    let ino = fs::metadata(d.join("h.dat")).unwrap().ino();
    for cmd in [
        &[
            "fill", "h.dat", "--raw", "--shape", "100,100", "--dtype", "f4", "--value", "9",
        ][..],
        &[
            "exec", "h.dat", "--raw", "--shape", "100,100", "--dtype", "f4", "--", "true",
        ][..],
    ] {
        let o = d.run(cmd);
        assert_refused(&o, 2, "--force");
        assert_eq!(fs::read(d.join("h.dat")).unwrap(), before);
        assert_eq!(d.names(), vec!["h.dat".to_string()]);
    }
    d.ok(&[
        "fill", "h.dat", "--raw", "--shape", "100,100", "--dtype", "f4", "--value", "9", "--force",
    ]);
    let after = fs::read(d.join("h.dat")).unwrap();
    assert_eq!(after.len(), 40000);
    assert!(after.chunks(4).all(|c| c == 9f32.to_le_bytes()));
    assert_ne!(fs::metadata(d.join("h.dat")).unwrap().ino(), ino);
    assert_eq!(d.names(), vec!["h.dat".to_string()]);
}

/// The seed in a refusal or failure line: the number after "seed ".
fn seed_in(text: &str) -> String {
    let at = text.rfind("seed ").expect("a seed in the message") + 5;
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// An auto-seeded random fill that failed, and one that was interrupted,
/// print their seed and resume without `--seed` to the bytes of an
/// uninterrupted run with that seed. Before, `--resume` was refused (the
/// drawn seed was lost).
#[test]
fn an_auto_seeded_fill_resumes_without_seed() {
    let d = Dir::new();
    let fill = [
        "fill", "r.npy", "--shape", "2000,100", "--random", "uniform", "-w", "2",
    ];
    // Failed.
    let o = d
        .cmd(&fill)
        .env("__MMRUN_TEST_WORKER_FAULT", "1:exit:7")
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let seed = seed_in(&stderr(&o));
    assert!(!seed.is_empty());
    let mut resume = fill.to_vec();
    resume.push("--resume");
    d.ok(&resume);
    d.ok(&[
        "fill", "want.npy", "--shape", "2000,100", "--random", "uniform", "--seed", &seed,
    ]);
    assert_eq!(
        fs::read(d.join("r.npy")).unwrap(),
        fs::read(d.join("want.npy")).unwrap()
    );
    // Interrupted, in place this time; a --seed that differs is refused.
    let mut inplace = vec!["fill", "want.npy", "--random", "uniform", "-w", "2"];
    let w = Bg::spawn(
        d.cmd(&inplace)
            .env("__MMRUN_TEST_WORKER_FAULT", "1:hang")
            .stderr(Stdio::piped()),
    );
    let journal = d.join(".want.npy.mmrun-journal");
    assert!(wait_for(|| journal.exists()));
    // The journal holds the seed before any worker is done.
    assert!(fs::read_to_string(&journal).unwrap().contains("\"seed\""));
    kill(w.pid(), Signal::SIGINT).unwrap();
    let o = w.finish();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGINT),
        "{}",
        stderr(&o)
    );
    let seed2 = seed_in(&stderr(&o));
    inplace.push("--resume");
    let mut wrong = inplace.clone();
    wrong.extend(["--seed", "1"]);
    assert_refused(&d.run(&wrong), 2, &format!("used seed {seed2}"));
    d.ok(&inplace);
    d.ok(&[
        "fill",
        "want2.npy",
        "--shape",
        "2000,100",
        "--random",
        "uniform",
        "--seed",
        &seed2,
    ]);
    assert_eq!(
        fs::read(d.join("want.npy")).unwrap(),
        fs::read(d.join("want2.npy")).unwrap()
    );
}

/// The same for exec: a worker fails once (a marker file decides, whatever
/// worker id the resumed range gets); `--resume` without `--seed` passes
/// the same MMRUN_SEED, so the bytes equal a run with that seed.
#[test]
fn an_auto_seeded_exec_resumes_without_seed() {
    let Some(py) = require_numpy("an_auto_seeded_exec_resumes_without_seed") else {
        return;
    };
    let d = Dir::new();
    fs::write(
        d.join("w.py"),
        "import os, numpy as np\n\
         e = os.environ\n\
         shape = tuple(int(v) for v in e['MMRUN_SHAPE'].split(','))\n\
         a = np.memmap(e['MMRUN_FILE'], dtype=e['MMRUN_DTYPE'], mode='r+', offset=int(e['MMRUN_DATA_OFFSET']), shape=shape)\n\
         s, t = int(e['MMRUN_ROW_START']), int(e['MMRUN_ROW_END'])\n\
         g = np.random.Generator(np.random.Philox(int(e['MMRUN_SEED'])))\n\
         a[s:t] = g.random(shape, dtype=np.float32)[s:t]\n\
         a.flush()\n\
         if s > 0 and not os.path.exists('failed-once'):\n\
         \x20   open('failed-once', 'w').close()\n\
         \x20   raise SystemExit(3)\n",
    )
    .unwrap();
    let py = py.to_string_lossy().into_owned();
    let exec = [
        "exec", "e.npy", "--shape", "300,20", "-w", "2", "--", &py, "w.py",
    ];
    let o = d.run(&exec);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let seed = seed_in(&stderr(&o));
    let mut resume = exec.to_vec();
    resume.insert(6, "--resume");
    d.ok(&resume);
    let mut want = exec.to_vec();
    want[1] = "want.npy";
    want.splice(6..6, ["--seed", seed.as_str()]);
    d.ok(&want);
    assert_eq!(
        fs::read(d.join("e.npy")).unwrap(),
        fs::read(d.join("want.npy")).unwrap()
    );
}

/// An in-place exec that reads what it writes (`rows += 1`) is never
/// retried or resumed unless declared `--idempotent`: refused before any
/// work, the file unchanged. Before, a retry left the retried rows at +2,
/// exit 0, and the summary did not mention it.
#[test]
fn an_in_place_exec_is_not_retried_twice() {
    let Some(py) = require_numpy("an_in_place_exec_is_not_retried_twice") else {
        return;
    };
    let d = Dir::new();
    fs::write(
        d.join("w.py"),
        "import os, numpy as np\n\
         e = os.environ\n\
         shape = tuple(int(v) for v in e['MMRUN_SHAPE'].split(','))\n\
         a = np.memmap(e['MMRUN_FILE'], dtype=e['MMRUN_DTYPE'], mode='r+', offset=int(e['MMRUN_DATA_OFFSET']), shape=shape)\n\
         s, t = int(e['MMRUN_ROW_START']), int(e['MMRUN_ROW_END'])\n\
         a[s:t] += 1\n\
         a.flush()\n\
         if e['MMRUN_WORKER'] == '1' and e['MMRUN_ATTEMPT'] == '0':\n\
         \x20   raise SystemExit(3)\n",
    )
    .unwrap();
    d.ok(&["fill", "f.npy", "--shape", "100,10", "--value", "0"]);
    let before = d.snapshot();
    let py = py.to_string_lossy().into_owned();
    for opt in [&["--retries", "1"][..], &["--resume"][..]] {
        let mut args = vec!["exec", "f.npy", "-w", "2"];
        args.extend(opt);
        args.extend(["--", &py, "w.py"]);
        let o = d.run(&args);
        assert_refused(&o, 2, "--idempotent");
        assert!(stderr(&o).contains("--shape"), "{}", stderr(&o));
        assert_eq!(d.snapshot(), before);
    }
    // A failed in-place exec says what finishes it truthfully.
    let o = d.run(&["exec", "f.npy", "-w", "2", "--", &py, "w.py"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("--resume --idempotent"),
        "{}",
        stderr(&o)
    );
    d.ok(&["fill", "f.npy", "--value", "0", "--force"]);
    // Declared idempotent (this one sets, not adds): retried, and the retry
    // is named in the summary line and the report.
    fs::write(
        d.join("w.py"),
        fs::read_to_string(d.join("w.py"))
            .unwrap()
            .replace("a[s:t] += 1", "a[s:t] = 7"),
    )
    .unwrap();
    let o = d.ok(&[
        "exec",
        "f.npy",
        "-w",
        "2",
        "--retries",
        "1",
        "--idempotent",
        "--json",
        "--",
        &py,
        "w.py",
    ]);
    let err = stderr(&o);
    let summary = err
        .lines()
        .find(|l| l.starts_with("mmrun: updated"))
        .unwrap();
    assert!(
        summary.contains("retried after worker 1 (rows 50..100) exited with code 3"),
        "{summary}"
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["retries"],
        serde_json::json!(["worker 1 (rows 50..100) exited with code 3"])
    );
    python(
        Path::new(&py),
        d.path(),
        "import numpy as np\nassert (np.load('f.npy') == 7).all()\n",
    );
}

/// `--force` does not replace a file its user could not write (as cp and
/// rm without -f): one line, exit 2, the file untouched. Before, nobody
/// replaced a root-owned mode-444 file in a writable directory.
#[test]
fn force_does_not_replace_a_file_the_user_cannot_write() {
    let Some(nobody) = Nobody::new("force_does_not_replace_a_file_the_user_cannot_write") else {
        return;
    };
    let d = Dir::new();
    open_dir(&d, 0o777);
    d.ok(&["fill", "ro.npy", "--shape", "10,10", "--value", "1"]);
    fs::set_permissions(d.join("ro.npy"), fs::Permissions::from_mode(0o444)).unwrap();
    d.ok(&["fill", "src.npy", "--shape", "10,10", "--value", "2"]);
    fs::set_permissions(d.join("src.npy"), fs::Permissions::from_mode(0o644)).unwrap();
    let before = d.snapshot();
    let ino = fs::metadata(d.join("ro.npy")).unwrap().ino();
    for args in [
        &[
            "fill", "ro.npy", "--shape", "10,10", "--value", "3", "--force",
        ][..],
        &["create", "ro.npy", "--shape", "5", "--force"][..],
        &["convert", "src.npy", "ro.npy", "--force"][..],
        &[
            "apply", "src.npy", "--expr", "x", "--out", "ro.npy", "--force",
        ][..],
    ] {
        let o = nobody.run(&d, args);
        assert_refused(&o, 2, "not writable by you");
        assert_eq!(d.snapshot(), before, "{args:?}");
        assert_eq!(fs::metadata(d.join("ro.npy")).unwrap().ino(), ino);
    }
}

/// A row far wider than a 256 MiB memory cgroup (600 MB of u1), in a
/// cgroup of each version present: fill splits it into blocks, and the
/// reductions and verify of it finish too, with no OOM kill. Before, a block was at least one whole row and a fill
/// worker held the row in one buffer (783 MB for a 800 MB row).
#[test]
fn a_row_wider_than_the_memory_limit() {
    let test = "integrity::a_row_wider_than_the_memory_limit";
    let cgs = match Cgroup::each(LIMIT) {
        Ok(cgs) => cgs,
        Err(what) => return missing_tool(test, &what),
    };
    let base = match disk_dir() {
        Ok(b) => b,
        Err(what) => return missing_tool(test, &what),
    };
    for cg in &cgs {
        let d = Dir::new_in(&base);
        let out = run_limited(
            cg,
            &d,
            &[
                "fill",
                "w.npy",
                "--shape",
                "2,600000000",
                "--dtype",
                "u1",
                "--value",
                "1",
                "-w",
                "2",
                "--json",
            ],
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for w in report["workers"].as_array().unwrap() {
            let rss = w["usage"]["max_rss_kib"].as_i64().unwrap();
            assert!(rss < 64 << 10, "a fill worker peaked at {} MiB", rss >> 10);
        }
        let out = run_limited(
            cg,
            &d,
            &["reduce", "w.npy", "--op", "sum", "--axis", "all", "-w", "2"],
        );
        assert_eq!(stdout(&out).trim(), "1200000000");
        run_limited(
            cg,
            &d,
            &[
                "reduce", "w.npy", "--op", "max", "--axis", "1", "--out", "m.npy", "-w", "2",
            ],
        );
        let m = fs::read(d.join("m.npy")).unwrap();
        assert_eq!(&m[m.len() - 2..], &[1, 1]);
        run_limited(cg, &d, &["verify", "w.npy", "--value", "1"]);
    }
}

/// Split rows give the same bytes as whole rows: a (3, 700001) float32
/// fill, each row wider than a block, equals the same fill of the flat
/// array for every stream, and verify agrees.
#[test]
fn split_rows_fill_the_same_bytes() {
    let d = Dir::new();
    for kind in [
        &["--random", "uniform", "--seed", "3"][..],
        &["--random", "normal", "--seed", "4"],
        &["--arange"],
        &["--value", "2.5"],
    ] {
        let mut wide = vec!["fill", "w.npy", "--shape", "3,700001", "-w", "2", "--force"];
        wide.extend(kind);
        d.ok(&wide);
        let mut flat = vec!["fill", "f.npy", "--shape", "2100003", "-w", "2", "--force"];
        flat.extend(kind);
        d.ok(&flat);
        let data = |name: &str| {
            let b = fs::read(d.join(name)).unwrap();
            b[b.len() - 2100003 * 4..].to_vec()
        };
        assert!(data("w.npy") == data("f.npy"), "{kind:?}");
        let mut verify = vec!["verify", "w.npy"];
        verify.extend(kind);
        d.ok(&verify);
    }
}

/// A new-file exec whose program reads what it writes (`rows += 1`) and
/// fails once after writing: retried (`--retries 1`) or resumed after the
/// failure, the failed range starts again from zeros, so the file equals
/// an undisturbed run's byte for byte, and the retry is named in the
/// summary line and the report. Before, the retried or resumed rows held 2
/// instead of 1, with exit 0.
#[test]
fn a_new_file_exec_that_reads_what_it_writes_is_retried_exactly() {
    let Some(py) = require_numpy("a_new_file_exec_that_reads_what_it_writes_is_retried_exactly")
    else {
        return;
    };
    let d = Dir::new();
    fs::write(
        d.join("w.py"),
        "import os, numpy as np\n\
         e = os.environ\n\
         shape = tuple(int(v) for v in e['MMRUN_SHAPE'].split(','))\n\
         a = np.memmap(e['MMRUN_FILE'], dtype=e['MMRUN_DTYPE'], mode='r+', offset=int(e['MMRUN_DATA_OFFSET']), shape=shape)\n\
         s, t = int(e['MMRUN_ROW_START']), int(e['MMRUN_ROW_END'])\n\
         a[s:t] += 1\n\
         a.flush()\n\
         if e.get('FAIL_ONCE') and s > 0 and not os.path.exists('failed-once'):\n\
         \x20   open('failed-once', 'w').close()\n\
         \x20   raise SystemExit(3)\n",
    )
    .unwrap();
    let py = py.to_string_lossy().into_owned();
    let exec = |name: &'static str, extra: &[&'static str]| {
        let mut args = vec![
            "exec", name, "--shape", "100,1000", "--dtype", "f4", "-w", "2",
        ];
        args.extend(extra);
        args.extend(["--", py.as_str(), "w.py"]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: &[String], fail: bool| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = d.cmd(&args);
        if fail {
            c.env("FAIL_ONCE", "1");
        }
        c.output().unwrap()
    };
    let undisturbed = run(&exec("want.npy", &[]), false);
    assert!(undisturbed.status.success(), "{}", stderr(&undisturbed));
    let want = fs::read(d.join("want.npy")).unwrap();

    // Retried.
    let o = run(&exec("n.npy", &["--retries", "1", "--json"]), true);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let summary = err
        .lines()
        .find(|l| l.starts_with("mmrun: wrote"))
        .unwrap_or_else(|| panic!("no summary line: {err}"));
    assert!(
        summary.contains("retried after worker 1 (rows 50..100) exited with code 3"),
        "{summary}"
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["retries"],
        serde_json::json!(["worker 1 (rows 50..100) exited with code 3"])
    );
    assert!(
        fs::read(d.join("n.npy")).unwrap() == want,
        "retried rows differ"
    );

    // Failed, then resumed.
    fs::remove_file(d.join("failed-once")).unwrap();
    let o = run(&exec("r.npy", &[]), true);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let o = run(&exec("r.npy", &["--resume"]), true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        fs::read(d.join("r.npy")).unwrap() == want,
        "resumed rows differ"
    );
    python(
        Path::new(&py),
        d.path(),
        "import numpy as np\nassert (np.load('want.npy') == 1).all()\n",
    );
}

/// An interrupted auto-seeded exec (SIGINT while one program hangs) prints
/// its seed and resumes without `--seed` to the bytes of an uninterrupted
/// run with that seed; an interrupted `apply --out` (apply has no seed)
/// resumes to the bytes of an uninterrupted apply. The failed, not
/// interrupted, exec is `an_auto_seeded_exec_resumes_without_seed`.
#[test]
fn interrupted_exec_and_apply_resume_to_identical_bytes() {
    let Some(py) = require_numpy("interrupted_exec_and_apply_resume_to_identical_bytes") else {
        return;
    };
    let d = Dir::new();
    fs::write(
        d.join("w.py"),
        "import os, time, numpy as np\n\
         e = os.environ\n\
         shape = tuple(int(v) for v in e['MMRUN_SHAPE'].split(','))\n\
         a = np.memmap(e['MMRUN_FILE'], dtype=e['MMRUN_DTYPE'], mode='r+', offset=int(e['MMRUN_DATA_OFFSET']), shape=shape)\n\
         s, t = int(e['MMRUN_ROW_START']), int(e['MMRUN_ROW_END'])\n\
         g = np.random.Generator(np.random.Philox(int(e['MMRUN_SEED'])))\n\
         a[s:t] = g.random(shape, dtype=np.float32)[s:t]\n\
         a.flush()\n\
         if s > 0 and not os.path.exists('hung-once'):\n\
         \x20   open('hung-once', 'w').close()\n\
         \x20   time.sleep(3600)\n",
    )
    .unwrap();
    let py = py.to_string_lossy().into_owned();
    let exec = |name: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["exec", name, "--shape", "300,20", "-w", "2"];
        args.extend(extra);
        args.extend(["--kill-after", "1s", "--", py.as_str(), "w.py"]);
        args.into_iter().map(str::to_owned).collect()
    };
    let args = exec("e.npy", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let w = Bg::spawn(d.cmd(&args).stderr(Stdio::piped()));
    assert!(wait_for(|| d.join("hung-once").exists()));
    kill(w.pid(), Signal::SIGINT).unwrap();
    let o = w.finish();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGINT),
        "{}",
        stderr(&o)
    );
    let seed = seed_in(&stderr(&o));
    assert!(!seed.is_empty(), "{}", stderr(&o));
    for (name, extra) in [
        ("e.npy", &["--resume"][..]),
        ("want.npy", &["--seed", &seed]),
    ] {
        let args = exec(name, extra);
        d.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    assert!(
        fs::read(d.join("e.npy")).unwrap() == fs::read(d.join("want.npy")).unwrap(),
        "resumed exec differs from an uninterrupted run with seed {seed}"
    );

    // apply --out, interrupted while worker 1 hangs, then resumed.
    d.ok(&[
        "fill", "x.npy", "--shape", "300,20", "--random", "uniform", "--seed", "9",
    ]);
    let apply = [
        "apply",
        "x.npy",
        "--expr",
        "x * 2 + n",
        "--out",
        "y.npy",
        "-w",
        "2",
    ];
    let w = Bg::spawn(
        d.cmd(&apply)
            .env("__MMRUN_TEST_WORKER_FAULT", "1:hang")
            .stderr(Stdio::piped()),
    );
    let journal = d.join(".y.npy.mmrun-journal");
    assert!(wait_for(|| journal.exists()));
    kill(w.pid(), Signal::SIGINT).unwrap();
    let o = w.finish();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&o.status),
        Some(libc::SIGINT),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("y.npy").exists());
    let mut resume = apply.to_vec();
    resume.push("--resume");
    d.ok(&resume);
    let mut want = apply.to_vec();
    want[5] = "z.npy";
    d.ok(&want);
    assert!(fs::read(d.join("y.npy")).unwrap() == fs::read(d.join("z.npy")).unwrap());
}
