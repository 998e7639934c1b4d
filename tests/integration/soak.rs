//! A bounded, seeded soak: random jobs (shapes, dtypes, raw or `.npy`, new
//! or in place with `--rows`, worker counts, spawn modes, static or dynamic
//! schedules, fill kinds), some
//! of whose runs lose a worker (`W:kill@ROW`) or their coordinator (SIGKILL
//! or SIGTERM at a random moment once the journal exists, sometimes while a
//! worker hangs); each job is then resumed (`--resume`, sometimes `--force`)
//! until it succeeds. Every final file is checked with `mmrun verify` and
//! compared byte for byte with an uninterrupted run, and no worker may
//! outlive a killed coordinator.
//!
//! `MMRUN_SOAK_SEED` replays a seed (the seed is printed first);
//! `MMRUN_SOAK_JOBS` sets the number of jobs (default 30) and
//! `MMRUN_SOAK_SECS` the time after which no new job starts (default 30).
//! The random pauses before a signal only vary its moment; what the test
//! waits for is always polled with a deadline.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::reliability::{assert_same_file, journal_of, partial_of, wait_all_gone, Bg, HOOK};
use crate::util::{stderr, Dir};

/// splitmix64: small, seedable, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

const DTYPES: [(&str, u64); 12] = [
    ("f4", 4),
    ("f8", 8),
    ("f2", 2),
    ("i1", 1),
    ("i2", 2),
    ("i4", 4),
    ("i8", 8),
    ("u1", 1),
    ("u2", 2),
    ("u4", 4),
    ("u8", 8),
    ("b1", 1),
];

/// One job: what it computes and where.
#[derive(Debug)]
struct Job {
    name: String,
    dtype: &'static str,
    shape: Vec<u64>,
    raw: bool,
    /// The fill: `--random uniform --seed S`, `--arange`, `--value V`, ...
    kind: Vec<String>,
    /// In place (the file is made first, all zeros), maybe on some rows.
    in_place: bool,
    rows: Option<(u64, u64)>,
    spawn: &'static str,
}

impl Job {
    fn random(rng: &mut Rng, i: usize) -> Job {
        let &(dtype, item) = rng.pick(&DTYPES);
        let float = dtype.starts_with('f');
        // Up to about 6 MiB of data, often several 1 MiB worker blocks.
        let bytes = (1u64 << (12 + rng.below(11))) + rng.below(1 << 20);
        let shape = match rng.below(10) {
            0 | 1 => vec![(bytes / item).max(1)],
            2 => {
                let a = 1 + rng.below(8);
                let b = 1 + rng.below(300);
                vec![(bytes / (a * b * item)).max(1), a, b]
            }
            _ => {
                let cols = *rng.pick(&[1, 3, 17, 100, 256, 1000, 1024, 4096]);
                vec![(bytes / (cols * item)).max(1), cols]
            }
        };
        let seed = rng.next() >> rng.below(64);
        let kind: Vec<String> = match rng.below(if float { 4 } else { 3 }) {
            0 => vec![
                "--random".into(),
                "uniform".into(),
                "--seed".into(),
                seed.to_string(),
            ],
            1 => vec!["--arange".into()],
            2 => {
                let v = match dtype {
                    "b1" => *rng.pick(&["0", "1", "true"]),
                    d if d.starts_with('f') => *rng.pick(&["0", "1.5", "-2", "inf"]),
                    d if d.starts_with('i') => *rng.pick(&["0", "7", "-3"]),
                    _ => *rng.pick(&["0", "7", "255"]),
                };
                vec!["--value".into(), v.into()]
            }
            _ => vec![
                "--random".into(),
                "normal".into(),
                "--seed".into(),
                seed.to_string(),
            ],
        };
        let raw = rng.chance(0.15);
        let in_place = rng.chance(0.25);
        let rows = (in_place && rng.chance(0.5)).then(|| {
            let n = shape[0];
            let a = rng.below(n);
            (a, a + 1 + rng.below(n - a))
        });
        Job {
            name: format!("j{i}.{}", if raw { "bin" } else { "npy" }),
            dtype,
            shape,
            raw,
            kind,
            in_place,
            rows,
            spawn: if rng.chance(0.2) { "exec" } else { "fork" },
        }
    }

