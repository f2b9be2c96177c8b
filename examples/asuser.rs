//! Test workload: runs a command as another user, as `setpriv --reuid`, `gosu` or `su` do for a
//! server's workers (busybox, in the FROM-scratch test image and the VM, has none that can).
//!
//! `asuser UID COMMAND [ARG...]`: drops the supplementary groups, sets the group and user ids to
//! UID, and execs COMMAND (searched in PATH).

use std::ffi::CString;

use nix::libc;
use nix::unistd::execvp;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let uid: u32 = args.first().and_then(|u| u.parse().ok()).expect("usage: asuser UID COMMAND [ARG...]");
    let command: Vec<CString> = args[1..].iter().map(|a| CString::new(a.as_str()).unwrap()).collect();
    assert!(!command.is_empty(), "usage: asuser UID COMMAND [ARG...]");
    // SAFETY: plain system calls on integers (and an empty list).
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups: {}", std::io::Error::last_os_error());
        assert_eq!(libc::setgid(uid), 0, "setgid: {}", std::io::Error::last_os_error());
        assert_eq!(libc::setuid(uid), 0, "setuid: {}", std::io::Error::last_os_error());
    }
    let e = execvp(&command[0], &command).unwrap_err();
    eprintln!("asuser: {}: {e}", args[1]);
    std::process::exit(127);
}
