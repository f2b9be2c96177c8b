//! The container's memory cgroup: where it is, its OOM counters and memory figures, and how to be
//! woken when they change. v1 and v2 stay apart behind this one small interface (as in youki's
//! libcgroups): [`Cgroup::counters`], [`Cgroup::memory`], [`Cgroup::watch`], and the
//! [`Watch`]'s own methods, which keep each version's notification quirks out of the callers.

mod ancestor;
pub mod breakdown;
pub mod discover;
mod error;
pub mod keyed;
mod v1;
mod v2;
mod watch;

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use ancestor::Ancestor;
pub use breakdown::Breakdown;
pub use error::CgroupError;
pub use watch::{Wake, Watch};

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

/// `memory.stat`, on both versions.
const STAT: &str = "memory.stat";
/// Enough for `memory.stat`: about 1 KiB on v1 and v2 (6.1 to 6.18) with 20-digit values.
const STAT_BYTES: usize = 4096;

/// This process's memory cgroup, with its files held open.
///
/// Why open once: the moment to read them is the moment the cgroup is full. Opening a cgroup file
/// and its first read allocate kernel memory (the file, the seq_file buffer) charged to this very
/// cgroup, and such a charge at the limit starts an OOM kill of its own. A held-open file re-read
/// with pread at offset 0 reuses its buffer.
#[derive(Debug)]
pub struct Cgroup {
    pub version: Version,
    pub dir: PathBuf,
    files: Vec<(&'static str, fs::File)>,
    /// Where `memory.stat` is read into: touched at start, as a read at the limit must not fault.
    stat_buf: Vec<u8>,
    /// A lower limit above it, found with the figures.
    ancestor: Option<Ancestor>,
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
    /// The high-water mark reached the limit; read once a kill is seen. Not a counter: the state
    /// now. v1: memory (or memory+swap), within one charge batch: kernels that stopped tracking
    /// the memsw failcnt (6.18 here) leave no other trace of a memory+swap limit OOM. v2
    /// (`memory.peak`, 5.19+): within 2 MiB or 1/64 of the limit, for a parent whose limit
    /// equals the container's (Kubernetes' pod of one container) runs out first, its other
    /// charges (the pause container's) on top, and raises no `oom` here.
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
    /// (mm/oom_kill.c, oom_kill_memcg_member), once per `oom_group_kill`.
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
    /// Bytes below a lower limit above the cgroup (see [`ancestor`]), where there is one.
    #[serde(skip)]
    pub ancestor_free: Option<u64>,
}

impl Memory {
    /// Bytes below the limit that comes first, the cgroup's own or an ancestor's; None when
    /// unknown (no limit: never full).
    pub fn free(&self) -> Option<u64> {
        let own = self.limit_bytes.zip(self.usage_bytes).map(|(limit, usage)| limit.saturating_sub(usage));
        match (own, self.ancestor_free) {
            (Some(own), Some(above)) => Some(own.min(above)),
            (own, above) => own.or(above),
        }
    }
}

/// How much of `cgroup.procs` is read to find this process in the cgroup's usual place.
const PROCS_BYTES: usize = 16 * 1024;

/// The most of a /proc file discovery reads: a host's mountinfo with some 10,000 mounts.
const PROC_BYTES: u64 = 2 << 20;

/// A /proc file in one read where it fits. std's `read_to_string` of a `File` asks its size
/// first (fstat, lseek: a proc file says 0), then probes with 32-byte reads, eight syscalls and
/// as many reallocations for a mountinfo, at every container start. Through `take`, neither.
fn read_proc(path: &str) -> Result<String, CgroupError> {
    use std::io::Read;
    let mut text = String::with_capacity(16 * 1024);
    crate::open::read_only(path)
        .and_then(|f| f.take(PROC_BYTES).read_to_string(&mut text))
        .map_err(|e| CgroupError::io("reading", path, e))?;
    Ok(text)
}

impl Cgroup {
    /// Find this process's memory cgroup, or say why there is none.
    pub fn discover() -> Result<Cgroup, CgroupError> {
        let proc_cgroup = read_proc("/proc/self/cgroup")?;
        let (version, path) = discover::memory_path(&proc_cgroup).ok_or(CgroupError::NoController)?;
        let usual = match version {
            Version::V1 => discover::USUAL_V1,
            Version::V2 => discover::USUAL_V2,
        };
        // The first 16 KiB: where a crowded cgroup lists this process later, mountinfo decides.
        let procs = |p: &std::path::Path| {
            use std::io::Read;
            let mut text = String::with_capacity(PROCS_BYTES);
            let f = crate::open::read_only(p).ok()?;
            f.take(PROCS_BYTES as u64).read_to_string(&mut text).ok()?;
            Some(text)
        };
        // The counters' file opens only where the controller is: else mountinfo decides.
        let found = discover::usual_place(usual, path, crate::procfs::me(), procs)
            .and_then(|dir| Cgroup::open(version, dir).ok());
        if let Some(cg) = found {
            return Ok(cg);
        }
        let mounts = discover::parse_mountinfo(&read_proc("/proc/self/mountinfo")?);
        let dir = discover::locate(version, path, &mounts)?;
        Cgroup::open(version, dir)
    }

