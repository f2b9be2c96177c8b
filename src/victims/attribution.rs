//! Who died of the kill: a pure decision, from the deaths seen among the processes followed and
//! the number of kills a read of the counter added, of whom to name, how sure, and whom to keep
//! for the next read.
//!
//! The rules, each from how the kernel orders things:
//!
//! - The kernel raises `oom_kill` before it sends the SIGKILL (mm/oom_kill.c,
//!   __oom_kill_process). So a death by SIGKILL seen before a read that counted no new kill was
//!   not an OOM kill (a `kill -9`, or oominit's own at the end of `--grace`): forgotten.
//! - A death seen after the read began may belong to a kill that read did not count yet: it waits
//!   for the next read, unless it fits in the kills this read left unexplained.
//! - A read that counts no kill, within 2 s of one that left kills unexplained, judges the deaths
//!   seen since that one began as that one would have (the victim's death, seen only once that
//!   read had settled): [`Victims::settle`](super::Victims::settle) applies [`call`] twice.
//! - More deaths by SIGKILL seen before the read than new kills: the OOM killer takes the
//!   process with the most memory (oom_badness: resident size, shifted by `oom_score_adj`). Where
//!   all of them had the same `oom_score_adj` and as many as the kills stood out by size (each at
//!   least twice as large as any other, as last seen), those are the victims and the others were
//!   killed some other way (a `kill -9` right after, say). Otherwise all are named, each
//!   uncertain.
//! - A death by a fatal signal that cannot be told from SIGKILL (`Fatal`: the kernel's PF_SIGNALED,
//!   or a fatal signal pending, where the reader may not see the exit code and has no status file
//!   held open) counts as a death by SIGKILL in every tally, but is never named for certain.
//! - A process gone with no exit status to read (`vanished`: reaped by its own parent on a kernel
//!   without pidfd exit statuses), seen before the read or during it, is named only when exactly
//!   as many vanished as kills are left unexplained, and then uncertain. Never guessed among more.

use serde::Serialize;

/// How oominit knows a process died of SIGKILL, best evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// oominit reaped it itself and saw SIGKILL (the main process, or an orphan).
    Reaped,
    /// Its `/proc/PID/stat` shows SIGKILL pending, or an exit by SIGKILL.
    Proc,
    /// Its parent reaped it, and its pidfd says it died of SIGKILL (kernel 6.15+).
    Pidfd,
    /// Gone without a trace; never certain.
    Vanished,
}

/// How a followed process ended, as far as oominit saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Death {
    Killed(Source),
    /// A fatal signal, SIGKILL or another one: its stat shows PF_SIGNALED or a fatal signal
    /// pending, and nothing this reader may see says which (the exit code hidden, no status file).
    Fatal,
    /// Gone, and how is unknown.
    Vanished,
    /// Ended some other way than SIGKILL.
    Other,
}

/// What to do with one death after a read of the counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Name it, sure.
    Certain,
    /// Name it, but the evidence does not single it out.
    Uncertain,
    /// Keep it: the next read decides.
    Wait,
    /// Not a victim of any kill counted: drop it.
    Forget,
}

/// What the OOM killer ranks a process by, as last seen alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rss_bytes: u64,
    pub oom_score_adj: i16,
}

/// One death as the read sees it: how, whether seen `before` the read began, and the size of
/// the process as last seen (None: never seen alive, or its `oom_score_adj` unread).
pub type Seen = (Death, bool, Option<Size>);

/// The deaths seen, counted for a read that counted `new` kills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    new: u64,
    killed_before: u64,
    killed_after: u64,
    /// Vanished, seen before the read began or after: a victim its parent reaped at once, where
    /// the kernel keeps no exit status for a pidfd, often vanishes during the read that counts it.
    vanished: u64,
    /// Where the deaths by SIGKILL before the read outnumber the kills and the largest stand out:
    /// the size from which on they are the victims.
    victims_from: Option<u64>,
}

impl Tally {
    pub fn of(deaths: impl Iterator<Item = Seen> + Clone, new: u64) -> Tally {
        let mut t = Tally { new, ..Tally::default() };
        for (death, before, _) in deaths.clone() {
            match (death, before) {
                (Death::Killed(_) | Death::Fatal, true) => {
                    t.killed_before = t.killed_before.saturating_add(1)
                }
                (Death::Killed(_) | Death::Fatal, false) => t.killed_after = t.killed_after.saturating_add(1),
                (Death::Vanished, _) => t.vanished = t.vanished.saturating_add(1),
                _ => {}
            }
        }
        if t.killed_before > new && new > 0 {
            let sizes = deaths.filter_map(|(d, before, size)| match d {
                Death::Killed(_) | Death::Fatal if before => Some(size),
                _ => None,
            });
            t.victims_from = largest_stand_out(sizes, new);
        }
        t
    }
}

