//! Reliability with real processes and real signals: a worker SIGKILLed at a
//! chosen row, then `--resume` (new files, in place, `mmrun exec`); resume
//! refused for other parameters or another user, and trusting only durable
//! rows from another host or boot; SIGUSR1 and `--checkpoint-every`; SIGINT,
//! SIGTERM and SIGHUP at a chosen row, a Slurm-style SIGTERM to everything,
//! a SIGKILLed coordinator whose exec'd worker has a child; `--retries`,
//! `--fail-fast`, `--timeout`; planted symlinks; a file truncated under a
//! run; corrupted `.npy` headers (property test). Every finished file is
//! compared with an uninterrupted run and checked by `mmrun verify`; the
//! JSON reports are checked against `schema/run-report.schema.json`.
//!
//! `failure.rs` covers the plain cases (each fault kind, nothing published,
//! stale/busy refusals, orphans of an interrupted run); this module adds
//! resume and everything around it. Workers fail or stop through the
//! debug-build hook `__MMRUN_TEST_WORKER_FAULT=W:ACTION[@ROW]`. Races are
//! resolved by polling a condition (journal contents, `/proc`) with a
//! deadline, never by a fixed sleep.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, FileExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use proptest::prelude::*;
use serde_json::Value;

use crate::util::{all_pids, assert_refused, code, proc_stat, stderr, stdout, Dir};

/// The debug-build fault hook.
pub(crate) const HOOK: &str = "__MMRUN_TEST_WORKER_FAULT";
/// f4 rows of 4096 bytes (6 MiB): with `-w 3` workers own rows 0..512,
/// 512..1024 and 1024..1536, and a worker's 1 MiB blocks are 256 rows.
const SHAPE: &str = "1536,1024";
const ROW_BYTES: u64 = 4096;
/// Where the data of a page-header `.npy` starts.
const DATA_OFFSET: u64 = 4096;

// ------------------------------------------------------------ row sets --

/// Sorted, merged, non-empty half-open row intervals.
pub(crate) type Rows = Vec<(u64, u64)>;

pub(crate) fn norm(mut v: Rows) -> Rows {
    v.retain(|&(a, b)| a < b);
    v.sort_unstable();
    let mut out: Rows = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Whether `set` holds every row of `a..b`.
pub(crate) fn covers(set: &[(u64, u64)], a: u64, b: u64) -> bool {
    a >= b || set.iter().any(|&(x, y)| x <= a && b <= y)
}

/// Whether `set` holds any row of `a..b`.
fn intersects(set: &[(u64, u64)], a: u64, b: u64) -> bool {
    set.iter().any(|&(x, y)| x < b && a < y)
}

fn count(set: &[(u64, u64)]) -> u64 {
    set.iter().map(|&(a, b)| b - a).sum()
}

/// A `{"start":a,"end":b}` object.
fn range_of(r: &Value) -> (u64, u64) {
    (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap())
}

/// `{"start":a,"end":b}` objects into a row set.
fn ranges_of(v: &Value) -> Rows {
    norm(
        v.as_array()
            .map(|a| a.iter().map(range_of).collect())
            .unwrap_or_default(),
    )
}

// ------------------------------------------------------------- journal --

/// `.<name>.mmrun-journal` beside `target`.
pub(crate) fn journal_of(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap().to_string_lossy();
    target.with_file_name(format!(".{name}.mmrun-journal"))
}

/// `.<name>.mmrun-partial` beside `target`.
pub(crate) fn partial_of(target: &Path) -> PathBuf {
    let name = target.file_name().unwrap().to_string_lossy();
    target.with_file_name(format!(".{name}.mmrun-partial"))
}

/// What a journal file says, read the way a resume reads it (lines that do
/// not parse are skipped).
#[derive(Debug, Default)]
pub(crate) struct JournalView {
    /// Owner records, oldest first.
    pub owners: Vec<Value>,
    /// Rows of every "written" record.
    pub written: Rows,
    /// Rows of every "durable" record.
    pub durable: Rows,
    /// Number of "durable" lines.
    pub durable_lines: usize,
}

pub(crate) fn read_journal(path: &Path) -> Option<JournalView> {
    let text = fs::read_to_string(path).ok()?;
    let mut j = JournalView::default();
    let (mut w, mut d) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v.get("mmrun_journal").is_some() {
            j.owners.push(v);
        } else if let Some(r) = v.get("written") {
            w.extend(ranges_of(r));
        } else if let Some(r) = v.get("durable") {
            d.extend(ranges_of(r));
            j.durable_lines += 1;
        }
    }
    j.written = norm(w);
    j.durable = norm(d);
    Some(j)
}

/// Rewrites `field` of every owner record of a journal, keeping each line
/// valid JSON (as a journal copied from another machine or user would read).
fn rewrite_owner(journal: &Path, field: &str, value: Value) {
    let text = fs::read_to_string(journal).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(mut v) if v.get("mmrun_journal").is_some() => {
                assert!(
                    v.get(field).is_some(),
                    "owner record has no {field}: {line}"
                );
                v[field] = value.clone();
                out.push_str(&v.to_string());
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    fs::write(journal, out).unwrap();
}

// ----------------------------------------------------------- processes --

/// Whether `pid` runs (a zombie runs no code: it counts as gone).
pub(crate) fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(s, _, _)| s != 'Z' && s != 'X')
}

/// Live processes below `root` (children, their children, ...).
pub(crate) fn descendants(root: i32) -> Vec<i32> {
    let table: Vec<(i32, char, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| proc_stat(p).map(|(s, pp, _)| (p, s, pp)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, s, pp) in &table {
            if pp == p && s != 'Z' && s != 'X' {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Live direct children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| proc_stat(p).is_some_and(|(s, pp, _)| pp == pid && s != 'Z' && s != 'X'))
        .collect()
}

/// Live processes in any of the process groups `groups`.
pub(crate) fn live_in_groups(groups: &BTreeSet<i32>) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|&p| {
            proc_stat(p).is_some_and(|(s, _, g)| groups.contains(&g) && s != 'Z' && s != 'X')
        })
        .collect()
}

