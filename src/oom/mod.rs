//! Watching the cgroup for OOM kills while the command runs: the baseline read before the
//! command starts, a live `oom` event the moment the kill counter rises, and the final figures
//! after the main process is reaped (a kill must never be missed at exit, so they are re-read
//! then, whatever woke oominit).
//!
//! The loop hands this watch its wakes, reaps and timer; the watch answers with [`Action`]s for
//! the loop. What a wake means is the cgroup [`Watch`]'s business, who was killed is
//! [`victims`](crate::victims)', and when oominit may open files in a full cgroup is the
//! [`headroom`] rule's.

pub mod failfast;
pub mod headroom;
pub mod prestop;

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::libc::pid_t;

use self::headroom::{Headroom, Listing, Snapshot};
use self::prestop::PreOomStop;
use crate::cgroup::{Breakdown, Cgroup, CgroupError, Counters, Memory, Wake, Watch};
use crate::diag;
use crate::emit::{self, Emitter};
use crate::host::{Host, HostMemory};
use crate::reap::Status;
use crate::record::{
    ArgvShown, AtKill, Holder, LimitEvent, MemoryInfo, OomEvent, PreOomStopEvent, Read, Victim,
    TERMINATION_LOG_MAX,
};
use crate::sink::Sink;
use crate::supervise::{Action, Watcher};
use crate::termlog::TerminationLog;
use crate::victims::{tracker, Victims};

/// The counters before the command starts, and the cgroup they were read from.
pub struct Baseline {
    cgroup: Result<Cgroup, CgroupError>,
    counters: Counters,
}

impl Baseline {
    /// Read the baseline: before the command starts, so every kill it causes is counted.
    pub fn read(cgroup: Result<Cgroup, CgroupError>) -> Baseline {
        let read = cgroup.and_then(|cg| Ok((cg.counters()?, cg)));
        match read {
            Ok((counters, cg)) => Baseline { cgroup: Ok(cg), counters },
            Err(e) => {
                diag!(1, "no memory cgroup, OOM kills cannot be seen: {e}");
                Baseline { cgroup: Err(e), counters: Counters::default() }
            }
        }
    }
}

pub struct OomWatch<'a> {
    cgroup: Result<Cgroup, CgroupError>,
    /// None where registration failed: counters are then re-read at every reap and at exit.
    watch: Option<Watch>,
    baseline: Counters,
    /// The kill count already reported in a live event.
    reported: u64,
    victims: Victims,
    /// What filled the cgroup at a recent wake at or near its limit, and when it was read.
    filling: Option<(Breakdown, Instant)>,
    /// What the cgroup held at the last kill seen.
    at_kill: AtKill,
    /// When the counters were last re-read for a forwarded signal.
    forward_checked: Option<Instant>,
    /// Kubernetes' termination log, for the pre-mortem and, at exit, the exit record.
    termlog: TerminationLog,
    /// Where the pre-mortem is serialized (touched at start), and its largest processes.
    premortem: Vec<u8>,
    premortem_largest: Vec<Holder>,
    /// `--limit-events`: how often at most, and when the last one was written.
    warn_every: Option<Duration>,
    warned_at: Option<Instant>,
    headroom: Headroom,
    emitter: Emitter<'a>,
    /// `--on-leaf-oom exit`: ask the loop to stop the main process after a kill of another.
    stop_on_leaf: bool,
    /// Asked already: once per run.
    stop_asked: bool,
    /// Where the cgroup gives no notification and deaths are watched instead: when to list.
    listings: Option<Listings>,
    /// The host's memory, read at kills: whose limit it was (`scope`).
    host: Host,
    /// `--pre-oom-stop`.
    pre_oom: Option<Box<prestop::State>>,
}

/// Where nothing wakes oominit below the limit (v2, whose first wake is the first `max` event;
/// v1 behind a read-only cgroupfs, which gives no notification at all), nothing says when
/// processes join the cgroup, and a kill's victim can be named only if it was followed before it
/// died. So the cgroup is listed a few times after start, as an application starts its workers,
/// and a few times after a death (a pool replaces its dead worker): a bounded number of wakes
/// after start and after each death, none while the container idles.
struct Listings {
    start_up: Schedule,
    /// After the first death since the last such schedule ran out.
    after_death: Option<Schedule>,
}

