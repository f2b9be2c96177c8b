//! One-shot timers for the event loop. None runs while oominit is idle: one is armed only for a
//! `--grace` period, or briefly after a cgroup v1 OOM notification (see `oomwatch`).

use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::error::{Context, Error};

pub fn new() -> Result<TimerFd, Error> {
    TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK)
        .context("creating a timer")
}

/// Fire once, `after` from now.
pub fn arm(timer: &TimerFd, after: Duration) -> Result<(), Error> {
    // A zero timespec would disarm the timer instead of firing it at once.
    let after = after.max(Duration::from_nanos(1));
    timer
        .set(Expiration::OneShot(TimeSpec::from_duration(after)), TimerSetTimeFlags::empty())
        .context("arming a timer")
}
