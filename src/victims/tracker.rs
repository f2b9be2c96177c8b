//! Following the cgroup's processes: who is there (`cgroup.procs`), and for each one its name,
//! argv and size while it lives, and how it ended, read through its `/proc/PID/stat` held open
//! (and a pidfd where the kernel keeps exit statuses for pidfds).
//!
//! What a reader may see of a process's end depends on whether the kernel lets it ptrace the
//! process (fs/proc/array.c, do_task_stat; measured on 6.18):
//!
//! | what | root, or the same uid | another uid without CAP_SYS_PTRACE (a container's root) |
//! | --- | --- | --- |
//! | stat: state, flags (PF_EXITING, PF_SIGNALED), rss, pending (field 31) | yes | yes |
//! | stat: exit code (field 52) | yes | 0 |
//! | status: `ShdPnd`, SIGKILL from the send to the reap | yes | yes |
//! | pidfd: exit status, once reaped (6.15+, `PIDFD_INFO_EXIT`; the pid namespace alone is checked) | yes | yes |
//!
//! So where the exit code is hidden, the process's `status` is held open too, and read when its
//! stat shows a death under way; without it (no descriptor left), PF_SIGNALED or a fatal signal
//! pending says a fatal signal, not which ([`Death::Fatal`]: never named for certain).
//!
//! Following costs descriptors, so it has a fixed budget ([`fd_budget`]) well inside
//! RLIMIT_NOFILE: the init's own job (signals, reaping, `--grace` walking /proc) must never be
//! starved by reporting. Processes beyond it are not followed, and their kills go unnamed.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use nix::libc::{self, pid_t};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::attribution::{Death, Size, Source};
use crate::pidfd::{self, Pidfd};
use crate::procfs;
use crate::procfs::Stat;
use crate::reap::Status;
use crate::record::{ArgvShown, Holder, Victim};

/// Descriptors following may hold at most, whatever RLIMIT_NOFILE allows.
const MAX_FDS: usize = 256;
/// Entries at most, descriptors or not (deaths oominit reaped unseen have none).
const MAX_ENTRIES: usize = 512;
/// `cgroup.procs` read at once: ~1000 pids of 7 digits; a longer list grows the buffer.
const LIST_BYTES: usize = 8192;
/// Of a process's `cmdline`, enough for 16 arguments of 256 bytes (record::short_argv).
const CMDLINE_BYTES: usize = 4096;
/// Entries made room for at start, so that following the usual few processes does not fault.
const PREFAULT_ENTRIES: usize = 64;

/// The descriptors following may hold: a quarter of the soft RLIMIT_NOFILE, [`MAX_FDS`] at most.
/// With `ulimit -n 1024`, 256: 128 processes with pidfds, 256 without.
pub fn fd_budget(nofile: u64) -> usize {
    usize::try_from(nofile / 4).unwrap_or(usize::MAX).min(MAX_FDS)
}

/// Where a followed process is in its life, as oominit saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    Alive,
    /// Seen dead while counter read number `seen` was the latest (see `Victims::settle`).
    Dead {
        death: Death,
        seen: u64,
    },
    /// Named as a victim and still in /proc (dying, or a zombie): kept so that the next listing
    /// does not take it for a new process and name it twice. `holding` while it may still hold
    /// the memory it was killed for.
    Named {
        holding: bool,
    },
}

