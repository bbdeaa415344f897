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
use std::cell::Cell;
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

// ---------------------------------------------------------------------------------------
// Per-thread counting (the fuzz targets' memory checks)

/// Allocations seen on one thread since the last [`thread_reset`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Number of allocations and reallocations.
    pub count: usize,
    /// Sum of the sizes requested.
    pub bytes: usize,
    /// The largest single size requested.
    pub largest: usize,
    /// Bytes allocated minus bytes freed on this thread since the reset.
    pub live: isize,
    /// The highest value `live` reached since the reset.
    pub peak: isize,
}

thread_local! {
    static STATS: Cell<AllocStats> = const {
        Cell::new(AllocStats { count: 0, bytes: 0, largest: 0, live: 0, peak: 0 })
    };
}

static THREAD_INSTALLED: AtomicBool = AtomicBool::new(false);

/// A global allocator that forwards to [`System`] and counts, per thread, what it
/// allocates (sizes, live bytes and their peak): the memory checks of the fuzz targets
/// (`ipc_audit::fuzzing::CountingAlloc`). Install it with
/// `#[global_allocator] static A: ThreadCountingAlloc = ThreadCountingAlloc;`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadCountingAlloc;

fn thread_record(grow: usize, shrink: usize) {
    THREAD_INSTALLED.store(true, Ordering::Relaxed);
    // `try_with`: the slot is const-initialised and has no destructor, but never panic
    // inside the allocator.
    let _ = STATS.try_with(|s| {
        let mut st = s.get();
        if grow > 0 {
            st.count += 1;
            st.bytes = st.bytes.saturating_add(grow);
            st.largest = st.largest.max(grow);
        }
        st.live = st
            .live
            .wrapping_add(grow as isize)
            .wrapping_sub(shrink as isize);
        st.peak = st.peak.max(st.live);
        s.set(st);
    });
}

// SAFETY: every method forwards to `System` with the arguments it was given, so the
// allocator contract is `System`'s; the counting touches only a thread-local `Cell`
// and does not allocate.
unsafe impl GlobalAlloc for ThreadCountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        thread_record(layout.size(), 0);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        thread_record(layout.size(), 0);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        thread_record(0, layout.size());
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        thread_record(new_size, layout.size());
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`; the caller
        // upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// True once [`ThreadCountingAlloc`] has served an allocation: it is the global
/// allocator.
pub fn thread_counting() -> bool {
    THREAD_INSTALLED.load(Ordering::Relaxed)
}

/// Starts a new counting window on this thread.
pub fn thread_reset() {
    let _ = STATS.try_with(|s| s.set(AllocStats::default()));
}

/// What this thread allocated since [`thread_reset`].
pub fn thread_stats() -> AllocStats {
    STATS.try_with(Cell::get).unwrap_or_default()
}
