//! `/proc/PID/stat`: `procfs::stat` (victims: name, size, fate) and `procfs::stat_ppid`
//! (descendants for --grace), and the caller's bytes from pages; `/proc/PID/status`:
//! `procfs::shared_sigkill` (ShdPnd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oominit::procfs;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = procfs::stat_ppid(&text);
    let _ = procfs::shared_sigkill(&text);
    // The tracker reads at most 1024 bytes and drops a read that is not UTF-8.
    for t in [&text[..], std::str::from_utf8(&data[..data.len().min(1024)]).unwrap_or("")] {
        if let Some(s) = procfs::stat(t) {
            assert!(t.contains(s.comm));
            assert!(!s.dead || s.exiting, "dead but not exiting: {s:?}");
            // victims/tracker.rs, with 4 KiB and 64 KiB pages.
            let _ = (s.rss_pages.saturating_mul(4096), s.rss_pages.saturating_mul(65536));
        }
    }
});
