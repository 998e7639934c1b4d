//! The `mmrun` binary: parse the command line, run it, map the outcome to an
//! exit code. Everything else is in the library.

mod cli;

use mmrun::ErrorKind;

fn main() {
    // Re-executed workers skip argument parsing and logging set-up entirely.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__worker") {
        std::process::exit(mmrun::worker::exec_main());
    }
    let code = match cli::run() {
        Ok(()) => mmrun::exit_code::SUCCESS,
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
