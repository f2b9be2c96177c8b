//! The event loop: one epoll set over the signalfd and the watcher's descriptors (the cgroup
//! watch). It blocks with no timeout, so an idle oominit never wakes; a deadline bounds the wait
//! only while one is due: a `--grace` period, or a re-check the watcher asked for (after a v1 OOM
//! notification).
//!
//! Each wake: forward signals to the child, hand cgroup events to the watcher and carry out what
//! it asks, reap every zombie. When the main process has been reaped: exit at once (as tini does;
//! as PID 1 the kernel then kills the rest of the namespace), or, with `--grace`, TERM the rest,
//! wait, then KILL. When the watcher asks to stop the main process (`--on-leaf-oom exit`): TERM
//! it; once it has ended, TERM the rest; whatever is left when the grace from that first TERM
//! runs out, main included, gets KILL.
//!
//! The loop's own descriptors ([`Loop`]) are made before anything else, so that reporting can
//! never take the last descriptors the init's job needs. Where even those cannot be had
//! (`ulimit -n 3`), the command still runs, under the loop tini has: `sigtimedwait` over the
//! blocked signals, no cgroup watch (counters are read at reaps and at exit where a descriptor
//! allows).

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc::{self, pid_t};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signalfd::SignalFd;

use crate::cli::Config;
use crate::diag;
use crate::error::{Context, Error};
use crate::procfs;
use crate::reap::{self, Status};
use crate::signals::{self, Received};

const SIGNALS: u64 = 0;
/// Watcher descriptors are WATCH, WATCH + 1, …
const WATCH: u64 = 1;

/// After the grace's SIGKILL, how long to wait for processes oominit cannot find to signal (no
/// /proc when not PID 1) before it exits and leaves them to the kernel.
const UNFOUND_WAIT: Duration = Duration::from_secs(1);

/// What the loop reports to whoever watches the container alongside it (the cgroup watcher), and
/// what that watcher may ask of the loop in return.
pub trait Watcher {
    /// Descriptors to wake on (the cgroup watch), fixed for the whole run.
    fn fds(&self) -> Vec<BorrowedFd<'_>>;
    /// The loop is starting: a first timer, say.
    fn on_start(&mut self) -> Option<Action> {
        None
    }
    /// Descriptor number `which` of [`Watcher::fds`] became readable.
    fn on_wake(&mut self, which: usize) -> Option<Action>;
    /// The wake it asked for with [`Action::WakeAfter`] is due.
    fn on_timer(&mut self) -> Option<Action>;
    /// Whether [`Watcher::before_reap`] is wanted for the exits about to be reaped (it costs a
    /// second wait call a child).
    fn look_before_reap(&mut self) -> bool {
        false
    }
    /// Process `pid` has ended by `status` and is about to be reaped: until then its /proc
    /// entry still names it.
    fn before_reap(&mut self, _pid: pid_t, _status: Status) {}
    /// Processes were reaped.
    fn on_reap(&mut self, exits: &[(pid_t, Status)]) -> Option<Action>;
    /// A signal was forwarded to the command. A stop may follow that kills oominit before any
    /// exit record (`docker stop`'s SIGKILL after 10 s): what is known should be said now.
    fn on_forward(&mut self) -> Option<Action>;
    /// The signal asked for with [`Action::SignalMain`] was sent.
    fn main_signalled(&mut self) {}
    /// oominit is about to send SIGKILL itself: deaths by SIGKILL from here on may be its own.
    fn sending_sigkill(&mut self) {}
}

/// What a watcher asks the loop to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Call [`Watcher::on_timer`] once, this long from now (replacing any earlier request), or
    /// never (None).
    WakeAfter(Option<Duration>),
    /// Stop the main process: SIGTERM to it (to its process group with `-g`), then, whatever
    /// it does, SIGKILL to what is left once the grace ([`Config::stop_grace`]) has run out.
    /// Asked at most once; ignored once main has ended.
    StopMain,
    /// Send the main process this signal (to its process group with `-g`), and nothing after
    /// it: `--pre-oom-stop`. Ignored once main has ended.
    SignalMain(i32),
}

