//! Naming the processes the kernel OOM-killed: pid, comm, argv, resident memory before the kill,
//! and how oominit knows (`source`). The counters say how many; this says which.
//!
//! The hard case is the common one: a victim whose own parent reaps it (stress, gunicorn, a shell
//! loop) is gone microseconds after it dies, and oominit never sees its exit status. So oominit
//! looks before the kill: at the cgroup watch's wakes as the cgroup nears or reaches its limit,
//! the [`tracker`] lists the cgroup's processes and follows them. When the kill count rises,
//! every process followed is looked at again, and [`attribution`] decides who is named. When
//! listing is safe at all is the [headroom rule](crate::oom::headroom)'s call: opening files
//! charges the full cgroup. Nothing here runs while the cgroup is quiet: only on its wakes, on
//! reaps, and at exit.

pub mod attribution;
pub mod named;
pub mod tracker;

use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::libc::pid_t;

use self::attribution::{call, Call, Death, Seen, Source, Tally};
use self::named::Named;
use self::tracker::{State, Tracked, Tracker};
use crate::cgroup::Version;
use crate::reap::Status;
use crate::record::{ArgvShown, Holder, Victim};

/// Default: following nothing (no allocation).
#[derive(Default)]
pub struct Victims {
    tracker: Tracker,
    named: Named,
    /// Counter reads so far: deaths are stamped with it, to tell those seen before a read from
    /// those seen after it began.
    reads: u64,
    /// Kills a read counted and named no one for, that read's number, and when: see
    /// [`settle`](Self::settle).
    left: Option<(u64, u64, Instant)>,
}

/// How long after a read deaths seen since are still matched to the kills it left unexplained:
/// a victim dies within milliseconds of its kill, more on a busy or emulated CPU; v1's re-reads
/// after an OOM notification, which count nothing new, span 1.3 s.
const LEFT_FOR: Duration = Duration::from_secs(2);

impl Victims {
    /// Follow the processes of the cgroup at `dir` (if any), and the main process `main` with the
    /// argv oominit ran, within `fd_budget` descriptors; `argv`: how much of the others' to show.
    /// `deaths`: wake on their exits (see [`Tracker::watch_deaths`]), where the cgroup gives no
    /// notification before its limit; [`Victims::deaths_fd`] then says whether it can.
    pub fn new(
        dir: Option<(&Path, Version)>,
        main: Option<(pid_t, Vec<String>)>,
        argv: ArgvShown,
        fd_budget: usize,
        deaths: bool,
    ) -> Victims {
        let procs = dir.map(|(d, _)| d.join("cgroup.procs"));
        let mut tracker = Tracker::new(procs, matches!(dir, Some((_, Version::V1))), fd_budget, argv);
        // Before the main process is followed: its pidfd goes straight into the set, where it
        // would otherwise be opened twice (once to ask for exit statuses, once to wake on).
        if deaths {
            tracker.watch_deaths();
        }
        if let Some((pid, argv)) = main {
            tracker.follow_main(pid, argv);
        }
        Victims { tracker, named: Named::new(), reads: 0, left: None }
    }

    /// Touch the memory a listing writes to (see [`Tracker::prefault`]).
    pub fn prefault(&mut self) {
        self.tracker.prefault();
        self.named.prefault();
    }

