//! The `mmrun` binary: parse the command line, run it, map the outcome to an
//! exit code. Everything else is in the library.
//!
//! A panic is a bug, never an answer to input: it ends the run with exit 1
//! and one line (`mmrun: error: internal error …`), with a backtrace only
//! when `RUST_BACKTRACE` asks for one. A closed stdout (`mmrun … | head`)
//! ends the command quietly with exit 0, as ripgrep does.

mod cli;

use std::panic::AssertUnwindSafe;

use mmrun::ErrorKind;

fn main() {
    // Re-executed workers skip argument parsing and logging set-up entirely.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__worker") {
        std::process::exit(mmrun::worker::exec_main());
    }
    install_panic_hook();
    let ran = std::panic::catch_unwind(AssertUnwindSafe(cli::run));
    let code = match ran {
        Ok(Ok(())) => mmrun::exit_code::SUCCESS,
        Ok(Err(e)) => {
            if cli::json_log() {
                tracing::error!("{e}");
            } else {
                eprintln!("mmrun: error: {e}");
            }
            if let ErrorKind::Interrupted(sig) = e.kind() {
                mmrun::os::die_of_signal(sig);
            }
            e.exit_code()
        }
        Err(payload) => {
            let text = mmrun::worker::panic_text(payload.as_ref());
            if is_broken_stdout(&text) {
                mmrun::exit_code::SUCCESS
            } else {
                eprintln!(
                    "mmrun: error: internal error ({}{}); please report it with the command line",
                    oneline(&text),
                    PANIC_AT.with(|p| p.borrow().clone()).unwrap_or_default()
                );
                mmrun::exit_code::RUN_FAILED
            }
        }
    };
    std::process::exit(code);
}

thread_local! {
    /// Where the main thread's last panic happened (` at src/x.rs:1:2`).
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// `print!` to a closed pipe panics with this text (std's `print_to`).
fn is_broken_stdout(text: &str) -> bool {
    text.contains("failed printing to stdout") && text.contains("Broken pipe")
}

/// Collapses a panic message onto one line, control characters escaped.
fn oneline(text: &str) -> String {
    text.chars().flat_map(char::escape_debug).collect()
}

/// Replaces the default hook: the main thread's panics are printed by
/// `main` as one line (and a forked worker's by its own `catch_unwind`,
/// which records the text in the run report); another thread's panic
/// prints one line here. `RUST_BACKTRACE` keeps the default hook's report.
fn install_panic_hook() {
    let backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = mmrun::worker::panic_text(info.payload());
        if is_broken_stdout(&text) {
            return;
        }
        if backtrace {
            default(info);
            return;
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        match thread.name() {
            Some("main") => PANIC_AT.with(|p| *p.borrow_mut() = Some(at)),
            name => eprintln!(
                "mmrun: error: internal error in thread {} ({}{at})",
                name.unwrap_or("unnamed"),
                oneline(&text)
            ),
        }
    }));
}
