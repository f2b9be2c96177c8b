//! Watching the cgroup for OOM kills while the command runs: the baseline read at start, a live
//! `oom` event the moment the kill counter rises, and the final figures after the main process
//! is reaped (a kill must never be missed at exit, so they are re-read then, whatever woke us).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use nix::libc::pid_t;
use nix::sys::timerfd::TimerFd;

use crate::cgroup::{Cgroup, Counters, Watch};
use crate::diag;
use crate::procfs;
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
    /// Where live events are serialized: touched at start and reused, so reporting a kill
    /// allocates nothing new while the cgroup is full (see `Watch::drain`).
    line: Vec<u8>,
    main: Option<MainProbe>,
}

/// The main process's /proc stat, held open from the fork and re-read with pread on every OOM
/// notification: its name and resident memory as last seen before a kill, read without opening
/// anything (an open is an allocation the full cgroup cannot meet). A zombie or reaped process
/// reads as an error, and the last sample stands.
struct MainProbe {
    stat: std::fs::File,
    comm: [u8; 64],
    comm_len: usize,
    rss_bytes: Option<u64>,
    page_size: u64,
}

impl MainProbe {
    fn open(pid: pid_t) -> Option<MainProbe> {
        let stat = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
        // SAFETY: sysconf has no preconditions.
        let page_size = u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut p = MainProbe { stat, comm: [0; 64], comm_len: 0, rss_bytes: None, page_size };
        // A first read allocates the file's buffer now, while there is room. Its content is not
        // kept: the child may not have exec'd yet, and would still be called oominit.
        p.sample();
        p.comm_len = 0;
        p.rss_bytes = None;
        Some(p)
    }

    fn sample(&mut self) {
        let mut buf = [0u8; 1024];
        let Ok(n) = std::os::unix::fs::FileExt::read_at(&self.stat, &mut buf, 0) else { return };
        // An exiting or dead process has begun to lose the memory it was killed for: keep the
        // last sample of it alive.
        let Some((comm, rss, false)) = std::str::from_utf8(&buf[..n]).ok().and_then(procfs::stat_comm_rss)
        else {
            return;
        };
        let len = comm.len().min(self.comm.len());
        self.comm[..len].copy_from_slice(&comm.as_bytes()[..len]);
        self.comm_len = len;
        self.rss_bytes = Some(rss.saturating_mul(self.page_size));
    }

    fn last(&self) -> Option<(String, u64)> {
        let comm = String::from_utf8_lossy(&self.comm[..self.comm_len]).into_owned();
        self.rss_bytes.map(|rss| (comm, rss))
    }
}

/// Free memory below the limit that counts as room to write again: a few pages.
const ROOM: u64 = 256 * 1024;

/// Room for a live event line; a longer one still works, it just may allocate.
const LINE_CAPACITY: usize = 16 * 1024;

/// What the cgroup says at the end.
pub struct Observed {
    pub delta: Counters,
    pub memory: MemoryInfo,
    /// The main process's name and resident bytes, as last read before its end.
    pub main_sample: Option<(String, u64)>,
}

impl<'a> OomWatch<'a> {
    /// Read the baseline: before the command starts, so every kill it causes is counted.
    pub fn start(cgroup: Result<Cgroup, String>, sink: &'a Sink) -> OomWatch<'a> {
        let mut w = OomWatch {
            cgroup,
            watch: None,
            recheck: None,
            baseline: Counters::default(),
            reported: 0,
            sink,
            line: Vec::new(),
            main: None,
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
    /// its live event comes at the next wake, reap or exit.
    pub fn arm(&mut self, main: Option<pid_t>) {
        let mut line = vec![b' '; LINE_CAPACITY];
        line.clear();
        self.line = line;
        let Ok(cg) = &mut self.cgroup else { return };
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
        self.main = main.and_then(MainProbe::open);
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
        let Ok(cg) = &self.cgroup else { return };
        for _ in 0..40 {
            let m = cg.memory();
            match (m.usage_bytes, m.limit_bytes) {
                (Some(usage), Some(limit)) if usage.saturating_add(ROOM) > limit => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => return,
            }
        }
    }

    /// Re-read; if more processes were killed than already reported, say so now. Returns the
    /// deltas, and whether the kill count rose.
    fn check(&mut self) -> (Option<Counters>, bool) {
        let Some(delta) = self.delta() else { return (None, false) };
        let kills = delta.kills();
        if kills <= self.reported {
            return (Some(delta), false);
        }
        self.reported = kills;
        self.wait_for_room();
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
            victims: &[],
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
        let main_sample = self.main.as_ref().and_then(MainProbe::last);
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
        Observed { delta, memory: self.memory_info(), main_sample }
    }
}

impl Watcher for OomWatch<'_> {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.watch.iter().map(Watch::fd).chain(self.recheck.iter().map(|(t, _)| t.as_fd())).collect()
    }

    fn on_wake(&mut self, which: usize) {
        // Every wake here is an OOM notification (or its re-check): the moment to note how big
        // the main process is, in case it is the one killed.
        if let Some(p) = &mut self.main {
            p.sample();
        }
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

    /// A reap is the other moment a kill shows. Without any registration (read-only cgroupfs)
    /// reaps are all there is: re-read at every one. With v1's eventfd, which is silent on a
    /// host-wide OOM, re-read when something died of SIGKILL. Not at every reap otherwise: a burst
    /// of 5000 orphaned zombies would cost thousands of re-reads (measured: 1.6x tini's CPU).
    fn on_reap(&mut self, exits: &[(pid_t, Status)]) {
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
