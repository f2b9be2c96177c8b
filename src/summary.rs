//! The exit record in one line a person reads in `docker logs` or `kubectl logs`, written to
//! stderr just before it when something was OOM-killed:
//!
//! `oominit: memhog (pid 14) OOM-killed at the container's 32 MiB limit (anon 31 MiB, kernel
//! 392 KiB); main exited 0 -> exit 137 (--strict)`

use crate::cgroup::Breakdown;
use crate::record::{ExitRecord, OomInfo, PreOomStop, Read, Scope, Verdict};
use crate::signals;

/// The line, or None when nothing was OOM-killed and oominit did not stop main before an OOM.
pub fn line(r: &ExitRecord) -> Option<String> {
    let o = &r.oom;
    if o.kills == 0 {
        return r.pre_oom_stop.as_ref().map(|p| format!("{}; {}", pre_oom_stop(p), outcome(r)));
    }
    let whose = match (o.scope, r.memory.limit_bytes) {
        (Some(Scope::Limit), Some(limit)) => format!("at the container's {} limit", size(limit)),
        (Some(Scope::Limit), None) => "at the container's limit".to_string(),
        (Some(Scope::Ancestor), _) => "at a parent cgroup's limit (the pod's, say)".to_string(),
        (Some(Scope::Host), _) => "by a host-wide OOM (the host ran out of memory)".to_string(),
        _ => "by an OOM outside the container (the host's memory, or a parent cgroup's limit)".to_string(),
    };
    let filled = o.breakdown.map(|b| filled(&b, o.breakdown_read)).unwrap_or_default();
    Some(format!("{} {whose}{filled}; {}", who(o), outcome(r)))
}

/// Who was killed: the main process if it was, else the first named, and how many more.
fn who(o: &OomInfo) -> String {
    let shown = o.victims.iter().find(|v| v.main && o.main_killed).or(o.victims.first());
    let Some(v) = shown else {
        return match o.kills {
            1 => "a process (not named) was OOM-killed".to_string(),
            n => format!("{n} processes (not named) were OOM-killed"),
        };
    };
    let name = v.comm.as_deref().or(v.argv.first().map(String::as_str)).unwrap_or("a process");
    let main = if v.main { "the main process " } else { "" };
    match o.kills.saturating_sub(1) {
        0 => format!("{main}{name} (pid {}) was OOM-killed", v.pid),
        more => format!("{main}{name} (pid {}) and {more} more were OOM-killed", v.pid),
    }
}

/// The two largest kinds of memory, as ` (anon 31 MiB, tmpfs 1 MiB)`.
fn filled(b: &Breakdown, read: Option<Read>) -> String {
    let mut kinds = [
        ("anon", b.anon_bytes),
        ("tmpfs/shm", b.shmem_bytes),
        ("page cache", b.file_bytes),
        ("kernel", b.kernel_bytes),
        ("sockets", b.sock_bytes),
    ]
    .map(|(k, v)| (k, v.unwrap_or(0)));
    // Stable: among equals, the order above.
    kinds.sort_by_key(|&(_, v)| std::cmp::Reverse(v));
    let shown: Vec<String> =
        kinds.iter().take(2).filter(|(_, v)| *v > 0).map(|(k, v)| format!("{k} {}", size(*v))).collect();
    if shown.is_empty() {
        return String::new();
    }
    let when = if read == Some(Read::AfterKill) { "after the kill: " } else { "" };
    format!(" ({when}{})", shown.join(", "))
}

/// `--pre-oom-stop`: what was sent, and at what.
fn pre_oom_stop(p: &PreOomStop) -> String {
    let at = match (p.unreclaimable_bytes, p.limit_bytes) {
        (Some(u), Some(l)) => format!(" at {} of the {} limit unreclaimable", size(u), size(l)),
        _ => String::new(),
    };
    format!("sent main {}{at}, before any OOM kill (--pre-oom-stop)", p.signal)
}