    fn shape_arg(&self) -> String {
        self.shape
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `--raw --shape S --dtype D` for a raw file, `.npy` carries its own.
    fn layout_args(&self) -> Vec<String> {
        if self.raw {
            vec![
                "--raw".into(),
                "--shape".into(),
                self.shape_arg(),
                "--dtype".into(),
                self.dtype.into(),
            ]
        } else {
            Vec::new()
        }
    }

    /// Makes the all-zero file an in-place job starts from.
    fn prefill(&self, d: &Dir, name: &str) {
        let mut a = vec!["fill".to_string(), name.to_string()];
        a.extend([
            "--shape".into(),
            self.shape_arg(),
            "--dtype".into(),
            self.dtype.into(),
        ]);
        if self.raw {
            a.push("--raw".into());
        }
        a.extend([
            "--value".into(),
            "0".into(),
            "--progress".into(),
            "never".into(),
        ]);
        d.ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// The job's command line on file `name` with `workers` workers.
    fn args(&self, name: &str, workers: u64, extra: &[&str]) -> Vec<String> {
        let mut a = vec!["fill".to_string(), name.to_string()];
        if self.in_place {
            a.extend(self.layout_args());
            if self.raw {
                // --shape describes the existing raw file, not a new one.
                a.push("--in-place".into());
            }
            if let Some((s, e)) = self.rows {
                a.extend(["--rows".into(), format!("{s}:{e}")]);
            }
        } else {
            a.extend([
                "--shape".into(),
                self.shape_arg(),
                "--dtype".into(),
                self.dtype.into(),
            ]);
            if self.raw {
                a.push("--raw".into());
            }
        }
        a.extend(self.kind.iter().cloned());
        a.extend([
            "-w".into(),
            workers.to_string(),
            "--spawn".into(),
            self.spawn.into(),
        ]);
        a.extend(["--progress".into(), "never".into()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// `mmrun verify` of the finished file.
    fn verify(&self, d: &Dir, ctx: &str) {
        let check = |rows: Option<(u64, u64)>, what: &[String]| {
            let mut a = vec!["verify".to_string(), self.name.clone()];
            a.extend(self.layout_args());
            if let Some((s, e)) = rows {
                a.extend(["--rows".into(), format!("{s}:{e}")]);
            }
            a.extend(what.iter().cloned());
            let out = d.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
            assert!(
                out.status.success(),
                "{ctx}: mmrun {a:?}: {:?}\n{}",
                out.status,
                stderr(&out)
            );
        };
        check(self.rows, &self.kind);
        if let Some((s, e)) = self.rows {
            let zero = ["--value".to_string(), "0".to_string()];
            if s > 0 {
                check(Some((0, s)), &zero);
            }
            if e < self.shape[0] {
                check(Some((e, self.shape[0])), &zero);
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    jobs: u64,
    runs: u64,
    worker_kills: u64,
    coordinator_sigkills: u64,
    coordinator_sigterms: u64,
    finished_before_signal: u64,
    resumes: u64,
    forced: u64,
    resume_refused_after_sigkill: u64,
    stopped_before_work: u64,
    stray_journal_tmp: u64,
    dynamic: u64,
    in_place: u64,
    raw: u64,
    exec_spawn: u64,
}

/// What one run of a job ended with.
enum Ran {
    Done,
    Failed,
    /// Killed by SIGKILL (true) or SIGTERM (false).
    Signalled(bool),
    /// SIGTERM before any work ("nothing was changed"): a new run removed
    /// its journal and partial file, a resumed one kept the journal.
    StoppedBeforeWork,
    /// `--resume` refused after a SIGKILLed coordinator (its message): use
    /// `--force`.
    NeedsForce(String),
}

fn env_num(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

/// One run of `job` with a random disturbance (none from the third retry
/// on). `how` is `""`, `"--resume"` or `"--force"`.
#[allow(clippy::too_many_arguments)]
fn run_once(
    d: &Dir,
    job: &Job,
    rng: &mut Rng,
    attempt: u32,
    how: &str,
    after_sigkill: bool,
    n: &mut Counts,
    ctx: &str,
    log: &mut Vec<String>,
) -> Ran {
    let workers = 1 + rng.below(4);
    let rows = job.shape[0];
    let mut extra: Vec<String> = Vec::new();
    if !how.is_empty() {
        extra.push(how.into());
    }
    // Sometimes dynamic chunks (at most about 64 of them), claimed by free
    // worker slots; the fault hook then hits every chunk its slot starts.
    if rng.chance(0.3) {
        let chunk = (rows / (1 + rng.below(64))).max(1);
        n.dynamic += 1;
        extra.extend([
            "--schedule".into(),
            "dynamic".into(),
            "--chunk-rows".into(),
            chunk.to_string(),
        ]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let args = job.args(&job.name, workers, &extra);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let target = d.join(&job.name);
    let journal = journal_of(&target);
    // A coordinator SIGKILLed between creating its journal and finishing
    // its partial file (or between publishing and removing the journal)
    // leaves a journal `--resume` refuses, pointing to `--force`.
    let needs_force = |out: &std::process::Output| {
        after_sigkill
            && how == "--resume"
            && out.status.code() == Some(2)
            && stderr(out).contains("--force")
    };
    n.runs += 1;
    let disturb = if attempt >= 3 { 9 } else { rng.below(10) };
    match disturb {
        // A worker SIGKILLs itself, before work or after a block.
        0..=3 => {
            let w = rng.below(workers);
            let spec = if rng.chance(0.2) {
                format!("{w}:kill")
            } else {
                format!("{w}:kill@{}", rng.below(rows))
            };
            let out = d.cmd(&argv).env(HOOK, &spec).output().unwrap();
            log.push(format!("-w {workers} {how} {spec}: {:?}", out.status));
            match out.status.code() {
                Some(0) => Ran::Done,
                Some(2) if needs_force(&out) => Ran::NeedsForce(stderr(&out)),
                Some(1) => {
                    assert!(
                        stderr(&out).contains("SIGKILL"),
                        "{ctx}: {spec} {args:?}: {}",
                        stderr(&out)
                    );
                    n.worker_kills += 1;
                    Ran::Failed
                }
                _ => panic!("{ctx}: {spec} {args:?}: {:?}\n{}", out.status, stderr(&out)),
            }
        }
        // The coordinator is killed once its journal exists, sometimes
        // while a worker hangs.
        4..=6 => {
            let sig = if rng.chance(0.5) {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            let mut c = d.cmd(&argv);
            let mut what = format!("-w {workers} {how} {sig}");
            if rng.chance(0.6) {
                let spec = format!("{}:hang@{}", rng.below(workers), rng.below(rows));
                what.push_str(&format!(" {spec}"));
                c.env(HOOK, spec);
            }
            let mut bg = Bg::start(c);
            let deadline = Instant::now() + Duration::from_secs(20);
            while !journal.exists() && !bg.exited() {
                assert!(
                    Instant::now() < deadline,
                    "{ctx}: no journal after 20 s: {args:?}"
                );
                bg.observe();
                std::thread::sleep(Duration::from_millis(1));
            }
            // Vary the moment of the signal.
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
            bg.observe();
            if !bg.exited() {
                bg.signal(sig);
            }
            let (groups, seen) = (bg.groups.clone(), bg.seen.clone());
            let out = bg.wait();
            log.push(format!("{what}: {:?}", out.status));
            wait_all_gone(Duration::from_secs(10), &groups, &seen);
            match (out.status.code(), out.status.signal()) {
                (Some(2), _) if needs_force(&out) => Ran::NeedsForce(stderr(&out)),
                (Some(0), _) => {
                    n.finished_before_signal += 1;
                    Ran::Done
                }
                (_, Some(s)) if s == sig as i32 && stderr(&out).contains("before any work") => {
                    n.stopped_before_work += 1;
                    Ran::StoppedBeforeWork
                }
                (_, Some(s)) if s == sig as i32 => {
                    if sig == Signal::SIGKILL {
                        n.coordinator_sigkills += 1;
                    } else {
                        n.coordinator_sigterms += 1;
                    }
                    Ran::Signalled(sig == Signal::SIGKILL)
                }
                _ => panic!("{ctx}: {sig} {args:?}: {:?}\n{}", out.status, stderr(&out)),
            }
        }
        _ => {
            let out = d.cmd(&argv).output().unwrap();
            log.push(format!("-w {workers} {how}: {:?}", out.status));
            match out.status.code() {
                Some(0) => Ran::Done,
                Some(2) if needs_force(&out) => Ran::NeedsForce(stderr(&out)),
                _ => panic!("{ctx}: {args:?}: {:?}\n{}", out.status, stderr(&out)),
            }
        }
    }
}

#[test]
fn soak_random_jobs_with_kills_and_resume() {
    let seed = env_num("MMRUN_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let jobs = env_num("MMRUN_SOAK_JOBS").unwrap_or(30);
    let secs = env_num("MMRUN_SOAK_SECS").unwrap_or(30);
    eprintln!(
        "soak: seed {seed} (MMRUN_SOAK_SEED={seed} replays it), {jobs} jobs, {secs} s budget"
    );
    let mut rng = Rng(seed);
    let mut n = Counts::default();
    let mut notes: Vec<String> = Vec::new();
    let t0 = Instant::now();
    let d = Dir::new();
    let reference = Dir::new();
    for i in 0..jobs as usize {
        if t0.elapsed() > Duration::from_secs(secs) {
            eprintln!("soak: time budget reached after {i} jobs");
            break;
        }
        let job = Job::random(&mut rng, i);
        let ctx = format!("soak seed {seed} job {i} ({job:?})");
        n.jobs += 1;
        n.in_place += job.in_place as u64;
        n.raw += job.raw as u64;
        n.exec_spawn += (job.spawn == "exec") as u64;

        // The uninterrupted run to compare with.
        if job.in_place {
            job.prefill(&reference, &job.name);
            job.prefill(&d, &job.name);
        }
        let ref_args = job.args(&job.name, 1, &[]);
        reference.ok(&ref_args.iter().map(String::as_str).collect::<Vec<_>>());

        let target = d.join(&job.name);
        let journal = journal_of(&target);
        let mut how = "";
        let mut attempt = 0;
        let mut after_sigkill = false;
        let mut log = Vec::new();
        loop {
            assert!(attempt < 8, "{ctx}: not done after 8 runs: {log:#?}");
            let ran = run_once(
                &d,
                &job,
                &mut rng,
                attempt,
                how,
                after_sigkill,
                &mut n,
                &ctx,
                &mut log,
            );
            after_sigkill = matches!(ran, Ran::Signalled(true));
            match ran {
                Ran::Done => break,
                // SIGTERM (or SIGKILL) landing after the publish: done.
                Ran::Signalled(_) if !journal.exists() && target.exists() => {
                    n.finished_before_signal += 1;
                    break;
                }
                Ran::StoppedBeforeWork => how = if journal.exists() { "--resume" } else { "" },
                Ran::Failed | Ran::Signalled(_) => {
                    assert!(journal.exists(), "{ctx}: an unfinished run left no journal");
                    // A raw file in place needs --shape, and --shape with
                    // --force rebuilds the file in a partial file instead of
                    // working in place: a later in-place --resume is then
                    // another job (see reliability::
                    // resume_in_place_never_adopts_a_rebuild_journal). Such
                    // jobs are only resumed.
                    let force_ok = !(job.raw && job.in_place);
                    how = if force_ok && rng.chance(0.2) {
                        "--force"
                    } else {
                        "--resume"
                    };
                }
                Ran::NeedsForce(err) => {
                    n.resume_refused_after_sigkill += 1;
                    notes.push(format!(
                        "{ctx}: --resume refused after a SIGKILL ({}); --force used",
                        err.trim()
                    ));
                    how = "--force";
                }
            }
            match how {
                "--resume" => n.resumes += 1,
                "--force" => n.forced += 1,
                _ => {}
            }
            attempt += 1;
        }
        // A coordinator SIGKILLed while creating its journal leaves its
        // private `.NAME.mmrun-journal.PID.tmp`: noted, then removed.
        let stray = format!(".{}.mmrun-journal.", job.name);
        for name in d.names() {
            if name.starts_with(&stray) && name.ends_with(".tmp") && n.coordinator_sigkills > 0 {
                n.stray_journal_tmp += 1;
                notes.push(format!(
                    "{ctx}: stray {name} left by a SIGKILLed coordinator"
                ));
                fs::remove_file(d.join(&name)).unwrap();
            }
        }
        let names = d.names();
        assert_eq!(
            names,
            vec![job.name.clone()],
            "{ctx}: leftovers after {log:#?}"
        );
        let ctx = format!("{ctx} after runs {log:?}");
        job.verify(&d, &ctx);
        assert_same_file(&target, &reference.join(&job.name));
        assert!(!partial_of(&target).exists());
        fs::remove_file(&target).unwrap();
        fs::remove_file(reference.join(&job.name)).unwrap();
    }
    for note in &notes {
        eprintln!("soak note: {note}");
    }
    eprintln!(
        "soak: seed {seed}: {} jobs, {} runs, {} worker kills, {} coordinator SIGKILLs, {} coordinator SIGTERMs, \
         {} finished before the signal, {} stopped before any work, {} resumes, \
         {} forced reruns ({} after a refused resume), {} stray journal temp files, {} in place, {} raw, \
         {} exec-spawned, {} runs with dynamic chunks; {:.1} s",
        n.jobs,
        n.runs,
        n.worker_kills,
        n.coordinator_sigkills,
        n.coordinator_sigterms,
        n.finished_before_signal,
        n.stopped_before_work,
        n.resumes,
        n.forced,
        n.resume_refused_after_sigkill,
        n.stray_journal_tmp,
        n.in_place,
        n.raw,
        n.exec_spawn,
        n.dynamic,
        t0.elapsed().as_secs_f64()
    );
}
