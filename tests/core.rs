//! The init itself, against the real binary and the real kernel: exit codes, signals, reaping,
//! a clean child, no idle wakeups, `--grace`, and usage errors.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[test]
fn exit_codes_pass_through() {
    for (script, want) in [("exit 0", 0), ("exit 3", 3), ("kill -KILL $$", 137), ("kill -TERM $$", 143)] {
        let out = run(&["--", "sh", "-c", script]);
        assert_eq!(code(&out), want, "{script}: {}", stderr(&out));
    }
}

#[test]
fn remapped_exit_code_becomes_zero() {
    assert_eq!(code(&run(&["-e", "3", "--", "sh", "-c", "exit 3"])), 0);
    assert_eq!(code(&run(&["-e", "3", "-e", "4", "--", "sh", "-c", "exit 4"])), 0);
    assert_eq!(code(&run(&["-e", "3", "--", "sh", "-c", "exit 5"])), 5);
    assert_eq!(code(&run(&["-e", "143", "--", "sh", "-c", "kill -TERM $$"])), 0);
}

#[test]
fn missing_command_is_127_and_not_executable_is_126() {
    let out = run(&["--", "/definitely/not/here"]);
    assert_eq!(code(&out), 127);
    assert!(stderr(&out).contains("/definitely/not/here"), "{}", stderr(&out));
    let out = run(&["--", "no-such-command-on-path-xyz"]);
    assert_eq!(code(&out), 127);

    let dir = std::env::temp_dir().join(format!("oominit-noexec-{}", std::process::id()));
    std::fs::write(&dir, "#!/bin/sh\nexit 0\n").unwrap();
    let out = run(&["--", dir.to_str().unwrap()]);
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(code(&out), 126, "{}", stderr(&out));
    assert_eq!(code(&run(&["--", "/"])), 126);
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in
        [&["--bogus", "--", "true"][..], &["-e", "nope", "true"][..], &[][..], &["--"][..], &["--", ""][..]]
    {
        let out = run(args);
        assert_eq!(code(&out), 2, "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("--help"), "{err}");
    }
}

#[test]
fn arguments_reach_the_command_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    let odd = std::ffi::OsStr::from_bytes(b"\xff\x01 two words");
    let out = run_cmd(Command::new(oominit()).args([
        "--".as_ref(),
        "printf".as_ref(),
        "%s|".as_ref(),
        odd,
        "".as_ref(),
    ]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(out.stdout, b"\xff\x01 two words||");
}

#[test]
fn closed_standard_descriptors_are_reopened_on_dev_null() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(oominit());
    // The command's fd 2 is oominit's: /dev/null, not a file oominit opened (or none).
    cmd.args(["--", "readlink", "/proc/self/fd/2"]).stderr(Stdio::null());
    // SAFETY: close is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::libc::close(2);
            Ok(())
        })
    };
    let out = run_cmd(&mut cmd);
    assert_eq!(code(&out), 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/dev/null");
}

type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a std::ffi::OsStr)>);

#[test]
fn hostile_record_targets_and_environment_are_usage_errors_never_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let bad_utf8 = std::ffi::OsStr::from_bytes(b"\xff");
    let cases: Vec<Case> = vec![
        (vec!["--record", "fd:-1", "--", "true"], vec![]),
        (vec!["--", "true"], vec![("OOMINIT_RECORD", "fd:-1".as_ref())]),
        (vec!["--", "true"], vec![("OOMINIT_STRICT", bad_utf8)]),
        (vec!["--", "true"], vec![("TINI_SUBREAPER", bad_utf8)]),
    ];
    for (args, env) in cases {
        let mut cmd = Command::new(oominit());
        cmd.args(&args).envs(env.iter().copied());
        let out = run_cmd(&mut cmd);
        assert_eq!(code(&out), 2, "{args:?} {env:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?} {env:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_huge_verbosity_saturates_and_keeps_diagnostics() {
    let mut cmd = Command::new(oominit());
    cmd.args(["-v", "--", "true"]).env("OOMINIT_VERBOSITY", "4294967295");
    let out = run_cmd(&mut cmd);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("oominit: started"), "level 2 diagnostics: {}", stderr(&out));
}

