//! Shared by the integration tests: where the binaries are, and running them with a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `OOMINIT_BIN` when set (CI sets it to the static release binary, the one
/// that ships), else cargo's debug build.
pub fn oominit() -> PathBuf {
    std::env::var_os("OOMINIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_oominit")))
}

/// A test workload from `examples/` (cargo builds them for `cargo test`).
pub fn example(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_oominit")).parent().unwrap().join("examples").join(name);
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

/// A child of this test process's own memory cgroup, with a limit, removed on drop.
/// cgroup v1 (this project's machines); cgroup v2 limits are exercised in the VM suite.
pub struct MemCgroup {
    pub dir: PathBuf,
}

impl MemCgroup {
    pub fn new(limit: &str) -> MemCgroup {
        let cg = MemCgroup::memory_only(limit);
        // Without swap on these machines memsw changes nothing, but where there is swap the
        // workload must not escape the limit into it.
        let _ = std::fs::write(cg.dir.join("memory.memsw.limit_in_bytes"), limit);
        cg
    }

    /// A limit on memory alone: then `memory.failcnt` rises at the limit (with a memsw limit as
    /// well, this project's 6.18 kernel raises neither failcnt).
    pub fn memory_only(limit: &str) -> MemCgroup {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let own = oominit::cgroup::Cgroup::discover()
            .unwrap_or_else(|e| panic!("these tests need a memory cgroup to create a child of: {e}"));
        assert_eq!(
            own.version,
            oominit::cgroup::Version::V1,
            "these tests create a child of the test's own memory cgroup, which needs cgroup v1 here; on a \
             cgroup v2 host run them in the VM suite (tests/vm)"
        );
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = own.dir.join(format!("oominit-test-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).unwrap_or_else(|e| {
            panic!("creating the test cgroup {} failed ({e}): these tests need root and a writable memory cgroup", dir.display())
        });
        let cg = MemCgroup { dir };
        std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit).unwrap();
        cg
    }

    /// `sh` moves itself into the cgroup, then becomes `program args`.
    pub fn command(&self, program: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("echo $$ > {}/cgroup.procs && exec \"$@\"", self.dir.display()))
            .arg("sh")
            .arg(program)
            .args(args);
        cmd
    }

    /// oominit with `args`, inside this cgroup.
    pub fn oominit(&self, args: &[&str]) -> Command {
        self.command(&oominit(), args)
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
                for pid in procs.split_whitespace().filter_map(|p| p.parse().ok()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

/// The JSON lines of oominit's output on `stream`: every line that parses as a JSON object with an
/// "event" field. Anything else there (the command's own output) is skipped.
pub fn records(stream: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stream)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// Validate a record against the repository's JSON Schema, failing the test with the reasons.
pub fn assert_valid(record: &serde_json::Value) {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let v = SCHEMA.get_or_init(|| {
        let text = include_str!("../../schema/oominit-record.schema.json");
        jsonschema::validator_for(&serde_json::from_str(text).unwrap()).unwrap()
    });
    let errors: Vec<String> =
        v.iter_errors(record).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "record does not match the schema: {errors:?}\n{record}");
}

/// The exit record: the last line oominit wrote, checked against the schema with every other record.
pub fn exit_record(stream: &[u8]) -> serde_json::Value {
    let recs = records(stream);
    for r in &recs {
        assert_valid(r);
    }
    let last =
        recs.last().unwrap_or_else(|| panic!("no record in: {}", String::from_utf8_lossy(stream))).clone();
    assert_eq!(last["event"], "exit", "the exit record must be the last record: {recs:?}");
    last
}

/// The live `oom` events.
pub fn oom_events(stream: &[u8]) -> Vec<serde_json::Value> {
    records(stream).into_iter().filter(|r| r["event"] == "oom").collect()
}
