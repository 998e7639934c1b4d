//! The `mmrun` binary: parse the command line, run it, map the outcome to an
//! exit code. Everything else is in the library.

mod cli;

use mmrun::ErrorKind;

fn main() {
    // Re-executed workers skip argument parsing and logging set-up entirely.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__worker") {
        std::process::exit(mmrun::worker::exec_main());
    }
    // From here to the exit, stop signals and SIGUSR1 are blocked: they are
    // read where mmrun can act on them, never delivered between two steps
    // (see `os::block_command_signals`).
    let _ = mmrun::os::block_command_signals();
    let code = match cli::run() {
        Ok(()) => {
            if let Some(sig) = mmrun::os::take_pending_stop() {
                eprintln!("mmrun: {sig} arrived after the work was done and published: exit 0");
            }
            mmrun::exit_code::SUCCESS
        }
        Err(e) => {
            eprintln!("mmrun: error: {e}");
            if let ErrorKind::Interrupted(sig) = e.kind() {
                mmrun::os::die_of_signal(sig);
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
