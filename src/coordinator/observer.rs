//! The journal observer: while workers run, records the rows they wrote
//! in the journal, makes them durable on SIGUSR1 or `--checkpoint-every`
//! (a sync in a helper process), and shows progress.

use std::fs::File;
use std::time::{Duration, Instant};

use super::{supervise, RunSummary, Runner};
use crate::error::Error;
use crate::journal::Journal;
use crate::os;
use crate::plan::{RowRange, RowSet};
use crate::progress::Progress;
use crate::worker::WorkerTask;

/// The coordinator's observer: records written rows in the journal, makes
/// them durable on SIGUSR1 or `--checkpoint-every`, and shows progress.
///
/// A checkpoint's sync runs in a helper process ([`os::spawn_sync`]), so
/// the loop goes on reaping workers and handling signals during a long
/// writeback; the rows recorded when the helper started are written as
/// "durable" once it exited 0. The helper is killed when the run ends first.
pub(super) struct RunObserver<'a> {
    journal: &'a mut Journal,
    file: &'a File,
    recorded: RowSet,
    durable: RowSet,
    last_record: Instant,
    last_checkpoint: Instant,
    checkpoint_every: Option<Duration>,
    display: Progress,
    error: Option<Error>,
    pending: Option<(Vec<RowRange>, u64)>,
    /// The running checkpoint helper and the rows it makes durable.
    syncing: Option<(nix::unistd::Pid, RowSet)>,
    /// A checkpoint was asked for while one ran: start another after it.
    checkpoint_again: bool,
    /// Record only whole finished ranges: external programs are retried and
    /// resumed by whole worker ranges, whatever progress they report.
    pub(super) whole_ranges: bool,
}

/// How often "written" records are appended at most.
pub(super) const RECORD_EVERY: Duration = Duration::from_millis(500);

impl<'a> RunObserver<'a> {
    pub(super) fn new(
        journal: &'a mut Journal,
        file: &'a File,
        trusted: RowSet,
        runner: &Runner,
        summary: &RunSummary,
        row_bytes: u64,
    ) -> Self {
        let now = Instant::now();
        RunObserver {
            journal,
            file,
            durable: trusted.clone(),
            recorded: trusted,
            last_record: now,
            last_checkpoint: now,
            checkpoint_every: runner.checkpoint_every,
            display: Progress::new(runner.progress, summary.bytes / row_bytes.max(1), row_bytes),
            error: None,
            pending: None,
            syncing: None,
            checkpoint_again: false,
            whole_ranges: false,
        }
    }

    /// Appends a "written" record for rows done and not yet recorded.
    pub(super) fn record(&mut self, force: bool) {
        let Some((ranges, _)) = self.pending.take() else {
            return;
        };
        if !force && self.last_record.elapsed() < RECORD_EVERY {
            self.pending = Some((ranges, 0));
            return;
        }
        let mut new = Vec::new();
        for r in ranges {
            for gap in self.recorded.missing(r) {
                new.push(gap);
            }
        }
        if new.is_empty() {
            return;
        }
        if let Err(e) = self.journal.record_written(&new) {
            self.error.get_or_insert(e);
            return;
        }
        new.into_iter().for_each(|r| self.recorded.insert(r));
        self.last_record = Instant::now();
    }

    /// Records what is left and returns the first journal error, if any.
    pub(super) fn finish(mut self) -> Option<Error> {
        self.record(true);
        self.poll_sync();
        self.stop_sync();
        self.display.finish();
        self.error.take()
    }

    /// Writes the "durable" records of a checkpoint helper that has exited.
    fn poll_sync(&mut self) {
        let Some((pid, _)) = &self.syncing else {
            return;
        };
        let exit = match os::reap(*pid) {
            Ok(None) => return,
            Ok(Some((exit, _))) => exit,
            Err(e) => {
                self.syncing = None;
                self.error
                    .get_or_insert(Error::failed(format!("checkpoint sync: wait4: {e}")));
                return;
            }
        };
        let (_, covered) = self.syncing.take().expect("checked above");
        if exit != os::Exit::Code(0) {
            self.error
                .get_or_insert(Error::failed(format!("checkpoint sync failed ({exit:?})")));
            return;
        }
        let new: Vec<RowRange> = covered
            .ranges()
            .iter()
            .flat_map(|&r| self.durable.missing(r))
            .collect();
        match self.journal.record_durable(&new) {
            Ok(()) => {
                new.into_iter().for_each(|r| self.durable.insert(r));
                tracing::info!("checkpoint: {} rows durable", self.durable.len());
            }
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        if std::mem::take(&mut self.checkpoint_again) {
            supervise::Observer::checkpoint(self);
        }
    }

    /// Kills and reaps a checkpoint helper still running.
    fn stop_sync(&mut self) {
        if let Some((pid, _)) = self.syncing.take() {
            os::kill_and_reap(pid);
        }
    }
}

impl Drop for RunObserver<'_> {
    fn drop(&mut self) {
        self.stop_sync();
    }
}

impl supervise::Observer for RunObserver<'_> {
    fn tick(&mut self, tasks: &[WorkerTask], done: &[u64], running: usize, failed: usize) {
        self.poll_sync();
        let ranges: Vec<RowRange> = tasks
            .iter()
            .zip(done)
            .filter(|(t, &d)| d > 0 && (!self.whole_ranges || d == t.range.len()))
            .map(|(t, &d)| RowRange::new(t.range.start, t.range.start + d))
            .collect();
        let total: u64 = done.iter().sum();
        self.pending = Some((ranges, total));
        self.record(false);
        self.display.update(
            self.durable.len().max(self.recorded.len()).max(total),
            running,
            failed,
        );
        if self
            .checkpoint_every
            .is_some_and(|d| self.last_checkpoint.elapsed() >= d)
        {
            self.checkpoint();
        }
    }

    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if self.syncing.is_some() {
            self.checkpoint_again = true;
            return;
        }
        self.record(true);
        match os::spawn_sync(std::os::fd::AsFd::as_fd(self.file)) {
            Ok(pid) => self.syncing = Some((pid, self.recorded.clone())),
            Err(e) => {
                self.error
                    .get_or_insert(Error::failed(format!("checkpoint sync failed: {e}")));
            }
        }
    }
}
