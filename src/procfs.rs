//! Reading /proc: which processes descend from oominit.
//!
//! Needed only for `--grace` when oominit is not PID 1: as PID 1 `kill(-1, …)` already reaches
//! every other process of the namespace, and nothing else does as a subreaper.

use std::fs;

use nix::libc::pid_t;

/// The parent pid from the text of `/proc/PID/stat`. The command name in parentheses may itself
/// hold spaces and parentheses, so the fields after it are found from the LAST ')'.
pub fn stat_ppid(stat: &str) -> Option<pid_t> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    let _state = fields.next()?;
    fields.next()?.parse().ok()
}

/// Every live descendant of `root`, children before grandchildren. Processes that come and go
/// during the walk are skipped: the caller sweeps again on the next SIGCHLD.
pub fn descendants(root: pid_t) -> Vec<pid_t> {
    // (parent, pid) pairs, sorted by parent: a binary search finds each one's children.
    let mut edges: Vec<(pid_t, pid_t)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<pid_t>().ok()) else {
                continue;
            };
            if let Some(ppid) =
                fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(stat_ppid)
            {
                edges.push((ppid, pid));
            }
        }
    }
    edges.sort_unstable();
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        let start = edges.partition_point(|&(pp, _)| pp < p);
        for &(_, c) in edges[start..].iter().take_while(|&&(pp, _)| pp == p) {
            out.push(c);
            queue.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_survives_hostile_comm() {
        // Copied from a 6.1 kernel, with the comm replaced by one a program chose itself.
        let stat = "4242 (a) b) (c) S 17 4242 4242 0 -1 4194560 104 0 0 0 0 0 0 0 20 0 1 0 8734 2793472 220";
        assert_eq!(stat_ppid(stat), Some(17));
        assert_eq!(stat_ppid("1 (init) S 0 1 1 0"), Some(0));
        assert_eq!(stat_ppid("garbage"), None);
        assert_eq!(stat_ppid("1 (x) S"), None);
    }

    #[test]
    fn finds_own_children() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let me = std::process::id() as pid_t;
        assert!(descendants(me).contains(&(child.id() as pid_t)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
