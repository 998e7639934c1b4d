//! Read-only runs: workers scan an existing file and hand back results
//! (a reduction across rows), and nothing on disk changes.
//!
//! A scan takes no journal: it writes nothing, so it needs no write
//! permission and cannot leave anything stale. It reads under the read
//! discipline of [`super::read`]: a file a run holds or left half written
//! is refused, and a file that changed while the workers read it fails the
//! scan instead of returning a result.

use std::fs::File;
use std::time::Instant;

use super::read::Reading;
use super::supervise::{self, Observer};
use super::{failure_error, RunSummary, Runner};
use crate::error::{Error, ErrorKind, Result};
use crate::kernels::Kernel;
use crate::layout::Layout;
use crate::os;
use crate::os::progress::ProgressRegion;
use crate::os::results::ResultSlots;
use crate::plan::{Plan, RowRange};
use crate::progress::Progress;
use crate::worker::WorkerTask;

/// What a scan gives back.
#[derive(Debug)]
pub struct Scanned {
    /// The run, as for any other run (the file read, plan, workers, phases).
    pub summary: RunSummary,
    /// Each task's result, in row order of the tasks.
    pub results: Vec<Vec<u8>>,
}

/// Shows progress; a scan records nothing.
struct ScanObserver {
    display: Progress,
}

impl Observer for ScanObserver {
    fn tick(&mut self, _: &[WorkerTask], done: &[u64], running: usize, failed: usize) {
        self.display.update(done.iter().sum(), running, failed);
    }
}

impl Runner {
    /// Runs the scanning kernel `make` returns for the target's layout over
    /// its rows (this rank's share of them under `--distributed`), reading
    /// the file only, and returns each task's result
    /// ([`Kernel::take_result`]). The target must exist; `--shape`,
    /// `--force`, `--resume` and syncing options do not apply.
    pub fn scan<F>(&self, make: F) -> Result<Scanned>
    where
        F: FnOnce(&Layout) -> Result<Box<dyn Kernel>>,
    {
        let t0 = Instant::now();
        let path = &self.target.path;
        let reading = Reading::start(path)?;
        let real = reading.real().to_path_buf();
        let mut file = File::open(&real).map_err(|e| Error::io_refused("cannot open", path, e))?;
        let layout = Layout::read(path, &mut file, self.target.raw.as_ref())?;
        layout.check_workable(path)?;
        let kernel = make(&layout)?;
        if !kernel.scans() {
            return Err(Error::refused("this kernel writes rows: use Runner::run"));
        }
        if self.spawn == super::Spawn::Exec {
            crate::kernels::check_rebuildable(kernel.as_ref())?;
        }
        self.check_spawnable(true, false)?;
        let requested = self.workers.resolve();
        if requested == 0 {
            return Err(Error::refused("--workers must be at least 1"));
        }
        let all = RowRange::new(0, layout.rows());
        let rows = match self.distributed {
            // Reading needs no alignment: balanced shares.
            Some(rank) => {
                let share = |k: u64| (all.end as u128 * k as u128 / rank.size as u128) as u64;
                RowRange::new(share(rank.rank), share(rank.rank + 1))
            }
            None => all,
        };
        let row_bytes = layout.row_bytes()?;
        let plan = self.schedule_plan(rows, requested, &layout, row_bytes);
        let dir = real.parent().unwrap_or(std::path::Path::new("."));
        let mut summary = RunSummary {
            path: path.clone(),
            layout: layout.clone(),
            created: false,
            rows,
            workers_requested: requested,
            plan: plan.clone(),
            workers: Vec::new(),
            prepare_s: 0.0,
            run_s: 0.0,
            flush_s: 0.0,
            bytes: rows.len() * row_bytes,
            dry_run: self.dry_run,
            reserved: "none",
            seed: None,
            filesystem: os::filesystem_type(dir),
            resumed_rows: 0,
            parameters: serde_json::json!({
                "workers": requested,
                "spawn": self.spawn,
                "schedule": self.schedule,
                "pin": self.pin,
                "align": self.align,
                "kernel": kernel.describe(),
                "distributed": self.distributed,
            }),
            results: serde_json::Value::Null,
            read_only: true,
            kernel_results: Vec::new(),
        };
        if self.dry_run {
            return Ok(Scanned {
                summary,
                results: Vec::new(),
            });
        }
        let ran = self.scan_tasks(
            &mut summary,
            &file,
            &real,
            &layout,
            kernel.as_ref(),
            &plan,
            t0,
        );
        let results = match ran {
            Ok(r) => r,
            Err(e) => return Err(e.with_summary(summary)),
        };
        // Only now is the result known to come from one version of the file.
        for r in self.reads.iter().chain([&reading]) {
            r.check().map_err(|e| e.with_summary(summary.clone()))?;
        }
        Ok(Scanned { summary, results })
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_tasks(
        &self,
        summary: &mut RunSummary,
        file: &File,
        real: &std::path::Path,
        layout: &Layout,
        kernel: &dyn Kernel,
        plan: &Plan,
        t0: Instant,
    ) -> Result<Vec<Vec<u8>>> {
        let mut watch = os::SignalWatch::new()
            .map_err(|e| Error::failed(format!("cannot watch signals: {e}")))?;
        let row_bytes = layout.row_bytes()?;
        if plan.ranges.is_empty() {
            summary.prepare_s = t0.elapsed().as_secs_f64();
            return Ok(Vec::new());
        }
        let concurrency = summary.workers_requested.min(plan.ranges.len()).max(1);
        let tasks: Vec<WorkerTask> = plan
            .ranges
            .iter()
            .enumerate()
            .map(|(i, &range)| WorkerTask {
                path: real.to_path_buf(),
                layout: layout.clone(),
                range,
                worker: i,
                workers: concurrency,
                seed: None,
                attempt: 0,
                stream_writeback: false,
                input: None,
                result_file: None,
            })
            .collect();
        let exe = self.resolved_worker_exe()?;
        let region = ProgressRegion::create(concurrency)
            .map_err(|e| Error::failed(format!("cannot create the progress region: {e}")))?;
        let slots = ResultSlots::create(concurrency)
            .map_err(|e| Error::failed(format!("cannot create the result slots: {e}")))?;
        let cfg = supervise::SpawnConfig {
            spawn: self.spawn,
            worker_exe: &exe,
            kill_after: self.kill_after,
            concurrency,
            retries: self.retries,
            timeout: self.timeout,
            fail_fast: self.fail_fast,
            progress: Some(&region),
            extra_env: Vec::new(),
            results: Some(&slots),
            pin: self.pin.then(os::allowed_cpus),
            zero_before_retry: None,
        };
        let mut observer = ScanObserver {
            display: Progress::new(self.progress, summary.rows.len(), row_bytes),
        };
        summary.prepare_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let sup = supervise::run_workers(
            &mut watch,
            file,
            &tasks,
            supervise::WorkKind::Kernel(kernel),
            &cfg,
            &mut observer,
        );
        observer.display.finish();
        let sup = sup?;
        summary.workers = sup.workers;
        summary.run_s = t1.elapsed().as_secs_f64();
        if let Some(sig) = sup.interrupted {
            return Err(Error::new(
                ErrorKind::Interrupted(sig),
                format!("interrupted by SIG{}: no result", os::signal_name(sig)),
            ));
        }
        if sup.task_ok.iter().any(|ok| !ok) {
            return Err(failure_error(summary, sup.timed_out, "no result"));
        }
        Ok(sup
            .results
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }
}
