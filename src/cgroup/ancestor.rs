//! A lower limit above the cgroup: a Kubernetes pod's over a container with none of its own (or
//! a higher one). The kernel charges every page to each ancestor too, so the cgroup is full when
//! that ancestor is, whatever its own figures say, and the headroom rule must see that room.
//!
//! Found once, at start. The ancestors in sight (up the cgroupfs from the cgroup's directory, to
//! the hierarchy's root or a cgroup namespace's): the lowest limit among them, its usage file held
//! open. Else, on v1, `memory.stat`'s `hierarchical_memory_limit`, the lowest limit up the whole
//! tree even out of sight (Docker on v1 mounts the container's own directory), with the cgroup's
//! own usage as the least that ancestor holds: its room then an upper bound.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{keyed, Version};

/// Levels looked at above the cgroup, at most (a pod's is one or two up).
const DEPTH: usize = 8;

#[derive(Debug)]
pub enum Ancestor {
    /// In sight: its limit, and its usage file held open (to be read once at start, as a first
    /// read allocates the file's buffer: a charge).
    Visible { limit: u64, usage: File },
    /// v1, out of sight: the lowest limit up the tree.
    Hierarchical(u64),
}

impl Ancestor {
    /// The ancestor whose limit is lower than `own` (None: unlimited) and than any other's, for
    /// the cgroup at `dir`; `stat`: its `memory.stat` (v1's fallback).
    pub fn find(version: Version, dir: &Path, own: Option<u64>, stat: Option<&str>) -> Option<Ancestor> {
        let (limit_file, usage_file) = files(version);
        let mut lowest = own.unwrap_or(u64::MAX);
        // v1's hierarchical limit is the lowest up the whole tree (u64::MAX: none): none lower,
        // none to look for (and no opens: each is a start-up system call).
        let hierarchical = match version {
            Version::V1 => stat
                .and_then(|s| keyed::get(s, "hierarchical_memory_limit"))
                .map(|h| keyed::v1_limit(h).unwrap_or(u64::MAX)),
            Version::V2 => None,
        };
        if hierarchical.is_some_and(|h| h >= lowest) {
            return None;
        }
        let mut found = None;
        // A directory without the limit file is above the hierarchy's root (or a namespace's).
        let parents = dir.ancestors().skip(1).take(DEPTH);
        for (parent, limit) in parents.map_while(|p| Some((p, read_limit(version, &p.join(limit_file))?))) {
            if let Some(limit) = limit.filter(|&l| l < lowest) {
                lowest = limit;
                found = Some(parent);
            }
        }
        if let Some(usage) = found.and_then(|p| crate::open::read_only(p.join(usage_file)).ok()) {
            return Some(Ancestor::Visible { limit: lowest, usage });
        }
        hierarchical.filter(|&l| l < lowest).map(Ancestor::Hierarchical)
    }

    /// Bytes below its limit; `own_usage`, the cgroup's, is the least it holds where its own
    /// usage is out of sight. None when unknown.
    pub fn free(&self, own_usage: Option<u64>) -> Option<u64> {
        match self {
            Ancestor::Visible { limit, usage } => {
                let mut buf = [0u8; 32];
                let n = usage.read_at(&mut buf, 0).ok()?;
                let used = keyed::single(std::str::from_utf8(buf.get(..n)?).ok()?)??;
                Some(limit.saturating_sub(used))
            }
            Ancestor::Hierarchical(limit) => Some(limit.saturating_sub(own_usage?)),
        }
    }

    pub fn limit(&self) -> u64 {
        match self {
            Ancestor::Visible { limit, .. } | Ancestor::Hierarchical(limit) => *limit,
        }
    }
}

/// The limit file and the usage file of a cgroup: those [`Cgroup::memory`](super::Cgroup::memory)
/// reads.
fn files(version: Version) -> (&'static str, &'static str) {
    let [limit, _, usage] = match version {
        Version::V1 => super::v1::FIGURES,
        Version::V2 => super::v2::FIGURES,
    };
    (limit, usage)
}

