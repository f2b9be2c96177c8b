//! Reading /proc: which processes descend from oominit (for `--grace` when oominit is not PID 1:
//! as PID 1 `kill(-1, …)` already reaches every other process of the namespace), and a process's
//! command name, resident memory and fate from its `stat` (for naming OOM victims).

use std::fs;

use nix::libc::pid_t;

/// oominit's own PID. getpid() is a system call under musl: asked once (the start-up paths ask
/// it four times).
pub fn me() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    static ME: AtomicU32 = AtomicU32::new(0);
    match ME.load(Relaxed) {
        0 => {
            let pid = std::process::id();
            ME.store(pid, Relaxed);
            pid
        }
        pid => pid,
    }
}

/// The parent pid from the text of `/proc/PID/stat`. The command name in parentheses may itself
/// hold spaces and parentheses, so the fields after it are found from the LAST ')'.
pub fn stat_ppid(stat: &str) -> Option<pid_t> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// The kernel's PF_EXITING task flag (include/linux/sched.h): set in do_exit before the memory
/// is released, so a process showing it no longer shows the size it was killed at.
const PF_EXITING: u64 = 0x4;
/// PF_SIGNALED: set by get_signal (kernel/signal.c) in the thread that takes a fatal signal,
/// before it calls do_group_exit; every thread of a group being killed takes one. Which signal
/// it was, the flags do not say.
const PF_SIGNALED: u64 = 0x400;
/// SIGKILL's bit in a signal set.
const SIGKILL_BIT: u64 = 1 << (nix::libc::SIGKILL - 1);

/// What `/proc/PID/stat` says about a process that may be an OOM victim.
#[derive(Debug, PartialEq, Eq)]
pub struct Stat<'a> {
    pub comm: &'a str,
    pub rss_pages: u64,
    /// Exiting or dead: PF_EXITING, or state Z or X.
    pub exiting: bool,
    /// Dead (state Z or X): its memory is released, only the exit status is left to reap.
    pub dead: bool,
    /// A fatal signal is pending: SIGKILL's bit in field 31, the leader's own pending set. When a
    /// signal that kills the whole group arrives (complete_signal, kernel/signal.c), the kernel
    /// adds SIGKILL to every thread's own set, whichever signal it was: an unhandled SIGTERM
    /// shows here as SIGKILL too (measured on 6.18). Cleared when the victim dequeues it, as its
    /// exit begins. Shown to every reader.
    pub fatal_pending: bool,
    /// PF_SIGNALED (field 9): the process took a fatal signal, which one unknown. Shown to every
    /// reader.
    pub signaled: bool,
    /// The wait status of the exit under way or done (field 52, kernel 3.5+; 9 for SIGKILL, set
    /// before the memory is released, seen on 6.18 even before the victim ran again). Shown only
    /// to a reader allowed to ptrace the process, 0 otherwise: see `exit_code_shown`.
    pub exit_code: Option<i32>,
    /// Whether this reader may see the exit code (do_task_stat's `permitted`: ptrace_may_access
    /// in read mode). Another uid's process needs CAP_SYS_PTRACE, which a container's root lacks;
    /// so does a non-dumpable one. Told by fields 26 and 27 (start and end of code): the kernel
    /// shows 1 for both to a reader it does not permit, the real addresses otherwise. None
    /// without a memory map to show (exiting, a zombie, a kernel thread).
    pub exit_code_shown: Option<bool>,
}

/// Parse the text of `/proc/PID/stat`. The name sits between the first '(' and the last ')' and
/// may itself hold both.
pub fn stat(stat: &str) -> Option<Stat<'_>> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // Fields from 3 (state) on; flags is field 9, rss 24, start and end of code 26 and 27,
    // pending signals 31, exit code 52.
    let mut f = [""; 50];
    let mut n = 0;
    for (slot, field) in f.iter_mut().zip(stat.get(close + 1..)?.split_ascii_whitespace()) {
        *slot = field;
        n += 1;
    }
    if n < 22 {
        return None;
    }
    let field = |i: usize| f[i - 3];
    let flags: u64 = field(9).parse().ok()?;
    let pending: u64 = field(31).parse().unwrap_or(0);
    let dead = matches!(field(3), "Z" | "X");
    let exit_code_shown = match (field(26), field(27)) {
        ("1", "1") => Some(false),
        ("0" | "", _) => None,
        _ => Some(true),
    };
    Some(Stat {
        comm,
        rss_pages: field(24).parse().ok()?,
        exiting: dead || flags & PF_EXITING != 0,
        dead,
        fatal_pending: pending & SIGKILL_BIT != 0,
        signaled: flags & PF_SIGNALED != 0,
        exit_code: field(52).parse().ok(),
        exit_code_shown,
    })
}

