//! Being woken when the cgroup's OOM figures may have changed, with each version's quirks kept
//! here: what a wake means ([`Wake`]), when to read again after one, and whether a reap can be
//! the only sign of a kill.
//!
//! - v2: inotify on `memory.events`, which the kernel modifies on every counter change: `max`
//!   (the cgroup reached its limit and reclaims), `oom`, `oom_kill`.
//! - v1: an eventfd for the OOM notification, which comes as an OOM *begins*, before the kill is
//!   counted; and an eventfd for usage crossing thresholds below the limit, the time to look at
//!   the processes while there is room. It is silent on a host-wide OOM.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::sys::inotify::Inotify;

use super::{v1, v2, Cgroup, CgroupError, Version};

/// What a wake of the watch means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// v2: a counter of `memory.events` changed: the cgroup reached its limit, or a kill was
    /// counted.
    Events,
    /// v1: an OOM is beginning. Its kill may not be counted yet: read again shortly
    /// ([`Watch::recheck`]). A charge now could set off a second kill rather than wait for the
    /// first (the kernel marks a victim done before its last pages are uncharged).
    OomBegins,
    /// v1: usage crossed a threshold below the limit; `rising` when it went up past it (falling
    /// is mostly a victim's memory being given back).
    Nearing { rising: bool },
}

pub struct Watch {
    notify: Notify,
    /// v1: the thresholds' eventfd, the lowest threshold, and usage at its last wake.
    thresholds: Option<(OwnedFd, u64, u64)>,
    /// v1: re-reads done since the last OOM notification.
    rechecks: u32,
    /// v1: thresholds prepared, to be registered by [`Watch::start_registrations`].
    pending: Vec<v1::Registration>,
}

enum Notify {
    Inotify(Inotify),
    /// v1: the eventfd registered on `memory.oom_control`.
    EventFd {
        efd: OwnedFd,
    },
}

impl Watch {
    /// Register for the cgroup's OOM notifications.
    pub(super) fn open(cg: &Cgroup) -> Result<Watch, CgroupError> {
        let notify = match cg.version {
            Version::V1 => v1::notify_oom(cg).map(|efd| Notify::EventFd { efd })?,
            Version::V2 => Notify::Inotify(v2::notify(cg)?),
        };
        Ok(Watch { notify, thresholds: None, rechecks: 0, pending: Vec::new() })
    }

    /// v1: also wake as usage nears `limit` (v2's `max` events already come through
    /// `memory.events`).
    pub fn warn_near_limit(&mut self, cg: &Cgroup, limit: u64) {
        if let Notify::EventFd { .. } = self.notify {
            if let Some((fd, lowest, registration)) = v1::thresholds(cg, limit) {
                self.thresholds = Some((fd, lowest, 0));
                self.pending.push(registration);
            }
        }
    }

    /// v1: also wake as usage crosses `bytes` (`--pre-oom-stop`'s fraction of the limit), on the
    /// thresholds' eventfd. A no-op on v2, whose `max` events come at the limit, and where
    /// [`Watch::warn_near_limit`] registered nothing. Whether thresholds wake at all.
    pub fn warn_also_at(&mut self, cg: &Cgroup, bytes: u64) -> bool {
        let Some((fd, lowest, _)) = &self.thresholds else { return false };
        // Below half the limit a reading is not kept (see `note_filling`): the half's wake serves.
        if bytes > *lowest {
            match v1::threshold_also(cg, fd, bytes) {
                Some(registration) => self.pending.push(registration),
                None => {
                    crate::diag!(1, "no usage threshold at {bytes} bytes: the stop waits for the other wakes")
                }
            }
        }
        true
    }

    /// v1: when to register the thresholds prepared ([`v1::REGISTER_AFTER`] from start), if any
    /// are waiting.
    pub fn registrations_due(&self) -> Option<Duration> {
        (!self.pending.is_empty()).then_some(v1::REGISTER_AFTER)
    }

    /// v1: register the thresholds prepared, on a helper thread; whether any were waiting.
    pub fn start_registrations(&mut self) -> bool {
        if self.pending.is_empty() {
            return false;
        }
        if !v1::Registration::start(std::mem::take(&mut self.pending)) {
            crate::diag!(1, "no thread to register the usage thresholds: their wakes will not come");
        }
        true
    }

