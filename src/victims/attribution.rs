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
//! - More deaths by SIGKILL seen before the read than new kills: all are named, each uncertain.
//! - A process gone with no exit status to read (`vanished`: reaped by its own parent on a kernel
//!   without pidfd exit statuses) is named only when exactly as many vanished as kills are left
//!   unexplained, and then uncertain. Never guessed among more.

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

/// The deaths seen, counted once per read: `before` the read began, or after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    killed_before: u64,
    killed_after: u64,
    vanished_before: u64,
}

impl Tally {
    pub fn of(deaths: impl Iterator<Item = (Death, bool)>) -> Tally {
        let mut t = Tally::default();
        for (death, before) in deaths {
            match (death, before) {
                (Death::Killed(_), true) => t.killed_before = t.killed_before.saturating_add(1),
                (Death::Killed(_), false) => t.killed_after = t.killed_after.saturating_add(1),
                (Death::Vanished, true) => t.vanished_before = t.vanished_before.saturating_add(1),
                _ => {}
            }
        }
        t
    }
}

/// The call for one death (`before`: seen before the read began) when the read counted `new`
/// kills, given every death seen (`tally`).
pub fn call(death: Death, before: bool, tally: Tally, new: u64) -> Call {
    let room = new.saturating_sub(tally.killed_before);
    let after_fit = new > 0 && tally.killed_after <= room;
    let unexplained = if after_fit { room - tally.killed_after } else { room };
    match (death, before) {
        (Death::Killed(_), true) if new == 0 => Call::Forget,
        (Death::Killed(_), true) if tally.killed_before <= new => Call::Certain,
        (Death::Killed(_), true) => Call::Uncertain,
        (Death::Killed(_), false) if after_fit => Call::Certain,
        (Death::Vanished, true) if unexplained > 0 && tally.vanished_before == unexplained => Call::Uncertain,
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
    const BEFORE: bool = true;
    const AFTER: bool = false;

    /// The situation, the deaths seen (and when), the kills the read counted, and the call for
    /// each death in order.
    type Row = (&'static str, &'static [(Death, bool)], u64, &'static [Call]);

    #[test]
    fn who_is_named_after_a_read() {
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("a kill -9: a death by SIGKILL and no kill counted",
                &[(PIDFD, BEFORE)], 0, &[Forget]),
            ("one kill, one death by SIGKILL: that is the victim",
                &[(PROC, BEFORE)], 1, &[Certain]),
            ("two kills, two deaths by SIGKILL seen different ways",
                &[(PROC, BEFORE), (PIDFD, BEFORE)], 2, &[Certain, Certain]),
            ("one kill, two deaths by SIGKILL: either could be it",
                &[(PROC, BEFORE), (REAPED, BEFORE)], 1, &[Uncertain, Uncertain]),
            ("a kill and a vanished process for the one kill left unexplained",
                &[(PROC, BEFORE), (GONE, BEFORE)], 2, &[Certain, Uncertain]),
            ("two vanished for one unexplained kill: no guess",
                &[(GONE, BEFORE), (GONE, BEFORE)], 1, &[Forget, Forget]),
            ("a vanished process when every kill is explained",
                &[(PROC, BEFORE), (GONE, BEFORE)], 1, &[Certain, Forget]),
            ("an exit that is not SIGKILL never counts",
                &[(EXIT, BEFORE)], 1, &[Forget]),
            ("a death seen after the read, with room for it in this read's kills",
                &[(REAPED, AFTER)], 1, &[Certain]),
            ("a death seen after the read, this read's kill taken by an earlier death",
                &[(PROC, BEFORE), (REAPED, AFTER)], 1, &[Certain, Wait]),
            ("a death seen after a read that counted nothing: the next read decides",
                &[(REAPED, AFTER)], 0, &[Wait]),
            ("a vanished process seen after the read waits too",
                &[(GONE, AFTER)], 1, &[Wait]),
            ("a death after the read fills the kill a vanished one might have been",
                &[(GONE, BEFORE), (PROC, AFTER)], 1, &[Forget, Certain]),
        ];
        for (situation, deaths, new, calls) in rows {
            let tally = Tally::of(deaths.iter().copied());
            let got: Vec<Call> = deaths.iter().map(|&(d, before)| call(d, before, tally, *new)).collect();
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