pub struct Tracked {
    pub pid: pid_t,
    pub main: bool,
    pub state: State,
    /// `/proc/PID/stat`, held open: re-read with pread, no allocation while the cgroup is full.
    stat: Option<File>,
    /// `/proc/PID/status`, held open where the stat hides the exit code (`exit_hidden`): its
    /// `ShdPnd` says SIGKILL to every reader.
    status: Option<File>,
    /// The stat's exit code is hidden from oominit (another uid, no CAP_SYS_PTRACE), as last seen
    /// while the process had a memory map to tell by.
    exit_hidden: bool,
    pidfd: Option<Pidfd>,
    /// The kernel's name for it (at most 16 bytes, 64 for kernel threads), in place rather than a
    /// String: a heap allocation at every look right after a kill is a charge the full cgroup
    /// cannot meet. `comm_len` None: not read yet, or the main process before its exec.
    comm: [u8; 64],
    comm_len: Option<usize>,
    /// It exec'd since its argv was read: read it again at the next listing.
    argv_stale: bool,
    /// Its stat not read yet (the main process): the first read allocates the file's buffer,
    /// a charge, so it waits for a listing, which the headroom rule allows, or its reap.
    pub unread: bool,
    argv: Vec<String>,
    /// Resident memory as last seen alive.
    pub rss_bytes: Option<u64>,
    /// As read when it was first followed: the OOM killer ranks by size shifted by it.
    oom_score_adj: Option<i16>,
}

/// The cgroup's processes, followed.
#[derive(Default)]
pub struct Tracker {
    /// The cgroup's `cgroup.procs`; None without a cgroup.
    procs: Option<File>,
    /// v1: where it is, to open it again for every listing. An open v1 `cgroup.procs` keeps
    /// serving the list it loaded first for a second (cgroup_pidlist_start). On v2 it is held
    /// open, as the other cgroup files are, not to allocate while the cgroup is full.
    reopen: Option<PathBuf>,
    pub entries: Vec<Tracked>,
    main: Option<pid_t>,
    page_size: u64,
    /// Cleared when the kernel has no usable pidfds.
    pidfds: bool,
    /// Where no cgroup notification could be registered: the followed processes' pidfds, each
    /// readable once its process has exited ([`Tracker::watch_deaths`]).
    deaths: Option<Epoll>,
    fd_budget: usize,
    /// How much of an argv to read and keep.
    argv: ArgvShown,
    /// Where `cgroup.procs` is read into, kept between reads.
    buf: Vec<u8>,
    /// Where a `/proc/PID/cmdline` is read into, kept between reads.
    cmdline_buf: Vec<u8>,
}

impl Tracker {
    /// Follow the processes listed in `procs` (a `cgroup.procs`; reopened at every listing when
    /// `reopen`), within `fd_budget` descriptors, reading as much of each argv as `argv` says.
    pub fn new(procs: Option<PathBuf>, reopen: bool, fd_budget: usize, argv: ArgvShown) -> Tracker {
        // SAFETY: sysconf has no preconditions.
        let page_size = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut t = Tracker {
            procs: procs.as_ref().and_then(|p| crate::open::read_only(p).ok()),
            reopen: procs.filter(|_| reopen),
            entries: Vec::new(),
            main: None,
            page_size,
            pidfds: true,
            deaths: None,
            fd_budget,
            argv,
            buf: Vec::new(),
            cmdline_buf: Vec::new(),
        };
        // Where `cgroup.procs` is held open, read it once now: the kernel allocates a seq_file's
        // buffer at its first read (seq_read_iter, charged to the cgroup) and keeps it while the
        // file is open. Only read: following what is there now (where oominit is not PID 1, a
        // whole host's session) would cost a container start for nothing.
        if t.reopen.is_none() {
            t.read_procs();
        }
        t
    }

    /// Touch now, while the cgroup has room, the memory a listing writes to: the first listing
    /// comes as the cgroup nears or reaches its limit, where a page oominit faults in is charged.
    pub fn prefault(&mut self) {
        self.buf.resize(LIST_BYTES, 0);
        self.buf.clear();
        self.cmdline_buf.resize(CMDLINE_BYTES, 0);
        let followed = self.entries.len();
        self.entries.reserve(PREFAULT_ENTRIES);
        self.entries.extend((0..PREFAULT_ENTRIES).map(|_| Tracked::new(0, false, None, None)));
        self.entries.truncate(followed);
    }

