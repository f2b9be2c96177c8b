//! Naming the processes the kernel OOM-killed: pid, comm, argv, resident memory before the kill,
//! and how oominit knows (`source`). The counters say how many; this says which.
//!
//! The hard case is the common one: a victim whose own parent reaps it (stress, gunicorn, a shell
//! loop) is gone microseconds after it dies, and oominit never sees its exit status. So oominit
//! looks before the kill. Wakes of the cgroup watch (v2: `max` events, raised as the cgroup
//! reaches its limit and reclaims; v1: usage rising past 1/2 and 3/4 of the limit) list the
//! cgroup's processes and hold each one's /proc stat open, with a pidfd
//! where the kernel keeps exit statuses for pidfds (6.15+); when listing is safe is the watcher's
//! call (`OomWatch::may_list`: opening files charges the full cgroup). When the kill count rises,
//! every process followed is looked at again, best evidence first:
//!
//! - `reaped`: oominit reaped it itself and saw SIGKILL (the main process, or an orphan);
//! - `proc`: its stat shows SIGKILL pending, or an exit by SIGKILL (under way, or a zombie's);
//! - `pidfd`: its parent has reaped it, and its pidfd says it died of SIGKILL;
//! - `vanished`: it was there at the last look and is gone with no exit status to read (kernels
//!   before 6.15). Named only when exactly as many vanished as kills are left unexplained, and
//!   then marked uncertain.
//!
//! The kernel raises the kill counter before it sends the SIGKILL (mm/oom_kill.c), so a death by
//! SIGKILL seen before a read of the counter that shows no new kill was not an OOM kill (a
//! `kill -9`, or oominit's own at the end of `--grace`): it is forgotten. A death seen after the
//! read may belong to the next rise, and waits for it unless it fits in this one. More deaths
//! seen before the read than new kills: all are named, each marked uncertain. Nothing here runs
//! while the cgroup is quiet: only on its wakes, on reaps, and at exit.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::libc::{self, pid_t};

use crate::cgroup::Version;
use crate::procfs;
use crate::reap::Status;
use crate::record::Victim;

/// Processes followed at once: two descriptors each. Beyond this, kills go unnamed.
const MAX_TRACKED: usize = 512;

/// `cgroup.procs` read at once: ~1000 pids of 7 digits; a longer list grows the buffer.
const LIST_BYTES: usize = 8192;
/// Of a process's `cmdline`, enough for 16 arguments of 256 bytes (record::short_argv).
const CMDLINE_BYTES: usize = 4096;

/// PIDFD_GET_INFO (include/uapi/linux/pidfd.h): `_IOWR(0xFF, 11, struct pidfd_info)`, 64 bytes.
const PIDFD_GET_INFO: u32 = 0xC040_FF0B;
const PIDFD_INFO_EXIT: u64 = 1 << 3;

