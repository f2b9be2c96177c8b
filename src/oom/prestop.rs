//! `--pre-oom-stop`: one signal to the main process when memory the kernel cannot reclaim
//! (anon, shmem, kernel: [`Breakdown::unreclaimable`]) fills a fraction of the limit, so that it
//! can drain, flush or dump its heap before the kernel's OOM killer SIGKILLs it.
//!
//! Decided at the readings oominit takes anyway at the watch's wakes: v2 `max` events, at most
//! every 100 ms; v1 usage thresholds, one of them at the fraction. Page cache is not counted: a
//! cgroup full of it is normal, and the kernel reclaims it before it kills. Sent once; oominit
//! kills nothing after it, the kernel's OOM killer stays the backstop.
//!
//! v1 has one gap: usage passes the threshold while what `memory.stat` counts as unreclaimable is
//! still under it (page cache holds the rest, or the stats trail usage), then stays up there
//! with no threshold crossed again, and the OOM notification comes only as the kill is made. So
//! after such a wake, and only then, the cgroup is read again every [`SAMPLE_EVERY`] for
//! [`SAMPLE_FOR`] at most ([`resample`]).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::cgroup::{Breakdown, Memory};

/// v1, after a threshold's wake that found too little unreclaimable memory: how often to read
/// again, and for how long at most.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);
pub const SAMPLE_FOR: Duration = Duration::from_secs(2);

/// Of the limit, in millionths: integer arithmetic, as a float parser and formatter would cost
/// more of the binary than the rest of the option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction(u32);

const MILLION: u32 = 1_000_000;

impl Fraction {
    /// 0.9: a tenth of the limit left for the application to stop in.
    pub const DEFAULT: Fraction = Fraction(900_000);

    /// "0.9", "0.95", "1", "1.0": more than 0, at most 1, at most 6 decimals.
    pub fn parse(text: &str) -> Result<Fraction, String> {
        let bad = || format!("'{text}' is not a fraction of the limit (more than 0, at most 1, like 0.9)");
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || whole.len() > 1 || frac.len() > 6 || !digits(whole) || !digits(frac) {
            return Err(bad());
        }
        let digit = |d: u8| u32::from(d.saturating_sub(b'0'));
        let mut millionths = whole.bytes().map(digit).sum::<u32>().saturating_mul(MILLION);
        let mut place = MILLION;
        for d in frac.bytes() {
            place /= 10;
            millionths = millionths.saturating_add(digit(d).saturating_mul(place));
        }
        if millionths == 0 || millionths > MILLION {
            return Err(bad());
        }
        Ok(Fraction(millionths))
    }

    /// This fraction of `limit`, rounded down.
    pub fn of(self, limit: u64) -> u64 {
        let m = u64::from(MILLION);
        let f = u64::from(self.0);
        // Split so that nothing overflows: (limit / m) * f <= limit, (limit % m) * f < m * m.
        (limit / m).saturating_mul(f).saturating_add((limit % m).saturating_mul(f) / m)
    }
}

/// What `--pre-oom-stop` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreOomStop {
    pub fraction: Fraction,
    pub signal: i32,
}

/// A reading of the cgroup, and whether the signal is still to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// What fills the cgroup; None where `memory.stat` cannot be read.
    pub breakdown: Option<Breakdown>,
    /// None: no limit of its own, nothing to stop before.
    pub limit: Option<u64>,
    pub fraction: Fraction,
    /// Asked for already, or the main process is being stopped otherwise (`--on-leaf-oom exit`).
    pub done: bool,
}

/// Whether to send the signal now.
pub fn send(r: &Reading) -> bool {
    match (r.breakdown, r.limit) {
        (Some(b), Some(limit)) if !r.done => b.unreclaimable() >= r.fraction.of(limit),
        _ => false,
    }
}

/// After a reading kept that sent nothing, `since` the first reading of this run of samples:
/// whether to read again [`SAMPLE_EVERY`] later. Only while usage is past the threshold: below
/// it, the threshold's own wake comes as it is crossed. Usage, not the breakdown's total: the
/// threshold wakes on usage, and `memory.stat` trails it (charges in per-CPU batches, kernel
/// memory it does not list). Seen on v1 (6.18): the wake at 0.9 of the limit read anon and
/// kernel memory at 0.89, and the kill came before any other wake.
pub fn resample(usage: u64, threshold: u64, done: bool, since: Duration) -> bool {
    !done && usage >= threshold && since < SAMPLE_FOR
}

/// The reading that led to the signal, and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub signal: i32,
    /// Since the epoch: formatted when written, as a record may have to wait for room.
    pub at: Duration,
    pub breakdown: Breakdown,
    pub threshold: u64,
    pub limit: u64,
    /// Kills counted when it was sent.
    pub kills: u64,
}