    /// v1: re-reads after an OOM notification are under way.
    pub fn rechecking(&self) -> bool {
        self.rechecks > 0
    }

    /// How many descriptors [`Watch::fds`] gives.
    pub fn fd_count(&self) -> usize {
        1 + usize::from(self.thresholds.is_some())
    }

    /// The descriptors to wake on, in a fixed order: [`Watch::wake`] takes the position.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let thresholds = self.thresholds.iter().map(|(fd, _, _)| fd.as_fd());
        std::iter::once(self.notify_fd()).chain(thresholds).collect()
    }

    fn notify_fd(&self) -> BorrowedFd<'_> {
        match &self.notify {
            Notify::Inotify(i) => i.as_fd(),
            Notify::EventFd { efd } => efd.as_fd(),
        }
    }

    /// Descriptor `which` of [`Watch::fds`] woke: consume the wake (epoll is level-triggered)
    /// and say what it means. `usage` is read only for a threshold's wake.
    pub fn wake(&mut self, which: usize, usage: impl FnOnce() -> Option<u64>) -> Option<Wake> {
        if which == 0 {
            drain(self.notify_fd());
            return Some(match self.notify {
                Notify::Inotify(_) => Wake::Events,
                Notify::EventFd { .. } => Wake::OomBegins,
            });
        }
        let (fd, lowest, last) = self.thresholds.as_mut().filter(|_| which == 1)?;
        drain(fd.as_fd());
        let now = usage().unwrap_or(0);
        // With two thresholds, usage can still be above the lower one as it falls past the
        // higher one: rising means above the last wake's figure too.
        let rising = now >= *lowest && now > *last;
        *last = now;
        Some(Wake::Nearing { rising })
    }

    /// After a [`Wake::OomBegins`] (`notified`) or a re-read, and whether it found a new kill:
    /// when to read again (None: no more re-reads; always None on v2).
    pub fn recheck(&mut self, notified: bool, rose: bool) -> Option<Duration> {
        if !matches!(self.notify, Notify::EventFd { .. }) {
            return None;
        }
        let done = if notified { 0 } else { self.rechecks };
        let next = if rose { None } else { v1::recheck_delay(done) };
        self.rechecks = if next.is_some() { done + 1 } else { 0 };
        next
    }

    /// Whether a reap must be taken as a possible kill and the counters re-read. v1's eventfd is
    /// silent on a host-wide OOM: a death by SIGKILL may be one. v2's inotify misses nothing.
    /// Not at every reap: a burst of thousands of orphaned zombies would cost as many re-reads.
    pub fn reap_may_show_kill(&self, sigkill: bool) -> bool {
        match self.notify {
            Notify::Inotify(_) => false,
            Notify::EventFd { .. } => sigkill,
        }
    }

    /// Whether nothing wakes oominit before the cgroup reaches its limit: v2, whose `max` events
    /// come at the limit, and a cgroup file notifies at most 100 times a second (the kernel
    /// delays the rest): a kill's wake may come after its victim was reaped. v1 wakes at its
    /// thresholds, where it has a limit, and its OOM notification's re-reads hold the timer.
    pub fn silent_below_limit(&self) -> bool {
        matches!(self.notify, Notify::Inotify(_))
    }

    /// The record's `memory.watch`.
    pub fn name(&self) -> &'static str {
        match self.notify {
            Notify::Inotify(_) => "inotify",
            Notify::EventFd { .. } => "eventfd",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self.notify {
            Notify::Inotify(_) => "inotify on memory.events",
            Notify::EventFd { .. } => "eventfd on memory.oom_control",
        }
    }
}

/// Read the wake away into a small stack buffer, nothing allocated: this runs while the cgroup
/// is at its limit (v2 wakes on every `max` event), when a fresh page for oominit is a charge the
/// cgroup cannot meet (nix's `read_events` builds a Vec). An inotify event on a watched file (no
/// name) is 16 bytes; an eventfd read is 8.
fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 256];
    while matches!(nix::unistd::read(fd, &mut buf), Ok(n) if n > 0) {}
}