    /// Follow the main process, whose argv is the command oominit ran (its own, read now, would
    /// still be oominit's, as would its name and size until it execs).
    pub fn follow_main(&mut self, pid: pid_t, argv: Vec<String>) {
        self.main = Some(pid);
        self.follow(pid, true, Some(argv), 0);
    }

    /// Start following the cgroup's new processes, and read again the argv of those that exec'd.
    /// `reads`: the counter read number to stamp deaths with.
    pub fn list(&mut self, reads: u64) {
        for t in self.entries.iter_mut().filter(|t| t.unread && t.state == State::Alive) {
            t.look(self.page_size, reads);
        }
        self.read_procs();
        for t in self.entries.iter_mut().filter(|t| t.argv_stale && t.state == State::Alive) {
            t.argv = cmdline(t.pid, &mut self.cmdline_buf, self.argv);
            t.argv_stale = t.argv.is_empty() && self.argv != ArgvShown::None;
        }
        // Those whose exit code became hidden since they were followed (a worker that dropped
        // to another uid after it was listed).
        let mut spare = self.fd_budget.saturating_sub(self.fds_held());
        for t in self.entries.iter_mut().filter(|t| t.state == State::Alive && t.exit_hidden) {
            if spare == 0 {
                break;
            }
            if t.status.is_none() && t.hold_status() {
                spare -= 1;
            }
        }
        let text = std::mem::take(&mut self.buf);
        let pids =
            text.split(|b| b.is_ascii_whitespace()).filter_map(|p| std::str::from_utf8(p).ok()?.parse().ok());
        let me = crate::procfs::me() as pid_t;
        for pid in pids {
            // 0: a process outside oominit's PID namespace.
            if pid != 0 && pid != me && !self.entries.iter().any(|t| t.pid == pid) {
                self.follow(pid, false, None, reads);
            }
        }
        self.buf = text;
    }

    /// Look at every process followed through what is open: note the living ones' names and
    /// sizes, and who has died. `reads` is the counter read number to stamp deaths with.
    pub fn look(&mut self, reads: u64) {
        for t in &mut self.entries {
            match t.state {
                State::Alive if t.unread => {}
                State::Alive => t.look(self.page_size, reads),
                State::Named { .. } => t.recheck_named(),
                State::Dead { .. } => {}
            }
        }
    }

    /// `pid`, oominit's child, ended by `status` and is not reaped yet: the last moment its stat
    /// still names it (a zombie keeps its comm). One followed is looked at through its stat held
    /// open. One killed by SIGKILL and never followed (an orphan oominit adopted unseen) has its
    /// stat opened and read now, if `may_open` says so (the headroom rule's call: an open is a
    /// charge) and there is room for an entry; the descriptor is not kept.
    pub fn before_reap(&mut self, pid: pid_t, status: Status, may_open: impl FnOnce() -> bool, reads: u64) {
        if status != Status::Signaled(libc::SIGKILL) {
            return;
        }
        if let Some(t) = self.entries.iter_mut().find(|t| t.pid == pid) {
            if t.state == State::Alive {
                t.look(self.page_size, reads);
            }
            return;
        }
        if self.entries.len() >= MAX_ENTRIES || !may_open() {
            return;
        }
        let Ok(stat) = crate::open::read_only(format!("/proc/{pid}/stat")) else { return };
        let mut t = Tracked::new(pid, self.main == Some(pid), Some(stat), None);
        t.look(self.page_size, reads);
        t.stat = None;
        self.entries.push(t);
    }

    /// oominit reaped these (stamped with read number `reads`).
    pub fn reaped(&mut self, exits: &[(pid_t, Status)], reads: u64) {
        for &(pid, status) in exits {
            let death = match status {
                Status::Signaled(libc::SIGKILL) => Death::Killed(Source::Reaped),
                _ => Death::Other,
            };
            let dead = State::Dead { death, seen: reads };
            let room = self.entries.len() < MAX_ENTRIES;
            match self.entries.iter_mut().find(|t| t.pid == pid) {
                // Named already while it was dying: nothing more to count.
                Some(t) if matches!(t.state, State::Named { .. }) => {
                    t.state = State::Dead { death: Death::Other, seen: 0 }
                }
                Some(t) => t.state = dead,
                // Never seen alive: its name died with it. Still a death by SIGKILL to count.
                None if death != Death::Other && room => {
                    let mut t = Tracked::new(pid, self.main == Some(pid), None, None);
                    t.state = dead;
                    self.entries.push(t);
                }
                None => {}
            }
        }
    }

