//! Test workload, like `stress --vm`: a parent forks N workers that each allocate and touch MIB
//! MiB, hold it HOLD seconds (default 0.5) and exit 0. The parent reaps each one the moment it
//! ends, as stress, gunicorn or a shell loop do, so an init never sees a worker's exit status.
//!
//! `workers N MIB [HOLD]`: prints `killed PID` for each worker that died of SIGKILL and
//! `exited PID CODE` for the others (PIDs as seen from its own PID namespace), then exits 0.

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut num = || args.next().and_then(|a| a.parse::<f64>().ok());
    let (Some(n), Some(mib)) = (num(), num()) else {
        eprintln!("usage: workers N MIB [HOLD]");
        std::process::exit(2);
    };
    let hold = num().unwrap_or(0.5);
    for _ in 0..n as usize {
        // SAFETY: single-threaded; the child only allocates, sleeps and exits.
        if let ForkResult::Child = unsafe { fork() }.expect("fork") {
            let mut chunks = Vec::new();
            for _ in 0..mib as usize {
                let mut chunk = vec![0u8; 1 << 20];
                for page in chunk.chunks_mut(4096) {
                    page[0] = 1;
                }
                chunks.push(chunk);
            }
            std::thread::sleep(std::time::Duration::from_secs_f64(hold));
            std::hint::black_box(&chunks);
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { nix::libc::_exit(0) };
        }
    }
    let mut out = String::new();
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Signaled(pid, nix::sys::signal::Signal::SIGKILL, _)) => {
                out.push_str(&format!("killed {pid}\n"))
            }
            Ok(WaitStatus::Exited(pid, code)) => out.push_str(&format!("exited {pid} {code}\n")),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.push_str(&format!("signaled {pid} {sig}\n")),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // One write after all are reaped: printing between reaps would delay the next reap.
    print!("{out}");
}
