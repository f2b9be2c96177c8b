//! The event loop: one epoll set over the signalfd, the watcher's descriptors (the cgroup
//! watch), the watcher's timer (armed only when it asks, after a v1 OOM notification) and, only
//! while a `--grace` period runs, a timer. It blocks with no timeout, so an idle oominit never
//! wakes.
//!
//! Each wake: forward signals to the child, hand cgroup events to the watcher and carry out what
//! it asks, reap every zombie. When the main process has been reaped: exit at once (as tini does;
//! as PID 1 the kernel then kills the rest of the namespace), or, with `--grace`, TERM the rest,
//! wait, then KILL.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::libc::{self, pid_t};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signalfd::SignalFd;
use nix::sys::timerfd::TimerFd;

use crate::cli::Config;
use crate::diag;
use crate::error::{Context, Error};
use crate::procfs;
use crate::reap::{self, Status};
use crate::signals;
use crate::timer;

const SIGNALS: u64 = 0;
const GRACE: u64 = 1;
const WATCHER_TIMER: u64 = 2;
/// Watcher descriptors are WATCH, WATCH + 1, …
const WATCH: u64 = 3;

/// What the loop reports to whoever watches the container alongside it (the cgroup watcher), and
/// what that watcher may ask of the loop in return.
pub trait Watcher {
    /// Descriptors to wake on (the cgroup watch), fixed for the whole run.
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// Whether it may ask for [`Action::Timer`]: the timer is then made at start, not while the
    /// cgroup is full.
    fn wants_timer(&self) -> bool;
    /// Descriptor number `which` of [`Watcher::fds`] became readable.
    fn on_wake(&mut self, which: usize) -> Option<Action>;
    /// The timer it asked for fired.
    fn on_timer(&mut self) -> Option<Action>;
    /// Processes were reaped.
    fn on_reap(&mut self, exits: &[(pid_t, Status)]) -> Option<Action>;
}

/// What a watcher asks the loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Arm the watcher's one-shot timer to fire after this long, or disarm it (None).
    Timer(Option<Duration>),
}

/// How the main process ended, and whether oominit itself sent it a SIGKILL (a signal rewritten
/// to KILL with `-r`): then a death by SIGKILL is not the kernel's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MainExit {
    pub status: Status,
    pub sigkilled_by_oominit: bool,
}

enum Phase {
    Running,
    /// Main is gone; the rest got SIGTERM and have until the timer fires.
    Grace(TimerFd),
    /// The grace ran out; what is left got SIGKILL.
    Killing,
}

