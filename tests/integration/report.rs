//! What mmrun reports: the JSON run report (against its published schema),
//! per-worker records with real pids and outcomes, progress on a terminal
//! and not elsewhere, log levels and formats, and `mmrun bench`'s exports.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/run-report.schema.json");
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

/// Checks `doc` against the schema with Python's `jsonschema` when it is
/// installed, and always checks the required keys and worker outcome kinds.
fn check_against_schema(doc: &Value, dir: &Dir) {
    let schema = schema();
    for key in schema["required"].as_array().unwrap() {
        assert!(
            doc.get(key.as_str().unwrap()).is_some(),
            "report lacks {key}: {doc}"
        );
    }
    for w in doc["workers"].as_array().unwrap() {
        let kind = w["outcome"]["kind"].as_str().unwrap();
        assert!(
            [
                "exited",
                "signal",
                "interrupted",
                "timeout",
                "spawn_failed",
                "not_started"
            ]
            .contains(&kind),
            "{kind}"
        );
        for key in ["worker", "pid", "rows", "seconds", "usage"] {
            assert!(w.get(key).is_some(), "worker record lacks {key}: {w}");
        }
    }
    let Some(py) = numpy_python() else { return };
    let has_jsonschema = Command::new(&py)
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_jsonschema {
        missing_tool("report schema validation", "the Python jsonschema package");
        return;
    }
    fs::write(dir.join("doc.json"), doc.to_string()).unwrap();
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/run-report.schema.json");
    python(
        &py,
        dir.path(),
        &format!(
            "import json, jsonschema; jsonschema.validate(json.load(open('doc.json')), json.load(open({:?})))",
            schema_path.to_str().unwrap()
        ),
    );
}

