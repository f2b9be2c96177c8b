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

/// Write all of `text` to `fd` (see [`crate::emit::write_all`]).
pub fn out(fd: i32, text: &[u8]) {
    crate::emit::write_all(fd, text);
}

#[macro_export]
macro_rules! diag {
    ($level:expr, $($arg:tt)*) => {
        if $crate::diag::enabled($level) {
            $crate::diag::line(format_args!($($arg)*));
        }
    };
}
