//! Signals: SIGPIPE's disposition and a pending SIGPIPE (every platform); on Linux also
//! realtime signal numbers, thread signal masks, `signalfd`, and queueing a signal with
//! a value (`rt_sigqueueinfo`, `rt_tgsigqueueinfo`) or sending one to a thread
//! (`tgkill`).
//!
//! nix's `Signal` has no realtime signals, hence the raw calls here.

#[cfg(target_os = "linux")]
pub use linux::*;

static COUNTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn count_one(_: libc::c_int) {
    // Async-signal-safe: one atomic add.
    COUNTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Installs a handler for `sig` that only counts it ([`counted`]), without SA_RESTART,
/// so that every blocking call it lands in returns EINTR.
pub fn count_without_restart(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(count_one),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only adds to an atomic, which is async-signal-safe.
    unsafe { sigaction(sig, &act) }.map(drop)
}

/// How many signals the handler of [`count_without_restart`] has counted.
pub fn counted() -> u64 {
    COUNTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// True when SIGPIPE's disposition is SIG_IGN.
pub fn sigpipe_ignored() -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only reads the disposition into `old`, which is valid, zeroed
    // memory of the right type.
    let r = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction filled `old` when it returned 0; zeroed memory is a valid
    // sigaction otherwise.
    r == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Consumes a pending SIGPIPE of this thread, if there is one, without waiting.
pub fn take_pending_sigpipe() {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` is valid memory for a sigset_t; sigemptyset initialises it.
        unsafe { libc::sigemptyset(set.as_mut_ptr()) };
        // SAFETY: `set` was initialised by sigemptyset; SIGPIPE is a valid signal.
        unsafe { libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE) };
        // SAFETY: `set` is initialised; `zero` outlives the call, and a null siginfo
        // pointer is allowed.
        unsafe { libc::sigtimedwait(set.as_ptr(), std::ptr::null_mut(), &zero) };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // macOS has no sigtimedwait: wait only if one is pending, so sigwait returns at once.
        use nix::sys::signal::{SigSet, Signal};
        let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: `pending` is valid memory for a sigset_t that sigpending fills.
        let ok = unsafe { libc::sigpending(pending.as_mut_ptr()) } == 0;
        // SAFETY: sigpending filled `pending` when it returned 0.
        if ok && unsafe { libc::sigismember(pending.as_ptr(), libc::SIGPIPE) } == 1 {
            let mut set = SigSet::empty();
            set.add(Signal::SIGPIPE);
            let _ = set.wait();
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{FromRawFd, OwnedFd};

    use nix::errno::Errno;

    /// `si_code` of a signal queued with a value (`sigqueue`).
    pub const SI_QUEUE: i32 = libc::SI_QUEUE;

    /// The lowest realtime signal number available to programs (glibc keeps the first
    /// ones for itself).
    pub fn sigrtmin() -> i32 {
        libc::SIGRTMIN()
    }

    /// The highest realtime signal number.
    pub fn sigrtmax() -> i32 {
        libc::SIGRTMAX()
    }

    /// A set of signal numbers (`sigset_t`), realtime ones included.
    #[derive(Clone, Copy)]
    pub struct SignalSet(libc::sigset_t);

    impl std::fmt::Debug for SignalSet {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SignalSet")
        }
    }

    impl SignalSet {
        /// The empty set.
        pub fn empty() -> SignalSet {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
            // SAFETY: `set` is valid memory for a sigset_t; sigemptyset initialises it.
            unsafe { libc::sigemptyset(set.as_mut_ptr()) };
            // SAFETY: initialised by sigemptyset (and zeroed before: any bytes are a
            // valid sigset_t).
            SignalSet(unsafe { set.assume_init() })
        }

        /// Adds signal `sig`.
        ///
        /// # Errors
        /// `EINVAL` when `sig` is not a signal number.
        pub fn add(&mut self, sig: i32) -> nix::Result<()> {
            // SAFETY: `self.0` is an initialised sigset_t; sigaddset checks `sig`.
            if unsafe { libc::sigaddset(&mut self.0, sig) } != 0 {
                return Err(Errno::last());
            }
            Ok(())
        }
    }

    /// Blocks the signals of `set` in the calling thread only (its mask; no other
    /// thread's, no disposition).
    ///
    /// # Errors
    /// The error of `pthread_sigmask`.
    pub fn block_in_thread(set: &SignalSet) -> nix::Result<()> {
        // SAFETY: `set` is initialised; the old mask is not wanted (null is allowed).
        // This changes the mask of the calling thread only.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
        if r != 0 {
            return Err(Errno::from_raw(r));
        }
        Ok(())
    }

    /// Blocks the signals of `set` in the calling thread only, like
    /// [`block_in_thread`], and returns the thread's mask before, for
    /// [`set_thread_mask`].
    ///
    /// # Errors
    /// The error of `pthread_sigmask`.
    pub fn block_in_thread_saving(set: &SignalSet) -> nix::Result<SignalSet> {
        let mut old = SignalSet::empty();
        // SAFETY: `set` is initialised and `old.0` is a valid sigset_t to write the
        // previous mask into. This changes the mask of the calling thread only.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, &mut old.0) };
        if r != 0 {
            return Err(Errno::from_raw(r));
        }
        Ok(old)
    }

    /// Sets the calling thread's signal mask to `set` (a mask that
    /// [`block_in_thread_saving`] returned).
    ///
    /// # Errors
    /// The error of `pthread_sigmask`.
    pub fn set_thread_mask(set: &SignalSet) -> nix::Result<()> {
        // SAFETY: `set` is initialised; the old mask is not wanted (null is allowed).
        // This changes the mask of the calling thread only.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set.0, std::ptr::null_mut()) };
        if r != 0 {
            return Err(Errno::from_raw(r));
        }
        Ok(())
    }

    /// A new nonblocking, close-on-exec signalfd for the signals of `set`.
    ///
    /// # Errors
    /// The errno of `signalfd`.
    pub fn signalfd(set: &SignalSet) -> nix::Result<OwnedFd> {
        // SAFETY: -1 asks for a new descriptor; `set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: signalfd just returned this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// `siginfo_t` as `rt_tgsigqueueinfo` reads it for SI_QUEUE (the `_rt` member of
    /// the union), padded to the kernel's 128 bytes.
    #[repr(C)]
    struct QueueInfo {
        signo: i32,
        errno: i32,
        code: i32,
        #[cfg(target_pointer_width = "64")]
        _align: i32,
        pid: i32,
        uid: u32,
        /// `union sigval` in native byte order: `sival_int` is its first 4 bytes,
        /// `sival_ptr` all of them.
        value: [u8; std::mem::size_of::<usize>()],
        #[cfg(target_pointer_width = "64")]
        _rest: [u8; 96],
        #[cfg(target_pointer_width = "32")]
        _rest: [u8; 104],
    }

    const _: () = assert!(std::mem::size_of::<QueueInfo>() == 128);

    /// Queues `sig` with `value` (code SI_QUEUE) for thread `tid` of process `pid`
    /// (`rt_tgsigqueueinfo`), or for the process when `tid` is `None`
    /// (`rt_sigqueueinfo`, what `sigqueue` calls). `si_pid` and `si_uid` are `as_pid` and
    /// `as_uid`: for SI_QUEUE the kernel takes them from the caller. Signal 0 checks the
    /// permission and sends nothing.
    ///
    /// # Errors
    /// The errno (`EAGAIN` when the queue is full, `EPERM`, `ESRCH`...).
    pub fn queue_info(
        pid: i32,
        tid: Option<i32>,
        sig: i32,
        value: i32,
        as_pid: i32,
        as_uid: u32,
    ) -> nix::Result<()> {
        let mut v = [0u8; std::mem::size_of::<usize>()];
        v[..4].copy_from_slice(&value.to_ne_bytes());
        queue_raw(pid, tid, sig, v, as_pid, as_uid)
    }

    /// Queues `sig` for thread `tid` of process `pid` (`rt_tgsigqueueinfo`, code
    /// SI_QUEUE, this process's pid and uid) with `value` in `sival_ptr`: a whole word
    /// (8 bytes on 64-bit), which the receiver's signalfd gives as `ssi_ptr`.
    ///
    /// # Errors
    /// The errno (`EAGAIN` when the queue is full, `EPERM`, `ESRCH`...).
    pub fn queue_word(pid: i32, tid: i32, sig: i32, value: usize) -> nix::Result<()> {
        queue_coded(pid, tid, sig, SI_QUEUE, 0, value)
    }

    /// As [`queue_word`], with `code` for `si_code` and `errno` for `si_errno`: the
    /// kernel takes any negative code but SI_TKILL from another process (EPERM
    /// otherwise), and passes `si_errno` through to the receiver's signalfd
    /// (`ssi_errno`).
    ///
    /// # Errors
    /// As [`queue_word`].
    pub fn queue_coded(
        pid: i32,
        tid: i32,
        sig: i32,
        code: i32,
        errno: i32,
        value: usize,
    ) -> nix::Result<()> {
        let me = nix::unistd::getpid().as_raw();
        let uid = nix::unistd::getuid().as_raw();
        let info = QueueInfo::new(sig, (code, errno), value.to_ne_bytes(), me, uid);
        send_info(pid, Some(tid), sig, &info)
    }

    fn queue_raw(
        pid: i32,
        tid: Option<i32>,
        sig: i32,
        value: [u8; std::mem::size_of::<usize>()],
        as_pid: i32,
        as_uid: u32,
    ) -> nix::Result<()> {
        let info = QueueInfo::new(sig, (SI_QUEUE, 0), value, as_pid, as_uid);
        send_info(pid, tid, sig, &info)
    }

    impl QueueInfo {
        /// `code` is (`si_code`, `si_errno`).
        fn new(
            sig: i32,
            (code, errno): (i32, i32),
            value: [u8; std::mem::size_of::<usize>()],
            pid: i32,
            uid: u32,
        ) -> Self {
            QueueInfo {
                signo: sig,
                errno,
                code,
                #[cfg(target_pointer_width = "64")]
                _align: 0,
                pid,
                uid,
                value,
                #[cfg(target_pointer_width = "64")]
                _rest: [0; 96],
                #[cfg(target_pointer_width = "32")]
                _rest: [0; 104],
            }
        }
    }

    /// `rt_tgsigqueueinfo` (to thread `tid`) or `rt_sigqueueinfo` (to the process).
    fn send_info(pid: i32, tid: Option<i32>, sig: i32, info: &QueueInfo) -> nix::Result<()> {
        let r = match tid {
            // SAFETY: rt_tgsigqueueinfo reads a 128-byte siginfo_t from the pointer,
            // which `info` is (size checked at compile time) for the duration of the call.
            Some(tid) => unsafe {
                libc::syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    pid,
                    tid,
                    sig,
                    info as *const QueueInfo,
                )
            },
            // SAFETY: rt_sigqueueinfo reads a 128-byte siginfo_t, as above.
            None => unsafe {
                libc::syscall(
                    libc::SYS_rt_sigqueueinfo,
                    pid,
                    sig,
                    info as *const QueueInfo,
                )
            },
        };
        if r == 0 { Ok(()) } else { Err(Errno::last()) }
    }

    /// Sends `sig` to thread `tid` of process `pid` with `tgkill` (code SI_TKILL: the
    /// kernel fills `si_pid` and `si_uid` itself). Signal 0 checks the permission only.
    ///
    /// # Errors
    /// The errno (`EPERM`, `ESRCH`, `EINVAL`).
    pub fn tgkill(pid: i32, tid: i32, sig: i32) -> nix::Result<()> {
        // SAFETY: tgkill takes three integers and touches no memory of this process.
        let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
        if r == 0 { Ok(()) } else { Err(Errno::last()) }
    }
}
