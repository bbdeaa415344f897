//! The loom shim: the only file of the crate that names atomics, cells shared between
//! threads, and the primitives of the loom semaphore model.
//!
//! Under `cfg(loom)` everything comes from [loom](https://docs.rs/loom), which then
//! explores every interleaving (and every weak-memory outcome it models) of the code
//! that uses it; otherwise from `core`/`std`. The shared-memory ring
//! ([`crate::shm::ring`]) uses only this module, so the code loom checks is the code
//! that runs.
//!
//! Payload bytes go through this module's [`UnsafeCell`] with [`write_cells`] and
//! [`read_cells`]: under loom each byte is a tracked cell, so a missing Release/Acquire
//! pair shows up as a data race on the payload.

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Mutex and condition variable of the loom semaphore model (loom's under `cfg(loom)`).
#[cfg(loom)]
pub use loom::sync::{Condvar, Mutex};
/// Mutex and condition variable of the loom semaphore model (loom's under `cfg(loom)`).
#[cfg(not(loom))]
pub use std::sync::{Condvar, Mutex};

/// A cell whose content is shared between threads (or processes) under a protocol that
/// the caller upholds; loom's `UnsafeCell` under `cfg(loom)`, which checks the protocol.
#[cfg(loom)]
pub use loom::cell::UnsafeCell;

/// A cell whose content is shared between threads (or processes) under a protocol that
/// the caller upholds. Layout-compatible with `T` (`repr(transparent)`), so a slice of
/// them can be laid over a shared mapping.
#[cfg(not(loom))]
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// A new cell holding `value`.
    pub const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer for reading the content (loom's API).
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a pointer for writing the content (loom's API).
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Busy-wait hint: a CPU pause, or a yield to the loom scheduler under `cfg(loom)` (a
/// spinning loop without it would never end in a model).
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

/// One poll of a busy-wait loop, `iteration` counting from 1. Outside loom a CPU pause
/// is issued only every 64 polls, so that a spinning side notices a change within a few
/// loads rather than after a pause (up to ~140 cycles; in a virtual machine back-to-back
/// pauses may also cause pause-loop exits), while still yielding the core's pipeline
/// to a hyperthread sibling now and then. Under loom, a yield every time.
#[inline]
pub fn spin_wait(iteration: u32) {
    #[cfg(loom)]
    {
        let _ = iteration;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    if iteration.is_multiple_of(64) {
        core::hint::spin_loop();
    }
}

/// Asks the CPU to bring the cache line of `p` closer (x86-64 `prefetcht0`); a hint
/// that reads nothing the program sees, so it cannot race. A no-op under loom, under
/// Miri and on other architectures.
#[inline]
pub fn prefetch<T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: a prefetch never faults and has no effect the program can observe, for any
    // address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(all(target_arch = "x86_64", not(loom), not(miri))))]
    let _ = p;
}

/// Copies `src` into the cells `dst` (same length).
///
/// # Safety
/// No other thread or process may access `dst` during the call, by the protocol of the
/// caller (under loom, a violation is reported as a causality violation).
///
/// # Panics
/// If the lengths differ (a caller bug, never data-dependent).
#[inline]
pub unsafe fn write_cells(dst: &[UnsafeCell<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "write_cells: length mismatch");
    #[cfg(not(loom))]
    {
        // `UnsafeCell<u8>` is `repr(transparent)` over `u8`, and the pointer comes from
        // the whole slice, so it may write all of its bytes (interior mutability).
        let p = core::cell::UnsafeCell::raw_get(dst.as_ptr().cast::<core::cell::UnsafeCell<u8>>());
        // SAFETY: `p` is valid for `src.len()` bytes (same length as `dst`), the regions
        // cannot overlap (`src` is a shared borrow of ordinary memory while `dst` is
        // written), and the caller guarantees exclusive access to `dst`.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
    }
    #[cfg(loom)]
    for (cell, &b) in dst.iter().zip(src) {
        // SAFETY: the caller guarantees exclusive access; loom checks it.
        cell.with_mut(|p| unsafe { p.write(b) });
    }
}

/// Copies the cells `src` into `dst` (same length).
///
/// # Safety
/// No other thread or process may write `src` during the call, by the protocol of the
/// caller (under loom, a violation is reported as a causality violation).
///
/// # Panics
/// If the lengths differ (a caller bug, never data-dependent).
#[inline]
pub unsafe fn read_cells(dst: &mut [u8], src: &[UnsafeCell<u8>]) {
    assert_eq!(dst.len(), src.len(), "read_cells: length mismatch");
    #[cfg(not(loom))]
    {
        let p = core::cell::UnsafeCell::raw_get(src.as_ptr().cast::<core::cell::UnsafeCell<u8>>());
        // SAFETY: `p` is valid for `dst.len()` bytes, `dst` is an exclusive borrow of
        // other memory, and the caller guarantees nobody writes `src` meanwhile.
        unsafe { core::ptr::copy_nonoverlapping(p.cast_const(), dst.as_mut_ptr(), dst.len()) };
    }
    #[cfg(loom)]
    for (d, cell) in dst.iter_mut().zip(src) {
        // SAFETY: the caller guarantees nobody writes the cell; loom checks it.
        *d = cell.with(|p| unsafe { p.read() });
    }
}
