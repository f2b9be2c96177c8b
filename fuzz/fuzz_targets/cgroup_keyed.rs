//! cgroup memory files: flat-keyed (`memory.events`, `memory.oom_control`) and single-value
//! (`memory.max`, `memory.peak`, `memory.limit_in_bytes`, ...), through `cgroup::keyed`, then
//! the caller's arithmetic on what they give: the counters' rise since a baseline, the kill count,
//! the scope, the room below the limit.
//!
//! Input: a baseline file, then a NUL, then the file read later (no NUL: the same text twice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oominit::cgroup::{keyed, Counters, Memory};

/// Every key the callers ask for (cgroup/v1.rs, cgroup/v2.rs), and the others the kernel writes.
const KEYS: &[&str] =
    &["oom_kill", "oom", "oom_group_kill", "max", "high", "low", "oom_kill_disable", "under_oom"];

/// As v2::counters builds them (v1 reads `oom_kill` the same way, the rest as single values).
fn counters(text: &str) -> Counters {
    Counters {
        oom_kill: keyed::get(text, "oom_kill"),
        oom: keyed::get(text, "oom"),
        oom_group_kill: keyed::get(text, "oom_group_kill"),
        max: keyed::get(text, "max"),
        high: keyed::get(text, "high"),
        failcnt: keyed::single(text).flatten(),
        memsw_failcnt: None,
        peak_at_limit: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (base, now) = text.split_once('\0').unwrap_or((&text, &text));
    for t in [base, now] {
        for key in KEYS {
            if keyed::get(t, key).is_some() {
                assert!(t.contains(key), "{key} found in {t:?}");
            }
        }
        // The first line as the key: keys are never empty or spaced in the callers, but the
        // parser must not care.
        let first = t.lines().next().unwrap_or("");
        let _ = keyed::get(t, first);
        if let Some(Some(n)) = keyed::single(t) {
            let _ = keyed::v1_limit(n);
        }
    }
    let delta = counters(now).since(&counters(base));
    let _ = (delta.kills(), delta.hit_own_limit(), oominit::record::scope(&delta, &Default::default()));
    let memory = Memory {
        limit_bytes: keyed::single(base).flatten().and_then(keyed::v1_limit),
        peak_bytes: None,
        usage_bytes: keyed::single(now).flatten(),
        ancestor_free: keyed::single(base).flatten(),
    };
    let _ = memory.free();
});
