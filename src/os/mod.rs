//! The one place for `unsafe` and raw system calls. This file holds the
//! process side — fork, `wait4`, the signal descriptor, process groups;
//! [`file`](mod@file) holds the file side — shared mappings, space reservation, locks.
//!
//! Everything outside this module sees safe types: a [`SharedRegion`] that
//! derefs to the bytes of one worker's rows, a worker's pid, a
//! [`SignalWatch`] to poll. `libc` is used only here, and only for what
//! `nix` lacks (`wait4` with rusage).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{self, ForkResult, Pid};

pub mod file;
pub mod progress;
#[cfg(feature = "python")]
pub mod python;
pub mod results;

pub use file::{available_bytes, reserve, try_lock_byte, ByteLock, SharedRegion};

/// Signals the coordinator takes through its descriptor instead of handlers.
pub const WATCHED: [Signal; 5] = [
    Signal::SIGCHLD,
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGUSR1,
];

/// The descriptor at which a re-executed or external worker receives the
/// progress region (`MMRUN_PROGRESS_FILE=/proc/self/fd/3`).
pub const PROGRESS_FD: RawFd = 3;
/// The descriptor at which a re-executed mmrun worker receives its failure
/// slots (`MMRUN_FAILURE_FILE=/proc/self/fd/4`).
pub const FAILURE_FD: RawFd = 4;
/// The descriptor at which a re-executed mmrun worker receives its result
/// slots (`MMRUN_RESULT_FILE=/proc/self/fd/5`).
pub const RESULT_FD: RawFd = 5;
/// Every descriptor a worker that mmrun execs holds: 0 (`/dev/null` for
/// external programs), 1, 2, and those of [`PROGRESS_FD`], [`FAILURE_FD`]
/// and [`RESULT_FD`] the run has. Everything else is closed before `exec`.
pub const WORKER_FDS: [RawFd; 6] = [0, 1, 2, PROGRESS_FD, FAILURE_FD, RESULT_FD];

