//! A counting global allocator: the hook behind the "heap allocations per message"
//! figure.
//!
//! The library cannot install a global allocator for the program; a binary does, in one
//! line, and the measurements then report allocations per message (otherwise `None`):
//!
//! ```
//! #[global_allocator]
//! static ALLOC: ipc_audit::measure::alloc::CountingAlloc = ipc_audit::measure::alloc::CountingAlloc;
//!
//! fn main() {
//!     let before = ipc_audit::measure::alloc::count().unwrap();
//!     let v = vec![1u8; 10];
//!     assert!(ipc_audit::measure::alloc::count().unwrap() > before);
//!     drop(v);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The system allocator, counting every allocation and reallocation (frees are not
/// counted: a steady state that allocates and frees each message still shows).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    #[inline]
    fn note() {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        if !INSTALLED.load(Ordering::Relaxed) {
            INSTALLED.store(true, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counter is a relaxed atomic and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: same contract as our caller's: `layout` has a non-zero size.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note();
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) so far in this process, if the program installed
/// [`CountingAlloc`] as its global allocator; `None` otherwise.
pub fn count() -> Option<u64> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| ALLOCS.load(Ordering::Relaxed))
}
