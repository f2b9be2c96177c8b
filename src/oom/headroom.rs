//! The headroom rule: nothing oominit does may be the charge that tips a full cgroup into an OOM.
//!
//! Why it matters: at the limit, any page or kernel object oominit allocates (a stack page, a heap
//! page, the `struct file` of an open, the seq_file buffer of a first read, a pipe page) is charged
//! to the cgroup. The charge waits in the cgroup's reclaim, then invokes the OOM killer, which
//! picks the biggest eligible task. Right after a kill the victim is skipped while it dies but
//! still holds its memory, so that pick can be the main process, or oominit itself. Each case
//! below was seen on a real kernel: `docs/headroom.md` says what happened without it.
//!
//! So oominit:
//! - keeps its own code and data in memory ([`lock_image`]): the cgroup's reclaim evicts them
//!   as it fills, and running code not run since would read it back in, charged, at the limit;
//! - touches, while the cgroup has room, everything it will write to during an OOM: a stack
//!   reserve ([`prefault_stack`]), the record buffer (`emit`), the listing's buffers (`tracker`),
//!   the cgroup files opened and read once at start (`cgroup`);
//! - holds a [`Reserve`] of its own memory while there is room, and gives it back right before it
//!   must open files in a cgroup at its limit, as room for what that charges;
//! - lists the cgroup's processes (opens files) only when [`at_wake`] or [`after_kill`] say so,
//!   pure decisions from a [`Snapshot`] of what is known;
//! - after a kill, waits until the cgroup has room again before naming anyone or writing
//!   ([`wait_for_room`]).

use std::time::Duration;

use nix::libc;

use crate::cgroup::Memory;

/// Free memory below the limit that counts as room to charge a few pages again.
pub const ROOM: u64 = 256 * 1024;

/// Free memory below the limit a write at the limit needs: a pipe's or a file's page, and the
/// kernel's own allocations around it.
pub const WRITE_ROOM: u64 = 16 * 1024;

/// Memory in the cgroup beyond what oominit knows of, or a followed process's size, that counts
/// as someone bigger than oominit and the main process for the OOM killer to pick first.
pub const BIG: u64 = 4 << 20;

/// What oominit knows at a wake.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub memory: Memory,
    /// The main process's size as last seen; None while never seen alive (0 without one).
    pub main_rss: Option<u64>,
    /// The size of every process followed that may still hold memory.
    pub known_rss: u64,
    /// The second largest process followed, alive, other than the main one.
    pub runner_up_rss: Option<u64>,
    /// A victim named may still hold the memory it was killed for.
    pub victim_dying: bool,
}

impl Snapshot {
    /// Two processes oominit follows, alive, are bigger than the main process and than [`BIG`]:
    /// if oominit's own charge set the OOM killer off now, it would pick one of them. Two,
    /// because the biggest may be the victim of a kill under way, skipped while it dies.
    fn shielded(&self) -> bool {
        matches!((self.main_rss, self.runner_up_rss), (Some(main), Some(r)) if r > main.max(BIG))
    }

    /// The cgroup holds more than the processes oominit knows of by more than the main process's
    /// size and [`BIG`]: untracked processes bigger than oominit and the main process are there to
    /// be picked first (the rest of a stress-like workload, which is what must be listed).
    fn outweighed(&self) -> bool {
        match (self.memory.usage_bytes, self.main_rss) {
            (Some(usage), Some(main)) => usage.saturating_sub(self.known_rss) > main.max(BIG),
            _ => false,
        }
    }
}

/// Whether to list the cgroup (open files: a charge) or only look through what is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    List,
    LookOnly,
}

/// At a wake that was not a kill (the cgroup nearing or at its limit): list, unless a victim may
/// still hold its memory (named and dying, or `unnamed_dying`: a kill left someone unnamed and
/// the cgroup has had no room since) and nothing bigger than the main process would be picked
/// first.
pub fn at_wake(s: &Snapshot, unnamed_dying: bool) -> Listing {
    let calm = !unnamed_dying && !s.victim_dying;
    if calm || s.shielded() || s.outweighed() {
        Listing::List
    } else {
        Listing::LookOnly
    }
}

