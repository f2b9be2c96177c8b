//! Everyone named as a victim, within a fixed budget: however many kills a run sees (stress-ng
//! under a tight limit kills dozens a second, for hours), oominit's memory and its records stay
//! the same size. The exit record keeps the first [`KEEP_FIRST`] and the last [`KEEP_LAST`]
//! named, with a count of the rest; a live event, those its own read named, [`PER_EVENT`] at
//! most. The counts that decide the verdict (named for certain, main among them) cover everyone.

use std::collections::VecDeque;

use crate::record::Victim;

pub const KEEP_FIRST: usize = 8;
pub const KEEP_LAST: usize = 8;
pub const PER_EVENT: usize = 8;

#[derive(Debug, Default)]
pub struct Named {
    first: Vec<Victim>,
    last: VecDeque<Victim>,
    /// Named, and in neither list.
    omitted: u64,
    certain: u64,
    main: bool,
    /// Named at the latest read, for its live event, and how many more it named.
    latest: Vec<Victim>,
    latest_omitted: u64,
}

impl Named {
    pub fn new() -> Named {
        Named {
            first: Vec::with_capacity(KEEP_FIRST),
            last: VecDeque::with_capacity(KEEP_LAST),
            latest: Vec::with_capacity(PER_EVENT),
            ..Named::default()
        }
    }

    /// A read of the counter begins naming: the latest event's list starts empty.
    pub fn new_read(&mut self) {
        self.latest.clear();
        self.latest_omitted = 0;
    }

    pub fn push(&mut self, v: Victim) {
        self.certain = self.certain.saturating_add(u64::from(!v.uncertain));
        self.main |= v.main;
        if self.latest.len() < PER_EVENT {
            self.latest.push(v.clone());
        } else {
            self.latest_omitted = self.latest_omitted.saturating_add(1);
        }
        if self.first.len() < KEEP_FIRST {
            self.first.push(v);
            return;
        }
        if self.last.len() == KEEP_LAST {
            self.last.pop_front();
            self.omitted = self.omitted.saturating_add(1);
        }
        self.last.push_back(v);
    }

    /// Named for certain, everyone counted.
    pub fn certain(&self) -> u64 {
        self.certain
    }

    /// The main process is among those named.
    pub fn main(&self) -> bool {
        self.main
    }

    /// The latest read's victims, and how many more it named.
    pub fn latest(&self) -> (&[Victim], u64) {
        (&self.latest, self.latest_omitted)
    }

    /// The kept victims in the order they were named, and how many were left out between them.
    pub fn kept(self) -> (Vec<Victim>, u64) {
        let mut all = self.first;
        all.extend(self.last);
        (all, self.omitted)
    }

    #[cfg(test)]
    pub fn kept_clone(&self) -> Vec<Victim> {
        self.first.iter().chain(self.last.iter()).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::victims::attribution::Source;

    fn victim(pid: i32, uncertain: bool) -> Victim {
        Victim {
            pid,
            comm: Some("w".into()),
            argv: vec![],
            rss_bytes: None,
            main: pid == 1,
            source: Source::Proc,
            uncertain,
        }
    }

    #[test]
    fn a_thousand_kills_keep_the_first_and_the_last_and_count_the_rest() {
        let mut n = Named::new();
        for pid in 1..=1000 {
            n.new_read();
            n.push(victim(pid, pid % 10 == 0));
            assert_eq!(n.latest().0.len(), 1, "a live event carries its own kill only");
        }
        assert_eq!((n.certain(), n.main()), (900, true), "counts cover everyone");
        let (kept, omitted) = n.kept();
        let pids: Vec<i32> = kept.iter().map(|v| v.pid).collect();
        assert_eq!(pids, [1, 2, 3, 4, 5, 6, 7, 8, 993, 994, 995, 996, 997, 998, 999, 1000]);
        assert_eq!(omitted, 1000 - 16);
    }

    #[test]
    fn a_read_naming_many_carries_at_most_per_event() {
        let mut n = Named::new();
        n.new_read();
        for pid in 2..32 {
            n.push(victim(pid, false));
        }
        let (latest, more) = n.latest();
        assert_eq!((latest.len(), more), (PER_EVENT, 30 - PER_EVENT as u64));
        n.new_read();
        assert_eq!(n.latest(), (&[][..], 0));
    }
}
