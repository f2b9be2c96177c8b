//! Diagnostics on stderr, gated by `-v`: one line each, prefixed `oominit:`.
//!
//! A process-wide level rather than a parameter threaded everywhere: it is set once at start-up.
//! Plain write(2), not std's buffered stdout/stderr: nothing here needs buffering, and std's
//! locked, line-buffered streams cost ~10 KB of a binary whose budget is 500 KB.

use std::sync::atomic::{AtomicU32, Ordering};

static LEVEL: AtomicU32 = AtomicU32::new(0);

/// 0: errors only; 1 (`-v`): warnings; 2 (`-vv`): what oominit does; 3: every signal and reap.
pub fn set_level(level: u32) {
    LEVEL.store(level, Ordering::Relaxed);
}

pub fn enabled(level: u32) -> bool {
    LEVEL.load(Ordering::Relaxed) >= level
}

/// Write one line in one write(2), so it does not interleave with the child's output mid-line.
/// A closed or full stderr must not stop PID 1, so the result is dropped.
pub fn line(args: std::fmt::Arguments<'_>) {
    out(nix::libc::STDERR_FILENO, format!("oominit: {args}\n").as_bytes());
}

/// Write all of `text` to `fd`, dropping errors: a closed stream must not stop PID 1. SIGPIPE is
/// blocked in oominit, so a closed pipe gives EPIPE here instead of killing it.
///
/// ENOMEM is retried for up to ~0.3 s: a pipe write allocates a page charged to oominit's cgroup,
/// and right after an OOM kill the cgroup is still full until the victim's memory is freed. Seen
/// in the VM: the live event's write failed so, and the event was lost.
pub fn out(fd: i32, mut text: &[u8]) {
    let mut nomem_retries = 0;
    while !text.is_empty() {
        // SAFETY: writing from a live slice.
        match unsafe { nix::libc::write(fd, text.as_ptr().cast(), text.len()) } {
            n if n > 0 => text = text.get(n as usize..).unwrap_or(&[]),
            -1 => match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => {}
                nix::errno::Errno::ENOMEM if nomem_retries < 30 => {
                    nomem_retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            },
            _ => return,
        }
    }
}

#[macro_export]
macro_rules! diag {
    ($level:expr, $($arg:tt)*) => {
        if $crate::diag::enabled($level) {
            $crate::diag::line(format_args!($($arg)*));
        }
    };
}
