//! Test workload: reports how it started, then prints every signal it receives.
//!
//! `sigprobe [--spawn-child]`: prints `ready pid=P pgid=G blk=HEX` (its signal mask as the kernel
//! shows it at start; not its ignored set, which Rust's runtime changes before `main`), then `P got SIGNAME` for each signal; exits 0 after
//! SIGTERM. With `--spawn-child` it first forks a copy of itself in the same process group,
//! which prints the same way, so a test can see whether a signal reached the group.

use std::io::Write;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, getpgrp, getpid, ForkResult};

fn status_field(name: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap()
}

fn main() {
    let blk = status_field("SigBlk:");
    let mut set = SigSet::all();
    for s in [Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE] {
        set.remove(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&set), None).unwrap();
    if std::env::args().any(|a| a == "--spawn-child") {
        // SAFETY: single-threaded test program.
        if let ForkResult::Child = unsafe { fork() }.unwrap() {
            println!("child ready pid={}", getpid());
            std::io::stdout().flush().unwrap();
            wait_loop(&set);
        }
    }
    println!("ready pid={} pgid={} blk={blk}", getpid(), getpgrp());
    std::io::stdout().flush().unwrap();
    wait_loop(&set);
}

fn wait_loop(set: &SigSet) -> ! {
    loop {
        // Raw sigwait: nix's `SigSet::wait` cannot return a real-time signal.
        let mut signo = 0;
        assert_eq!(unsafe { nix::libc::sigwait(set.as_ref(), &mut signo) }, 0);
        let name = match Signal::try_from(signo) {
            Ok(sig) => sig.as_str().to_string(),
            Err(_) => format!("SIGRTMIN+{}", signo - nix::libc::SIGRTMIN()),
        };
        println!("{} got {name}", getpid());
        std::io::stdout().flush().unwrap();
        if signo == nix::libc::SIGTERM {
            std::process::exit(0);
        }
    }
}
