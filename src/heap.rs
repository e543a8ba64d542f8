//! The wasm module's allocator: dlmalloc, with a system side that grows the linear memory in
//! large steps.
//!
//! The standard allocator grows the memory by exactly the pages an allocation is short of. Each
//! `memory.grow` tells V8 that much more external memory is held, and past a limit V8 runs a
//! full garbage collection of the JavaScript heap; a store or a run that takes its memory a few
//! pages at a time then spends most of its time collecting (measured: 100 000 payments recorded
//! in the in-memory storage, 988 full collections for 8 000 single-page grows). Here the memory
//! grows by at least a quarter of its size, and by 4 MiB at least, so a heap that reaches n
//! bytes grows O(log n) times. A grow that large fails over to the pages needed alone.
//!
//! Single-threaded: the module is built without atomics (the `cfg` of this module says so), so
//! one caller at a time reaches the allocator.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr;

const PAGE: usize = 64 * 1024;
/// The smallest step: 4 MiB.
const STEP_PAGES_MIN: usize = 64;

extern "C" {
    // Set by the linker for wasm32-unknown-unknown: the free memory after the data and stack in
    // the module's initial memory.
    static __heap_base: u8;
    static __heap_end: u8;
}

/// dlmalloc's system side.
struct Steps {
    /// Whether the initial memory's free part was handed over (it is, to the first request).
    donated: UnsafeCell<bool>,
}

// One thread (see the module's documentation).
unsafe impl Send for Steps {}

unsafe impl dlmalloc::Allocator for Steps {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        // SAFETY: one thread; dlmalloc calls this only from within its own calls.
        let donated = unsafe { &mut *self.donated.get() };
        if !*donated && size != 0 {
            *donated = true;
            // Linker symbols: only their addresses are taken.
            let (base, end) = (
                ptr::addr_of!(__heap_base) as usize,
                ptr::addr_of!(__heap_end) as usize,
            );
            if base != 0 && end > base && end - base >= size {
                return (base as *mut u8, end - base, 0);
            }
        }
        let needed = size.div_ceil(PAGE);
        let step = needed.max(wasm32::memory_size(0) / 4).max(STEP_PAGES_MIN);
        let (previous, pages) = match wasm32::memory_grow(0, step) {
            usize::MAX if step > needed => (wasm32::memory_grow(0, needed), needed),
            previous => (previous, step),
        };
        if previous == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        let base = previous * PAGE;
        let size = pages * PAGE;
        // The last bytes of the address space are never handed out: a pointer one past the
        // end must not wrap to 0.
        if base.wrapping_add(size) == 0 {
            return (base as *mut u8, size - 16, 0);
        }
        (base as *mut u8, size, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

struct Heap(UnsafeCell<dlmalloc::Dlmalloc<Steps>>);

// One thread (see the module's documentation).
unsafe impl Sync for Heap {}

#[global_allocator]
static HEAP: Heap = Heap(UnsafeCell::new(dlmalloc::Dlmalloc::new_with_allocator(
    Steps {
        donated: UnsafeCell::new(false),
    },
)));

// SAFETY: dlmalloc's contract is GlobalAlloc's; one thread holds the heap at a time, and
// dlmalloc never calls back into the global allocator.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).malloc(layout.size(), layout.align())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        (*self.0.get()).calloc(layout.size(), layout.align())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        (*self.0.get()).free(ptr, layout.size(), layout.align());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size)
    }
}
