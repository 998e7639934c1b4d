//! External worker programs (`mmrun exec`): finding PROGRAM, filling in
//! `{file} {start} …` templates, and building protocol-v1 environments.
//!
//! Everything here is checked before any file is created, so a missing
//! program or a bad template is exit 2 with nothing changed. No shell is
//! involved anywhere: each argument is passed as one `argv` entry.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::worker::WorkerTask;

/// The placeholders `{name}` that ARGS may use.
pub const PLACEHOLDERS: [&str; 6] = ["file", "start", "end", "worker", "workers", "seed"];

/// An external program run as every worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// PROGRAM and its ARGS, templates not yet filled in.
    pub argv: Vec<String>,
    /// Keep `OMPI_COMM_WORLD_*`, `PMI_*`, `PMIX_RANK`, `SLURM_PROCID`.
    pub keep_launcher_env: bool,
    /// Prefix each output line with `[w<ID>] `.
    pub tag_output: bool,
    /// Send workers' stdout to mmrun's stderr (so stdout holds a report).
    pub stdout_to_stderr: bool,
}

impl Program {
    /// Checks the program exists and is executable, and every template is
    /// well-formed. Returns the resolved program path.
    pub fn validate(&self) -> Result<PathBuf> {
        let first = self
            .argv
            .first()
            .ok_or_else(|| Error::refused("exec needs a PROGRAM after --"))?;
        for arg in &self.argv[1..] {
            fill_template(arg, &|_| Some(String::new()))?;
        }
        resolve_program(first)
    }
}

/// Finds PROGRAM as `execvp` would: a name with a `/` is a path, any other
/// name is looked up in `PATH`. It must be an executable regular file.
pub fn resolve_program(name: &str) -> Result<PathBuf> {
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            return Err(Error::refused(format!("program {name} does not exist")));
        }
        if !executable(&p) {
            return Err(Error::refused(format!(
                "program {name} is not an executable file"
            )));
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
        .ok_or_else(|| {
            Error::refused(format!(
                "program {name} was not found in PATH or is not executable"
            ))
        })
}

/// Replaces `{name}` placeholders using `value`; `{{` and `}}` are literal
/// braces. An unknown name or an unmatched brace is refused.
pub fn fill_template(arg: &str, value: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(arg.len());
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(Error::refused(format!(
                        "unmatched '{{' in argument '{arg}' (write {{{{ for a literal brace)"
                    )));
                }
                if !PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(Error::refused(format!(
                        "unknown placeholder {{{name}}} in argument '{arg}' (known: {{file}} {{start}} {{end}} {{worker}} {{workers}} {{seed}}; write {{{{ and }}}} for braces)"
                    )));
                }
                out.push_str(&value(&name).unwrap_or_default());
            }
            '}' => {
                return Err(Error::refused(format!(
                    "unmatched '}}' in argument '{arg}' (write }}}} for a literal brace)"
                )))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Launcher variables removed from a worker's environment by default, so a
/// worker started under `srun`/`mpirun` does not think it is a rank itself.
fn is_launcher_var(k: &[u8]) -> bool {
    k.starts_with(b"OMPI_COMM_WORLD_")
        || k.starts_with(b"PMI_")
        || k == b"PMIX_RANK"
        || k == b"SLURM_PROCID"
}

/// A list of byte strings: an argv or an environment.
pub type ByteStrings = Vec<Vec<u8>>;

/// The argv and environment (as `KEY=VALUE` byte strings) of one worker.
pub fn worker_command(
    program: &Program,
    resolved: &Path,
    task: &WorkerTask,
    extra_env: &[(String, String)],
) -> Result<(ByteStrings, ByteStrings)> {
    let seed = task.seed.map(|s| s.to_string()).unwrap_or_default();
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "file" => task.path.to_string_lossy().into_owned(),
            "start" => task.range.start.to_string(),
            "end" => task.range.end.to_string(),
            "worker" => task.worker.to_string(),
            "workers" => task.workers.to_string(),
            "seed" => seed.clone(),
            _ => return None,
        })
    };
    let mut argv = vec![resolved.as_os_str().as_bytes().to_vec()];
    for a in &program.argv[1..] {
        argv.push(fill_template(a, &value)?.into_bytes());
    }
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        let k = k.as_bytes();
        if k.starts_with(b"MMRUN_") && k != b"MMRUN_LOG" || k == b"PYTHONUNBUFFERED" {
            continue;
        }
        if !program.keep_launcher_env && is_launcher_var(k) {
            continue;
        }
        let mut kv = k.to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env.push(kv);
    }
    env.push(b"PYTHONUNBUFFERED=1".to_vec());
    for (k, v) in task.to_env().into_iter().chain(extra_env.iter().cloned()) {
        env.push(format!("{k}={v}").into_bytes());
    }
    Ok((argv, env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(s: &str) -> Result<String> {
        fill_template(s, &|n| Some(format!("<{n}>")))
    }

    #[test]
    fn templates_fill_and_escape() {
        assert_eq!(
            fill("{file}:{start}-{end}").unwrap(),
            "<file>:<start>-<end>"
        );
        assert_eq!(
            fill("{{literal}} {worker}/{workers} {seed}").unwrap(),
            "{literal} <worker>/<workers> <seed>"
        );
        assert_eq!(fill("no braces").unwrap(), "no braces");
        assert!(fill("{nope}")
            .unwrap_err()
            .message()
            .contains("unknown placeholder {nope}"));
        assert!(fill("a}b").is_err());
        assert!(fill("{file").is_err());
    }

    #[test]
    fn programs_resolve_like_execvp() {
        assert!(resolve_program("sh").is_ok());
        assert!(resolve_program("/bin/sh").is_ok());
        assert!(resolve_program("definitely-not-a-program-xyz").is_err());
        assert!(resolve_program("/etc/passwd").is_err());
        assert!(resolve_program("/nonexistent/prog").is_err());
    }
}
