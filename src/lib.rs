//! oominit: a PID-1 init for containers that tells the truth about out-of-memory kills.
//!
//! The algorithm, in the order it runs: parse the command line ([`cli`]); block every signal and
//! read them from a signalfd ([`signals`]); become a subreaper when not PID 1; start the command
//! clean ([`spawn`]); then one event loop that forwards signals and reaps zombies ([`supervise`]);
//! exit with the command's code.

pub mod cli;
pub mod diag;
pub mod error;
pub mod procfs;
pub mod reap;
pub mod signals;
pub mod spawn;
pub mod supervise;

use std::ffi::OsString;

use nix::libc;

use crate::cli::{Action, Config};
use crate::error::{Error, EXIT_FATAL, EXIT_USAGE};
use crate::reap::Status;

/// Everything `main` does; returns the process exit code.
pub fn main_entry(args: Vec<OsString>) -> i32 {
    match cli::parse(args, &|k| std::env::var(k).ok()) {
        Err(e) => {
            eprintln!("oominit: {e} (see 'oominit --help')");
            EXIT_USAGE
        }
        Ok(Action::Help) => {
            print!("{}", cli::HELP);
            0
        }
        Ok(Action::Version) => {
            println!("oominit {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Ok(Action::Run(cfg)) => match run(&cfg) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("oominit: {e}");
                EXIT_FATAL
            }
        },
    }
}

fn run(cfg: &Config) -> Result<i32, Error> {
    diag::set_level(cfg.verbosity);
    let sigfd = signals::block_and_open()?;
    become_reaper(cfg);
    if let Some(sig) = cfg.pdeath_signal {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) } != 0 {
            diag!(1, "cannot set the parent-death signal: {}", std::io::Error::last_os_error());
        }
    }

    let setup = spawn::ChildSetup { oom_score_adj: None };
    let main = match spawn::spawn(&cfg.command, &setup) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("oominit: cannot run '{}': {e}", cfg.command[0].to_string_lossy());
            return Ok(e.exit_code());
        }
    };
    diag!(2, "started '{}' as {main}", cfg.command[0].to_string_lossy());

    let status = supervise::supervise(cfg, &sigfd, main, &mut supervise::NoWatch)?;
    Ok(exit_code(cfg, status))
}

/// Orphans go to the nearest subreaper, or to PID 1. When oominit is not PID 1 (`docker run
/// --init` puts docker-init there, a shell may run oominit by hand) it must be that subreaper, or
/// the zombies of the command's grandchildren would escape it. No warning: it is simply done.
fn become_reaper(cfg: &Config) {
    if std::process::id() == 1 && !cfg.subreaper {
        return;
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) } != 0 {
        diag!(1, "cannot become a child subreaper: {}", std::io::Error::last_os_error());
    }
}

/// The child's code, 128+N for signal N, and 0 for a code remapped with `-e`.
fn exit_code(cfg: &Config, status: Status) -> i32 {
    let code = status.code();
    if cfg.remap_to_zero.contains(&code) {
        0
    } else {
        code
    }
}