/// How the main process ended, and whether oominit itself sent it a SIGKILL (a signal rewritten
/// to KILL with `-r`): then a death by SIGKILL is not the kernel's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MainExit {
    pub status: Status,
    pub sigkilled_by_oominit: bool,
    /// oominit stopped the main process ([`Action::StopMain`]), giving it this grace.
    pub stopped: Option<Duration>,
}

/// The loop's descriptors: the signalfd and the epoll set.
pub struct Loop {
    sigfd: SignalFd,
    epoll: Epoll,
}

impl Loop {
    /// Make them; signals must be blocked already ([`signals::block`]).
    pub fn open() -> Result<Loop, Error> {
        let sigfd = signals::open()?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("creating the epoll set")?;
        epoll.add(&sigfd, EpollEvent::new(EpollFlags::EPOLLIN, SIGNALS)).context("watching the signalfd")?;
        Ok(Loop { sigfd, epoll })
    }
}

enum Phase {
    Running,
    /// oominit sent main SIGTERM ([`Action::StopMain`]); it and the rest have until then.
    Stopping(Instant),
    /// Main is gone; the rest got SIGTERM and have until then.
    Grace(Instant),
    /// The grace ran out; what is left got SIGKILL. Until then, oominit waits for what it could
    /// not find to signal.
    Killing(Option<Instant>),
}

/// The loop's state, whichever way it waits.
struct Supervisor<'c, 'w> {
    cfg: &'c Config,
    watcher: &'w mut dyn Watcher,
    main: pid_t,
    phase: Phase,
    main_status: Option<Status>,
    sigkilled_main: bool,
    /// The grace given when oominit stopped the main process.
    stopped: Option<Duration>,
    /// When the watcher wants its [`Watcher::on_timer`].
    watcher_due: Option<Instant>,
}

/// Run until the main process has been reaped (and, with `--grace`, until every other process
/// has gone too); return how the main process ended. `lp` None: the loop's descriptors could not
/// be made, and oominit waits as tini does.
pub fn supervise(
    cfg: &Config,
    lp: Option<&Loop>,
    main: pid_t,
    watcher: &mut dyn Watcher,
) -> Result<MainExit, Error> {
    let mut s = Supervisor {
        cfg,
        watcher,
        main,
        phase: Phase::Running,
        main_status: None,
        sigkilled_main: false,
        stopped: None,
        watcher_due: None,
    };
    let start = s.watcher.on_start();
    s.act(start);
    match lp {
        Some(lp) => s.run_epoll(lp),
        None => s.run_sigwait(),
    }
}

