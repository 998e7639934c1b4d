//! The library's one error type.
//!
//! Every error says what went wrong in one line, names the file it concerns,
//! and carries an [`ErrorKind`] that decides the process exit code. The kind
//! is chosen where the error is raised (only that code knows whether any work
//! had started), and [`Error::exit_code`] maps it through [`crate::exit_code`].

use std::any::Any;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::exit_code;

/// What class of failure an [`Error`] is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Refused before any work; nothing was modified (exit 2).
    Refused,
    /// The target is in use by another mmrun (exit 75).
    Busy,
    /// The run started and failed; nothing was published (exit 1).
    Failed,
    /// The coordinator received this signal and stopped the run.
    Interrupted(i32),
}

/// An mmrun error: a kind and a one-line message, plus the run's summary
/// when the run had got far enough to have one (for `--json` reports of
/// failed runs; [`Error::summary`], defined beside the summary's type in
/// [`crate::coordinator`], so that this module depends on nothing above
/// it).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    attachment: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("attachment", &self.attachment.is_some())
            .finish()
    }
}

/// Shorthand for results carrying an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            attachment: None,
        }
    }

    /// Refused before any work (exit 2).
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }

    /// Busy target (exit 75).
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, message)
    }

    /// A run that started and failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }

    /// An I/O error on `path` while doing `what`, refused before any work.
    pub fn io_refused(what: &str, path: &Path, err: impl fmt::Display) -> Self {
        Self::refused(format!("{what} {}: {err}", path.display()))
    }

    /// An I/O error on `path` while doing `what`, after work started.
    pub fn io_failed(what: &str, path: &Path, err: impl fmt::Display) -> Self {
        Self::failed(format!("{what} {}: {err}", path.display()))
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The process exit code this error maps to. Interrupted runs have none:
    /// the caller re-raises the signal; 128+N is given as a fallback.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Refused => exit_code::REFUSED,
            ErrorKind::Busy => exit_code::BUSY,
            ErrorKind::Failed => exit_code::RUN_FAILED,
            ErrorKind::Interrupted(sig) => 128 + sig,
        }
    }

    /// What the error carries besides its message, if `T`: the run's
    /// summary ([`Error::summary`]).
    pub(crate) fn attached<T: Any>(&self) -> Option<&T> {
        self.attachment.as_deref()?.downcast_ref()
    }

    /// The same error carrying `value`.
    pub(crate) fn attach<T: Any + Send + Sync>(mut self, value: T) -> Self {
        self.attachment = Some(Arc::new(value));
        self
    }

    /// The same error with `prefix: ` in front of its message.
    pub fn context(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
