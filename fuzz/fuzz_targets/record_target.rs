//! `--record TARGET` and OOMINIT_RECORD: `sink::Target::parse` (stdout, stderr, fd:N, PATH).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oominit::sink::Target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Target::parse(&text) {
        // Sink::open hands N to BorrowedFd::borrow_raw, which panics on -1; no descriptor is
        // negative.
        Ok(Target::Fd(n)) => assert!(n >= 0, "{text:?} gave fd {n}"),
        Ok(Target::Path(p)) => assert_eq!(p.as_os_str(), &*text),
        Ok(Target::Stdout | Target::Stderr) => {}
        Err(e) => assert!(!e.is_empty()),
    }
});