    /// Open the counters file of the cgroup at `dir`, which must be there (on v2 the directory
    /// exists even where the memory controller is not enabled for it). The rest waits for
    /// [`Cgroup::open_figures`]: only the baseline has to be read before the command starts.
    pub fn open(version: Version, dir: PathBuf) -> Result<Cgroup, CgroupError> {
        let (counters, more) = match version {
            Version::V1 => (v1::OOM_CONTROL, v1::COUNTERS),
            Version::V2 => (v2::EVENTS, v2::COUNTERS),
        };
        let path = dir.join(counters);
        let first = crate::open::read_only(&path).map_err(|e| CgroupError::io("opening", path, e))?;
        let mut cg =
            Cgroup { version, dir, files: vec![(counters, first)], stat_buf: Vec::new(), ancestor: None };
        cg.open_optional(more);
        Ok(cg)
    }

    /// Open the other files read during an OOM and at exit; each is optional (`memory.peak` is
    /// new in 5.19, memsw files need swap accounting). Returns the figures, read on the way.
    pub fn open_figures(&mut self) -> Memory {
        let opened = self.files.len();
        let (files, figures) = match self.version {
            Version::V1 => (v1::FILES, v1::FIGURES),
            Version::V2 => (v2::FILES, v2::FIGURES),
        };
        self.open_optional(files);
        // A file's first read makes the kernel's buffer for it (a seq_file's page), charged to
        // the cgroup: now, with room. Seen without it (v1, 6.18): the first read of
        // memory.memsw.max_usage_in_bytes came at a kill. The figures and memory.stat are read
        // below.
        for (name, f) in self.files.get(opened..).unwrap_or_default() {
            if *name != STAT && !figures.contains(name) {
                let _ = std::os::unix::fs::FileExt::read_at(f, &mut [0u8; 1], 0);
            }
        }
        let own = self.own_figures();
        let mut buf = vec![0; STAT_BYTES];
        let stat = self.read(STAT, &mut buf).ok();
        self.ancestor = Ancestor::find(self.version, &self.dir, own.limit_bytes, stat);
        self.stat_buf = buf;
        if let Some(a) = &self.ancestor {
            crate::diag!(2, "a lower limit above the cgroup: {} bytes", a.limit());
        }
        // The ancestor's usage file: its first read.
        self.with_ancestor(own)
    }

    fn open_optional(&mut self, names: &[&'static str]) {
        let dir = &self.dir;
        self.files.extend(
            names.iter().filter_map(|&name| crate::open::read_only(dir.join(name)).ok().map(|f| (name, f))),
        );
    }

    /// A file held open, by name.
    fn held(&self, name: &str) -> Option<&fs::File> {
        self.files.iter().find(|(n, _)| *n == name).map(|(_, f)| f)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Re-read a held-open file from offset 0 into `buf`: its text.
    fn read<'b>(&self, name: &str, buf: &'b mut [u8]) -> Result<&'b str, CgroupError> {
        let Some(f) = self.held(name) else {
            return Err(CgroupError::NotOpen(self.file(name)));
        };
        let n = std::os::unix::fs::FileExt::read_at(f, buf, 0)
            .map_err(|e| CgroupError::io("reading", self.file(name), e))?;
        std::str::from_utf8(&buf[..n]).map_err(|_| CgroupError::Malformed(self.file(name)))
    }

    /// A single-value file: `Some(None)` for `max`, None when it cannot be read.
    fn number(&self, name: &str) -> Option<Option<u64>> {
        let mut buf = [0u8; 1024];
        self.read(name, &mut buf).ok().and_then(keyed::single)
    }

