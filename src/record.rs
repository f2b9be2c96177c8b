//! What happened, as JSON lines: the verdict, the live `oom` event and the `exit` record
//! (schema 2, `schema/oominit-record.schema.json`), and the compact form for Kubernetes'
//! termination log.

use serde::Serialize;

use crate::cgroup::{Breakdown, Counters, Memory, Version};
use crate::host::HostMemory;
use crate::oom::prestop::Sent;
use crate::reap::Status;
use crate::signals;
use crate::spawn::SpawnError;
use crate::victims::attribution::Source;

/// 2: `scope` tells `ancestor`, `host` and `unknown` apart where 1 said `outside`, and a
/// container at its own limit is `limit` even where a parent's equal limit ran out first.
pub const SCHEMA: u32 = 2;
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
    /// This cgroup hit its own limit, or reached it while a parent's equal limit ran out first
    /// (Kubernetes' pod of one container).
    Limit,
    /// Killed at a limit above the container's own: the host never ran short.
    Ancestor,
    /// A host-wide OOM: the host reclaimed directly and had next to nothing left.
    Host,
    /// Killed from outside, and the host's figures do not say which.
    Unknown,
}

/// How the main process ended, or why it never started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MainEnd {
    SpawnFailed(SpawnError),
    Ended(Status),
}

/// What the verdict is decided from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Facts {
    pub end: MainEnd,
    /// Processes OOM-killed since start.
    pub kills: u64,
    /// The main process is among the victims named (certain or not).
    pub main_named: bool,
    /// Kills no victim was named for, certain or not: those that may be main's although main
    /// was not seen dying of them.
    pub unexplained: u64,
    /// oominit itself sent the main process a SIGKILL (a signal rewritten to KILL, say).
    pub main_sigkilled_by_oominit: bool,
}

pub fn verdict(f: &Facts) -> Verdict {
    match f.end {
        MainEnd::SpawnFailed(_) => Verdict::SpawnFailed,
        MainEnd::Ended(Status::Signaled(nix::libc::SIGKILL)) if f.kills > 0 && main_oom_killed(f) => {
            Verdict::MainOom
        }
        MainEnd::Ended(_) if f.kills > 0 => Verdict::LeafOom,
        MainEnd::Ended(Status::Signaled(_)) => Verdict::Signaled,
        MainEnd::Ended(Status::Exited(0)) => Verdict::Clean,
        MainEnd::Ended(Status::Exited(_)) => Verdict::Failed,
    }
}

/// The main process died of SIGKILL while processes were OOM-killed: was it one of them? Yes
/// when it was named. Otherwise only if a kill is left that no victim was named for (the kernel
/// may count a kill before its death is seen, and then the death goes unnamed) and the SIGKILL was
/// not oominit's own.
fn main_oom_killed(f: &Facts) -> bool {
    f.main_named || (f.unexplained > 0 && !f.main_sigkilled_by_oominit)
}

/// Where the kills came from, judged from counter deltas and the host's memory at the last kill;
/// None when nothing was killed. Host-wide only where the host did reclaim directly and what it
/// had available, less what the kill may have given back by the time it was read, was under 1/20
/// of its memory (32 MiB at least: a small machine's reserves are a larger share of it; a 128 MiB
/// VM had 8% left at its OOM); a limit above the container's where the host never reclaimed
/// directly; otherwise unknown, not a guess.
pub fn scope(delta: &Counters, at_kill: &AtKill) -> Option<Scope> {
    if delta.kills() == 0 {
        return None;
    }
    if delta.hit_own_limit() {
        return Some(Scope::Limit);
    }
    let Some(host) = at_kill.host else { return Some(Scope::Unknown) };
    let short = match (host.total_bytes, host.available_bytes) {
        (Some(total), Some(available)) => {
            available.saturating_sub(at_kill.freed_bytes) < (total / 20).max(32 << 20)
        }
        _ => false,
    };
    Some(match host.allocstall {
        Some(0) => Scope::Ancestor,
        Some(_) if short => Scope::Host,
        _ => Scope::Unknown,
    })
}