/// Right after a kill was counted: the victim is dying and the cgroup still full, so list only
/// when two big followed processes shield oominit and the main process.
pub fn after_kill(s: &Snapshot) -> Listing {
    if s.shielded() {
        Listing::List
    } else {
        Listing::LookOnly
    }
}

/// Whether the memory of a victim left unnamed may still be charged: from the kill on, until a
/// wake finds room below the limit.
pub fn unnamed_still_dying(was: bool, memory: Memory) -> bool {
    was && memory.free().is_some_and(|f| f < ROOM)
}

/// The headroom rule's state: the reserve, and whether an unnamed victim may still be dying.
///
/// Its methods take the cgroup's figures as a reader, called only where the decision needs them:
/// a wake at the limit is a race with the victim's parent, and a read oominit can skip is time
/// it spends looking at the processes instead.
#[derive(Default)]
pub struct Headroom {
    reserve: Reserve,
    unnamed_dying: bool,
}

impl Headroom {
    /// Hold the reserve: for a cgroup with a limit of its own or an ancestor's (elsewhere nothing
    /// is charged at a limit, and a container start need not pay for it).
    pub fn hold_reserve(&mut self) {
        self.reserve = Reserve::new();
    }

    /// At a wake that was not a kill: may oominit list now? `s` without its figures; `memory`
    /// reads them.
    pub fn at_wake(&mut self, mut s: Snapshot, memory: impl FnOnce() -> Memory) -> Listing {
        if s.shielded() || (!self.unnamed_dying && !s.victim_dying) {
            return Listing::List;
        }
        s.memory = memory();
        self.unnamed_dying = unnamed_still_dying(self.unnamed_dying, s.memory);
        at_wake(&s, self.unnamed_dying)
    }

    /// A kill was reported, with everyone named for certain or not.
    pub fn reported(&mut self, all_named: bool) {
        self.unnamed_dying = !all_named;
    }

    /// Right before a listing: give the reserve back if the cgroup has no room for it. Whether
    /// to list: not without the reserve to give back and without [`ROOM`] (a cgroup with a
    /// limit): a listing's opens are charges, and at the limit such a charge is an OOM of its
    /// own, whose victim may be the main process.
    pub fn before_listing(&mut self, memory: impl FnOnce() -> Memory) -> bool {
        let m = memory();
        if self.reserve.held {
            self.give_back_if_full(m);
            return true;
        }
        m.free().map_or(true, |free| free >= ROOM)
    }

    /// Give the reserve back if the cgroup, as `m` says, has no room for it. Whether it did.
    fn give_back_if_full(&mut self, m: Memory) -> bool {
        let full = self.reserve.held && !has_room(m, RESERVE_BYTES as u64);
        if full {
            self.reserve.release();
        }
        full
    }

    /// Before a write at or near the limit (a record into a pipe, a page of a file): the reserve
    /// given back if the cgroup has no room, then whether a write's pages fit below the limit
    /// (true without a limit). Seen without it (VM, runc, pod above the container): the early
    /// warning, written after a listing had used the reserve, was the charge of an OOM that
    /// took oominit too.
    pub fn room_to_write(&mut self, memory: impl Fn() -> Memory) -> bool {
        let mut m = memory();
        // Read again only where the reserve given back changed the figures.
        if self.give_back_if_full(m) {
            m = memory();
        }
        m.free().map_or(true, |free| free >= WRITE_ROOM)
    }

    /// Take the reserve again once it fits with room to spare: never itself the charge that
    /// fills the cgroup.
    pub fn retake(&mut self, memory: impl FnOnce() -> Memory) {
        if !self.reserve.held && has_room(memory(), 2 * RESERVE_BYTES as u64) {
            self.reserve.hold();
        }
    }
}

/// Whether the cgroup has `extra` bytes free below its limit and [`ROOM`] besides (false when
/// unknown).
fn has_room(memory: Memory, extra: u64) -> bool {
    memory.free().is_some_and(|f| f >= extra.saturating_add(ROOM))
}

