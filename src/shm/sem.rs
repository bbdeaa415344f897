//! The blocking hand-off of the shared-memory ring: a futex-like wait on a 32-bit word
//! of the shared header, behind the small [`Futex`] trait.
//!
//! Two implementations:
//! - [`LinuxFutex`] (not under loom): the `futex(2)` system call without
//!   `FUTEX_PRIVATE_FLAG` ([`crate::sys::futex`]), so that it works across processes on
//!   a `MAP_SHARED` mapping;
//! - [`CondvarFutex`]: the same contract over a mutex and a condition variable from
//!   [`crate::sync`], which are loom's under `cfg(loom)`: this is the semaphore model loom
//!   checks. It only works between threads of one process.
//!
//! The peer liveness check used while a side sleeps, [`pid_alive`], lives here too.

use std::sync::PoisonError;
use std::time::Duration;

#[cfg(all(not(loom), target_os = "linux"))]
use nix::errno::Errno;

use crate::error::Result;
use crate::sync::{AtomicU32, Condvar, Mutex, Ordering};

/// Wait and wake on a 32-bit word, with the contract of `futex(2)`.
pub trait Futex: Send + Sync {
    /// Sleeps while `word` holds `expected`, for at most `timeout` (`None`: no limit).
    /// Returns on a wake, when the word no longer holds `expected`, on timeout, on a
    /// signal, or spuriously: the caller always re-checks its condition.
    ///
    /// # Errors
    /// An unexpected system error.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<()>;

    /// Wakes every sleeper on `word`. Call it after changing the word.
    fn wake(&self, word: &AtomicU32);
}

/// The `futex(2)` system call on a word of a shared mapping (process-shared: no
/// `FUTEX_PRIVATE_FLAG`).
#[cfg(all(not(loom), target_os = "linux"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxFutex;

#[cfg(all(not(loom), target_os = "linux"))]
impl Futex for LinuxFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<()> {
        match crate::sys::futex::wait(word, expected, timeout) {
            // Value changed, timed out, interrupted: the caller re-checks.
            Ok(()) | Err(Errno::EAGAIN | Errno::ETIMEDOUT | Errno::EINTR) => Ok(()),
            Err(e) => Err(crate::Error::sys("shm: futex wait", e)),
        }
    }

    fn wake(&self, word: &AtomicU32) {
        crate::sys::futex::wake(word, i32::MAX);
    }
}

/// The [`Futex`] contract over a mutex and a condition variable (loom's under
/// `cfg(loom)`): the model of the hand-off that loom explores, and a thread-only
/// implementation for tests. Timeouts are ignored under loom (the model must not depend
/// on time).
#[derive(Debug, Default)]
pub struct CondvarFutex {
    lock: Mutex<()>,
    cond: Condvar,
}

impl CondvarFutex {
    /// A new one, with no sleeper.
    pub fn new() -> Self {
        CondvarFutex {
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }
}

impl Futex for CondvarFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<()> {
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `wake` takes after the word changed: a change
        // made before this check is seen, one made after it wakes the wait below.
        // The ordering is the model's, not the ring's: the lock orders the accesses.
        if word.load(Ordering::Relaxed) != expected {
            return Ok(());
        }
        #[cfg(not(loom))]
        if let Some(t) = timeout {
            drop(
                self.cond
                    .wait_timeout(guard, t)
                    .unwrap_or_else(PoisonError::into_inner),
            );
            return Ok(());
        }
        #[cfg(loom)]
        let _ = timeout;
        drop(
            self.cond
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner),
        );
        Ok(())
    }

    fn wake(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.cond.notify_all();
    }
}

/// Whether process `pid` is alive: it exists and is not a zombie (a dead child that was
/// not reaped yet still answers `kill(pid, 0)`, so `/proc/<pid>/stat` is read instead).
/// Allocates nothing: the path and the first bytes of the file stay on the stack (the
/// state follows the command name, at most 16 bytes, within the first 64 bytes).
///
/// # Errors
/// None today; the `Result` leaves room for a platform without `/proc`.
#[cfg(not(loom))]
pub fn pid_alive(pid: u32) -> Result<bool> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;

    let mut path = [0u8; 32];
    let mut n = 0;
    for part in [&b"/proc/"[..], digits(pid, &mut [0u8; 10]), &b"/stat"[..]] {
        path[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    let fd = match open(
        &path[..n],
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(_) => return Ok(false),
    };
    let mut buf = [0u8; 256];
    let mut len = 0;
    while len < buf.len() {
        match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(k) => len += k,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return Ok(false),
        }
    }
    // "pid (comm) S ...": the state follows the last ')' (comm may contain one; the
    // fields after it are numbers).
    let stat = &buf[..len];
    let state = stat
        .iter()
        .rposition(|&b| b == b')')
        .and_then(|i| stat[i + 1..].iter().find(|b| !b.is_ascii_whitespace()));
    Ok(!matches!(state, Some(b'Z' | b'X' | b'x') | None))
}

/// The decimal digits of `v`, in `buf`.
#[cfg(not(loom))]
fn digits(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}