/// The smallest of the `n` largest sizes, where those `n` are each at least twice as large as
/// every other and every `oom_score_adj` is the same; None otherwise (a size unknown, a tie).
/// Quadratic, without allocating: it runs only when deaths outnumber kills, among few.
fn largest_stand_out(sizes: impl Iterator<Item = Option<Size>> + Clone, n: u64) -> Option<u64> {
    let mut adj = None;
    for size in sizes.clone() {
        let s = size?;
        if adj.get_or_insert(s.oom_score_adj) != &s.oom_score_adj {
            return None;
        }
    }
    let rss = sizes.flatten().map(|s| s.rss_bytes);
    // The cut: the size with exactly n sizes at or above it.
    let cut = rss.clone().find(|&c| rss.clone().filter(|&r| r >= c).count() as u64 == n)?;
    let below = rss.filter(|&r| r < cut).max().unwrap_or(0);
    (cut >= below.saturating_mul(2)).then_some(cut)
}

/// The call for one death (`before`: seen before the read began; `size`: as last seen), given
/// every death the read saw (`tally`).
pub fn call(death: Death, before: bool, size: Option<Size>, tally: Tally) -> Call {
    match (death, call_as_killed(death, before, size, tally)) {
        // Which signal it was is not known: it may be the victim, never for sure.
        (Death::Fatal, Call::Certain) => Call::Uncertain,
        (_, call) => call,
    }
}

