//! Starting the command: PATH lookup, and a child that starts clean.
//!
//! clone + execvp by hand rather than `std::process::Command`: Command passes oominit's full signal
//! mask to the child (rust-lang/rust#101077), under which a forwarded SIGTERM would wait forever,
//! and its environment machinery costs ~20 KB of the binary. The clone is a vfork's (CLONE_VM |
//! CLONE_VFORK, as musl's posix_spawn): no page tables copied for a child that execs at once, nor
//! torn down at its exec (a fork made `oominit -- /bin/true` 6% slower). The exec error comes
//! back in the memory they share, so "not found" (127) is told from "not executable" (126). A
//! script without `#!` runs under /bin/sh, as with glibc's execvp (see [`Script`]).

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

/// The child's stack between clone and exec.
const CHILD_STACK: usize = 32 * 1024;

/// What the child needs, prepared before the clone, and what it says back.
struct Child<'a> {
    /// The signals oominit ignores, to reset.
    ignored: u64,
    /// The command's argv, null-terminated.
    argv: *const *const libc::c_char,
    script: &'a mut Script,
    /// exec's errno, written by the child where the exec failed: oominit, suspended until the
    /// exec or the exit, reads it in the memory they share (no pipe, as in glibc's posix_spawn).
    errno: libc::c_int,
}

/// The child, from clone to exec: where the exec fails, its errno for oominit and an exit code.
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Child`, alive while the parent is suspended (CLONE_VFORK);
    // every call is async-signal-safe.
    unsafe {
        let child = &mut *arg.cast::<Child<'_>>();
        child_setup(child.ignored);
        libc::execvp(*child.argv, child.argv);
        let mut errno = Errno::last_raw();
        if errno == libc::ENOEXEC {
            child.script.run();
            // No /bin/sh either: the kernel's answer about the command stands.
            errno = libc::ENOEXEC;
        }
        std::ptr::write_volatile(&mut child.errno, errno);
        libc::_exit(SpawnError { errno: Errno::from_raw(errno), exec: true }.exit_code())
    }
}

/// Start the command; returns its pid, which is also its process group.
pub fn spawn(argv: &[OsString]) -> Result<libc::pid_t, SpawnError> {
    // Everything the child needs is built before the clone: the child must not allocate.
    let einval = SpawnError { errno: Errno::EINVAL, exec: true };
    let args: Vec<CString> =
        argv.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>().map_err(|_| einval)?;
    if args.is_empty() {
        return Err(SpawnError { errno: Errno::ENOENT, exec: true });
    }
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let mut script = Script::new(&args);
    let ignored = signals_ignored();

    let mut child = Child { ignored, argv: ptrs.as_ptr(), script: &mut script, errno: 0 };
    // The child's own stack (the parent's is in use below the call), on the heap: a small
    // RLIMIT_STACK leaves PID 1 little room. musl's execvp builds a PATH entry on it (< 4.2 KiB).
    let mut stack = vec![0u8; CHILD_STACK];
    let top = stack.as_mut_ptr().wrapping_add(stack.len()) as usize & !15;
    let arg: *mut Child<'_> = &mut child;
    // SAFETY: oominit has a single thread here. With CLONE_VM the child runs in oominit's memory,
    // and with CLONE_VFORK oominit is suspended until the child execs or exits: the child makes
    // only async-signal-safe calls on memory prepared above, on its own stack.
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg.cast(),
        )
    };
    if pid < 0 {
        return Err(SpawnError { errno: Errno::last(), exec: false });
    }
    // SAFETY: the child is past its exec or gone: nothing else writes `errno` now.
    let errno = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*arg).errno)) };
    if errno != 0 {
        // The child has _exited; reap it here so the caller never sees its pid.
        // SAFETY: waitpid on our own child, no status wanted.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(SpawnError { errno: Errno::from_raw(errno), exec: true });
    }
    Ok(pid)
}

/// A command the kernel cannot execute (ENOEXEC: a text file without `#!`) is run by /bin/sh,
/// as POSIX asks of execvp and as glibc's does; musl's does not. tini, built on glibc, runs such
/// scripts, so an image switching from tini keeps working. Prepared before fork; used only in
/// the child, after the exec failed.
struct Script {
    /// `/bin/sh`, the script's path (filled in the child), then the command's arguments.
    argv: Vec<*const libc::c_char>,
    /// The command's name, and PATH, to find the script where the name has no `/`.
    name: CString,
    path: CString,
    /// Where the script's path is built.
    buf: Vec<u8>,
}