/// Run until the main process has been reaped (and, with `--grace`, until every other process
/// has gone too); return how the main process ended.
pub fn supervise(
    cfg: &Config,
    sigfd: &SignalFd,
    main: pid_t,
    watcher: &mut dyn Watcher,
) -> Result<MainExit, Error> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("creating the epoll set")?;
    epoll.add(sigfd, EpollEvent::new(EpollFlags::EPOLLIN, SIGNALS)).context("watching the signalfd")?;
    for (i, fd) in watcher.fds().into_iter().enumerate() {
        epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, WATCH + i as u64))
            .context("watching the cgroup")?;
    }
    // Without it, what the watcher would re-check after a wake waits for the next reap or exit.
    let watcher_timer = if watcher.wants_timer() {
        match timer::new().and_then(|t| {
            epoll.add(&t, EpollEvent::new(EpollFlags::EPOLLIN, WATCHER_TIMER)).context("watching a timer")?;
            Ok(t)
        }) {
            Ok(t) => Some(t),
            Err(e) => {
                diag!(1, "{e}: kills are then reported at the next reap");
                None
            }
        }
    } else {
        None
    };
    let act = |action: Option<Action>| match (action, &watcher_timer) {
        (Some(Action::Timer(Some(after))), Some(t)) => {
            if let Err(e) = timer::arm(t, after) {
                diag!(1, "{e}");
            }
        }
        (Some(Action::Timer(None)), Some(t)) => {
            let _ = t.unset();
        }
        _ => {}
    };

    // getpid() is a syscall under musl; asked once, not once per signal.
    let me = std::process::id();
    let is_pid1 = me == 1;
    let mut phase = Phase::Running;
    let mut main_status = None;
    let mut sigkilled_main = false;
    let mut events = [EpollEvent::empty(); 4];
    loop {
        let n = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(Error::new("waiting for events", e)),
        };
        let mut reap_now = false;
        for ev in &events[..n] {
            match ev.data() {
                SIGNALS => {
                    let forwarded = forward_signals(cfg, sigfd, me, main, main_status.is_some());
                    reap_now |= forwarded.sigchld;
                    sigkilled_main |= forwarded.sigkill;
                }
                GRACE => {
                    if let Phase::Grace(timer) = &phase {
                        let _ = timer.wait();
                        diag!(1, "grace period over: sending SIGKILL to the remaining processes");
                        signal_rest(is_pid1, libc::SIGKILL);
                        phase = Phase::Killing;
                    }
                }
                WATCHER_TIMER => {
                    if let Some(t) = &watcher_timer {
                        let _ = t.wait();
                        act(watcher.on_timer());
                    }
                }
                w => act(watcher.on_wake((w - WATCH) as usize)),
            }
        }
        if !reap_now {
            continue;
        }
        let reaped = reap::reap_all();
        for &(pid, status) in &reaped.exits {
            diag!(3, "reaped {pid}: {status:?}");
            if pid == main {
                main_status = Some(status);
            }
        }
        if !reaped.exits.is_empty() {
            act(watcher.on_reap(&reaped.exits));
        }
        let Some(status) = main_status else { continue };
        let exit = MainExit { status, sigkilled_by_oominit: sigkilled_main };
        if !reaped.children_left {
            return Ok(exit);
        }
        match (&phase, cfg.grace) {
            (Phase::Running, None) => return Ok(exit),
            (Phase::Running, Some(grace)) => {
                diag!(
                    2,
                    "main process ended: SIGTERM to the remaining processes, {} ms to exit",
                    grace.as_millis()
                );
                signal_rest(is_pid1, libc::SIGTERM);
                let timer = timer::new()?;
                timer::arm(&timer, grace)?;
                epoll
                    .add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, GRACE))
                    .context("watching the grace timer")?;
                phase = Phase::Grace(timer);
            }
            // Processes forked after the last sweep have escaped it: sweep again while killing.
            (Phase::Killing, _) => signal_rest(is_pid1, libc::SIGKILL),
            (Phase::Grace(_), _) => {}
        }
    }
}

/// What a drain of the signalfd saw and did.
struct Forwarded {
    sigchld: bool,
    /// A SIGKILL was sent to the main process (or its group).
    sigkill: bool,
}

/// Drain the signalfd: forward each signal (rewritten as asked), and say whether SIGCHLD came.
fn forward_signals(cfg: &Config, sigfd: &SignalFd, me: u32, main: pid_t, main_gone: bool) -> Forwarded {
    let mut done = Forwarded { sigchld: false, sigkill: false };
    for info in signals::read_batch(sigfd).iter() {
        let signo = info.ssi_signo as i32;
        if signo == libc::SIGCHLD {
            done.sigchld = true;
            continue;
        }
        // Raised by oominit against itself, such as SIGPIPE from writing a record to a closed
        // pipe (blocked, so it queues here instead of killing PID 1): not the command's business.
        if info.ssi_pid == me {
            diag!(3, "{} raised by oominit itself: not forwarded", signals::name(signo));
            continue;
        }
        if main_gone {
            diag!(2, "{} received after the main process ended: not forwarded", signals::name(signo));
            continue;
        }
        let Some(to) = cfg.rewrite(signo) else {
            diag!(3, "{} dropped (-r)", signals::name(signo));
            continue;
        };
        let target = if cfg.kill_group { -main } else { main };
        diag!(3, "forwarding {} to {target}", signals::name(to));
        done.sigkill |= to == libc::SIGKILL;
        // ESRCH: the child is already gone and its SIGCHLD is on its way.
        if let Err(e) = signals::send(target, to) {
            if e != Errno::ESRCH {
                diag!(1, "forwarding {} to {target}: {e}", signals::name(to));
            }
        }
    }
    done
}

/// Signal every process left after the main one.
fn signal_rest(is_pid1: bool, signo: i32) {
    if is_pid1 {
        // kill(-1) from a namespace's init reaches every process of the namespace but itself.
        let _ = signals::send(-1, signo);
    } else {
        for pid in procfs::descendants(std::process::id() as pid_t) {
            let _ = signals::send(pid, signo);
        }
    }
}