/// The limit in the limit file at `path`: None if the file is not there, Some(None) for none.
fn read_limit(version: Version, path: &Path) -> Option<Option<u64>> {
    let mut buf = [0u8; 32];
    let n = crate::open::read_only(path).ok()?.read_at(&mut buf, 0).ok()?;
    let limit = std::str::from_utf8(buf.get(..n)?).ok().and_then(keyed::single).flatten();
    Some(match version {
        Version::V1 => limit.and_then(keyed::v1_limit),
        Version::V2 => limit,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::Dir;
    use super::*;

    const MIB: u64 = 1 << 20;
    /// v1's "no limit" with 4 KiB pages (6.18).
    const V1_UNLIMITED: &str = "9223372036854771712\n";

    /// `pod/ctr` under a root: the root's limit (None: no files), the pod's limit and usage, the
    /// container's limit.
    fn tree(version: Version, root: Option<&str>, pod: (&str, &str), ctr: &str) -> (Dir, std::path::PathBuf) {
        let (limit, usage) = files(version);
        let d = Dir::with(&[]);
        let pod_dir = d.0.join("pod");
        let ctr_dir = pod_dir.join("ctr");
        std::fs::create_dir_all(&ctr_dir).unwrap();
        if let Some(root) = root {
            std::fs::write(d.0.join(limit), root).unwrap();
            std::fs::write(d.0.join(usage), "0\n").unwrap();
        }
        std::fs::write(pod_dir.join(limit), pod.0).unwrap();
        std::fs::write(pod_dir.join(usage), pod.1).unwrap();
        std::fs::write(ctr_dir.join(limit), ctr).unwrap();
        (d, ctr_dir)
    }

    #[test]
    fn a_pods_limit_over_a_container_without_one_is_found_with_its_usage() {
        let (_d, ctr) = tree(Version::V2, None, ("33554432\n", "30408704\n"), "max\n");
        let a = Ancestor::find(Version::V2, &ctr, None, None).unwrap();
        assert_eq!(a.limit(), 32 * MIB);
        assert_eq!(a.free(Some(MIB)), Some(3 * MIB), "the pod's own usage, not the container's");
    }

    #[test]
    fn an_ancestors_limit_no_lower_than_the_cgroups_own_is_not_taken() {
        let (_d, ctr) = tree(Version::V2, None, ("33554432\n", "0\n"), "16777216\n");
        assert!(Ancestor::find(Version::V2, &ctr, Some(16 * MIB), None).is_none());
        let (_d, ctr) = tree(Version::V2, None, ("max\n", "0\n"), "max\n");
        assert!(Ancestor::find(Version::V2, &ctr, None, None).is_none());
    }

    #[test]
    fn the_lowest_limit_up_the_tree_is_the_one() {
        // The root's own limit lower than the pod's (a node's slice, say).
        let (_d, ctr) = tree(Version::V1, Some("8388608\n"), ("33554432\n", "0\n"), V1_UNLIMITED);
        assert_eq!(Ancestor::find(Version::V1, &ctr, None, None).map(|a| a.limit()), Some(8 * MIB));
    }

    #[test]
    fn v1_walks_up_only_when_the_hierarchical_limit_is_below_its_own() {
        let (_d, ctr) = tree(Version::V1, None, ("33554432\n", "0\n"), V1_UNLIMITED);
        let lower = "hierarchical_memory_limit 33554432\n";
        let a = Ancestor::find(Version::V1, &ctr, None, Some(lower)).unwrap();
        assert!(matches!(a, Ancestor::Visible { limit, .. } if limit == 32 * MIB), "{a:?}");
        // The kernel's figure says no ancestor's is lower: the files above are not read.
        let none_lower = "hierarchical_memory_limit 9223372036854771712\n";
        assert!(Ancestor::find(Version::V1, &ctr, None, Some(none_lower)).is_none());
    }

    #[test]
    fn v1_out_of_sight_takes_the_hierarchical_limit_and_its_own_usage() {
        // Docker on v1: the container's directory is the mount; nothing above has the files.
        let d = Dir::with(&[("memory.limit_in_bytes", V1_UNLIMITED)]);
        let stat = "rss 0\nhierarchical_memory_limit 33554432\nhierarchical_memsw_limit 33554432\n";
        let a = Ancestor::find(Version::V1, &d.0, None, Some(stat)).unwrap();
        assert_eq!(a.free(Some(30 * MIB)), Some(2 * MIB));
        assert_eq!(a.free(None), None);
        let unlimited = "hierarchical_memory_limit 9223372036854771712\n";
        assert!(Ancestor::find(Version::V1, &d.0, None, Some(unlimited)).is_none());
        assert!(Ancestor::find(Version::V1, &d.0, Some(32 * MIB), Some(stat)).is_none(), "its own limit");
        assert!(Ancestor::find(Version::V2, &d.0, None, Some(stat)).is_none(), "v2 has no such line");
    }
}
