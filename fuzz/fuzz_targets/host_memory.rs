//! The host's memory files (`host`): `/proc/meminfo`'s MemTotal and MemAvailable, `/proc/vmstat`'s
//! allocstall lines, then the scope they decide with a kill counted from outside.
//!
//! Input: meminfo, a NUL, vmstat at the baseline, a NUL, vmstat at the kill (missing parts: the
//! text before them again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oominit::cgroup::Counters;
use oominit::host::{allocstall, meminfo, HostMemory};
use oominit::record::{scope, AtKill, Scope};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let info = parts.next().unwrap_or("");
    let base = parts.next().unwrap_or(info);
    let now = parts.next().unwrap_or(base);
    let (total_bytes, available_bytes) = meminfo(info);
    let stalls = allocstall(now).zip(allocstall(base)).map(|(n, b)| n.saturating_sub(b));
    let host = HostMemory { total_bytes, available_bytes, allocstall: stalls };
    let freed_bytes = total_bytes.unwrap_or(0) / 3;
    let at_kill = AtKill { host: Some(host), freed_bytes, ..AtKill::default() };
    let outside = Counters { oom_kill: Some(1), oom: Some(0), ..Counters::default() };
    let got = scope(&outside, &at_kill);
    assert!(got.is_some() && got != Some(Scope::Limit), "{got:?} for a kill from outside");
    if stalls == Some(0) {
        assert_eq!(got, Some(Scope::Ancestor), "no direct reclaim: {host:?}");
    }
});