#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    /// pid, tgid, ppid and the eight ids.
    ids: [u32; 11],
    exit_code: i32,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fate {
    Alive,
    Killed(&'static str),
    /// Gone, and how is unknown.
    Vanished,
    /// Ended some other way than SIGKILL.
    Ended,
    /// Named already, and still in /proc (dying, or a zombie): kept so that the next listing
    /// does not take it for a new process and name it twice.
    Named,
}

struct Tracked {
    pid: pid_t,
    main: bool,
    /// `/proc/PID/stat`, held open: re-read with pread, no allocation while the cgroup is full.
    stat: Option<File>,
    pidfd: Option<OwnedFd>,
    /// The kernel's name for it (at most 16 bytes, 64 for kernel threads), kept in place: a
    /// String here would be a heap allocation at every look, and a fresh heap page right after
    /// a kill is a charge the full cgroup cannot meet (measured: the main process killed by a
    /// second OOM in 2 of 150 runs, none without the allocation).
    comm: [u8; 64],
    comm_len: Option<usize>,
    /// Named, and not yet seen dead: what it was killed for may still be charged.
    holds_memory: bool,
    /// It exec'd since its argv was read: read it again at the next listing.
    argv_stale: bool,
    /// How many counter reads had begun when its fate was last seen (see `Victims::settle`).
    seen: u64,
    argv: Vec<String>,
    rss_bytes: Option<u64>,
    fate: Fate,
}

/// Default: following nothing, the placeholder until the command is forked (no allocation).
#[derive(Default)]
pub struct Victims {
    /// The cgroup's `cgroup.procs`; None without a cgroup.
    procs: Option<File>,
    /// Where it is, to open it again for every listing: on v1, an open `cgroup.procs` keeps
    /// serving the list it loaded first (the kernel caches it per open file for a second,
    /// cgroup_pidlist_start): seen here, a process started 0.3 s later was missing from it.
    /// On v2 it is held open, as the other cgroup files are, not to allocate while full.
    reopen: Option<PathBuf>,
    tracked: Vec<Tracked>,
    named: Vec<Victim>,
    me: pid_t,
    page_size: u64,
    /// Cleared when the kernel has no pidfds (before 5.3) or no PIDFD_GET_INFO (before 6.13).
    pidfds: bool,
    /// Where `cgroup.procs` is read into, kept between reads.
    buf: Vec<u8>,
    /// Where a `/proc/PID/cmdline` is read into, kept between reads.
    cmdline_buf: Vec<u8>,
    /// Counter reads so far.
    reads: u64,
}

impl Victims {
    /// Follow the processes of the cgroup at `dir` (if any), and the main process `main`, whose
    /// argv is the command oominit ran (read now, it would still be oominit's).
    pub fn new(dir: Option<(&Path, Version)>, main: Option<(pid_t, Vec<String>)>) -> Victims {
        let path = dir.map(|(d, _)| d.join("cgroup.procs"));
        // SAFETY: sysconf has no preconditions.
        let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut v = Victims {
            procs: path.as_ref().and_then(|p| File::open(p).ok()),
            reopen: path.filter(|_| matches!(dir, Some((_, Version::V1)))),
            tracked: Vec::new(),
            named: Vec::with_capacity(16),
            me: std::process::id() as pid_t,
            page_size,
            pidfds: true,
            buf: Vec::new(),
            cmdline_buf: Vec::new(),
            reads: 0,
        };
        if let Some((pid, argv)) = main {
            v.track(pid, Some(argv));
            // The child may not have exec'd yet: what its stat said is oominit's name and size.
            if let Some(t) = v.tracked.last_mut() {
                t.comm_len = None;
                t.rss_bytes = None;
            }
        }
        // On v2, where `cgroup.procs` is held open, read it once now: the kernel allocates a
        // seq_file's buffer at its first read (seq_read_iter, charged to the cgroup) and keeps it
        // while the file is open. Only read: following what is there now (which, where oominit
        // is not PID 1, can be a whole host's session) would cost a container start ~200 µs.
        if v.reopen.is_none() {
            v.read_procs();
        }
        v
    }

    /// Touch now, while the cgroup has room, the memory a listing writes to: the first listing
    /// comes as the cgroup nears or reaches its limit, and a page oominit faults in then is
    /// charged there. Seen in the VM (v2, the first listing at the first `max` event): the read
    /// of `cgroup.procs` into a buffer reserved but never touched took 46 to 51 ms, while the
    /// first worker was killed and reaped unseen. Room for the usual few processes, so that
    /// following them and noting their deaths does not fault either.
    ///
    /// For a cgroup with a limit of its own (the watcher's call: elsewhere nothing here is
    /// charged at a limit, and a container start need not pay for it).
    pub fn prefault(&mut self) {
        self.buf.resize(LIST_BYTES, 0);
        self.buf.clear();
        self.cmdline_buf.resize(CMDLINE_BYTES, 0);
        // Beyond those followed already (the main process).
        let followed = self.tracked.len();
        self.tracked.extend((0..64).map(|_| Tracked::gone(0, Fate::Ended)));
        self.tracked.truncate(followed);
    }

    /// Look at every process followed, and with `list`, start following the cgroup's new ones.
    pub fn observe(&mut self, list: bool) {
        if list {
            self.list();
        }
        for t in &mut self.tracked {
            match t.fate {
                Fate::Alive => {
                    t.look(self.page_size);
                    t.seen = self.reads;
                }
                Fate::Named => t.recheck_named(),
                _ => {}
            }
        }
    }

    /// The kill counter is being read now: what is seen from here on may belong to a kill that
    /// read did not count yet.
    pub fn counting(&mut self) {
        self.reads += 1;
    }

    /// oominit reaped these.
    pub fn reaped(&mut self, exits: &[(pid_t, Status)]) {
        for &(pid, status) in exits {
            let fate = match status {
                Status::Signaled(libc::SIGKILL) => Fate::Killed("reaped"),
                _ => Fate::Ended,
            };
            match self.tracked.iter_mut().find(|t| t.pid == pid) {
                // Named already while it was dying.
                Some(t) if t.fate == Fate::Named => t.fate = Fate::Ended,
                Some(t) => {
                    t.fate = fate;
                    t.seen = self.reads;
                }
                // Never seen alive: its name died with it. Still a death by SIGKILL to count.
                None if fate != Fate::Ended => {
                    self.tracked.push(Tracked { seen: self.reads, ..Tracked::gone(pid, fate) })
                }
                None => {}
            }
        }
    }

    /// The kill counter was read (see [`counting`](Self::counting)): `new` kills since the read
    /// before. Name the processes seen dying of SIGKILL before this read; those seen after it
    /// too, if they fit in what the read counted (else they wait for the next read: the kill
    /// that killed them may not be counted yet). Forget every process that is gone.
    pub fn settle(&mut self, new: u64) {
        let reads = self.reads;
        let before = |t: &Tracked| t.seen < reads;
        let count = |f: &dyn Fn(&Tracked) -> bool| self.tracked.iter().filter(|t| f(t)).count() as u64;
        let killed = count(&|t| matches!(t.fate, Fate::Killed(_)) && before(t));
        let later = count(&|t| matches!(t.fate, Fate::Killed(_)) && !before(t));
        let vanished = count(&|t| t.fate == Fate::Vanished && before(t));
        let room = new.saturating_sub(killed);
        let later_fit = new > 0 && later <= room;
        let unexplained = room - if later_fit { later } else { 0 };
        for t in &mut self.tracked {
            let certain = match t.fate {
                Fate::Killed(_) if before(t) && new > 0 => killed <= new,
                Fate::Killed(_) if !before(t) && later_fit => true,
                Fate::Vanished if before(t) && unexplained > 0 && vanished == unexplained => false,
                _ => continue,
            };
            let source = if let Fate::Killed(source) = t.fate { source } else { "vanished" };
            self.named.push(t.victim(source, !certain));
            t.fate = Fate::Named;
            t.holds_memory = source != "vanished";
        }
        // Seen after the read and not named: the next read decides.
        self.tracked.retain(|t| matches!(t.fate, Fate::Alive | Fate::Named) || !before(t));
    }

    /// Whether a victim named so far may still hold memory: right after a kill the cgroup stays
    /// full until it is given back, the OOM killer skips the victim, and a charge made then
    /// (opening a file) has it kill someone else.
    pub fn dying(&self) -> bool {
        self.tracked.iter().any(|t| t.fate == Fate::Named && t.holds_memory)
    }

    /// Resident memory of the processes followed that may still hold it (alive, or killed and
    /// not yet dead), as last seen; and the main process's share of it. None while the main
    /// process has not been seen alive.
    pub fn known_rss(&self) -> Option<(u64, u64)> {
        let holding = |t: &&Tracked| matches!(t.fate, Fate::Alive | Fate::Killed(_)) || t.holds_memory;
        let rss = |t: &Tracked| t.rss_bytes.unwrap_or(0);
        let all = self.tracked.iter().filter(holding).map(rss).sum();
        Some((all, self.main_rss()?))
    }

    /// Whether two processes followed, alive and not killed, are bigger than `floor` and than the
    /// main process: if oominit's own charge set the OOM killer off now, it would pick one of
    /// them, not the main process or oominit. Two, because the biggest may be the victim of a
    /// kill under way, skipped while it dies (seen: with one, `sh -c 'memhog 128'` lost sh).
    pub fn shielded(&self, floor: u64) -> bool {
        let Some(main) = self.main_rss() else { return false };
        let big = |t: &&Tracked| t.fate == Fate::Alive && !t.main && t.rss_bytes > Some(main.max(floor));
        self.tracked.iter().filter(big).count() >= 2
    }

    /// The main process's size as last seen alive; 0 without one, None while never seen alive
    /// (then its size, and so what is known, is unknown).
    fn main_rss(&self) -> Option<u64> {
        self.tracked.iter().find(|t| t.main).map_or(Some(0), |t| t.rss_bytes)
    }

    /// How many are named with certainty.
    pub fn certain(&self) -> u64 {
        self.named.iter().filter(|v| !v.uncertain).count() as u64
    }

    /// Everyone named so far.
    pub fn named(&self) -> &[Victim] {
        &self.named
    }

    pub fn into_named(self) -> Vec<Victim> {
        self.named
    }

    fn list(&mut self) {
        self.read_procs();
        for t in self.tracked.iter_mut().filter(|t| t.argv_stale && t.fate == Fate::Alive) {
            t.argv = cmdline(t.pid, &mut self.cmdline_buf);
            t.argv_stale = false;
        }
        let text = std::mem::take(&mut self.buf);
        let pids =
            text.split(|b| b.is_ascii_whitespace()).filter_map(|p| std::str::from_utf8(p).ok()?.parse().ok());
        for pid in pids {
            // 0: a process outside oominit's PID namespace.
            if pid != 0 && pid != self.me && !self.tracked.iter().any(|t| t.pid == pid) {
                self.track(pid, None);
            }
        }
        self.buf = text;
    }

    /// `cgroup.procs` into `buf` (reopened first on v1; see `reopen`).
    fn read_procs(&mut self) {
        if let Some(path) = &self.reopen {
            self.procs = File::open(path).ok();
        }
        self.buf.clear();
        let Some(procs) = &self.procs else { return };
        loop {
            // Into the room touched already; more only for a list longer than ever before.
            let len = self.buf.len();
            if self.buf.capacity() - len < LIST_BYTES / 4 {
                self.buf.reserve(LIST_BYTES);
            }
            self.buf.resize(self.buf.capacity(), 0);
            match procs.read_at(&mut self.buf[len..], len as u64) {
                Ok(n) if n > 0 => self.buf.truncate(len + n),
                _ => {
                    self.buf.truncate(len);
                    break;
                }
            }
        }
    }

    fn track(&mut self, pid: pid_t, argv: Option<Vec<String>>) {
        if self.tracked.len() >= MAX_TRACKED {
            return;
        }
        let Ok(stat) = File::open(format!("/proc/{pid}/stat")) else { return };
        let pidfd = if self.pidfds { self.pidfd(pid) } else { None };
        let main = argv.is_some();
        let mut t = Tracked { main, stat: Some(stat), pidfd, ..Tracked::gone(pid, Fate::Alive) };
        // Its name before its argv, and again after: a process listed between fork and exec
        // (a shell's child, say) could have its argv read before the exec and its name after.
        // Seen in the VM, with a listing as the watch was armed (since dropped): memhog named
        // with its parent shell's argv. A name that changed in between drops the argv, to be
        // read again at the next listing.
        t.look(self.page_size);
        t.argv = argv.unwrap_or_else(|| cmdline(pid, &mut self.cmdline_buf));
        t.look(self.page_size);
        t.seen = self.reads;
        self.tracked.push(t);
    }

    /// A pidfd for `pid`, if this kernel can tell a pidfd's exit status; the first failure of
    /// pidfd_open or PIDFD_GET_INFO turns them off for good.
    fn pidfd(&mut self, pid: pid_t) -> Option<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
                self.pidfds = false;
            }
            return None;
        }
        // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        match pidfd_info(&fd) {
            Some(_) => Some(fd),
            None => {
                // ESRCH: the process is already gone, which says nothing of the kernel.
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH) {
                    self.pidfds = false;
                }
                None
            }
        }
    }
}

