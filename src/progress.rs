//! Showing a run's progress: a bar on a terminal, a log line elsewhere.
//!
//! The coordinator's loop calls [`Progress::update`] about every 200 ms with
//! the rows done so far (read from the workers' counters). On a terminal one
//! `indicatif` bar is redrawn from that call — no ticker thread, because the
//! coordinator must stay single-threaded to fork safely. Off a terminal a
//! `tracing` info line is written every few seconds instead, which is what
//! batch logs want.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use indicatif::HumanBytes;

/// Whether to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else periodic log lines.
    Auto,
    /// A bar even when stderr is not a terminal.
    Always,
    /// Nothing (the library's default).
    #[default]
    Never,
}

/// Seconds between log lines off a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// A live progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
    log: bool,
    total_rows: u64,
    row_bytes: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    /// A display for a run of `total_rows` rows of `row_bytes` bytes.
    pub fn new(mode: ProgressMode, total_rows: u64, row_bytes: u64) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = match mode {
            ProgressMode::Always => Some(ProgressDrawTarget::stderr()),
            ProgressMode::Auto if tty => Some(ProgressDrawTarget::stderr()),
            _ => None,
        }
        .map(|target| {
            let bar = ProgressBar::with_draw_target(Some(total_rows), target);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} rows  {msg}  ETA {eta}")
                    .expect("valid template"),
            );
            bar
        });
        let now = Instant::now();
        Progress {
            log: bar.is_none() && mode == ProgressMode::Auto,
            bar,
            total_rows,
            row_bytes,
            started: now,
            last_log: now,
        }
    }

    /// Shows `rows_done` rows done, `running` workers running, `failed`
    /// tasks failed.
    pub fn update(&mut self, rows_done: u64, running: usize, failed: usize) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let bytes = rows_done.saturating_mul(self.row_bytes);
        let rate = bytes as f64 / secs / 1e9;
        let msg = format!(
            "{} {:.2} GB/s  {running} running{}",
            HumanBytes(bytes),
            rate,
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
        if let Some(bar) = &self.bar {
            bar.set_position(rows_done);
            bar.set_message(msg);
        } else if self.log && self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            tracing::info!("{rows_done}/{} rows, {msg}", self.total_rows);
        }
    }

    /// Removes the bar.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
