//! What fills the cgroup: its memory broken down from `memory.stat` into one set of fields on v1
//! and v2, so that a record can say whether a kill came from the heap, from files in tmpfs or
//! /dev/shm (which count against the limit and only swap can reclaim), or from the kernel.

use serde::Serialize;

use super::keyed;

/// The cgroup's memory by kind, in bytes; a field is null where this kernel does not say it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    /// Anonymous memory: heaps, stacks, private mappings.
    pub anon_bytes: Option<u64>,
    /// Page cache of files: the kernel reclaims it before it kills.
    pub file_bytes: Option<u64>,
    /// tmpfs and /dev/shm files, shared anonymous mappings: like anon, only swap can reclaim it.
    pub shmem_bytes: Option<u64>,
    /// Kernel memory charged to the cgroup: kernel stacks, page tables, slab.
    pub kernel_bytes: Option<u64>,
    /// Socket buffers.
    pub sock_bytes: Option<u64>,
}

impl Breakdown {
    /// Everything it accounts for.
    pub fn total(&self) -> u64 {
        sum(&[self.anon_bytes, self.file_bytes, self.shmem_bytes, self.kernel_bytes, self.sock_bytes])
    }

    /// What the kernel cannot reclaim without swap: anon, shmem, kernel memory.
    pub fn unreclaimable(&self) -> u64 {
        sum(&[self.anon_bytes, self.shmem_bytes, self.kernel_bytes])
    }
}

fn sum(parts: &[Option<u64>]) -> u64 {
    parts.iter().fold(0u64, |sum, b| sum.saturating_add(b.unwrap_or(0)))
}

/// v2: `memory.stat` says it all. `file` counts shmem too; `kernel` (5.18+) is the sum of the
/// kernel's parts, which older kernels list one by one.
pub fn v2(stat: &str) -> Breakdown {
    let get = |key| keyed::get(stat, key);
    let shmem = get("shmem");
    let parts = ["kernel_stack", "pagetables", "sec_pagetables", "percpu", "slab", "vmalloc"];
    let kernel = get("kernel").or_else(|| {
        let found = parts.iter().filter_map(|&k| get(k));
        found.clone().next().map(|_| found.fold(0u64, u64::saturating_add))
    });
    Breakdown {
        anon_bytes: get("anon"),
        file_bytes: get("file").map(|f| f.saturating_sub(shmem.unwrap_or(0))),
        shmem_bytes: shmem,
        kernel_bytes: kernel,
        sock_bytes: get("sock"),
    }
}

/// v1: `memory.stat`'s hierarchical `total_` figures (the cgroup and its children, as its usage
/// counts them; `cache` counts shmem too), kernel memory from `memory.kmem.usage_in_bytes` and
/// TCP buffers from `memory.kmem.tcp.usage_in_bytes`, where the kernel has them.
pub fn v1(stat: &str, kmem: Option<u64>, tcp: Option<u64>) -> Breakdown {
    let get = |key| keyed::get(stat, key);
    let shmem = get("total_shmem");
    Breakdown {
        anon_bytes: get("total_rss"),
        file_bytes: get("total_cache").map(|c| c.saturating_sub(shmem.unwrap_or(0))),
        shmem_bytes: shmem,
        kernel_bytes: kmem,
        sock_bytes: tcp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A cgroup holding memhog 8 (MiB) and a 3 MiB file in tmpfs, read from the VM's kernels
    // (Debian's 6.1.0-56 and 6.12.118) and this machine's v1 (6.18).
    const V2_6_1: &str = include_str!("fixtures/memory.stat.v2.6.1");
    const V2_6_12: &str = include_str!("fixtures/memory.stat.v2.6.12");
    const V1_6_18: &str = include_str!("fixtures/memory.stat.v1.6.18");

    const fn some(anon: u64, file: u64, shmem: u64, kernel: u64, sock: u64) -> Breakdown {
        Breakdown {
            anon_bytes: Some(anon),
            file_bytes: Some(file),
            shmem_bytes: Some(shmem),
            kernel_bytes: Some(kernel),
            sock_bytes: Some(sock),
        }
    }

    #[test]
    fn v2_splits_shmem_out_of_file() {
        assert_eq!(v2(V2_6_1), some(8519680, 0, 3145728, 196608, 0));
        assert_eq!(v2(V2_6_12), some(8519680, 0, 3145728, 200704, 0));
    }

    #[test]
    fn v2_without_a_kernel_line_adds_up_its_parts() {
        let old: String =
            V2_6_12.lines().filter(|l| !l.starts_with("kernel ")).map(|l| format!("{l}\n")).collect();
        let parts = ["kernel_stack", "pagetables", "sec_pagetables", "percpu", "slab", "vmalloc"];
        let sum = parts.iter().filter_map(|k| keyed::get(V2_6_12, k)).sum::<u64>();
        assert_eq!(v2(&old).kernel_bytes, Some(sum));
        assert_eq!(v2("anon 1\n").kernel_bytes, None, "nothing said, nothing made up");
    }

    #[test]
    fn the_total_adds_what_is_known() {
        assert_eq!(some(1, 2, 3, 4, 5).total(), 15);
        assert_eq!(Breakdown { anon_bytes: Some(u64::MAX), ..some(1, 2, 3, 4, 5) }.total(), u64::MAX);
        assert_eq!(Breakdown::default().total(), 0);
        assert_eq!(some(1, 2, 3, 4, 5).unreclaimable(), 8, "anon, shmem, kernel");
    }

    #[test]
    fn v1_takes_the_hierarchical_totals() {
        assert_eq!(v1(V1_6_18, Some(360448), Some(0)), some(8601600, 204800, 3145728, 360448, 0));
        assert_eq!(v1(V1_6_18, None, None).kernel_bytes, None);
    }

    #[test]
    fn hostile_text_gives_unknowns_never_a_panic() {
        for text in ["", "anon", "anon -1\nfile x\n", "file 1\nshmem 18446744073709551615\n", "\0\0"] {
            let b = v2(text);
            assert!(b.file_bytes.map_or(true, |f| f <= 1), "{text:?}: {b:?}");
            let _ = v1(text, None, None);
        }
    }
}