/// `--pre-oom-stop`'s state in the watch.
#[derive(Debug)]
pub struct State {
    cfg: PreOomStop,
    /// The reading the signal was asked for at: asked once, sent or not.
    asked: Option<Sent>,
    sent: Option<Sent>,
    /// The live record is still to be written (no room below the limit when it was sent).
    unwritten: bool,
    /// v1: the timer of [`resample`], and when this run of samples began.
    sampler: Option<TimerFd>,
    sampling_since: Option<Instant>,
}

impl State {
    /// `sample`: readings between wakes are needed (v1's thresholds), and a timer for them.
    pub fn new(cfg: PreOomStop, sample: bool) -> State {
        let sampler = sample
            .then(|| {
                TimerFd::new(ClockId::CLOCK_MONOTONIC, TimerFlags::TFD_CLOEXEC | TimerFlags::TFD_NONBLOCK)
            })
            .and_then(|t| {
                t.inspect_err(|e| crate::diag!(1, "no timer for --pre-oom-stop's readings: {e}")).ok()
            });
        State { cfg, asked: None, sent: None, unwritten: false, sampler, sampling_since: None }
    }

    /// The timer to wake on, where there is one.
    pub fn timer_fd(&self) -> Option<BorrowedFd<'_>> {
        self.sampler.as_ref().map(AsFd::as_fd)
    }

    /// The timer fired: consume it (the epoll set is level-triggered).
    pub fn sampled(&self) {
        if let Some(t) = &self.sampler {
            let _ = nix::unistd::read(t.as_fd(), &mut [0u8; 8]);
        }
    }

    /// After a reading that sent nothing (`kept`: None where none was kept, a kill counted, say):
    /// read again soon ([`resample`]), or stop. `stopping`: as for [`State::at_reading`].
    pub fn sample(&mut self, kept: Option<(Breakdown, Memory)>, stopping: bool) {
        let Some(timer) = &self.sampler else { return };
        let since = *self.sampling_since.get_or_insert_with(Instant::now);
        let m = kept.map(|(_, m)| m).unwrap_or_default();
        let threshold = m.limit_bytes.map_or(u64::MAX, |l| self.cfg.fraction.of(l));
        let usage = m.usage_bytes.unwrap_or(0);
        if resample(usage, threshold, self.asked.is_some() || stopping, since.elapsed()) {
            let every = Expiration::OneShot(TimeSpec::from_duration(SAMPLE_EVERY));
            if timer.set(every, TimerSetTimeFlags::empty()).is_ok() {
                return;
            }
        }
        self.sampling_since = None;
    }

    /// At a reading kept with `kills` counted so far: the signal to ask the loop for, if now.
    /// `stopping`: main is being stopped for a leaf's kill already.
    pub fn at_reading(
        &mut self,
        breakdown: Breakdown,
        limit: Option<u64>,
        kills: u64,
        stopping: bool,
    ) -> Option<i32> {
        let reading = Reading {
            breakdown: Some(breakdown),
            limit,
            fraction: self.cfg.fraction,
            done: self.asked.is_some() || stopping,
        };
        if !send(&reading) {
            return None;
        }
        let limit = limit?;
        self.asked = Some(Sent {
            signal: self.cfg.signal,
            at: Duration::ZERO,
            breakdown,
            threshold: self.cfg.fraction.of(limit),
            limit,
            kills,
        });
        Some(self.cfg.signal)
    }

    /// The loop sent the signal asked for.
    pub fn sent(&mut self) {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.sent = self.asked.map(|a| Sent { at, ..a });
        self.unwritten = self.sent.is_some();
    }

    /// The live record to write now, once.
    pub fn unwritten(&self) -> Option<Sent> {
        self.sent.filter(|_| self.unwritten)
    }

    pub fn written(&mut self) {
        self.unwritten = false;
    }

    /// For the exit record.
    pub fn outcome(&self) -> Option<Sent> {
        self.sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn filled(anon: u64, file: u64, shmem: u64, kernel: u64) -> Option<Breakdown> {
        Some(Breakdown {
            anon_bytes: Some(anon),
            file_bytes: Some(file),
            shmem_bytes: Some(shmem),
            kernel_bytes: Some(kernel),
            sock_bytes: Some(0),
        })
    }

    #[test]
    fn send_table() {
        let f = |t| Fraction::parse(t).unwrap();
        let limit = Some(32 * MIB);
        // 0.9 of 32 MiB, rounded down.
        const THRESHOLD: u64 = 30_198_988;
        // (situation, breakdown, limit, fraction, done, send)
        #[rustfmt::skip]
        let rows = [
            ("page cache fills the limit, a small heap", filled(2 * MIB, 30 * MIB, 0, MIB / 4), limit, f("0.9"), false, false),
            ("the heap past 0.9 of the limit", filled(29 * MIB, 2 * MIB, 0, MIB / 2), limit, f("0.9"), false, true),
            ("the heap a byte under the threshold", filled(THRESHOLD - 1, 3 * MIB, 0, 0), limit, f("0.9"), false, false),
            ("exactly at the threshold", filled(THRESHOLD, 3 * MIB, 0, 0), limit, f("0.9"), false, true),
            ("files in tmpfs and kernel memory count as the heap does", filled(MIB, MIB, 27 * MIB, 2 * MIB), limit, f("0.9"), false, true),
            ("sent already: once per run", filled(31 * MIB, 0, 0, MIB), limit, f("0.9"), true, false),
            ("no limit of its own", filled(31 * MIB, 0, 0, MIB), None, f("0.9"), false, false),
            ("memory.stat unreadable", None, limit, f("0.9"), false, false),
            ("a lower fraction, half the limit of heap", filled(16 * MIB, 16 * MIB, 0, 0), limit, f("0.5"), false, true),
            ("the whole limit: a page short is not it", filled(32 * MIB - 4096, 4096, 0, 0), limit, f("1"), false, false),
            ("the whole limit, reached", filled(32 * MIB, 0, 0, 0), limit, f("1"), false, true),
            ("a limit near u64::MAX does not overflow", filled(u64::MAX, 0, 0, 0), Some(u64::MAX), f("0.999999"), false, true),
        ];
        for (situation, breakdown, limit, fraction, done, want) in rows {
            assert_eq!(send(&Reading { breakdown, limit, fraction, done }), want, "{situation}");
        }
    }

    #[test]
    fn resample_table() {
        let ms = Duration::from_millis;
        let t = 30 * MIB;
        // (situation, usage, threshold, done, since the first sample, read again)
        #[rustfmt::skip]
        let rows = [
            ("usage past the threshold, unreclaimable not yet", 32 * MIB, t, false, ms(0), true),
            ("still so, within the bound", 32 * MIB, t, false, ms(1950), true),
            ("the bound reached: no more until the next wake", 32 * MIB, t, false, SAMPLE_FOR, false),
            ("usage fell below the threshold: its crossing wakes", t - 1, t, false, ms(100), false),
            ("sent already", 32 * MIB, t, true, ms(0), false),
        ];
        for (situation, total, threshold, done, since, want) in rows {
            assert_eq!(resample(total, threshold, done, since), want, "{situation}");
        }
    }

    #[test]
    fn fractions_parse_as_decimals_above_0_up_to_1() {
        for (text, millionths) in
            [("0.9", 900_000), ("0.95", 950_000), ("1", MILLION), ("1.0", MILLION), ("0.000001", 1)]
        {
            assert_eq!(Fraction::parse(text), Ok(Fraction(millionths)), "{text}");
        }
        for bad in ["", "0", "0.0", "1.5", "2", "-0.5", ".9", "0.9.1", "0,9", "nan", "0.0000001", "10", " . "]
        {
            let e = Fraction::parse(bad).unwrap_err();
            assert!(e.contains("fraction") && !e.contains('\n'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_fraction_of_a_limit_rounds_down_and_never_overflows() {
        assert_eq!(Fraction::DEFAULT.of(32 * MIB), 30_198_988);
        assert_eq!(Fraction(MILLION).of(u64::MAX), u64::MAX);
        assert_eq!(Fraction(1).of(999_999), 0);
        assert_eq!(Fraction(500_000).of(3), 1);
    }

    #[test]
    fn asked_once_and_recorded_only_when_sent() {
        let mut s = State::new(PreOomStop { fraction: Fraction::DEFAULT, signal: 15 }, false);
        let full = filled(31 * MIB, 0, 0, 0).unwrap();
        assert_eq!(s.at_reading(full, Some(32 * MIB), 0, true), None, "main is being stopped already");
        assert_eq!(s.at_reading(full, Some(32 * MIB), 0, false), Some(15));
        assert_eq!(s.outcome(), None, "asked, not sent yet");
        assert_eq!(s.at_reading(full, Some(32 * MIB), 0, false), None, "once");
        s.sent();
        let sent = s.unwritten().unwrap();
        assert_eq!((sent.signal, sent.limit, sent.threshold), (15, 32 * MIB, Fraction::DEFAULT.of(32 * MIB)));
        assert!(sent.at > Duration::ZERO);
        s.written();
        assert_eq!(s.unwritten(), None);
        assert_eq!(s.outcome(), Some(sent));
    }
}
