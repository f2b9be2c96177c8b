//! `--on-leaf-oom exit`: whether a kill just counted was of a process other than the main one,
//! so that oominit stops the main process. A pure decision, from what the watch knows right after
//! the kill count rose.
//!
//! The kernel raises `oom_kill` before it sends the SIGKILL (mm/oom_kill.c,
//! __oom_kill_process), so right after the rise the main process may be the victim and still
//! look alive. Where every kill is named for certain and none is main's, main was not killed.
//! Where a kill is left unnamed, main is looked at again a little later ([`CONFIRM_AFTER`]):
//! a main that the kernel is killing shows its SIGKILL pending by then. A main that is named,
//! dying or ending on its own, or that oominit cannot see (not followed), is never stopped.

use std::time::Duration;

/// How long after a rise left partly unnamed main must still look alive to be taken as not the
/// victim. The kernel sends the SIGKILL microseconds after it counts the kill.
pub const CONFIRM_AFTER: Duration = Duration::from_millis(20);

/// The main process as last looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainSeen {
    /// Running, no fatal signal pending, not exiting.
    Alive,
    /// A fatal signal pending, exiting, or dead: the kernel's kill, or an end of its own.
    Ending,
    /// Not followed (no descriptor for it): nothing says it was not the victim.
    Unknown,
}

/// What the decision is made from, right after a read of the counters that found new kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterKill {
    /// Kills since start.
    pub kills: u64,
    /// Victims named for certain since start.
    pub certain: u64,
    /// The main process is among the victims named, certain or not.
    pub main_named: bool,
    pub main: MainSeen,
    /// `main` was looked at [`CONFIRM_AFTER`] after the rise.
    pub confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A leaf was killed and main was not: stop main now.
    Stop,
    /// Look at main again after [`CONFIRM_AFTER`], then decide with `confirmed`.
    Confirm,
    /// Leave main alone.
    Leave,
}

pub fn leaf_killed(f: &AfterKill) -> Call {
    if f.kills == 0 || f.main_named {
        return Call::Leave;
    }
    match f.main {
        MainSeen::Ending | MainSeen::Unknown => Call::Leave,
        // Every kill is someone else's, named for certain.
        MainSeen::Alive if f.certain >= f.kills => Call::Stop,
        MainSeen::Alive if f.confirmed => Call::Stop,
        MainSeen::Alive => Call::Confirm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaf_killed_table() {
        use Call::*;
        use MainSeen::*;
        // (situation, kills, certain, main named, main seen, confirmed, call)
        #[rustfmt::skip]
        let rows = [
            ("no kill", 0, 0, false, Alive, false, Leave),
            ("a worker named for certain, main alive", 1, 1, false, Alive, false, Stop),
            ("two workers, both named for certain", 2, 2, false, Alive, false, Stop),
            ("main named as the victim", 1, 1, true, Ending, false, Leave),
            ("main named uncertain (a group kill), still looking alive", 2, 1, true, Alive, true, Leave),
            ("main's SIGKILL pending, its kill waiting for the next read", 1, 0, false, Ending, false, Leave),
            ("a worker named, main dying of a second kill", 2, 1, false, Ending, false, Leave),
            ("main exiting on its own as the worker is killed", 1, 1, false, Ending, false, Leave),
            ("a kill unnamed (Docker's reap watch), main alive: look again", 1, 0, false, Alive, false, Confirm),
            ("one of two kills unnamed, main alive: look again", 2, 1, false, Alive, false, Confirm),
            ("a kill unnamed, main still alive after a while", 1, 0, false, Alive, true, Stop),
            ("a kill unnamed, main dying when looked at again", 1, 0, false, Ending, true, Leave),
            ("main not followed: it may be the victim", 1, 1, false, Unknown, true, Leave),
        ];
        for (situation, kills, certain, main_named, main, confirmed, want) in rows {
            let f = AfterKill { kills, certain, main_named, main, confirmed };
            assert_eq!(leaf_killed(&f), want, "{situation}");
        }
    }
}
