//! cgroup v1's memory controller: `memory.oom_control` (`oom_kill` since kernel 4.13),
//! `memory.failcnt`, and the eventfd notification of `cgroup.event_control`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{keyed, Cgroup, Counters, Memory, Watch};

pub const OOM_CONTROL: &str = "memory.oom_control";
/// Counters besides `memory.oom_control`: part of the baseline, so open before the command starts.
pub const COUNTERS: &[&str] = &["memory.failcnt", "memory.memsw.failcnt"];
pub const FILES: &[&str] = &[
    "memory.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.usage_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.memsw.max_usage_in_bytes",
];

/// The kernel charges in batches of up to 64 pages; a charge that fails near the limit leaves the
/// high-water mark up to that far below it.
const CHARGE_BATCH_BYTES: u64 = 64 * 4096;

pub fn counters(cg: &Cgroup) -> std::io::Result<Counters> {
    let mut buf = [0u8; 1024];
    let oom = cg.read(OOM_CONTROL, &mut buf)?;
    Ok(Counters {
        oom_kill: keyed::get(oom, "oom_kill"),
        failcnt: cg.number("memory.failcnt").flatten(),
        // Absent where the kernel has no swap accounting.
        memsw_failcnt: cg.number("memory.memsw.failcnt").flatten(),
        ..Counters::default()
    })
}

/// Whether the high-water mark of memory or memory+swap reached its limit. Four reads: done only
/// once a kill is seen, where it decides the scope, not at every wake.
pub fn limit_reached(cg: &Cgroup) -> bool {
    peak_at_limit(cg, "memory.max_usage_in_bytes", "memory.limit_in_bytes")
        || peak_at_limit(cg, "memory.memsw.max_usage_in_bytes", "memory.memsw.limit_in_bytes")
}

fn peak_at_limit(cg: &Cgroup, peak: &str, limit: &str) -> bool {
    let num = |name| cg.number(name).flatten();
    match (num(peak), num(limit).and_then(keyed::v1_limit)) {
        (Some(peak), Some(limit)) => peak.saturating_add(CHARGE_BATCH_BYTES) >= limit,
        _ => false,
    }
}

pub fn memory(cg: &Cgroup) -> Memory {
    let num = |name| cg.number(name).flatten();
    Memory {
        limit_bytes: num("memory.limit_in_bytes").and_then(keyed::v1_limit),
        peak_bytes: num("memory.max_usage_in_bytes"),
        usage_bytes: num("memory.usage_in_bytes"),
    }
}

/// inotify never fires on v1 files; the kernel's v1 notification is an eventfd registered by
/// writing "<eventfd> <fd of memory.oom_control>" to `cgroup.event_control`. It fires when this
/// cgroup (or an ancestor, with use_hierarchy) hits its limit, not on a host-wide OOM.
pub fn watch(cg: &Cgroup) -> Result<Watch, String> {
    let efd: OwnedFd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| format!("eventfd: {e}"))?
        .into();
    let oom_control = fs::File::open(cg.file(OOM_CONTROL)).map_err(|e| format!("{OOM_CONTROL}: {e}"))?;
    let line = format!("{} {}", efd.as_raw_fd(), oom_control.as_raw_fd());
    OpenOptions::new()
        .write(true)
        .open(cg.file("cgroup.event_control"))
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| format!("registering with cgroup.event_control: {e}"))?;
    Ok(Watch::EventFd(efd, oom_control))
}
