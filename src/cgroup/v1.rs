//! cgroup v1's memory controller: `memory.oom_control` (`oom_kill` since kernel 4.13),
//! `memory.failcnt`, and the eventfd notifications of `cgroup.event_control`: the OOM
//! notification, and usage thresholds near the limit.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use nix::libc;
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{keyed, Cgroup, CgroupError, Counters, Memory};

pub const OOM_CONTROL: &str = "memory.oom_control";
/// Counters besides `memory.oom_control`: part of the baseline, so open before the command starts.
pub const COUNTERS: &[&str] = &["memory.failcnt", "memory.memsw.failcnt"];
pub const FILES: &[&str] = &[
    "memory.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.usage_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.memsw.max_usage_in_bytes",
    super::STAT,
    KMEM,
    KMEM_TCP,
];
/// Kernel memory and TCP buffers, outside `memory.stat` on v1 (absent where kmem accounting is
/// off).
const KMEM: &str = "memory.kmem.usage_in_bytes";
const KMEM_TCP: &str = "memory.kmem.tcp.usage_in_bytes";

pub fn breakdown(cg: &Cgroup, stat: &str) -> super::Breakdown {
    let num = |name| cg.number(name).flatten();
    super::breakdown::v1(stat, num(KMEM), num(KMEM_TCP))
}

/// The kernel charges in batches of up to 64 pages; a charge that fails near the limit leaves the
/// high-water mark up to that far below it.
const CHARGE_BATCH_BYTES: u64 = 64 * 4096;

pub fn counters(cg: &Cgroup) -> Result<Counters, CgroupError> {
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

/// What [`memory`] reads.
pub const FIGURES: [&str; 3] =
    ["memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.usage_in_bytes"];

pub fn memory(cg: &Cgroup) -> Memory {
    let num = |name| cg.number(name).flatten();
    let [limit, peak, usage] = FIGURES;
    Memory {
        limit_bytes: num(limit).and_then(keyed::v1_limit),
        peak_bytes: num(peak),
        usage_bytes: num(usage),
        ancestor_free: None,
    }
}

/// inotify never fires on v1 files; the kernel's v1 notification is an eventfd registered by
/// writing "<eventfd> <fd of memory.oom_control>" to `cgroup.event_control`. It fires when this
/// cgroup (or an ancestor, with use_hierarchy) hits its limit, not on a host-wide OOM. The
/// `memory.oom_control` named is the counters' own, held open: the kernel takes the cgroup from
/// it as it registers, and keeps the registration until the eventfd is closed.
pub fn notify_oom(cg: &Cgroup) -> Result<OwnedFd, CgroupError> {
    let control = cg.held(OOM_CONTROL).ok_or_else(|| CgroupError::NotOpen(cg.file(OOM_CONTROL)))?;
    let failed = |e: std::io::Error| CgroupError::Watch {
        what: "registering with cgroup.event_control",
        errno: e.raw_os_error(),
    };
    // First: behind a read-only cgroupfs (Docker's) this open fails, and no eventfd is made.
    let mut register = crate::open::write_only(cg.file("cgroup.event_control")).map_err(failed)?;
    let efd = eventfd()?;
    register.write_all(format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()).as_bytes()).map_err(failed)?;
    Ok(efd)
}

/// v1 notifies when an OOM *begins* (memcg1_oom_prepare), before the victim is chosen and
/// `oom_kill` counted, so a re-read on that wake may see nothing yet. Then re-read after 10 ms,
/// doubling, up to this many times (~1.3 s in all), and stop at the first rise.
const RECHECKS: u32 = 7;
const FIRST_RECHECK: Duration = Duration::from_millis(10);

/// When to re-read after `done` re-reads that found no new kill since the notification.
pub fn recheck_delay(done: u32) -> Option<Duration> {
    (done < RECHECKS).then(|| FIRST_RECHECK * (1 << done))
}

/// How long after start the thresholds are registered: long enough for a short command
/// (`/bin/true`: under 2 ms) to end first, short enough for the early listing and readings (a
/// workload that fills 96 MiB in 30 ms was named exactly 98-100 times in 100 with 5 ms, 40 with
/// 20; one that fills 32 MiB in 6 ms was read only after its kill 1 run in 5 with 5 ms).
pub const REGISTER_AFTER: Duration = Duration::from_millis(2);

