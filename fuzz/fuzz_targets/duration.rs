//! `--grace DURATION`: `cli::parse_duration` ("5s", "500ms", "1m", "2.5s", "10").
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oominit::cli::parse_duration;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = parse_duration(&text) {
        assert!(d <= Duration::from_secs(86_400), "{text:?} gave {d:?}, over a day");
        // Whole milliseconds, so they read back the same.
        let ms = format!("{}ms", d.as_millis());
        assert_eq!(parse_duration(&ms), Ok(d), "{text:?} -> {ms}");
    }
});