/// A process the kernel killed, as `victims.rs` found it: `comm` and `rss_bytes` as last read
/// while it was alive (null when never seen alive), `source` how oominit knows (reaped, proc,
/// pidfd, vanished), `uncertain` when the evidence does not single it out (more deaths by SIGKILL
/// than kills and no size stands out, or a process that vanished).
/// One of the largest processes oominit followed when a kill was seen: its size as last read
/// alive, victims included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: i32,
    pub comm: Option<String>,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Victim {
    pub pid: i32,
    pub comm: Option<String>,
    pub argv: Vec<String>,
    pub rss_bytes: Option<u64>,
    pub main: bool,
    pub source: Source,
    pub uncertain: bool,
}

impl Victim {
    /// A victim that is no one: room made in a list before anyone is named.
    pub fn placeholder() -> Victim {
        Victim {
            pid: 0,
            comm: None,
            argv: Vec::new(),
            rss_bytes: None,
            main: false,
            source: Source::Vanished,
            uncertain: true,
        }
    }
}

/// At most this many arguments of at most this many bytes each in an argv of a record.
const RECORD_ARGS: usize = 16;
const RECORD_ARG_BYTES: usize = 256;

/// How much of a process's argv records show (`--argv`): arguments can carry secrets
/// (`--password=...`, URLs with credentials, tokens), and records are shipped off the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArgvShown {
    /// Up to 16 arguments of up to 256 bytes.
    #[default]
    All,
    /// The program alone.
    First,
    None,
}

impl ArgvShown {
    pub fn parse(text: &str) -> Result<ArgvShown, String> {
        match text {
            "all" => Ok(ArgvShown::All),
            "argv0" => Ok(ArgvShown::First),
            "none" => Ok(ArgvShown::None),
            _ => Err(format!("'{text}' is not all, argv0 or none")),
        }
    }

    fn count(self) -> usize {
        match self {
            ArgvShown::All => RECORD_ARGS,
            ArgvShown::First => 1,
            ArgvShown::None => 0,
        }
    }
}

/// An argv as records show it: shortened, and no more of it than `shown`.
pub fn short_argv<S: AsRef<str>>(args: impl Iterator<Item = S>, shown: ArgvShown) -> Vec<String> {
    args.take(shown.count()).map(|a| truncate(a.as_ref(), RECORD_ARG_BYTES)).collect()
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
    /// Those this event's read named (a bounded list).
    pub victims: &'a [Victim],
    /// Named by this read beyond `victims`.
    #[serde(skip_serializing_if = "is_zero")]
    pub victims_omitted: u64,
    pub counters: Counters,
    /// What filled the cgroup before the kill; null where `memory.stat` cannot be read.
    pub breakdown: Option<Breakdown>,
    pub breakdown_read: Option<Read>,
    /// The largest processes followed when the kill was seen, at most 3.
    pub largest: &'a [Holder],
    /// The host's memory when the kill was seen: the evidence for `scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostMemory>,
    pub memory: MemoryInfo,
    pub time: String,
}

impl<'a> OomEvent<'a> {
    /// The event for these deltas since start, naming `victims` (and `omitted` more), with what
    /// filled the cgroup and who held it (`at_kill`), stamped now.
    pub fn new(
        delta: &Counters,
        (victims, victims_omitted): (&'a [Victim], u64),
        at_kill: &'a AtKill,
        memory: MemoryInfo,
    ) -> OomEvent<'a> {
        OomEvent {
            event: "oom",
            schema: SCHEMA,
            kills: delta.kills(),
            scope: scope(delta, at_kill),
            victims,
            victims_omitted,
            counters: *delta,
            breakdown: at_kill.breakdown,
            breakdown_read: at_kill.breakdown_read,
            largest: &at_kill.largest,
            host: at_kill.host,
            memory,
            time: now_rfc3339(),
        }
    }
}