impl Tracked {
    fn gone(pid: pid_t, fate: Fate) -> Tracked {
        Tracked {
            pid,
            main: false,
            stat: None,
            pidfd: None,
            comm: [0; 64],
            comm_len: None,
            holds_memory: false,
            argv_stale: false,
            seen: 0,
            argv: Vec::new(),
            rss_bytes: None,
            fate,
        }
    }

    /// The stat as text, or None once the process has been reaped (ESRCH).
    fn read_stat<'b>(&self, buf: &'b mut [u8; 1024]) -> Option<&'b str> {
        match self.stat.as_ref()?.read_at(buf, 0) {
            Ok(n) if n > 0 => std::str::from_utf8(&buf[..n]).ok(),
            _ => None,
        }
    }

    /// A named victim: does it still hold memory the kernel has not taken back (there, and not
    /// yet a zombie)? Forgotten once reaped.
    fn recheck_named(&mut self) {
        let mut buf = [0u8; 1024];
        match self.read_stat(&mut buf).and_then(procfs::stat) {
            Some(s) => self.holds_memory = !s.dead,
            None => {
                self.holds_memory = false;
                self.fate = Fate::Ended;
            }
        }
    }

    /// Re-read the stat: note the name and size while the process lives, and how it ends.
    fn look(&mut self, page_size: u64) {
        let mut buf = [0u8; 1024];
        let Some(s) = self.read_stat(&mut buf).and_then(procfs::stat) else {
            // Reaped (ESRCH): only the pidfd can still say how it ended.
            self.fate = match self.pidfd.as_ref().and_then(pidfd_info).and_then(exit_status) {
                Some(Status::Signaled(libc::SIGKILL)) => Fate::Killed("pidfd"),
                Some(_) => Fate::Ended,
                None => Fate::Vanished,
            };
            return;
        };
        if self.comm_len.is_none() || !s.exiting {
            let len = s.comm.len().min(self.comm.len());
            // A new name is an exec since the argv was read (seen in the VM: a shell's child
            // listed between fork and exec, named later as memhog with the shell's argv). The
            // argv is dropped, not guessed, and read again at the next listing.
            if self.comm_len.is_some_and(|old| self.comm[..old] != s.comm.as_bytes()[..len]) {
                self.argv.clear();
                self.argv_stale = true;
            }
            self.comm[..len].copy_from_slice(&s.comm.as_bytes()[..len]);
            self.comm_len = Some(len);
        }
        // An exiting process is losing the memory it was killed for: its last size alive stands.
        if !s.exiting {
            self.rss_bytes = Some(s.rss_pages.saturating_mul(page_size));
        }
        if s.sigkill_pending || s.exit_code == Some(libc::SIGKILL) {
            self.fate = Fate::Killed("proc");
        }
    }

    fn victim(&self, source: &'static str, uncertain: bool) -> Victim {
        Victim {
            pid: self.pid,
            comm: self.comm_len.map(|n| String::from_utf8_lossy(&self.comm[..n]).into_owned()),
            argv: self.argv.clone(),
            rss_bytes: self.rss_bytes,
            main: self.main,
            source,
            uncertain,
        }
    }
}

