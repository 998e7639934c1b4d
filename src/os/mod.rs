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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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

/// The coordinator's view of signals: blocked, and delivered as readable
/// events on a descriptor its single `poll` loop waits on. No handler runs,
/// so there is nothing async-signal-unsafe to get wrong.
#[derive(Debug)]
pub struct SignalWatch {
    fd: SignalFd,
    previous: SigSet,
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
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(SignalWatch { fd, previous })
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
    /// Restores the signal mask a library caller had before the run.
    fn drop(&mut self) {
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

/// Reaps one exited child without blocking: `None` when no child has exited.
pub fn reap_any() -> io::Result<Option<(Pid, Exit, Usage)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only through the two valid pointers we pass,
    // both to locals that outlive the call.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru) };
    if pid == 0 {
        return Ok(None);
    }
    if pid < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ECHILD) => Ok(None),
            Some(libc::EINTR) => reap_any(),
            _ => Err(err),
        };
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
    Ok(Some((Pid::from_raw(pid), exit, usage)))
}

/// Starts a child process that runs `work` and leaves with `_exit(code)`.
///
/// The child first restores default signal dispositions and an empty signal
/// mask (the coordinator blocks signals for its descriptor), asks to be
/// SIGKILLed when the coordinator dies, then checks the coordinator has not
/// already died before that request took effect, and leads its own process
/// group so the coordinator can signal it and its children together.
///
/// The caller must be single-threaded (the coordinator is): after `fork`
/// only the calling thread exists in the child, so a lock held by any other
/// thread would stay held forever. `work` must only touch data prepared
/// before the call.
pub fn fork_child<F: FnOnce() -> i32>(work: F) -> io::Result<Pid> {
    let parent = unistd::getpid();
    // SAFETY: the coordinator is single-threaded when it forks (see the doc
    // above and coordinator::supervise), so the child cannot inherit a lock
    // held by another thread. The child runs `child_main` and never returns
    // from this function: it leaves through `_exit`, so no destructor or
    // atexit handler of the parent's state runs twice.
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

/// Ignores SIGXFSZ so that writing past `ulimit -f` is an EFBIG error mmrun
/// can report instead of a core dump.
pub fn ignore_sigxfsz() {
    // SAFETY: SIG_IGN runs no code of ours in signal context.
    let _ = unsafe { signal::signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
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
}

/// Starts an external worker under a shim and returns the shim's pid (the
/// worker's process group) and the read ends of its stdout and stderr.
///
/// The shim is the forked child. It makes itself a child subreaper, asks
/// for SIGTERM when the coordinator dies, and forks PROGRAM with stdin on
/// `/dev/null`. When PROGRAM exits, the shim SIGKILLs every descendant left
/// (orphans are re-parented to it as subreaper) and exits with PROGRAM's
/// status. On SIGTERM, SIGINT or SIGHUP it does the same at once, then dies
/// of SIGTERM. `PR_SET_PDEATHSIG` is not inherited across fork, which is why
/// PROGRAM's children need the shim: a SIGKILLed coordinator leaves no
/// worker and no worker's child behind, except a descendant that leaves
/// both the process group and the shim's subtree before the shim dies.
pub fn spawn_shimmed(spec: &ExecSpec) -> io::Result<(Pid, OutputPipes)> {
    let (out_r, out_w) = unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = unistd::pipe2(OFlag::O_CLOEXEC)?;
    let devnull = std::fs::File::open("/dev/null")?;
    let pid = fork_child(|| {
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
        shim_main(spec)
    })?;
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
                let _ = signal::kill(program, Signal::SIGKILL);
                kill_descendants();
                die_now(Signal::SIGTERM);
            }
            Err(_) => {}
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
