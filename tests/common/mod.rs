//! Shared by the integration tests: where the binaries are, and running them with a deadline.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use oominit::cgroup::{Cgroup, Version};

/// The binary under test: `OOMINIT_BIN` when set (CI sets it to the static release binary, the one
/// that ships), else cargo's debug build.
pub fn oominit() -> PathBuf {
    std::env::var_os("OOMINIT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_oominit")))
}

/// A test workload from `examples/`: from `OOMINIT_EXAMPLES` when set (the VM suite runs these
/// tests where cargo's target directory does not exist), else beside cargo's build of oominit
/// (cargo builds them for `cargo test`).
pub fn example(name: &str) -> PathBuf {
    let dir = std::env::var_os("OOMINIT_EXAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_oominit")).parent().unwrap().join("examples"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests through `cargo test`, which builds examples, or set OOMINIT_EXAMPLES",
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

/// The memory cgroup version oominit will find for a process started by the tests (the test
/// process's own), failing the test with one line when there is none.
pub fn memory_version() -> Version {
    match Cgroup::discover() {
        Ok(own) => own.version,
        Err(e) => panic!("{}", missing(&format!("no memory cgroup for this process ({e})"))),
    }
}

/// The one line a test fails with where no memory cgroup can be made.
fn missing(what: &str) -> String {
    format!(
        "these tests need root and a memory controller (cgroup v1's memory hierarchy, or cgroup v2 with \
         memory enabled for the test's cgroup): {}",
        what.replace('\n', " ")
    )
}

/// Where the test cgroups are made: a cgroup whose children get the memory controller. Found (and
/// on cgroup v2 perhaps set up) once per test binary; a failure is kept and every test fails with it.
struct Base {
    version: Version,
    dir: PathBuf,
}

fn base() -> &'static Base {
    static BASE: std::sync::OnceLock<Result<Base, String>> = std::sync::OnceLock::new();
    match BASE.get_or_init(find_base) {
        Ok(base) => base,
        Err(why) => panic!("{}", missing(why)),
    }
}

fn find_base() -> Result<Base, String> {
    let own = Cgroup::discover().map_err(|e| format!("no memory cgroup for this process ({e})"))?;
    let dir = match own.version {
        // v1 has no rule against a cgroup holding both processes and children: the test's own
        // memory cgroup is the parent.
        Version::V1 => own.dir,
        Version::V2 => v2_base(&own.dir)?,
    };
    Ok(Base { version: own.version, dir })
}

/// cgroup v2: a cgroup whose children get `memory.max`. Two kernel rules shape it
/// (Documentation/admin-guide/cgroup-v2.rst):
/// - a child has the memory files only when its parent lists `memory` in `cgroup.subtree_control`;
/// - no internal processes: a non-root cgroup holding processes cannot enable a controller for its
///   children (EBUSY), and no process can be moved into one that has.
///
/// So the test's own cgroup, which holds this process, never offers memory to children as it is
/// (discover() rules out the root cgroup, the one exception: it has no `memory.events`).
fn v2_base(own: &Path) -> Result<PathBuf, String> {
    let me = std::process::id();
    let ours = |pids: &[u32]| pids.iter().all(|&p| p == me || descends_from(p, me));
    let mut enabling = None;
    // 1. The own cgroup holds only this process and its children (a cgroup made for the tests, as
    //    in the VM suite): move this process into a leaf of its own, so that the own cgroup holds
    //    no process, then enable memory for its children. The leaf stays when the tests end (a
    //    process cannot remove the cgroup it is in), empty, in a cgroup made for the tests anyway.
    if ours(&procs(own)?) {
        let leaf = own.join(format!("oominit-tests-{me}"));
        fs::create_dir(&leaf).map_err(|e| format!("creating {}: {e}", leaf.display()))?;
        // Writing a pid to cgroup.procs moves every thread of the process.
        write(&leaf.join("cgroup.procs"), &me.to_string())?;
        // Children forked before the move (other tests run in parallel) stay in the own cgroup
        // until they exit: EBUSY until then.
        let deadline = Instant::now() + Duration::from_secs(10);
        let control = own.join("cgroup.subtree_control");
        loop {
            match fs::write(&control, "+memory") {
                Ok(()) => return Ok(own.to_path_buf()),
                Err(e)
                    if e.raw_os_error() == Some(nix::libc::EBUSY)
                        && Instant::now() < deadline
                        && procs(own).is_ok_and(|p| ours(&p)) =>
                {
                    std::thread::sleep(Duration::from_millis(20))
                }
                // Someone else's process came in: the parent, below, may still do.
                Err(e) => {
                    enabling = Some(format!("; enabling memory in {}: {e}", control.display()));
                    break;
                }
            }
        }
    }
    // 2. The own cgroup holds other processes too (a login session's scope, with the shell and
    //    cargo), which are not the tests' to move. Its parent already offers memory to its
    //    children (the own cgroup has memory files): the test cgroups go there, beside it.
    let parent = own.parent().filter(|p| offers_memory(p));
    parent.map(Path::to_path_buf).ok_or_else(|| {
        let others: Vec<u32> = procs(own).unwrap_or_default().into_iter().filter(|&p| !ours(&[p])).collect();
        format!(
            "cgroup v2: {} holds processes other than the tests' ({others:?}), so it cannot offer memory to \
             children (no internal processes), and its parent is not a cgroup that offers memory{}",
            own.display(),
            enabling.unwrap_or_default()
        )
    })
}