/// [`call`], with a fatal signal taken for SIGKILL.
fn call_as_killed(death: Death, before: bool, size: Option<Size>, tally: Tally) -> Call {
    let death = if death == Death::Fatal { Death::Killed(Source::Proc) } else { death };
    let new = tally.new;
    let room = new.saturating_sub(tally.killed_before);
    let after_fit = new > 0 && tally.killed_after <= room;
    let unexplained = if after_fit { room - tally.killed_after } else { room };
    match (death, before) {
        (Death::Killed(_), true) if new == 0 => Call::Forget,
        (Death::Killed(_), true) if tally.killed_before <= new => Call::Certain,
        (Death::Killed(_), true) => match (tally.victims_from, size) {
            (Some(from), Some(s)) if s.rss_bytes >= from => Call::Certain,
            (Some(_), _) => Call::Forget,
            (None, _) => Call::Uncertain,
        },
        (Death::Killed(_), false) if after_fit => Call::Certain,
        (Death::Vanished, _) if unexplained > 0 && tally.vanished == unexplained => Call::Uncertain,
        (_, true) => Call::Forget,
        (_, false) => Call::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Call::*;

    const PROC: Death = Death::Killed(Source::Proc);
    const PIDFD: Death = Death::Killed(Source::Pidfd);
    const REAPED: Death = Death::Killed(Source::Reaped);
    const GONE: Death = Death::Vanished;
    const EXIT: Death = Death::Other;
    const FATAL: Death = Death::Fatal;
    const BEFORE: bool = true;
    const AFTER: bool = false;
    const NO_SIZE: Option<Size> = None;

    const fn mib(n: u64, oom_score_adj: i16) -> Option<Size> {
        Some(Size { rss_bytes: n << 20, oom_score_adj })
    }

    /// The situation, the deaths seen (and when), the kills the read counted, and the call for
    /// each death in order.
    type Row<'a> = (&'a str, &'a [Seen], u64, &'a [Call]);

    #[test]
    fn who_is_named_after_a_read() {
        #[rustfmt::skip]
        let rows: &[Row<'_>] = &[
            ("a kill -9: a death by SIGKILL and no kill counted",
                &[(PIDFD, BEFORE, NO_SIZE)], 0, &[Forget]),
            ("one kill, one death by SIGKILL: that is the victim",
                &[(PROC, BEFORE, NO_SIZE)], 1, &[Certain]),
            ("two kills, two deaths by SIGKILL seen different ways",
                &[(PROC, BEFORE, NO_SIZE), (PIDFD, BEFORE, NO_SIZE)], 2, &[Certain, Certain]),
            ("one kill, two deaths by SIGKILL: either could be it",
                &[(PROC, BEFORE, NO_SIZE), (REAPED, BEFORE, NO_SIZE)], 1, &[Uncertain, Uncertain]),
            ("a kill and a vanished process for the one kill left unexplained",
                &[(PROC, BEFORE, NO_SIZE), (GONE, BEFORE, NO_SIZE)], 2, &[Certain, Uncertain]),
            ("two vanished for one unexplained kill: no guess",
                &[(GONE, BEFORE, NO_SIZE), (GONE, BEFORE, NO_SIZE)], 1, &[Forget, Forget]),
            ("a vanished process when every kill is explained",
                &[(PROC, BEFORE, NO_SIZE), (GONE, BEFORE, NO_SIZE)], 1, &[Certain, Forget]),
            ("an exit that is not SIGKILL never counts",
                &[(EXIT, BEFORE, NO_SIZE)], 1, &[Forget]),
            ("a death seen after the read, with room for it in this read's kills",
                &[(REAPED, AFTER, NO_SIZE)], 1, &[Certain]),
            ("a death seen after the read, this read's kill taken by an earlier death",
                &[(PROC, BEFORE, NO_SIZE), (REAPED, AFTER, NO_SIZE)], 1, &[Certain, Wait]),
            ("a death seen after a read that counted nothing: the next read decides",
                &[(REAPED, AFTER, NO_SIZE)], 0, &[Wait]),
            ("a process that vanished during the read that counted one kill: the one unexplained",
                &[(GONE, AFTER, NO_SIZE)], 1, &[Uncertain]),
            ("a vanished process seen after a read that counted nothing waits",
                &[(GONE, AFTER, NO_SIZE)], 0, &[Wait]),
            ("one vanished before and one during the read, for one unexplained kill: no guess",
                &[(GONE, BEFORE, NO_SIZE), (GONE, AFTER, NO_SIZE)], 1, &[Forget, Wait]),
            ("a death after the read fills the kill a vanished one might have been",
                &[(GONE, BEFORE, NO_SIZE), (PROC, AFTER, NO_SIZE)], 1, &[Forget, Certain]),
            ("one kill, a hog and a small shell killed after it: the hog, by size",
                &[(PROC, BEFORE, mib(1, 0)), (PIDFD, BEFORE, mib(33, 0))], 1, &[Forget, Certain]),
            ("one kill, two of a size: either could be it",
                &[(PROC, BEFORE, mib(20, 0)), (PIDFD, BEFORE, mib(30, 0))], 1, &[Uncertain, Uncertain]),
            ("one kill, the larger one with another oom_score_adj: size does not decide",
                &[(PROC, BEFORE, mib(1, 0)), (PIDFD, BEFORE, mib(33, -500))], 1, &[Uncertain, Uncertain]),
            ("one kill, a size never seen: size does not decide",
                &[(REAPED, BEFORE, NO_SIZE), (PIDFD, BEFORE, mib(33, 0))], 1, &[Uncertain, Uncertain]),
            ("two kills, two hogs and a shell",
                &[(PROC, BEFORE, mib(30, 0)), (PROC, BEFORE, mib(1, 0)), (PIDFD, BEFORE, mib(40, 0))], 2,
                &[Certain, Forget, Certain]),
            ("one kill, two hogs of one size and a shell: a tie",
                &[(PROC, BEFORE, mib(30, 0)), (PROC, BEFORE, mib(1, 0)), (PIDFD, BEFORE, mib(30, 0))], 1,
                &[Uncertain, Uncertain, Uncertain]),
            ("one kill, one death by a fatal signal that could be another: named, not for sure",
                &[(FATAL, BEFORE, NO_SIZE)], 1, &[Uncertain]),
            ("a fatal signal and no kill counted: not an OOM kill",
                &[(FATAL, BEFORE, NO_SIZE)], 0, &[Forget]),
            ("one kill, a death by SIGKILL and one by a fatal signal: neither for sure",
                &[(PROC, BEFORE, NO_SIZE), (FATAL, BEFORE, NO_SIZE)], 1, &[Uncertain, Uncertain]),
            ("two kills, a death by SIGKILL and one by a fatal signal",
                &[(PROC, BEFORE, NO_SIZE), (FATAL, BEFORE, NO_SIZE)], 2, &[Certain, Uncertain]),
            ("one kill, a fatal signal after the read, with room for it",
                &[(FATAL, AFTER, NO_SIZE)], 1, &[Uncertain]),
            ("one kill, a hog dying of a fatal signal and a small shell killed: the hog, not for sure",
                &[(PROC, BEFORE, mib(1, 0)), (FATAL, BEFORE, mib(33, 0))], 1, &[Forget, Uncertain]),
        ];
        for (situation, deaths, new, calls) in rows {
            let tally = Tally::of(deaths.iter().copied(), *new);
            let got: Vec<Call> =
                deaths.iter().map(|&(d, before, size)| call(d, before, size, tally)).collect();
            assert_eq!(&got, calls, "{situation}");
        }
    }

    #[test]
    fn sources_are_written_in_lowercase() {
        let s =
            serde_json::to_string(&[Source::Reaped, Source::Proc, Source::Pidfd, Source::Vanished]).unwrap();
        assert_eq!(s, r#"["reaped","proc","pidfd","vanished"]"#);
    }
}
