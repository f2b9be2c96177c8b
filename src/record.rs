//! What happened, as JSON lines: the verdict, the live `oom` event and the `exit` record
//! (schema 1, `schema/oominit-record.schema.json`), and the compact form for Kubernetes'
//! termination log.

use serde::Serialize;

use crate::cgroup::{Counters, Memory, Version};
use crate::reap::Status;
use crate::signals;
use crate::spawn::SpawnError;

pub const SCHEMA: u32 = 1;
/// What a termination-log record must stay under: the kubelet keeps 4096 bytes per container and
/// 12 KiB per pod, so 1024 leaves room for twelve containers.
pub const TERMINATION_LOG_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The main process died of SIGKILL and `oom_kill` rose.
    MainOom,
    /// `oom_kill` rose but the main process was not the one killed.
    LeafOom,
    /// The main process died of a signal, and no OOM kill happened (a `kill -9` is not an OOM).
    Signaled,
    Failed,
    Clean,
    SpawnFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// This cgroup hit its own limit.
    Limit,
    /// Processes were killed without the own limit being hit: a host-wide OOM or an ancestor's
    /// limit (a pod's, say).
    Outside,
}

/// How the main process ended, or why it never started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MainEnd {
    SpawnFailed(SpawnError),
    Ended(Status),
}

pub fn verdict(end: MainEnd, kills: u64) -> Verdict {
    match end {
        MainEnd::SpawnFailed(_) => Verdict::SpawnFailed,
        MainEnd::Ended(Status::Signaled(nix::libc::SIGKILL)) if kills > 0 => Verdict::MainOom,
        MainEnd::Ended(_) if kills > 0 => Verdict::LeafOom,
        MainEnd::Ended(Status::Signaled(_)) => Verdict::Signaled,
        MainEnd::Ended(Status::Exited(0)) => Verdict::Clean,
        MainEnd::Ended(Status::Exited(_)) => Verdict::Failed,
    }
}

/// Where the kills came from, judged from counter deltas; None when nothing was killed.
pub fn scope(delta: &Counters) -> Option<Scope> {
    match delta.kills() {
        0 => None,
        _ if delta.hit_own_limit() => Some(Scope::Limit),
        _ => Some(Scope::Outside),
    }
}

/// A process the kernel killed, as `victims.rs` found it: `comm` and `rss_bytes` as last read
/// while it was alive (null when never seen alive), `source` how oominit knows (reaped, proc,
/// pidfd, vanished), `uncertain` when the evidence does not single it out (more deaths by SIGKILL
/// than kills, or a process that vanished).
#[derive(Debug, Clone, Serialize)]
pub struct Victim {
    pub pid: i32,
    pub comm: Option<String>,
    pub argv: Vec<String>,
    pub rss_bytes: Option<u64>,
    pub main: bool,
    pub source: &'static str,
    pub uncertain: bool,
}

/// At most this many arguments of at most this many bytes each in a victim's argv.
const VICTIM_ARGS: usize = 16;
const VICTIM_ARG_BYTES: usize = 256;

/// A victim's argv, shortened.
pub fn short_argv<S: AsRef<str>>(args: impl Iterator<Item = S>) -> Vec<String> {
    args.take(VICTIM_ARGS).map(|a| truncate(a.as_ref(), VICTIM_ARG_BYTES)).collect()
}

/// The cgroup and its memory figures, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryInfo {
    pub cgroup: Option<Version>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub limit_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    /// How oominit learns of kills: "inotify", "eventfd", or "reap" (re-read at every reap and at
    /// exit, where registration failed), null without a cgroup.
    pub watch: Option<&'static str>,
    /// Why there are no figures (no memory cgroup found), or why they are incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl MemoryInfo {
    pub fn new(cgroup: Option<(Version, String)>, m: Memory, watch: Option<&'static str>) -> MemoryInfo {
        let (version, path) = cgroup.unzip();
        MemoryInfo {
            cgroup: version,
            path,
            limit_bytes: m.limit_bytes,
            peak_bytes: m.peak_bytes,
            usage_bytes: m.usage_bytes,
            watch,
            unavailable: None,
        }
    }
}