/// After a kill, wait until the cgroup has [`ROOM`] below its limit again (or its figures are
/// unknown): every 5 ms, 0.2 s at most. Naming allocates, and writing a record allocates a pipe
/// page; when the main process was the hog, oominit is the only task left for a charge made
/// before the victim's memory is freed to kill.
pub fn wait_for_room(memory: impl Fn() -> Memory) {
    for _ in 0..40 {
        if !memory().free().is_some_and(|f| f < ROOM) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lock oominit's own image (its loaded segments: code, constants, data) in memory, so that the
/// cgroup's reclaim cannot evict it. Seen under Docker (v1, 6.18): memhog filled the cgroup, its
/// reclaim evicted most of oominit's code, and oominit, running again right after the kill,
/// faulted a page of its code back in before the dying hog had given its memory back: a second
/// OOM, and oominit (oom_score_adj 0 without CAP_SYS_RESOURCE) was its victim, with no record.
///
/// mlock needs no privilege within RLIMIT_MEMLOCK (8 MiB by default since Linux 5.16; the image
/// is about 0.5 MiB); where it fails, oominit runs unlocked and says so at `-v`.
pub fn lock_image() {
    let mut failed: i32 = 0;
    // SAFETY: the callback reads only what dl_iterate_phdr hands it, for the duration of the
    // call, and `failed` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(lock_segments), (&raw mut failed).cast()) };
    if failed != 0 {
        crate::diag!(
            1,
            "cannot lock oominit's code in memory: {}",
            std::io::Error::from_raw_os_error(failed)
        );
    }
}

/// dl_iterate_phdr's callback: lock the first object's (the program's) PT_LOAD segments, then
/// stop; segments on adjacent pages in one call (the headers, code and read-only data usually
/// are). The last mlock error goes to `data`.
unsafe extern "C" fn lock_segments(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> i32 {
    // SAFETY: dl_iterate_phdr passes a valid info and our `failed`.
    let (info, failed) = unsafe { (&*info, &mut *data.cast::<i32>()) };
    let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: the loader's program headers, dlpi_phnum of them.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
    };
    let page = page_size() as u64;
    let mut lock = |(start, end): (u64, u64)| {
        let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(end.saturating_sub(start)))
        else {
            return;
        };
        // SAFETY: mlock only pins pages of mappings the loader made; it writes nothing.
        if unsafe { libc::mlock(start as *const libc::c_void, len) } != 0 {
            *failed = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM);
        }
    };
    let mut run = None;
    for ph in phdrs.iter().filter(|ph| ph.p_type == libc::PT_LOAD) {
        let Some(pages) = pages(info.dlpi_addr, ph.p_vaddr, ph.p_memsz, page) else { continue };
        let (done, next) = extend(run, pages);
        if let Some(done) = done {
            lock(done);
        }
        run = Some(next);
    }
    if let Some(last) = run {
        lock(last);
    }
    1
}

/// The pages, [first, end), of a segment at `vaddr` (relative to `base`), `memsz` long.
fn pages(base: u64, vaddr: u64, memsz: u64, page: u64) -> Option<(u64, u64)> {
    let start = base.checked_add(vaddr)?;
    let end = start.checked_add(memsz)?;
    Some((start.checked_div(page)?.checked_mul(page)?, end.checked_next_multiple_of(page)?))
}

/// `run` (pages to lock) followed by `next`: the run to lock now, if `next` does not continue
/// it, and the run that goes on.
fn extend(run: Option<(u64, u64)>, next: (u64, u64)) -> (Option<(u64, u64)>, (u64, u64)) {
    match run {
        Some((start, end)) if next.0 <= end && next.0 >= start => (None, (start, end.max(next.1))),
        done => (done, next),
    }
}

/// Touch a stack reserve now, while the cgroup has room: the stack grows a page at a time on
/// first touch, and pages it has grown into stay mapped, so later deep calls cost nothing.
///
/// 64 KiB, or a quarter of RLIMIT_STACK if that is less: a container may run with a small
/// `ulimit -s` (Rust probes every page of a large frame, so the frame itself stays small: one
/// page per recursion).
pub fn prefault_stack() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        0
    };
    let bytes = (64 * 1024).min(limit / 4);
    // The pages below this frame: the stack's mapping reaches that far at exec (the kernel
    // extends it by 128 KiB, within RLIMIT_STACK); where it does not, populate fails and the
    // recursion grows it.
    let here = std::ptr::addr_of!(lim) as usize;
    if !populate(here.saturating_sub(bytes), bytes) {
        touch_stack_pages(bytes / 4096);
    }
}

