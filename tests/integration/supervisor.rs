//! Process hygiene of the coordinator: when a signal may end a command and
//! what it decides, which descriptors workers get, how external programs are
//! stopped. Signals are delivered at exact steps through the
//! `__MMRUN_TEST_SIGNAL_AT` hook, never by timing.

use std::os::unix::process::ExitStatusExt;

use crate::util::*;

/// The JSON report of a run.
fn report(dir: &Dir, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("report written");
    serde_json::from_str(&text).expect("report is JSON")
}

/// Asserts a process exited (not killed by a signal) with `want`.
fn assert_exit(out: &std::process::Output, want: i32) {
    assert_eq!(
        out.status.signal(),
        None,
        "mmrun was killed by a signal; stderr: {}",
        stderr(out)
    );
    assert_eq!(code(out), want, "stderr: {}", stderr(out));
}

/// Found 1: a SIGTERM that arrives after the target is published used to
/// stay pending and kill the coordinator as it restored its mask: exit 143
/// for a complete file. Now the published run exits 0 and says when the
/// signal came.
#[test]
fn a_stop_signal_after_publishing_exits_0_and_is_reported() {
    let dir = Dir::new();
    let out = dir
        .cmd(&[
            "fill", "f.npy", "--shape", "64,16", "--dtype", "f8", "--value", "3", "-w", "2",
            "--report", "r.json",
        ])
        .env("__MMRUN_TEST_SIGNAL_AT", "published:TERM")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(dir.join("f.npy").exists());
    let r = report(&dir, "r.json");
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["signal_after_publish"]["name"], "TERM", "{r}");
    assert!(
        stderr(&out).contains("SIGTERM arrived after"),
        "{}",
        stderr(&out)
    );
}

/// Found 1: SIGUSR1 during `prepare` (before any signal was watched) killed
/// mmrun with the default disposition. Now it is taken as a checkpoint
/// request and the run completes.
#[test]
fn sigusr1_during_prepare_does_not_kill_a_run() {
    let dir = Dir::new();
    let out = dir
        .cmd(&[
            "fill", "f.npy", "--shape", "64,16", "--dtype", "f8", "--value", "3", "-w", "2",
        ])
        .env("__MMRUN_TEST_SIGNAL_AT", "prepare:USR1")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(dir.join("f.npy").exists());
}

/// Found 1: SIGTERM during `prepare` stops the run before any work: the
/// documented interrupt, and nothing is created.
#[test]
fn a_stop_signal_during_prepare_changes_nothing() {
    let dir = Dir::new();
    let out = dir
        .cmd(&[
            "fill", "f.npy", "--shape", "64,16", "--value", "3", "-w", "2",
        ])
        .env("__MMRUN_TEST_SIGNAL_AT", "prepare:TERM")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", stderr(&out));
    assert!(dir.names().is_empty(), "left behind: {:?}", dir.names());
}

/// A distributed rank (outside a launcher: Open MPI's variables by hand).
fn rank_cmd(dir: &Dir, args: &[&str], rank: u32, size: u32) -> std::process::Command {
    let mut c = dir.cmd(args);
    for (k, _) in std::env::vars() {
        if ["SLURM_", "OMPI_", "PMI_", "PMIX_"]
            .iter()
            .any(|p| k.starts_with(p))
        {
            c.env_remove(k);
        }
    }
    c.env("OMPI_COMM_WORLD_RANK", rank.to_string())
        .env("OMPI_COMM_WORLD_SIZE", size.to_string());
    c
}

/// Found 1: Slurm's `--signal=B:USR1@T` reaches every process of a step.
/// It killed a rank in its final sync and `mmrun commit` outright; now
/// both finish and the file is published.
#[test]
fn sigusr1_in_a_ranks_final_sync_and_in_commit_kills_nothing() {
    let dir = Dir::new();
    dir.ok(&[
        "create",
        "--pending",
        "d.npy",
        "--shape",
        "1024,64",
        "--dtype",
        "f8",
    ]);
    for rank in 0..2 {
        let out = rank_cmd(
            &dir,
            &["fill", "d.npy", "--distributed", "--value", "5", "-w", "2"],
            rank,
            2,
        )
        .env("__MMRUN_TEST_SIGNAL_AT", "rank-sync:USR1")
        .output()
        .unwrap();
        assert_exit(&out, 0);
    }
    let out = dir
        .cmd(&["commit", "d.npy"])
        .env("__MMRUN_TEST_SIGNAL_AT", "commit:USR1")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(dir.join("d.npy").exists());
}

/// Found 1: a SIGTERM while `commit` renames is handled like one after a
/// run publishes: the commit completes and exits 0.
#[test]
fn a_stop_signal_during_commit_completes_it() {
    let dir = Dir::new();
    dir.ok(&[
        "create",
        "--pending",
        "d.npy",
        "--shape",
        "8,4",
        "--dtype",
        "f8",
    ]);
    let out = rank_cmd(
        &dir,
        &["fill", "d.npy", "--distributed", "--value", "5"],
        0,
        1,
    )
    .output()
    .unwrap();
    assert_exit(&out, 0);
    let out = dir
        .cmd(&["commit", "d.npy"])
        .env("__MMRUN_TEST_SIGNAL_AT", "commit:TERM")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(dir.join("d.npy").exists());
}