fn procs(dir: &Path) -> Result<Vec<u32>, String> {
    let path = dir.join("cgroup.procs");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(text.split_whitespace().filter_map(|p| p.parse().ok()).collect())
}

fn offers_memory(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.subtree_control"))
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
}

/// Is `pid` a child, grandchild... of `ancestor`? (No: gone, or reparented away.)
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    while pid > 1 {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // pid (comm) state ppid ...: comm may hold spaces and parentheses, the last ')' ends it.
        let ppid = stat[stat.rfind(')').unwrap_or(0) + 1..].split_whitespace().nth(1);
        match ppid.and_then(|p| p.parse().ok()) {
            Some(p) if p == ancestor => return true,
            Some(p) => pid = p,
            None => return false,
        }
    }
    false
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    fs::write(path, value).map_err(|e| format!("writing {value} to {}: {e}", path.display()))
}

/// A memory cgroup with a limit, removed on drop: a child of the test process's own memory cgroup
/// (cgroup v1; on cgroup v2 see [`v2_base`]).
pub struct MemCgroup {
    pub dir: PathBuf,
    pub version: Version,
}

impl MemCgroup {
    /// A limit on memory and swap: where there is swap, the workload must not escape the limit
    /// into it (without swap, as on these machines, the swap limit changes nothing).
    pub fn new(limit: &str) -> MemCgroup {
        let cg = MemCgroup::memory_only(limit);
        match cg.version {
            // The memory+swap limit, where the kernel accounts swap.
            Version::V1 => {
                let _ = fs::write(cg.dir.join("memory.memsw.limit_in_bytes"), limit);
            }
            // v2 limits swap on its own: none at all. The file is there where swap is accounted.
            Version::V2 => {
                let swap = cg.dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0").unwrap_or_else(|e| panic!("{}", missing(&e)));
                }
            }
        }
        cg
    }

    /// A limit on memory alone, none on swap: on v1 `memory.failcnt` then rises at the limit
    /// (with a memsw limit as well, this project's 6.18 kernel raises neither failcnt); on v2
    /// `memory.max` alone.
    pub fn memory_only(limit: &str) -> MemCgroup {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let base = base();
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = base.dir.join(format!("oominit-test-{}-{n}", std::process::id()));
        fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("{}", missing(&format!("creating {}: {e}", dir.display()))));
        let cg = MemCgroup { dir, version: base.version };
        let max = match cg.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        write(&cg.dir.join(max), limit).unwrap_or_else(|e| panic!("{}", missing(&e)));
        cg
    }

    /// A cgroup inside this one with no limit of its own: this one's is then an ancestor's (a
    /// pod's, say). Drop it before this one.
    pub fn child(&self) -> MemCgroup {
        if self.version == Version::V2 {
            write(&self.dir.join("cgroup.subtree_control"), "+memory")
                .unwrap_or_else(|e| panic!("{}", missing(&e)));
        }
        let dir = self.dir.join("child");
        fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("{}", missing(&format!("creating {}: {e}", dir.display()))));
        MemCgroup { dir, version: self.version }
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