#[test]
fn a_successful_run_reports_every_worker_with_its_pid() {
    let d = Dir::new();
    let out = d.ok(&[
        "fill", "a.npy", "--shape", "300,100", "--dtype", "f4", "--arange", "-w", "3", "--json",
    ]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["outcome"], "success");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["dtype"], "<f4");
    assert_eq!(doc["shape"], serde_json::json!([300, 100]));
    assert_eq!(
        doc["filesystem"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    let mut pids: Vec<i64> = workers.iter().map(|w| w["pid"].as_i64().unwrap()).collect();
    pids.dedup();
    assert_eq!(pids.len(), 3, "distinct real pids");
    assert!(pids.iter().all(|&p| p > 1));
    for w in workers {
        assert_eq!(
            w["outcome"],
            serde_json::json!({"kind": "exited", "code": 0})
        );
        assert!(w["usage"]["max_rss_kib"].as_i64().unwrap() > 0);
    }
    let rows: u64 = workers
        .iter()
        .map(|w| w["rows"]["end"].as_u64().unwrap() - w["rows"]["start"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 300);
    check_against_schema(&doc, &d);
    // The human summary goes to stderr, nothing else to stdout.
    assert!(stderr(&out).contains("wrote a.npy"));
}

#[test]
fn a_killed_worker_shows_a_signal_outcome_in_the_report_file() {
    let d = Dir::new();
    let out = d
        .cmd(&[
            "fill", "k.npy", "--shape", "300,100", "--arange", "-w", "3", "--report", "r.json",
        ])
        .env("__MMRUN_TEST_WORKER_FAULT", "1:kill")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let doc: Value = serde_json::from_str(&fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    assert_eq!(doc["outcome"], "failed");
    assert_eq!(doc["exit_code"], 1);
    assert!(doc["error"].as_str().unwrap().contains("SIGKILL"));
    let killed: Vec<&Value> = doc["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["outcome"]["kind"] == "signal")
        .collect();
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0]["worker"], 1);
    assert_eq!(killed[0]["outcome"]["name"], "KILL");
    assert_eq!(killed[0]["outcome"]["signal"], 9);
    assert_eq!(killed[0]["outcome"]["core_dumped"], false);
    check_against_schema(&doc, &d);
}

#[test]
fn a_report_path_that_cannot_be_created_fails_before_any_work() {
    let d = Dir::new();
    let out = d.run(&[
        "fill",
        "n.npy",
        "--shape",
        "10",
        "--value",
        "1",
        "--report",
        "missing/dir/r.json",
    ]);
    assert_refused(&out, 2, "report");
    assert!(!d.join("n.npy").exists());
    assert_eq!(d.names(), Vec::<String>::new());
}

#[test]
fn progress_is_drawn_on_a_terminal_and_not_into_a_file() {
    let d = Dir::new();
    if Command::new("script").arg("--version").output().is_err() {
        missing_tool("progress_is_drawn_on_a_terminal", "script (util-linux)");
        return;
    }
    // Under a pseudo-terminal: `--progress always` draws the bar (rows of
    // the total) on stderr.
    let cmd = format!(
        "{} fill t.npy --shape 2000,1000 --dtype f4 --random uniform --seed 1 -w 2 --progress always",
        mmrun_bin().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("/2000 rows"),
        "no progress bar on the terminal: {screen:?}"
    );
    // Into a file: no bar, no control characters.
    let out = d.ok(&[
        "fill",
        "u.npy",
        "--shape",
        "2000,1000",
        "--dtype",
        "f4",
        "--value",
        "1",
        "-w",
        "2",
    ]);
    let err = stderr(&out);
    assert!(
        !err.contains("rows  ") && !err.contains('\u{1b}'),
        "stderr is a pipe: {err:?}"
    );
}

#[test]
fn log_levels_and_json_log_lines() {
    let d = Dir::new();
    let out = d.ok(&[
        "fill",
        "l.npy",
        "--shape",
        "10",
        "--value",
        "1",
        "-w",
        "2",
        "-v",
        "--log-format",
        "json",
    ]);
    let lines: Vec<Value> = stderr(&out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect();
    assert!(!lines.is_empty(), "-v logs at info: {}", stderr(&out));
    assert!(lines.iter().all(|l| l.get("level").is_some()));
    let quiet = d
        .cmd(&["fill", "q.npy", "--shape", "10", "--value", "1", "-q"])
        .env("__MMRUN_TEST_WORKER_FAULT", "0:exit:3")
        .output()
        .unwrap();
    assert_eq!(code(&quiet), 1);
    assert!(!stderr(&quiet).contains("INFO") && !stderr(&quiet).contains("WARN"));
}

#[test]
fn bench_runs_and_exports_json_and_svg() {
    let d = Dir::new();
    let out = d.ok(&[
        "bench",
        "--size",
        "64MiB",
        "--workers",
        "1,2",
        "--repeat",
        "2",
        "--warmup",
        "0",
        "--dir",
        d.path().to_str().unwrap(),
        "--export-json",
        "b.json",
        "--export-csv",
        "b.csv",
        "--plot",
        "b.svg",
    ]);
    let doc: Value = serde_json::from_str(&fs::read_to_string(d.join("b.json")).unwrap()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    let cells = doc["cells"].as_array().unwrap();
    for line in [
        "anon-first-touch",
        "mmap-writer",
        "pwrite-stream",
        "pwrite",
        "hot-memset",
        "fill-value",
        "fill-uniform",
    ] {
        assert!(
            cells.iter().any(|c| c["line"] == line),
            "no {line} cell: {doc}"
        );
    }
    for c in cells {
        assert_eq!(c["samples"].as_array().unwrap().len(), 2, "{c}");
        assert!(c["gbps"].as_f64().unwrap() > 0.0);
        if c["kind"] == "mmrun" {
            // Fills are held against the same path written by hand.
            assert_eq!(c["reference"]["line"], "pwrite-stream");
        }
    }
    let svg = fs::read_to_string(d.join("b.svg")).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("<polyline"));
    let csv = fs::read_to_string(d.join("b.csv")).unwrap();
    assert!(csv.lines().count() >= 2);
    // The Markdown table goes to stdout; no scratch file is left behind.
    assert!(stdout(&out).contains("| Line"));
    let mut names = d.names();
    names.sort();
    assert_eq!(names, vec!["b.csv", "b.json", "b.svg"]);
    // --compare against itself.
    let out = d.ok(&[
        "bench",
        "--size",
        "4MiB",
        "--workers",
        "1",
        "--repeat",
        "1",
        "--warmup",
        "0",
        "--dir",
        d.path().to_str().unwrap(),
        "--compare",
        "b.json",
    ]);
    assert!(!stdout(&out).is_empty());
}