/// Found 3: progress and result memfds were inherited without close-on-exec
/// (one per slot), so every worker held all of them. An external program
/// now holds exactly 0, 1, 2 and the progress region at 3.
#[test]
fn an_external_worker_holds_exactly_the_documented_descriptors() {
    let Some(py) = require_numpy("an_external_worker_holds_exactly_the_documented_descriptors")
    else {
        return;
    };
    let dir = Dir::new();
    let script = "import os\n\
        out = []\n\
        for fd in sorted(int(f) for f in os.listdir('/proc/self/fd')):\n\
        \x20   try:\n\
        \x20       target = os.readlink('/proc/self/fd/%d' % fd)\n\
        \x20   except OSError:\n\
        \x20       continue\n\
        \x20   if target.endswith('/fd'):\n\
        \x20       continue\n\
        \x20   out.append('%d %s' % (fd, target))\n\
        open('fds.' + os.environ['MMRUN_WORKER'], 'w').write('\\n'.join(out))\n";
    std::fs::write(dir.join("list.py"), script).unwrap();
    let pys = py.to_string_lossy().into_owned();
    dir.ok(&[
        "exec", "f.npy", "--shape", "8,4", "-w", "3", "--", &pys, "list.py",
    ]);
    for w in 0..3 {
        let text = std::fs::read_to_string(dir.join(&format!("fds.{w}"))).unwrap();
        let fds: Vec<(i32, &str)> = text
            .lines()
            .map(|l| {
                let (n, t) = l.split_once(' ').unwrap();
                (n.parse().unwrap(), t)
            })
            .collect();
        let numbers: Vec<i32> = fds.iter().map(|f| f.0).collect();
        assert_eq!(numbers, [0, 1, 2, 3], "worker {w} holds: {text}");
        assert_eq!(fds[0].1, "/dev/null", "{text}");
        assert!(fds[3].1.contains("memfd:mmrun-progress"), "{text}");
    }
}

/// Found 3: `ulimit -n 64; mmrun fill … -w 64` failed with "slots: Too
/// many open files" after the partial file existed. One progress region and
/// one failure region serve all slots now, so -w 256 runs in 64 descriptors.
#[test]
fn two_hundred_fifty_six_workers_run_within_64_descriptors() {
    let Some(py) = require_numpy("two_hundred_fifty_six_workers_run_within_64_descriptors") else {
        return;
    };
    let dir = Dir::new();
    let mmrun = mmrun_bin();
    let out = std::process::Command::new("sh")
        .current_dir(dir.path())
        .args([
            "-c",
            "ulimit -n 64 && exec \"$0\" fill f.npy --shape 256,1024 --value 3 -w 256",
            mmrun.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let got = python(
        &py,
        dir.path(),
        "import numpy as np; a = np.load('f.npy'); print(a.shape, bool((a == 3).all()))",
    );
    assert_eq!(got.trim(), "(256, 1024) True");
}

/// Found 5: on SIGTERM the shim SIGKILLed the program at once, so a Python
/// worker never got the promised TERM → `--kill-after` → KILL. Its TERM
/// handler (which takes a moment before it writes its marker) now runs to
/// the end. The worker itself sends SIGTERM to the coordinator once its
/// handler is installed, so nothing depends on timing.
#[test]
fn an_external_program_gets_term_and_its_grace() {
    let Some(py) = require_numpy("an_external_program_gets_term_and_its_grace") else {
        return;
    };
    let dir = Dir::new();
    let script = "import os, signal, time\n\
        def on_term(signo, frame):\n\
        \x20   time.sleep(0.5)\n\
        \x20   open('marker.' + os.environ['MMRUN_WORKER'], 'w').write('term')\n\
        \x20   os._exit(0)\n\
        signal.signal(signal.SIGTERM, on_term)\n\
        shim = os.getppid()\n\
        stat = open('/proc/%d/stat' % shim).read()\n\
        coordinator = int(stat[stat.rfind(')') + 2:].split()[1])\n\
        os.kill(coordinator, signal.SIGTERM)\n\
        while True:\n\
        \x20   signal.pause()\n";
    std::fs::write(dir.join("term.py"), script).unwrap();
    let pys = py.to_string_lossy().into_owned();
    let out = dir.run(&[
        "exec",
        "f.npy",
        "--shape",
        "8,4",
        "-w",
        "1",
        "--kill-after",
        "60s",
        "--",
        &pys,
        "term.py",
    ]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.join("marker.0"))
            .ok()
            .as_deref(),
        Some("term"),
        "the worker's TERM handler did not finish: {}",
        stderr(&out)
    );
    assert!(!dir.join("f.npy").exists());
}
