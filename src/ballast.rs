//! A few pages of memory oominit holds in reserve while its cgroup has room, and gives back the
//! moment it must look at the processes of a full one.
//!
//! Looking at a new process costs kernel memory charged to the cgroup: the `struct file` of its
//! `/proc/PID/stat`, and the page of the seq_file buffer the kernel allocates at the first read.
//! At the limit, each such charge waits in the cgroup's reclaim and then behind the OOM killer,
//! and the process the kernel kills meanwhile is reaped by its parent before oominit gets to it.
//! Seen in the VM (v2, one CPU): at the first `max` event oominit listed all four workers, then
//! spent 40 to 55 ms opening their stat files, and the one killed in that time was never seen.
//! Given back (MADV_DONTNEED uncharges the pages at once), the reserve is room for those charges;
//! it is taken again only once there is room for it and more (see `OomWatch`).

use nix::libc;

/// 16 pages: the stat files of some 30 new processes, and what oominit's heap needs meanwhile.
pub const BYTES: usize = 64 * 1024;

/// Default: holding nothing (no cgroup, or the mapping failed).
#[derive(Default)]
pub struct Ballast {
    /// The mapping's address, or None without one.
    at: Option<usize>,
    held: bool,
}

impl Ballast {
    /// Map the reserve and fault it in; without a mapping there is simply no reserve.
    pub fn new() -> Ballast {
        // SAFETY: a fresh private anonymous mapping, not aliased by anything else.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let mut b = Ballast { at: (p != libc::MAP_FAILED).then_some(p as usize), held: false };
        b.hold();
        b
    }

    pub fn held(&self) -> bool {
        self.held
    }

    /// Fault every page in: from here on they are charged to the cgroup.
    pub fn hold(&mut self) {
        let Some(at) = self.at else { return };
        for page in (0..BYTES).step_by(4096) {
            // SAFETY: inside the BYTES-long writable mapping made in `new`, which lives as long
            // as oominit (never unmapped). A volatile write, so the touch is not optimised away.
            unsafe { std::ptr::write_volatile((at + page) as *mut u8, 1) };
        }
        self.held = true;
    }

    /// Give the pages back to the kernel, and so the room they take to the cgroup.
    pub fn release(&mut self) {
        let Some(at) = self.at.filter(|_| self.held) else { return };
        // SAFETY: the mapping made in `new`; MADV_DONTNEED on private anonymous memory only
        // drops its pages (read again, they are zero).
        unsafe { libc::madvise(at as *mut libc::c_void, BYTES, libc::MADV_DONTNEED) };
        self.held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of the reserve's pages the kernel has resident (mincore).
    fn resident(b: &Ballast) -> usize {
        let Some(at) = b.at else { return 0 };
        let mut vec = [0u8; BYTES / 4096];
        // SAFETY: the mapping made in `new`, BYTES long; one status byte per 4 KiB page.
        let rc = unsafe { libc::mincore(at as *mut libc::c_void, BYTES, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|&&v| v & 1 == 1).count()
    }

    #[test]
    fn the_reserve_is_resident_when_held_and_given_back_when_released() {
        let mut b = Ballast::new();
        assert!(b.held());
        assert_eq!(resident(&b), BYTES / 4096);
        b.release();
        assert!(!b.held());
        assert_eq!(resident(&b), 0, "MADV_DONTNEED drops the pages");
        b.release();
        b.hold();
        assert_eq!(resident(&b), BYTES / 4096);
    }
}
