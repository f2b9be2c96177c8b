//! Signal names and numbers (`-p`, `-r FROM:TO`): `signals::parse`, and back with `signals::name`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oominit::signals;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for allow_zero in [false, true] {
        let Ok(n) = signals::parse(&text, allow_zero) else { continue };
        if n == 0 {
            assert!(allow_zero, "{text:?} is 0 where 0 is not allowed");
            continue;
        }
        assert!((1..=signals::rtmax()).contains(&n), "{text:?} gave {n}");
        let name = signals::name(n);
        assert_eq!(signals::parse(&name, false), Ok(n), "{text:?} -> {name}");
    }
});
