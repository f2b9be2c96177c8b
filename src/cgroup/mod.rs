//! The container's memory cgroup: where it is, its OOM counters and memory figures, and how to be
//! woken when they change. v1 and v2 stay apart behind this one small interface (as in youki's
//! libcgroups): [`Cgroup::counters`], [`Cgroup::memory`], [`Cgroup::watch`].

pub mod discover;
pub mod keyed;
mod v1;
mod v2;

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Version {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v2")]
    V2,
}

impl Version {
    fn fs_name(self) -> &'static str {
        match self {
            Version::V1 => "cgroup (v1)",
            Version::V2 => "cgroup2",
        }
    }
}

/// This process's memory cgroup, with its files held open.
///
/// Why open once: the moment to read them is the moment the cgroup is full. Opening a cgroup file
/// and its first read allocate kernel memory (the file, the seq_file buffer) charged to this very
/// cgroup; seen on this project's 6.18 machine, that allocation started a second OOM that killed
/// oominit itself. A held-open file re-read with pread at offset 0 reuses its buffer.
#[derive(Debug)]
pub struct Cgroup {
    pub version: Version,
    pub dir: PathBuf,
    files: Vec<(&'static str, fs::File)>,
}

/// OOM counters, as read. Fields a version lacks stay `None` and are left out of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Processes of this cgroup (and below) killed by any OOM killer, host-wide included.
    pub oom_kill: Option<u64>,
    /// v2: times this cgroup's own limit was hit and the OOM killer was about to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom: Option<u64>,
    /// v2: group kills (`memory.oom.group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_group_kill: Option<u64>,
    /// v2: times usage reached `memory.max` (reclaim began; not yet a kill).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u64>,
    /// v2: times usage passed `memory.high`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<u64>,
    /// v1: times usage reached `memory.limit_in_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failcnt: Option<u64>,
    /// v1: times memory+swap reached `memory.memsw.limit_in_bytes`. The kernel charges memsw
    /// first, so with both limits set (Docker sets both) an OOM may raise only this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memsw_failcnt: Option<u64>,
    /// v1: the high-water mark of memory (or memory+swap) reached its limit, within one charge
    /// batch. Not a counter: the state now. Needed because kernels that stopped tracking the
    /// memsw failcnt (6.18 here) leave no other trace of a memory+swap limit OOM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_at_limit: Option<bool>,
}

impl Counters {
    /// How much each counter rose since `base`. A counter that went down (a cgroup recreated
    /// under the same path) counts from zero rather than underflowing.
    pub fn since(&self, base: &Counters) -> Counters {
        let d = |now: Option<u64>, then: Option<u64>| now.map(|n| n.saturating_sub(then.unwrap_or(0)));
        Counters {
            oom_kill: d(self.oom_kill, base.oom_kill),
            oom: d(self.oom, base.oom),
            oom_group_kill: d(self.oom_group_kill, base.oom_group_kill),
            max: d(self.max, base.max),
            high: d(self.high, base.high),
            failcnt: d(self.failcnt, base.failcnt),
            memsw_failcnt: d(self.memsw_failcnt, base.memsw_failcnt),
            peak_at_limit: self.peak_at_limit,
        }
    }

    /// Processes killed. A group kill (`memory.oom.group`) counts its first victim twice: the
    /// kernel kills it, then kills every member of the group, the victim included
    /// (mm/oom_kill.c, oom_kill_memcg_member), once per `oom_group_kill`. Seen in the VM on 6.1:
    /// three processes killed, `oom_kill 4`, `oom_group_kill 1`.
    pub fn kills(&self) -> u64 {
        self.oom_kill.unwrap_or(0).saturating_sub(self.oom_group_kill.unwrap_or(0))
    }

    /// Did this cgroup hit its own limit? v2 `oom`; v1 either `failcnt`, or its peak.
    pub fn hit_own_limit(&self) -> bool {
        [self.oom, self.failcnt, self.memsw_failcnt].iter().any(|c| c.unwrap_or(0) > 0)
            || self.peak_at_limit == Some(true)
    }
}

/// Memory figures of the cgroup, each `None` when the kernel does not offer it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Memory {
    /// None when unlimited.
    pub limit_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
}

/// What wakes the event loop when the counters may have changed.
pub enum Watch {
    /// v2: inotify on `memory.events`, which the kernel modifies on every counter change.
    Inotify(nix::sys::inotify::Inotify),
    /// v1: an eventfd registered through `cgroup.event_control`; it also holds the
    /// `memory.oom_control` descriptor the registration names.
    EventFd(OwnedFd, fs::File),
}