    /// `cgroup.procs` into `buf` (reopened first on v1; see `reopen`).
    fn read_procs(&mut self) {
        if let Some(path) = &self.reopen {
            self.procs = crate::open::read_only(path).ok();
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

    /// Descriptors held now.
    fn fds_held(&self) -> usize {
        let held = |t: &Tracked| {
            usize::from(t.stat.is_some()) + usize::from(t.status.is_some()) + usize::from(t.pidfd.is_some())
        };
        self.entries.iter().map(held).sum()
    }

    /// Follow `pid` if the budget allows: its stat first, a pidfd if one more descriptor fits.
    /// Returns whether it is followed.
    fn follow(&mut self, pid: pid_t, main: bool, argv: Option<Vec<String>>, reads: u64) -> bool {
        let held = self.fds_held();
        if self.entries.len() >= MAX_ENTRIES || held >= self.fd_budget {
            return false;
        }
        let Ok(stat) = crate::open::read_only(format!("/proc/{pid}/stat")) else { return false };
        let mut t = Tracked::new(pid, main, Some(stat), None);
        // The main process is mid-exec here (oominit resumes as the exec replaces the child's
        // memory): its name and size are not yet the command's, and a read of its stat waits
        // for the exec to end (330 us of every start). Its first look is at the first listing.
        t.unread = main;
        let page_size = self.page_size;
        let look = |t: &mut Tracked| {
            if !main {
                t.look(page_size, reads);
            }
        };
        // Its name before its argv, and again after: a process listed between fork and exec
        // (a shell's child, say) could have its argv read before the exec and its name after;
        // a name that changed in between drops the argv, to be read again at the next listing.
        look(&mut t);
        // Where its exit code is hidden, its status is worth more than a pidfd: it tells a
        // SIGKILL from the send on, a pidfd only after the reap.
        let mut held = held.saturating_add(1);
        if t.exit_hidden && held < self.fd_budget && t.hold_status() {
            held = held.saturating_add(1);
        }
        if self.pidfds && held < self.fd_budget {
            t.pidfd = self.pidfd(pid);
        }
        t.argv = argv.unwrap_or_else(|| cmdline(pid, &mut self.cmdline_buf, self.argv));
        // Listed mid-exec, a process has its new name and no argv yet (the kernel sets the
        // arguments' place in the new memory after the name): read again at the next listing.
        t.argv_stale = t.argv.is_empty() && self.argv != ArgvShown::None;
        t.oom_score_adj = oom_score_adj(pid);
        look(&mut t);
        self.entries.push(t);
        true
    }

    /// A pidfd for `pid`; the first failure that shows the kernel has none turns them off. Kept
    /// to wake on its exit where deaths are watched, else only where it can tell an exit status.
    fn pidfd(&mut self, pid: pid_t) -> Option<Pidfd> {
        let fd = Pidfd::open(pid).and_then(|fd| match &self.deaths {
            Some(deaths) => {
                // Without it, the death is still seen at the next wake, reap or exit.
                let _ = deaths.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, fd.as_fd().as_raw_fd() as u64));
                Ok(fd)
            }
            None => fd.answers_info().map(|_| fd),
        });
        fd.map_err(|e| {
            if pidfd::unsupported(e) {
                // Nothing was added to a set of deaths either: it would never wake.
                self.pidfds = false;
                self.deaths = None;
            }
        })
        .ok()
    }