/// Polls until no process of `groups` and none of `pids` runs; panics
/// after `limit`. Returns how long it took.
pub(crate) fn wait_all_gone(
    limit: Duration,
    groups: &BTreeSet<i32>,
    pids: &BTreeSet<i32>,
) -> Duration {
    let t = Instant::now();
    let left = || -> Vec<i32> {
        let mut v = live_in_groups(groups);
        v.extend(pids.iter().copied().filter(|&p| alive(p)));
        v.sort_unstable();
        v.dedup();
        v
    };
    while !left().is_empty() {
        if t.elapsed() > limit {
            let l = left();
            for &p in &l {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            panic!("still running {limit:?} after their coordinator ended: {l:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed()
}

/// A coordinator running in the background. Every process seen below it
/// is remembered (with its process group) so a test can check that none
/// outlives it. SIGKILLed at drop if still running.
pub(crate) struct Bg {
    child: Option<Child>,
    pid: i32,
    /// Processes seen below the coordinator.
    pub seen: BTreeSet<i32>,
    /// Their process groups (other than the test's own).
    pub groups: BTreeSet<i32>,
}

impl Bg {
    pub(crate) fn start(mut cmd: Command) -> Bg {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mmrun");
        let pid = child.id() as i32;
        Bg {
            child: Some(child),
            pid,
            seen: BTreeSet::new(),
            groups: BTreeSet::new(),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Records the processes now below the coordinator.
    pub(crate) fn observe(&mut self) {
        let own = nix::unistd::getpgrp().as_raw();
        for p in descendants(self.pid) {
            if self.seen.insert(p) {
                if let Some((_, _, g)) = proc_stat(p) {
                    if g != own && g != self.pid {
                        self.groups.insert(g);
                    }
                }
            }
        }
    }

    /// Whether the coordinator has ended (reaps it if so).
    pub(crate) fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().unwrap().is_some())
    }

    /// Polls `cond` (observing processes meanwhile) until it holds; panics
    /// with the coordinator's output if it ends first or `limit` passes.
    pub(crate) fn wait_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut cond: impl FnMut(&Bg) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            self.observe();
            if cond(self) {
                return;
            }
            if self.exited() {
                let out = self.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "mmrun ended ({:?}) while waiting for {what}\nstdout: {}\nstderr: {}",
                    out.status,
                    stdout(&out),
                    stderr(&out)
                );
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).expect("signal the coordinator");
    }

    /// Waits (at most 30 s) for the coordinator to end; its output.
    pub(crate) fn wait(mut self) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.exited() {
            self.observe();
            if Instant::now() > deadline {
                let mut c = self.child.take().unwrap();
                let _ = c.kill();
                let _ = c.wait();
                panic!("mmrun did not end within 30 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.child.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for &p in &self.seen {
            if alive(p) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
}

// ------------------------------------------------------------- helpers --

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn args(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

/// Runs mmrun with the fault hook set to `fault`.
fn run_fault(d: &Dir, args: &[String], fault: &str) -> Output {
    d.cmd(&strs(args))
        .env(HOOK, fault)
        .output()
        .expect("run mmrun")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr: {}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Asserts two files are byte-identical, naming the first differing byte.
pub(crate) fn assert_same_file(a: &Path, b: &Path) {
    let x = fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    if x != y {
        let at = x.iter().zip(&y).position(|(p, q)| p != q);
        panic!(
            "{} ({} bytes) and {} ({} bytes) differ, first at byte {at:?}",
            a.display(),
            x.len(),
            b.display(),
            y.len()
        );
    }
}

/// `mmrun verify` must pass.
fn verify(d: &Dir, file: &str, what: &[&str]) {
    // verify refuses a file an interrupted run may have left half written
    // (its journal beside it): look at the rows of a copy instead.
    let copy = Dir::new();
    fs::copy(d.join(file), copy.join(file)).unwrap();
    let mut a = vec!["verify", file];
    a.extend_from_slice(what);
    copy.ok(&a);
}

/// This machine's boot id, as the journal records it.
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

/// The rows a run's report says worker attempts that succeeded / failed had.
fn worker_rows(rep: &Value, ok: bool) -> Rows {
    norm(
        rep["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| (w["outcome"]["kind"] == "exited" && w["outcome"]["code"] == 0) == ok)
            .map(|w| range_of(&w["rows"]))
            .collect(),
    )
}

/// Waits until the coordinator has one worker left (the one hanging at its
/// chosen row) and its journal records at least `rows` as written.
fn wait_for_hang(bg: &mut Bg, journal: &Path, rows: &[(u64, u64)]) {
    bg.wait_until(
        Duration::from_secs(15),
        &format!("one worker left hanging and {rows:?} recorded as written"),
        |bg| {
            children(bg.pid()).len() == 1
                && read_journal(journal)
                    .is_some_and(|j| rows.iter().all(|&(a, b)| covers(&j.written, a, b)))
        },
    );
}

// -------------------------------------------------------------- schema --

/// Validates a run report against `schema/run-report.schema.json`: always
/// with the small checker below (the keywords the schema uses), and also
/// with Python's `jsonschema` where a Python has it.
pub(crate) fn check_report(rep: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/run-report.schema.json");
    let schema: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let mut errs = Vec::new();
    schema_errors(rep, &schema, &schema, "$", &mut errs);
    assert!(
        errs.is_empty(),
        "report does not match the schema: {errs:#?}\n{rep:#}"
    );
    if let Some(py) = jsonschema_python() {
        let mut c = Command::new(py)
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 jsonschema.validate(json.load(sys.stdin), json.load(open(sys.argv[1])))",
            ])
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin
            .take()
            .unwrap()
            .write_all(rep.to_string().as_bytes())
            .unwrap();
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "jsonschema rejects the report: {}\n{rep:#}",
            stderr(&out)
        );
    }
}

/// A Python that imports `jsonschema`: `MMRUN_TEST_PYTHON`, the project's
/// `.venv`, or `python3`. Says once when there is none.
fn jsonschema_python() -> Option<&'static Path> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let mut c: Vec<PathBuf> = std::env::var_os("MMRUN_TEST_PYTHON")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        c.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
        c.push(PathBuf::from("python3"));
        let found = c.into_iter().find(|p| {
            Command::new(p)
                .args(["-c", "import jsonschema"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if found.is_none() {
            eprintln!(
                "NOTE: no Python with jsonschema (MMRUN_TEST_PYTHON, .venv, python3): \
                 reports are checked by the built-in schema checker only"
            );
        }
        found
    })
    .as_deref()
}

fn type_matches(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => panic!("schema type {t} unknown to the checker"),
    }
}

/// The JSON Schema keywords `run-report.schema.json` uses: `$ref` (local),
/// `const`, `enum`, `type`, `minimum`, `required`, `properties`, `items`,
/// `oneOf`.
fn schema_errors(v: &Value, s: &Value, root: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        return schema_errors(v, &root["$defs"][name], root, at, errs);
    }
    if let Some(c) = s.get("const") {
        if v != c {
            errs.push(format!("{at}: {v} is not {c}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errs.push(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(t) = s.get("type") {
        let ok = match t {
            Value::String(t) => type_matches(v, t),
            Value::Array(ts) => ts.iter().any(|t| type_matches(v, t.as_str().unwrap())),
            _ => true,
        };
        if !ok {
            errs.push(format!("{at}: {v} is not of type {t}"));
        }
    }
    if let (Some(m), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < m {
            errs.push(format!("{at}: {x} < minimum {m}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for k in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(k.as_str().unwrap()) {
                errs.push(format!("{at}: missing required {k}"));
            }
        }
        for (k, ps) in s
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(x) = obj.get(k) {
                schema_errors(x, ps, root, &format!("{at}.{k}"), errs);
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            schema_errors(x, items, root, &format!("{at}[{i}]"), errs);
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let n = one
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                schema_errors(v, o, root, at, &mut e);
                e.is_empty()
            })
            .count();
        if n != 1 {
            errs.push(format!("{at}: {v} matches {n} of oneOf, not exactly one"));
        }
    }
}

// ====================================================== worker killed ==

const UNIFORM5: [&str; 10] = [
    "--shape",
    SHAPE,
    "--dtype",
    "f4",
    "--random",
    "uniform",
    "--seed",
    "5",
    "--progress",
    "never",
];

/// `fill x.npy` with seed 5 (plus `extra`), as a command line.
fn uniform5(name: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec!["fill".to_string(), name.to_string()];
    v.extend(UNIFORM5.iter().map(|s| s.to_string()));
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Worker 1 of 3 SIGKILLs itself after its block ending at row 768 (rows
/// 512..1024 are its own): exit 1, nothing at the target, the journal
/// records exactly the finished blocks (all of workers 0 and 2, 512..768 of
/// worker 1). A plain rerun is refused (naming --resume and --force);
/// `--resume -w 2` redoes only 768..1024, and the file equals an
/// uninterrupted run.
fn killed_worker_then_resume(spawn: &str) {
    let d = Dir::new();
    // `--resume` without a journal just runs: the reference file.
    d.ok(&strs(&uniform5("ref.npy", &["-w", "1", "--resume"])));
    assert_eq!(d.names(), vec!["ref.npy"]);

    let out = run_fault(
        &d,
        &uniform5("x.npy", &["-w", "3", "--spawn", spawn, "--json"]),
        "1:kill@700",
    );
    assert_eq!(code(&out), 1, "stderr: {}", stderr(&out));
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(rep["outcome"], "failed");
    assert_eq!(rep["exit_code"], 1);
    let killed: Vec<&Value> = rep["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["outcome"]["kind"] == "signal")
        .collect();
    assert_eq!(killed.len(), 1, "{rep:#}");
    assert_eq!(killed[0]["outcome"]["name"], "KILL");
    assert_eq!(range_of(&killed[0]["rows"]), (512, 1024));
    assert!(!d.join("x.npy").exists(), "the target was published");

    let j = read_journal(&d.join(".x.npy.mmrun-journal")).expect("journal kept");
    assert!(d.join(".x.npy.mmrun-partial").exists(), "partial file gone");
    assert_eq!(j.owners.len(), 1);
    assert_eq!(j.owners[0]["uid"], nix::unistd::getuid().as_raw());
    assert_eq!(j.owners[0]["boot_id"], boot_id());
    assert_eq!(
        j.written,
        vec![(0, 768), (1024, 1536)],
        "written records must be exactly the finished blocks"
    );
    assert!(j.durable.is_empty(), "nothing was synced: {:?}", j.durable);

    let before = d.snapshot();
    let out = d.run(&strs(&uniform5("x.npy", &["-w", "3"])));
    assert_refused(&out, 2, "--resume");
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(d.snapshot(), before, "a refused run changed files");

    let out = d.ok(&strs(&uniform5(
        "x.npy",
        &["-w", "2", "--spawn", spawn, "--resume", "--json"],
    )));
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(rep["outcome"], "success");
    assert_eq!(rep["resumed_rows"], 1280);
    assert_eq!(
        ranges_of(&rep["plan"]["ranges"]),
        vec![(768, 1024)],
        "only the lost rows are redone"
    );
    assert_eq!(d.names(), vec!["ref.npy", "x.npy"]);
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
}

#[test]
fn killed_worker_then_resume_fork() {
    killed_worker_then_resume("fork");
}

#[test]
fn killed_worker_then_resume_exec_spawn() {
    killed_worker_then_resume("exec");
}

/// In place, whole file and `--rows`: a killed worker, then `--resume`
/// with another worker count; rows outside `--rows` keep their old values.
#[test]
fn killed_worker_in_place_then_resume() {
    let d = Dir::new();
    let normal9 = ["--random", "normal", "--seed", "9"];
    let mut r = args(
        &[
            "fill", "ref.npy", "--shape", SHAPE, "--dtype", "f4", "-w", "2",
        ],
        &normal9,
    );
    d.ok(&strs(&r));
    d.ok(&[
        "fill", "x.npy", "--shape", SHAPE, "--dtype", "f4", "--value", "1",
    ]);

    // Whole file: worker 2 (rows 1024..1536) dies after its first block.
    let run = args(&["fill", "x.npy", "-w", "3"], &normal9);
    let out = run_fault(&d, &run, "2:kill@1100");
    assert_refused(&out, 1, "KILL");
    let j = read_journal(&d.join(".x.npy.mmrun-journal")).expect("journal kept");
    assert_eq!(j.written, vec![(0, 1280)]);
    verify(&d, "x.npy", &["--rows", "1280:1536", "--value", "1"]);
    let before = d.snapshot();
    let out = d.run(&strs(&run));
    assert_refused(&out, 2, "--resume");
    assert_eq!(d.snapshot(), before);
    r = args(
        &["fill", "x.npy", "-w", "4", "--resume", "--json"],
        &normal9,
    );
    let rep = json_of(&d.ok(&strs(&r)));
    check_report(&rep);
    assert_eq!(rep["resumed_rows"], 1280);
    assert_eq!(rep["created"], false);
    assert_eq!(d.names(), vec!["ref.npy", "x.npy"]);
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
    verify(&d, "x.npy", &normal9);

    // --rows 100:1400: worker 0 (from row 100) dies after its first block.
    d.ok(&[
        "fill", "y.npy", "--shape", SHAPE, "--dtype", "f4", "--value", "1",
    ]);
    let run = ["fill", "y.npy", "--rows", "100:1400", "--arange"];
    let out = run_fault(&d, &args(&run, &["-w", "3", "--json"]), "0:kill@150");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let rep = json_of(&out);
    check_report(&rep);
    let j = read_journal(&d.join(".y.npy.mmrun-journal")).expect("journal kept");
    let mut want = worker_rows(&rep, true);
    want.push((100, 356));
    assert_eq!(j.written, norm(want), "report: {rep:#}");
    let out = d.ok(&strs(&args(&run, &["-w", "2", "--resume", "--json"])));
    let rep = json_of(&out);
    assert_eq!(rep["resumed_rows"].as_u64().unwrap(), count(&j.written));
    verify(&d, "y.npy", &["--rows", "100:1400", "--arange"]);
    verify(&d, "y.npy", &["--rows", "0:100", "--value", "1"]);
    verify(&d, "y.npy", &["--rows", "1400:1536", "--value", "1"]);
    assert_eq!(d.names(), vec!["ref.npy", "x.npy", "y.npy"]);
}

/// An exec'd worker: each writes the byte 7 over its rows with `dd`;
/// worker 1's first attempt scribbles 9s over half its rows and SIGKILLs
/// itself. Exec workers report no progress, so the journal holds exactly
/// the other workers' ranges and `--resume` redoes worker 1's whole range.
const EXEC_FILL: &str = r#"put() ( head -c $(($2 * 4096)) /dev/zero | tr '\000' "$1" | dd of="$MMRUN_FILE" bs=4096 seek=$((1 + $3)) conv=notrunc status=none )
n=$((MMRUN_ROW_END - MMRUN_ROW_START))
if [ "$MMRUN_WORKER" = 1 ] && mkdir "$1/died" 2>/dev/null; then
  put '\011' $((n / 2)) "$MMRUN_ROW_START"
  kill -KILL $$
fi
put '\007' "$n" "$MMRUN_ROW_START""#;

#[test]
fn killed_exec_worker_then_resume() {
    let d = Dir::new();
    let aux = Dir::new();
    let auxp = aux.path().to_string_lossy().into_owned();
    // u1 rows of 4096 bytes: row r is block 1 + r of the file.
    let base = [
        "exec",
        "x.npy",
        "--shape",
        "1024,4096",
        "--dtype",
        "u1",
        "--seed",
        "1",
        "--progress",
        "never",
    ];
    let tail = ["--", "sh", "-c", EXEC_FILL, "sh", &auxp];
    let cmd = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .chain(&tail)
            .map(|s| s.to_string())
            .collect()
    };
    let out = d.cmd(&strs(&cmd(&["-w", "3", "--json"]))).output().unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(aux.join("died").exists(), "worker 1 did not take its fault");
    let rep = json_of(&out);
    check_report(&rep);
    let failed = worker_rows(&rep, false);
    assert_eq!(failed.len(), 1, "{rep:#}");
    let (a, b) = failed[0];
    let j = read_journal(&d.join(".x.npy.mmrun-journal")).expect("journal kept");
    assert_eq!(
        j.written,
        worker_rows(&rep, true),
        "exec ranges are recorded whole"
    );
    assert!(!intersects(&j.written, a, b));
    assert!(!d.join("x.npy").exists());

    let out = d.ok(&strs(&cmd(&["-w", "2", "--resume", "--json"])));
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(rep["resumed_rows"].as_u64().unwrap(), 1024 - (b - a));
    assert_eq!(ranges_of(&rep["plan"]["ranges"]), vec![(a, b)]);
    assert_eq!(d.names(), vec!["x.npy"]);
    verify(&d, "x.npy", &["--value", "7"]);
}

// ============================================================ refusals ==

/// A resume whose parameters differ (seed, shape, dtype, fill kind, rows)
/// is refused naming the fingerprint; a journal owned by another uid is
/// refused; nothing changes either way. Another worker count is fine (see
/// the tests above).
#[test]
fn resume_refusals_change_nothing() {
    let d = Dir::new();
    let out = run_fault(&d, &uniform5("x.npy", &["-w", "3"]), "1:kill");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let before = d.snapshot();
    let fill = |extra: &[&str]| args(&["fill", "x.npy", "--resume", "-w", "3"], extra);
    for (what, cmd) in [
        (
            "seed",
            fill(&[
                "--shape", SHAPE, "--dtype", "f4", "--random", "uniform", "--seed", "6",
            ]),
        ),
        (
            "shape",
            fill(&[
                "--shape",
                "1537,1024",
                "--dtype",
                "f4",
                "--random",
                "uniform",
                "--seed",
                "5",
            ]),
        ),
        (
            "dtype",
            fill(&[
                "--shape", SHAPE, "--dtype", "f8", "--random", "uniform", "--seed", "5",
            ]),
        ),
        (
            "kind",
            fill(&[
                "--shape", SHAPE, "--dtype", "f4", "--random", "normal", "--seed", "5",
            ]),
        ),
        (
            "arange",
            fill(&["--shape", SHAPE, "--dtype", "f4", "--arange"]),
        ),
        (
            "value",
            fill(&["--shape", SHAPE, "--dtype", "f4", "--value", "0"]),
        ),
    ] {
        let out = d.run(&strs(&cmd));
        assert_eq!(code(&out), 2, "{what}: {}", stderr(&out));
        assert_refused(&out, 2, "fingerprint");
        assert_eq!(
            d.snapshot(),
            before,
            "{what}: a refused resume changed files"
        );
    }

    // The same job, but the journal belongs to uid 12345.
    rewrite_owner(&d.join(".x.npy.mmrun-journal"), "uid", Value::from(12345));
    let before = d.snapshot();
    let out = d.run(&strs(&uniform5("x.npy", &["-w", "3", "--resume"])));
    assert_refused(&out, 2, "uid");
    assert_eq!(d.snapshot(), before);

    // In place: other --rows.
    d.ok(&[
        "fill", "y.npy", "--shape", SHAPE, "--dtype", "f4", "--value", "1",
    ]);
    let out = run_fault(
        &d,
        &args(
            &[
                "fill", "y.npy", "--rows", "100:1400", "--value", "2", "-w", "3",
            ],
            &[],
        ),
        "1:kill",
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let before = d.snapshot();
    let out = d.run(&[
        "fill", "y.npy", "--rows", "0:1400", "--value", "2", "--resume",
    ]);
    assert_refused(&out, 2, "fingerprint");
    assert_eq!(d.snapshot(), before);
}

/// `mmrun exec` jobs hand workers their seed (`MMRUN_SEED`): resuming with
/// another seed would mix two streams in one file, so it must be refused
/// like any other parameter change.
#[test]
fn exec_resume_with_another_seed_is_refused() {
    let d = Dir::new();
    let job = |seed: &str, resume: bool| -> Vec<String> {
        let mut v = args(
            &[
                "exec", "x.npy", "--shape", "64,4096", "--dtype", "u1", "-w", "2", "--seed", seed,
            ],
            &[],
        );
        if resume {
            v.push("--resume".into());
        }
        v.extend(["--", "sh", "-c", "exit $MMRUN_WORKER"].map(String::from));
        v
    };
    let out = d.run(&strs(&job("1", false)));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let before = d.snapshot();
    let out = d.run(&strs(&job("2", true)));
    assert_refused(&out, 2, "fingerprint");
    assert_eq!(d.snapshot(), before);
}

/// `--force` with `--shape` rebuilds an existing file in a partial file,
/// and a worker dies. The same fill resumed in place (`--resume`, no
/// `--shape`) must not trust that journal's rows: they were written to the
/// partial file, not to the target. Either the resume is refused and
/// changes nothing, or it finishes the rebuild — never a successful exit
/// with old rows left in the target (and a partial file left behind).
#[test]
fn resume_in_place_never_adopts_a_rebuild_journal() {
    let d = Dir::new();
    d.ok(&[
        "fill", "x.npy", "--shape", SHAPE, "--dtype", "f4", "--value", "1",
    ]);
    let rebuild = args(
        &[
            "fill", "x.npy", "--shape", SHAPE, "--dtype", "f4", "--value", "2", "--force", "-w",
            "3",
        ],
        &[],
    );
    let out = run_fault(&d, &rebuild, "1:kill@700");
    assert_refused(&out, 1, "KILL");
    verify(&d, "x.npy", &["--value", "1"]);
    let before = d.snapshot();
    let out = d.run(&["fill", "x.npy", "--value", "2", "--resume", "-w", "2"]);
    match code(&out) {
        2 => assert_eq!(d.snapshot(), before, "a refused resume changed files"),
        0 => {
            let v = d.run(&["verify", "x.npy", "--value", "2"]);
            assert!(
                v.status.success(),
                "the in-place resume exited 0 but x.npy is not the fill: {}\n(it trusted rows the rebuild wrote to its partial file)",
                stderr(&v)
            );
            assert_eq!(d.names(), vec!["x.npy"], "leftovers");
        }
        c => panic!("exit {c}: {}", stderr(&out)),
    }
}

// ========================================================== durability ==

/// Whether `pid` ignores `sig` (`SigIgn` in `/proc/PID/status`).
fn ignores(pid: i32, sig: Signal) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig as i32 - 1)) != 0)
}

/// SIGUSR1 makes what is written durable: with worker 0 hanging, a
/// "durable" line covering every recorded row appears, and the run goes on
/// (until the test stops it). Sent as Slurm's `--signal=USR1` or
/// `scancel -s USR1` send it — to the coordinator and to every worker —
/// it does not kill the workers (they ignore it).
fn sigusr1_adds_a_durable_record(spawn: &str) {
    let d = Dir::new();
    let journal = d.join(".x.npy.mmrun-journal");
    let mut cmd = d.cmd(&strs(&uniform5("x.npy", &["-w", "3", "--spawn", spawn])));
    cmd.env(HOOK, "0:hang@100");
    let mut bg = Bg::start(cmd);
    let rows = vec![(0, 256), (512, 1536)];
    wait_for_hang(&mut bg, &journal, &rows);
    assert_eq!(
        read_journal(&journal).unwrap().durable_lines,
        0,
        "durable before any sync"
    );
    let worker = children(bg.pid())[0];
    assert!(
        ignores(worker, Signal::SIGUSR1),
        "worker {worker} would die of a step-wide SIGUSR1"
    );
    kill(Pid::from_raw(worker), Signal::SIGUSR1).unwrap();
    bg.signal(Signal::SIGUSR1);
    bg.wait_until(
        Duration::from_secs(10),
        "a durable record after SIGUSR1",
        |_| read_journal(&journal).is_some_and(|j| j.durable == rows),
    );
    assert!(!bg.exited(), "SIGUSR1 stopped the run");
    assert_eq!(
        children(bg.pid()),
        vec![worker],
        "SIGUSR1 stopped the hanging worker"
    );
    let out = bg.wait_after(Signal::SIGTERM);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", stderr(&out));
    let j = read_journal(&journal).unwrap();
    assert_eq!(j.durable_lines, 1, "one checkpoint, one durable line");
}

#[test]
fn sigusr1_adds_a_durable_record_fork() {
    sigusr1_adds_a_durable_record("fork");
}

#[test]
fn sigusr1_adds_a_durable_record_exec_spawn() {
    sigusr1_adds_a_durable_record("exec");
}

/// Finding 6: a checkpoint's sync ran inside the coordinator's loop, so
/// during a long writeback SIGTERM went unhandled and nothing was reaped.
/// The sync now runs in a helper process; `__MMRUN_TEST_SLOW_SYNC` makes
/// the helper create a marker and sleep before it syncs. SIGTERM while it
/// sleeps interrupts the run at once: the coordinator dies of SIGTERM, the
/// unfinished checkpoint writes no "durable" record, the journal and the
/// partial file stay, and `--resume` completes the reference bytes.
#[test]
fn sigterm_during_a_long_checkpoint_interrupts_the_run() {
    let d = Dir::new();
    d.ok(&strs(&uniform5("ref.npy", &["-w", "1"])));
    let journal = d.join(".x.npy.mmrun-journal");
    let syncing = d.join("syncing");
    let mut cmd = d.cmd(&strs(&uniform5("x.npy", &["-w", "3"])));
    cmd.env(HOOK, "0:hang@100")
        .env("__MMRUN_TEST_SLOW_SYNC", &syncing);
    let mut bg = Bg::start(cmd);
    wait_for_hang(&mut bg, &journal, &[(0, 256), (512, 1536)]);
    bg.signal(Signal::SIGUSR1);
    bg.wait_until(
        Duration::from_secs(15),
        "the checkpoint helper to start its sync",
        |bg| syncing.exists() && children(bg.pid()).len() == 2,
    );
    let out = bg.wait_after(Signal::SIGTERM);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(!d.join("x.npy").exists(), "the target was published");
    let j = read_journal(&journal).expect("journal kept");
    assert_eq!(j.durable_lines, 0, "durable rows from an unfinished sync");
    assert!(d.join(".x.npy.mmrun-partial").exists(), "partial file gone");

    d.ok(&strs(&uniform5("x.npy", &["-w", "2", "--resume"])));
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
}

/// Finding 6: a run whose workers finish while a checkpoint's helper is
/// still syncing does not wait for it: the helper is killed (the final
/// sync makes everything durable anyway) and the run publishes, exit 0.
/// The workers wait (`__MMRUN_TEST_WORKER_WAIT`) until the helper is known
/// to be running.
#[test]
fn a_run_that_ends_during_a_checkpoint_publishes() {
    let d = Dir::new();
    d.ok(&strs(&uniform5("ref.npy", &["-w", "1"])));
    let syncing = d.join("syncing");
    let gate = d.join("gate");
    let mut cmd = d.cmd(&strs(&uniform5(
        "x.npy",
        &["-w", "2", "--checkpoint-every", "0s"],
    )));
    cmd.env("__MMRUN_TEST_SLOW_SYNC", &syncing)
        .env("__MMRUN_TEST_WORKER_WAIT", &gate);
    let mut bg = Bg::start(cmd);
    bg.wait_until(
        Duration::from_secs(15),
        "the checkpoint helper to start its sync",
        |_| syncing.exists(),
    );
    fs::write(&gate, b"").unwrap();
    let out = bg.wait();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
}

impl Bg {
    /// Sends `sig` and waits for the coordinator to end.
    pub(crate) fn wait_after(self, sig: Signal) -> Output {
        self.signal(sig);
        self.wait()
    }
}

/// A resumed journal from another host (or an earlier boot) trusts only
/// durable rows. Run 1 (`--checkpoint-every 0s`, worker 0 of 2 hanging
/// after row 256) makes 0..256 and 768..1536 durable; run 2 resumes on this
/// machine without checkpoints and writes 256..512 (written, not durable)
/// before it is stopped. Those rows are then scribbled over and the owner
/// records made foreign: run 3 must redo 256..768 — the scribble is gone
/// and the file equals an uninterrupted run.
fn foreign_resume(field: &str, value: &str) {
    let d = Dir::new();
    d.ok(&strs(&uniform5("ref.npy", &["-w", "1"])));
    let journal = d.join(".x.npy.mmrun-journal");

    let mut c = d.cmd(&strs(&uniform5(
        "x.npy",
        &["-w", "2", "--checkpoint-every", "0s"],
    )));
    c.env(HOOK, "0:hang@100");
    let mut bg = Bg::start(c);
    bg.wait_until(
        Duration::from_secs(15),
        "0..256 and 768..1536 durable",
        |_| {
            read_journal(&journal)
                .is_some_and(|j| covers(&j.durable, 0, 256) && covers(&j.durable, 768, 1536))
        },
    );
    let out = bg.wait_after(Signal::SIGTERM);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", stderr(&out));

    let mut c = d.cmd(&strs(&uniform5("x.npy", &["-w", "1", "--resume"])));
    c.env(HOOK, "0:hang@300");
    let mut bg = Bg::start(c);
    wait_for_hang(&mut bg, &journal, &[(0, 512), (768, 1536)]);
    let out = bg.wait_after(Signal::SIGTERM);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", stderr(&out));

    let j = read_journal(&journal).unwrap();
    assert_eq!(j.owners.len(), 2);
    assert_eq!(j.durable, vec![(0, 256), (768, 1536)]);
    assert_eq!(j.written, vec![(0, 512), (768, 1536)]);
    let partial = fs::OpenOptions::new()
        .write(true)
        .open(d.join(".x.npy.mmrun-partial"))
        .unwrap();
    partial
        .write_all_at(
            &vec![0xff; (256 * ROW_BYTES) as usize],
            DATA_OFFSET + 256 * ROW_BYTES,
        )
        .unwrap();
    drop(partial);
    rewrite_owner(&journal, field, Value::from(value));

    let out = d.ok(&strs(&uniform5(
        "x.npy",
        &["-w", "3", "--resume", "--json"],
    )));
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(
        rep["resumed_rows"], 1024,
        "only durable rows may be trusted"
    );
    assert_eq!(ranges_of(&rep["plan"]["ranges"]), vec![(256, 768)]);
    assert_eq!(d.names(), vec!["ref.npy", "x.npy"]);
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
}

#[test]
fn resume_from_another_host_trusts_only_durable_rows() {
    foreign_resume("host", "elsewhere.example.org");
}

#[test]
fn resume_after_a_reboot_trusts_only_durable_rows() {
    foreign_resume("boot_id", "00000000-0000-4000-8000-000000000000");
}

// ============================================================= signals ==

/// `sig` reaches the coordinator while worker 0 hangs after row 256: it
/// dies of `sig`, no process of any worker group is left (the time it took
/// is printed), journal and partial stay, the unfinished rows are not
/// recorded, and `--resume` completes with the right bytes.
fn interrupted_at_a_row_then_resume(sig: Signal, spawn: &str) {
    let d = Dir::new();
    d.ok(&strs(&uniform5("ref.npy", &["-w", "2"])));
    let journal = d.join(".x.npy.mmrun-journal");
    let mut c = d.cmd(&strs(&uniform5("x.npy", &["-w", "3", "--spawn", spawn])));
    c.env(HOOK, "0:hang@100");
    let mut bg = Bg::start(c);
    wait_for_hang(&mut bg, &journal, &[(0, 256), (512, 1536)]);
    let (groups, seen) = (bg.groups.clone(), bg.seen.clone());
    assert!(!groups.is_empty(), "workers lead their own process groups");
    let t = Instant::now();
    let out = bg.wait_after(sig);
    let ended = t.elapsed();
    assert_eq!(
        out.status.signal(),
        Some(sig as i32),
        "want death by {sig}: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let gone = wait_all_gone(Duration::from_secs(15), &groups, &seen);
    eprintln!("{sig} ({spawn}): coordinator dead after {ended:?}, every worker process gone {gone:?} later");
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert_eq!(
        d.names(),
        vec![".x.npy.mmrun-journal", ".x.npy.mmrun-partial", "ref.npy"]
    );
    let j = read_journal(&journal).unwrap();
    assert_eq!(j.written, vec![(0, 256), (512, 1536)]);

    let rep = json_of(&d.ok(&strs(&uniform5(
        "x.npy",
        &["-w", "2", "--resume", "--json"],
    ))));
    assert_eq!(rep["resumed_rows"], 1280);
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
}

#[test]
fn sigint_at_a_row_then_resume() {
    interrupted_at_a_row_then_resume(Signal::SIGINT, "fork");
}

#[test]
fn sigterm_at_a_row_then_resume() {
    interrupted_at_a_row_then_resume(Signal::SIGTERM, "fork");
}

#[test]
fn sighup_at_a_row_then_resume() {
    interrupted_at_a_row_then_resume(Signal::SIGHUP, "fork");
}

#[test]
fn sigterm_at_a_row_then_resume_exec_spawn() {
    interrupted_at_a_row_then_resume(Signal::SIGTERM, "exec");
}

/// As Slurm's `scancel` or time limit does: SIGTERM to the coordinator's
/// process group and to every worker. The run is interrupted, not failed:
/// the coordinator dies of SIGTERM, the report says "interrupted" and no
/// worker attempt is reported as a failure of its own.
#[test]
fn sigterm_to_the_whole_job_is_interrupted_not_failed() {
    let d = Dir::new();
    let aux = Dir::new();
    let report = aux.join("report.json");
    let journal = d.join(".x.npy.mmrun-journal");
    let mut c = d.cmd(&strs(&uniform5(
        "x.npy",
        &["-w", "3", "--report", report.to_str().unwrap()],
    )));
    c.env(HOOK, "0:hang@100").process_group(0);
    let mut bg = Bg::start(c);
    wait_for_hang(&mut bg, &journal, &[(0, 256), (512, 1536)]);
    let (groups, seen) = (bg.groups.clone(), bg.seen.clone());
    let workers = children(bg.pid());
    killpg(Pid::from_raw(bg.pid()), Signal::SIGTERM).unwrap();
    for &p in &workers {
        let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
    }
    let out = bg.wait();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGTERM),
        "{:?}\n{}",
        out.status,
        stderr(&out)
    );
    wait_all_gone(Duration::from_secs(15), &groups, &seen);
    let rep: Value = serde_json::from_str(&fs::read_to_string(&report).unwrap()).unwrap();
    check_report(&rep);
    assert_eq!(rep["outcome"], "interrupted", "{rep:#}");
    for w in rep["workers"].as_array().unwrap() {
        let kind = &w["outcome"]["kind"];
        assert!(
            kind == "interrupted" || (kind == "exited" && w["outcome"]["code"] == 0),
            "a worker stopped by the job's SIGTERM counts as interrupted: {w}"
        );
    }
    assert!(!d.join("x.npy").exists());
    d.ok(&strs(&uniform5("x.npy", &["-w", "3", "--resume"])));
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
}

/// A SIGKILLed coordinator during `mmrun exec`: each worker has written its
/// rows and waits on a background child in its own process group. The
/// shims, the workers and their children are gone within a deadline, and
/// `--resume` (whose workers do not wait) completes.
#[test]
fn sigkilled_exec_coordinator_leaves_no_child_and_resumes() {
    let d = Dir::new();
    let aux = Dir::new();
    let auxp = aux.path().to_string_lossy().into_owned();
    let script = r#"head -c $(((MMRUN_ROW_END - MMRUN_ROW_START) * 4096)) /dev/zero | tr '\000' '\007' | dd of="$MMRUN_FILE" bs=4096 seek=$((1 + MMRUN_ROW_START)) conv=notrunc status=none
if [ ! -e "$1/resume" ]; then
  sleep 1000 & echo $! > "$1/c.$MMRUN_WORKER.tmp"; mv "$1/c.$MMRUN_WORKER.tmp" "$1/c.$MMRUN_WORKER"
  echo $$ > "$1/sh.$MMRUN_WORKER.tmp"; mv "$1/sh.$MMRUN_WORKER.tmp" "$1/sh.$MMRUN_WORKER"
  wait
fi"#;
    let cmd = |extra: &[&str]| -> Vec<String> {
        let base = [
            "exec", "x.npy", "--shape", "256,4096", "--dtype", "u1", "--seed", "1",
        ];
        base.iter()
            .chain(extra)
            .chain(&["--", "sh", "-c", script, "sh", &auxp])
            .map(|s| s.to_string())
            .collect()
    };
    let mut bg = Bg::start(d.cmd(&strs(&cmd(&["-w", "2"]))));
    let files = ["c.0", "c.1", "sh.0", "sh.1"];
    bg.wait_until(
        Duration::from_secs(20),
        "both workers and their children",
        |_| files.iter().all(|f| aux.join(f).exists()),
    );
    bg.observe();
    let named: BTreeSet<i32> = files
        .iter()
        .map(|f| {
            fs::read_to_string(aux.join(f))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(named.iter().all(|&p| alive(p)), "{named:?}");
    let mut pids = bg.seen.clone();
    pids.extend(&named);
    let groups = bg.groups.clone();
    let t = Instant::now();
    let out = bg.wait_after(Signal::SIGKILL);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    let took = wait_all_gone(Duration::from_secs(10), &groups, &pids);
    eprintln!(
        "SIGKILLed exec coordinator: shims, workers and children gone in {took:?} ({:?} in all)",
        t.elapsed()
    );
    assert!(d.join(".x.npy.mmrun-journal").exists() && d.join(".x.npy.mmrun-partial").exists());
    assert!(!d.join("x.npy").exists());

    fs::write(aux.join("resume"), "").unwrap();
    d.ok(&strs(&cmd(&["-w", "3", "--resume"])));
    assert_eq!(d.names(), vec!["x.npy"]);
    verify(&d, "x.npy", &["--value", "7"]);
}

// ============================================ retries, fail-fast, timeout ==

/// `--retries 1`: worker 1's first attempt SIGKILLs itself, the retry
/// succeeds; the report lists both attempts and the file is right.
#[test]
fn retries_recover_a_killed_worker() {
    let d = Dir::new();
    d.ok(&strs(&uniform5("ref.npy", &["-w", "1"])));
    let out = run_fault(
        &d,
        &uniform5("x.npy", &["-w", "3", "--retries", "1", "--json"]),
        "1:kill",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(rep["outcome"], "success");
    let attempts: Vec<&Value> = rep["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["rows"]["start"] == 512 && w["rows"]["end"] == 1024)
        .collect();
    assert_eq!(attempts.len(), 2, "{rep:#}");
    assert_eq!(attempts[0]["outcome"]["kind"], "signal");
    assert_eq!(attempts[0]["outcome"]["name"], "KILL");
    assert_eq!(
        attempts[1]["outcome"],
        serde_json::json!({"kind": "exited", "code": 0})
    );
    assert_ne!(attempts[0]["pid"], attempts[1]["pid"]);
    assert_eq!(rep["workers"].as_array().unwrap().len(), 4);
    assert_eq!(d.names(), vec!["ref.npy", "x.npy"]);
    assert_same_file(&d.join("x.npy"), &d.join("ref.npy"));
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
}

/// `--fail-fast`: worker 1 exits 7 while worker 0 would sleep 1000 s; the
/// run stops at once (well before the 10 s kill-after grace), exit 1, and
/// the report names the failure.
#[test]
fn fail_fast_stops_a_hanging_worker() {
    let d = Dir::new();
    let t = Instant::now();
    let out = d.run(&[
        "exec",
        "x.npy",
        "--shape",
        "30,4096",
        "--dtype",
        "u1",
        "-w",
        "3",
        "--fail-fast",
        "--json",
        "--",
        "sh",
        "-c",
        "case $MMRUN_WORKER in 0) exec sleep 1000;; 1) exit 7;; esac",
    ]);
    let took = t.elapsed();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(took < Duration::from_secs(8), "--fail-fast took {took:?}");
    eprintln!("--fail-fast: ended after {took:?}");
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(rep["outcome"], "failed");
    let ws = rep["workers"].as_array().unwrap();
    assert!(
        ws.iter().any(|w| w["worker"] == 1
            && w["outcome"] == serde_json::json!({"kind": "exited", "code": 7})),
        "{rep:#}"
    );
    let w0 = ws.iter().find(|w| w["worker"] == 0).unwrap();
    assert_ne!(
        w0["outcome"]["kind"], "exited",
        "worker 0 was stopped: {w0}"
    );
    assert!(rep["error"].as_str().unwrap().contains("code 7"), "{rep:#}");
    assert!(!d.join("x.npy").exists());
}

/// `--timeout 1s --kill-after 1s` with a hanging worker: exit 1 within a
/// few seconds, the worker's outcome is "timeout".
#[test]
fn timeout_stops_a_hanging_worker() {
    let d = Dir::new();
    let t = Instant::now();
    let out = run_fault(
        &d,
        &uniform5(
            "x.npy",
            &["-w", "3", "--timeout", "1s", "--kill-after", "1s", "--json"],
        ),
        "0:hang@100",
    );
    let took = t.elapsed();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(took < Duration::from_secs(10), "--timeout 1s took {took:?}");
    let rep = json_of(&out);
    check_report(&rep);
    assert_eq!(rep["outcome"], "failed");
    assert!(
        rep["error"].as_str().unwrap().contains("timed out"),
        "{rep:#}"
    );
    let w0 = rep["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["rows"]["start"] == 0)
        .unwrap();
    assert_eq!(w0["outcome"]["kind"], "timeout", "{w0}");
    assert_eq!(w0["outcome"]["seconds"], 1.0);
    assert!(!d.join("x.npy").exists());
    // What finished before the timeout is kept for --resume.
    d.ok(&strs(&uniform5("x.npy", &["-w", "2", "--resume"])));
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
}

// ============================================================ symlinks ==

/// A stale journal whose partial file was replaced by a symlink to another
/// file: `--resume` refuses to open it, `--force` removes the link without
/// following it; the symlink's target is untouched either way.
#[test]
fn planted_partial_symlink_is_never_followed() {
    let d = Dir::new();
    let aux = Dir::new();
    let victim = aux.join("victim.bin");
    fs::write(&victim, b"precious bytes").unwrap();
    let out = run_fault(&d, &uniform5("x.npy", &["-w", "3"]), "1:kill");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    fs::remove_file(d.join(".x.npy.mmrun-partial")).unwrap();
    symlink(&victim, d.join(".x.npy.mmrun-partial")).unwrap();

    let out = d.run(&strs(&uniform5("x.npy", &["-w", "3", "--resume"])));
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(fs::read(&victim).unwrap(), b"precious bytes");

    d.ok(&strs(&uniform5("x.npy", &["-w", "3", "--force"])));
    assert_eq!(fs::read(&victim).unwrap(), b"precious bytes");
    assert!(fs::symlink_metadata(&victim).unwrap().is_file());
    assert_eq!(d.names(), vec!["x.npy"]);
    verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);

    // Without a journal, a link at the partial name is not followed either.
    symlink(&victim, d.join(".y.npy.mmrun-partial")).unwrap();
    d.ok(&[
        "fill", "y.npy", "--shape", "8,1024", "--dtype", "f4", "--value", "3",
    ]);
    assert_eq!(fs::read(&victim).unwrap(), b"precious bytes");
    verify(&d, "y.npy", &["--value", "3"]);
}

/// A symlink planted at the journal name (to an existing file, or dangling
/// where a file would be created): every run, `--force` and `--resume`
/// included, is refused or does not follow it; the link's target stays as
/// it was and nothing is published.
#[test]
fn planted_journal_symlink_is_never_followed() {
    let d = Dir::new();
    let aux = Dir::new();
    let victim = aux.join("victim.txt");
    fs::write(&victim, b"precious bytes").unwrap();
    let absent = aux.join("absent.txt");
    let link = d.join(".x.npy.mmrun-journal");
    for (target, exists) in [(&victim, true), (&absent, false)] {
        let _ = fs::remove_file(&link);
        for extra in [&[][..], &["--force"], &["--resume"]] {
            if fs::symlink_metadata(&link).is_err() {
                symlink(target, &link).unwrap();
            }
            let mut a = uniform5("x.npy", &["-w", "2"]);
            a.extend(extra.iter().map(|s| s.to_string()));
            let out = d.run(&strs(&a));
            let c = code(&out);
            assert!(c == 0 || c == 2, "{extra:?}: exit {c}: {}", stderr(&out));
            if exists {
                assert_eq!(fs::read(&victim).unwrap(), b"precious bytes", "{extra:?}");
            } else {
                assert!(!absent.exists(), "{extra:?}: created the link's target");
            }
            if c == 0 {
                verify(&d, "x.npy", &["--random", "uniform", "--seed", "5"]);
                fs::remove_file(d.join("x.npy")).unwrap();
            }
            let names = d.names();
            assert!(
                names.is_empty() || names == [".x.npy.mmrun-journal"],
                "{extra:?}: leftovers {names:?}"
            );
        }
    }
    assert_eq!(aux.names(), vec!["victim.txt"]);
}

// ========================================================== truncation ==

/// Worker 0 hangs after row 256 (`--retries 1`); the test truncates the
/// partial file to `len` bytes and SIGKILLs worker 0; its retry then runs.
/// Returns the coordinator's output.
fn truncated_under_a_run(d: &Dir, len: u64) -> Output {
    let journal = d.join(".x.npy.mmrun-journal");
    let mut c = d.cmd(&strs(&uniform5("x.npy", &["-w", "3", "--retries", "1"])));
    c.env(HOOK, "0:hang@100");
    let mut bg = Bg::start(c);
    wait_for_hang(&mut bg, &journal, &[(0, 256), (512, 1536)]);
    fs::OpenOptions::new()
        .write(true)
        .open(d.join(".x.npy.mmrun-partial"))
        .unwrap()
        .set_len(len)
        .unwrap();
    let hung = children(bg.pid());
    assert_eq!(hung.len(), 1);
    kill(Pid::from_raw(hung[0]), Signal::SIGKILL).unwrap();
    bg.wait()
}

/// Cut inside rows already finished: the retry succeeds, but the file
/// changed size: exit 1, nothing published.
#[test]
fn file_truncated_during_a_run_is_not_published() {
    let d = Dir::new();
    let out = truncated_under_a_run(&d, DATA_OFFSET + 1024 * ROW_BYTES);
    assert_eq!(
        out.status.code(),
        Some(1),
        "want exit 1, not a signal: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    assert_refused(&out, 1, "changed size");
    assert!(!d.join("x.npy").exists(), "a truncated file was published");
    assert!(!stderr(&out).contains("core dumped"), "{}", stderr(&out));
}

/// Cut inside the retried worker's own rows: the worker notices (a fill checks
/// the file's length before each block; a mapped kernel would die of SIGBUS),
/// which is reported as an I/O error on its rows; the coordinator exits 1
/// (no SIGBUS of its own).
#[test]
fn file_truncated_under_a_worker_is_an_io_error() {
    let d = Dir::new();
    let out = truncated_under_a_run(&d, DATA_OFFSET + 300 * ROW_BYTES);
    assert_eq!(
        out.status.code(),
        Some(1),
        "want exit 1, not a signal: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    assert_refused(&out, 1, "I/O error on rows 0..512");
    assert!(!d.join("x.npy").exists(), "a truncated file was published");
}

// ====================================================== hostile headers ==

/// A `.npy` v1.0 file: magic, version, header length, `dict` padded with
/// spaces and a newline to a multiple of 64 bytes, then `data` zero bytes.
fn npy_v1(dict: &str, data: usize) -> Vec<u8> {
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.resize(v.len() + data, 0);
    v
}

const DESCRS: [&str; 12] = [
    "'<f4'",
    "'>f4'",
    "'|u1'",
    "'<i8'",
    "'|b1'",
    "'<f2'",
    "'|O'",
    "'<U3'",
    "'<c8'",
    "'V8'",
    "[('a', '<f4')]",
    "'<f4' + 'x'",
];
const FORTRAN: [&str; 4] = ["False", "True", "0", "None"];
const SHAPES: [&str; 10] = [
    "(3, 4)",
    "(0, 4)",
    "()",
    "(12,)",
    "(-1, 4)",
    "(99999999999, 99999999999)",
    "(18446744073709551615, 2)",
    "(3, 4, 1, 1)",
    "(3.0, 4)",
    "[3, 4]",
];

#[derive(Debug, Clone)]
enum Header {
    /// Arbitrary bytes.
    Random(Vec<u8>),
    /// A header built from parts, then bytes overwritten, the header
    /// length changed, the file cut short or extended.
    Mutated {
        descr: usize,
        fortran: usize,
        shape: usize,
        data: usize,
        set: Vec<(usize, u8)>,
        header_len: Option<u16>,
        cut: Option<usize>,
    },
}

impl Header {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Header::Random(b) => b.clone(),
            Header::Mutated {
                descr,
                fortran,
                shape,
                data,
                set,
                header_len,
                cut,
            } => {
                let dict = format!(
                    "{{'descr': {}, 'fortran_order': {}, 'shape': {}, }}",
                    DESCRS[*descr], FORTRAN[*fortran], SHAPES[*shape]
                );
                let mut v = npy_v1(&dict, *data);
                for &(at, b) in set {
                    if !v.is_empty() {
                        let n = v.len();
                        v[at % n] = b;
                    }
                }
                if let Some(l) = header_len {
                    v[8..10].copy_from_slice(&l.to_le_bytes());
                }
                if let Some(c) = cut {
                    v.truncate(*c);
                }
                v
            }
        }
    }
}

fn header_strategy() -> impl Strategy<Value = Header> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Header::Random),
        4 => (
            0..DESCRS.len(),
            0..FORTRAN.len(),
            0..SHAPES.len(),
            prop_oneof![Just(48usize), Just(0usize), 0usize..200],
            proptest::collection::vec((0usize..128, any::<u8>()), 0..3),
            proptest::option::weighted(0.2, any::<u16>()),
            proptest::option::weighted(0.2, 0usize..200),
        )
            .prop_map(|(descr, fortran, shape, data, set, header_len, cut)| Header::Mutated {
                descr,
                fortran,
                shape,
                data,
                set,
                header_len,
                cut,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random and mutated `.npy` headers: `mmrun info` and an in-place
    /// `mmrun fill --value 0` never crash (exit 0, 1 or 2, never a signal);
    /// a refused fill leaves the file and the directory as they were.
    #[test]
    fn hostile_headers_never_crash(h in header_strategy()) {
        let d = Dir::new();
        let bytes = h.bytes();
        fs::write(d.join("f.npy"), &bytes).unwrap();
        let info = d.run(&["info", "f.npy"]);
        prop_assert!(info.status.code().is_some_and(|c| c == 0 || c == 2),
            "info: {:?}\n{}", info.status, stderr(&info));
        let fill = d.run(&["fill", "f.npy", "--value", "0", "-w", "2"]);
        let c = fill.status.code();
        prop_assert!(matches!(c, Some(0..=2)), "fill: {:?}\n{}", fill.status, stderr(&fill));
        if c != Some(0) {
            prop_assert!(stderr(&fill).contains("mmrun: error:"), "{}", stderr(&fill));
            prop_assert_eq!(fs::read(d.join("f.npy")).unwrap(), bytes, "a refused fill changed the file");
            prop_assert_eq!(d.names(), vec!["f.npy".to_string()]);
        } else {
            prop_assert_eq!(fs::metadata(d.join("f.npy")).unwrap().len(), bytes.len() as u64);
            prop_assert_eq!(d.names(), vec!["f.npy".to_string()]);
        }
    }
}

/// Sanity of the generator: its unmutated header is one mmrun accepts.
#[test]
fn hostile_header_generator_starts_from_a_valid_file() {
    let d = Dir::new();
    fs::write(
        d.join("f.npy"),
        npy_v1(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
            48,
        ),
    )
    .unwrap();
    d.ok(&["fill", "f.npy", "--value", "2"]);
    verify(&d, "f.npy", &["--value", "2"]);
}
