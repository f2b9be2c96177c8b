//! Finding this process's memory cgroup directory from `/proc/self/cgroup` and
//! `/proc/self/mountinfo`, on every layout: cgroup v2; cgroup v1; hybrid hosts where cgroup2 is
//! mounted but the memory controller is on v1; cgroup namespaces where the path is `/`; mounts
//! whose root is not `/` (Docker on v1 mounts `/docker/<id>` of the hierarchy).

use std::path::PathBuf;

use super::{CgroupError, Version};

/// The memory hierarchy's path for this process, from `/proc/self/cgroup`.
/// A v1 line naming the memory controller wins over the v2 line: on a hybrid host the v2 line is
/// there too, but its hierarchy has no memory controller.
pub fn memory_path(proc_cgroup: &str) -> Option<(Version, &str)> {
    let mut v2 = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id != "0" && controllers.split(',').any(|c| c == "memory") {
            return Some((Version::V1, path));
        }
        if id == "0" && controllers.is_empty() {
            v2 = Some((Version::V2, path));
        }
    }
    v2
}

/// Where the cgroup usually is, without mountinfo: below `/sys/fs/cgroup` (v2) or
/// `/sys/fs/cgroup/memory` (v1), as Docker, containerd, runc and systemd mount them. Reading and
/// parsing mountinfo was 70 us of a 1 ms container start; this costs one small read.
pub const USUAL_V1: &str = "/sys/fs/cgroup/memory";
pub const USUAL_V2: &str = "/sys/fs/cgroup";

/// This process's cgroup directory below `mount`, without mountinfo: `path` (from
/// `/proc/self/cgroup`) below it, as where the mount's root is the hierarchy's (a cgroup
/// namespace's, or the host's), else the mount point itself, as where the mount's root is the
/// container's own cgroup (Docker on v1 without a cgroup namespace mounts `/docker/<id>` at
/// `/sys/fs/cgroup/memory`). A directory is taken only if its `cgroup.procs` (read by `procs`)
/// lists `pid`: a process is in one cgroup of a hierarchy. None: mountinfo says.
pub fn usual_place(
    mount: &str,
    path: &str,
    pid: u32,
    mut procs: impl FnMut(&std::path::Path) -> Option<String>,
) -> Option<PathBuf> {
    let pid = pid.to_string();
    let rel = relative(path, "/").map(|r| r.trim_start_matches('/')).filter(|r| !r.is_empty());
    let below = rel.map(|r| PathBuf::from(mount).join(r));
    below.into_iter().chain(std::iter::once(PathBuf::from(mount))).find(|dir| {
        procs(&dir.join("cgroup.procs")).is_some_and(|l| l.split_ascii_whitespace().any(|p| p == pid))
    })
}

/// One line of mountinfo, the fields we need (proc(5)).
#[derive(Debug, PartialEq)]
pub struct Mount {
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub super_options: String,
}

/// The cgroup mounts of a mountinfo (fstype `cgroup` or `cgroup2`): nothing else is kept, nor
/// allocated for (a container start reads this; most of a host's mounts are not cgroups).
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            let (left, right) = line.split_once(" - ")?;
            let mut r = right.split(' ');
            let fstype = r.next().filter(|t| matches!(*t, "cgroup" | "cgroup2"))?.to_string();
            let super_options = r.nth(1).unwrap_or("").to_string();
            let mut l = left.split(' ');
            let root = unescape(l.nth(3)?);
            let mount_point = unescape(l.next()?);
            // The kernel writes both as absolute paths; anything else is not a mount to use.
            (root.starts_with('/') && mount_point.starts_with('/')).then_some(())?;
            Some(Mount { root, mount_point, fstype, super_options })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = b[i + 1..i + 4].iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The directory of the cgroup at `path` (as `/proc/self/cgroup` gives it), below a mount of
/// the right hierarchy. Among several mounts, the one whose root is the longest prefix wins.
pub fn locate(version: Version, path: &str, mounts: &[Mount]) -> Result<PathBuf, CgroupError> {
    let wanted = |m: &&Mount| match version {
        Version::V1 => m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "memory"),
        Version::V2 => m.fstype == "cgroup2",
    };
    let candidates: Vec<&Mount> = mounts.iter().filter(wanted).collect();
    if candidates.is_empty() {
        return Err(CgroupError::NotMounted(version));
    }
    let best = candidates
        .iter()
        .filter_map(|m| relative(path, &m.root).map(|rel| (m, rel)))
        .max_by_key(|(m, _)| m.root.len());
    match best {
        // Not join("") for the mount root itself: that would print with a trailing slash.
        Some((m, rel)) => Ok(match rel.trim_start_matches('/') {
            "" => PathBuf::from(&m.mount_point),
            rel => PathBuf::from(&m.mount_point).join(rel),
        }),
        None => Err(CgroupError::Unreachable { path: path.to_string(), version }),
    }
}