/// After the start, in ms, each half as long again as the one before: 18 wakes, the last at 10 s.
/// A pool's workers start some 100 ms in (Python's multiprocessing in Docker) and may be killed
/// within 60 ms of that: the gaps stay under it until 150 ms.
const START_LISTINGS_MS: [u64; 18] =
    [10, 15, 22, 34, 51, 76, 114, 171, 256, 384, 577, 865, 1297, 1946, 2919, 4379, 6568, 9853];
/// After a death, for the replacement a parent starts once it has reaped the dead: soon, and
/// later for a parent slowed down by the full cgroup (its fork is a charge too).
const DEATH_LISTINGS_MS: [u64; 3] = [10, 30, 90];

/// Listings due at fixed offsets from a moment.
struct Schedule {
    from: Instant,
    offsets_ms: &'static [u64],
    /// Offsets past.
    done: usize,
}

impl Schedule {
    fn new(from: Instant, offsets_ms: &'static [u64]) -> Schedule {
        Schedule { from, offsets_ms, done: 0 }
    }

    /// The next listing due after `now`, those due by then counted done; None once all are.
    fn next_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(&ms) = self.offsets_ms.get(self.done) {
            match self.from.checked_add(Duration::from_millis(ms)) {
                Some(due) if due > now => return Some(due),
                _ => self.done = self.done.saturating_add(1),
            }
        }
        None
    }
}

impl Listings {
    fn new(start: Instant) -> Listings {
        Listings { start_up: Schedule::new(start, &START_LISTINGS_MS), after_death: None }
    }

    /// How long from `now` until the next listing is due; None when none is.
    fn next(&mut self, now: Instant) -> Option<Duration> {
        let after_death = self.after_death.as_mut().and_then(|s| s.next_due(now));
        let due = [self.start_up.next_due(now), after_death].into_iter().flatten().min()?;
        Some(due.saturating_duration_since(now))
    }

    /// A death seen at `now`: the listings after a death begin again, unless one of them is due
    /// within the first gap anyway: one listing at most about every 10 ms however many die, and
    /// a stream of deaths never puts one off.
    fn death(&mut self, now: Instant) -> Option<Duration> {
        let first = now.checked_add(Duration::from_millis(DEATH_LISTINGS_MS[0]));
        let pending = self.after_death.as_mut().and_then(|s| s.next_due(now));
        if pending.is_none() || pending > first {
            self.after_death = Some(Schedule::new(now, &DEATH_LISTINGS_MS));
        }
        self.next(now)
    }
}

/// The largest processes a record lists.
const LARGEST: usize = 3;
/// `memory.stat` is read at most this often at wakes: v2 raises hundreds of `max` events while a
/// cgroup sits at its limit, and each read costs the kernel a stats flush; on the VM's one CPU a
/// read at every wake slowed the listing enough to miss victims.
const FILLING_EVERY: Duration = Duration::from_millis(100);
/// Counters are re-read for forwarded signals at most this often.
const FORWARD_CHECK_EVERY: Duration = Duration::from_millis(100);
/// A reading older than this says nothing about a kill now.
const FILLING_FRESH: Duration = Duration::from_secs(1);

/// What the cgroup says at the end.
pub struct Observed {
    pub delta: Counters,
    pub memory: MemoryInfo,
    /// Those kept of the victims named, and how many more were named.
    pub victims: Vec<Victim>,
    pub victims_omitted: u64,
    /// Victims named for certain, all counted.
    pub certain: u64,
    pub main_named: bool,
    pub at_kill: AtKill,
    /// Handed back for the exit record.
    pub termlog: TerminationLog,
    /// The record buffer, touched at start: the exit record is written from it too, so that
    /// writing it after a kill maps nothing new.
    pub line: Vec<u8>,
    /// The signal `--pre-oom-stop` sent, if it did.
    pub pre_oom_stop: Option<prestop::Sent>,
}