#[test]
fn missing_double_dash_runs_the_command_with_its_own_flags() {
    // tini's getopt stops at the first non-option word; so does oominit.
    assert_eq!(code(&run(&["sh", "-c", "exit 7"])), 7);
    // `-e`, an option of oominit's too, as a word of its own after the command: the command's.
    // (printf, not `echo -e`: busybox's echo takes -e as its own option.)
    let out = run(&["-v", "sh", "-c", "printf '%s\\n' \"$1\"", "sh", "-e"]);
    assert_eq!(stdout(&out), "-e\n");
}

#[test]
fn help_and_version() {
    let out = run(&["--help"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("Usage: oominit"));
    let out = run(&["-V"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).starts_with("oominit "));
}

/// oominit running `sigprobe`, stopped (SIGTERM, forwarded; then SIGKILL) if the test fails.
struct Probe {
    child: Option<std::process::Child>,
    lines: Lines,
}

impl Probe {
    fn start(args: &[&str], probe_args: &[&str]) -> Probe {
        let mut child = Command::new(oominit())
            .args(args)
            .arg("--")
            .arg(example("sigprobe"))
            .args(probe_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::new(child.stdout.take().unwrap());
        Probe { child: Some(child), lines }
    }

    fn init(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32)
    }

    /// The `pid=` of the next line the probe prints.
    fn next_pid(&self) -> String {
        let l = self.lines.next();
        l.split(' ')
            .find_map(|w| w.strip_prefix("pid="))
            .unwrap_or_else(|| panic!("no pid in {l:?}"))
            .to_string()
    }

    fn finish(mut self) -> std::process::Output {
        kill(self.init(), Signal::SIGTERM).unwrap();
        wait_with_deadline(self.child.take().unwrap(), Duration::from_secs(10))
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
            std::thread::sleep(Duration::from_millis(200));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn signals_a_parent_left_ignored_are_not_ignored_by_the_command() {
    // A shell that ignores INT, QUIT and USR1 starts oominit; the command gets their defaults.
    let script = format!(
        "trap '' INT QUIT USR1; exec {} -- grep -E '^SigIgn:' /proc/self/status",
        oominit().display()
    );
    let out = run_cmd(Command::new("sh").args(["-c", &script]));
    assert_eq!(stdout(&out), "SigIgn:\t0000000000000000\n", "{}", stderr(&out));
}

#[test]
fn child_starts_clean() {
    // The test harness is a Rust program: it hands oominit an ignored SIGPIPE. grep, a C program
    // that changes nothing, shows what the kernel gave it.
    let out = run(&["--", "grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"]);
    assert_eq!(stdout(&out), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    let probe = Probe::start(&[], &[]);
    let ready = probe.lines.next();
    let field = |k: &str| ready.split(' ').find_map(|w| w.strip_prefix(k)).unwrap().to_string();
    assert_eq!(field("pid="), field("pgid="), "the child leads its own process group: {ready}");
    assert_eq!(code(&probe.finish()), 0);
}

#[test]
fn no_descriptor_leaks_into_the_child() {
    // The same shell, with and without oominit in front: the same descriptors.
    let fds = |via_oominit: bool| {
        let mut cmd = if via_oominit { Command::new(oominit()) } else { Command::new("sh") };
        if via_oominit {
            cmd.args(["--", "sh"]);
        }
        stdout(&run_cmd(cmd.args(["-c", "ls /proc/$$/fd"])))
    };
    let (plain, wrapped) = (fds(false), fds(true));
    assert!(!plain.trim().is_empty());
    assert_eq!(wrapped, plain);
}

#[test]
fn signals_reach_the_child() {
    let probe = Probe::start(&[], &[]);
    let pid = probe.next_pid();
    for sig in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGWINCH] {
        kill(probe.init(), sig).unwrap();
        assert_eq!(probe.lines.next(), format!("{pid} got {}", sig.as_str()));
    }
    let rt = nix::libc::SIGRTMIN() + 2;
    assert_eq!(unsafe { nix::libc::kill(probe.init().as_raw(), rt) }, 0);
    assert_eq!(probe.lines.next(), format!("{pid} got SIGRTMIN+2"));
    assert_eq!(code(&probe.finish()), 0, "SIGTERM reached the probe, which exits 0 on it");
}

#[test]
fn group_flag_reaches_grandchildren() {
    for (flag, grandchild_gets_it) in [(&["-g"][..], true), (&[][..], false)] {
        let probe = Probe::start(flag, &["--spawn-child"]);
        let (mut main_pid, mut grand_pid) = (String::new(), String::new());
        for _ in 0..2 {
            let l = probe.lines.next();
            let pid = l.split(' ').find_map(|w| w.strip_prefix("pid=")).unwrap().to_string();
            if l.starts_with("child ") {
                grand_pid = pid
            } else {
                main_pid = pid
            }
        }
        kill(probe.init(), Signal::SIGUSR1).unwrap();
        let mut got = vec![probe.lines.next()];
        if let Some(l) = probe.lines.maybe(Duration::from_millis(500)) {
            got.push(l);
        }
        got.sort();
        let mut want = vec![format!("{main_pid} got SIGUSR1")];
        if grandchild_gets_it {
            want.push(format!("{grand_pid} got SIGUSR1"));
            want.sort();
        }
        assert_eq!(got, want, "{flag:?}");
        // Without -g the grandchild would outlive the test: stop it directly.
        kill(Pid::from_raw(grand_pid.parse().unwrap()), Signal::SIGTERM).unwrap();
        probe.finish();
    }
}

#[test]
fn rewrite_maps_and_drops_signals() {
    let probe = Probe::start(&["-r", "USR1:USR2", "-r", "HUP:0"], &[]);
    let pid = probe.next_pid();
    kill(probe.init(), Signal::SIGUSR1).unwrap();
    assert_eq!(probe.lines.next(), format!("{pid} got SIGUSR2"));
    // HUP is dropped. Had it been forwarded it would come before INT: both the init's signalfd
    // and the probe's sigwait hand out the lowest-numbered pending signal first.
    kill(probe.init(), Signal::SIGHUP).unwrap();
    kill(probe.init(), Signal::SIGINT).unwrap();
    assert_eq!(probe.lines.next(), format!("{pid} got SIGINT"));
    probe.finish();
}

#[test]
fn reaps_thousands_of_orphans_as_pid1() {
    let out = run_cmd(in_pid_namespace().arg("--").arg(example("orphans")).arg("3000"));
    assert_eq!(code(&out), 0, "{} {}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "orphans=3000 left=0");
}

#[test]
fn reaps_orphans_as_subreaper_when_not_pid1() {
    let out = run(&["--", example("orphans").to_str().unwrap(), "1000"]);
    assert_eq!(code(&out), 0, "{} {}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "orphans=1000 left=0");
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| !l.starts_with('{')).collect();
    assert!(warnings.is_empty(), "no warning when not PID 1: {warnings:?}");
}

#[test]
fn idle_init_never_wakes_once_started() {
    // Where nothing wakes oominit below the limit (cgroup v2, a read-only v1 cgroupfs), it lists
    // the cgroup 18 times in its first 10 s, as an application starts its workers; then never.
    let child = Command::new(oominit()).args(["--", "sleep", "15"]).spawn().unwrap();
    let switches = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    std::thread::sleep(Duration::from_millis(10_300));
    let before = switches();
    std::thread::sleep(Duration::from_secs(3));
    let after = switches();
    assert_eq!(after, before, "oominit woke {} times while idle", after - before);
    assert_eq!(code(&wait_with_deadline(child, Duration::from_secs(10))), 0);
}

#[test]
fn oominits_own_code_is_locked_in_memory() {
    // A cgroup's reclaim evicts oominit's code as a hog fills it; faulting it back in right after
    // the kill can be the charge of a second OOM (docs/headroom.md). Every page of oominit's file
    // mappings must be counted in VmLck.
    // oominit locks right after the fork, while the command starts: wait for it, 1 s at most.
    let script = "for i in $(seq 50); do grep -q 'VmLck:[[:space:]]*0 kB' /proc/$PPID/status || break; \
                  sleep 0.02; done; grep VmLck /proc/$PPID/status; cat /proc/$PPID/maps";
    let out = run(&["--", "sh", "-c", script]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let locked_kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmLck in {text}"));
    let path = std::fs::canonicalize(oominit()).unwrap();
    let mapped_kib: u64 = text
        .lines()
        .filter(|l| l.ends_with(path.to_str().unwrap()))
        .map(|l| {
            let (a, b) = l.split_whitespace().next().unwrap().split_once('-').unwrap();
            (u64::from_str_radix(b, 16).unwrap() - u64::from_str_radix(a, 16).unwrap()) / 1024
        })
        .sum();
    assert!(mapped_kib > 0, "no mapping of {} in {text}", path.display());
    assert!(locked_kib >= mapped_kib, "{locked_kib} kB locked, {mapped_kib} kB of oominit mapped");
}

/// `sh` prints the pids of two background processes, one of which ignores SIGTERM, and exits 0.
/// The ignore is inherited at fork, so it is in place before oominit can send anything.
const LEAVE_TWO_BEHIND: &str = "trap '' TERM; sleep 300 & echo $!; trap - TERM; sleep 300 & echo $!; exit 0";

fn alive(pid: i32) -> bool {
    // A zombie is not alive: it is waiting to be reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

#[test]
fn grace_leaves_no_process_behind_as_subreaper() {
    let out = run(&["--grace", "1s", "--", "sh", "-c", LEAVE_TWO_BEHIND]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pids: Vec<i32> = stdout(&out).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived --grace");
    }
}

#[test]
fn without_grace_the_rest_is_left_to_the_kernel() {
    // Not PID 1 and no --grace: oominit exits at once, like tini, and the rest lives on.
    let out = run(&["--", "sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!; exit 0"]);
    assert_eq!(code(&out), 0);
    let pid: i32 = stdout(&out).trim().parse().unwrap();
    assert!(alive(pid), "without --grace oominit should not kill the rest");
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
}

#[test]
fn grace_as_pid1_terms_then_kills() {
    // The TERM-ignoring sleeper must be SIGKILLed when the grace ends; oominit reports main's code.
    let out =
        run_cmd(in_pid_namespace().args(["-v", "--grace", "500ms", "--", "sh", "-c", LEAVE_TWO_BEHIND]));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("SIGKILL"), "the grace should have run out: {}", stderr(&out));
}

#[test]
fn child_gets_the_terminal_foreground() {
    // A real pseudo-terminal from util-linux's `script`: the command must lead its own process
    // group and be the terminal's foreground group, so it can read it and gets ^C.
    let inner = format!("{} -- sh -c 'ps -o pid=,pgid=,tpgid= -p $$'", oominit().display());
    let out = run_cmd(Command::new("script").args(["-qec", &inner, "/dev/null"]));
    assert_eq!(code(&out), 0, "util-linux `script` and procps `ps` are needed: {}", stderr(&out));
    let text = stdout(&out).replace('\r', "");
    let ids: Vec<&str> = text.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(ids.len(), 3, "{text}");
    assert_eq!(ids[0], ids[1], "own process group: {text}");
    assert_eq!(ids[1], ids[2], "the terminal's foreground group: {text}");
}

#[test]
fn runs_under_a_small_stack_limit() {
    // A container may set a small RLIMIT_STACK; oominit's stack pre-fault once crashed PID 1 there.
    // Not 16: that limit also holds the environment and argv, and the kernel places the stack top
    // at a random offset; under `cargo test`'s environment 16 KiB failed 6 runs in 50 even before
    // victims were named (20 KiB: 0 in 60).
    for kib in ["24", "64"] {
        let script = format!("ulimit -s {kib} && exec {} -- sh -c 'exit 4'", oominit().display());
        let out = run_cmd(Command::new("sh").args(["-c", &script]));
        assert_eq!(out.status.code(), Some(4), "ulimit -s {kib}: {:?} {}", out.status, stderr(&out));
    }
}

#[test]
fn a_script_without_a_shebang_runs_under_bin_sh_as_with_tini() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("oominit-script-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("noshebang");
    std::fs::write(&script, "echo from-sh \"$1\"; exit 3\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(&["--", script.to_str().unwrap(), "arg"]);
    assert_eq!((code(&out), stdout(&out).trim()), (3, "from-sh arg"), "{}", stderr(&out));
    // Found through PATH, as execvp finds it.
    let path = format!("{}:/usr/bin:/bin", dir.display());
    let out = run_cmd(Command::new(oominit()).args(["--", "noshebang", "x"]).env("PATH", path));
    assert_eq!((code(&out), stdout(&out).trim()), (3, "from-sh x"), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_command_always_runs_whatever_the_descriptor_limit() {
    // tini runs its command with `ulimit -n 3`. oominit makes its loop's descriptors first, and
    // waits as tini does with none at all.
    // The command is busybox's static sh: a dynamic one cannot even load libc with 3 descriptors.
    let busybox = "/bin/busybox";
    assert!(
        std::path::Path::new(busybox).exists(),
        "this test needs a static {busybox} (apt-get install busybox-static)"
    );
    for n in ["3", "4", "5", "6", "8", "16", "24"] {
        let script =
            format!("ulimit -n {n} && exec {} -- {busybox} sh -c 'sleep 0.2; exit 7'", oominit().display());
        let out = run_cmd(Command::new("sh").args(["-c", &script]));
        assert_eq!(code(&out), 7, "ulimit -n {n}: {}", stderr(&out));
        let r = exit_record(&out.stderr);
        assert_eq!(r["main"]["exit_code"], 7, "ulimit -n {n}");
    }
    // A missing command is still 127, and one not executable 126, with no descriptor to spare.
    let script = format!("ulimit -n 3 && exec {} -- /", oominit().display());
    assert_eq!(code(&run_cmd(Command::new("sh").args(["-c", &script]))), 126);
    let script = format!("ulimit -n 3 && exec {} -- /definitely/not/here", oominit().display());
    assert_eq!(code(&run_cmd(Command::new("sh").args(["-c", &script]))), 127);
}

#[test]
fn grace_ends_without_proc_when_not_pid1() {
    // No /proc (unmounted in a private mount namespace): oominit cannot list the leftovers. It
    // signals main's process group, and after the grace's SIGKILL it waits a moment for what it
    // cannot find, then exits. A leftover in a session of its own is left to the kernel. (Their
    // output goes elsewhere: one that survives must not hold the test's pipe open.)
    let inner = format!(
        "umount -l /proc && exec {} --grace 1s -- sh -c 'sleep 100 >/dev/null 2>&1 & echo $!; setsid sleep 100 >/dev/null 2>&1 & echo $!; exit 4'",
        oominit().display()
    );
    let start = std::time::Instant::now();
    let out = run_cmd(Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &inner]));
    let took = start.elapsed();
    assert_eq!(code(&out), 4, "{}", stderr(&out));
    assert!(took < Duration::from_secs(8), "--grace 1s took {took:?}");
    let pids: Vec<i32> = stdout(&out).lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 2, "{}", stdout(&out));
    assert!(!alive(pids[0]), "the sleep in main's process group got the grace's signals");
    let _ = kill(Pid::from_raw(pids[1]), Signal::SIGKILL);
}
