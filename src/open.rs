//! Opening the files oominit reads (cgroup, /proc) in one system call each. musl's `open()`
//! follows every `O_CLOEXEC` open with an `fcntl(F_SETFD)`, for kernels before 2.6.23: a second
//! call for each of the 25 or so files a container start opens, with the command waiting on the
//! other side of the exit it reaps. `openat` directly, with `O_CLOEXEC`, which every kernel
//! oominit runs on honours.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::libc;

/// `path`, read-only.
pub fn read_only(path: impl AsRef<Path>) -> io::Result<File> {
    open(path.as_ref(), libc::O_RDONLY)
}

/// `path`, for reading and writing (an existing file: nothing is created).
pub fn read_write(path: impl AsRef<Path>) -> io::Result<File> {
    open(path.as_ref(), libc::O_RDWR)
}

/// `path`, write-only (an existing file: nothing is created).
pub fn write_only(path: impl AsRef<Path>) -> io::Result<File> {
    open(path.as_ref(), libc::O_WRONLY)
}

/// A second descriptor of `fd`, close-on-exec. musl's `F_DUPFD_CLOEXEC` adds an `F_SETFD` too.
pub fn duplicate(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: fcntl with an integer argument returns a new descriptor or -1.
    let new = unsafe { libc::syscall(libc::SYS_fcntl, fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    let new = owned(new)?;
    // SAFETY: a descriptor fcntl just made, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// A raw system call's descriptor, or its error.
fn owned(fd: libc::c_long) -> io::Result<libc::c_int> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    libc::c_int::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

fn open(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let bytes = path.as_os_str().as_bytes();
    // Short paths (all of /proc's, most cgroups') on the stack: no allocation at a listing.
    let mut buf = [0u8; 256];
    let heap;
    let c: *const libc::c_char = match buf.get_mut(..bytes.len()) {
        Some(dst) if bytes.len() < 256 && !bytes.contains(&0) => {
            dst.copy_from_slice(bytes);
            buf.as_ptr().cast()
        }
        _ => {
            heap = CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            heap.as_ptr()
        }
    };
    // SAFETY: `c` is NUL-terminated (the stack buffer is zeroed past the path) and outlives the
    // call; openat returns a new descriptor, owned by nothing else, or -1.
    let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c, flags | libc::O_CLOEXEC, 0) };
    let fd = owned(fd)?;
    // SAFETY: see above.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn opens_what_std_opens_close_on_exec() {
        let mut f = read_only("/proc/self/stat").unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert!(s.starts_with(&std::process::id().to_string()), "{s}");
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    #[test]
    fn long_paths_and_errors_are_those_of_the_kernel() {
        let long = format!("/proc/self/{}", "x".repeat(300));
        assert_eq!(read_only(&long).unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(read_only("/nonexistent").unwrap_err().raw_os_error(), Some(libc::ENOENT));
        assert_eq!(
            read_only(std::ffi::OsStr::from_bytes(b"/proc/\0self")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(write_only("/nonexistent/x").is_err());
    }

    #[test]
    fn a_duplicate_is_the_same_file_close_on_exec() {
        use std::io::{Seek, SeekFrom};
        let mut f = read_only("/proc/self/stat").unwrap();
        let dup = duplicate(std::os::fd::AsFd::as_fd(&f)).unwrap();
        assert_ne!(dup.as_raw_fd(), f.as_raw_fd());
        f.seek(SeekFrom::Start(3)).unwrap();
        // One open file: the offset is shared.
        let mut g = File::from(dup);
        assert_eq!(g.stream_position().unwrap(), 3);
        let flags = unsafe { libc::fcntl(g.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
