//! Test workload: allocates and touches N MiB, then exits 0.
//!
//! `memhog MIB [SECONDS [AFTER [PACE]]]`: waits AFTER seconds (default 0), then touches every page
//! so the memory is really charged to the cgroup (an untouched allocation costs nothing), pausing
//! PACE milliseconds after each MiB (default 0: a slowly growing heap with more), prints
//! `allocated MIB`, holds it SECONDS (default 0).

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize =
        args.next().and_then(|a| a.parse().ok()).expect("usage: memhog MIB [SECONDS [AFTER [PACE]]]");
    let hold: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let after: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let pace: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_secs_f64(after));
    let mut chunks = Vec::with_capacity(mib);
    for _ in 0..mib {
        let mut chunk = vec![0u8; 1 << 20];
        for page in chunk.chunks_mut(4096) {
            page[0] = 1;
        }
        chunks.push(chunk);
        std::thread::sleep(std::time::Duration::from_millis(pace));
    }
    println!("allocated {mib}");
    std::thread::sleep(std::time::Duration::from_secs_f64(hold));
    std::hint::black_box(&chunks);
}