impl Supervisor<'_, '_> {
    fn run_epoll(&mut self, lp: &Loop) -> Result<MainExit, Error> {
        for (i, fd) in self.watcher.fds().into_iter().enumerate() {
            // Without it, kills are still counted at every reap and at exit.
            if let Err(e) = lp.epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, WATCH + i as u64)) {
                diag!(1, "watching the cgroup: {e}: kills are then counted at reaps and at exit");
            }
        }
        let mut events = [EpollEvent::empty(); 4];
        loop {
            let timeout = match self.next_due() {
                None => EpollTimeout::NONE,
                // Rounded up: a wake a little late, never early and spinning.
                Some(d) => EpollTimeout::try_from(d.saturating_add(Duration::from_micros(999)))
                    .unwrap_or(EpollTimeout::MAX),
            };
            let n = match lp.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::new("waiting for events", e)),
            };
            let mut reap_now = false;
            for ev in &events[..n] {
                match ev.data() {
                    SIGNALS => reap_now |= self.forward(signals::read_batch(&lp.sigfd).iter()),
                    w => {
                        let action = self.watcher.on_wake((w - WATCH) as usize);
                        self.act(action);
                    }
                }
            }
            if let Some(exit) = self.after_wake(reap_now) {
                return Ok(exit);
            }
        }
    }

    /// tini's loop: one signal at a time from the blocked set, with a timeout while a deadline
    /// is due.
    fn run_sigwait(&mut self) -> Result<MainExit, Error> {
        loop {
            let got = signals::wait(self.next_due());
            let reap_now = match got {
                Ok(Some(sig)) => self.forward(std::iter::once(sig)),
                Ok(None) => false,
                Err(e) => return Err(Error::new("waiting for signals", e)),
            };
            if let Some(exit) = self.after_wake(reap_now) {
                return Ok(exit);
            }
        }
    }

    /// How long until the next deadline (the grace's, or the watcher's), if any.
    fn next_due(&self) -> Option<Duration> {
        let grace = match self.phase {
            Phase::Running => None,
            Phase::Stopping(t) | Phase::Grace(t) => Some(t),
            Phase::Killing(t) => t,
        };
        let due = [grace, self.watcher_due].into_iter().flatten().min()?;
        Some(due.saturating_duration_since(Instant::now()))
    }

    fn act(&mut self, action: Option<Action>) {
        match action {
            Some(Action::WakeAfter(after)) => self.watcher_due = after.map(|d| later(Instant::now(), d)),
            Some(Action::StopMain) => self.stop_main(),
            Some(Action::SignalMain(signo)) => self.signal_main(signo),
            None => {}
        }
    }

    /// One signal to main while it runs; no grace, no SIGKILL: the kernel's OOM killer stays
    /// the backstop. Not rewritten by `-r`. kill(2) at the limit charges at most the signal's
    /// queue entry, an atomic allocation that never waits in reclaim nor sets off the OOM killer.
    fn signal_main(&mut self, signo: i32) {
        if self.main_status.is_some() {
            return;
        }
        let target = self.target();
        match signals::send(target, signo) {
            Ok(()) => {
                diag!(
                    2,
                    "memory the kernel cannot reclaim nears the limit: {} to {target}",
                    signals::name(signo)
                );
                self.watcher.main_signalled();
            }
            Err(e) => diag!(1, "sending {} to {target}: {e}", signals::name(signo)),
        }
    }

    /// SIGTERM to main, once, while it runs; the grace starts now.
    fn stop_main(&mut self) {
        if self.main_status.is_some() || !matches!(self.phase, Phase::Running) {
            return;
        }
        let grace = self.cfg.stop_grace();
        let target = self.target();
        diag!(1, "stopping the main process: SIGTERM to {target}, SIGKILL in {} ms", grace.as_millis());
        if let Err(e) = signals::send(target, libc::SIGTERM) {
            if e != Errno::ESRCH {
                diag!(1, "sending SIGTERM to {target}: {e}");
            }
        }
        self.stopped = Some(grace);
        self.phase = Phase::Stopping(later(Instant::now(), grace));
    }

    /// Where signals for the main process go: to it, or with `-g` to its process group.
    fn target(&self) -> pid_t {
        if self.cfg.kill_group {
            -self.main
        } else {
            self.main
        }
    }

    /// Whatever woke the loop: deadlines that are due, then reaping. Returns how main ended
    /// once the loop is done.
    fn after_wake(&mut self, reap_now: bool) -> Option<MainExit> {
        let now = Instant::now();
        if self.watcher_due.is_some_and(|t| t <= now) {
            self.watcher_due = None;
            let action = self.watcher.on_timer();
            self.act(action);
        }
        let is_pid1 = procfs::me() == 1;
        match self.phase {
            Phase::Stopping(t) | Phase::Grace(t) if t <= now => {
                diag!(1, "grace period over: sending SIGKILL to the remaining processes");
                self.watcher.sending_sigkill();
                if self.main_status.is_none() {
                    // Stopped by oominit and still there: its death by SIGKILL is oominit's doing.
                    self.sigkilled_main = true;
                    let _ = signals::send(self.target(), libc::SIGKILL);
                }
                let all_found = signal_rest(is_pid1, self.main, libc::SIGKILL);
                self.phase = Phase::Killing((!all_found).then(|| later(now, UNFOUND_WAIT)));
            }
            Phase::Killing(Some(t)) if t <= now => {
                diag!(1, "leaving the processes oominit could not find (no /proc) to the kernel");
                return self.exit();
            }
            _ => {}
        }
        if !reap_now {
            return None;
        }
        let reaped = if self.watcher.look_before_reap() {
            reap::reap_all(Some(&mut |pid, status| self.watcher.before_reap(pid, status)))
        } else {
            reap::reap_all(None)
        };
        for &(pid, status) in &reaped.exits {
            diag!(3, "reaped {pid}: {status:?}");
            if pid == self.main {
                self.main_status = Some(status);
            }
        }
        if !reaped.exits.is_empty() {
            let action = self.watcher.on_reap(&reaped.exits);
            self.act(action);
        }
        let exit = self.exit()?;
        if !reaped.children_left {
            return Some(exit);
        }
        match (&self.phase, self.cfg.grace) {
            (Phase::Running, None) => return Some(exit),
            (Phase::Running, Some(grace)) => {
                diag!(
                    2,
                    "main process ended: SIGTERM to the remaining processes, {} ms to exit",
                    grace.as_millis()
                );
                signal_rest(is_pid1, self.main, libc::SIGTERM);
                self.phase = Phase::Grace(later(now, grace));
            }
            // Main ended after oominit stopped it: the rest have what is left of the grace.
            (Phase::Stopping(t), _) => {
                diag!(2, "main process ended: SIGTERM to the remaining processes");
                let t = *t;
                signal_rest(is_pid1, self.main, libc::SIGTERM);
                self.phase = Phase::Grace(t);
            }
            // Processes forked after the last sweep have escaped it: sweep again while killing.
            (Phase::Killing(_), _) => {
                signal_rest(is_pid1, self.main, libc::SIGKILL);
            }
            (Phase::Grace(_), _) => {}
        }
        None
    }

    /// How main ended, once it has.
    fn exit(&self) -> Option<MainExit> {
        Some(MainExit {
            status: self.main_status?,
            sigkilled_by_oominit: self.sigkilled_main,
            stopped: self.stopped,
        })
    }

    /// Forward each signal (rewritten as asked), then tell the watcher; says whether SIGCHLD
    /// came.
    fn forward(&mut self, signals: impl Iterator<Item = Received>) -> bool {
        let mut sigchld = false;
        let mut forwarded = false;
        for Received { signo, pid } in signals {
            if signo == libc::SIGCHLD {
                sigchld = true;
                continue;
            }
            // Raised by oominit against itself, such as SIGPIPE from writing a record to a closed
            // pipe (blocked, so it queues here instead of killing PID 1): not the command's.
            if pid == procfs::me() {
                diag!(3, "{} raised by oominit itself: not forwarded", signals::name(signo));
                continue;
            }
            if self.main_status.is_some() {
                diag!(2, "{} received after the main process ended: not forwarded", signals::name(signo));
                continue;
            }
            let Some(to) = self.cfg.rewrite(signo) else {
                diag!(3, "{} dropped (-r)", signals::name(signo));
                continue;
            };
            let target = self.target();
            diag!(3, "forwarding {} to {target}", signals::name(to));
            if to == libc::SIGKILL {
                self.sigkilled_main = true;
                self.watcher.sending_sigkill();
            }
            // ESRCH: the child is already gone and its SIGCHLD is on its way.
            if let Err(e) = signals::send(target, to) {
                if e != Errno::ESRCH {
                    diag!(1, "forwarding {} to {target}: {e}", signals::name(to));
                }
            }
            forwarded = true;
        }
        // After the signals are on their way: reporting never delays them.
        if forwarded {
            let action = self.watcher.on_forward();
            self.act(action);
        }
        sigchld
    }
}

/// `after` from `now`; `Instant + Duration` panics past what the clock can hold, and PID 1 must not.
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or(now)
}

/// Signal every process left after the main one; false when some could not be found.
fn signal_rest(is_pid1: bool, main: pid_t, signo: i32) -> bool {
    if is_pid1 {
        // kill(-1) from a namespace's init reaches every process of the namespace but itself.
        let _ = signals::send(-1, signo);
        return true;
    }
    match procfs::descendants(procfs::me() as pid_t) {
        Ok(pids) => {
            for pid in pids {
                let _ = signals::send(pid, signo);
            }
            true
        }
        Err(e) => {
            // The main process's group is the one set of them oominit can name without /proc.
            diag!(1, "cannot list the remaining processes ({e}): signalling main's process group only");
            let _ = signals::send(-main, signo);
            false
        }
    }
}