/// The pre-mortem: the cgroup at its limit, as a kill would find it, for the termination log
/// (`termlog`), where the exit record replaces it.
#[derive(Debug, Serialize)]
pub struct LimitEvent<'a> {
    pub event: &'static str,
    pub schema: u32,
    /// Kills so far (the `oom_kill` delta since start), and every counter's rise.
    pub kills: u64,
    pub counters: Counters,
    pub breakdown: Option<Breakdown>,
    pub largest: &'a [Holder],
    pub memory: MemoryInfo,
    pub time: String,
}

impl<'a> LimitEvent<'a> {
    pub fn new(
        delta: &Counters,
        breakdown: Breakdown,
        largest: &'a [Holder],
        memory: MemoryInfo,
    ) -> LimitEvent<'a> {
        LimitEvent {
            event: "limit",
            schema: SCHEMA,
            kills: delta.kills(),
            counters: *delta,
            breakdown: Some(breakdown),
            largest,
            memory,
            time: now_rfc3339(),
        }
    }
}

/// `--pre-oom-stop`'s signal, the moment it is sent (or, where there was no room below the
/// limit to write it then, as soon as there is).
#[derive(Debug, Serialize)]
pub struct PreOomStopEvent {
    pub event: &'static str,
    pub schema: u32,
    pub signal: String,
    /// Memory the kernel cannot reclaim (anon, shmem, kernel) at the reading that decided it,
    /// and the fraction of the limit it had reached.
    pub unreclaimable_bytes: u64,
    pub threshold_bytes: u64,
    pub breakdown: Breakdown,
    /// OOM kills before it.
    pub kills: u64,
    pub memory: MemoryInfo,
    /// When it was sent.
    pub time: String,
}

impl PreOomStopEvent {
    pub fn new(sent: &Sent, memory: MemoryInfo) -> PreOomStopEvent {
        PreOomStopEvent {
            event: "pre_oom_stop",
            schema: SCHEMA,
            signal: signals::name(sent.signal),
            unreclaimable_bytes: sent.breakdown.unreclaimable(),
            threshold_bytes: sent.threshold,
            breakdown: sent.breakdown,
            kills: sent.kills,
            memory,
            time: rfc3339(sent.at.as_secs(), sent.at.subsec_millis()),
        }
    }
}

/// In the exit record: the signal `--pre-oom-stop` sent, and what followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreOomStop {
    pub signal: String,
    pub at: String,
    /// Left out of a termination log that would not fit otherwise (the live record has them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreclaimable_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// OOM kills counted after it: 0 when the stop came before the kernel killed anything.
    pub kills_after: u64,
}

impl PreOomStop {
    /// `sent`, with `kills` counted by the end.
    pub fn new(sent: &Sent, kills: u64) -> PreOomStop {
        PreOomStop {
            signal: signals::name(sent.signal),
            at: rfc3339(sent.at.as_secs(), sent.at.subsec_millis()),
            unreclaimable_bytes: Some(sent.breakdown.unreclaimable()),
            threshold_bytes: Some(sent.threshold),
            limit_bytes: Some(sent.limit),
            kills_after: kills.saturating_sub(sent.kills),
        }
    }
}

/// What the cgroup held when a kill was seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AtKill {
    pub breakdown: Option<Breakdown>,
    pub breakdown_read: Option<Read>,
    pub largest: Vec<Holder>,
    pub host: Option<HostMemory>,
    /// What the kill may have given back: the named victims' size as last seen alive, or the
    /// cgroup's fall from its peak, whichever is more.
    pub freed_bytes: u64,
}

