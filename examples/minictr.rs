//! Test helper: runs a command the way a container runtime does, for the VM suite (busybox's
//! `unshare` has no cgroup namespace).
//!
//! `minictr CGROUP_DIR v1|v2 [ro] -- COMMAND [ARG...]`: new PID and mount namespaces; the child
//! moves itself into CGROUP_DIR, unshares its cgroup namespace there (so it sees `0::/`), mounts
//! a fresh /proc and a cgroupfs whose root is that namespace (read-only with `ro`, as Docker does),
//! and execs COMMAND as PID 1. The parent stays outside the cgroup, waits, and exits with the
//! child's code, or 128+N when a signal N ended it.

use std::ffi::CString;

use nix::libc;

fn check(what: &str, rc: libc::c_int) {
    if rc != 0 {
        eprintln!("minictr: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(125);
    }
}

fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) {
    let c = |s: &str| CString::new(s).unwrap();
    let (src, target, fstype, data) = (c(src), c(target), c(fstype), c(data));
    let rc =
        unsafe { libc::mount(src.as_ptr(), target.as_ptr(), fstype.as_ptr(), flags, data.as_ptr().cast()) };
    check(&format!("mount {} on {}", fstype.to_string_lossy(), target.to_string_lossy()), rc);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sep =
        args.iter().position(|a| a == "--").expect("usage: minictr CGROUP_DIR v1|v2 [ro] -- COMMAND...");
    let (dir, version, ro) = (&args[1], &args[2], args[3..sep].iter().any(|a| a == "ro"));
    let argv: Vec<CString> = args[sep + 1..].iter().map(|a| CString::new(a.as_str()).unwrap()).collect();

    check("unshare", unsafe { libc::unshare(libc::CLONE_NEWPID | libc::CLONE_NEWNS) });
    let none = CString::new("none").unwrap();
    let root = CString::new("/").unwrap();
    check("private /", unsafe {
        libc::mount(
            none.as_ptr(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    });
    match unsafe { libc::fork() } {
        0 => {
            std::fs::write(format!("{dir}/cgroup.procs"), "0").unwrap_or_else(|e| {
                eprintln!("minictr: joining {dir}: {e}");
                std::process::exit(125)
            });
            check("unshare cgroup", unsafe { libc::unshare(libc::CLONE_NEWCGROUP) });
            mount("proc", "/proc", "proc", 0, "");
            let ro_flag = if ro { libc::MS_RDONLY } else { 0 };
            if version == "v2" {
                // The kernel refuses the same superblock on the same mount point (EBUSY): detach
                // the inherited mount in this private namespace first.
                let target = CString::new("/sys/fs/cgroup").unwrap();
                unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
                mount("cgroup2", "/sys/fs/cgroup", "cgroup2", ro_flag, "");
            } else {
                mount("tmpfs", "/sys/fs/cgroup", "tmpfs", 0, "mode=755");
                std::fs::create_dir("/sys/fs/cgroup/memory").unwrap();
                mount("cgroup", "/sys/fs/cgroup/memory", "cgroup", ro_flag, "memory");
            }
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
            eprintln!("minictr: exec: {}", std::io::Error::last_os_error());
            std::process::exit(127);
        }
        -1 => check("fork", -1),
        pid => {
            let mut st = 0;
            unsafe { libc::waitpid(pid, &mut st, 0) };
            let code = if libc::WIFEXITED(st) { libc::WEXITSTATUS(st) } else { 128 + libc::WTERMSIG(st) };
            std::process::exit(code);
        }
    }
}
