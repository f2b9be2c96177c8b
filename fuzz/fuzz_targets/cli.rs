//! The whole command line with the environment: `cli::parse(args, env)`, then what `run` takes
//! from the result before the command starts (its argv shortened for the record, the rewrites).
//!
//! Input: NUL-separated words. A word `NAME=VALUE` whose NAME starts with OOMINIT_ or TINI_ is an
//! environment variable (a later one wins); every other word is an argument. Both are bytes as
//! they are: neither need be UTF-8.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oominit::cli::{self, Action};
use oominit::signals;
use oominit::sink::Target;

fuzz_target!(|data: &[u8]| {
    let mut args = Vec::new();
    let mut env: Vec<(&[u8], &[u8])> = Vec::new();
    for word in data.split(|&b| b == 0) {
        let var = (word.starts_with(b"OOMINIT_") || word.starts_with(b"TINI_"))
            .then(|| word.iter().position(|&b| b == b'='))
            .flatten();
        match var {
            Some(eq) => env.push((&word[..eq], &word[eq + 1..])),
            None => args.push(OsString::from_vec(word.to_vec())),
        }
    }
    let lookup = |name: &str| {
        let (_, v) = env.iter().rev().find(|(n, _)| *n == name.as_bytes())?;
        Some(OsString::from_vec(v.to_vec()))
    };
    let Ok(Action::Run(cfg)) = cli::parse(args, &lookup) else { return };
    assert!(!cfg.command.is_empty() && !cfg.command[0].is_empty());
    assert!((0..=255).contains(&cfg.oom_exit_code));
    assert!(cfg.remap_to_zero.iter().all(|c| (0..=255).contains(c)));
    let rtmax = signals::rtmax();
    assert!(cfg.pdeath_signal.map_or(true, |s| (1..=rtmax).contains(&s)));
    for &(from, to) in &cfg.rewrites {
        assert!((1..=rtmax).contains(&from) && (0..=rtmax).contains(&to), "{from}:{to}");
    }
    assert!(cfg.grace.map_or(true, |g| g <= Duration::from_secs(86_400)));
    // Sink::open hands it to BorrowedFd::borrow_raw, which panics on -1.
    assert!(!matches!(cfg.record, Target::Fd(n) if n < 0), "{:?}", cfg.record);
    for signo in 1..=rtmax {
        let _ = cfg.rewrite(signo);
    }
    let _ = oominit::record::short_argv(cfg.command.iter().map(|a| a.to_string_lossy()), cfg.argv_shown);
});
