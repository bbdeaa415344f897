//! A deadline for a blocking call that has no timeout of its own (`msgrcv`, `msgsnd`):
//! a per-thread POSIX timer (`timer_create` with SIGEV_THREAD_ID) sends
//! [`timer_signal`] to the waiting thread when the deadline comes, and the call returns
//! EINTR (System V calls are never restarted, whatever SA_RESTART says).
//!
//! The thread sleeps in the kernel until the message or the deadline: no polling.
//!
//! - The timer stays armed across waits while its expiry is at or before the next
//!   wait's deadline, so a run of waits with the same timeout costs no timer call but
//!   one signal per timeout period (an early signal is an EINTR retried by
//!   [`bounded`]).
//! - Past its first expiry it fires again every [`REFIRE`], so a signal that lands
//!   between the deadline check and the call's entry into the kernel is followed by
//!   another one: a deadline is overshot by at most [`REFIRE`].
//! - A signal that lands outside a wait disarms the timer (the handler calls
//!   `timer_settime`, which is async-signal-safe); the handler is installed with
//!   SA_RESTART, so a restartable call it interrupts elsewhere on the thread goes on.
//! - When no timer can be made (RLIMIT_SIGPENDING used up counts too), [`bounded`]
//!   says so with `None`, and the caller waits its own way.

use std::cell::RefCell;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// After its first expiry an armed timer fires again at this interval.
pub const REFIRE: Duration = Duration::from_millis(1);

/// The signal of the deadline timers: SIGRTMIN + 14 (the signal transport uses + 8, the
/// audit's taps + 10 and + 12, the `raw-signal` floor + 16).
pub fn timer_signal() -> i32 {
    libc::SIGRTMIN() + 14
}

thread_local! {
    /// True while this thread is inside the blocking call of [`bounded`].
    static IN_WAIT: AtomicBool = const { AtomicBool::new(false) };
    /// True while this thread's timer is armed (cleared by the handler when it disarms).
    static ARMED: AtomicBool = const { AtomicBool::new(false) };
    /// This thread's timer id (a `timer_t`), 0 when there is none: read by the handler.
    static TIMER_ID: AtomicUsize = const { AtomicUsize::new(0) };
    /// This thread's timer, made on first use and deleted when the thread ends.
    static TIMER: RefCell<Option<ThreadTimer>> = const { RefCell::new(None) };
}

/// A thread's timer and the expiry it is armed for.
struct ThreadTimer {
    id: libc::timer_t,
    expiry: Option<Instant>,
}

impl Drop for ThreadTimer {
    fn drop(&mut self) {
        TIMER_ID.with(|t| t.store(0, Ordering::SeqCst));
        // SAFETY: `id` came from timer_create on this thread and is deleted only here.
        unsafe { libc::timer_delete(self.id) };
    }
}

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

/// Sets `id` to expire after `value` (zero disarms), then every `interval`.
fn settime(id: libc::timer_t, value: Duration, interval: Duration) -> nix::Result<()> {
    let spec = libc::itimerspec {
        it_interval: timespec(interval),
        it_value: timespec(value),
    };
    // SAFETY: `spec` outlives the call; a null old value is allowed; `id` is a live timer.
    let r = unsafe { libc::timer_settime(id, 0, &spec, std::ptr::null_mut()) };
    if r == 0 { Ok(()) } else { Err(Errno::last()) }
}

extern "C" fn on_timer(_: libc::c_int) {
    // Async-signal-safe: atomics in const thread-locals and timer_settime.
    if IN_WAIT.with(|w| w.load(Ordering::SeqCst)) {
        return;
    }
    let id = TIMER_ID.with(|t| t.load(Ordering::SeqCst));
    if id != 0 {
        let _ = settime(id as libc::timer_t, Duration::ZERO, Duration::ZERO);
    }
    ARMED.with(|a| a.store(false, Ordering::SeqCst));
}

static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the handler of [`timer_signal`] once per process.
fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: an all-zero sigaction is valid; the fields are then set.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_timer as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: `act.sa_mask` is valid memory for a sigset_t.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: `act` outlives the call; the handler only uses async-signal-safe calls.
        let r = unsafe { libc::sigaction(timer_signal(), &act, std::ptr::null_mut()) };
        INSTALLED.store(r == 0, Ordering::SeqCst);
    });
    INSTALLED.load(Ordering::SeqCst)
}

