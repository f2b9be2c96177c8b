//! The host's memory, as every container sees it in /proc (not namespaced): what tells a kill by
//! a host-wide OOM from one at a limit above the container's own (a pod's, say), which the
//! cgroup's own counters cannot (both raise `oom_kill` and nothing else).
//!
//! - `/proc/vmstat` `allocstall_*`: the page allocator's direct reclaims, host-wide. The kernel
//!   counts them only outside cgroup reclaim (mm/vmscan.c, do_try_to_free_pages), and a
//!   host-wide OOM comes only after direct reclaim failed: none since a reading before the kill
//!   means the host never ran short in between.
//! - `/proc/meminfo` `MemTotal`, `MemAvailable`: how short it was when the kill was seen.
//!
//! Both files are opened and read once at start (the kernel allocates a seq_file's buffer at the
//! first read, charged to the cgroup, and keeps it while the file is open), into a buffer touched
//! then: a reading at a kill charges nothing new.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use serde::Serialize;

/// /proc/vmstat is about 4 KB on 6.18 (180 lines); room for more counters.
const VMSTAT_BYTES: usize = 8192;
/// MemTotal, MemFree and MemAvailable are its first three lines.
const MEMINFO_BYTES: usize = 256;
/// The baseline is moved forward at most this often: reading vmstat costs the kernel a walk of
/// every counter, and v2 wakes hundreds of times a second at the limit.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// The host's memory when a kill was seen: the record's `host`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HostMemory {
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// Direct reclaims host-wide since a reading before the kill (at start, or at a wake that
    /// counted no kill, at most a second apart); cgroup-limit reclaim does not count.
    pub allocstall: Option<u64>,
}

#[derive(Default)]
pub struct Host {
    vmstat: Option<File>,
    meminfo: Option<File>,
    buf: Vec<u8>,
    /// `allocstall` at the last mark, and when.
    baseline: Option<(u64, Instant)>,
}

impl Host {
    /// Open and read both files once, and take the first baseline.
    pub fn open() -> Host {
        let mut h = Host {
            vmstat: crate::open::read_only("/proc/vmstat").ok(),
            meminfo: crate::open::read_only("/proc/meminfo").ok(),
            buf: vec![0; VMSTAT_BYTES],
            baseline: None,
        };
        let _ = h.read_meminfo();
        h.baseline = h.read_allocstall().map(|n| (n, Instant::now()));
        h
    }

    /// A reading that counted no kill: the host's direct reclaims so far came before any kill to
    /// come. At most once a second.
    pub fn mark(&mut self) {
        if self.baseline.is_some_and(|(_, at)| at.elapsed() < MARK_EVERY) {
            return;
        }
        if let Some(n) = self.read_allocstall() {
            self.baseline = Some((n, Instant::now()));
        }
    }

    /// The host's memory now, and its direct reclaims since the baseline.
    pub fn at_kill(&mut self) -> HostMemory {
        let (total_bytes, available_bytes) = self.read_meminfo();
        let now = self.read_allocstall();
        let allocstall = match (now, self.baseline) {
            (Some(now), Some((then, _))) => Some(now.saturating_sub(then)),
            _ => None,
        };
        HostMemory { total_bytes, available_bytes, allocstall }
    }

    fn read_allocstall(&mut self) -> Option<u64> {
        let text = read(self.vmstat.as_ref()?, &mut self.buf)?;
        allocstall(text)
    }

    fn read_meminfo(&mut self) -> (Option<u64>, Option<u64>) {
        let Some(f) = self.meminfo.as_ref() else { return (None, None) };
        let Some(buf) = self.buf.get_mut(..MEMINFO_BYTES) else { return (None, None) };
        read(f, buf).map_or((None, None), meminfo)
    }
}

fn read<'b>(f: &File, buf: &'b mut [u8]) -> Option<&'b str> {
    let n = f.read_at(buf, 0).ok()?;
    let bytes = buf.get(..n)?;
    // A read cut in the middle of a line (a buffer too small) still parses up to it.
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(e) => std::str::from_utf8(bytes.get(..e.valid_up_to())?).ok(),
    }
}

/// The sum of `/proc/vmstat`'s `allocstall_*` lines (one per zone; kernels before 4.8 had a
/// single `allocstall`); None where there is none.
pub fn allocstall(vmstat: &str) -> Option<u64> {
    let mut lines = vmstat.lines().filter(|l| l.starts_with("allocstall")).peekable();
    lines.peek()?;
    let counts = lines.filter_map(|l| {
        let mut words = l.split_ascii_whitespace();
        let (_, value) = (words.next()?, words.next()?);
        value.parse::<u64>().ok()
    });
    Some(counts.fold(0u64, u64::saturating_add))
}

/// `MemTotal` and `MemAvailable` (kernel 3.14+) of `/proc/meminfo`, in bytes.
pub fn meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let kb = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            let mut words = rest.split_ascii_whitespace();
            let n: u64 = words.next()?.parse().ok()?;
            (words.next() == Some("kB")).then(|| n.saturating_mul(1024))
        })
    };
    (kb("MemTotal"), kb("MemAvailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The first lines of /proc/meminfo on this project's host (6.18).
    const MEMINFO: &str = "MemTotal:       24684096 kB\nMemFree:        21613212 kB\nMemAvailable:   24029480 kB\nBuffers:          190944 kB\n";
    // The allocstall lines of /proc/vmstat on the same host, among their neighbours.
    const VMSTAT: &str = "pgsteal_kswapd 1022\npgsteal_direct 3\npgscan_kswapd 1184\nallocstall_dma 0\nallocstall_dma32 2\nallocstall_normal 5\nallocstall_movable 0\nallocstall_device 0\npgskip_dma 0\n";

    #[test]
    fn meminfo_gives_total_and_available_in_bytes() {
        assert_eq!(meminfo(MEMINFO), (Some(24684096 * 1024), Some(24029480 * 1024)));
        // Before 3.14 there is no MemAvailable.
        assert_eq!(meminfo("MemTotal:  1000 kB\nMemFree:  10 kB\n"), (Some(1024000), None));
    }

    #[test]
    fn allocstall_sums_every_zone() {
        assert_eq!(allocstall(VMSTAT), Some(7));
        assert_eq!(allocstall("allocstall 4\npgfault 9\n"), Some(4));
        assert_eq!(allocstall("pgfault 9\n"), None);
    }

    #[test]
    fn hostile_text_is_skipped_never_a_panic() {
        for text in [
            "",
            "\n",
            "MemTotal:",
            "MemTotal: x kB",
            "MemTotal: 18446744073709551615 kB",
            "allocstall_dma",
            "allocstall_dma -1",
            "allocstall_a 18446744073709551615\nallocstall_b 18446744073709551615",
        ] {
            let _ = meminfo(text);
            let _ = allocstall(text);
        }
        assert_eq!(meminfo("MemTotal: 18446744073709551615 kB\n").0, Some(u64::MAX));
        assert_eq!(allocstall("allocstall_a 18446744073709551615\nallocstall_b 1\n"), Some(u64::MAX));
    }

    #[test]
    fn the_host_read_here_has_both() {
        let mut h = Host::open();
        let m = h.at_kill();
        assert!(m.total_bytes.is_some() && m.available_bytes.is_some(), "{m:?}");
        assert!(m.allocstall.is_some(), "{m:?}");
    }
}