    /// The descriptor readable when a followed process has exited, where deaths are watched.
    pub fn deaths_fd(&self) -> Option<BorrowedFd<'_>> {
        self.tracker.deaths_fd()
    }

    /// The exits that woke oominit are taken: the next look sees them.
    pub fn take_deaths(&mut self) {
        self.tracker.take_deaths();
    }

    /// Look at every process followed, and with `list`, start following the cgroup's new ones.
    /// The look first: the argv of one it finds exec'd since is read again by the listing (one
    /// followed as a shell before its `exec`, whose kill may come before the next listing).
    pub fn observe(&mut self, list: bool) {
        self.tracker.look(self.reads);
        if list {
            self.tracker.list(self.reads);
        }
    }

    /// The kill counter is being read now: what is seen from here on may belong to a kill that
    /// read did not count yet.
    pub fn counting(&mut self) {
        self.reads = self.reads.saturating_add(1);
    }

    /// `pid` ended by `status` and is about to be reaped: look at it while its stat names it
    /// (opening it, if never followed, only with `may_open`).
    pub fn before_reap(&mut self, pid: pid_t, status: Status, may_open: impl FnOnce() -> bool) {
        self.tracker.before_reap(pid, status, may_open, self.reads);
    }

    /// oominit reaped these.
    pub fn reaped(&mut self, exits: &[(pid_t, Status)]) {
        self.tracker.reaped(exits, self.reads);
    }

    /// The kill counter was read (see [`counting`](Self::counting)): `new` kills since the read
    /// before. Name the deaths [`attribution`] calls victims, and forget those it rules out.
    ///
    /// A read that counts no kill, after one that left kills unexplained at most [`LEFT_FOR`]
    /// ago, first judges the deaths seen since that one began as that one would have, had it seen
    /// them: the kernel counts a kill before the victim dies, and on a busy CPU the victim's death
    /// (the main process's, say, reaped by oominit) can come after the read that counted it, and
    /// the re-reads after it, have settled.
    pub fn settle(&mut self, new: u64) {
        self.named.new_read();
        let reads = self.reads;
        let seen = |t: &Tracked| -> Option<Seen> {
            match t.state {
                State::Dead { death, seen } => Some((death, seen < reads, t.size())),
                _ => None,
            }
        };
        let tally = Tally::of(self.tracker.entries.iter().filter_map(seen), new);
        let carried = self.left.take().filter(|&(_, _, when)| new == 0 && when.elapsed() <= LEFT_FOR);
        let late = |t: &Tracked| -> Option<Seen> {
            match (t.state, carried) {
                (State::Dead { death, seen }, Some((_, at, _))) if seen >= at => {
                    Some((death, false, t.size()))
                }
                _ => None,
            }
        };
        let late_tally =
            carried.map(|(left, _, _)| Tally::of(self.tracker.entries.iter().filter_map(late), left));
        let decide = |t: &Tracked| {
            let late = late(t).zip(late_tally).map(|((d, after, size), tally)| call(d, after, size, tally));
            match late {
                Some(c @ (Call::Certain | Call::Uncertain)) => Some(c),
                _ => seen(t).map(|(d, before, size)| call(d, before, size, tally)),
            }
        };
        let mut named: u64 = 0;
        for t in &mut self.tracker.entries {
            let uncertain = match decide(t) {
                Some(Call::Certain) => false,
                Some(Call::Uncertain) => true,
                _ => continue,
            };
            let source = match t.state {
                State::Dead { death: Death::Killed(source), .. } => source,
                _ => Source::Vanished,
            };
            self.named.push(t.victim(source, uncertain));
            t.state = State::Named { holding: source != Source::Vanished };
            named = named.saturating_add(1);
        }
        self.tracker.entries.retain(|t| decide(t) != Some(Call::Forget));
        self.left = match carried {
            // Still unexplained: kept for the reads that follow.
            Some(kept) if named == 0 => Some(kept),
            Some(_) => None,
            None => Some(new.saturating_sub(named)).filter(|&l| l > 0).map(|l| (l, reads, Instant::now())),
        };
    }

    /// oominit sends SIGKILL itself from here on (`--grace` is over): a death by SIGKILL seen
    /// after this is never taken for a kill an earlier read left unexplained.
    pub fn sending_sigkill(&mut self) {
        self.left = None;
    }

    /// Whether a victim named so far may still hold memory: right after a kill the cgroup stays
    /// full until it is given back.
    pub fn dying(&self) -> bool {
        self.tracker.entries.iter().any(|t| t.state == State::Named { holding: true })
    }

    /// Resident memory of the processes followed that may still hold it (alive, or killed and
    /// not yet dead), as last seen.
    pub fn known_rss(&self) -> u64 {
        let holding = |t: &&Tracked| match t.state {
            State::Alive | State::Dead { death: Death::Killed(_), .. } => true,
            State::Named { holding } => holding,
            State::Dead { .. } => false,
        };
        self.tracker.entries.iter().filter(holding).map(|t| t.rss_bytes.unwrap_or(0)).sum()
    }

    /// The main process's size as last seen alive; 0 without one, None while never seen alive.
    pub fn main_rss(&self) -> Option<u64> {
        self.tracker.entries.iter().find(|t| t.main).map_or(Some(0), |t| t.rss_bytes)
    }

    /// The second largest size among the other processes followed and alive: the OOM killer's
    /// next pick after the largest, which may be the victim of a kill under way.
    pub fn runner_up_rss(&self) -> Option<u64> {
        let mut top: [Option<u64>; 2] = [None, None];
        for t in self.tracker.entries.iter().filter(|t| t.state == State::Alive && !t.main) {
            if t.rss_bytes > top[0] {
                top = [t.rss_bytes, top[0]];
            } else if t.rss_bytes > top[1] {
                top[1] = t.rss_bytes;
            }
        }
        top[1]
    }

    /// The `n` largest processes followed, by size as last seen alive (victims included: they
    /// held the memory), largest first, into `out`.
    pub fn largest(&self, n: usize, out: &mut Vec<Holder>) {
        out.clear();
        let mut last: Option<(u64, pid_t)> = None;
        for _ in 0..n {
            // The next largest after `last`, by (size, pid): no sort, no allocation.
            let below = |t: &&Tracked| t.rss_bytes.is_some_and(|r| last.map_or(true, |l| (r, t.pid) < l));
            let Some(t) = self.tracker.entries.iter().filter(below).max_by_key(|t| (t.rss_bytes, t.pid))
            else {
                break;
            };
            last = t.rss_bytes.map(|r| (r, t.pid));
            out.extend(t.holder());
        }
    }

    /// How many are named with certainty.
    pub fn certain(&self) -> u64 {
        self.named.certain()
    }

    /// The main process as last looked at.
    pub fn main_seen(&self) -> crate::oom::failfast::MainSeen {
        use crate::oom::failfast::MainSeen;
        match self.tracker.entries.iter().find(|t| t.main).map(|t| (t.state, t.unread)) {
            Some((State::Alive, true)) | None => MainSeen::Unknown,
            Some((State::Alive, false)) => MainSeen::Alive,
            Some((State::Dead { .. } | State::Named { .. }, _)) => MainSeen::Ending,
        }
    }

    /// Whether the main process is among those named.
    pub fn main_named(&self) -> bool {
        self.named.main()
    }

    /// Those the latest read named, and how many more it named than that.
    pub fn latest(&self) -> (&[Victim], u64) {
        self.named.latest()
    }

    /// Those kept of everyone named, and how many were left out. What was followed is left to
    /// the process's exit (see [`OomWatch::finish`](crate::oom::OomWatch::finish)).
    pub fn into_kept(self) -> (Vec<Victim>, u64) {
        let Victims { tracker, named, .. } = self;
        std::mem::forget(tracker);
        named.kept()
    }
}

