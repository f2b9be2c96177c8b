//! Reading /proc: which processes descend from oominit (for `--grace` when oominit is not PID 1:
//! as PID 1 `kill(-1, …)` already reaches every other process of the namespace), and a process's
//! command name and resident memory from its `stat` (for naming OOM victims).

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

/// The kernel's PF_EXITING task flag (include/linux/sched.h): set in do_exit before the memory
/// is released, so a process showing it no longer shows the size it was killed at.
const PF_EXITING: u64 = 0x4;

/// From the text of `/proc/PID/stat`: the command name, the resident set in pages, and whether
/// the process is exiting or dead (PF_EXITING, state Z or X). The name sits between the first '('
/// and the last ')' and may itself hold both.
pub fn stat_comm_rss(stat: &str) -> Option<(&str, u64, bool)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After the name: field 3 (state) onwards; flags is field 9, rss field 24.
    let fields: [&str; 22] = {
        let mut it = stat.get(close + 1..)?.split_ascii_whitespace();
        let mut f = [""; 22];
        for slot in f.iter_mut() {
            *slot = it.next()?;
        }
        f
    };
    let flags: u64 = fields[9 - 3].parse().ok()?;
    let rss = fields[24 - 3].parse().ok()?;
    let gone = flags & PF_EXITING != 0 || matches!(fields[0], "Z" | "X");
    Some((comm, rss, gone))
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
    fn comm_and_rss() {
        // /proc/self/stat of `cat` on this project's 6.18 kernel: rss is 380 pages.
        let stat = "9322 (cat) R 9320 9320 1822 0 -1 4194304 100 0 1 0 0 0 0 0 20 0 1 0 529482 3133440 380 18446744073709551615 93989753360384 93989753380265 140726448669664 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 93989753396272 93989753397888 93990697144320 140726448671456 140726448671476 140726448671476 140726448672747 0";
        assert_eq!(stat_comm_rss(stat), Some(("cat", 380, false)));
        let hostile = stat.replacen("(cat)", "(a) b) (c)", 1);
        assert_eq!(stat_comm_rss(&hostile), Some(("a) b) (c", 380, false)));
        // The same task after do_exit began (flags | PF_EXITING), and as a zombie.
        assert_eq!(stat_comm_rss(&stat.replacen(" 4194304 ", " 4194308 ", 1)), Some(("cat", 380, true)));
        assert_eq!(stat_comm_rss(&stat.replacen(") R ", ") Z ", 1)), Some(("cat", 380, true)));
        assert_eq!(stat_comm_rss("9322 (cat) R 1 2"), None);
        assert_eq!(stat_comm_rss(")("), None);
        assert_eq!(stat_comm_rss(""), None);
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