    /// Processes killed so far ([`Counters::kills`]), from the counters file alone: one read
    /// where [`Cgroup::counters`] makes three on v1.
    pub fn kills(&self) -> Option<u64> {
        let mut buf = [0u8; 1024];
        let (name, group) = match self.version {
            Version::V1 => (v1::OOM_CONTROL, false),
            Version::V2 => (v2::EVENTS, true),
        };
        let text = self.read(name, &mut buf).ok()?;
        let group_kills = if group { keyed::get(text, "oom_group_kill") } else { None };
        Some(
            Counters {
                oom_kill: keyed::get(text, "oom_kill"),
                oom_group_kill: group_kills,
                ..Counters::default()
            }
            .kills(),
        )
    }

    pub fn counters(&self) -> Result<Counters, CgroupError> {
        match self.version {
            Version::V1 => v1::counters(self),
            Version::V2 => v2::counters(self),
        }
    }

    /// What fills the cgroup now (`memory.stat`), or None where it cannot be read.
    pub fn breakdown(&mut self) -> Option<Breakdown> {
        let mut buf = std::mem::take(&mut self.stat_buf);
        let b = self.read(STAT, &mut buf).ok().map(|stat| match self.version {
            Version::V1 => v1::breakdown(self, stat),
            Version::V2 => breakdown::v2(stat),
        });
        self.stat_buf = buf;
        b
    }

    /// See [`Counters::peak_at_limit`].
    pub fn limit_reached(&self) -> bool {
        match self.version {
            Version::V1 => v1::limit_reached(self),
            Version::V2 => v2::limit_reached(self),
        }
    }

    pub fn memory(&self) -> Memory {
        self.with_ancestor(self.own_figures())
    }

    /// The cgroup's own limit, peak and usage.
    fn own_figures(&self) -> Memory {
        match self.version {
            Version::V1 => v1::memory(self),
            Version::V2 => v2::memory(self),
        }
    }

    /// `own`, with the room below the ancestor's lower limit where there is one.
    fn with_ancestor(&self, own: Memory) -> Memory {
        let ancestor_free = self.ancestor.as_ref().and_then(|a| a.free(own.usage_bytes));
        Memory { ancestor_free, ..own }
    }