fn pidfd_info(fd: &OwnedFd) -> Option<PidfdInfo> {
    let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..PidfdInfo::default() };
    // SAFETY: the kernel writes at most the 64 bytes the request's size names.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), PIDFD_GET_INFO as _, &mut info as *mut PidfdInfo) };
    (r == 0).then_some(info)
}

/// How the process ended, once it has been reaped (kernel 6.15+; earlier ones never set the bit).
fn exit_status(info: PidfdInfo) -> Option<Status> {
    if info.mask & PIDFD_INFO_EXIT == 0 {
        return None;
    }
    Status::from_raw(info.exit_code)
}

/// argv from `/proc/PID/cmdline`, shortened; empty for a zombie or a kernel thread. Read into
/// `buf`, which is on the heap: a 4 KiB frame, inlined into its callers, overflowed a 16 KiB
/// RLIMIT_STACK.
fn cmdline(pid: pid_t, buf: &mut [u8]) -> Vec<String> {
    let n = File::open(format!("/proc/{pid}/cmdline")).and_then(|f| f.read_at(buf, 0)).unwrap_or(0);
    // Each argument ends in a NUL; a full buffer may end mid-argument.
    let text = buf[..n].strip_suffix(&[0]).unwrap_or(&buf[..n]);
    if text.is_empty() {
        return Vec::new();
    }
    crate::record::short_argv(text.split(|&b| b == 0).map(String::from_utf8_lossy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn following(fates: &[(pid_t, Fate)]) -> Victims {
        let mut v = Victims::new(None, None);
        v.tracked.extend(fates.iter().map(|&(pid, fate)| Tracked::gone(pid, fate)));
        // All of them seen before the counter read that settles them.
        v.counting();
        v
    }

    fn named(v: &Victims) -> Vec<(i32, &str, bool)> {
        v.named().iter().map(|x| (x.pid, x.source, x.uncertain)).collect()
    }

    #[test]
    fn a_death_by_sigkill_without_a_new_kill_is_forgotten() {
        let mut v = following(&[(10, Fate::Killed("pidfd")), (11, Fate::Alive), (12, Fate::Vanished)]);
        v.settle(0);
        assert!(v.named().is_empty());
        assert_eq!(v.tracked.iter().map(|t| t.pid).collect::<Vec<_>>(), [11]);
    }

    #[test]
    fn deaths_that_match_the_kills_are_named_for_certain() {
        let mut v = following(&[(10, Fate::Killed("proc")), (11, Fate::Alive), (12, Fate::Killed("pidfd"))]);
        v.settle(2);
        assert_eq!(named(&v), [(10, "proc", false), (12, "pidfd", false)]);
        assert_eq!(v.certain(), 2);
    }

    #[test]
    fn more_deaths_than_kills_are_all_uncertain() {
        let mut v = following(&[(10, Fate::Killed("proc")), (12, Fate::Killed("reaped"))]);
        v.settle(1);
        assert_eq!(named(&v), [(10, "proc", true), (12, "reaped", true)]);
        assert_eq!(v.certain(), 0);
    }

    #[test]
    fn vanished_ones_are_named_only_when_they_match_the_unexplained_kills() {
        let mut v = following(&[(10, Fate::Killed("proc")), (11, Fate::Vanished)]);
        v.settle(2);
        assert_eq!(named(&v), [(10, "proc", false), (11, "vanished", true)]);

        // Two gone without a trace for one unexplained kill: no guess.
        let mut v = following(&[(11, Fate::Vanished), (12, Fate::Vanished)]);
        v.settle(1);
        assert!(v.named().is_empty());
        // An exit that was not a kill never counts.
        let mut v = following(&[(11, Fate::Ended)]);
        v.settle(1);
        assert!(v.named().is_empty());
    }

    #[test]
    fn deaths_seen_after_the_read_wait_unless_they_fit() {
        // One death seen before the read, one after it; the read counted one kill.
        let mut v = following(&[(10, Fate::Killed("proc"))]);
        v.reaped(&[(12, Status::Signaled(libc::SIGKILL))]);
        v.settle(1);
        assert_eq!(named(&v), [(10, "proc", false)]);
        // 12's kill shows at the next read: named then, for certain.
        v.counting();
        v.settle(1);
        assert_eq!(named(&v), [(10, "proc", false), (12, "reaped", false)]);

        // Seen after the read, but the read counted room for it: named now.
        let mut v = following(&[]);
        v.reaped(&[(13, Status::Signaled(libc::SIGKILL))]);
        v.settle(1);
        assert_eq!(named(&v), [(13, "reaped", false)]);

        // Seen after a read that counted nothing, and no kill at the next: not an OOM kill.
        let mut v = following(&[]);
        v.reaped(&[(14, Status::Signaled(libc::SIGKILL))]);
        v.settle(0);
        v.counting();
        v.settle(0);
        assert!(v.named().is_empty() && v.tracked.is_empty());
    }

    #[test]
    fn a_victim_is_named_once() {
        let mut v = following(&[(10, Fate::Killed("proc"))]);
        v.settle(1);
        assert!(v.dying(), "named and not yet seen dead");
        // Its parent, or oominit, reaps it later: nothing new to name at the next kill.
        v.reaped(&[(10, Status::Signaled(libc::SIGKILL))]);
        v.settle(1);
        assert_eq!(named(&v), [(10, "proc", false)]);
        assert!(!v.dying());
    }

    #[test]
    fn an_orphan_oominit_reaps_unseen_is_still_a_death_to_count() {
        let mut v = following(&[]);
        v.reaped(&[(20, Status::Signaled(libc::SIGKILL)), (21, Status::Exited(0))]);
        v.settle(1);
        assert_eq!(named(&v), [(20, "reaped", false)]);
        assert_eq!(v.named()[0].comm, None, "never seen alive: no name is made up");
    }
}