/// `path` relative to a mount's `root`, if it lies below it. Both are shown relative to the cgroup
/// namespace's root, so both may climb (`/../x`): a mount made outside the namespace has a root
/// like `/..`, below which `/../x` does lie. What is left after the root must not climb again: a
/// path `/../x` under a mount whose root is `/` lies outside it. (Nor hold a `.`, which the
/// kernel never writes.)
fn relative<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    let rest = if root == "/" {
        path.starts_with('/').then_some(path)?
    } else {
        let rest = path.strip_prefix(root)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)?
    };
    (!rest.split('/').any(|c| c == ".." || c == ".")).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn find(cgroup: &str, mountinfo: &str) -> Result<(Version, PathBuf), CgroupError> {
        let (v, path) = memory_path(cgroup).ok_or(CgroupError::NoController)?;
        Ok((v, locate(v, path, &parse_mountinfo(mountinfo))?))
    }

    #[test]
    fn hybrid_host_memory_is_on_v1() {
        // This machine: cgroup2 mounted at /sys/fs/cgroup/unified, memory on v1.
        let got =
            find(include_str!("fixtures/hybrid-host.cgroup"), include_str!("fixtures/hybrid-host.mountinfo"));
        assert_eq!(
            got,
            Ok((
                Version::V1,
                PathBuf::from("/sys/fs/cgroup/memory/process_api/7bfff33d082f8e51578d4653def89348")
            ))
        );
    }

    #[test]
    fn docker_v1_mount_root_is_stripped() {
        // A real container: the memory hierarchy is mounted read-only with root /docker/<id>.
        let got =
            find(include_str!("fixtures/docker-v1.cgroup"), include_str!("fixtures/docker-v1.mountinfo"));
        assert_eq!(got, Ok((Version::V1, PathBuf::from("/sys/fs/cgroup/memory"))));
        // PathBuf equality ignores a trailing slash; the record's text must not have one.
        assert_eq!(got.unwrap().1.to_str(), Some("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn docker_v1_in_a_cgroup_namespace() {
        let got = find(
            include_str!("fixtures/docker-v1-cgroupns.cgroup"),
            include_str!("fixtures/docker-v1-cgroupns.mountinfo"),
        );
        assert_eq!(got, Ok((Version::V1, PathBuf::from("/sys/fs/cgroup/memory"))));
    }

    #[test]
    fn v2_in_a_cgroup_namespace_real() {
        // Captured in the VM suite's container (kernel 6.1): new cgroup namespace, cgroup2
        // mounted afresh inside it.
        let got = find(
            include_str!("fixtures/vm-v2-cgroupns.cgroup"),
            include_str!("fixtures/vm-v2-cgroupns.mountinfo"),
        );
        assert_eq!(
            got.map(|(v, p)| (v, p.display().to_string())),
            Ok((Version::V2, "/sys/fs/cgroup".into()))
        );
    }

    #[test]
    fn v2_host_sub_cgroup_real() {
        // Captured on the VM's host side (kernel 6.1): a process in /docker-4f1c, no namespace.
        let got =
            find(include_str!("fixtures/vm-v2-host.cgroup"), include_str!("fixtures/vm-v2-host.mountinfo"));
        assert_eq!(
            got.map(|(v, p)| (v, p.display().to_string())),
            Ok((Version::V2, "/sys/fs/cgroup/docker-4f1c".into()))
        );
    }

    #[test]
    fn pure_v2_in_a_cgroup_namespace() {
        // Written in the format of Docker 20+ on a systemd cgroup v2 host (not captured here).
        // Docker 20+ on a cgroup v2 host: one line `0::/`, cgroup2 mounted read-only at /sys/fs/cgroup.
        let mountinfo = "1283 1282 0:27 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(find("0::/\n", mountinfo), Ok((Version::V2, PathBuf::from("/sys/fs/cgroup"))));
    }

    #[test]
    fn v2_host_path_below_the_mount() {
        // Written in the format of a systemd cgroup v2 host (not captured here).
        let mountinfo = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let cgroup = "0::/system.slice/docker-4f1c.scope\n";
        assert_eq!(
            find(cgroup, mountinfo),
            Ok((Version::V2, PathBuf::from("/sys/fs/cgroup/system.slice/docker-4f1c.scope")))
        );
    }

    #[test]
    fn nothing_mounted_says_why() {
        let err = find(include_str!("fixtures/docker-v1.cgroup"), "").unwrap_err();
        assert!(matches!(err, CgroupError::NotMounted(Version::V1)), "{err}");
        assert_eq!(memory_path(""), None);
        assert_eq!(memory_path("garbage\n::\n1:cpu:/\n"), None);
    }

    #[test]
    fn path_outside_the_mount_root() {
        let mountinfo = "78 74 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n";
        let unreachable = |r| matches!(r, Err(CgroupError::Unreachable { .. }));
        assert!(unreachable(find("4:memory:/other\n", mountinfo)));
        assert!(
            unreachable(find("4:memory:/docker/abcdef\n", mountinfo)),
            "a prefix of a name is not a parent"
        );
        assert!(unreachable(find("4:memory:/docker/abc/../../x\n", mountinfo)), "no climbing out");
        assert_eq!(
            find("4:memory:/docker/abc/sub\n", mountinfo),
            Ok((Version::V1, PathBuf::from("/sys/fs/cgroup/memory/sub")))
        );
    }

    #[test]
    fn a_path_outside_the_namespace_root_is_below_no_mount() {
        // What /proc/self/cgroup shows for a process outside its cgroup namespace's root (a
        // `docker exec` into another container's namespace, say), under a mount whose root is /.
        let mountinfo = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert!(matches!(find("0::/../../user.slice\n", mountinfo), Err(CgroupError::Unreachable { .. })));
        assert!(matches!(find("0::/..\n", mountinfo), Err(CgroupError::Unreachable { .. })));
        assert!(find("0::/a..b/c\n", mountinfo).is_ok(), "only a whole `..` component climbs");
    }

    #[test]
    fn text_the_kernel_never_writes_finds_nothing() {
        // Found by the fuzzer: an empty mount point (two spaces) joined a relative directory, and
        // a `.` component passed through.
        let empty_point = "24 0:30 / /x 0:32 /  master:2 - cgroup2 cgroup2 rw\n";
        assert!(parse_mountinfo(empty_point).is_empty());
        let mountinfo = "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert!(matches!(find("0::/./a\n", mountinfo), Err(CgroupError::Unreachable { .. })));
    }

    #[test]
    fn a_mount_made_outside_the_namespace_holds_paths_that_climb() {
        // The host's mount seen from a cgroup namespace rooted one level down: its root reads
        // `/..`, and a sibling cgroup `/../b` lies below it.
        let mountinfo = "52 48 0:32 /.. /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(find("0::/../b\n", mountinfo), Ok((Version::V2, PathBuf::from("/sys/fs/cgroup/b"))));
        assert!(matches!(find("0::/../../c\n", mountinfo), Err(CgroupError::Unreachable { .. })));
    }

    fn procs_listing(wanted: &'static str, text: &'static str) -> impl FnMut(&Path) -> Option<String> {
        move |p: &Path| (p == Path::new(wanted)).then(|| text.to_string())
    }

    #[test]
    fn the_usual_place_is_used_where_it_lists_this_process() {
        let at = usual_place(USUAL_V2, "/", 1, procs_listing("/sys/fs/cgroup/cgroup.procs", "1\n"));
        assert_eq!(at, Some(PathBuf::from("/sys/fs/cgroup")));
        let procs = procs_listing("/sys/fs/cgroup/memory/docker/abc/cgroup.procs", "7\n12\n");
        let at = usual_place(USUAL_V1, "/docker/abc", 12, procs);
        assert_eq!(at, Some(PathBuf::from("/sys/fs/cgroup/memory/docker/abc")));
    }

    #[test]
    fn the_mount_point_itself_is_the_cgroup_where_it_lists_this_process() {
        // Docker on v1 without a cgroup namespace: the container's cgroup is the mount's root.
        let procs = procs_listing("/sys/fs/cgroup/memory/cgroup.procs", "1\n");
        let at = usual_place(USUAL_V1, "/docker/abc", 1, procs);
        assert_eq!(at, Some(PathBuf::from("/sys/fs/cgroup/memory")));
    }

    #[test]
    fn the_usual_place_is_not_used_where_it_does_not_list_this_process() {
        // Another cgroup at that path in a mount whose root is not the hierarchy's: not ours.
        let procs = procs_listing("/sys/fs/cgroup/x/cgroup.procs", "71\n");
        assert_eq!(usual_place(USUAL_V2, "/x", 7, procs), None, "7 is not 71");
        assert_eq!(usual_place(USUAL_V2, "/x", 7, |_: &Path| None), None, "nothing there");
        // A path outside the namespace's root cannot be below the usual mount.
        let procs = procs_listing("/sys/fs/cgroup/../y/cgroup.procs", "7\n");
        assert_eq!(usual_place(USUAL_V2, "/../y", 7, procs), None);
    }

    #[test]
    fn only_cgroup_mounts_are_kept() {
        let text = include_str!("fixtures/hybrid-host.mountinfo");
        let kept: Vec<String> = parse_mountinfo(text).into_iter().map(|m| m.fstype).collect();
        assert!(!kept.is_empty() && kept.iter().all(|t| *t == "cgroup" || *t == "cgroup2"), "{kept:?}");
        assert!(text.lines().count() > kept.len());
    }

    #[test]
    fn escaped_mount_points() {
        let m = parse_mountinfo("40 31 0:37 / /mnt/with\\040space rw - cgroup2 none rw\n");
        assert_eq!(m[0].mount_point, "/mnt/with space");
        assert_eq!(unescape("a\\1"), "a\\1");
        assert_eq!(unescape("\\"), "\\");
        assert_eq!(unescape("\\999x"), "\\999x");
    }

    #[test]
    fn mountinfo_with_optional_fields_and_garbage() {
        let text =
            "35 24 0:30 / /sys/fs/cgroup rw shared:9 master:2 - cgroup2 cgroup2 rw\nnonsense\n\n1 2 3\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].fstype, "cgroup2");
    }
}