/// A fresh private anonymous mapping of `len` bytes, none of its pages in yet: its address.
fn anonymous(len: usize) -> Option<usize> {
    // SAFETY: a new mapping, aliased by nothing; the kernel picks the address.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Fault in the pages of `len` bytes at `start` for writing, in one call (MADV_POPULATE_WRITE,
/// Linux 5.14): from then on they are charged to the cgroup, as if touched, without an exception
/// a page (some 25 us each under TCG emulation, 16 pages for the stack and as many for the
/// reserve at every start). false where the kernel cannot (older, or part of the range not
/// mapped): the caller touches the pages instead.
fn populate(start: usize, len: usize) -> bool {
    let first = start & !page_size().wrapping_sub(1);
    let Some(len) = start.checked_add(len).and_then(|end| end.checked_sub(first)) else { return false };
    // SAFETY: MADV_POPULATE_WRITE faults pages in as a write would, without changing their
    // contents; an address not mapped is an error (ENOMEM), not a write.
    unsafe { libc::madvise(first as *mut libc::c_void, len, libc::MADV_POPULATE_WRITE) == 0 }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions (musl answers from the auxiliary vector).
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

#[inline(never)]
fn touch_stack_pages(pages: usize) {
    let mut page = [0u8; 3 * 1024];
    page[0] = 1;
    if pages > 1 {
        touch_stack_pages(pages - 1);
    }
    // After the call, so the recursion cannot become a loop reusing one frame.
    std::hint::black_box(&mut page);
}

/// The reserve: 16 pages, the stat files of some 30 new processes and what oominit's heap needs
/// meanwhile.
pub const RESERVE_BYTES: usize = 64 * 1024;

/// A few pages held while the cgroup has room. Given back with MADV_DONTNEED, which uncharges
/// them at once. Default: holding nothing (no limit, or the mapping failed).
#[derive(Default)]
struct Reserve {
    /// The mapping's address, or None without one.
    at: Option<usize>,
    held: bool,
}

impl Reserve {
    /// Map the reserve and fault it in; without a mapping there is simply no reserve.
    fn new() -> Reserve {
        let mut r = Reserve { at: anonymous(RESERVE_BYTES), held: false };
        r.hold();
        r
    }

    /// Fault every page in: from here on they are charged to the cgroup.
    fn hold(&mut self) {
        let Some(at) = self.at else { return };
        self.held = true;
        if populate(at, RESERVE_BYTES) {
            return;
        }
        for page in (0..RESERVE_BYTES).step_by(4096) {
            // SAFETY: inside the RESERVE_BYTES-long writable mapping made in `new`, which lives as
            // long as oominit (never unmapped). A volatile write, so the touch is not optimised
            // away.
            unsafe { std::ptr::write_volatile((at + page) as *mut u8, 1) };
        }
    }

    /// Give the pages back to the kernel, and so the room they take to the cgroup.
    fn release(&mut self) {
        let Some(at) = self.at.filter(|_| self.held) else { return };
        // SAFETY: the mapping made in `new`; MADV_DONTNEED on private anonymous memory only
        // drops its pages (read again, they are zero).
        unsafe { libc::madvise(at as *mut libc::c_void, RESERVE_BYTES, libc::MADV_DONTNEED) };
        self.held = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Listing::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn populate_faults_every_page_in_and_refuses_a_range_it_cannot_write() {
        let len = 4 * page_size();
        let p = anonymous(len).unwrap() as *mut libc::c_void;
        let resident = || {
            let mut v = [0u8; 4];
            assert_eq!(unsafe { libc::mincore(p, len, v.as_mut_ptr()) }, 0);
            v.iter().filter(|b| **b & 1 == 1).count()
        };
        assert_eq!(resident(), 0);
        // From an address inside the first page: the whole page is in.
        assert!(populate(p as usize + 100, len - 100), "MADV_POPULATE_WRITE needs Linux 5.14");
        assert_eq!(resident(), 4);
        // PROT_NONE, not unmapped: an unmapped range could be mapped again by another test
        // thread before the call (seen once in CI).
        assert_eq!(unsafe { libc::mprotect(p, len, libc::PROT_NONE) }, 0);
        assert!(!populate(p as usize, len), "a range it cannot write");
        unsafe { libc::munmap(p, len) };
    }

    #[test]
    fn the_images_segments_on_adjacent_pages_are_locked_in_one_call() {
        // oominit's own PT_LOAD segments (x86_64 musl, after objcopy removed .eh_frame): headers,
        // code and read-only data back to back, the data 36 KiB further.
        let segments = [(0x400000, 0x224), (0x401000, 0x2c5e2), (0x42e000, 0xbea0), (0x443ed0, 0x910)];
        let mut run = None;
        let mut locked = Vec::new();
        for (vaddr, memsz) in segments {
            let (done, next) = extend(run, pages(0, vaddr, memsz, 4096).unwrap());
            locked.extend(done);
            run = Some(next);
        }
        locked.extend(run);
        assert_eq!(locked, [(0x400000, 0x43a000), (0x443000, 0x445000)]);
        assert_eq!(pages(u64::MAX, 1, 1, 4096), None, "no wrap-around");
        assert_eq!(
            extend(Some((0x2000, 0x3000)), (0x1000, 0x2000)),
            (Some((0x2000, 0x3000)), (0x1000, 0x2000))
        );
    }

    fn at(limit: u64, usage: u64) -> Memory {
        Memory { limit_bytes: Some(limit), usage_bytes: Some(usage), ..Memory::default() }
    }

    /// A cgroup of 96 MiB, full, with main (a shell) at 1 MiB.
    fn full() -> Snapshot {
        Snapshot {
            memory: at(96 * MIB, 96 * MIB),
            main_rss: Some(MIB),
            known_rss: 95 * MIB,
            runner_up_rss: None,
            victim_dying: false,
        }
    }

    #[test]
    fn when_a_wake_may_list() {
        #[rustfmt::skip]
        let rows: &[(&str, Snapshot, bool, Listing)] = &[
            ("nothing dying: list, with the reserve as room",
                full(), false, List),
            ("a named victim still holds its memory: a charge now kills someone else",
                Snapshot { victim_dying: true, ..full() }, false, LookOnly),
            ("a victim left unnamed may still hold its memory",
                full(), true, LookOnly),
            ("two workers bigger than main would be picked before main or oominit",
                Snapshot { victim_dying: true, runner_up_rss: Some(40 * MIB), ..full() }, true, List),
            ("one big worker is not enough: it may be the victim being skipped",
                Snapshot { victim_dying: true, runner_up_rss: Some(MIB / 2), ..full() }, false, LookOnly),
            ("workers bigger than main but small: oominit could still be the pick",
                Snapshot { victim_dying: true, runner_up_rss: Some(3 * MIB), ..full() }, false, LookOnly),
            ("main bigger than the workers: main would be the pick",
                Snapshot { victim_dying: true, main_rss: Some(50 * MIB), runner_up_rss: Some(40 * MIB), ..full() }, false, LookOnly),
            ("the cgroup holds much more than oominit knows (untracked stress workers)",
                Snapshot { victim_dying: true, known_rss: 10 * MIB, ..full() }, false, List),
            ("main never seen alive: its size, so the pick, is unknown",
                Snapshot { victim_dying: true, main_rss: None, known_rss: 0, runner_up_rss: Some(40 * MIB), ..full() }, false, LookOnly),
        ];
        for (situation, s, unnamed_dying, want) in rows {
            assert_eq!(at_wake(s, *unnamed_dying), *want, "{situation}");
        }
    }

    #[test]
    fn right_after_a_kill_only_shielded_listing() {
        assert_eq!(after_kill(&full()), LookOnly, "the victim is skipped while it dies");
        let shielded = Snapshot { runner_up_rss: Some(40 * MIB), ..full() };
        assert_eq!(after_kill(&shielded), List);
        let untracked = Snapshot { known_rss: 0, ..full() };
        assert_eq!(after_kill(&untracked), LookOnly, "unknown memory may be the dying victim's own");
    }

    #[test]
    fn an_unnamed_victim_stops_counting_as_dying_once_there_is_room() {
        #[rustfmt::skip]
        let rows = [
            ("still full", true, at(96 * MIB, 96 * MIB - 4096), true),
            ("its memory given back", true, at(96 * MIB, 60 * MIB), false),
            ("figures unknown: no limit, nothing to wait for", true, Memory::default(), false),
            ("nothing was dying", false, at(96 * MIB, 96 * MIB), false),
        ];
        for (situation, was, memory, want) in rows {
            assert_eq!(unnamed_still_dying(was, memory), want, "{situation}");
        }
    }

    #[test]
    fn the_reserve_goes_before_a_listing_at_the_limit_and_comes_back_with_room() {
        let mut h = Headroom::default();
        h.hold_reserve();
        assert!(h.reserve.held);
        assert!(h.before_listing(|| at(96 * MIB, 90 * MIB)));
        assert!(h.reserve.held, "room enough: kept");
        assert!(h.before_listing(|| at(96 * MIB, 96 * MIB)), "the reserve given back makes the room");
        assert!(!h.reserve.held, "at the limit: given back");
        h.retake(|| at(96 * MIB, 96 * MIB - 300 * 1024));
        assert!(!h.reserve.held, "it would fit, but not with room to spare");
        h.retake(|| at(96 * MIB, 60 * MIB));
        assert!(h.reserve.held);
    }

    #[test]
    fn a_write_reads_the_figures_again_only_after_giving_the_reserve_back() {
        let reads = std::cell::Cell::new(0);
        let counted = |m: Memory| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                m
            }
        };
        let mut h = Headroom::default();
        h.hold_reserve();
        assert!(h.room_to_write(counted(at(96 * MIB, 90 * MIB))));
        assert_eq!((reads.get(), h.reserve.held), (1, true), "room: one read, the reserve kept");
        assert!(!h.room_to_write(counted(at(96 * MIB, 96 * MIB))), "full even after giving it back");
        assert_eq!((reads.get(), h.reserve.held), (3, false), "given back, then read again");
        assert!(h.room_to_write(counted(at(96 * MIB, 96 * MIB - WRITE_ROOM))));
        assert_eq!(reads.get(), 4, "nothing to give back: one read");
        assert!(h.room_to_write(counted(Memory::default())), "no limit");
    }

    #[test]
    fn without_the_reserve_a_listing_waits_for_room() {
        let mut h = Headroom::default();
        let rows = [
            ("at the limit", at(96 * MIB, 96 * MIB), false),
            ("less than ROOM free", at(96 * MIB, 96 * MIB - ROOM + 4096), false),
            ("ROOM free", at(96 * MIB, 96 * MIB - ROOM), true),
            ("no limit", Memory::default(), true),
        ];
        for (situation, memory, want) in rows {
            assert_eq!(h.before_listing(|| memory), want, "{situation}");
        }
    }

    #[test]
    fn a_wake_reads_the_figures_only_when_the_decision_needs_them() {
        let mut h = Headroom::default();
        let no_read = || -> Memory { panic!("read without need") };
        assert_eq!(h.at_wake(full(), no_read), List, "nothing dying");
        let dying = Snapshot { victim_dying: true, ..full() };
        let shielded = Snapshot { runner_up_rss: Some(40 * MIB), ..dying };
        assert_eq!(h.at_wake(shielded, no_read), List);
        h.reported(false);
        assert_eq!(h.at_wake(full(), || at(96 * MIB, 96 * MIB)), LookOnly, "an unnamed victim still charged");
        assert_eq!(h.at_wake(full(), || at(96 * MIB, 50 * MIB)), List, "its memory given back");
        assert_eq!(h.at_wake(full(), no_read), List, "and forgotten");
    }

    /// How many of the reserve's pages the kernel has resident (mincore).
    fn resident(r: &Reserve) -> usize {
        let Some(at) = r.at else { return 0 };
        let mut vec = [0u8; RESERVE_BYTES / 4096];
        // SAFETY: the mapping made in `new`, RESERVE_BYTES long; one status byte per 4 KiB page.
        let rc = unsafe { libc::mincore(at as *mut libc::c_void, RESERVE_BYTES, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        vec.iter().filter(|&&v| v & 1 == 1).count()
    }

    #[test]
    fn the_reserve_is_resident_when_held_and_given_back_when_released() {
        let mut r = Reserve::new();
        assert!(r.held);
        assert_eq!(resident(&r), RESERVE_BYTES / 4096);
        r.release();
        assert!(!r.held);
        assert_eq!(resident(&r), 0, "MADV_DONTNEED drops the pages");
        r.release();
        r.hold();
        assert_eq!(resident(&r), RESERVE_BYTES / 4096);
    }
}