    /// Wake on the followed processes' exits, through their pidfds (the ones followed so far
    /// get theirs now, within the budget). For a cgroup that gives no notification (v1 behind a
    /// read-only cgroupfs, as Docker mounts it): a worker's death is then the moment to look at
    /// it, while its zombie still names it. Where the kernel has no pidfds nothing would ever
    /// wake: [`Tracker::deaths_fd`] stays None.
    pub fn watch_deaths(&mut self) {
        let Ok(deaths) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else { return };
        self.deaths = Some(deaths);
        for i in 0..self.entries.len() {
            let Some(t) = self.entries.get(i) else { break };
            if t.state != State::Alive || t.pidfd.is_some() || self.fds_held() >= self.fd_budget {
                continue;
            }
            let pid = t.pid;
            let fd = self.pidfd(pid);
            if let Some(t) = self.entries.get_mut(i) {
                t.pidfd = fd;
            }
        }
    }

    pub fn deaths_fd(&self) -> Option<BorrowedFd<'_>> {
        self.deaths.as_ref().map(|e| e.0.as_fd())
    }

    /// The deaths that woke: taken out of the set (an exited process's pidfd stays readable), the
    /// pidfds kept for their exit status. The looks that follow see the deaths themselves.
    pub fn take_deaths(&mut self) {
        let Some(deaths) = &self.deaths else { return };
        let mut events = [EpollEvent::empty(); 16];
        // Bounded, like everything it holds.
        for _ in 0..=MAX_FDS / events.len() {
            let Ok(n) = deaths.wait(&mut events, EpollTimeout::ZERO) else { break };
            for ev in events.iter().take(n) {
                let fd = ev.data();
                let mut pidfds = self.entries.iter().filter_map(|t| t.pidfd.as_ref());
                if let Some(pidfd) = pidfds.find(|p| p.as_fd().as_raw_fd() as u64 == fd) {
                    let _ = deaths.delete(pidfd);
                }
            }
            if n < events.len() {
                break;
            }
        }
    }
}

impl Tracked {
    fn new(pid: pid_t, main: bool, stat: Option<File>, pidfd: Option<Pidfd>) -> Tracked {
        Tracked {
            pid,
            main,
            state: State::Alive,
            stat,
            status: None,
            exit_hidden: false,
            pidfd,
            comm: [0; 64],
            comm_len: None,
            argv_stale: false,
            unread: false,
            argv: Vec::new(),
            rss_bytes: None,
            oom_score_adj: None,
        }
    }

    /// What the OOM killer would rank it by, as last seen alive.
    pub fn size(&self) -> Option<Size> {
        Some(Size { rss_bytes: self.rss_bytes?, oom_score_adj: self.oom_score_adj? })
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
        self.state = match self.read_stat(&mut buf).and_then(procfs::stat) {
            Some(s) => State::Named { holding: !s.dead },
            None => State::Dead { death: Death::Other, seen: 0 },
        };
    }

    /// Re-read the stat: note the name and size while the process lives, and how it ends.
    fn look(&mut self, page_size: u64, reads: u64) {
        self.unread = false;
        let mut buf = [0u8; 1024];
        let Some(s) = self.read_stat(&mut buf).and_then(procfs::stat) else {
            // Reaped (ESRCH): only the pidfd can still say how it ended.
            let death = match self.pidfd.as_ref().and_then(Pidfd::exit_status) {
                Some(Status::Signaled(libc::SIGKILL)) => Death::Killed(Source::Pidfd),
                Some(_) => Death::Other,
                None => Death::Vanished,
            };
            self.state = State::Dead { death, seen: reads };
            return;
        };
        if let Some(shown) = s.exit_code_shown {
            self.exit_hidden = !shown;
        }
        // Even as it exits: a zombie keeps the name of its last exec, which may be later than the
        // last look (where only exits wake oominit, a worker that exec'd after it was listed).
        let len = s.comm.len().min(self.comm.len());
        // A new name is an exec since the argv was read: the argv is dropped, not guessed.
        if self.comm_len.is_some_and(|old| self.comm[..old] != s.comm.as_bytes()[..len]) {
            self.argv.clear();
            self.argv_stale = true;
        }
        self.comm[..len].copy_from_slice(&s.comm.as_bytes()[..len]);
        self.comm_len = Some(len);
        // An exiting process is losing the memory it was killed for: its last size alive stands.
        if !s.exiting {
            self.rss_bytes = Some(s.rss_pages.saturating_mul(page_size));
        }
        let shared =
            if self.exit_hidden && (s.exiting || s.fatal_pending) { self.shared_sigkill() } else { None };
        let death = match fate(&s, self.exit_hidden, shared) {
            Fate::Undecided => return,
            Fate::Killed => Death::Killed(Source::Proc),
            Fate::Fatal => Death::Fatal,
            Fate::Other => Death::Other,
        };
        self.state = State::Dead { death, seen: reads };
    }

