//! Signals: names and numbers, the mask oominit runs under, and the signalfd it reads them from.
//!
//! oominit never installs a handler. It blocks every signal it may receive and reads them from a
//! signalfd in its one event loop, like catatonit. Blocking also matters for PID 1: the kernel
//! drops a signal sent to a namespace's init whose disposition is SIG_DFL, but a blocked signal
//! "is never ignored" (kernel/signal.c `sig_ignored`), so it is queued and reaches the signalfd.

use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::error::{Context, Error};

const NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGILL, "ILL"),
    (libc::SIGTRAP, "TRAP"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGBUS, "BUS"),
    (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGSEGV, "SEGV"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGSTKFLT, "STKFLT"),
    (libc::SIGCHLD, "CHLD"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGSTOP, "STOP"),
    (libc::SIGTSTP, "TSTP"),
    (libc::SIGTTIN, "TTIN"),
    (libc::SIGTTOU, "TTOU"),
    (libc::SIGURG, "URG"),
    (libc::SIGXCPU, "XCPU"),
    (libc::SIGXFSZ, "XFSZ"),
    (libc::SIGVTALRM, "VTALRM"),
    (libc::SIGPROF, "PROF"),
    (libc::SIGWINCH, "WINCH"),
    (libc::SIGIO, "IO"),
    (libc::SIGPWR, "PWR"),
    (libc::SIGSYS, "SYS"),
    // Aliases: parsed, never printed (the first match above wins when naming).
    (libc::SIGABRT, "IOT"),
    (libc::SIGIO, "POLL"),
    (libc::SIGCHLD, "CLD"),
];

/// Faults the kernel raises synchronously in oominit itself. Left unblocked: a blocked fault is
/// forced through anyway, and there is nothing sensible to forward.
const SYNCHRONOUS: &[Signal] =
    &[Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE, Signal::SIGTRAP, Signal::SIGSYS];

pub fn rtmin() -> i32 {
    libc::SIGRTMIN()
}

pub fn rtmax() -> i32 {
    libc::SIGRTMAX()
}

/// "SIGTERM", "term", "15", "RTMIN+2", "SIGRTMAX-1" → the signal number.
/// `allow_zero` admits "0", which means "no signal" where a caller gives it that meaning.
pub fn parse(text: &str, allow_zero: bool) -> Result<i32, String> {
    let bad = || format!("unknown signal '{text}'");
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i32 = t.parse().map_err(|_| bad())?;
        return if (n == 0 && allow_zero) || (1..=rtmax()).contains(&n) { Ok(n) } else { Err(bad()) };
    }
    let upper = t.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(n, _)) = NAMES.iter().find(|(_, s)| *s == name) {
        return Ok(n);
    }
    let rt = |base: i32, rest: &str| -> Result<i32, String> {
        let n = match rest.as_bytes().first() {
            None => base,
            Some(b'+') => base.checked_add(rest[1..].parse::<i32>().map_err(|_| bad())?).ok_or_else(bad)?,
            Some(b'-') => base.checked_sub(rest[1..].parse::<i32>().map_err(|_| bad())?).ok_or_else(bad)?,
            Some(_) => return Err(bad()),
        };
        if (rtmin()..=rtmax()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rtmin(), rest);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rtmax(), rest);
    }
    Err(bad())
}

/// The conventional name of a signal number, "SIGTERM" or "SIGRTMIN+3", or the number itself.
pub fn name(signo: i32) -> String {
    if let Some((_, s)) = NAMES.iter().find(|(n, _)| *n == signo) {
        return format!("SIG{s}");
    }
    if (rtmin()..=rtmax()).contains(&signo) {
        return match signo - rtmin() {
            0 => "SIGRTMIN".to_string(),
            k => format!("SIGRTMIN+{k}"),
        };
    }
    signo.to_string()
}

/// Every signal oominit may receive: all but SIGKILL/SIGSTOP (unblockable) and synchronous faults.
fn catchable() -> SigSet {
    let mut set = SigSet::all();
    for s in SYNCHRONOUS {
        set.remove(*s);
    }
    set
}

/// Block every catchable signal. Must run before the child is spawned, so that no signal sent in
/// between is lost or mishandled.
pub fn block() -> Result<(), Error> {
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&catchable()), None)
        .context("blocking signals")
}

