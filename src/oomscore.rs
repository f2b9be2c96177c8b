//! oominit's own `oom_score_adj`: lowered to -1000 so that it survives to report, which also
//! spares it from a `memory.oom.group` kill (the kernel skips -1000 tasks there).
//! The command gets the original value back before exec (see `spawn`).

use std::fs;

const PATH: &str = "/proc/self/oom_score_adj";

/// Lower our own score; returns the original value when it was changed, so the child can get it
/// back. Lowering needs CAP_SYS_RESOURCE: without it this fails, silently unless `-v`.
pub fn protect() -> Option<i32> {
    let original: i32 = fs::read_to_string(PATH).ok()?.trim().parse().ok()?;
    if original == -1000 {
        return None;
    }
    match fs::write(PATH, "-1000") {
        Ok(()) => Some(original),
        Err(e) => {
            crate::diag!(1, "cannot lower oom_score_adj to protect oominit: {e}");
            None
        }
    }
}
