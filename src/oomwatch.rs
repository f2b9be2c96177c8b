//! Watching the cgroup for OOM kills while the command runs: the baseline read at start, a live
//! `oom` event the moment the kill counter rises, and the final figures after the main process
//! is reaped (a kill must never be missed at exit, so they are re-read then, whatever woke us).
//! Who was killed is [`victims`](crate::victims)' business; this module tells it when to look.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::libc::pid_t;
use nix::sys::timerfd::TimerFd;

use crate::ballast::{self, Ballast};
use crate::cgroup::{Cgroup, Counters, Memory, Watch};
use crate::diag;
use crate::reap::Status;
use crate::record::{self, MemoryInfo, OomEvent, Victim};
use crate::sink::Sink;
use crate::supervise::Watcher;
use crate::timer;
use crate::victims::Victims;

/// cgroup v1 notifies when an OOM *begins* (memcg1_oom_prepare), before the victim is chosen and
/// `oom_kill` counted; a re-read on that wake may see nothing yet. Then re-read after 10 ms,
/// doubling up to this many times (~1.3 s in all), and stop at the first rise. This timer runs
/// only after an OOM notification, never while idle.
const RECHECKS: u32 = 7;
const FIRST_RECHECK: Duration = Duration::from_millis(10);

pub struct OomWatch<'a> {
    cgroup: Result<Cgroup, String>,
    watch: Option<Watch>,
    /// v1 with an eventfd: the re-check timer, and how many re-checks have run since the last
    /// notification.
    recheck: Option<(TimerFd, u32)>,
    /// v1: usage crossing this many bytes (or more thresholds above it), either way (a time to
    /// look at the processes, not a kill).
    warning: Option<(OwnedFd, u64)>,
    /// v1: usage at the last of those wakes, to tell rising from falling.
    warning_usage: u64,
    baseline: Counters,
    /// The kill count already reported in a live event.
    reported: u64,
    /// A kill left someone unnamed, whose memory may still be charged: no new files are opened
    /// until a wake finds room again (see [`Victims::dying`]).
    unnamed_dying: bool,
    sink: &'a Sink,
    /// Where live events are serialized: touched at start and reused, so reporting a kill
    /// allocates nothing new while the cgroup is full (see `Watch::drain`).
    line: Vec<u8>,
    victims: Victims,
    /// Room for listing at the limit (see [`ballast`]).
    ballast: Ballast,
}

/// What woke the loop, by position in [`Watcher::fds`].
#[derive(Clone, Copy)]
enum Wake {
    Watch,
    Recheck,
    Warning,
}

/// Free memory below the limit that counts as room to write again: a few pages.
const ROOM: u64 = 256 * 1024;

/// After a kill, memory in the cgroup beyond what oominit knows of that counts as someone
/// bigger than oominit to be picked first (see `may_list`).
const UNKNOWN_ENOUGH: u64 = 4 << 20;

/// Bytes below the limit, None when either figure is unknown (no limit: never full).
fn free(m: Memory) -> Option<u64> {
    Some(m.limit_bytes?.saturating_sub(m.usage_bytes?))
}

/// Room for a live event line; a longer one still works, it just may allocate.
const LINE_CAPACITY: usize = 16 * 1024;

/// What the cgroup says at the end.
pub struct Observed {
    pub delta: Counters,
    pub memory: MemoryInfo,
    pub victims: Vec<Victim>,
}