/// A signalfd that delivers the blocked signals.
pub fn open() -> Result<SignalFd, Error> {
    SignalFd::with_flags(&catchable(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .context("creating the signalfd")
}

/// A signal received: its number and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub signo: i32,
    pub pid: u32,
}

/// Every signal pending on the signalfd, in one read where there are at most eight: one read(2)
/// per forwarded signal, where reading until EAGAIN would cost a second. The epoll set is
/// level-triggered, so a ninth is picked up on the next wake.
pub fn read_batch(sigfd: &SignalFd) -> Batch {
    // SAFETY: signalfd_siginfo is plain old data; all zeroes is a valid value.
    let mut batch = Batch { infos: [unsafe { std::mem::zeroed() }; 8], len: 0 };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    loop {
        // SAFETY: reading plain-old-data records into a buffer of that size.
        let n = unsafe {
            libc::read(sigfd.as_raw_fd(), batch.infos.as_mut_ptr().cast(), size * batch.infos.len())
        };
        if n >= 0 {
            batch.len = usize::try_from(n).unwrap_or(0) / size;
            return batch;
        }
        if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return batch;
        }
    }
}

pub struct Batch {
    infos: [libc::signalfd_siginfo; 8],
    len: usize,
}

impl Batch {
    pub fn iter(&self) -> impl Iterator<Item = Received> + '_ {
        self.infos.iter().take(self.len).map(|i| Received { signo: i.ssi_signo as i32, pid: i.ssi_pid })
    }
}

/// Wait for one blocked signal, up to `timeout` (None: for ever), without any descriptor: the
/// loop of last resort. Ok(None) when the time ran out or a wait was interrupted.
pub fn wait(timeout: Option<std::time::Duration>) -> Result<Option<Received>, nix::errno::Errno> {
    let set = catchable();
    // SAFETY: siginfo_t is plain old data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let ts = timeout.map(|d| libc::timespec {
        // At most a year: every deadline here is far shorter, and it fits any time_t.
        tv_sec: d.as_secs().min(365 * 86_400) as _,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: the set, info and timespec live across the call.
    let rc = unsafe { libc::sigtimedwait(set.as_ref(), &mut info, ts_ptr) };
    if rc < 0 {
        return match nix::errno::Errno::last() {
            nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR => Ok(None),
            e => Err(e),
        };
    }
    // SAFETY: si_pid is valid for the signals a process sends (kill, sigqueue, SIGCHLD).
    let pid = unsafe { info.si_pid() } as u32;
    Ok(Some(Received { signo: rc, pid }))
}

/// Send a raw signal number (real-time ones included, which nix's `Signal` cannot name).
pub fn send(target: libc::pid_t, signo: i32) -> nix::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(target, signo) };
    nix::errno::Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_realtime() {
        assert_eq!(parse("SIGTERM", false), Ok(15));
        assert_eq!(parse("term", false), Ok(15));
        assert_eq!(parse("15", false), Ok(15));
        assert_eq!(parse("sigusr1", false), Ok(libc::SIGUSR1));
        assert_eq!(parse("IOT", false), Ok(libc::SIGABRT));
        assert_eq!(parse("RTMIN", false), Ok(rtmin()));
        assert_eq!(parse("SIGRTMIN+3", false), Ok(rtmin() + 3));
        assert_eq!(parse("RTMAX-1", false), Ok(rtmax() - 1));
        assert_eq!(parse("0", true), Ok(0));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "0",
            "65",
            "-1",
            "SIGFOO",
            "RTMIN+99",
            "RTMIN+2147483647",
            "RTMAX-2147483647",
            "RTMAX+1",
            "RTMIN+-1",
            "RTMINx",
            "1.5",
            "SIG",
        ] {
            assert!(parse(bad, false).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names_round_trip() {
        for n in 1..=rtmax() {
            let name = name(n);
            assert_eq!(parse(&name, false), Ok(n), "{name}");
        }
        assert_eq!(name(libc::SIGABRT), "SIGABRT");
        assert_eq!(name(rtmin() + 2), "SIGRTMIN+2");
    }
}
