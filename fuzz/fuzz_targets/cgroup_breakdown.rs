//! `memory.stat` (v1 and v2) into the record's breakdown, through `cgroup::breakdown`: whatever
//! the text, no panic, and no field made up or larger than what the kernel said.
//!
//! Input: the text of a `memory.stat`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oominit::cgroup::{breakdown, keyed};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let b = breakdown::v2(&text);
    assert_eq!(b.anon_bytes, keyed::get(&text, "anon"));
    assert_eq!(b.shmem_bytes, keyed::get(&text, "shmem"));
    assert_eq!(b.sock_bytes, keyed::get(&text, "sock"));
    assert!(b.file_bytes <= keyed::get(&text, "file"), "{b:?}");
    if keyed::get(&text, "kernel").is_some() {
        assert_eq!(b.kernel_bytes, keyed::get(&text, "kernel"));
    }
    let b = breakdown::v1(&text, Some(1), None);
    assert_eq!(b.anon_bytes, keyed::get(&text, "total_rss"));
    assert!(b.file_bytes <= keyed::get(&text, "total_cache"), "{b:?}");
    assert_eq!((b.kernel_bytes, b.sock_bytes), (Some(1), None));
});
