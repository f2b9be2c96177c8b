//! Starting the command: PATH lookup, and a child that starts clean.
//!
//! fork + execvp by hand rather than `std::process::Command`: Command passes oominit's full signal
//! mask to the child (rust-lang/rust#101077), under which a forwarded SIGTERM would wait forever,
//! and its environment machinery costs ~20 KB of the binary. The exec error travels back through
//! a close-on-exec pipe, as in std, so "not found" (127) is told from "not executable" (126).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::libc;

use crate::error::{EXIT_FATAL, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};

/// Why the command never ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpawnError {
    pub errno: Errno,
    /// True when exec itself failed; false when oominit could not even fork.
    pub exec: bool,
}

impl SpawnError {
    pub fn exit_code(&self) -> i32 {
        if !self.exec {
            return EXIT_FATAL;
        }
        match self.errno {
            Errno::ENOENT | Errno::ENOTDIR => EXIT_NOT_FOUND,
            _ => EXIT_NOT_EXECUTABLE,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.exec { "" } else { "fork: " })?;
        f.write_str(self.errno.desc())
    }
}

/// Fork and exec the command; returns its pid, which is also its process group.
pub fn spawn(argv: &[OsString]) -> Result<libc::pid_t, SpawnError> {
    // Everything the child needs is built before fork: a forked child should not allocate.
    let einval = SpawnError { errno: Errno::EINVAL, exec: true };
    let args: Vec<CString> =
        argv.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>().map_err(|_| einval)?;
    if args.is_empty() {
        return Err(SpawnError { errno: Errno::ENOENT, exec: true });
    }
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());

    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SpawnError { errno: Errno::last(), exec: false });
    }
    let [rd, wr] = pipe;
    // SAFETY: oominit has a single thread, and the child runs only async-signal-safe calls on
    // memory prepared above, then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            libc::close(rd);
            child_setup();
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let err = Errno::last_raw().to_ne_bytes();
            libc::write(wr, err.as_ptr().cast(), err.len());
            libc::_exit(EXIT_NOT_FOUND);
        }
    }
    let fork_errno = Errno::last();
    // SAFETY: closing descriptors this function owns.
    unsafe { libc::close(wr) };
    if pid < 0 {
        unsafe { libc::close(rd) };
        return Err(SpawnError { errno: fork_errno, exec: false });
    }
    // EOF (exec closed the write end) means the command runs; four bytes are exec's errno.
    let mut buf = [0u8; 4];
    let n = loop {
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(rd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 || Errno::last() != Errno::EINTR {
            break n;
        }
    };
    unsafe { libc::close(rd) };
    if n == 4 {
        // The child has _exited; reap it here so the caller never sees its pid.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(SpawnError { errno: Errno::from_raw(i32::from_ne_bytes(buf)), exec: true });
    }
    Ok(pid)
}

/// Runs in the child between fork and exec. Errors here are deliberately ignored: each step is a
/// nicety that must not stop the command from running.
unsafe fn child_setup() {
    // Own process group, so `-g` and the terminal's job control address it and its children.
    libc::setpgid(0, 0);
    // Take the terminal's foreground so the shell or REPL we run can read and get ^C. The kernel
    // allows a background tcsetpgrp only while SIGTTOU is blocked or ignored, and the mask is
    // still oominit's full one here. ENOTTY (no terminal) is the usual, fine, answer.
    if libc::isatty(libc::STDIN_FILENO) == 1 {
        libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
    }
    // Default dispositions: Rust's runtime ignores SIGPIPE, a parent may have ignored others, and
    // an ignored disposition survives exec. Raw rt_sigaction because glibc's wrappers refuse 32
    // and 33 (its internal signals), which a parent can still leave ignored. An all-zero kernel
    // sigaction is SIG_DFL, no flags, empty mask, whatever the arch's layout.
    let dfl = [0usize; 5];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<usize>(), 8usize);
        }
    }
    // Last, so nothing is delivered before the dispositions are sane.
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
}