/// The live event, written the moment a kill is seen.
#[derive(Debug, Serialize)]
pub struct OomEvent<'a> {
    pub event: &'static str,
    pub schema: u32,
    /// OOM kills so far (the `oom_kill` delta since start).
    pub kills: u64,
    pub scope: Option<Scope>,
    pub victims: &'a [Victim],
    pub counters: Counters,
    pub memory: &'a MemoryInfo,
    pub time: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MainInfo {
    pub pid: Option<i32>,
    pub argv: Vec<String>,
    /// The code the main process exited with; null when a signal ended it.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub signal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawn_error: Option<String>,
}

impl MainInfo {
    pub fn new(pid: Option<i32>, argv: &[std::ffi::OsString], end: MainEnd) -> MainInfo {
        let (exit_code, signal) = match end {
            MainEnd::Ended(Status::Exited(c)) => (Some(c), None),
            MainEnd::Ended(Status::Signaled(s)) => (None, Some(s)),
            MainEnd::SpawnFailed(_) => (None, None),
        };
        MainInfo {
            pid,
            argv: argv.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            exit_code,
            signal,
            signal_name: signal.map(signals::name),
            spawn_error: match end {
                MainEnd::SpawnFailed(e) => Some(e.to_string()),
                MainEnd::Ended(_) => None,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OomInfo {
    /// OOM kills in the cgroup since oominit started.
    pub kills: u64,
    pub main_killed: bool,
    pub scope: Option<Scope>,
    pub victims: Vec<Victim>,
    /// Kills oominit cannot name (`kills` minus the victims listed).
    pub unnamed: u64,
    /// Victims left out to fit the termination log; 0 elsewhere.
    #[serde(skip_serializing_if = "is_zero")]
    pub victims_omitted: usize,
    /// Every counter's rise since start (v1 and v2 differ; see the schema).
    pub counters: Counters,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The exit record: always the last line oominit writes to its record sink.
#[derive(Debug, Clone, Serialize)]
pub struct ExitRecord {
    pub event: &'static str,
    pub schema: u32,
    pub verdict: Verdict,
    /// What oominit exits with (after `-e` and `--strict`).
    pub exit_code: i32,
    /// True when `--strict` turned a hidden OOM kill into `exit_code`.
    pub strict_applied: bool,
    pub main: MainInfo,
    pub oom: OomInfo,
    pub memory: MemoryInfo,
    pub duration_ms: u64,
    pub time: String,
}

impl ExitRecord {
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"event\":\"exit\",\"error\":\"{e}\"}}"))
    }

    /// The record in under [`TERMINATION_LOG_MAX`] bytes: victims' argv is cut first, then
    /// victims go (the last named first), then main's argv is cut, then the free-text fields.
    /// Works on a copy of the struct rather than a JSON tree, which would cost serde_json's map
    /// code in the binary.
    pub fn compact(&self) -> String {
        let mut r = self.clone();
        let fits = |r: &ExitRecord| r.to_line().len() < TERMINATION_LOG_MAX;
        if !fits(&r) {
            for v in &mut r.oom.victims {
                v.argv.truncate(2);
                v.argv.iter_mut().for_each(|a| *a = truncate(a, 32));
            }
        }
        while !fits(&r) && !r.oom.victims.is_empty() {
            r.oom.victims.pop();
            r.oom.victims_omitted += 1;
        }
        if !fits(&r) {
            r.main.argv.truncate(4);
            r.main.argv.iter_mut().for_each(|a| *a = truncate(a, 64));
        }
        let texts: [fn(&mut ExitRecord) -> Option<&mut String>; 3] =
            [|r| r.main.spawn_error.as_mut(), |r| r.memory.unavailable.as_mut(), |r| r.memory.path.as_mut()];
        for text in texts {
            if fits(&r) {
                break;
            }
            if let Some(t) = text(&mut r) {
                *t = truncate(t, 48);
            }
        }
        if !fits(&r) {
            r.main.argv.clear();
        }
        r.to_line()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Now, as RFC 3339 UTC with milliseconds: `2026-11-22T13:35:27.123Z`.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_millis())
}

pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days: exact for every day of the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        use MainEnd::*;
        use Status::*;
        assert_eq!(verdict(Ended(Signaled(9)), 1), Verdict::MainOom);
        assert_eq!(verdict(Ended(Signaled(9)), 0), Verdict::Signaled);
        assert_eq!(verdict(Ended(Exited(0)), 2), Verdict::LeafOom);
        assert_eq!(verdict(Ended(Exited(1)), 1), Verdict::LeafOom);
        assert_eq!(verdict(Ended(Signaled(15)), 1), Verdict::LeafOom);
        assert_eq!(verdict(Ended(Exited(0)), 0), Verdict::Clean);
        assert_eq!(verdict(Ended(Exited(3)), 0), Verdict::Failed);
        let enoent = SpawnError { errno: nix::errno::Errno::ENOENT, exec: true };
        assert_eq!(verdict(SpawnFailed(enoent), 0), Verdict::SpawnFailed);
    }

