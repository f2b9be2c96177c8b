//! Why the memory cgroup, or one of its files, cannot be used: which file, which errno. Shown in
//! the record's `memory.unavailable` and in `-v` diagnostics; never fatal to the command.

use std::fmt;
use std::path::PathBuf;

use super::Version;

#[derive(Debug, PartialEq, Eq)]
pub enum CgroupError {
    /// Opening, reading or writing a file failed.
    Io { action: &'static str, path: PathBuf, errno: Option<i32> },
    /// A file the interface reads was not opened (the kernel lacks it).
    NotOpen(PathBuf),
    /// A file's text is not what the kernel writes.
    Malformed(PathBuf),
    /// `/proc/self/cgroup` names no memory controller.
    NoController,
    /// No filesystem of the memory controller's version, with that controller, is mounted.
    NotMounted(Version),
    /// The cgroup lies outside every mounted root of its hierarchy (`/../..` when the process
    /// sits outside its cgroup namespace's root): it exists, but this mount namespace cannot
    /// reach it.
    Unreachable { path: String, version: Version },
    /// A notification could not be set up (`what`: the step that failed).
    Watch { what: &'static str, errno: Option<i32> },
}

impl CgroupError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, e: std::io::Error) -> CgroupError {
        CgroupError::Io { action, path: path.into(), errno: e.raw_os_error() }
    }

    pub fn watch(what: &'static str, e: nix::errno::Errno) -> CgroupError {
        CgroupError::Watch { what, errno: Some(e as i32) }
    }
}

/// The errno as the C library words it, with its number.
fn errno(f: &mut fmt::Formatter<'_>, errno: Option<i32>) -> fmt::Result {
    match errno {
        Some(n) => write!(f, "{}", std::io::Error::from_raw_os_error(n)),
        None => f.write_str("failed"),
    }
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupError::Io { action, path, errno: e } => {
                write!(f, "{action} {}: ", path.display())?;
                errno(f, *e)
            }
            CgroupError::NotOpen(path) => write!(f, "{} is not there", path.display()),
            CgroupError::Malformed(path) => {
                write!(f, "{} does not read as the kernel writes it", path.display())
            }
            CgroupError::NoController => f.write_str("no memory controller in /proc/self/cgroup"),
            CgroupError::NotMounted(v) => {
                write!(f, "no {} filesystem with the memory controller is mounted", v.fs_name())
            }
            CgroupError::Unreachable { path, version } => {
                write!(f, "cgroup {path} is outside every mounted {} root", version.fs_name())
            }
            CgroupError::Watch { what, errno: e } => {
                write!(f, "{what}: ")?;
                errno(f, *e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_the_errno() {
        let e = CgroupError::io(
            "opening",
            "/sys/fs/cgroup/memory.events",
            std::io::Error::from_raw_os_error(nix::libc::EACCES),
        );
        assert_eq!(e.to_string(), "opening /sys/fs/cgroup/memory.events: Permission denied (os error 13)");
        let e = CgroupError::watch("registering with cgroup.event_control", nix::errno::Errno::EROFS);
        assert_eq!(
            e.to_string(),
            "registering with cgroup.event_control: Read-only file system (os error 30)"
        );
        assert_eq!(
            CgroupError::NotMounted(Version::V1).to_string(),
            "no cgroup (v1) filesystem with the memory controller is mounted"
        );
    }
}