/// Makes this thread's timer, sending [`timer_signal`] to this thread.
fn create() -> nix::Result<ThreadTimer> {
    // SAFETY: an all-zero sigevent is valid; the fields used are then set.
    let mut sev: libc::sigevent = unsafe { std::mem::zeroed() };
    sev.sigev_notify = libc::SIGEV_THREAD_ID;
    sev.sigev_signo = timer_signal();
    // SAFETY: gettid takes nothing and cannot fail.
    sev.sigev_notify_thread_id = unsafe { libc::gettid() };
    let mut id: libc::timer_t = std::ptr::null_mut();
    // SAFETY: `sev` and `id` are valid for the call; the kernel writes the new id.
    let r = unsafe { libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut id) };
    if r != 0 {
        return Err(Errno::last());
    }
    TIMER_ID.with(|t| t.store(id as usize, Ordering::SeqCst));
    Ok(ThreadTimer { id, expiry: None })
}

/// Arms this thread's timer to expire at `deadline` at the latest. Call with IN_WAIT set.
fn arm_by(t: &mut ThreadTimer, deadline: Instant) -> nix::Result<()> {
    let now = Instant::now();
    let armed = ARMED.with(|a| a.load(Ordering::SeqCst));
    if let Some(e) = t.expiry
        && armed
        && e <= deadline
        && e > now
    {
        return Ok(());
    }
    let value = deadline
        .saturating_duration_since(now)
        .max(Duration::from_nanos(1));
    settime(t.id, value, REFIRE)?;
    t.expiry = Some(deadline);
    ARMED.with(|a| a.store(true, Ordering::SeqCst));
    Ok(())
}

fn disarm(t: &mut ThreadTimer) {
    let _ = settime(t.id, Duration::ZERO, Duration::ZERO);
    t.expiry = None;
    ARMED.with(|a| a.store(false, Ordering::SeqCst));
}

/// Runs the blocking `call` until it returns something other than EINTR, or until
/// `deadline` (then `Err(ETIMEDOUT)`, the call having been interrupted by this thread's
/// timer). `None` when this thread has no timer (it could not be made): nothing was
/// called, and the caller must bound its wait another way.
pub fn bounded<T>(
    deadline: Instant,
    mut call: impl FnMut() -> nix::Result<T>,
) -> Option<nix::Result<T>> {
    if !install() {
        return None;
    }
    TIMER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(create().ok()?);
        }
        let t = slot.as_mut()?;
        Some(wait_loop(t, deadline, &mut call))
    })
}

fn wait_loop<T>(
    t: &mut ThreadTimer,
    deadline: Instant,
    call: &mut impl FnMut() -> nix::Result<T>,
) -> nix::Result<T> {
    loop {
        if Instant::now() >= deadline {
            disarm(t);
            return Err(Errno::ETIMEDOUT);
        }
        IN_WAIT.with(|w| w.store(true, Ordering::SeqCst));
        let r = arm_by(t, deadline).and_then(|()| call());
        IN_WAIT.with(|w| w.store(false, Ordering::SeqCst));
        match r {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    /// A `poll` with no timeout (never restarted after a handler) on a pipe's read end.
    fn wait_readable(r: &std::os::fd::OwnedFd) -> nix::Result<i32> {
        let mut fds = [PollFd::new(r.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::NONE)
    }

    #[test]
    fn a_blocking_wait_ends_at_its_deadline_and_the_timer_is_disarmed() {
        let (r, _w) = nix::unistd::pipe().unwrap();
        let start = Instant::now();
        let out = bounded(start + Duration::from_millis(30), || wait_readable(&r));
        let took = start.elapsed();
        assert_eq!(out, Some(Err(Errno::ETIMEDOUT)));
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert!(!ARMED.with(|a| a.load(Ordering::SeqCst)));
    }

    #[test]
    fn a_ready_call_returns_at_once_and_an_idle_expiry_disarms() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"x").unwrap();
        let start = Instant::now();
        let out = bounded(start + Duration::from_millis(20), || wait_readable(&r));
        assert_eq!(out, Some(Ok(1)));
        assert!(ARMED.with(|a| a.load(Ordering::SeqCst)));
        // The expiry lands outside any wait: the handler disarms the timer.
        std::thread::sleep(Duration::from_millis(60));
        assert!(!ARMED.with(|a| a.load(Ordering::SeqCst)));
    }
}
