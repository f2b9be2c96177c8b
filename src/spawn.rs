//! Starting the command: PATH lookup, and a child that starts clean.
//!
//! `std::process::Command` does the PATH search and reports exec failures through its CLOEXEC pipe,
//! which tells "not found" (127) from "not executable" (126). What it does not do, we do between
//! fork and exec: it passes on oominit's full signal mask (rust-lang/rust#101077), under which a
//! forwarded SIGTERM would wait forever.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::libc;

use crate::error::{EXIT_FATAL, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};

/// What the child must be given back before exec.
pub struct ChildSetup {
    /// The `oom_score_adj` oominit found at start, when it lowered its own.
    pub oom_score_adj: Option<i32>,
}

/// Why the command never ran, and what oominit exits with.
#[derive(Debug)]
pub struct SpawnError {
    pub error: io::Error,
}

impl SpawnError {
    pub fn exit_code(&self) -> i32 {
        match self.error.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => EXIT_NOT_FOUND,
            Some(libc::EACCES)
            | Some(libc::ENOEXEC)
            | Some(libc::EISDIR)
            | Some(libc::EPERM)
            | Some(libc::ETXTBSY)
            | Some(libc::ELOOP)
            | Some(libc::ENAMETOOLONG) => EXIT_NOT_EXECUTABLE,
            _ => EXIT_FATAL,
        }
    }
}

/// Fork and exec the command; returns its pid, which is also its process group.
pub fn spawn(argv: &[std::ffi::OsString], setup: &ChildSetup) -> Result<libc::pid_t, SpawnError> {
    let (program, args) = match argv.split_first() {
        Some(split) => split,
        None => {
            return Err(SpawnError {
                error: io::Error::from_raw_os_error(libc::ENOENT),
            })
        }
    };
    // Formatted before fork: the child should not allocate (a forked child of a threaded parent
    // could deadlock on the allocator's lock; oominit has one thread, but keep the habit).
    let adj = setup.oom_score_adj.map(|v| {
        let mut buf = [0u8; 16];
        let s = v.to_string();
        let n = s.len().min(buf.len());
        buf[..n].copy_from_slice(&s.as_bytes()[..n]);
        (buf, n)
    });
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions, on data prepared before fork.
    unsafe {
        cmd.pre_exec(move || {
            child_setup(adj.as_ref().map(|(b, n)| &b[..*n]));
            Ok(())
        });
    }
    match cmd.spawn() {
        Ok(child) => Ok(child.id() as libc::pid_t),
        Err(error) => Err(SpawnError { error }),
    }
}

/// Runs in the child between fork and exec. Errors here are deliberately ignored: each step is a
/// nicety that must not stop the command from running.
fn child_setup(oom_score_adj: Option<&[u8]>) {
    // SAFETY: plain syscalls on constant or pre-built arguments.
    unsafe {
        // Own process group, so `-g` and the terminal's job control address it and its children.
        libc::setpgid(0, 0);
        // Take the terminal's foreground so the shell or REPL we run can read and get ^C. The
        // kernel allows a background tcsetpgrp only while SIGTTOU is blocked or ignored, and the
        // mask is still oominit's full one here. ENOTTY (no terminal) is the usual, fine, answer.
        if libc::isatty(libc::STDIN_FILENO) == 1 {
            libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
        }
        if let Some(bytes) = oom_score_adj {
            // oominit lowered its own to -1000 to survive to report; children inherit it, and
            // a container's processes must stay as killable as they were. Raising never needs a
            // privilege.
            let fd = libc::open(
                c"/proc/self/oom_score_adj".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::write(fd, bytes.as_ptr().cast(), bytes.len());
                libc::close(fd);
            }
        }
        // Default dispositions: Rust's runtime ignores SIGPIPE, and an ignored disposition survives
        // exec. Then an empty mask, last, so nothing is delivered before the dispositions are sane.
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}
