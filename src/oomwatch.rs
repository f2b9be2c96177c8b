//! Watching the cgroup for OOM kills while the command runs: the baseline read at start, a live
//! `oom` event the moment the kill counter rises, and the final figures after the main process
//! is reaped (a kill must never be missed at exit, so they are re-read then, whatever woke us).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::libc::pid_t;
use nix::sys::timerfd::TimerFd;

use crate::cgroup::{Cgroup, Counters, Watch};
use crate::diag;
use crate::reap::Status;
use crate::record::{self, MemoryInfo, OomEvent};
use crate::sink::Sink;
use crate::supervise::Watcher;
use crate::timer;

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
    baseline: Counters,
    /// The kill count already reported in a live event.
    reported: u64,
    sink: &'a Sink,
}

/// What the cgroup says at the end.
pub struct Observed {
    pub delta: Counters,
    pub memory: MemoryInfo,
}

impl<'a> OomWatch<'a> {
    /// Read the baseline and register for wake-ups; where registration fails, counting goes on at
    /// every reap and at exit.
    pub fn start(cgroup: Result<Cgroup, String>, sink: &'a Sink) -> OomWatch<'a> {
        let mut w =
            OomWatch { cgroup, watch: None, recheck: None, baseline: Counters::default(), reported: 0, sink };
        let Ok(cg) = &w.cgroup else {
            if let Err(why) = &w.cgroup {
                diag!(1, "no memory cgroup, OOM kills cannot be seen: {why}");
            }
            return w;
        };
        match cg.counters() {
            Ok(c) => w.baseline = c,
            Err(e) => {
                w.cgroup = Err(format!("reading the OOM counters in {}: {e}", cg.path().display()));
                return w;
            }
        }
        match cg.watch() {
            Ok(watch) => {
                diag!(2, "watching {} ({})", cg.path().display(), watch.describe());
                if let Watch::EventFd(..) = watch {
                    match timer::new() {
                        Ok(t) => w.recheck = Some((t, 0)),
                        Err(e) => diag!(1, "{e}: v1 kills are then reported at the next reap"),
                    }
                }
                w.watch = Some(watch);
            }
            Err(why) => diag!(1, "no OOM notification ({why}): counters re-read at every reap and at exit"),
        }
        w
    }

    /// Kills since start, or None when they cannot be read.
    fn delta(&self) -> Option<Counters> {
        let cg = self.cgroup.as_ref().ok()?;
        match cg.counters() {
            Ok(now) => Some(now.since(&self.baseline)),
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

    /// Re-read; if more processes were killed than already reported, say so now. Returns the
    /// deltas, and whether the kill count rose.
    fn check(&mut self) -> (Option<Counters>, bool) {
        let Some(delta) = self.delta() else { return (None, false) };
        let kills = delta.oom_kill.unwrap_or(0);
        if kills <= self.reported {
            return (Some(delta), false);
        }
        self.reported = kills;
        let memory = self.memory_info();
        let event = OomEvent {
            event: "oom",
            schema: record::SCHEMA,
            kills,
            scope: record::scope(&delta),
            victims: &[],
            counters: delta,
            memory: &memory,
            time: record::now_rfc3339(),
        };
        match serde_json::to_string(&event) {
            Ok(line) => self.sink.write_line(&line),
            Err(e) => diag!(1, "serializing an oom event: {e}"),
        }
        (Some(delta), true)
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
        let delta = self.check().0.unwrap_or_default();
        Observed { delta, memory: self.memory_info() }
    }
}

impl Watcher for OomWatch<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.watch.iter().map(Watch::fd).chain(self.recheck.iter().map(|(t, _)| t.as_fd())).collect()
    }

    fn on_wake(&mut self, which: usize) {
        match which {
            0 => {
                if let Some(w) = &self.watch {
                    w.drain();
                }
                let (_, rose) = self.check();
                self.schedule_recheck(rose, 0);
            }
            _ => {
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
        }
    }

    /// A reap is the other moment a kill shows: v1's eventfd is silent on host-wide OOM, and
    /// without any registration (read-only cgroupfs) reaps are all there is.
    fn on_reap(&mut self, _exits: &[(pid_t, Status)], _main: pid_t) {
        self.check();
    }
}
