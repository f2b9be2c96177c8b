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
    /// The latest read's victims (its last [`PER_EVENT`]), kept once its event is out; and how
    /// many more it named. Each victim is made once and moved, never copied: naming happens
    /// right after a kill, where every allocation is a charge to a full cgroup.
    latest: Vec<Victim>,
    latest_omitted: u64,
}

impl Named {
    pub fn new() -> Named {
        Named {
            first: Vec::with_capacity(KEEP_FIRST),
            last: VecDeque::with_capacity(KEEP_LAST + 1),
            latest: Vec::with_capacity(PER_EVENT),
            ..Named::default()
        }
    }

    /// Touch the lists' room now, while the cgroup has room (victims are named at a limit).
    pub fn prefault(&mut self) {
        self.first.extend((0..KEEP_FIRST).map(|_| Victim::placeholder()));
        self.first.clear();
        self.last.extend((0..KEEP_LAST).map(|_| Victim::placeholder()));
        self.last.clear();
        self.latest.extend((0..PER_EVENT).map(|_| Victim::placeholder()));
        self.latest.clear();
    }

    /// A read of the counter begins naming: the previous read's victims join the kept lists.
    pub fn new_read(&mut self) {
        let mut latest = std::mem::take(&mut self.latest);
        for v in latest.drain(..) {
            self.keep(v);
        }
        self.latest = latest;
        self.latest_omitted = 0;
    }

    pub fn push(&mut self, v: Victim) {
        self.certain = self.certain.saturating_add(u64::from(!v.uncertain));
        self.main |= v.main;
        if self.latest.len() == PER_EVENT {
            let oldest = self.latest.remove(0);
            self.keep(oldest);
            self.latest_omitted = self.latest_omitted.saturating_add(1);
        }
        self.latest.push(v);
    }

    fn keep(&mut self, v: Victim) {
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
    pub fn kept(mut self) -> (Vec<Victim>, u64) {
        self.new_read();
        let mut all = self.first;
        all.extend(self.last);
        (all, self.omitted)
    }

    #[cfg(test)]
    pub fn kept_clone(&self) -> Vec<Victim> {
        self.first.iter().chain(self.last.iter()).chain(self.latest.iter()).cloned().collect()
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
        assert_eq!(latest[0].pid, 2 + 30 - PER_EVENT as i32, "the read's last ones");
        n.new_read();
        assert_eq!(n.latest(), (&[][..], 0));
        let (kept, omitted) = n.kept();
        let pids: Vec<i32> = kept.iter().map(|v| v.pid).collect();
        assert_eq!(pids, [2, 3, 4, 5, 6, 7, 8, 9, 24, 25, 26, 27, 28, 29, 30, 31], "in order");
        assert_eq!(omitted, 30 - 16);
    }
}
