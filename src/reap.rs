//! Reaping: collect every child that has exited, and decode how it ended.
//!
//! Raw `waitpid` rather than nix's: nix turns a death by a real-time signal into an error,
//! because its `Signal` enum cannot name one, and a reaper must never fail to reap.

use nix::errno::Errno;
use nix::libc;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
}

impl Status {
    /// The shell's convention, which tini, dumb-init and Docker follow: 128+N for signal N.
    pub fn code(self) -> i32 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(s) => 128 + s,
        }
    }

    pub(crate) fn from_raw(st: libc::c_int) -> Option<Status> {
        if libc::WIFEXITED(st) {
            Some(Status::Exited(libc::WEXITSTATUS(st)))
        } else if libc::WIFSIGNALED(st) {
            Some(Status::Signaled(libc::WTERMSIG(st)))
        } else {
            None
        }
    }
}

/// One pass of reaping.
pub struct Reaped {
    pub exits: Vec<(libc::pid_t, Status)>,
    /// False once the kernel says there is no child at all (ECHILD).
    pub children_left: bool,
}

/// Reap every child that has ended, without blocking. SIGCHLD coalesces, so one signal may stand
/// for many exits: loop until waitpid has nothing more.
pub fn reap_all() -> Reaped {
    let mut exits = Vec::new();
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: waitpid writes only to `st`.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        match pid {
            0 => return Reaped { exits, children_left: true },
            -1 => match Errno::last() {
                Errno::EINTR => continue,
                // ECHILD, or anything unexpected: nothing more can be reaped.
                _ => return Reaped { exits, children_left: false },
            },
            pid => {
                if let Some(status) = Status::from_raw(st) {
                    exits.push((pid, status));
                }
            }
        }
    }
}