    /// Its size as last seen alive, with its name; None if never seen alive.
    pub fn holder(&self) -> Option<Holder> {
        Some(Holder { pid: self.pid, comm: self.comm(), rss_bytes: self.rss_bytes? })
    }

    fn comm(&self) -> Option<String> {
        self.comm_len.map(|n| String::from_utf8_lossy(&self.comm[..n]).into_owned())
    }

    /// Open its status and read it once: the kernel allocates the file's buffer at the first
    /// read, charged to the cgroup, and keeps it for the later reads. Whether it is held.
    fn hold_status(&mut self) -> bool {
        self.status = crate::open::read_only(format!("/proc/{}/status", self.pid)).ok();
        self.shared_sigkill();
        self.status.is_some()
    }

    /// Whether its status shows SIGKILL in the shared pending set (None: not held, or not read).
    /// Not inlined: its buffer stays off the frames of its callers.
    #[inline(never)]
    fn shared_sigkill(&self) -> Option<bool> {
        // `ShdPnd` comes about 650 bytes in, after the groups.
        let mut buf = [0u8; 2048];
        let n = self.status.as_ref()?.read_at(&mut buf, 0).ok()?;
        let bytes = buf.get(..n)?;
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(bytes.get(..e.valid_up_to())?).ok()?,
        };
        procfs::shared_sigkill(text)
    }

    /// As a victim. One that nothing names (not the main process, no comm, no argv: never seen
    /// alive, nor as a zombie) is never named for certain: `unnamed` counts its kill.
    pub fn victim(&self, source: Source, uncertain: bool) -> Victim {
        let nameless = !self.main && self.comm_len.is_none() && self.argv.is_empty();
        Victim {
            pid: self.pid,
            comm: self.comm(),
            argv: self.argv.clone(),
            rss_bytes: self.rss_bytes,
            main: self.main,
            source,
            uncertain: uncertain || nameless,
        }
    }

    #[cfg(test)]
    pub fn dead(pid: pid_t, death: Death, seen: u64) -> Tracked {
        let mut t = Tracked { state: State::Dead { death, seen }, ..Tracked::new(pid, false, None, None) };
        t.comm[0] = b'w';
        t.comm_len = Some(1);
        t
    }

    #[cfg(test)]
    pub fn alive(pid: pid_t) -> Tracked {
        Tracked::new(pid, false, None, None)
    }
}

/// What a look says of a followed process's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Alive, or nothing to tell yet.
    Undecided,
    /// By SIGKILL.
    Killed,
    /// By a fatal signal, which one unknown.
    Fatal,
    /// Some other way.
    Other,
}

