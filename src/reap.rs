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

    /// From waitid's siginfo: `si_code` CLD_EXITED, CLD_KILLED or CLD_DUMPED, and `si_status`.
    fn from_siginfo(code: libc::c_int, value: libc::c_int) -> Option<Status> {
        match code {
            libc::CLD_EXITED => Some(Status::Exited(value)),
            libc::CLD_KILLED | libc::CLD_DUMPED => Some(Status::Signaled(value)),
            _ => None,
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
/// for many exits: loop until there is nothing more. With `before`, it is told of each one first,
/// while it is still a zombie whose /proc entry names it (waitid with WNOWAIT), then it is reaped:
/// two calls a child instead of one, so only when the caller has a use for it.
pub fn reap_all(before: Option<&mut dyn FnMut(libc::pid_t, Status)>) -> Reaped {
    let Some(before) = before else { return reap_rest(Vec::new()) };
    let mut exits = Vec::new();
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only to `info`.
        let r =
            unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
        if r == -1 {
            match Errno::last() {
                Errno::EINTR => continue,
                // ECHILD, or anything unexpected: what waitpid can still reap, it reaps.
                _ => return reap_rest(exits),
            }
        }
        // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed: no child has ended).
        let (pid, code, value) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
        if pid == 0 {
            return Reaped { exits, children_left: true };
        }
        if let Some(status) = Status::from_siginfo(code, value) {
            before(pid, status);
        }
        match reap(pid) {
            Some(Some(status)) => exits.push((pid, status)),
            Some(None) => {}
            // It could not be reaped by its pid: never seen, but then waitid would offer the
            // same child forever.
            None => return reap_rest(exits),
        }
    }
}

/// Reap `pid`, which has ended: Some(its status, if it decodes), None if it could not be.
fn reap(pid: libc::pid_t) -> Option<Option<Status>> {
    loop {
        let mut st: libc::c_int = 0;
        // SAFETY: waitpid writes only to `st`.
        match unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } {
            -1 if Errno::last() == Errno::EINTR => continue,
            got if got == pid => return Some(Status::from_raw(st)),
            _ => return None,
        }
    }
}

/// Reap whatever is left with plain waitpid, until nothing is.
fn reap_rest(mut exits: Vec<(libc::pid_t, Status)>) -> Reaped {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waitid_statuses_decode_as_waitpid_ones() {
        // (si_code, si_status) as waitid reports them, and the wait status waitpid gives.
        let rows = [
            ((libc::CLD_EXITED, 3), 3 << 8, Some(Status::Exited(3))),
            ((libc::CLD_KILLED, 9), 9, Some(Status::Signaled(9))),
            ((libc::CLD_DUMPED, 11), 11 | 0x80, Some(Status::Signaled(11))),
            ((libc::CLD_STOPPED, 19), 0x137f, None),
        ];
        for ((code, value), raw, want) in rows {
            assert_eq!(Status::from_siginfo(code, value), want, "si_code {code}");
            assert_eq!(Status::from_raw(raw), want, "wait status {raw:#x}");
        }
    }
}
