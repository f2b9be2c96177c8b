//! oominit's heap: blocks cut from one arena (beyond it, the system allocator's), every block
//! freed kept for reuse and never given back to the kernel.
//!
//! Why: musl's allocator unmaps a group of blocks once they are all free. The kernel merges
//! adjacent anonymous mappings, so that group's mapping may be part of a larger one, and the unmap
//! then splits it: the split allocates a `vm_area_struct`, charged to the cgroup. Right after a
//! kill, with the victim's memory not yet given back, that charge is an OOM of its own (see
//! `docs/headroom.md`). Kept blocks also let the OOM path's allocations reuse pages the start's
//! dry run touched, instead of faulting new ones in at the limit.
//!
//! Blocks come in power-of-two classes, 16 bytes to 16 MiB; the free blocks of a class form a
//! list threaded through the blocks themselves. The heap is bounded by the most it ever held: each
//! class by its own peak, rounded up to a power of two.
//!
//! New blocks are cut from one mapping made at the first allocation ([`ARENA_BYTES`], pages
//! faulted in as they are used), and from the system's allocator once it is used up: a start then
//! maps once, where musl's allocator made a dozen `mmap` and `brk` calls for its groups of blocks.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;
use std::sync::{Mutex, PoisonError};

use nix::libc;

/// The smallest class, 16 bytes: room for a list link, and musl's own alignment.
const MIN_SHIFT: u32 = 4;
/// 16 bytes to 16 MiB; anything larger (oominit asks for nothing near it) goes to the system.
const CLASSES: usize = 21;
/// Every class block is aligned so; a layout asking more goes to the system.
const ALIGN: usize = 1 << MIN_SHIFT;
/// The arena new blocks are cut from: reserved address space, each page charged once touched.
/// A start-up uses about 200 KiB of it; thousands of processes followed, more.
const ARENA_BYTES: usize = 1 << 20;

/// The global allocator of the `oominit` binary.
pub struct KeepingHeap {
    free: Mutex<FreeLists>,
}

/// The head of each class's list of free blocks (null: empty), and what is left of the arena.
struct FreeLists([*mut u8; CLASSES], Arena);

/// The arena's unused end: `next` up to `end` (both 0 before it is mapped).
struct Arena {
    next: usize,
    end: usize,
    /// The mapping was tried (made, or refused): it is made once.
    tried: bool,
}

impl Arena {
    const fn new() -> Arena {
        Arena { next: 0, end: 0, tried: false }
    }

    /// A new block of `size` bytes (a class size: a multiple of ALIGN, so blocks cut one after
    /// the other stay aligned), or null once the arena cannot hold it.
    fn cut(&mut self, size: usize) -> *mut u8 {
        if !self.tried {
            self.tried = true;
            // SAFETY: a new private mapping, aliased by nothing; the kernel picks the address.
            let p = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    ARENA_BYTES,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                self.next = p as usize;
                self.end = self.next.saturating_add(ARENA_BYTES);
            }
        }
        match self.next.checked_add(size) {
            Some(after) if self.next != 0 && after <= self.end => {
                let block = self.next as *mut u8;
                self.next = after;
                block
            }
            _ => ptr::null_mut(),
        }
    }
}

// SAFETY: the pointers are blocks nobody else holds; they pass between threads only under the
// mutex.
unsafe impl Send for FreeLists {}

impl KeepingHeap {
    pub const fn new() -> KeepingHeap {
        KeepingHeap { free: Mutex::new(FreeLists([ptr::null_mut(); CLASSES], Arena::new())) }
    }

    fn lists(&self) -> std::sync::MutexGuard<'_, FreeLists> {
        // Nothing panics while holding it; a poisoned list is still a valid list.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for KeepingHeap {
    fn default() -> KeepingHeap {
        KeepingHeap::new()
    }
}

/// The class a layout is served from, None for the system's own.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN {
        return None;
    }
    let size = layout.size().max(ALIGN).checked_next_power_of_two()?;
    let class = usize::try_from(size.trailing_zeros().checked_sub(MIN_SHIFT)?).ok()?;
    (class < CLASSES).then_some(class)
}

/// The layout a block of `class` is asked of the system with.
fn class_layout(class: usize) -> Layout {
    // SAFETY: class < CLASSES, so the size is a power of two of at most 16 MiB, and the
    // alignment a power of two no larger.
    unsafe { Layout::from_size_align_unchecked(ALIGN << class, ALIGN) }
}