/// The fate a look reads from its stat `s`, whether the stat hides the exit code from oominit
/// (`hidden`), and its status's `ShdPnd` where read (`shared_sigkill`: whether it holds SIGKILL).
pub fn fate(s: &Stat<'_>, hidden: bool, shared_sigkill: Option<bool>) -> Fate {
    let dying = s.exiting || s.fatal_pending;
    match shared_sigkill {
        Some(true) => Fate::Killed,
        // A SIGKILL sent stays in ShdPnd until the reap: this death is by something else.
        Some(false) if dying => Fate::Other,
        _ if !hidden && s.exit_code == Some(libc::SIGKILL) => Fate::Killed,
        // A fatal signal pending, the exit code not set yet: taken for SIGKILL where the exit
        // code is shown (the one the OOM killer sends; the code will say more at the next look).
        _ if !hidden && s.fatal_pending => Fate::Killed,
        _ if hidden && (s.fatal_pending || (s.exiting && s.signaled)) => Fate::Fatal,
        _ => Fate::Undecided,
    }
}

/// `/proc/PID/oom_score_adj` (read into a buffer on the stack: the kernel formats it without
/// allocating either).
fn oom_score_adj(pid: pid_t) -> Option<i16> {
    let mut buf = [0u8; 16];
    let n = crate::open::read_only(format!("/proc/{pid}/oom_score_adj"))
        .and_then(|f| f.read_at(&mut buf, 0))
        .ok()?;
    std::str::from_utf8(buf.get(..n)?).ok()?.trim().parse().ok()
}

