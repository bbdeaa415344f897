//! `futex(2)` on a 32-bit word, process-shared (no `FUTEX_PRIVATE_FLAG`), so that it
//! works between processes on a `MAP_SHARED` mapping as well as between threads.
//!
//! [`wait`] and [`wake`] are the system call itself (Linux); [`futex_wait`] and
//! [`futex_wake`] are the forms of the measurement floors, which exist on every platform
//! (elsewhere a short sleep and nothing).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// `FUTEX_WAIT`: sleeps while `word` holds `expected`, at most `timeout` (`None`: no
/// limit). `Ok` on a wake-up (possibly spurious).
///
/// # Errors
/// The errno: `EAGAIN` (the word did not hold `expected`), `ETIMEDOUT`, `EINTR`, or an
/// unexpected one.
#[cfg(target_os = "linux")]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> nix::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call; the kernel only
    // reads it. `tsp` is null or points to `ts`, alive during the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            core::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

/// `FUTEX_WAKE`: wakes at most `count` sleepers on `word` (`i32::MAX`: all of them).
/// Returns how many were woken (0 on an error, which only a bad address could cause).
#[cfg(target_os = "linux")]
pub fn wake(word: &AtomicU32, count: i32) -> usize {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE only uses its address
    // as a key and writes no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            core::ptr::null::<libc::timespec>(),
            core::ptr::null::<u32>(),
            0u32,
        )
    };
    usize::try_from(r).unwrap_or(0)
}

/// Sleeps while `word` holds `expected`, at most `timeout`. Spurious returns happen; the
/// caller re-checks. (Off Linux: sleeps at most 50 µs.)
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    #[cfg(target_os = "linux")]
    {
        // EAGAIN, EINTR and ETIMEDOUT all mean "re-check the word": ignored on purpose.
        let _ = wait(word, expected, Some(timeout));
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (word, expected);
        std::thread::sleep(timeout.min(Duration::from_micros(50)));
    }
}

/// Wakes one waiter on `word` (off Linux: nothing).
pub fn futex_wake(word: &AtomicU32) {
    #[cfg(target_os = "linux")]
    {
        let _ = wake(word, 1);
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = word;
    }
}
