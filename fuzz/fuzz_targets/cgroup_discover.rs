//! Finding the memory cgroup: `/proc/self/cgroup` (`cgroup::discover::memory_path`), mountinfo
//! (`parse_mountinfo`, with its octal unescaping) and the directory below a mount (`locate`).
//!
//! Input: the text of /proc/self/cgroup, then a NUL, then the text of /proc/self/mountinfo (no
//! NUL: the same text for both).
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use oominit::cgroup::discover::{locate, memory_path, parse_mountinfo, Mount};
use oominit::cgroup::Version;

/// `dir` lies below one of the mounts: a mount point, then plain names, never `..` (a path that
/// climbs lies below no root).
fn below_a_mount(dir: &Path, mounts: &[Mount]) -> bool {
    mounts.iter().any(|m| {
        dir.strip_prefix(&m.mount_point)
            .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (cgroup, mountinfo) = text.split_once('\0').unwrap_or((&text, &text));
    let mounts = parse_mountinfo(mountinfo);
    assert!(mounts.len() <= mountinfo.lines().count());
    let found = memory_path(cgroup);
    // Both versions for the path found, as if the other hierarchy held the memory controller.
    let path = found.map_or("/", |(_, p)| p);
    for version in [Version::V1, Version::V2] {
        match locate(version, path, &mounts) {
            Ok(dir) => assert!(below_a_mount(&dir, &mounts), "{dir:?} from {path:?}"),
            Err(e) => drop(e.to_string()),
        }
    }
});