/// Whether `/proc/PID/status` shows SIGKILL in `ShdPnd`, the process's shared pending set; None
/// when the line is not there (cut off, or not a status file).
///
/// A SIGKILL sent to a process (kill(2), and the OOM killer's, which is sent to the whole thread
/// group) is queued there and stays there: the dying threads take the SIGKILL the kernel adds to
/// their own sets, never this one, and the set is flushed only when the process is reaped
/// (__exit_signal). So from the moment it is sent until the reap, every reader sees it, with or
/// without the right to ptrace (measured on 6.18: alive, exiting, zombie). A death by another
/// signal shows that signal's bit instead.
pub fn shared_sigkill(status: &str) -> Option<bool> {
    let line = status.split('\n').find_map(|l| l.strip_prefix("ShdPnd:"))?.trim();
    // Hexadecimal, highest signals first; SIGKILL is in the last digits.
    let low = line.get(line.len().checked_sub(8)?..)?;
    Some(u64::from_str_radix(low, 16).ok()? & SIGKILL_BIT != 0)
}

/// The `SigIgn` mask of a `/proc/PID/status` text: bit N-1 for signal N ignored.
pub fn signals_ignored(status: &str) -> Option<u64> {
    let line = status.split('\n').find_map(|l| l.strip_prefix("SigIgn:"))?.trim();
    u64::from_str_radix(line, 16).ok()
}