impl<'a> OomWatch<'a> {
    /// Read the baseline: before the command starts, so every kill it causes is counted.
    pub fn start(cgroup: Result<Cgroup, String>, sink: &'a Sink) -> OomWatch<'a> {
        let mut w = OomWatch {
            cgroup,
            watch: None,
            recheck: None,
            warning: None,
            warning_usage: 0,
            baseline: Counters::default(),
            reported: 0,
            unnamed_dying: false,
            sink,
            line: Vec::new(),
            victims: Victims::default(),
            ballast: Ballast::default(),
        };
        match &w.cgroup {
            Ok(cg) => match cg.counters() {
                Ok(c) => w.baseline = c,
                Err(e) => w.cgroup = Err(format!("reading the OOM counters in {}: {e}", cg.path().display())),
            },
            Err(why) => diag!(1, "no memory cgroup, OOM kills cannot be seen: {why}"),
        }
        w
    }

    /// Everything else, once the command has been forked, so it overlaps with the command's own
    /// start instead of delaying it (on a v1 host the eventfd registration alone costs ~130 µs):
    /// open the figure files, register for wake-ups (where that fails, counting goes on at every
    /// reap and at exit), and warm up. A kill in between is still counted against the baseline;
    /// its live event comes at the next wake, reap or exit. `main` is the main process and its argv.
    pub fn arm(&mut self, main: Option<(pid_t, Vec<String>)>) {
        let mut line = vec![b' '; LINE_CAPACITY];
        line.clear();
        self.line = line;
        let Ok(cg) = &mut self.cgroup else {
            self.victims = Victims::new(None, main);
            return;
        };
        cg.open_figures();
        match cg.watch() {
            Ok(watch) => {
                diag!(2, "watching {} ({})", cg.path().display(), watch.describe());
                if let Watch::EventFd(..) = watch {
                    match timer::new() {
                        Ok(t) => self.recheck = Some((t, 0)),
                        Err(e) => diag!(1, "{e}: v1 kills are then reported at the next reap"),
                    }
                }
                self.watch = Some(watch);
            }
            Err(why) => diag!(1, "no OOM notification ({why}): counters re-read at every reap and at exit"),
        }
        // After the OOM notification: that one must be in place before the command can fill the
        // cgroup (and the main process is in the list from here on).
        self.victims = Victims::new(Some((cg.path(), cg.version)), main);
        if cg.memory().limit_bytes.is_some() {
            self.victims.prefault();
            self.ballast = Ballast::new();
        }
        self.warning = cg.early_warning();
        // A dry run of a live event, written nowhere: it warms the allocator's size classes and
        // faults in the code paths while there is room.
        let nothing = self.baseline.since(&self.baseline);
        self.serialize_event(&nothing);
    }

    /// Kills since start, or None when they cannot be read.
    fn delta(&self) -> Option<Counters> {
        let cg = self.cgroup.as_ref().ok()?;
        match cg.counters() {
            Ok(now) => {
                let mut delta = now.since(&self.baseline);
                if delta.kills() > 0 {
                    delta.peak_at_limit = cg.limit_reached();
                }
                Some(delta)
            }
            Err(e) => {
                diag!(1, "re-reading the OOM counters: {e}");
                None
            }
        }
    }

    fn memory_info(&self) -> MemoryInfo {
        match &self.cgroup {
            Ok(cg) => {
                let watch = Some(match &self.watch {
                    Some(Watch::Inotify(_)) => "inotify",
                    Some(Watch::EventFd(..)) => "eventfd",
                    None => "reap",
                });
                MemoryInfo::new(Some((cg.version, cg.path().display().to_string())), cg.memory(), watch)
            }
            Err(why) => {
                let mut m = MemoryInfo::new(None, Default::default(), None);
                m.unavailable = Some(why.clone());
                m
            }
        }
    }

    /// Right after a kill the cgroup stays full until the victim's memory is released, and any
    /// charge oominit makes then (the pipe page its next write needs, say) starts another OOM.
    /// When the main process was the hog, oominit is the only task left to kill: seen on this
    /// project's host, the record was never written. So before writing, wait until usage is below
    /// the limit again: every 5 ms, 0.2 s at most, only after a kill.
    fn wait_for_room(&self) {
        for _ in 0..40 {
            if !free(self.memory()).is_some_and(|f| f < ROOM) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The cgroup's figures now; all unknown without a cgroup.
    fn memory(&self) -> Memory {
        self.cgroup.as_ref().map(|cg| cg.memory()).unwrap_or_default()
    }

    /// Whether the cgroup has `extra` bytes free and [`ROOM`] besides (false when unknown).
    fn has_room(&self, extra: u64) -> bool {
        free(self.memory()).is_some_and(|f| f >= extra + ROOM)
    }

    /// List the cgroup's processes and follow the new ones. Near the limit, the reserve is given
    /// back first, as room for what that charges (see [`ballast`]).
    fn list(&mut self) {
        if self.ballast.held() && !self.has_room(ballast::BYTES as u64) {
            self.ballast.release();
        }
        self.victims.observe(true);
    }

    /// Take the reserve again once it fits with room to spare: never itself the charge that
    /// fills the cgroup.
    fn retake_ballast(&mut self) {
        if !self.ballast.held() && self.has_room(2 * ballast::BYTES as u64) {
            self.ballast.hold();
        }
    }

    /// Whether opening files now (listing new processes) is safe. A charge oominit makes at the
    /// limit has the OOM killer pick the biggest eligible task. While a victim may still hold
    /// memory it is skipped, and the pick can be the main process or oominit itself: seen in the
    /// VM, listing on the `max` events that followed a kill killed the main process. So then list
    /// only when processes oominit follows, alive and bigger than the main process, would be
    /// picked first, or when the cgroup holds much more than the processes oominit knows
    /// ([`outweighed_at`](Self::outweighed_at)).
    fn may_list(&mut self) -> bool {
        if self.victims.shielded(UNKNOWN_ENOUGH) {
            return true;
        }
        if !self.unnamed_dying && !self.victims.dying() {
            return true;
        }
        let m = self.memory();
        if self.unnamed_dying {
            self.unnamed_dying = free(m).is_some_and(|f| f < ROOM);
        }
        (!self.unnamed_dying && !self.victims.dying()) || self.outweighed_at(m.usage_bytes)
    }

    /// The cgroup (`usage` bytes) holds more than the processes oominit knows of by more than the
    /// main process's size and a margin: untracked processes bigger than oominit and the main
    /// process are there for the OOM killer to pick first (the rest of a stress-like workload,
    /// which is exactly what must be listed before the next kill).
    fn outweighed_at(&self, usage: Option<u64>) -> bool {
        match (usage, self.victims.known_rss()) {
            (Some(u), Some((known, main))) => u.saturating_sub(known) > main.max(UNKNOWN_ENOUGH),
            _ => false,
        }
    }

    /// Re-read; if more processes were killed than already reported, name them and say so now.
    /// Returns the deltas, and whether the kill count rose. What the victims module has seen
    /// before this read decides who is named (see its doc).
    fn check(&mut self) -> (Option<Counters>, bool) {
        self.victims.counting();
        let Some(delta) = self.delta() else { return (None, false) };
        let kills = delta.kills();
        let new = kills.saturating_sub(self.reported);
        if new == 0 {
            self.victims.settle(0);
            return (Some(delta), false);
        }
        // The victims are dying now: look again at once, through what is already open. Listing
        // the cgroup too (opening files, which the kernel charges to the cgroup) only when two
        // big processes oominit follows would be the OOM killer's next picks: a charge made now
        // can have it pass over the dying victim and kill oominit or the main process. Seen on
        // this host (oominit killed when listing right after a kill) and in the VM (the main
        // shell killed when a first kill of an untracked leaf was followed by a listing, because
        // the memory oominit did not know of was the dying leaf's own). Measured with this rule:
        // oominit killed 0 of 200 runs with the main process as the hog, the main process 0 of
        // 150 with a leaf as the hog. A victim never seen before it died goes unnamed.
        if self.victims.shielded(UNKNOWN_ENOUGH) {
            self.list();
        } else {
            self.victims.observe(false);
        }
        // Naming allocates (names, argv): only once there is room, like the write after it.
        // Before this wait, measured: oominit killed in 2 to 4 runs of 100 when the main process
        // was the hog, 0 after.
        self.wait_for_room();
        self.retake_ballast();
        self.victims.settle(new);
        self.unnamed_dying = self.victims.certain() < kills;
        self.reported = kills;
        self.serialize_event(&delta);
        self.sink.write_line(&self.line);
        (Some(delta), true)
    }

    /// The live event for these deltas, into `self.line` with its newline.
    fn serialize_event(&mut self, delta: &Counters) {
        let memory = self.memory_info();
        let event = OomEvent {
            event: "oom",
            schema: record::SCHEMA,
            kills: delta.kills(),
            scope: record::scope(delta),
            victims: self.victims.named(),
            counters: *delta,
            memory: &memory,
            time: record::now_rfc3339(),
        };
        self.line.clear();
        if let Err(e) = serde_json::to_writer(&mut self.line, &event) {
            diag!(1, "serializing an oom event: {e}");
        }
        self.line.push(b'\n');
    }

    /// After a v1 notification (`tries` 0) or a re-check that found nothing new, schedule the
    /// next re-check; a rise ends the series.
    fn schedule_recheck(&mut self, rose: bool, tries: u32) {
        let Some((timer, count)) = &mut self.recheck else { return };
        if rose || tries >= RECHECKS {
            *count = 0;
            let _ = timer.unset();
            return;
        }
        *count = tries + 1;
        if let Err(e) = timer::arm(timer, FIRST_RECHECK * (1 << tries)) {
            diag!(1, "{e}");
        }
    }

    /// The final figures, re-read now that the main process has been reaped. The kernel raises
    /// `oom_kill` before it sends the SIGKILL, so a killed main process is already counted.
    pub fn finish(mut self) -> Observed {
        let mut delta = self.check().0.unwrap_or_default();
        // A group kill (`memory.oom.group`) counts each member as the kernel walks the group,
        // and the main process may be reaped before the walk ends (seen in the VM: oom_kill 2
        // at the reap, 4 a moment later). Re-read until two reads 10 ms apart agree, 0.3 s at
        // most; only after a group kill.
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
            self.wait_for_room();
        }
        Observed { delta, memory: self.memory_info(), victims: self.victims.into_named() }
    }
}

impl OomWatch<'_> {
    /// The descriptors to wake on, in a fixed order, with what each one means.
    fn wakes(&self) -> impl Iterator<Item = (Wake, BorrowedFd<'_>)> {
        let watch = self.watch.iter().map(|w| (Wake::Watch, w.fd()));
        let recheck = self.recheck.iter().map(|(t, _)| (Wake::Recheck, t.as_fd()));
        let warning = self.warning.iter().map(|(w, _)| (Wake::Warning, w.as_fd()));
        watch.chain(recheck).chain(warning)
    }
}

impl Watcher for OomWatch<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.wakes().map(|(_, fd)| fd).collect()
    }

    fn on_wake(&mut self, which: usize) {
        let Some((wake, _)) = self.wakes().nth(which) else { return };
        // Every wake here means the cgroup is at or near its limit: the moment to note who is in
        // it and how big, before anyone is killed. New processes are listed (which opens files,
        // so allocates) only where there is room or a kill is coming anyway, never in the
        // aftermath of one (see `check`): usage rising past v1's thresholds, and v2's `max`
        // events that were not a kill (the OOM killer would pick the task filling the cgroup;
        // the reserve in [`ballast`] is room for what the listing charges).
        self.victims.observe(false);
        match wake {
            Wake::Watch => {
                if let Some(w) = &self.watch {
                    w.drain();
                }
                let (_, rose) = self.check();
                // v1 notifies as an OOM begins, and a charge then can set off a second kill
                // rather than wait for the first: the kernel marks a victim as done with
                // (MMF_OOM_SKIP, in exit_mmap) before its last pages are uncharged. Seen on
                // this host with the tests run in parallel: oominit's own open right after a
                // kill (`oominit invoked oom-killer`, GFP_KERNEL_ACCOUNT) killed oominit, or the
                // main shell. v1 lists at its thresholds instead, while there is room.
                let in_flight = matches!(self.watch, Some(Watch::EventFd(..)));
                if !rose && !in_flight && self.may_list() {
                    self.list();
                }
                self.schedule_recheck(rose, 0);
            }
            Wake::Recheck => {
                let tries = match &self.recheck {
                    Some((t, n)) => {
                        let _ = t.wait();
                        *n
                    }
                    None => return,
                };
                let (_, rose) = self.check();
                self.schedule_recheck(rose, tries);
            }
            Wake::Warning => {
                let Some((w, threshold)) = &self.warning else { return };
                let threshold = *threshold;
                let mut buf = [0u8; 8];
                let _ = nix::unistd::read(w, &mut buf);
                let usage = self.memory().usage_bytes.unwrap_or(0);
                // Crossing a threshold downwards is mostly a victim's memory being released
                // (with two thresholds, usage can be above the lower one as it falls past the
                // higher one): then nothing is listed.
                let rising = usage >= threshold && usage > self.warning_usage;
                self.warning_usage = usage;
                let (_, rose) = self.check();
                if rising && !rose && self.may_list() {
                    self.retake_ballast();
                    self.list();
                }
            }
        }
    }

    /// A reap is the other moment a kill shows. Without any registration (read-only cgroupfs)
    /// reaps are all there is: re-read at every one. With v1's eventfd, which is silent on a
    /// host-wide OOM, re-read when something died of SIGKILL. Not at every reap otherwise: a burst
    /// of 5000 orphaned zombies would cost thousands of re-reads (measured: 1.6x tini's CPU).
    fn on_reap(&mut self, exits: &[(pid_t, Status)]) {
        self.victims.reaped(exits);
        let killed = || exits.iter().any(|(_, s)| *s == Status::Signaled(nix::libc::SIGKILL));
        let recheck = match &self.watch {
            None => true,
            Some(Watch::EventFd(..)) => killed(),
            Some(Watch::Inotify(_)) => false,
        };
        if recheck {
            self.check();
        }
    }
}