/// When the breakdown was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Read {
    /// At a wake as the cgroup reached or neared its limit, before the kill.
    BeforeKill,
    /// Once the kill was seen (no wake before it): the victims' memory may be gone from it.
    AfterKill,
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
    pub fn new(pid: Option<i32>, argv: &[std::ffi::OsString], shown: ArgvShown, end: MainEnd) -> MainInfo {
        let (exit_code, signal) = match end {
            MainEnd::Ended(Status::Exited(c)) => (Some(c), None),
            MainEnd::Ended(Status::Signaled(s)) => (None, Some(s)),
            MainEnd::SpawnFailed(_) => (None, None),
        };
        MainInfo {
            pid,
            argv: short_argv(argv.iter().map(|a| a.to_string_lossy()), shown),
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
    /// Victims left out: beyond the first and last kept, and to fit the termination log.
    #[serde(skip_serializing_if = "is_zero")]
    pub victims_omitted: u64,
    /// Every counter's rise since start (v1 and v2 differ; see the schema).
    pub counters: Counters,
    /// What filled the cgroup at the last kill seen; null without one.
    pub breakdown: Option<Breakdown>,
    pub breakdown_read: Option<Read>,
    /// The largest processes followed at the last kill seen.
    pub largest: Vec<Holder>,
    /// The host's memory at the last kill seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostMemory>,
}

/// Why and how oominit stopped the main process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stopped {
    /// `leaf_oom`: a process other than main was OOM-killed (`--on-leaf-oom exit`).
    pub reason: &'static str,
    /// What main was sent first.
    pub signal: &'static str,
    /// From that signal to the SIGKILL of whatever was left, main included.
    pub grace_ms: u64,
}

