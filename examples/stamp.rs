//! Test helper: copies stdin to stdout, each line prefixed with the CLOCK_MONOTONIC time of its
//! arrival in microseconds. The VM suite uses it to measure the time from the kernel's OOM kill
//! (its /dev/kmsg timestamp) to oominit's live event.
//!
//! `stamp --sync` instead writes `oominit-clock <CLOCK_MONOTONIC µs>` into /dev/kmsg: the kernel
//! stamps its log with local_clock(), which under TCG drifts from CLOCK_MONOTONIC by milliseconds,
//! and this line gives the offset between the two just before a measurement.

use std::io::{BufRead, Write};

fn monotonic_us() -> u64 {
    let mut ts = nix::libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--sync") {
        let mut kmsg = std::fs::OpenOptions::new().write(true).open("/dev/kmsg").expect("/dev/kmsg");
        kmsg.write_all(format!("oominit-clock {}\n", monotonic_us()).as_bytes()).expect("writing /dev/kmsg");
        return;
    }
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines().map_while(Result::ok) {
        let _ = writeln!(out, "{} {line}", monotonic_us());
        let _ = out.flush();
    }
}