impl<'a> OomWatch<'a> {
    /// Everything but the baseline, once the command has been forked, so that it overlaps with
    /// the command's own start instead of delaying it: open the figure files, register for
    /// wake-ups, follow the main process (`main`: its pid and argv; None when the spawn failed;
    /// `argv`: how much of other processes' argv to read),
    /// and touch what an OOM will need. A kill in between is still counted against the baseline;
    /// its live event comes at the next wake, reap or exit.
    pub fn arm(
        baseline: Baseline,
        main: Option<(pid_t, Vec<String>)>,
        argv: ArgvShown,
        sink: &'a Sink,
        termlog: TerminationLog,
    ) -> OomWatch<'a> {
        let Baseline { mut cgroup, counters } = baseline;
        let budget = tracker::fd_budget(nofile());
        let mut watch = None;
        let mut headroom = Headroom::default();
        let victims = match &mut cgroup {
            Ok(cg) => {
                let figures = cg.open_figures();
                match cg.watch() {
                    Ok(w) => {
                        diag!(2, "watching {} ({})", cg.path().display(), w.describe());
                        watch = Some(w);
                    }
                    Err(e) => diag!(
                        1,
                        "no OOM notification ({e}): counters re-read at reaps, at exit and at the followed processes' exits"
                    ),
                }
                // After the OOM notification, which must be in place before the command can fill
                // the cgroup.
                let silent = watch.as_ref().map_or(true, Watch::silent_below_limit);
                let mut victims = Victims::new(Some((cg.path(), cg.version)), main, argv, budget, silent);
                // A limit of its own or an ancestor's: the cgroup can fill.
                if figures.free().is_some() {
                    victims.prefault();
                    headroom.hold_reserve();
                }
                if let (Some(w), Some(limit)) = (&mut watch, figures.limit_bytes) {
                    w.warn_near_limit(cg, limit);
                }
                victims
            }
            Err(_) => Victims::new(None, main, argv, budget, false),
        };
        let listings = victims.deaths_fd().is_some().then(|| Listings::new(Instant::now()));
        let mut w = OomWatch {
            cgroup,
            watch,
            baseline: counters,
            reported: 0,
            victims,
            filling: None,
            forward_checked: None,
            termlog,
            premortem: Vec::new(),
            premortem_largest: Vec::with_capacity(LARGEST),
            warn_every: None,
            warned_at: None,
            at_kill: AtKill { largest: Vec::with_capacity(LARGEST), ..AtKill::default() },
            headroom,
            emitter: Emitter::new(sink),
            stop_on_leaf: false,
            stop_asked: false,
            listings,
            host: Host::open(),
            pre_oom: None,
        };
        // A dry run with every field as long as it can be, to warm the serializer and its buffer
        // (made up: the cgroup's own figures would cost another read of memory.stat at start).
        let most = Some(u64::MAX);
        let mut full = AtKill {
            breakdown: Some(Breakdown {
                anon_bytes: most,
                file_bytes: most,
                shmem_bytes: most,
                kernel_bytes: most,
                sock_bytes: most,
            }),
            breakdown_read: Some(Read::AfterKill),
            largest: Vec::new(),
            host: Some(HostMemory { total_bytes: most, available_bytes: most, allocstall: most }),
            freed_bytes: 0,
        };
        full.largest
            .resize(LARGEST, Holder { pid: i32::MAX, comm: Some("x".repeat(15)), rss_bytes: u64::MAX });
        let widest = Memory { limit_bytes: most, peak_bytes: most, usage_bytes: most, ancestor_free: None };
        let nothing = OomEvent::new(
            &w.baseline.since(&w.baseline),
            w.victims.latest(),
            &full,
            w.memory_info_of(widest),
        );
        w.emitter.prepare(&nothing);
        if w.termlog.is_open() {
            w.premortem = vec![b' '; 2 * TERMINATION_LOG_MAX];
            if let Some(b) = full.breakdown {
                let sample = LimitEvent::new(
                    &w.baseline.since(&w.baseline),
                    b,
                    &full.largest,
                    w.memory_info_of(widest),
                );
                let _ = emit::serialize(&mut w.premortem, &sample);
            }
        }
        w
    }

    /// `--on-leaf-oom exit`: once a process other than the main one is OOM-killed, answer the
    /// loop with [`Action::StopMain`].
    pub fn stop_main_on_leaf_oom(&mut self) {
        self.stop_on_leaf = true;
    }

    /// `--pre-oom-stop`: signal the main process once, as memory the kernel cannot reclaim fills
    /// the fraction of the limit. On v1 a usage threshold at that fraction is the wake for it.
    pub fn stop_before_oom(&mut self, cfg: PreOomStop) {
        let mut sample = false;
        if let (Ok(cg), Some(w)) = (&self.cgroup, &mut self.watch) {
            if let Some(limit) = cg.memory().limit_bytes {
                sample = w.warn_also_at(cg, cfg.fraction.of(limit));
            }
        }
        self.pre_oom = Some(Box::new(prestop::State::new(cfg, sample)));
    }

    /// At a reading kept (`kept`: what filled the cgroup, and its figures): whether to signal the
    /// main process now (`--pre-oom-stop`). First the live record of a signal sent earlier, if
    /// there was no room to write it then.
    fn pre_oom_stop(&mut self, kept: Option<(Breakdown, Memory)>) -> Option<Action> {
        self.write_pre_oom_stop();
        let p = self.pre_oom.as_mut()?;
        if let Some((b, m)) = kept {
            if let Some(signal) = p.at_reading(b, m.limit_bytes, self.reported, self.stop_asked) {
                return Some(Action::SignalMain(signal));
            }
        }
        p.sample(kept, self.stop_asked);
        None
    }

    /// The live record of the `--pre-oom-stop` signal, once, where a write fits below the limit.
    fn write_pre_oom_stop(&mut self) {
        let Some(sent) = self.pre_oom.as_deref().and_then(prestop::State::unwritten) else { return };
        let event = PreOomStopEvent::new(&sent, self.memory_info());
        let (cgroup, headroom) = (&self.cgroup, &mut self.headroom);
        if !self.emitter.emit_if(&event, || headroom.room_to_write(|| memory(cgroup))) {
            return;
        }
        if let Some(p) = &mut self.pre_oom {
            p.written();
        }
    }

    /// After a read that found new kills (`rose`): whether to stop the main process
    /// ([`failfast::leaf_killed`]), once.
    fn leaf_stop(&mut self, rose: bool) -> Option<Action> {
        if !rose || !self.stop_on_leaf || self.stop_asked {
            return None;
        }
        let facts = |v: &Victims, kills, confirmed| failfast::AfterKill {
            kills,
            certain: v.certain(),
            main_named: v.main_named(),
            main: v.main_seen(),
            confirmed,
        };
        let kills = self.reported;
        let mut call = failfast::leaf_killed(&facts(&self.victims, kills, false));
        if call == failfast::Call::Confirm {
            // Once, only after a kill left unnamed: a main the kernel is killing shows it by then.
            std::thread::sleep(failfast::CONFIRM_AFTER);
            self.victims.observe(false);
            call = failfast::leaf_killed(&facts(&self.victims, kills, true));
        }
        if call != failfast::Call::Stop {
            diag!(2, "a kill counted, but not one to stop the main process for");
            return None;
        }
        self.stop_asked = true;
        diag!(1, "a process other than main was OOM-killed (--on-leaf-oom exit): stopping main");
        Some(Action::StopMain)
    }

    /// Kills since start, or None when they cannot be read.
    fn delta(&self) -> Option<Counters> {
        let cg = self.cgroup.as_ref().ok()?;
        match cg.counters() {
            Ok(now) => {
                let mut delta = now.since(&self.baseline);
                if delta.kills() > 0 {
                    delta.peak_at_limit = Some(cg.limit_reached());
                }
                Some(delta)
            }
            Err(e) => {
                diag!(1, "re-reading the OOM counters: {e}");
                None
            }
        }
    }

    fn memory(&self) -> Memory {
        memory(&self.cgroup)
    }

    /// At or near the limit, no kill yet: what fills the cgroup now is what a kill will be for.
    /// Kept only if it holds at least half the limit, and the kill count has not risen by the
    /// end of the read (the kernel counts a kill before it sends the SIGKILL, so the memory read
    /// was still the victims'). Seen without these: on the VM's one CPU a kill and its reaping
    /// fitted between the wake's counter read and this one; under Docker (v1) a reading at an OOM
    /// notification held 2 MiB of a 32 MiB limit and no kill counted yet.
    /// Returns the reading kept, and the cgroup's figures read with it.
    fn note_filling(&mut self) -> Option<(Breakdown, Memory)> {
        let b = self.breakdown()?;
        let m = self.memory();
        let limit = m.limit_bytes;
        let full = limit.map_or(true, |limit| b.total() >= limit / 2);
        let delta = self.delta().filter(|d| full && d.kills() == self.reported)?;
        self.filling = Some((b, Instant::now()));
        let kept = Some((b, m));
        // The pre-mortem as often as readings are kept (a few times per OOM on v1, every 100 ms at
        // most on v2); the early warning once per interval, and only for memory the kernel
        // cannot reclaim (page cache at the limit is normal).
        let warn = self.warn_every.is_some_and(|every| {
            limit.is_some_and(|l| b.unreclaimable() >= l / 2)
                && self.warned_at.map_or(true, |at| at.elapsed() >= every)
        });
        if !warn && !self.termlog.is_open() {
            return kept;
        }
        let mut largest = std::mem::take(&mut self.premortem_largest);
        self.victims.largest(LARGEST, &mut largest);
        let event = LimitEvent::new(&delta, b, &largest, self.memory_info());
        // Without room the next reading tries again: a write at the limit is the charge that
        // starts the OOM, and that write, retried in the kernel while the victim dies, can be
        // the charge of a second one (docs/headroom.md).
        let (cgroup, headroom) = (&self.cgroup, &mut self.headroom);
        if warn && self.emitter.emit_if(&event, || headroom.room_to_write(|| memory(cgroup))) {
            self.warned_at = Some(Instant::now());
        }
        self.write_premortem(event);
        self.premortem_largest = largest;
        kept
    }

    /// `--limit-events`: an early warning in the record stream (a `limit` record) when memory the
    /// kernel cannot reclaim (anon, shmem, kernel) fills half the limit or more, at most once per
    /// `every`.
    pub fn warn_at_limit(&mut self, every: Duration) {
        self.warn_every = Some(every);
    }

    /// The cgroup at its limit, before a kill, into the termination log: under a group kill
    /// (`memory.oom.group`, which Kubernetes sets) oominit dies with the rest, and this is then
    /// all that says what filled the container. The write dirties a page of the file: the
    /// reserve is given back first if the cgroup has no room for it.
    fn write_premortem(&mut self, mut event: LimitEvent<'_>) {
        if !self.termlog.is_open() {
            return;
        }
        // An empty buffer (a record that cannot be serialized) is not written.
        let _ = emit::serialize(&mut self.premortem, &event);
        if self.premortem.len() >= TERMINATION_LOG_MAX {
            event.largest = &[];
            let _ = emit::serialize(&mut self.premortem, &event);
        }
        // Room checked again: on one slow CPU the serialization gave a hog time to fill what was
        // free before it.
        let cgroup = &self.cgroup;
        let room = self.headroom.room_to_write(|| memory(cgroup));
        if room && self.premortem.len() < TERMINATION_LOG_MAX && self.termlog.write(&self.premortem) {
            diag!(2, "pre-mortem written to the termination log");
        }
    }

    /// `memory.stat`, through a file held open into a buffer touched at start: no charge.
    fn breakdown(&mut self) -> Option<Breakdown> {
        self.cgroup.as_mut().ok().and_then(Cgroup::breakdown)
    }

    fn memory_info(&self) -> MemoryInfo {
        self.memory_info_of(self.memory())
    }

    /// The record's `memory`, with these figures.
    fn memory_info_of(&self, figures: Memory) -> MemoryInfo {
        match &self.cgroup {
            Ok(cg) => {
                let without = if self.listings.is_some() { "exits" } else { "reap" };
                let watch = Some(self.watch.as_ref().map_or(without, Watch::name));
                MemoryInfo::new(Some((cg.version, cg.path().display().to_string())), figures, watch)
            }
            Err(why) => {
                let mut m = MemoryInfo::new(None, Memory::default(), None);
                m.unavailable = Some(why.to_string());
                m
            }
        }
    }

    /// What the headroom rule decides from, as of now, but for the cgroup's figures (left
    /// unknown: read only where a decision needs them).
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            memory: Memory::default(),
            main_rss: self.victims.main_rss(),
            known_rss: self.victims.known_rss(),
            runner_up_rss: self.victims.runner_up_rss(),
            victim_dying: self.victims.dying(),
        }
    }

    /// List the cgroup's processes and follow the new ones, the reserve given back first if the
    /// cgroup has no room for what that charges; only look, without a reserve or room.
    fn list(&mut self) {
        let cgroup = &self.cgroup;
        let may = self.headroom.before_listing(|| memory(cgroup));
        self.victims.observe(may);
    }

    /// List again where the headroom rule allows: deaths are watched, nothing else says when
    /// processes join. The reserve is taken again first where there is room (after a kill,
    /// once the victim's memory is given back): nothing else retakes it on v2 before a kill.
    fn relist(&mut self) {
        let cgroup = &self.cgroup;
        self.headroom.retake(|| memory(cgroup));
        if self.headroom.at_wake(self.snapshot(), || memory(cgroup)) == Listing::List {
            self.list();
        }
    }

    /// `--pre-oom-stop` on v1: a reading between the wakes, while usage is past the threshold
    /// and page cache holds the rest ([`prestop::resample`]).
    fn on_sample(&mut self) -> Option<Action> {
        self.pre_oom.as_ref()?.sampled();
        let kept = self.note_filling();
        self.pre_oom_stop(kept)
    }

    /// A followed process exited (deaths are watched): look at it while its zombie still names
    /// it, re-read the counters, and list again shortly.
    fn on_death(&mut self) -> Option<Action> {
        self.victims.take_deaths();
        self.victims.observe(false);
        let (_, rose) = self.check();
        if let Some(stop) = self.leaf_stop(rose) {
            return Some(stop);
        }
        Some(Action::WakeAfter(self.listings.as_mut()?.death(Instant::now())))
    }

    /// Re-read; if more processes were killed than already reported, name them and say so now.
    /// Returns the deltas, and whether the kill count rose. What the victims module has seen
    /// before this read decides who is named.
    fn check(&mut self) -> (Option<Counters>, bool) {
        self.victims.counting();
        let Some(delta) = self.delta() else { return (None, false) };
        let kills = delta.kills();
        let new = kills.saturating_sub(self.reported);
        if new == 0 {
            self.victims.settle(0);
            self.host.mark();
            return (Some(delta), false);
        }
        // First: a host-wide shortage may be over once the victims' memory is given back.
        self.at_kill.host = Some(self.host.at_kill());
        // What filled it: as read at a wake before the kill, else now, before the victims'
        // memory is given back.
        let fresh = self.filling.filter(|(_, at)| at.elapsed() < FILLING_FRESH);
        let (breakdown, read) = match fresh {
            Some((b, _)) => (Some(b), Read::BeforeKill),
            None => (self.breakdown(), Read::AfterKill),
        };
        self.at_kill.breakdown = breakdown;
        self.at_kill.breakdown_read = breakdown.map(|_| read);
        // The victims are dying now: look again at once, through what is open.
        match headroom::after_kill(&self.snapshot()) {
            Listing::List => self.list(),
            Listing::LookOnly => self.victims.observe(false),
        }
        // Naming allocates (names, argv): only once there is room, like the write after it.
        headroom::wait_for_room(|| self.memory());
        let cgroup = &self.cgroup;
        self.headroom.retake(|| memory(cgroup));
        self.victims.settle(new);
        let (named, _) = self.victims.latest();
        let held = named.iter().filter_map(|v| v.rss_bytes).fold(0, u64::saturating_add);
        let m = self.memory();
        let fell = m.peak_bytes.zip(m.usage_bytes).map_or(0, |(peak, now)| peak.saturating_sub(now));
        self.at_kill.freed_bytes = held.max(fell);
        self.headroom.reported(self.victims.certain() >= kills);
        self.reported = kills;
        self.victims.largest(LARGEST, &mut self.at_kill.largest);
        // A signal sent before the kill is said before it.
        self.write_pre_oom_stop();
        let event = OomEvent::new(&delta, self.victims.latest(), &self.at_kill, self.memory_info());
        self.emitter.emit(&event);
        (Some(delta), true)
    }

    /// After a v1 OOM notification (`notified`) or a re-read: when to read again.
    fn recheck(&mut self, notified: bool, rose: bool) -> Option<Action> {
        let watch = self.watch.as_mut()?;
        // Thresholds still waiting to be registered keep a timer.
        let next = watch.recheck(notified, rose).or_else(|| watch.registrations_due());
        Some(Action::WakeAfter(next))
    }

    /// The final figures, re-read now that the main process has been reaped. The kernel raises
    /// `oom_kill` before it sends the SIGKILL, so a killed main process is already counted.
    pub fn finish(mut self) -> Observed {
        let mut delta = self.check().0.unwrap_or_default();
        // A group kill (`memory.oom.group`) counts each member as the kernel walks the group,
        // and the main process may be reaped before the walk ends. Re-read until two reads
        // 10 ms apart agree, 0.3 s at most; only after a group kill.
        if delta.oom_group_kill.unwrap_or(0) > 0 {
            for _ in 0..30 {
                std::thread::sleep(Duration::from_millis(10));
                match self.check().0 {
                    Some(d) if d == delta => break,
                    Some(d) => delta = d,
                    None => break,
                }
            }
        }
        if delta.kills() > 0 {
            headroom::wait_for_room(|| self.memory());
        }
        self.write_pre_oom_stop();
        let memory = self.memory_info();
        let (certain, main_named) = (self.victims.certain(), self.victims.main_named());
        let (victims, victims_omitted) = std::mem::take(&mut self.victims).into_kept();
        let observed = Observed {
            delta,
            memory,
            victims,
            victims_omitted,
            certain,
            main_named,
            at_kill: std::mem::take(&mut self.at_kill),
            termlog: std::mem::take(&mut self.termlog),
            line: self.emitter.take_line(),
            pre_oom_stop: self.pre_oom.as_deref().and_then(prestop::State::outcome),
        };
        // What is still open and mapped (the cgroup's files, the followed processes', buffers) is
        // left to the process's exit, which is all that follows: closing and unmapping each one
        // was a third of the system calls of `oominit -- /bin/true`.
        std::mem::forget(self);
        observed
    }
}