#[cfg(test)]
mod tests {
    //! The naming rules as a sequence of reads; each read's decision is `attribution`'s.
    use super::*;
    use nix::libc::SIGKILL;

    fn following(deaths: &[(pid_t, Death)]) -> Victims {
        let mut v = Victims::default();
        v.tracker.entries.extend(deaths.iter().map(|&(pid, d)| Tracked::dead(pid, d, 0)));
        v.tracker.entries.push(Tracked::alive(11));
        // All of them seen before the counter read that settles them.
        v.counting();
        v
    }

    /// `pid` followed, alive and named (read at a listing).
    fn follow_named(v: &mut Victims, pid: pid_t) {
        let mut t = Tracked::dead(pid, Death::Other, 0);
        t.state = State::Alive;
        v.tracker.entries.push(t);
    }

    /// `pids` reaped, dead of SIGKILL; then a read that counts no new kill.
    fn sigkilled_then_no_kill(v: &mut Victims, pids: &[pid_t]) {
        let exits: Vec<_> = pids.iter().map(|&pid| (pid, Status::Signaled(SIGKILL))).collect();
        v.reaped(&exits);
        v.counting();
        v.settle(0);
    }

    fn named(v: &Victims) -> Vec<(i32, Source, bool)> {
        v.named.kept_clone().iter().map(|x| (x.pid, x.source, x.uncertain)).collect()
    }

    #[test]
    fn a_death_by_sigkill_without_a_new_kill_is_forgotten() {
        let mut v = following(&[(10, Death::Killed(Source::Pidfd)), (12, Death::Vanished)]);
        v.settle(0);
        assert!(named(&v).is_empty());
        assert_eq!(v.tracker.entries.iter().map(|t| t.pid).collect::<Vec<_>>(), [11], "only the living stay");
    }

    #[test]
    fn a_death_seen_after_a_read_is_named_at_the_next_one() {
        let mut v = following(&[(10, Death::Killed(Source::Proc))]);
        // 12, followed and named, is reaped by oominit after the read began.
        follow_named(&mut v, 12);
        v.reaped(&[(12, Status::Signaled(SIGKILL))]);
        v.settle(1);
        assert_eq!(named(&v), [(10, Source::Proc, false)]);
        // 12's kill shows at the next read: named then, for certain.
        v.counting();
        v.settle(1);
        assert_eq!(named(&v), [(10, Source::Proc, false), (12, Source::Reaped, false)]);

        // Seen after a read that counted nothing, and no kill at the next: not an OOM kill.
        let mut v = following(&[]);
        v.reaped(&[(14, Status::Signaled(SIGKILL))]);
        v.settle(0);
        v.counting();
        v.settle(0);
        assert!(named(&v).is_empty());
    }