/// argv from `/proc/PID/cmdline`, shortened; empty for a zombie or a kernel thread. Read into
/// `buf`, which is on the heap (a 4 KiB frame, inlined into its callers, overflowed a 16 KiB
/// RLIMIT_STACK) and made here where `prefault` did not make it (no limit of its own: nothing
/// oominit allocates is charged at a limit there).
fn cmdline(pid: pid_t, buf: &mut Vec<u8>, shown: ArgvShown) -> Vec<String> {
    if shown == ArgvShown::None {
        return Vec::new();
    }
    if buf.len() < CMDLINE_BYTES {
        buf.resize(CMDLINE_BYTES, 0);
    }
    let n =
        crate::open::read_only(format!("/proc/{pid}/cmdline")).and_then(|f| f.read_at(buf, 0)).unwrap_or(0);
    // Each argument ends in a NUL; a full buffer may end mid-argument.
    let text = buf[..n].strip_suffix(&[0]).unwrap_or(&buf[..n]);
    if text.is_empty() {
        return Vec::new();
    }
    crate::record::short_argv(text.split(|&b| b == 0).map(String::from_utf8_lossy), shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_descriptor_budget_stays_well_inside_the_limit() {
        for (nofile, budget) in [(16, 4), (1024, 256), (1_048_576, MAX_FDS), (u64::MAX, MAX_FDS), (0, 0)] {
            assert_eq!(fd_budget(nofile), budget, "RLIMIT_NOFILE {nofile}");
        }
    }

    #[test]
    fn the_main_process_is_first_read_at_a_listing_not_at_a_look() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let mut t = Tracker::new(None, false, 16, ArgvShown::All);
        t.follow_main(child.id() as pid_t, vec!["sleep".into(), "5".into()]);
        t.look(1);
        assert!(t.entries[0].unread && t.entries[0].comm().is_none(), "a look makes no first read");
        t.list(1);
        assert!(!t.entries[0].unread);
        assert_eq!(t.entries[0].comm().as_deref(), Some("sleep"));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn following_stops_at_the_descriptor_budget() {
        let mut children: Vec<_> =
            (0..6).map(|_| std::process::Command::new("sleep").arg("5").spawn().unwrap()).collect();
        let mut t = Tracker::new(None, false, 5, ArgvShown::All);
        for c in &children {
            t.follow(c.id() as pid_t, false, None, 0);
        }
        assert!(t.fds_held() <= 5, "{} descriptors held", t.fds_held());
        assert!(t.entries.len() >= 2, "some are followed: {}", t.entries.len());
        assert!(t.entries.iter().all(|e| e.stat.is_some()), "never a pidfd without a stat");
        for c in &mut children {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    #[test]
    fn what_a_look_tells_of_an_end() {
        let st = |exiting, dead, fatal_pending, signaled, exit_code| Stat {
            comm: "w",
            rss_pages: 0,
            exiting,
            dead,
            fatal_pending,
            signaled,
            exit_code: Some(exit_code),
            exit_code_shown: None,
        };
        let alive = st(false, false, false, false, 0);
        let pending = st(false, false, true, false, 0);
        let exiting = st(true, false, false, true, 0);
        let exiting_unsignaled = st(true, false, false, false, 0);
        let zombie9 = st(true, true, false, true, 9);
        let zombie15 = st(true, true, false, true, 15);
        let zombie_hidden = st(true, true, false, true, 0);
        use Fate::*;
        const SHOWN: bool = false;
        const HIDDEN: bool = true;
        #[rustfmt::skip]
        let rows: &[(&str, &Stat<'_>, bool, Option<bool>, Fate)] = &[
            ("alive", &alive, SHOWN, None, Undecided),
            ("alive, another uid's", &alive, HIDDEN, Some(false), Undecided),
            ("a fatal signal pending, the exit code shown: the OOM killer's SIGKILL, as before", &pending, SHOWN, None, Killed),
            ("a zombie whose exit code says SIGKILL", &zombie9, SHOWN, None, Killed),
            ("a zombie whose exit code says SIGTERM: not yet decided here, the reap tells", &zombie15, SHOWN, None, Undecided),
            ("another uid's, SIGKILL in ShdPnd while pending", &pending, HIDDEN, Some(true), Killed),
            ("another uid's, exiting, SIGKILL in ShdPnd (the issue's case)", &exiting, HIDDEN, Some(true), Killed),
            ("another uid's zombie, SIGKILL in ShdPnd", &zombie_hidden, HIDDEN, Some(true), Killed),
            ("another uid's zombie, ShdPnd without SIGKILL: a SIGTERM, say", &zombie_hidden, HIDDEN, Some(false), Other),
            ("another uid's, a fatal signal pending, ShdPnd without SIGKILL", &pending, HIDDEN, Some(false), Other),
            ("another uid's, exiting after exit(0): ShdPnd empty", &exiting_unsignaled, HIDDEN, Some(false), Other),
            ("another uid's, exiting with PF_SIGNALED, no status held: a fatal signal", &exiting, HIDDEN, None, Fatal),
            ("another uid's, a fatal signal pending, no status held", &pending, HIDDEN, None, Fatal),
            ("another uid's zombie with PF_SIGNALED, no status held", &zombie_hidden, HIDDEN, None, Fatal),
            ("another uid's, exiting without PF_SIGNALED, no status: undecided", &exiting_unsignaled, HIDDEN, None, Undecided),
            ("another uid's exit code reads 0: never taken for an exit code", &zombie_hidden, HIDDEN, None, Fatal),
        ];
        for (situation, s, hidden, shared, want) in rows {
            assert_eq!(fate(s, *hidden, *shared), *want, "{situation}");
        }
    }

    #[test]
    fn a_live_process_is_seen_with_its_name_argv_and_size() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        // Past its exec (listed between fork and exec, its argv would be dropped as stale).
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut t = Tracker::new(None, false, 8, ArgvShown::All);
        assert!(t.follow(child.id() as pid_t, false, None, 0));
        let e = &t.entries[0];
        let v = e.victim(Source::Proc, false);
        assert_eq!(
            (v.comm.as_deref(), v.argv.as_slice()),
            (Some("sleep"), ["sleep".to_string(), "5".into()].as_slice())
        );
        assert!(v.rss_bytes.is_some_and(|r| r > 0));
        assert_eq!(e.state, State::Alive);
        child.kill().unwrap();
        // Killed and not yet reaped: a zombie whose stat says SIGKILL.
        std::thread::sleep(std::time::Duration::from_millis(50));
        t.look(3);
        assert_eq!(t.entries[0].state, State::Dead { death: Death::Killed(Source::Proc), seen: 3 });
        child.wait().unwrap();
    }
}