impl Watcher for OomWatch<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = self.watch.as_ref().map(Watch::fds).unwrap_or_default();
        fds.extend(self.victims.deaths_fd());
        // Only beside v1's thresholds, where deaths are not watched (see `on_wake`).
        fds.extend(self.pre_oom.as_deref().and_then(prestop::State::timer_fd));
        fds
    }

    fn on_start(&mut self) -> Option<Action> {
        if let Some(after) = self.watch.as_ref().and_then(Watch::registrations_due) {
            return Some(Action::WakeAfter(Some(after)));
        }
        let first = self.listings.as_mut()?.next(Instant::now());
        Some(Action::WakeAfter(first))
    }

    fn on_wake(&mut self, which: usize) -> Option<Action> {
        // After the watch's own descriptors, one more: the deaths' where they are watched (no
        // watch, or v2's), else the pre-OOM timer's (v1's thresholds): never both.
        if which >= self.watch.as_ref().map_or(0, Watch::fd_count) {
            return match self.victims.deaths_fd() {
                Some(_) => self.on_death(),
                None => self.on_sample(),
            };
        }
        // Every wake here means the cgroup is at or near its limit: the moment to note who is in
        // it and how big, before anyone is killed.
        self.victims.observe(false);
        let cgroup = self.cgroup.as_ref().ok();
        let wake = self.watch.as_mut()?.wake(which, || cgroup?.memory().usage_bytes)?;
        let (_, rose) = self.check();
        if let Some(stop) = self.leaf_stop(rose) {
            // Rather than a re-read: main is being stopped, and the exit re-reads everything.
            return Some(stop);
        }
        match wake {
            Wake::OomBegins => {
                // v1, once per OOM, whenever the last reading: the cgroup at its limit, the
                // victim not yet chosen.
                if !rose {
                    self.note_filling();
                }
                return self.recheck(true, rose);
            }
            Wake::Events => {}
            Wake::Nearing { rising: false } => return None,
            Wake::Nearing { rising: true } => {}
        }
        if rose {
            return None;
        }
        let cgroup = &self.cgroup;
        if self.headroom.at_wake(self.snapshot(), || memory(cgroup)) == Listing::List {
            if let Wake::Nearing { .. } = wake {
                self.headroom.retake(|| memory(cgroup));
            }
            self.list();
        }
        // After the listing, which must not wait for it. v1's thresholds wake twice at most;
        // v2's events come in hundreds.
        let due = self.filling.map_or(true, |(_, at)| at.elapsed() >= FILLING_EVERY);
        if due || wake != Wake::Events {
            let kept = self.note_filling();
            return self.pre_oom_stop(kept);
        }
        None
    }

    fn on_timer(&mut self) -> Option<Action> {
        if let Some(w) = &mut self.watch {
            // v1's thresholds, due now. The timer was theirs alone unless an OOM notification
            // came first and its re-reads took it over.
            if w.start_registrations() && !w.rechecking() {
                return None;
            }
        }
        let (_, rose) = self.check();
        if let Some(stop) = self.leaf_stop(rose) {
            return Some(stop);
        }
        if self.listings.is_some() {
            self.relist();
            return Some(Action::WakeAfter(self.listings.as_mut()?.next(Instant::now())));
        }
        self.recheck(false, rose)
    }

    /// Kills not reported yet are reported before a stop can end oominit without its exit record
    /// (where no notification could be registered, nothing else would say them before the exit).
    fn on_forward(&mut self) -> Option<Action> {
        // Once per burst of signals: the re-read takes the CPU from the command that is handling
        // the signal (forwarding latency, on one CPU, went from 1.06 to 1.53 times tini's).
        if self.forward_checked.map_or(true, |at| at.elapsed() >= FORWARD_CHECK_EVERY) {
            self.forward_checked = Some(Instant::now());
            let (_, rose) = self.check();
            return self.leaf_stop(rose);
        }
        None
    }

    /// Only while a kill is counted and not yet reported: the kernel counts a kill before it
    /// sends the SIGKILL, so a victim oominit reaps is a zombie after its kill shows in the
    /// counter. One read of the counters a batch of exits, instead of a second wait call a child
    /// (5000 orphans reaped: 25 ms of CPU instead of 19).
    fn look_before_reap(&mut self) -> bool {
        let Ok(cg) = &self.cgroup else { return false };
        cg.kills().is_some_and(|now| now.saturating_sub(self.baseline.kills()) > self.reported)
    }

    fn main_signalled(&mut self) {
        if let Some(p) = &mut self.pre_oom {
            p.sent();
        }
        self.write_pre_oom_stop();
    }

    fn sending_sigkill(&mut self) {
        self.victims.sending_sigkill();
    }

    /// A child about to be reaped: its zombie's stat still has its name. Opening one never
    /// followed is a charge: only where the cgroup has room (its memory is given back by now).
    fn before_reap(&mut self, pid: pid_t, status: Status) {
        let cgroup = &self.cgroup;
        let room = || memory(cgroup).free().map_or(true, |free| free >= headroom::ROOM);
        self.victims.before_reap(pid, status, room);
    }

    /// A reap is the other moment a kill shows. Without any registration (read-only cgroupfs)
    /// reaps are all there is: re-read at every one. Otherwise as the watch says.
    fn on_reap(&mut self, exits: &[(pid_t, Status)]) -> Option<Action> {
        self.victims.reaped(exits);
        let sigkill = exits.iter().any(|(_, s)| *s == Status::Signaled(nix::libc::SIGKILL));
        if self.watch.as_ref().map_or(true, |w| w.reap_may_show_kill(sigkill)) {
            let (_, rose) = self.check();
            return self.leaf_stop(rose);
        }
        None
    }
}