/// Every live descendant of `root`, children before grandchildren; an error when /proc cannot be
/// read at all (not mounted, or no descriptor left). Processes that come and go during the walk
/// are skipped: the caller sweeps again on the next SIGCHLD.
pub fn descendants(root: pid_t) -> std::io::Result<Vec<pid_t>> {
    // (parent, pid) pairs, sorted by parent: a binary search finds each one's children.
    let mut edges: Vec<(pid_t, pid_t)> = Vec::new();
    {
        let dir = fs::read_dir("/proc")?;
        // An empty /proc (unmounted, the mount point left) lists nothing and says nothing.
        fs::symlink_metadata("/proc/self")?;
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<pid_t>().ok()) else {
                continue;
            };
            if let Some(ppid) =
                fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(stat_ppid)
            {
                edges.push((ppid, pid));
            }
        }
    }
    edges.sort_unstable();
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        let start = edges.partition_point(|&(pp, _)| pp < p);
        for &(_, c) in edges[start..].iter().take_while(|&&(pp, _)| pp == p) {
            out.push(c);
            queue.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_ignored_signals_are_read_from_sigign() {
        // /proc/self/status of a shell with SIGPIPE and SIGINT ignored (6.18), its signal lines.
        let status = "Name:\tsh\nSigQ:\t0/95705\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001002\nSigCgt:\t0000000000010000\n";
        assert_eq!(
            signals_ignored(status),
            Some((1 << (nix::libc::SIGPIPE - 1)) | (1 << (nix::libc::SIGINT - 1)))
        );
        assert_eq!(signals_ignored("SigIgn:\tffffffffffffffff\n"), Some(u64::MAX));
        for bad in ["", "SigIgn:", "SigIgn:\tzz\n", "SigIgn:\t10000000000000000\n", "Name:\tsh\n"] {
            assert_eq!(signals_ignored(bad), None, "{bad:?}");
        }
    }
    use super::*;

    #[test]
    fn ppid_survives_hostile_comm() {
        // Copied from a 6.1 kernel, with the comm replaced by one a program chose itself.
        let stat = "4242 (a) b) (c) S 17 4242 4242 0 -1 4194560 104 0 0 0 0 0 0 0 20 0 1 0 8734 2793472 220";
        assert_eq!(stat_ppid(stat), Some(17));
        assert_eq!(stat_ppid("1 (init) S 0 1 1 0"), Some(0));
        assert_eq!(stat_ppid("garbage"), None);
        assert_eq!(stat_ppid("1 (x) S"), None);
    }

    #[test]
    fn comm_rss_and_fate() {
        // /proc/self/stat of `cat` on this project's 6.18 kernel: rss is 380 pages.
        let stat = "9322 (cat) R 9320 9320 1822 0 -1 4194304 100 0 1 0 0 0 0 0 20 0 1 0 529482 3133440 380 18446744073709551615 93989753360384 93989753380265 140726448669664 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 93989753396272 93989753397888 93990697144320 140726448671456 140726448671476 140726448671476 140726448672747 0";
        let alive = Stat {
            comm: "cat",
            rss_pages: 380,
            exiting: false,
            dead: false,
            fatal_pending: false,
            signaled: false,
            exit_code: Some(0),
            exit_code_shown: Some(true),
        };
        assert_eq!(super::stat(stat), Some(alive));
        let hostile = stat.replacen("(cat)", "(a) b) (c)", 1);
        assert_eq!(super::stat(&hostile).map(|s| s.comm), Some("a) b) (c"));
        // The same task after do_exit began (flags | PF_EXITING), and as a zombie.
        assert!(super::stat(&stat.replacen(" 4194304 ", " 4194308 ", 1)).is_some_and(|s| s.exiting));
        assert!(super::stat(&stat.replacen(") R ", ") Z ", 1)).is_some_and(|s| s.exiting));
        assert_eq!(super::stat("9322 (cat) R 1 2"), None);
        assert_eq!(super::stat(")("), None);
        assert_eq!(super::stat(""), None);
        // A kernel before 3.5 stops at field 44: no exit code.
        let old: String = stat.split(' ').take(44).collect::<Vec<_>>().join(" ");
        assert_eq!(super::stat(&old).map(|s| s.exit_code), Some(None));
    }

    #[test]
    fn killed_processes() {
        // Captured on this project's 6.18 kernel. A process frozen (v1 freezer) and sent SIGKILL:
        // still whole (rss 10980 pages), SIGKILL pending (field 31 = 256), exit code already 9.
        let pending = "5867 (python3) D 5864 5864 1838 0 -1 4194304 10558 6546 7 1 4 5 4 2 20 0 1 0 50313 48422912 10980 18446744073709551615 94175102296064 94175102296405 140735724276400 0 0 256 0 16781318 0 1 0 0 17 1 0 0 0 0 0 94175102307760 94175102308376 94175223746560 140735724284105 140735724284200 140735724284200 140735724285903 9";
        let s = super::stat(pending).unwrap();
        assert!(s.fatal_pending && !s.exiting && !s.signaled);
        assert_eq!((s.rss_pages, s.exit_code), (10980, Some(9)));
        // A zombie not yet reaped that died of SIGKILL (exit code 9), and one that exited 3 (3 << 8).
        let zombie = "5973 (python3) Z 5932 5930 1838 0 -1 4228172 7916 0 0 0 0 2 0 0 20 0 1 0 51083 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 9";
        let z = super::stat(zombie).unwrap();
        assert!(z.exiting && z.dead && !z.fatal_pending);
        assert_eq!(z.exit_code_shown, None, "no memory map, nothing to tell by");
        assert_eq!((z.rss_pages, z.exit_code), (0, Some(9)));
        let exit3 = "5974 (python3) Z 5932 5930 1838 0 -1 4227148 227 0 0 0 0 0 0 0 20 0 1 0 51163 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 2 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 768";
        assert_eq!(super::stat(exit3).map(|s| (s.exiting, s.exit_code)), Some((true, Some(768))));
    }

    #[test]
    fn what_a_reader_not_allowed_to_ptrace_sees() {
        // Captured on this project's 6.18 kernel: `sleep` run as uid 1000 by root without
        // CAP_SYS_PTRACE (as in a container), then killed. Alive: code addresses shown as 1.
        let alive = "27735 (sleep) S 27682 27678 12320 0 -1 4194560 396 0 0 0 0 0 0 0 20 0 1 0 118027 2990080 424 18446744073709551615 1 1 0 0 0 0 0 16781312 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let a = super::stat(alive).unwrap();
        assert_eq!((a.exit_code_shown, a.signaled, a.exiting), (Some(false), false, false));
        // A zombie after SIGKILL: PF_SIGNALED (flags 0x40850c), and the exit code hidden as 0.
        let zombie = "27735 (sleep) Z 27682 27678 12320 0 -1 4228364 396 0 0 0 0 0 0 0 20 0 1 0 118027 0 0 18446744073709551615 0 0 0 0 0 0 0 16781312 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0";
        let z = super::stat(zombie).unwrap();
        assert_eq!((z.dead, z.signaled, z.exit_code, z.exit_code_shown), (true, true, Some(0), None));
        // Its status: SIGKILL still in the shared pending set; after a SIGTERM, SIGTERM's bit.
        let status = "Name:\tsleep\nState:\tZ (zombie)\nTgid:\t27735\nUid:\t1000\t1000\t1000\t1000\nThreads:\t1\nSigQ:\t0/96364\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\nSigBlk:\t0000000000000000\n";
        assert_eq!(shared_sigkill(status), Some(true));
        assert_eq!(shared_sigkill(&status.replace("0000000000000100", "0000000000004000")), Some(false));
        assert_eq!(
            shared_sigkill(&status.replace("0000000000000100", "0000000100000100")),
            Some(true),
            "RT signals too"
        );
        assert_eq!(shared_sigkill("Name:\tsleep\nState:\tZ (zombie)\nSigPnd:\t000"), None, "cut off");
        assert_eq!(shared_sigkill("ShdPnd:\tzz"), None);
        assert_eq!(shared_sigkill(""), None);
    }

    #[test]
    fn finds_own_children() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id() as pid_t;
        assert!(descendants(me).unwrap().contains(&(child.id() as pid_t)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