/// Usage crossing half and three quarters of the limit, either way: the moments to see who is
/// in the cgroup and how big, well before a kill (the OOM notification comes as the kill is
/// made), of `limit`. Returns one eventfd for both and the lower threshold. The same
/// registration as the OOM notification, with a threshold in bytes after the file.
///
/// Half, not only three quarters: a listing made near the limit is itself a charge that waits in
/// the cgroup's reclaim while the workload fills the last quarter, and the first victim can die
/// unseen meanwhile. Three quarters stays for processes started after the first crossing.
///
/// Made by a helper thread that exits when done: the kernel waits for an RCU grace period at
/// each registration (synchronize_rcu in __mem_cgroup_usage_register_event, tens of
/// milliseconds), and the event loop must not be blocked that long while the command may already
/// be filling the cgroup. The threshold is in force before that wait (rcu_assign_pointer comes
/// first), and the eventfd simply starts firing.
///
/// Not at once: a process cannot exit while one of its threads is in a system call, and PID 1's
/// exit waits for every process of its namespace, so a short command's exit waited for the grace
/// periods (`oominit -- /bin/true` under a v1 limit: 28 ms, 7.7 times tini's start-and-exit).
/// So the registration is only prepared here, and made on a helper thread by
/// [`Registration::start`], which the watch calls [`REGISTER_AFTER`] after start: a command
/// that is gone by then costs no thread at all. One that has passed a threshold by then is
/// announced when the helper runs.
pub fn thresholds(cg: &Cgroup, limit: u64) -> Option<(OwnedFd, u64, Registration)> {
    let thresholds = [limit / 2, limit / 4 * 3];
    let efd = eventfd().ok()?;
    let registration = prepare(cg, &efd, limit, &thresholds)?;
    Some((efd, thresholds[0], registration))
}

/// One more threshold on the eventfd of [`thresholds`], prepared the same way.
pub fn threshold_also(cg: &Cgroup, efd: &OwnedFd, at: u64) -> Option<Registration> {
    prepare(cg, efd, memory(cg).limit_bytes?, &[at])
}

/// Registrations prepared (files open, lines written), not made yet.
pub struct Registration(Job);

impl Registration {
    /// Make them, in order, on one detached helper thread; false if none could be made.
    pub fn start(all: Vec<Registration>) -> bool {
        spawn_detached(Box::new(move || all.into_iter().for_each(|r| (r.0)())))
    }
}

/// The registration of `thresholds` (ascending) on `efd`; None if it cannot be prepared.
fn prepare(cg: &Cgroup, efd: &OwnedFd, limit: u64, thresholds: &[u64]) -> Option<Registration> {
    // The helper's own descriptor of the eventfd: it may outlive the event loop's.
    let poke = crate::open::duplicate(efd.as_fd()).ok()?;
    let usage = crate::open::read_only(cg.file("memory.usage_in_bytes")).ok()?;
    let mut control = crate::open::write_only(cg.file("cgroup.event_control")).ok()?;
    let lines: Vec<(u64, String)> =
        thresholds.iter().map(|t| (*t, format!("{} {} {t}", efd.as_raw_fd(), usage.as_raw_fd()))).collect();
    Some(Registration(Box::new(move || {
        // One registration per write, the lower first. The kernel notes where usage stands as
        // it registers and notifies crossings from there on: a command already past a threshold
        // when the helper runs would never be announced. Then it is announced here.
        for (threshold, line) in lines {
            let mut buf = [0u8; 32];
            let read = usage.read_at(&mut buf, 0).ok();
            let now = read.and_then(|n| keyed::single(std::str::from_utf8(&buf[..n]).ok()?)).flatten();
            if now >= Some(threshold) {
                let _ = nix::unistd::write(&poke, &1u64.to_ne_bytes());
            }
            // A registration allocates kernel memory charged to the cgroup (the event, a new
            // threshold array): at the limit that charge starts an OOM kill of its own, which can
            // pass over the victim of the one under way and take the main process or oominit.
            // So not within an eighth of the limit: this threshold is then passed already, and
            // announced above.
            if now.map_or(true, |u| u.saturating_add(limit / 8) > limit) {
                break;
            }
            let _ = control.write_all(line.as_bytes());
        }
    })))
}

type Job = Box<dyn FnOnce() + Send>;

/// Run `job` on a detached thread of its own; false if none could be made. Raw pthreads: std's
/// thread builder costs 20 KB of the binary's budget for names, joins and panic plumbing that a
/// one-syscall job does not need. The thread inherits the blocked signal mask (every signal),
/// so signals still all go to the signalfd.
///
/// Its stack is taken from oominit's heap and never given back: a stack musl mapped itself is
/// unmapped as the thread exits, and where the kernel had merged that mapping with its
/// neighbour, the unmap splits it, which is a charge (`heap`). Once per run: one helper.
fn spawn_detached(job: Job) -> bool {
    const STACK: usize = 64 * 1024;
    extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the Box<Job> leaked below, taken back exactly once, here.
        let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
        job();
        std::ptr::null_mut()
    }
    let mut stack = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(STACK));
    let arg = Box::into_raw(Box::new(job));
    // SAFETY: attr is initialised before use and destroyed after; the stack, STACK bytes of the
    // heap, lives as long as the thread (forever, never freed once it runs); on failure the Box
    // and the stack are taken back.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut tid: libc::pthread_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setstack(&mut attr, stack.as_mut_ptr().cast(), STACK);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let rc = libc::pthread_create(&mut tid, &attr, run, arg.cast());
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg));
            std::mem::ManuallyDrop::drop(&mut stack);
        }
        rc == 0
    }
}

fn eventfd() -> Result<OwnedFd, CgroupError> {
    Ok(EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| CgroupError::watch("eventfd", e))?
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rechecks_after_an_oom_notification_double_then_stop() {
        let delays: Vec<u64> = (0..).map_while(recheck_delay).map(|d| d.as_millis() as u64).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640]);
        assert_eq!(delays.iter().sum::<u64>(), 1270, "about 1.3 s after the notification, no more");
    }
}
