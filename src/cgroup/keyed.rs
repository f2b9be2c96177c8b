//! Parsers for the two shapes of cgroup memory files: flat-keyed (`key value` lines, as in
//! `memory.events` and `memory.oom_control`) and a single value (`memory.max`, `memory.peak`).
//!
//! Kernel text is input like any other: a malformed line is skipped, never a panic.

/// The value of `key` in flat-keyed `text`, if present and a number.
pub fn get(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_ascii_whitespace();
        if words.next()? != key {
            return None;
        }
        let value = words.next()?.parse().ok()?;
        words.next().is_none().then_some(value)
    })
}

/// A single-value file: a number, or `max` (cgroup v2's "no limit"), which is `Some(None)`.
pub fn single(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        t => t.parse().ok().map(Some),
    }
}

/// cgroup v1 has no "max": an unlimited `memory.limit_in_bytes` reads as PAGE_COUNTER_MAX pages,
/// 9223372036854771712 with 4 KiB pages and a little less with 64 KiB ones. Nothing real is
/// anywhere near 2^62 bytes.
pub fn v1_limit(bytes: u64) -> Option<u64> {
    (bytes < 1 << 62).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    // memory.events after one OOM kill under a 32 MiB limit (kernel 6.1, from the VM notes).
    const EVENTS: &str = "low 0\nhigh 0\nmax 35\noom 1\noom_kill 1\noom_group_kill 0\n";
    // memory.oom_control of cgroup v1 on this machine's 6.18 kernel, after one kill.
    const OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";

    #[test]
    fn flat_keyed() {
        assert_eq!(get(EVENTS, "oom_kill"), Some(1));
        assert_eq!(get(EVENTS, "max"), Some(35));
        assert_eq!(get(EVENTS, "oom_group_kill"), Some(0));
        assert_eq!(get(EVENTS, "oom"), Some(1), "`oom` must not match `oom_kill`");
        assert_eq!(get(OOM_CONTROL, "oom_kill"), Some(1));
        assert_eq!(get(OOM_CONTROL, "oom"), None);
        // Kernels before 4.13 have no oom_kill line in memory.oom_control.
        assert_eq!(get("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"), None);
    }

    #[test]
    fn hostile_input_is_skipped() {
        for text in [
            "",
            "\n\n",
            "oom_kill",
            "oom_kill -1",
            "oom_kill 1 2",
            "oom_kill 99999999999999999999999",
            "\0\0",
        ] {
            assert_eq!(get(text, "oom_kill"), None, "{text:?}");
        }
        assert_eq!(get("oom_kill x\noom_kill 4\n", "oom_kill"), Some(4));
    }

    #[test]
    fn single_values() {
        assert_eq!(single("max\n"), Some(None));
        assert_eq!(single("33554432\n"), Some(Some(33554432)));
        assert_eq!(single(""), None);
        assert_eq!(single("-1"), None);
        assert_eq!(v1_limit(9223372036854771712), None);
        assert_eq!(v1_limit(9223372036854710272), None);
        assert_eq!(v1_limit(33554432), Some(33554432));
    }

    /// A cheap fuzz: every prefix and every single-byte mutation of real files must parse or be
    /// skipped without a panic.
    #[test]
    fn mutations_never_panic() {
        for base in [EVENTS, OOM_CONTROL, "max\n", "9223372036854771712\n"] {
            let bytes = base.as_bytes();
            for i in 0..=bytes.len() {
                let prefix = String::from_utf8_lossy(&bytes[..i]);
                let _ = (get(&prefix, "oom_kill"), single(&prefix));
                for b in [0u8, b' ', b'\n', b'9', b'-', 0xff] {
                    let mut m = bytes.to_vec();
                    if i < m.len() {
                        m[i] = b;
                    }
                    let m = String::from_utf8_lossy(&m);
                    let _ = (get(&m, "oom_kill"), get(&m, "max"), single(&m));
                }
            }
        }
    }
}
