//! Benchmark workload: prints `ready`, then for every SIGTERM it receives prints the
//! CLOCK_MONOTONIC time of its arrival in nanoseconds; exits on SIGINT. The benchmark sends
//! SIGTERM to the init in front of it and subtracts its own send time: forwarding latency.

use std::io::Write;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};

fn main() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    loop {
        let mut signo = 0;
        unsafe { libc::sigwait(set.as_ref(), &mut signo) };
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        if signo == libc::SIGINT {
            return;
        }
        writeln!(out, "{}", ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64).unwrap();
        out.flush().unwrap();
    }
}
