//! Test workload: makes N orphaned zombies and checks that the init reaps them all.
//!
//! `orphans N [HOLD]`: a middle process forks N children that exit at once, then exits without
//! reaping them, so the kernel hands N zombies to the init (PID 1 or the nearest subreaper). Then
//! this process waits until no zombie whose parent is the init is left, up to 20 s, prints
//! `orphans=N left=K`, waits HOLD seconds (default 0; the benchmark reads the init's CPU time
//! then) and exits 0 only when K is 0.

use std::time::{Duration, Instant};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, getppid, ForkResult};

fn zombies_of(parent: i32) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let mut f = stat[close + 1..].split_whitespace();
        if f.next() == Some("Z") && f.next().and_then(|p| p.parse().ok()) == Some(parent) {
            n += 1;
        }
    }
    n
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).expect("usage: orphans N");
    let init = getppid().as_raw();
    // SAFETY: single-threaded test program; children only call _exit.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            for _ in 0..n {
                if let ForkResult::Child = unsafe { fork() }.unwrap() {
                    unsafe { nix::libc::_exit(0) };
                }
            }
            unsafe { nix::libc::_exit(0) };
        }
        ForkResult::Parent { child } => {
            waitpid(child, None).unwrap();
        }
    }
    let start = Instant::now();
    let mut left = zombies_of(init);
    while left > 0 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        left = zombies_of(init);
    }
    println!("orphans={n} left={left}");
    let hold: f64 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    std::thread::sleep(Duration::from_secs_f64(hold));
    std::process::exit(if left == 0 { 0 } else { 1 });
}
