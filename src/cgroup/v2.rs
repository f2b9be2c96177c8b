//! cgroup v2's memory controller: `memory.events` (hierarchical: kills in sub-cgroups count),
//! `memory.max`, `memory.peak` (kernel 5.19+), `memory.current`.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::{keyed, Cgroup, CgroupError, Counters, Memory};

pub const EVENTS: &str = "memory.events";
pub const COUNTERS: &[&str] = &[];
pub const FILES: &[&str] = &["memory.max", "memory.peak", "memory.current", super::STAT];

pub fn counters(cg: &Cgroup) -> Result<Counters, CgroupError> {
    let mut buf = [0u8; 1024];
    let ev = cg.read(EVENTS, &mut buf)?;
    Ok(Counters {
        oom_kill: keyed::get(ev, "oom_kill"),
        oom: keyed::get(ev, "oom"),
        oom_group_kill: keyed::get(ev, "oom_group_kill"),
        max: keyed::get(ev, "max"),
        high: keyed::get(ev, "high"),
        failcnt: None,
        memsw_failcnt: None,
        peak_at_limit: None,
    })
}

/// What [`memory`] reads.
pub const FIGURES: [&str; 3] = ["memory.max", "memory.peak", "memory.current"];

pub fn memory(cg: &Cgroup) -> Memory {
    let num = |name| cg.number(name).flatten();
    let [limit, peak, usage] = FIGURES;
    Memory { limit_bytes: num(limit), peak_bytes: num(peak), usage_bytes: num(usage), ancestor_free: None }
}

/// Whether `memory.peak` came within the margin of `memory.max` (see [`Counters::peak_at_limit`]).
pub fn limit_reached(cg: &Cgroup) -> bool {
    let m = memory(cg);
    match (m.peak_bytes, m.limit_bytes) {
        (Some(peak), Some(limit)) => peak.saturating_add(near(limit)) >= limit,
        _ => false,
    }
}

/// How far below its limit a cgroup counts as at it: 2 MiB, or 1/64 of the limit if more.
fn near(limit: u64) -> u64 {
    (limit / 64).max(2 << 20)
}

/// The kernel raises a file-modified event on `memory.events` whenever one of its counters
/// changes (cgroup_file_notify), `max` and `oom` included, so every wake re-reads and compares.
pub fn notify(cg: &Cgroup) -> Result<Inotify, CgroupError> {
    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| CgroupError::watch("inotify", e))?;
    ino.add_watch(&cg.file(EVENTS), AddWatchFlags::IN_MODIFY)
        .map_err(|e| CgroupError::watch("watching memory.events", e))?;
    Ok(ino)
}