    #[test]
    fn scopes() {
        let c = |oom_kill, oom, failcnt| Counters {
            oom_kill: Some(oom_kill),
            oom,
            failcnt,
            ..Default::default()
        };
        assert_eq!(scope(&c(0, Some(0), None)), None);
        assert_eq!(scope(&c(1, Some(1), None)), Some(Scope::Limit));
        assert_eq!(scope(&c(1, Some(0), None)), Some(Scope::Outside), "v2 host-wide or ancestor OOM");
        assert_eq!(scope(&c(1, None, Some(39))), Some(Scope::Limit), "v1 own limit");
        assert_eq!(scope(&c(1, None, Some(0))), Some(Scope::Outside), "v1 host-wide OOM");
    }

    #[test]
    fn group_kill_counts_each_process_once() {
        // memory.events after a group kill of sh, sleep and memhog (VM, kernel 6.1).
        let text = "low 0\nhigh 0\nmax 19\noom 1\noom_kill 4\noom_group_kill 1\n";
        let get = |k| crate::cgroup::keyed::get(text, k);
        let c = Counters {
            oom_kill: get("oom_kill"),
            oom: get("oom"),
            oom_group_kill: get("oom_group_kill"),
            ..Default::default()
        };
        assert_eq!(c.kills(), 3);
        assert_eq!(scope(&c), Some(Scope::Limit));
        assert_eq!(Counters { oom_kill: Some(2), ..Default::default() }.kills(), 2, "v1 has no group kills");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_354_527, 123), "2026-11-22T13:35:27.123Z");
        assert_eq!(rfc3339(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn counter_deltas_never_underflow() {
        let then = Counters { oom_kill: Some(5), failcnt: Some(10), ..Default::default() };
        let now = Counters { oom_kill: Some(2), failcnt: Some(12), ..Default::default() };
        let d = now.since(&then);
        assert_eq!((d.oom_kill, d.failcnt, d.oom), (Some(0), Some(2), None));
    }

    #[test]
    fn compact_fits_and_stays_valid_json() {
        let huge = "x".repeat(5000);
        let argv: Vec<std::ffi::OsString> = (0..50).map(|i| format!("{huge}{i}").into()).collect();
        let victims = (0..100)
            .map(|i| Victim {
                pid: i,
                comm: Some("worker".into()),
                argv: vec![huge.clone()],
                rss_bytes: Some(1),
                main: false,
                source: "proc",
                uncertain: false,
            })
            .collect();
        let mut memory =
            MemoryInfo::new(Some((Version::V1, huge.clone())), Memory::default(), Some("eventfd"));
        memory.unavailable = Some(huge.clone());
        let r = ExitRecord {
            event: "exit",
            schema: SCHEMA,
            verdict: Verdict::LeafOom,
            exit_code: 137,
            strict_applied: true,
            main: MainInfo::new(Some(7), &argv, MainEnd::Ended(Status::Exited(0))),
            oom: OomInfo {
                kills: 100,
                main_killed: false,
                scope: Some(Scope::Limit),
                victims,
                unnamed: 0,
                victims_omitted: 0,
                counters: Counters::default(),
            },
            memory,
            duration_ms: 1,
            time: now_rfc3339(),
        };
        let c = r.compact();
        assert!(c.len() < TERMINATION_LOG_MAX, "{} bytes", c.len());
        let v: serde_json::Value = serde_json::from_str(&c).unwrap();
        assert_eq!(v["verdict"], "leaf_oom");
        assert_eq!(v["exit_code"], 137);
        assert_eq!(v["oom"]["kills"], 100);
        assert_eq!(v["oom"]["victims_omitted"], 100);
    }
}
