//! pidfds: a handle on a process that stays valid after its own parent has reaped it, and that
//! (kernel 6.15+, `PIDFD_INFO_EXIT`) still says how the process ended. The one way to learn that
//! a worker reaped by its parent microseconds after an OOM kill died of SIGKILL. Also (5.3+)
//! readable the moment its process exits, to wake on where the cgroup gives no notification.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::libc::{self, pid_t};

use crate::reap::Status;

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

pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// A pidfd for `pid` (kernel 5.3+).
    pub fn open(pid: pid_t) -> Result<Pidfd, Errno> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
        Ok(Pidfd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Whether this kernel answers PIDFD_GET_INFO (6.13+): an error that [`unsupported`] takes
    /// for the kernel's if not.
    pub fn answers_info(&self) -> Result<(), Errno> {
        self.info().map(|_| ())
    }

    fn info(&self) -> Result<PidfdInfo, Errno> {
        let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..PidfdInfo::default() };
        // SAFETY: the kernel writes at most the 64 bytes the request's size names.
        let r = unsafe { libc::ioctl(self.0.as_raw_fd(), PIDFD_GET_INFO as _, &mut info as *mut PidfdInfo) };
        if r == 0 {
            Ok(info)
        } else {
            Err(Errno::last())
        }
    }

    /// How the process ended, once someone has reaped it; None before, and always before 6.15
    /// (those kernels never set the bit).
    pub fn exit_status(&self) -> Option<Status> {
        let info = self.info().ok()?;
        if info.mask & PIDFD_INFO_EXIT == 0 {
            return None;
        }
        Status::from_raw(info.exit_code)
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Whether a failure of [`Pidfd::open`] or [`Pidfd::answers_info`] says the kernel (or a seccomp
/// filter) will never give a usable pidfd, so that trying again for every process is pointless.
/// A process already gone (ESRCH) or a passing shortage of descriptors or memory says nothing of
/// the kernel.
pub fn unsupported(e: Errno) -> bool {
    matches!(e, Errno::ENOSYS | Errno::ENOTTY | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shortage_is_not_taken_for_a_kernel_without_pidfds() {
        for e in [Errno::ESRCH, Errno::EMFILE, Errno::ENFILE, Errno::ENOMEM] {
            assert!(!unsupported(e), "{e}");
        }
        for e in [Errno::ENOSYS, Errno::ENOTTY, Errno::EINVAL, Errno::EPERM] {
            assert!(unsupported(e), "{e}");
        }
    }

    #[test]
    fn a_pidfd_tells_how_a_reaped_child_ended_where_the_kernel_can() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let fd = match Pidfd::open(child.id() as pid_t).and_then(|fd| fd.answers_info().map(|_| fd)) {
            Ok(fd) => fd,
            // Kernels before 6.13 lack PIDFD_GET_INFO; nothing more to check there.
            Err(e) if unsupported(e) => {
                eprintln!("pidfd exit status not checked: this kernel lacks PIDFD_GET_INFO ({e})");
                child.kill().unwrap();
                child.wait().unwrap();
                return;
            }
            Err(e) => panic!("pidfd_open: {e}"),
        };
        assert_eq!(fd.exit_status(), None, "alive");
        child.kill().unwrap();
        child.wait().unwrap();
        // 6.13 and 6.14 answer without the exit bit; 6.15+ (this project's host) with it.
        let status = fd.exit_status();
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
        let has_exit_info = (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (6, 15);
        if has_exit_info {
            assert_eq!(status, Some(Status::Signaled(9)), "kernel {}", release.trim());
        } else {
            assert!(matches!(status, None | Some(Status::Signaled(9))), "{status:?}");
        }
    }
}
