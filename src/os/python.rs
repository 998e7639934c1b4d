//! What the Python extension (`--features python`, [`crate::python`])
//! needs from the interpreter's C API and from the OS: NumPy-ready views
//! of a worker's rows, the interpreter's own after-fork reset in a forked
//! worker, and signal forwarding while a caller with other threads runs a
//! job.
//!
//! Everything `unsafe` about the extension lives here.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use pyo3::ffi;
use pyo3::prelude::*;

/// `PyBUF_READ` / `PyBUF_WRITE` of CPython's `memoryobject.h` (stable ABI
/// values; pyo3 exports them only for full-API builds).
const PYBUF_READ: c_int = 0x100;
const PYBUF_WRITE: c_int = 0x200;

/// A writable `memoryview` over `bytes` (a worker's block of rows), for
/// `np.frombuffer`. The view does not own the memory: it must not be used
/// after the block is gone. Worker blocks are parts of the file's mapping
/// (or of a buffer the worker keeps for its whole life), and a worker
/// process leaves through `_exit` after its last block, so a view kept by
/// user code past its call still points at mapped memory.
pub fn memoryview_mut<'py>(py: Python<'py>, bytes: &mut [u8]) -> PyResult<Bound<'py, PyAny>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("block too large"))?;
    // SAFETY: the pointer and length describe `bytes`, a live, writable
    // allocation; the GIL is held (`py`). `PyMemoryView_FromMemory` returns
    // a new reference, or null with an exception set, which
    // `from_owned_ptr_or_err` turns into `Err`.
    unsafe {
        let view = ffi::PyMemoryView_FromMemory(bytes.as_mut_ptr().cast(), len, PYBUF_WRITE);
        Bound::from_owned_ptr_or_err(py, view)
    }
}

/// A read-only `memoryview` over `bytes` (the same rows of an input file).
/// The same lifetime rules as [`memoryview_mut`] apply.
pub fn memoryview<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("block too large"))?;
    // SAFETY: as in `memoryview_mut`; `PyBUF_READ` makes the view
    // read-only, so Python never writes through the shared pointer.
    unsafe {
        let view = ffi::PyMemoryView_FromMemory(bytes.as_ptr().cast_mut().cast(), len, PYBUF_READ);
        Bound::from_owned_ptr_or_err(py, view)
    }
}

/// What `os.fork()` does in its child, for a worker forked by mmrun from
/// a Python caller: the interpreter forgets the caller's other threads,
/// re-creates its locks and runs `os.register_at_fork(after_in_child=...)`
/// hooks. Call once, first thing in the child, with the GIL held (the
/// caller holds it while it runs a job, so the child inherits it).
pub fn after_fork_child(_py: Python<'_>) {
    // SAFETY: called in a freshly forked child with the GIL held by this
    // (its only) thread, which is what CPython requires of
    // `PyOS_AfterFork_Child`.
    unsafe { ffi::PyOS_AfterFork_Child() }
}

/// The thread that takes the forwarded signals (a `pthread_t`).
static SIGNAL_TARGET: AtomicU64 = AtomicU64::new(0);

/// Signals that reached the target thread itself while forwarding was on
/// but the coordinator no longer blocked them (its job had ended): a bit
/// per signal number, raised again once the old handlers are back.
static LATE: AtomicU64 = AtomicU64::new(0);

extern "C" fn forward(sig: c_int) {
    let target = SIGNAL_TARGET.load(Ordering::SeqCst);
    // SAFETY: `pthread_self` is async-signal-safe.
    let me = unsafe { libc::pthread_self() } as u64;
    if target == me {
        // Sending it to ourselves again would loop: keep it for later.
        if (0..64).contains(&sig) {
            LATE.fetch_or(1 << sig, Ordering::SeqCst);
        }
        return;
    }
    if target != 0 {
        // SAFETY: `pthread_kill` is async-signal-safe; `target` is the
        // thread that installed the forwarding and stays alive (blocked in
        // the job) until it restores the old handlers.
        unsafe {
            libc::pthread_kill(target as libc::pthread_t, sig);
        }
    }
}

/// While it lives, the process-wide handlers of [`super::WATCHED`]
/// re-send each of those signals to the thread that made it.
///
/// The coordinator blocks these signals in its own thread and reads them
/// from a descriptor; a signal sent to the process is then delivered to
/// any other thread that does not block it (a Python caller has such
/// threads: OpenBLAS's pool, the caller's own), where it would be lost to
/// the job. Forwarding makes it pending in the coordinator's thread, where
/// the descriptor sees it. Dropping the guard restores the old handlers.
pub struct ForwardSignals {
    previous: Vec<(Signal, SigAction)>,
}

impl ForwardSignals {
    /// Installs the forwarding handlers for the calling thread.
    pub fn install() -> std::io::Result<Self> {
        // SAFETY: `pthread_self` has no preconditions.
        let me = unsafe { libc::pthread_self() };
        SIGNAL_TARGET.store(me as u64, Ordering::SeqCst);
        LATE.store(0, Ordering::SeqCst);
        let action = SigAction::new(
            SigHandler::Handler(forward),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for s in super::WATCHED {
            // SAFETY: `forward` is async-signal-safe (one atomic load and
            // `pthread_kill`); the previous action is restored on drop.
            match unsafe { signal::sigaction(s, &action) } {
                Ok(old) => previous.push((s, old)),
                Err(e) => {
                    drop(ForwardSignals { previous });
                    return Err(e.into());
                }
            }
        }
        Ok(ForwardSignals { previous })
    }
}

impl Drop for ForwardSignals {
    fn drop(&mut self) {
        for (s, old) in self.previous.drain(..).rev() {
            // SAFETY: restores the action that was in place before
            // `install` (Python's own handler or the default).
            let _ = unsafe { signal::sigaction(s, &old) };
        }
        SIGNAL_TARGET.store(0, Ordering::SeqCst);
        let late = LATE.swap(0, Ordering::SeqCst);
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            if late & (1 << s as i32) != 0 {
                // Now handled as the caller set it up (Python's
                // KeyboardInterrupt for SIGINT).
                let _ = signal::raise(s);
            }
        }
    }
}