    #[test]
    fn a_death_seen_after_the_read_that_counted_its_kill_settled_is_named_at_the_next() {
        // 12, followed and named (the main process, say), is killed; the read counts the kill
        // before it is seen dead.
        let mut v = following(&[]);
        follow_named(&mut v, 12);
        v.settle(1);
        assert!(named(&v).is_empty());
        sigkilled_then_no_kill(&mut v, &[12]);
        assert_eq!(named(&v), [(12, Source::Reaped, false)]);
        assert_eq!(v.certain(), 1);
    }

    #[test]
    fn a_kill_left_unexplained_is_matched_through_later_reads_for_a_while_only() {
        let mut v = following(&[]);
        follow_named(&mut v, 12);
        v.settle(1);
        // v1's re-reads after the notification count nothing new before 12 is reaped.
        v.counting();
        v.settle(0);
        sigkilled_then_no_kill(&mut v, &[12]);
        assert_eq!(named(&v), [(12, Source::Reaped, false)]);

        let mut v = following(&[]);
        v.settle(1);
        let (left, at, when) = v.left.unwrap();
        v.left = Some((left, at, when - LEFT_FOR - Duration::from_millis(1)));
        sigkilled_then_no_kill(&mut v, &[11]);
        assert!(named(&v).is_empty(), "too long after the kill: not its victim");
        assert_eq!(v.left, None);
    }

    #[test]
    fn oominits_own_sigkill_is_never_a_kill_left_unexplained() {
        let mut v = following(&[]);
        v.settle(1);
        v.sending_sigkill();
        sigkilled_then_no_kill(&mut v, &[11]);
        assert!(named(&v).is_empty());
    }

    #[test]
    fn more_late_deaths_than_kills_left_are_not_guessed_among() {
        let mut v = following(&[]);
        v.tracker.entries.push(Tracked::alive(12));
        v.settle(1);
        sigkilled_then_no_kill(&mut v, &[11, 12]);
        assert!(named(&v).is_empty());
    }

    #[test]
    fn a_victim_is_named_once() {
        let mut v = following(&[(10, Death::Killed(Source::Proc))]);
        v.settle(1);
        assert!(v.dying(), "named and not yet seen dead");
        // Its parent, or oominit, reaps it later: nothing new to name at the next kill.
        v.reaped(&[(10, Status::Signaled(SIGKILL))]);
        v.counting();
        v.settle(1);
        assert_eq!(named(&v), [(10, Source::Proc, false)]);
        assert!(!v.dying());
    }

    #[test]
    fn an_orphan_oominit_reaps_unseen_is_still_a_death_to_count() {
        let mut v = following(&[]);
        v.reaped(&[(20, Status::Signaled(SIGKILL)), (21, Status::Exited(0))]);
        v.settle(1);
        assert_eq!(named(&v), [(20, Source::Reaped, true)], "nameless: not named for certain");
        assert_eq!(v.named.kept_clone()[0].comm, None, "never seen alive: no name is made up");
        assert_eq!(v.certain(), 0, "unnamed counts it");
    }

    #[test]
    fn the_largest_are_listed_largest_first_victims_included() {
        let mut v = Victims::default();
        for (pid, rss) in [(2, Some(30)), (3, Some(50)), (4, None), (5, Some(30)), (6, Some(10))] {
            let mut t = Tracked::alive(pid);
            t.rss_bytes = rss;
            v.tracker.entries.push(t);
        }
        let mut dead = Tracked::dead(7, Death::Killed(Source::Proc), 0);
        dead.rss_bytes = Some(90);
        v.tracker.entries.push(dead);
        let mut out = Vec::new();
        v.largest(3, &mut out);
        let got: Vec<(i32, u64)> = out.iter().map(|h| (h.pid, h.rss_bytes)).collect();
        assert_eq!(got, [(7, 90), (3, 50), (5, 30)], "ties broken by pid, never listed twice");
        v.largest(10, &mut out);
        assert_eq!(out.len(), 5, "never seen alive: not listed");
    }

    #[test]
    fn the_runner_up_is_the_second_largest_other_process_alive() {
        let mut v = Victims::default();
        assert_eq!((v.runner_up_rss(), v.main_rss()), (None, Some(0)));
        for (pid, rss) in [(2, 30), (3, 50), (4, 40)] {
            let mut t = Tracked::alive(pid);
            t.rss_bytes = Some(rss);
            v.tracker.entries.push(t);
        }
        v.tracker.entries.push(Tracked::dead(5, Death::Killed(Source::Proc), 0));
        assert_eq!(v.runner_up_rss(), Some(40));
        assert_eq!(v.known_rss(), 120);
    }
}
