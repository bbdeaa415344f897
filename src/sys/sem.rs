//! POSIX named semaphores (`sem_open`, `sem_post`, `sem_wait`, `sem_timedwait`,
//! `sem_getvalue`, `sem_close`, `sem_unlink`).

use std::ffi::CStr;
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::sys::time::TimeSpec;

/// An open named semaphore, closed (`sem_close`) on drop. The name stays until
/// [`unlink`].
#[derive(Debug)]
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
}

// SAFETY: a sem_t from sem_open may be used from any thread (POSIX semaphore calls are
// thread-safe); the pointer is only given to sem_* calls and closed once, on drop.
unsafe impl Send for NamedSem {}
// SAFETY: as above: every method is a thread-safe sem_* call.
unsafe impl Sync for NamedSem {}

impl NamedSem {
    /// Creates the semaphore `name`, which must not exist (O_CREAT | O_EXCL), with value
    /// 0 and permissions `mode` (the umask applies).
    ///
    /// # Errors
    /// The errno of `sem_open`.
    pub fn create(name: &CStr, mode: u32) -> nix::Result<NamedSem> {
        // SAFETY: a valid C string; sem_open with O_CREAT reads a mode_t and an unsigned
        // initial value, passed as the variadic arguments.
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                mode as libc::mode_t as libc::c_uint,
                0 as libc::c_uint,
            )
        };
        Self::opened(sem)
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// The errno of `sem_open`.
    pub fn open(name: &CStr) -> nix::Result<NamedSem> {
        // SAFETY: a valid C string; without O_CREAT no further argument is read.
        let sem = unsafe { libc::sem_open(name.as_ptr(), 0) };
        Self::opened(sem)
    }

    fn opened(sem: *mut libc::sem_t) -> nix::Result<NamedSem> {
        if sem == libc::SEM_FAILED {
            return Err(Errno::last());
        }
        NonNull::new(sem)
            .map(|sem| NamedSem { sem })
            .ok_or(Errno::EINVAL)
    }

    /// Increments the semaphore (`sem_post`).
    ///
    /// # Errors
    /// The errno (`EOVERFLOW` at the maximum value).
    pub fn post(&self) -> nix::Result<()> {
        // SAFETY: `sem` is open until drop.
        let r = unsafe { libc::sem_post(self.sem.as_ptr()) };
        if r == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// Decrements the semaphore, waiting while it is 0 (`sem_wait`).
    ///
    /// # Errors
    /// The errno (`EINTR` on a signal).
    pub fn wait(&self) -> nix::Result<()> {
        // SAFETY: `sem` is open until drop.
        let r = unsafe { libc::sem_wait(self.sem.as_ptr()) };
        if r == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// As [`NamedSem::wait`], until the CLOCK_REALTIME instant `abs` (`sem_timedwait`).
    ///
    /// # Errors
    /// The errno (`ETIMEDOUT` past `abs`, `EINTR` on a signal).
    pub fn timed_wait(&self, abs: &TimeSpec) -> nix::Result<()> {
        // SAFETY: `sem` is open until drop; `abs` is a valid timespec for the call.
        let r = unsafe { libc::sem_timedwait(self.sem.as_ptr(), abs.as_ref()) };
        if r == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// The current value (`sem_getvalue`).
    ///
    /// # Errors
    /// The errno of `sem_getvalue`.
    pub fn value(&self) -> nix::Result<i32> {
        let mut v = 0;
        // SAFETY: `sem` is open until drop; `v` is a valid int to write to.
        let r = unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut v) };
        if r == 0 { Ok(v) } else { Err(Errno::last()) }
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: `sem` came from a successful sem_open and is closed only here.
        let _ = unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// Removes the name `name` (`sem_unlink`); open semaphores stay usable.
///
/// # Errors
/// The errno (`ENOENT` when there is no such semaphore).
pub fn unlink(name: &CStr) -> nix::Result<()> {
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let r = unsafe { libc::sem_unlink(name.as_ptr()) };
    if r == 0 { Ok(()) } else { Err(Errno::last()) }
}