impl Stopped {
    pub fn leaf_oom(grace: std::time::Duration) -> Stopped {
        Stopped {
            reason: "leaf_oom",
            signal: "SIGTERM",
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

fn is_zero(n: &u64) -> bool {
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
    /// oominit stopped the main process itself (`--on-leaf-oom exit`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<Stopped>,
    /// `--pre-oom-stop` signalled the main process; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_oom_stop: Option<PreOomStop>,
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

    /// The record in under [`TERMINATION_LOG_MAX`] bytes: the largest processes go first, victims'
    /// argv is cut next, then victims go (the last named first), then main's argv is cut, then
    /// the free-text fields, to 48 bytes, then to 16, then `pre_oom_stop`'s figures.
    /// Works on a copy of the struct rather than a JSON tree, which would cost serde_json's map
    /// code in the binary.
    pub fn compact(&self) -> String {
        let mut r = self.clone();
        let fits = |r: &ExitRecord| r.to_line().len() < TERMINATION_LOG_MAX;
        if !fits(&r) {
            r.oom.largest.clear();
        }
        if !fits(&r) {
            for v in &mut r.oom.victims {
                v.argv.truncate(2);
                v.argv.iter_mut().for_each(|a| *a = truncate(a, 32));
            }
        }
        while !fits(&r) && !r.oom.victims.is_empty() {
            r.oom.victims.pop();
            r.oom.victims_omitted = r.oom.victims_omitted.saturating_add(1);
        }
        if !fits(&r) {
            r.main.argv.truncate(4);
            r.main.argv.iter_mut().for_each(|a| *a = truncate(a, 64));
        }
        let texts: [fn(&mut ExitRecord) -> Option<&mut String>; 3] =
            [|r| r.main.spawn_error.as_mut(), |r| r.memory.unavailable.as_mut(), |r| r.memory.path.as_mut()];
        for (cut, text) in [48, 16].into_iter().flat_map(|cut| texts.map(|t| (cut, t))) {
            if fits(&r) {
                break;
            }
            if let Some(t) = text(&mut r) {
                *t = truncate(t, cut);
            }
        }
        if !fits(&r) {
            if let Some(p) = &mut r.pre_oom_stop {
                (p.unreclaimable_bytes, p.threshold_bytes, p.limit_bytes) = (None, None, None);
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
        use Verdict as V;
        let enoent = SpawnError { errno: nix::errno::Errno::ENOENT, exec: true };
        // (situation, how main ended, kills, main named, kills no one named for, oominit sent main
        // SIGKILL)
        #[rustfmt::skip]
        let rows = [
            ("main OOM-killed and named", Ended(Signaled(9)), 1, true, 0, false, V::MainOom),
            ("main OOM-killed, its death seen only after the kill was counted", Ended(Signaled(9)), 1, false, 1, false, V::MainOom),
            ("a group kill: main named uncertain, kills undercounted", Ended(Signaled(9)), 2, true, 2, false, V::MainOom),
            ("a kill -9 with nothing OOM-killed", Ended(Signaled(9)), 0, false, 0, false, V::Signaled),
            ("a worker named as the victim, then main kill -9'd", Ended(Signaled(9)), 1, false, 0, false, V::LeafOom),
            ("a worker that vanished named uncertain, then main kill -9'd", Ended(Signaled(9)), 1, false, 0, false, V::LeafOom),
            ("oominit's own SIGKILL (-r TERM:KILL) after an unnamed worker's kill", Ended(Signaled(9)), 1, false, 1, true, V::LeafOom),
            ("oominit's own SIGKILL, but the kernel named main too", Ended(Signaled(9)), 1, true, 0, true, V::MainOom),
            ("the hidden OOM: a worker killed, main exits 0", Ended(Exited(0)), 2, false, 0, false, V::LeafOom),
            ("a worker killed, main fails", Ended(Exited(1)), 1, false, 1, false, V::LeafOom),
            ("a worker killed, main terminated", Ended(Signaled(15)), 1, false, 0, false, V::LeafOom),
            ("nothing killed, exit 0", Ended(Exited(0)), 0, false, 0, false, V::Clean),
            ("nothing killed, exit 3", Ended(Exited(3)), 0, false, 0, false, V::Failed),
            ("the command never ran", SpawnFailed(enoent), 0, false, 0, false, V::SpawnFailed),
        ];
        for (situation, end, kills, main_named, unexplained, main_sigkilled_by_oominit, want) in rows {
            let f = Facts { end, kills, main_named, unexplained, main_sigkilled_by_oominit };
            assert_eq!(verdict(&f), want, "{situation}");
        }
    }

    #[test]
    fn scopes() {
        let v2 = |oom_kill, oom| Counters { oom_kill: Some(oom_kill), oom: Some(oom), ..Default::default() };
        let v1 = |oom_kill, failcnt, memsw_failcnt, peak_at_limit| Counters {
            oom_kill: Some(oom_kill),
            failcnt: Some(failcnt),
            memsw_failcnt,
            peak_at_limit: Some(peak_at_limit),
            ..Default::default()
        };
        const GIB: u64 = 1 << 30;
        const MIB: u64 = 1 << 20;
        // The host: 16 GiB, so under 1/20 is under ~819 MiB.
        let host = |available: u64, allocstall: u64, freed_bytes: u64| AtKill {
            host: Some(HostMemory {
                total_bytes: Some(16 * GIB),
                available_bytes: Some(available),
                allocstall: Some(allocstall),
            }),
            freed_bytes,
            ..AtKill::default()
        };
        let none = AtKill::default();
        #[rustfmt::skip]
        let rows = [
            ("nothing killed", v2(0, 0), &none, None),
            ("v2: the cgroup's own limit", v2(1, 1), &none, Some(Scope::Limit)),
            ("v2: at its own limit, a parent's equal limit ran out first (peak within the margin)", Counters { peak_at_limit: Some(true), ..v2(1, 0) }, &host(8 * GIB, 0, 0), Some(Scope::Limit)),
            ("v2: killed from outside, the host never reclaimed directly: a parent's limit", v2(1, 0), &host(8 * GIB, 0, 0), Some(Scope::Ancestor)),
            ("v2: killed from outside, the host reclaimed and had 100 MiB left", v2(1, 0), &host(100 * MIB, 40, 0), Some(Scope::Host)),
            ("the victim's memory already given back: what it held is not counted as available", v2(1, 0), &host(2 * GIB, 40, 1800 * MIB), Some(Scope::Host)),
            ("the host reclaimed directly, but had plenty left: not said", v2(1, 0), &host(8 * GIB, 40, 0), Some(Scope::Unknown)),
            ("a 128 MiB VM's OOM (6.1): 80 MiB of it, 6.7 MiB left, under the 32 MiB floor", v2(1, 0), &AtKill { host: Some(HostMemory { total_bytes: Some(83890176), available_bytes: Some(7086080), allocstall: Some(21) }), ..AtKill::default() }, Some(Scope::Host)),
            ("no host figures (no /proc)", v2(1, 0), &none, Some(Scope::Unknown)),
            ("v1: failcnt rose at the limit", v1(1, 39, None, true), &none, Some(Scope::Limit)),
            ("v1: memory+swap limit, the only trace of which is the peak (6.18)", v1(1, 0, Some(0), true), &none, Some(Scope::Limit)),
            ("v1: memsw failcnt rose", v1(1, 0, Some(3), false), &none, Some(Scope::Limit)),
            ("v1: a host-wide OOM, far below the limit", v1(1, 0, Some(0), false), &host(50 * MIB, 3, 0), Some(Scope::Host)),
            ("v1: the limit hit, but nothing killed", v1(0, 39, None, true), &none, None),
        ];
        for (situation, counters, at_kill, want) in rows {
            assert_eq!(scope(&counters, at_kill), want, "{situation}");
        }
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
        assert_eq!(scope(&c, &AtKill::default()), Some(Scope::Limit));
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
                source: Source::Proc,
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
            stopped: Some(Stopped::leaf_oom(std::time::Duration::from_secs(10))),
            pre_oom_stop: Some(PreOomStop::new(
                &Sent {
                    signal: 15,
                    at: std::time::Duration::from_secs(1_795_354_527),
                    breakdown: Breakdown { anon_bytes: Some(u64::MAX), ..Breakdown::default() },
                    threshold: u64::MAX,
                    limit: u64::MAX,
                    kills: 0,
                },
                100,
            )),
            main: MainInfo::new(Some(7), &argv, ArgvShown::All, MainEnd::Ended(Status::Exited(0))),
            oom: OomInfo {
                kills: 100,
                main_killed: false,
                scope: Some(Scope::Limit),
                victims,
                unnamed: 0,
                victims_omitted: 0,
                counters: Counters::default(),
                breakdown: Some(Breakdown {
                    anon_bytes: Some(u64::MAX),
                    file_bytes: Some(u64::MAX),
                    shmem_bytes: Some(u64::MAX),
                    kernel_bytes: Some(u64::MAX),
                    sock_bytes: Some(u64::MAX),
                }),
                breakdown_read: Some(Read::AfterKill),
                largest: vec![Holder { pid: i32::MAX, comm: Some("w".repeat(64)), rss_bytes: u64::MAX }; 3],
                host: Some(HostMemory {
                    total_bytes: Some(u64::MAX),
                    available_bytes: Some(u64::MAX),
                    allocstall: Some(u64::MAX),
                }),
            },
            memory,
            duration_ms: 1,
            time: now_rfc3339(),
        };
        let c = r.compact();
        assert!(c.len() < TERMINATION_LOG_MAX, "{} bytes: {c}", c.len());
        let v: serde_json::Value = serde_json::from_str(&c).unwrap();
        assert_eq!(v["verdict"], "leaf_oom");
        assert_eq!(v["exit_code"], 137);
        assert_eq!(v["stopped"]["reason"], "leaf_oom", "what oominit did stays");
        assert_eq!(v["pre_oom_stop"]["kills_after"], 100, "so does the signal before the kills");
        assert_eq!(v["oom"]["kills"], 100);
        assert_eq!(v["oom"]["victims_omitted"], 100);
        assert_eq!(v["oom"]["breakdown"]["anon_bytes"], u64::MAX, "what filled it stays");
    }

    #[test]
    fn argv_shown_as_asked() {
        let argv = ["prog", "--password=hunter2", "x"];
        let shown = |s| short_argv(argv.iter(), s);
        assert_eq!(shown(ArgvShown::All), argv);
        assert_eq!(shown(ArgvShown::First), ["prog"]);
        assert!(shown(ArgvShown::None).is_empty());
        let long: Vec<String> = (0..40).map(|i| format!("{i}{}", "y".repeat(300))).collect();
        let cut = short_argv(long.iter(), ArgvShown::All);
        assert_eq!(cut.len(), 16);
        assert!(cut.iter().all(|a| a.len() <= 256 + '…'.len_utf8()));
        assert_eq!(ArgvShown::parse("argv0"), Ok(ArgvShown::First));
        assert!(ArgvShown::parse("some").is_err());
    }
}
