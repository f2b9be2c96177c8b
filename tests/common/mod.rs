//! Shared by the integration tests: where the binaries are, and running them with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn oominit() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oominit"))
}

/// A test workload from `examples/` (cargo builds them for `cargo test`).
pub fn example(name: &str) -> PathBuf {
    let p = oominit().parent().unwrap().join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests through `cargo test`, which builds examples",
        p.display()
    );
    p
}

/// Wait for a child, killing it (and failing the test) if it outlives `limit`.
pub fn wait_with_deadline(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stdout: {} stderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Run oominit with these arguments, capture everything, 30 s at most.
pub fn run(args: &[&str]) -> Output {
    run_cmd(Command::new(oominit()).args(args))
}

pub fn run_cmd(cmd: &mut Command) -> Output {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_with_deadline(child, Duration::from_secs(30))
}

/// A command that runs oominit as PID 1 of a new PID namespace with its own /proc, as a container
/// runtime would. Needs root (CAP_SYS_ADMIN) and util-linux's unshare.
pub fn in_pid_namespace() -> Command {
    let probe = Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "these tests need a PID namespace: `unshare --pid --fork --mount-proc` failed ({}): run as root \
             with CAP_SYS_ADMIN",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("these tests need util-linux's `unshare` (apt-get install util-linux): {e}"),
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc"]).arg(oominit());
    cmd
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| panic!("killed by a signal: {:?}", out.status))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a child's stdout line by line, with a deadline per line.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    pub fn new(out: ChildStdout) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    pub fn next(&self) -> String {
        self.rx.recv_timeout(Duration::from_secs(10)).expect("no line from the child within 10 s")
    }

    /// The next line, or None if none comes within `wait`.
    pub fn maybe(&self, wait: Duration) -> Option<String> {
        self.rx.recv_timeout(wait).ok()
    }
}
