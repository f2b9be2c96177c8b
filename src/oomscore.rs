//! oominit's own `oom_score_adj`: lowered to -1000 so that it survives to report, which also
//! spares it from a `memory.oom.group` kill (the kernel skips -1000 tasks there).
//! Lowered only after the command is forked, so the command keeps the value it inherited.

use std::io::Write;

const PATH: &str = "/proc/self/oom_score_adj";

/// Lower our own score. Needs CAP_SYS_RESOURCE (not in Docker's or Kubernetes' default set):
/// without it this fails, silently unless `-v`.
pub fn protect() {
    // No O_CREAT or O_TRUNC: the file is always there; one system call less than fs::write.
    if let Err(e) = crate::open::write_only(PATH).and_then(|mut f| f.write_all(b"-1000")) {
        crate::diag!(1, "cannot lower oom_score_adj to protect oominit: {e}");
    }
}