/// The cgroup's figures now; all unknown without a cgroup.
fn memory(cgroup: &Result<Cgroup, CgroupError>) -> Memory {
    cgroup.as_ref().map(Cgroup::memory).unwrap_or_default()
}

/// The soft RLIMIT_NOFILE; 1024, the usual default, if it cannot be read.
fn nofile() -> u64 {
    let mut lim = nix::libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct.
    if unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_listings_come_at_growing_intervals_then_stop() {
        let start = Instant::now();
        let mut l = Listings::new(start);
        let ms = Duration::from_millis;
        for (now, next) in [
            (ms(0), Some(ms(10))),
            (ms(10), Some(ms(5))),
            (ms(12), Some(ms(3))),
            // Late (a busy machine): the ones missed are skipped, not caught up.
            (ms(700), Some(ms(165))),
            (ms(9_853), None),
            (ms(20_000), None),
        ] {
            assert_eq!(l.next(start + now), next, "at {now:?}");
        }
    }

    #[test]
    fn a_death_brings_a_listing_within_10_ms_and_two_more_later() {
        let start = Instant::now();
        let mut l = Listings::new(start);
        let ms = Duration::from_millis;
        let at = |n| start + ms(n);
        // Past the start-up listings: only deaths bring one.
        assert_eq!(l.next(at(20_000)), None);
        assert_eq!(l.death(at(20_000)), Some(ms(10)));
        // More deaths before it is due do not put it off.
        assert_eq!(l.death(at(20_004)), Some(ms(6)));
        assert_eq!(l.next(at(20_010)), Some(ms(20)));
        // Between the listings after a death, another brings one within 10 ms.
        assert_eq!(l.death(at(20_011)), Some(ms(10)));
        assert_eq!(l.death(at(20_015)), Some(ms(6)));
        assert_eq!(l.next(at(20_021)), Some(ms(20)));
        assert_eq!(l.next(at(20_041)), Some(ms(60)));
        assert_eq!(l.next(at(20_101)), None);
        // Once they ran out, a death starts them again.
        assert_eq!(l.death(at(25_000)), Some(ms(10)));
        // During the start-up ones: whichever comes first.
        let mut l = Listings::new(start);
        assert_eq!(l.death(at(9)), Some(ms(1)));
        assert_eq!(l.next(at(10)), Some(ms(5)));
        assert_eq!(l.next(at(15)), Some(ms(4)));
    }
}