impl Watch {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Watch::Inotify(i) => i.as_fd(),
            Watch::EventFd(e, _) => e.as_fd(),
        }
    }

    /// Consume the wake-up so the level-triggered epoll does not report it again. Into a small
    /// stack buffer, nothing allocated: this runs while the cgroup is at its limit (v2 wakes on
    /// every `max` event), when a fresh page for oominit is a charge the cgroup cannot meet, and
    /// oominit itself would set off the OOM killer. nix's `read_events` builds a Vec.
    pub fn drain(&self) {
        // An inotify event on a watched file (no name) is 16 bytes; an eventfd read is 8.
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(self.fd(), &mut buf), Ok(n) if n > 0) {}
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Watch::Inotify(_) => "inotify on memory.events",
            Watch::EventFd(..) => "eventfd on memory.oom_control",
        }
    }
}

/// A /proc file in one read where it fits: std's `read_to_string` probes a size-0 proc file with
/// 32-byte reads, eight syscalls and as many reallocations for a mountinfo, at every container start.
fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(16 * 1024);
    fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

impl Cgroup {
    /// Find this process's memory cgroup, or say why there is none.
    pub fn discover() -> Result<Cgroup, String> {
        let read = |p: &str| read_proc(p).map_err(|e| format!("reading {p}: {e}"));
        let proc_cgroup = read("/proc/self/cgroup")?;
        let (version, path) = discover::memory_path(&proc_cgroup)
            .ok_or_else(|| "no memory controller in /proc/self/cgroup".to_string())?;
        let mounts = discover::parse_mountinfo(&read("/proc/self/mountinfo")?);
        let dir = discover::locate(version, path, &mounts)?;
        Cgroup::open(version, dir)
    }

    /// Open the counters file of the cgroup at `dir`, which must be there (on v2 the directory
    /// exists even where the memory controller is not enabled for it). The rest waits for
    /// [`Cgroup::open_figures`]: only the baseline has to be read before the command starts.
    pub fn open(version: Version, dir: PathBuf) -> Result<Cgroup, String> {
        let (counters, more) = match version {
            Version::V1 => (v1::OOM_CONTROL, v1::COUNTERS),
            Version::V2 => (v2::EVENTS, v2::COUNTERS),
        };
        let path = dir.join(counters);
        let first = fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut cg = Cgroup { version, dir, files: vec![(counters, first)] };
        cg.open_optional(more);
        Ok(cg)
    }

    /// Open the other files read during an OOM and at exit; each is optional (`memory.peak` is
    /// new in 5.19, memsw files need swap accounting).
    pub fn open_figures(&mut self) {
        self.open_optional(match self.version {
            Version::V1 => v1::FILES,
            Version::V2 => v2::FILES,
        });
    }

    fn open_optional(&mut self, names: &[&'static str]) {
        let dir = &self.dir;
        self.files
            .extend(names.iter().filter_map(|&name| fs::File::open(dir.join(name)).ok().map(|f| (name, f))));
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Re-read a held-open file from offset 0 into `buf`; the text, or an error.
    fn read<'b>(&self, name: &str, buf: &'b mut [u8; 1024]) -> std::io::Result<&'b str> {
        let (_, f) = self
            .files
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, name.to_string()))?;
        let n = std::os::unix::fs::FileExt::read_at(f, buf, 0)?;
        std::str::from_utf8(&buf[..n]).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    fn number(&self, name: &str) -> Option<Option<u64>> {
        let mut buf = [0u8; 1024];
        self.read(name, &mut buf).ok().and_then(keyed::single)
    }

    pub fn counters(&self) -> std::io::Result<Counters> {
        match self.version {
            Version::V1 => v1::counters(self),
            Version::V2 => v2::counters(self),
        }
    }

    /// v1 only (None on v2, where `oom` says it): see [`Counters::peak_at_limit`].
    pub fn limit_reached(&self) -> Option<bool> {
        match self.version {
            Version::V1 => Some(v1::limit_reached(self)),
            Version::V2 => None,
        }
    }

    pub fn memory(&self) -> Memory {
        match self.version {
            Version::V1 => v1::memory(self),
            Version::V2 => v2::memory(self),
        }
    }

    /// Register for wake-ups, or say why not (EROFS on Docker's read-only cgroupfs, say).
    pub fn watch(&self) -> Result<Watch, String> {
        match self.version {
            Version::V1 => v1::watch(self),
            Version::V2 => v2::watch(self),
        }
    }

    /// v1: an eventfd for usage nearing the limit (see `v1::early_warning`). v2 needs none:
    /// its `max` events come through the same watch as the kills.
    pub fn early_warning(&self) -> Option<(OwnedFd, u64)> {
        match self.version {
            Version::V1 => v1::early_warning(self),
            Version::V2 => None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}