/// In a freshly forked child: moves each `(from, to)` descriptor to `to`
/// (without close-on-exec, so it crosses `exec`) and closes every other
/// descriptor above 2. Makes no allocation. `false` on failure.
fn install_worker_fds(fds: &[(RawFd, RawFd)]) -> bool {
    let mut tmp = [-1 as RawFd; WORKER_FDS.len()];
    if fds.len() > tmp.len() {
        return false;
    }
    let above = WORKER_FDS[WORKER_FDS.len() - 1] + 1;
    for (t, &(from, _)) in tmp.iter_mut().zip(fds) {
        // SAFETY: F_DUPFD_CLOEXEC only duplicates a descriptor number; a bad
        // one is an EBADF result, not undefined behaviour.
        *t = unsafe { libc::fcntl(from, libc::F_DUPFD_CLOEXEC, above) };
        if *t < 0 {
            return false;
        }
    }
    for (&t, &(_, to)) in tmp.iter().zip(fds) {
        // SAFETY: dup2 on descriptor numbers; the copy `t` is above every
        // target, so no target is closed before it was moved.
        if unsafe { libc::dup2(t, to) } < 0 {
            return false;
        }
    }
    // Every other descriptor above 2 (the copies, and any a library caller
    // left without close-on-exec) is marked close-on-exec, so the program
    // holds exactly the documented ones once it is executed.
    let last = fds.iter().map(|&(_, to)| to).max().unwrap_or(2);
    for fd in 3..last {
        if !fds.iter().any(|&(_, to)| to == fd) {
            // SAFETY: F_SETFD on a number; EBADF for an unused one is fine.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    // Sources: linux/close_range.h, CLOSE_RANGE_CLOEXEC = 1 << 2 (Linux 5.11).
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range(2) takes plain integers; an older kernel answers
    // EINVAL/ENOSYS and mmrun's own descriptors are close-on-exec anyway.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            (last + 1) as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    true
}

/// Starts `program` as a worker: forks (see [`fork_child`]), hands it the
/// descriptors `fds` at their documented numbers ([`WORKER_FDS`]) and
/// executes it with `argv` and `env`, all prepared before the fork. The
/// child allocates nothing: the pointer arrays are built here, and a
/// failed `execve` is reported as its errno through a close-on-exec pipe
/// opened before the fork, so the caller gets the cause as an error (the
/// child is reaped) rather than an exit code 127.
pub fn spawn_exec(
    program: &CString,
    argv: &[CString],
    env: &[CString],
    fds: &[(RawFd, RawFd)],
    cpu: Option<usize>,
) -> io::Result<Pid> {
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env_p: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let (err_r, err_w) = unistd::pipe2(OFlag::O_CLOEXEC)?;
    let err_w_raw = std::os::fd::AsRawFd::as_raw_fd(&err_w);
    let above = WORKER_FDS[WORKER_FDS.len() - 1] + 1;
    let child = || {
        // Move the error pipe above the documented numbers first, so
        // installing them cannot close it.
        // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor number.
        let errfd = unsafe { libc::fcntl(err_w_raw, libc::F_DUPFD_CLOEXEC, above) };
        if let Some(cpu) = cpu {
            let _ = pin_to_cpu(cpu);
        }
        let errno = if install_worker_fds(fds) {
            // SAFETY: both arrays are null-terminated arrays of pointers to
            // NUL-terminated strings that outlive the call (owned by the
            // parent's frame, copied into this child by fork).
            unsafe { libc::execve(program.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        } else {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EBADF)
        };
        let bytes = errno.to_ne_bytes();
        // SAFETY: writes 4 bytes from a local array to a descriptor number.
        unsafe { libc::write(errfd, bytes.as_ptr().cast(), bytes.len()) };
        127
    };
    // SAFETY: the child makes only async-signal-safe calls (fcntl, dup2,
    // sched_setaffinity, execve, write, _exit) on data prepared above, so
    // this is sound in a multi-threaded process too.
    let pid = unsafe { fork_child(child) }?;
    drop(err_w);
    let mut buf = [0u8; 4];
    let got = loop {
        match unistd::read(&err_r, &mut buf) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    match got {
        Ok(4) => {
            let _ = waitpid(pid, None);
            let err = io::Error::from_raw_os_error(i32::from_ne_bytes(buf));
            Err(io::Error::new(
                err.kind(),
                format!("cannot execute {}: {err}", program.to_string_lossy()),
            ))
        }
        _ => Ok(pid),
    }
}

/// Signals that ask a run to stop.
pub const STOP: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn command_mask() -> SigSet {
    let mut mask = SigSet::empty();
    for s in STOP.into_iter().chain([Signal::SIGUSR1]) {
        mask.add(s);
    }
    mask
}

/// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR1 in the calling thread: the
/// `mmrun` binary's first line, before any other thread exists (threads
/// started later inherit the mask). A stop signal then never kills mmrun
/// between two steps — during `prepare`, the final sync, the rename or a
/// `commit` — it stays pending until a run's [`SignalWatch`] reads it, or
/// until [`take_pending_stop`] finds it once the command is done, when
/// whether the target was published decides the outcome. SIGUSR1 (Slurm's
/// `--signal=B:USR1@T`, `scancel -s USR1`) never terminates mmrun. Forked
/// workers start with an empty mask ([`fork_child`]); `std::process`
/// children too.
pub fn block_command_signals() -> io::Result<()> {
    command_mask().thread_block()?;
    Ok(())
}

/// Unblocks SIGINT, SIGTERM and SIGHUP again, for the read-only commands
/// (`info`, `verify`, `bench`) that publish nothing and must stay
/// interruptible; SIGUSR1 stays blocked.
pub fn unblock_stop_signals() -> io::Result<()> {
    let mut mask = SigSet::empty();
    for s in STOP {
        mask.add(s);
    }
    mask.thread_unblock()?;
    Ok(())
}

/// Consumes every pending SIGINT, SIGTERM, SIGHUP and SIGUSR1 without
/// waiting, and returns the first stop signal among them.
pub fn take_pending_stop() -> Option<Signal> {
    let fd = SignalFd::with_flags(
        &command_mask(),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .ok()?;
    let mut stop = None;
    while let Ok(Some(info)) = fd.read_signal() {
        if let Ok(s) = Signal::try_from(info.ssi_signo as i32) {
            if STOP.contains(&s) && stop.is_none() {
                stop = Some(s);
            }
        }
    }
    stop
}

/// Test hook: `__MMRUN_TEST_SIGNAL_AT=POINT:SIG[,POINT:SIG…]` makes mmrun
/// send itself `SIG` (`TERM`, `USR1`, …) when it reaches `POINT`
/// (`prepare`, `published`, `rank-sync`, `commit`), so tests can deliver a
/// signal at an exact step without timing.
pub fn test_signal_point(point: &str) {
    let Ok(spec) = std::env::var("__MMRUN_TEST_SIGNAL_AT") else {
        return;
    };
    for item in spec.split(',') {
        let Some((p, sig)) = item.split_once(':') else {
            continue;
        };
        if p != point {
            continue;
        }
        if let Ok(s) = format!("SIG{sig}").parse::<Signal>() {
            let _ = signal::kill(unistd::getpid(), s);
        }
    }
}

/// The coordinator's view of signals: blocked, and delivered as readable
/// events on a descriptor its single `poll` loop waits on. No handler runs,
/// so there is nothing async-signal-unsafe to get wrong.
#[derive(Debug)]
pub struct SignalWatch {
    fd: SignalFd,
    previous: SigSet,
    /// SIGXFSZ's disposition before the run, restored at drop.
    previous_xfsz: Option<signal::SigAction>,
}

/// What one wait on a [`SignalWatch`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// A signal arrived.
    Signal(Signal),
    /// The timeout passed with nothing to read.
    Timeout,
}

impl SignalWatch {
    /// Blocks [`WATCHED`] in this thread and opens the descriptor. Must be
    /// called before the first worker is started so no SIGCHLD is lost.
    pub fn new() -> io::Result<Self> {
        let mut mask = SigSet::empty();
        for s in WATCHED {
            mask.add(s);
        }
        let previous = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK)?;
        let fd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = previous.thread_set_mask();
                return Err(e.into());
            }
        };
        // Writing past `ulimit -f` is then an EFBIG error mmrun can report
        // instead of a core dump. The disposition is process-wide, so the
        // caller's is put back at drop.
        let ignore = signal::SigAction::new(
            SigHandler::SigIgn,
            signal::SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: SIG_IGN runs no code of ours in signal context.
        let previous_xfsz = unsafe { signal::sigaction(Signal::SIGXFSZ, &ignore) }.ok();
        Ok(SignalWatch {
            fd,
            previous,
            previous_xfsz,
        })
    }

    /// Waits up to `timeout_ms` for a signal or for one of `extra` to be
    /// readable (or hung up); `ready[i]` says which of `extra` are.
    pub fn wait(
        &mut self,
        extra: &[BorrowedFd<'_>],
        ready: &mut Vec<bool>,
        timeout_ms: u16,
    ) -> io::Result<Wake> {
        ready.clear();
        ready.resize(extra.len(), false);
        if let Some(s) = self.try_read()? {
            return Ok(Wake::Signal(s));
        }
        let mut fds = Vec::with_capacity(extra.len() + 1);
        fds.push(PollFd::new(self.fd.as_fd(), PollFlags::POLLIN));
        fds.extend(extra.iter().map(|fd| PollFd::new(*fd, PollFlags::POLLIN)));
        match poll(&mut fds, PollTimeout::from(timeout_ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        for (r, fd) in ready.iter_mut().zip(&fds[1..]) {
            *r = fd.revents().is_some_and(|e| !e.is_empty());
        }
        Ok(self.try_read()?.map(Wake::Signal).unwrap_or(Wake::Timeout))
    }

    /// Returns a stop signal (SIGINT, SIGTERM, SIGHUP) that is pending,
    /// without waiting; other pending signals are consumed and ignored.
    pub fn pending_stop(&mut self) -> io::Result<Option<Signal>> {
        while let Some(s) = self.try_read()? {
            if matches!(s, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP) {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    fn try_read(&mut self) -> io::Result<Option<Signal>> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(s) => return Ok(Some(s)),
                    Err(_) => continue,
                },
                Ok(None) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for SignalWatch {
    /// Restores the signal mask and the SIGXFSZ disposition a library
    /// caller had before the run.
    fn drop(&mut self) {
        if let Some(old) = &self.previous_xfsz {
            // SAFETY: `old` is the disposition sigaction returned: the
            // caller's own handler (or SIG_DFL/SIG_IGN), valid as before.
            let _ = unsafe { signal::sigaction(Signal::SIGXFSZ, old) };
        }
        let _ = self.previous.thread_set_mask();
    }
}

/// Resource use of a reaped child, from `wait4`.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak resident set, KiB.
    pub max_rss_kib: i64,
    /// Minor page faults.
    pub minor_faults: i64,
    /// Major page faults.
    pub major_faults: i64,
}

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal {
        /// Signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

/// Reaps child `pid` if it has exited, without blocking: `None` while it
/// runs. Only the given pid is waited for — never `wait4(-1)` — so the
/// children of a library caller keep their exit statuses.
pub fn reap(pid: Pid) -> io::Result<Option<(Exit, Usage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let got = loop {
        // SAFETY: wait4 writes only through the two valid pointers we pass,
        // both to locals that outlive the call.
        let got = unsafe { libc::wait4(pid.as_raw(), &mut status, libc::WNOHANG, &mut ru) };
        if got < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        break got;
    };
    if got == 0 {
        return Ok(None);
    }
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal {
            signal: libc::WTERMSIG(status),
            core_dumped: libc::WCOREDUMP(status),
        }
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = Usage {
        user_s: secs(ru.ru_utime),
        sys_s: secs(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss,
        minor_faults: ru.ru_minflt,
        major_faults: ru.ru_majflt,
    };
    Ok(Some((exit, usage)))
}

/// Starts a child process that runs `work` and leaves with `_exit(code)`.
///
/// The child first restores default signal dispositions and an empty signal
/// mask (the coordinator blocks signals for its descriptor), asks to be
/// SIGKILLed when the coordinator dies, then checks the coordinator has not
/// already died before that request took effect, and leads its own process
/// group so the coordinator can signal it and its children together.
///
/// # Safety
/// After `fork` only the calling thread exists in the child, so a lock held
/// by any other thread (the allocator's, stdio's) stays held forever. So
/// either the calling process is single-threaded (count
/// [`thread_count`]), or `work` makes only async-signal-safe calls: no
/// allocation, no locks, no formatting — system calls on data prepared
/// before the call, as [`spawn_exec`] does. `work` must only touch data
/// prepared before the call, and it must not unwind across `fork`'s
/// boundary (a panic is caught and turned into an exit code).
pub unsafe fn fork_child<F: FnOnce() -> i32>(work: F) -> io::Result<Pid> {
    let parent = unistd::getpid();
    // SAFETY: the caller upholds the contract above. The child runs
    // `child_main` and never returns from this function: it leaves through
    // `_exit`, so no destructor or atexit handler of the parent's state
    // runs twice.
    match unsafe { unistd::fork() }? {
        ForkResult::Parent { child } => {
            // Also set the group here: whichever of parent and child runs
            // first, the group exists before the parent might signal it.
            let _ = unistd::setpgid(child, child);
            Ok(child)
        }
        ForkResult::Child => child_main(parent, work),
    }
}

fn child_main<F: FnOnce() -> i32>(parent: Pid, work: F) -> ! {
    reset_signals();
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if unistd::getppid() != parent {
        // The coordinator died before PDEATHSIG was armed.
        exit_now(crate::exit_code::RUN_FAILED);
    }
    let _ = unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(code) => code,
        Err(_) => crate::exit_code::RUN_FAILED,
    };
    exit_now(code)
}

/// Starts a helper process that makes the written data of the file open
/// at `fd` durable (`fdatasync`, which also writes back pages dirtied
/// through shared mappings) and exits 0, or 1 if the sync failed. The
/// coordinator takes checkpoints this way so its poll loop never blocks on
/// writeback: it waits for the helper by pid ([`reap`]) like a worker and
/// stops it with [`kill_and_reap`] when the run ends first.
///
/// Test hook (debug builds only): `__MMRUN_TEST_SLOW_SYNC=PATH` makes the
/// helper create `PATH` and sleep an hour before it syncs, so a test knows
/// a checkpoint is in progress and can act while it runs.
pub fn spawn_sync(fd: BorrowedFd<'_>) -> io::Result<Pid> {
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let marker = slow_sync_marker();
    // Borrowed, so the child drops (frees) nothing.
    let marker = marker.as_ref();
    let child = move || {
        if let Some(path) = marker {
            // SAFETY: `path` is a NUL-terminated string prepared before the
            // fork; open, close and sleep only take plain values.
            unsafe {
                let m = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                    0o644,
                );
                if m >= 0 {
                    libc::close(m);
                }
                libc::sleep(3600);
            }
        }
        // SAFETY: fdatasync on a descriptor number this child inherited.
        if unsafe { libc::fdatasync(raw) } == 0 {
            0
        } else {
            1
        }
    };
    // SAFETY: the child makes only async-signal-safe calls (open, close,
    // sleep, fdatasync, _exit) on data prepared before the fork and frees
    // nothing, so this is sound in a multi-threaded process too.
    unsafe { fork_child(child) }
}

#[cfg(debug_assertions)]
fn slow_sync_marker() -> Option<CString> {
    use std::os::unix::ffi::OsStringExt;
    let path = std::env::var_os("__MMRUN_TEST_SLOW_SYNC")?;
    CString::new(path.into_vec()).ok()
}

#[cfg(not(debug_assertions))]
fn slow_sync_marker() -> Option<CString> {
    None
}

/// SIGKILLs child `pid` (it leads its own process group, see
/// [`fork_child`]) and waits for it, so no zombie is left.
pub fn kill_and_reap(pid: Pid) {
    signal_group(pid, Signal::SIGKILL);
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}

/// Number of threads of this process (entries of `/proc/self/task`);
/// 0 if that cannot be read.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Leaves the process at once with `code`, running no destructors and no
/// `atexit` handlers: what a forked child must do, so it never flushes or
/// frees state it shares with the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` is async-signal-safe and touches no Rust state.
    unsafe { libc::_exit(code) }
}

fn reset_signals() {
    for s in Signal::iterator() {
        if s == Signal::SIGKILL || s == Signal::SIGSTOP {
            continue;
        }
        // SIGUSR1 asks the coordinator for a checkpoint. Slurm's
        // `--signal=USR1@T` and `scancel -s USR1` send it to every process
        // of the step, so workers (and the programs they exec, which inherit
        // an ignored disposition) must not die of it.
        let action = if s == Signal::SIGUSR1 {
            SigHandler::SigIgn
        } else {
            SigHandler::SigDfl
        };
        // SAFETY: SIG_DFL and SIG_IGN run no code of ours in signal context.
        let _ = unsafe { signal::signal(s, action) };
    }
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Sends `sig` to the process group led by `pgid`.
pub fn signal_group(pgid: Pid, sig: Signal) {
    let _ = signal::killpg(pgid, sig);
}

/// Dies of `sig` the way an uncaught signal would: restores the default
/// disposition, unblocks it and sends it to this process. Falls back to
/// exiting with 128+N should the signal somehow not be fatal.
pub fn die_of_signal(sig: i32) -> ! {
    if let Ok(s) = Signal::try_from(sig) {
        // SAFETY: installing SIG_DFL runs no code of ours in signal context.
        let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
        let mut set = SigSet::empty();
        set.add(s);
        let _ = set.thread_unblock();
        let _ = signal::raise(s);
    }
    std::process::exit(128 + sig)
}

/// The kernel's boot id, which changes at every boot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// This machine's host name.
pub fn hostname() -> String {
    unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The type of the file system holding `path`, by its statfs magic number:
/// `ext4`, `xfs`, `tmpfs`, `nfs`, `lustre`, … or the number in hex.
///
/// Sources: linux/magic.h; Lustre's and GPFS's published magic numbers.
pub fn filesystem_type(path: &std::path::Path) -> String {
    let Ok(st) = nix::sys::statfs::statfs(path) else {
        return "unknown".into();
    };
    let magic = st.filesystem_type().0 as u64;
    let name = match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0x0BD0_0BD0 => "lustre",
        0x4750_4653 => "gpfs",
        0x1983_0326 => "beegfs",
        0x00C3_6400 => "ceph",
        0x2FC1_2FC1 => "zfs",
        0x794C_7630 => "overlayfs",
        0x6573_5546 => "fuse",
        0x0100_2010 => "cifs",
        0xFE53_4D42 => "smb2",
        _ => return format!("0x{magic:x}"),
    };
    name.to_string()
}

/// Whether a file system type (as [`filesystem_type`] names it) is shared
/// between machines, where two nodes writing back one page lose data.
pub fn is_network_filesystem(fs: &str) -> bool {
    matches!(
        fs,
        "nfs" | "lustre" | "gpfs" | "beegfs" | "ceph" | "cifs" | "smb2" | "fuse"
    )
}

/// Name of a signal without the `SIG` prefix, as reports print it: `KILL`.
pub fn signal_name(sig: i32) -> String {
    match Signal::try_from(sig) {
        Ok(s) => s.as_str().trim_start_matches("SIG").to_string(),
        Err(_) => format!("SIG{sig}"),
    }
}

/// A read-only shared mapping of one byte range of a file (the input rows
/// of `apply --out`).
#[derive(Debug)]
pub struct ReadRegion {
    map: memmap2::Mmap,
}

impl ReadRegion {
    /// Maps `len` bytes of `file` at `offset`, read-only.
    ///
    /// # Safety
    /// The file is at least `offset + len` bytes long and nobody truncates
    /// it while the region lives. Another process changing these bytes is
    /// not undefined behaviour for `u8` data read through the slice, but
    /// the values read are then unspecified.
    pub unsafe fn map(file: &std::fs::File, offset: u64, len: usize) -> io::Result<Self> {
        debug_assert!(len > 0, "zero-length mappings are invalid");
        // SAFETY: the caller upholds the length contract above.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(len)
                .map(file)?
        };
        Ok(ReadRegion { map })
    }
}

impl ReadRegion {
    /// Drops this process's page-table entries for `offset..offset + len`
    /// of the region (`MADV_DONTNEED`; the page holding `offset` is
    /// included), so rows already read stop counting towards its resident
    /// set. The file's pages stay in the page cache; a later read maps
    /// them again with the same bytes.
    pub fn release(&mut self, offset: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `&mut self` means no slice into the region is alive, and
        // for a read-only MAP_SHARED file mapping MADV_DONTNEED only unmaps
        // pages: the next access faults the same page-cache page back in.
        // memmap2 checks the range against the mapping.
        unsafe {
            self.map
                .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
        }
    }
}

impl ReadRegion {
    /// Starts reading `offset..offset + len` from disk in the background
    /// (`MADV_WILLNEED`). A hint: nothing changes when it fails.
    pub fn will_need(&self, offset: usize, len: usize) {
        let _ = self
            .map
            .advise_range(memmap2::Advice::WillNeed, offset, len);
    }
}

impl std::ops::Deref for ReadRegion {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn allowed_cpus() -> Vec<usize> {
    match nix::sched::sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..nix::sched::CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Pins the calling process to one CPU (`--pin`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// Read ends of an exec'd worker's output pipes.
#[derive(Debug)]
pub struct OutputPipes {
    /// The worker's stdout.
    pub stdout: OwnedFd,
    /// The worker's stderr.
    pub stderr: OwnedFd,
}

/// A program and its environment, prepared before `fork` so the child only
/// has to call `execve`.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// Pin the worker (and its children) to this CPU before it starts.
    pub cpu: Option<usize>,
    /// Path of the program.
    pub program: CString,
    /// Its argv, program name first.
    pub argv: Vec<CString>,
    /// Its complete environment, `KEY=VALUE`.
    pub env: Vec<CString>,
    /// The progress region's descriptor, handed over at [`PROGRESS_FD`].
    pub progress_fd: Option<RawFd>,
    /// Grace between the SIGTERM the shim forwards and its SIGKILL.
    pub kill_after: std::time::Duration,
}

/// Starts an external worker under a shim and returns the shim's pid (the
/// worker's process group) and the read ends of its stdout and stderr.
///
/// The shim is the forked child. It makes itself a child subreaper, asks
/// for SIGTERM when the coordinator dies, and forks PROGRAM with stdin on
/// `/dev/null`. When PROGRAM exits, the shim SIGKILLs every descendant left
/// (orphans are re-parented to it as subreaper) and exits with PROGRAM's
/// status. On SIGTERM, SIGINT or SIGHUP it forwards SIGTERM to PROGRAM,
/// waits up to `kill_after` for it to exit, then SIGKILLs what is left and
/// dies of SIGTERM. `PR_SET_PDEATHSIG` is not inherited across fork, which is why
/// PROGRAM's children need the shim: a SIGKILLed coordinator leaves no
/// worker and no worker's child behind, except a descendant that leaves
/// both the process group and the shim's subtree before the shim dies.
pub fn spawn_shimmed(spec: &ExecSpec) -> io::Result<(Pid, OutputPipes)> {
    let (out_r, out_w) = unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = unistd::pipe2(OFlag::O_CLOEXEC)?;
    let devnull = std::fs::File::open("/dev/null")?;
    // SAFETY: the shim allocates, so the caller must be single-threaded:
    // the coordinator refuses to run external programs in a multi-threaded
    // process (`Runner::run_program` checks `thread_count`).
    let pid = unsafe {
        fork_child(|| {
            if let Some(cpu) = spec.cpu {
                // Affinity is inherited through fork and exec: the program and
                // everything it starts stay on this CPU.
                let _ = pin_to_cpu(cpu);
            }
            if unistd::dup2_stdin(&devnull).is_err()
                || unistd::dup2_stdout(&out_w).is_err()
                || unistd::dup2_stderr(&err_w).is_err()
            {
                return 127;
            }
            let fds = [(spec.progress_fd.unwrap_or(-1), PROGRESS_FD)];
            let fds = if spec.progress_fd.is_some() {
                &fds[..]
            } else {
                &[]
            };
            if !install_worker_fds(fds) {
                return 127;
            }
            shim_main(spec)
        })
    }?;
    drop((out_w, err_w));
    for fd in [&out_r, &err_r] {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    }
    Ok((
        pid,
        OutputPipes {
            stdout: out_r,
            stderr: err_r,
        },
    ))
}

fn shim_main(spec: &ExecSpec) -> i32 {
    let parent = unistd::getppid();
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    if unistd::getppid() != parent {
        return crate::exit_code::RUN_FAILED;
    }
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    let Ok(previous) = mask.thread_swap_mask(SigmaskHow::SIG_BLOCK) else {
        return 127;
    };
    let Ok(sfd) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC) else {
        return 127;
    };
    // SAFETY: the shim is single-threaded (a fork of the single-threaded
    // coordinator), so the child inherits no lock held by another thread;
    // the child only restores the mask and calls execve or _exit.
    let program = match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = previous.thread_set_mask();
            let _ = unistd::execve(&spec.program, &spec.argv, &spec.env);
            let msg = format!(
                "mmrun: cannot execute {}: {}\n",
                spec.program.to_string_lossy(),
                io::Error::last_os_error()
            );
            let _ = unistd::write(std::io::stderr(), msg.as_bytes());
            exit_now(127)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(_) => return 127,
    };
    loop {
        let Ok(Some(info)) = sfd.read_signal() else {
            continue;
        };
        match Signal::try_from(info.ssi_signo as i32) {
            Ok(Signal::SIGCHLD) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    match status {
                        WaitStatus::Exited(pid, code) if pid == program => {
                            kill_descendants();
                            exit_now(code);
                        }
                        WaitStatus::Signaled(pid, sig, _) if pid == program => {
                            kill_descendants();
                            die_now(sig);
                        }
                        WaitStatus::StillAlive => break,
                        _ => {}
                    }
                }
            }
            Ok(_) => {
                // Stop: TERM to the program, then its grace, then KILL.
                let _ = signal::kill(program, Signal::SIGTERM);
                let deadline = std::time::Instant::now() + spec.kill_after;
                if !wait_for_program(&sfd, program, deadline) {
                    let _ = signal::kill(program, Signal::SIGKILL);
                }
                kill_descendants();
                die_now(Signal::SIGTERM);
            }
            Err(_) => {}
        }
    }
}

/// Waits until `program` has exited (reaping it: `true`) or `deadline`
/// passes (`false`). A second stop signal ends the wait at once.
fn wait_for_program(sfd: &SignalFd, program: Pid, deadline: std::time::Instant) -> bool {
    loop {
        match waitpid(program, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return true,
            Err(_) => return false,
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = left.as_millis().clamp(1, 60_000) as u16;
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let readable = matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0);
        if readable {
            match sfd.read_signal() {
                Ok(Some(info)) if info.ssi_signo as i32 != libc::SIGCHLD => return false,
                _ => {}
            }
        }
    }
}

/// SIGKILLs every child of this process, reaps it, and repeats until none
/// is left: orphans of killed children are re-parented to us (subreaper).
fn kill_descendants() {
    for _ in 0..64 {
        let children = std::fs::read_to_string("/proc/thread-self/children").unwrap_or_default();
        let pids: Vec<Pid> = children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(Pid::from_raw)
            .collect();
        if pids.is_empty() {
            break;
        }
        for &p in &pids {
            let _ = signal::kill(p, Signal::SIGKILL);
        }
        for _ in &pids {
            let _ = waitpid(None, None);
        }
    }
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Dies of `sig` (default disposition, unblocked); `_exit(128+N)` if that
/// signal is not fatal.
fn die_now(sig: Signal) -> ! {
    // SAFETY: installing SIG_DFL runs no code of ours in signal context.
    let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let _ = signal::raise(sig);
    exit_now(128 + sig as i32)
}