    /// Register for wake-ups, or say why not (EROFS on Docker's read-only cgroupfs, say).
    pub fn watch(&self) -> Result<Watch, CgroupError> {
        Watch::open(self)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    //! The readers on temporary directories holding the text real kernels write.
    use super::*;
    use nix::libc;

    /// A directory with these files, removed on drop.
    pub(super) struct Dir(pub PathBuf);

    impl Dir {
        pub fn with(files: &[(&str, &str)]) -> Dir {
            static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("oominit-cg-{}-{n}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            for (name, text) in files {
                fs::write(dir.join(name), text).unwrap();
            }
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn opened(version: Version, files: &[(&str, &str)]) -> (Dir, Cgroup) {
        let dir = Dir::with(files);
        let mut cg = Cgroup::open(version, dir.0.clone()).unwrap();
        cg.open_figures();
        (dir, cg)
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn v2_counters_and_figures_after_a_kill() {
        // memory.events, memory.max, memory.peak, memory.current after one OOM kill under a 32 MiB
        // limit (kernel 6.1, the VM).
        let (_d, cg) = opened(
            Version::V2,
            &[
                ("memory.events", "low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n"),
                ("memory.max", "33554432\n"),
                ("memory.peak", "33554432\n"),
                ("memory.current", "991232\n"),
            ],
        );
        let c = cg.counters().unwrap();
        assert_eq!(
            (c.oom_kill, c.oom, c.oom_group_kill, c.max, c.high, c.failcnt),
            (Some(1), Some(1), Some(0), Some(35), Some(0), None)
        );
        let m = cg.memory();
        assert_eq!(
            (m.limit_bytes, m.peak_bytes, m.usage_bytes),
            (Some(32 * MIB), Some(32 * MIB), Some(991232))
        );
        assert_eq!(m.free(), Some(32 * MIB - 991232));
        assert!(cg.limit_reached());
    }

    #[test]
    fn kills_read_from_the_counters_file_alone() {
        // A group kill of three (VM, 6.1): the first victim counted twice.
        let events = "low 0\nhigh 0\nmax 19\noom 1\noom_kill 4\noom_group_kill 1\n";
        let (_d, cg) = opened(Version::V2, &[("memory.events", events)]);
        assert_eq!(cg.kills(), Some(3));
        assert_eq!(cg.kills(), Some(cg.counters().unwrap().kills()));
        let (_d, cg) =
            opened(Version::V1, &[("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")]);
        assert_eq!(cg.kills(), Some(2));
    }

    #[test]
    fn v2_a_peak_just_under_the_limit_counts_as_reached() {
        // A pod of one container, its limit the container's: the pod's counter, which holds the
        // pause container's 1 MiB too, runs out first (the VM's runc_pod_equal).
        for (peak, limit, reached) in [
            ("32505856\n", "33554432\n", true),
            ("31457280\n", "33554432\n", true),
            ("31457279\n", "33554432\n", false),
            ("4227858432\n", "4294967296\n", true),
            ("4227858431\n", "4294967296\n", false),
            ("33554432\n", "max\n", false),
        ] {
            let events = "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\noom_group_kill 0\n";
            let files = [("memory.events", events), ("memory.max", limit), ("memory.peak", peak)];
            let (_d, cg) = opened(Version::V2, &files);
            assert_eq!(cg.limit_reached(), reached, "peak {peak} limit {limit}");
        }
    }

    #[test]
    fn v2_without_a_limit_or_peak() {
        // An unlimited cgroup on a kernel before 5.19 (no memory.peak).
        let (_d, cg) = opened(
            Version::V2,
            &[
                ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
                ("memory.max", "max\n"),
                ("memory.current", "8192\n"),
            ],
        );
        assert_eq!(cg.counters().unwrap().oom_group_kill, None, "before 5.17 there is no such line");
        let m = cg.memory();
        assert_eq!((m.limit_bytes, m.peak_bytes, m.usage_bytes), (None, None, Some(8192)));
        assert_eq!(m.free(), None, "no limit: never full");
    }

    #[test]
    fn v1_counters_and_figures_after_a_kill() {
        // memory.oom_control and friends of cgroup v1 on this project's 6.18 kernel, after one
        // kill under a 32 MiB limit without swap accounting (no memsw files).
        let (_d, cg) = opened(
            Version::V1,
            &[
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
                ("memory.failcnt", "185\n"),
                ("memory.limit_in_bytes", "33554432\n"),
                ("memory.max_usage_in_bytes", "33554432\n"),
                ("memory.usage_in_bytes", "770048\n"),
            ],
        );
        let c = cg.counters().unwrap();
        assert_eq!((c.oom_kill, c.failcnt, c.memsw_failcnt, c.oom), (Some(1), Some(185), None, None));
        let m = cg.memory();
        assert_eq!(
            (m.limit_bytes, m.peak_bytes, m.usage_bytes),
            (Some(32 * MIB), Some(32 * MIB), Some(770048))
        );
        assert!(cg.limit_reached());
    }

    #[test]
    fn v1_peak_within_a_charge_batch_of_the_memsw_limit() {
        // A memory+swap limit OOM on 6.18 raises no failcnt: the peak is the only trace. The
        // failed charge leaves it up to a batch (64 pages) below the limit.
        let (_d, cg) = opened(
            Version::V1,
            &[
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
                ("memory.failcnt", "0\n"),
                ("memory.memsw.failcnt", "0\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.max_usage_in_bytes", "33329152\n"),
                ("memory.memsw.limit_in_bytes", "33554432\n"),
                ("memory.memsw.max_usage_in_bytes", "33329152\n"),
                ("memory.usage_in_bytes", "0\n"),
            ],
        );
        assert_eq!(cg.memory().limit_bytes, None, "PAGE_COUNTER_MAX is no limit");
        assert!(cg.limit_reached());
        let c = cg.counters().unwrap();
        assert!(!Counters { peak_at_limit: None, ..c }.hit_own_limit());
        assert!(Counters { peak_at_limit: Some(cg.limit_reached()), ..c }.hit_own_limit());
    }

    #[test]
    fn v1_unlimited_peak_far_below() {
        let (_d, cg) = opened(
            Version::V1,
            &[
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.max_usage_in_bytes", "4194304\n"),
            ],
        );
        assert!(!cg.limit_reached());
        assert_eq!(cg.counters().unwrap().failcnt, None, "memory.failcnt absent: unknown, not 0");
    }

    #[test]
    fn a_missing_counters_file_names_the_file_and_the_errno() {
        let d = Dir::with(&[]);
        let err = Cgroup::open(Version::V2, d.0.clone()).unwrap_err();
        assert!(matches!(&err, CgroupError::Io { errno: Some(libc::ENOENT), .. }), "{err:?}");
        assert!(err.to_string().contains("memory.events"), "{err}");
    }

    #[test]
    fn counters_that_are_not_text_are_malformed() {
        let (_d, cg) = opened(Version::V2, &[("memory.events", "oom_kill 0\n")]);
        fs::write(cg.dir.join("memory.events"), b"oom_kill \xff\n").unwrap();
        assert!(matches!(cg.counters(), Err(CgroupError::Malformed(_))));
    }
}