/// How main ended and what oominit exits with.
fn outcome(r: &ExitRecord) -> String {
    let main = match (r.verdict, r.main.exit_code, r.main.signal) {
        (Verdict::MainOom, ..) => "main was the victim".to_string(),
        (_, Some(code), _) => format!("main exited {code}"),
        (_, None, Some(sig)) => format!("main died of {}", signals::name(sig)),
        (_, None, None) => "main never ran".to_string(),
    };
    let why = match (r.stopped, r.strict_applied) {
        (Some(_), _) => " (--on-leaf-oom exit)",
        (None, true) => " (--strict)",
        (None, false) => "",
    };
    let stopped = if r.stopped.is_some() { "oominit stopped main; " } else { "" };
    format!("{stopped}{main} -> exit {}{why}", r.exit_code)
}

/// Bytes as a person reads them: KiB below 1 MiB, MiB below 10 GiB, GiB above.
fn size(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let round = |unit: u64| bytes.saturating_add(unit / 2) / unit;
    match bytes {
        b if b < MIB => format!("{} KiB", round(KIB)),
        b if b < 10 * GIB => format!("{} MiB", round(MIB)),
        _ => format!("{} GiB", round(GIB)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{Counters, Memory, Version};
    use crate::reap::Status;
    use crate::record::{ArgvShown, MainEnd, MainInfo, MemoryInfo, Victim, SCHEMA};
    use crate::victims::attribution::Source;

    fn victim(pid: i32, comm: Option<&str>, main: bool) -> Victim {
        Victim {
            pid,
            comm: comm.map(String::from),
            argv: vec!["/memhog".into(), "128".into()],
            rss_bytes: Some(32 << 20),
            main,
            source: Source::Proc,
            uncertain: false,
        }
    }

    fn record(verdict: Verdict, end: Status, exit_code: i32, strict: bool, oom: OomInfo) -> ExitRecord {
        let memory = Memory { limit_bytes: Some(32 << 20), ..Memory::default() };
        ExitRecord {
            event: "exit",
            schema: SCHEMA,
            verdict,
            exit_code,
            strict_applied: strict,
            stopped: None,
            pre_oom_stop: None,
            main: MainInfo::new(Some(7), &["sh".into()], ArgvShown::All, MainEnd::Ended(end)),
            oom,
            memory: MemoryInfo::new(Some((Version::V1, "/".into())), memory, Some("eventfd")),
            duration_ms: 1,
            time: String::new(),
        }
    }

    fn oom(kills: u64, scope: Option<Scope>, victims: Vec<Victim>, breakdown: Option<Breakdown>) -> OomInfo {
        let main_killed = victims.iter().any(|v| v.main);
        OomInfo {
            kills,
            main_killed,
            scope,
            victims,
            unnamed: 0,
            victims_omitted: 0,
            counters: Counters::default(),
            breakdown,
            breakdown_read: breakdown.map(|_| Read::BeforeKill),
            largest: Vec::new(),
            host: None,
        }
    }

    const HOG: Breakdown = Breakdown {
        anon_bytes: Some(31 << 20),
        file_bytes: Some(0),
        shmem_bytes: Some(1 << 20),
        kernel_bytes: Some(400 << 10),
        sock_bytes: None,
    };

    #[test]
    fn one_line_says_who_whose_limit_what_and_the_outcome() {
        use Status::*;
        use Verdict::*;
        #[rustfmt::skip]
        let rows: Vec<(ExitRecord, Option<&str>)> = vec![
            (record(Clean, Exited(0), 0, false, oom(0, None, vec![], None)), None),
            (record(LeafOom, Exited(0), 137, true, oom(1, Some(Scope::Limit), vec![victim(14, Some("memhog"), false)], Some(HOG))),
                Some("memhog (pid 14) was OOM-killed at the container's 32 MiB limit (anon 31 MiB, tmpfs/shm 1 MiB); main exited 0 -> exit 137 (--strict)")),
            (record(MainOom, Status::Signaled(9), 137, false, oom(1, Some(Scope::Limit), vec![victim(7, Some("memhog"), true)], None)),
                Some("the main process memhog (pid 7) was OOM-killed at the container's 32 MiB limit; main was the victim -> exit 137")),
            (record(LeafOom, Exited(0), 0, false, oom(46, Some(Scope::Limit), vec![], Some(Breakdown { anon_bytes: Some(0), ..HOG }))),
                Some("46 processes (not named) were OOM-killed at the container's 32 MiB limit (tmpfs/shm 1 MiB, kernel 400 KiB); main exited 0 -> exit 0")),
            (record(LeafOom, Status::Signaled(15), 143, false, oom(3, Some(Scope::Unknown), vec![victim(9, None, false)], None)),
                Some("/memhog (pid 9) and 2 more were OOM-killed by an OOM outside the container (the host's memory, or a parent cgroup's limit); main died of SIGTERM -> exit 143")),
            (record(LeafOom, Exited(0), 0, false, oom(1, Some(Scope::Ancestor), vec![victim(14, Some("memhog"), false)], None)),
                Some("memhog (pid 14) was OOM-killed at a parent cgroup's limit (the pod's, say); main exited 0 -> exit 0")),
            (record(LeafOom, Exited(0), 0, false, oom(1, Some(Scope::Host), vec![victim(14, Some("memhog"), false)], None)),
                Some("memhog (pid 14) was OOM-killed by a host-wide OOM (the host ran out of memory); main exited 0 -> exit 0")),
        ];
        for (r, want) in rows {
            assert_eq!(line(&r).as_deref(), want);
        }
    }

    #[test]
    fn a_pre_oom_stop_without_a_kill_says_so() {
        let mut r = record(Verdict::Clean, Status::Exited(0), 0, false, oom(0, None, vec![], None));
        assert_eq!(line(&r), None);
        r.pre_oom_stop = Some(PreOomStop {
            signal: "SIGTERM".into(),
            at: "2026-11-29T06:00:00.000Z".into(),
            unreclaimable_bytes: Some(29 << 20),
            threshold_bytes: Some(28 << 20),
            limit_bytes: Some(32 << 20),
            kills_after: 0,
        });
        assert_eq!(
            line(&r).as_deref(),
            Some("sent main SIGTERM at 29 MiB of the 32 MiB limit unreclaimable, before any OOM kill (--pre-oom-stop); main exited 0 -> exit 0")
        );
    }

    #[test]
    fn a_stop_by_oominit_says_so() {
        let o = oom(1, Some(Scope::Limit), vec![victim(14, Some("memhog"), false)], None);
        let mut r = record(Verdict::LeafOom, Status::Signaled(15), 137, false, o);
        r.stopped = Some(crate::record::Stopped::leaf_oom(std::time::Duration::from_secs(10)));
        assert_eq!(
            line(&r).as_deref(),
            Some("memhog (pid 14) was OOM-killed at the container's 32 MiB limit; oominit stopped main; main died of SIGTERM -> exit 137 (--on-leaf-oom exit)")
        );
    }

    #[test]
    fn a_breakdown_read_after_the_kill_says_so() {
        let mut o = oom(1, Some(Scope::Limit), vec![], Some(HOG));
        o.breakdown_read = Some(Read::AfterKill);
        let r = record(Verdict::LeafOom, Status::Exited(0), 0, false, o);
        assert!(line(&r).unwrap().contains("(after the kill: anon 31 MiB, tmpfs/shm 1 MiB)"));
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        for (bytes, text) in [
            (0, "0 KiB"),
            (400 << 10, "400 KiB"),
            (32 << 20, "32 MiB"),
            (12 << 30, "12 GiB"),
            (u64::MAX, "17179869183 GiB"),
        ] {
            assert_eq!(size(bytes), text);
        }
    }
}