const SH: &std::ffi::CStr = c"/bin/sh";

impl Script {
    fn new(args: &[CString]) -> Script {
        let mut argv = vec![SH.as_ptr(), args[0].as_ptr()];
        argv.extend(args[1..].iter().map(|a| a.as_ptr()));
        argv.push(std::ptr::null());
        // musl's execvp searches this PATH when none is set.
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/bin:/usr/bin".into());
        Script {
            argv,
            name: args[0].clone(),
            path: CString::new(path.as_bytes()).unwrap_or_default(),
            buf: Vec::with_capacity(4096),
        }
    }

    /// In the child: exec /bin/sh on the script execvp found; returns only if that fails.
    unsafe fn run(&mut self) {
        let name = self.name.as_bytes();
        if !name.contains(&b'/') {
            // The file execvp found: the first PATH entry holding an executable of that name.
            let found = self.path.as_bytes().split(|&b| b == b':').any(|dir| {
                let dir = if dir.is_empty() { &b"."[..] } else { dir };
                let len = dir.len() + 1 + name.len() + 1;
                if len > self.buf.capacity() {
                    return false;
                }
                self.buf.clear();
                self.buf.extend_from_slice(dir);
                self.buf.push(b'/');
                self.buf.extend_from_slice(name);
                self.buf.push(0);
                libc::access(self.buf.as_ptr().cast(), libc::X_OK) == 0
            });
            if !found {
                return;
            }
            self.argv[1] = self.buf.as_ptr().cast();
        }
        libc::execv(SH.as_ptr(), self.argv.as_ptr());
    }
}

/// The signals oominit ignores (`SigIgn` of its /proc status: Rust's runtime ignores SIGPIPE, a
/// parent may have ignored others), to be set back to their defaults in the child; every signal
/// where /proc cannot say. One read in oominit before the fork, instead of 62 system calls in the
/// child between its fork and its exec, where the command waits for them.
fn signals_ignored() -> u64 {
    use std::os::unix::fs::FileExt;
    // On the heap: a small RLIMIT_STACK leaves PID 1 little room (tests/core.rs).
    let mut buf = vec![0u8; 4096];
    let read = crate::open::read_only("/proc/self/status").and_then(|f| f.read_at(&mut buf, 0));
    let text = read.ok().and_then(|n| std::str::from_utf8(buf.get(..n)?).ok());
    text.and_then(crate::procfs::signals_ignored).unwrap_or(u64::MAX)
}

/// Runs in the child between fork and exec. Errors here are deliberately ignored: each step is a
/// nicety that must not stop the command from running.
unsafe fn child_setup(ignored: u64) {
    // Own process group, so `-g` and the terminal's job control address it and its children.
    libc::setpgid(0, 0);
    // Take the terminal's foreground so the shell or REPL we run can read and get ^C. The kernel
    // allows a background tcsetpgrp only while SIGTTOU is blocked or ignored, and the mask is
    // still oominit's full one here. ENOTTY (no terminal) is the usual, fine, answer.
    if libc::isatty(libc::STDIN_FILENO) == 1 {
        libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp());
    }
    // Default dispositions for those ignored (`ignored`): an ignored disposition survives exec;
    // handled ones are reset by exec itself. Raw rt_sigaction because glibc's wrappers refuse 32
    // and 33 (its internal signals), which a parent can still leave ignored. An all-zero kernel
    // sigaction is SIG_DFL, no flags, empty mask, whatever the arch's layout.
    let dfl = [0usize; 5];
    for sig in 1..=64 {
        if ignored & (1u64 << (sig - 1)) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<usize>(), 8usize);
        }
    }
    // Last, so nothing is delivered before the dispositions are sane.
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
}