// SAFETY: every block handed out is either the system's for the same layout, or a class block at
// least as large and as aligned as asked, held by nobody else (taken off its list under the lock).
unsafe impl GlobalAlloc for KeepingHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: the caller's layout, as given.
            return unsafe { System.alloc(layout) };
        };
        let mut lists = self.lists();
        let head = lists.0[class];
        if !head.is_null() {
            // SAFETY: a free block of this class, whose first word holds the next one.
            lists.0[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let cut = lists.1.cut(class_layout(class).size());
        drop(lists);
        if !cut.is_null() {
            return cut;
        }
        // SAFETY: a non-zero size.
        unsafe { System.alloc(class_layout(class)) }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: the system's block, freed with the layout it was asked with.
            return unsafe { System.dealloc(block, layout) };
        };
        let mut lists = self.lists();
        // SAFETY: a class block, at least 16 bytes and 16-aligned, that its owner gave up.
        unsafe { block.cast::<*mut u8>().write(lists.0[class]) };
        lists.0[class] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller promises new_size, rounded up to the alignment, does not overflow.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if class(layout).is_some() && class(layout) == class(new) {
            return block;
        }
        // SAFETY: as alloc and dealloc; the old block holds layout.size() bytes, the new one
        // new_size.
        unsafe {
            let moved = self.alloc(new);
            if !moved.is_null() {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn sizes_fall_in_power_of_two_classes_from_16_bytes_to_16_mib() {
        for (size, want) in [(1, Some(0)), (16, Some(0)), (17, Some(1)), (4096, Some(8)), (4097, Some(9))] {
            assert_eq!(class(layout(size, 1)), want, "{size} bytes");
        }
        assert_eq!(class(layout(16 << 20, 8)), Some(20));
        assert_eq!(class(layout((16 << 20) + 1, 8)), None, "larger goes to the system");
        assert_eq!(class(layout(64, 32)), None, "a larger alignment goes to the system");
        assert_eq!(class(layout(isize::MAX as usize, 1)), None, "the largest layout");
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let heap = KeepingHeap::new();
        unsafe {
            let a = heap.alloc(layout(100, 8));
            let b = heap.alloc(layout(100, 8));
            assert!(!a.is_null() && !b.is_null() && a != b);
            a.write_bytes(7, 100);
            heap.dealloc(a, layout(100, 8));
            let c = heap.alloc(layout(120, 16));
            assert_eq!(c, a, "same class (128 bytes): the freed block again");
            let d = heap.alloc(layout(100, 8));
            assert_ne!(d, a, "the list is empty again");
            heap.dealloc(b, layout(100, 8));
            heap.dealloc(c, layout(120, 16));
            heap.dealloc(d, layout(100, 8));
        }
    }

    #[test]
    fn realloc_within_a_class_keeps_the_block_and_across_classes_moves_the_contents() {
        let heap = KeepingHeap::new();
        unsafe {
            let a = heap.alloc(layout(40, 8));
            a.copy_from(b"0123456789".as_ptr(), 10);
            assert_eq!(heap.realloc(a, layout(40, 8), 64), a, "40 and 64 bytes: both 64");
            let moved = heap.realloc(a, layout(64, 8), 65);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 10), b"0123456789");
            assert_eq!(heap.alloc(layout(64, 8)), a, "the old block was kept");
        }
    }

    #[test]
    fn a_zeroed_request_served_from_a_used_block_is_zero() {
        let heap = KeepingHeap::new();
        unsafe {
            let a = heap.alloc(layout(128, 8));
            a.write_bytes(0xff, 128);
            heap.dealloc(a, layout(128, 8));
            let z = heap.alloc_zeroed(layout(128, 8));
            assert_eq!(z, a);
            assert!(std::slice::from_raw_parts(z, 128).iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn new_blocks_are_cut_one_after_another_from_one_mapping() {
        let heap = KeepingHeap::new();
        unsafe {
            let a = heap.alloc(layout(100, 8));
            let b = heap.alloc(layout(16, 16));
            let c = heap.alloc(layout(5000, 8));
            assert_eq!(a as usize % 4096, 0, "the mapping's first block, at its page-aligned start");
            assert_eq!(b as usize, a as usize + 128, "right after the 128-byte block");
            assert_eq!(c as usize, b as usize + 16, "a class's size is a multiple of 16: aligned as asked");
            c.write_bytes(1, 5000);
        }
    }

    #[test]
    fn once_the_arena_is_used_up_new_blocks_come_from_the_system() {
        let heap = KeepingHeap::new();
        unsafe {
            let small = heap.alloc(layout(64, 8)) as usize;
            let rest = heap.alloc(layout(ARENA_BYTES / 2, 8)) as usize;
            assert_eq!(rest, small + 64, "cut right after the first");
            let beyond = heap.alloc(layout(ARENA_BYTES / 2, 8));
            assert!(!beyond.is_null());
            let arena = small..small + ARENA_BYTES;
            assert!(!arena.contains(&(beyond as usize)), "not cut from the arena, which has 64 bytes less");
            beyond.write_bytes(1, ARENA_BYTES / 2);
        }
    }

    #[test]
    fn blocks_the_system_serves_are_given_back_to_it() {
        let heap = KeepingHeap::new();
        unsafe {
            let big = heap.alloc(layout(32 << 20, 8));
            assert!(!big.is_null());
            heap.dealloc(big, layout(32 << 20, 8));
            let aligned = heap.alloc(layout(64, 4096));
            assert_eq!(aligned as usize % 4096, 0);
            heap.dealloc(aligned, layout(64, 4096));
            assert!(heap.lists().0.iter().all(|p| p.is_null()), "nothing kept");
        }
    }
}
