//! The `oominit` binary: everything lives in the library; this only hands it the arguments and
//! turns its answer into an exit (and leaves the unwinder out of the static build: `no_unwinder`).
//!
//! C's `main`, not Rust's: std's start-up installs handlers that report a stack overflow (a
//! signal stack mapped, SIGSEGV and SIGBUS asked and set) and ignores SIGPIPE, a dozen system
//! calls at every container start that PID 1 has no use for: oominit blocks every signal and
//! reads them from a signalfd, and an overflow ends it with SIGSEGV either way. Kept: the
//! standard descriptors made valid, as std does (see `standard_fds_open`). musl gives std no
//! arguments without its start-up, so they come from `argv` here.

#![cfg_attr(not(test), no_main)]
// Under `cargo test` Rust's main stands in for the C one, and nothing calls these.
#![cfg_attr(test, allow(dead_code))]

#[cfg(all(panic = "abort", target_env = "musl"))]
mod no_unwinder;

use std::ffi::{c_char, c_int, CStr, OsString};
use std::os::unix::ffi::OsStringExt;

use nix::libc;

/// Freed blocks kept, never unmapped: an unmap can be a charge at a full cgroup (`heap`).
#[global_allocator]
static HEAP: oominit::heap::KeepingHeap = oominit::heap::KeepingHeap::new();

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    standard_fds_open();
    // SAFETY: the C runtime passes argc pointers to NUL-terminated strings, then a null.
    let args = unsafe { arguments(argc, argv) };
    oominit::main_entry(args)
}

/// The arguments after the program's name.
///
/// # Safety
/// `argv` holds `argc` valid C strings, or fewer followed by a null.
unsafe fn arguments(argc: c_int, argv: *const *const c_char) -> Vec<OsString> {
    let count = usize::try_from(argc).unwrap_or(0);
    let mut args = Vec::with_capacity(count.saturating_sub(1));
    for i in 1..count {
        // SAFETY: i < argc (the caller's promise); a null ends the list early.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: a non-null entry is a NUL-terminated string.
        args.push(OsString::from_vec(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()));
    }
    args
}

/// Descriptors 0, 1 and 2 open, on /dev/null where they were closed: else the first files
/// oominit opens would take their numbers, and its diagnostics (fd 2) or records (fd 1) would be
/// written into them, a termination log or oom_score_adj among them.
fn standard_fds_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: poll reads and writes three pollfds we own, without waiting.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for fd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
        // SAFETY: open of a constant path; the lowest free descriptor is this one, as those
        // below are open (or have just been reopened).
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if got >= 0 && got != fd.fd {
            // SAFETY: closing the descriptor just opened.
            unsafe { libc::close(got) };
        }
    }
}
