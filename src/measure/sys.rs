//! The raw calls of the measurements, in one place: a shared page from a memfd, futex
//! wait and wake, cpu pinning of every thread of the process, resource usage. Linux only;
//! elsewhere every call says it is unsupported.

#[cfg(target_os = "linux")]
use std::os::fd::AsFd;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Resource usage of this process at one moment, or the difference of two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// User CPU time in nanoseconds.
    pub user_ns: u64,
    /// System CPU time in nanoseconds.
    pub sys_ns: u64,
    /// Voluntary context switches (the process blocked).
    pub voluntary_switches: u64,
    /// Involuntary context switches (the process was preempted).
    pub involuntary_switches: u64,
    /// Heap allocations, when the program installed the counting allocator.
    pub allocs: Option<u64>,
}

impl Usage {
    /// This process now (RUSAGE_SELF: every thread).
    pub fn now() -> Self {
        use nix::sys::resource::{UsageWho, getrusage};
        let allocs = super::alloc::count();
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(u) => {
                let ns = |t: nix::sys::time::TimeVal| {
                    (t.tv_sec() as u64) * 1_000_000_000 + (t.tv_usec() as u64) * 1000
                };
                Usage {
                    user_ns: ns(u.user_time()),
                    sys_ns: ns(u.system_time()),
                    voluntary_switches: u.voluntary_context_switches() as u64,
                    involuntary_switches: u.involuntary_context_switches() as u64,
                    allocs,
                }
            }
            Err(_) => Usage {
                allocs,
                ..Usage::default()
            },
        }
    }

    /// What happened since `earlier`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            voluntary_switches: self
                .voluntary_switches
                .saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self
                .involuntary_switches
                .saturating_sub(earlier.involuntary_switches),
            allocs: match (self.allocs, earlier.allocs) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b)),
                _ => None,
            },
        }
    }

    /// User plus system time.
    pub fn cpu_ns(&self) -> u64 {
        self.user_ns + self.sys_ns
    }

    /// Voluntary plus involuntary switches.
    pub fn switches(&self) -> u64 {
        self.voluntary_switches + self.involuntary_switches
    }
}

/// The cpus this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        use nix::sched::{CpuSet, sched_getaffinity};
        use nix::unistd::Pid;
        match sched_getaffinity(Pid::from_raw(0)) {
            Ok(set) => (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Every thread of this process pinned to one cpu; the previous affinities come back on
/// drop.
#[derive(Debug)]
pub struct Pinned {
    #[cfg(target_os = "linux")]
    saved: Vec<(nix::unistd::Pid, nix::sched::CpuSet)>,
}

/// Pins every thread of this process to `cpu` (threads started later inherit the
/// affinity of the thread that starts them).
///
/// # Errors
/// [`Error::Invalid`] naming the cpu when it is not allowed, or the system error.
pub fn pin_process(cpu: usize) -> Result<Pinned> {
    #[cfg(target_os = "linux")]
    {
        use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
        use nix::unistd::Pid;
        let mut set = CpuSet::new();
        set.set(cpu)
            .map_err(|_| Error::invalid("cpu number out of range", cpu))?;
        let mut saved = Vec::new();
        let tasks = std::fs::read_dir("/proc/self/task")
            .map_err(|e| Error::io("list /proc/self/task", e))?;
        for t in tasks.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let tid = Pid::from_raw(tid);
            let Ok(old) = sched_getaffinity(tid) else {
                continue; // the thread ended meanwhile
            };
            match sched_setaffinity(tid, &set) {
                Ok(()) => saved.push((tid, old)),
                Err(nix::errno::Errno::ESRCH) => {}
                Err(nix::errno::Errno::EINVAL) => {
                    let p = Pinned { saved };
                    drop(p);
                    return Err(Error::invalid("cpu not available to this process", cpu));
                }
                Err(e) => return Err(Error::sys(format!("sched_setaffinity cpu {cpu}"), e)),
            }
        }
        Ok(Pinned { saved })
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(Error::Unsupported(format!(
            "pinning to cpu {cpu} is implemented on Linux only"
        )))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        for (tid, old) in &self.saved {
            let _ = nix::sched::sched_setaffinity(*tid, old);
        }
    }
}

/// A 4 KiB page of a memfd mapped shared: the floors' meeting point. One process creates
/// it ([`SharedPage::create`]), the other maps the descriptor it inherits
/// ([`SharedPage::map`]).
#[derive(Debug)]
pub struct SharedPage {
    #[cfg(target_os = "linux")]
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    fd: OwnedFd,
}

/// Size of a [`SharedPage`].
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

// SAFETY: the page is plain shared memory accessed only through atomics; the pointer
// stays valid until drop, whichever thread drops it.
unsafe impl Send for SharedPage {}

impl SharedPage {
    /// A fresh zeroed page (memfd, close-on-exec).
    ///
    /// # Errors
    /// The system error.
    pub fn create() -> Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::memfd::{MFdFlags, memfd_create};
            let fd = memfd_create(c"ipc-audit-floor", MFdFlags::MFD_CLOEXEC)
                .map_err(|e| Error::sys("memfd_create (floor page)", e))?;
            nix::unistd::ftruncate(&fd, PAGE as i64)
                .map_err(|e| Error::sys("ftruncate (floor page)", e))?;
            Self::map(fd)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(Error::Unsupported(
                "the shared-memory floors are implemented on Linux only".into(),
            ))
        }
    }

    /// Maps a page made by [`SharedPage::create`] in another process.
    ///
    /// # Errors
    /// The system error.
    pub fn map(fd: OwnedFd) -> Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::mman::{MapFlags, ProtFlags, mmap};
            use std::num::NonZeroUsize;
            let len = NonZeroUsize::new(PAGE).ok_or_else(|| Error::invalid("page size", PAGE))?;
            // SAFETY: a fresh shared mapping of a descriptor we own, at an address the
            // kernel chooses: it aliases no Rust object; it is unmapped on drop.
            let ptr = unsafe {
                mmap(
                    None,
                    len,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED,
                    fd.as_fd(),
                    0,
                )
            }
            .map_err(|e| Error::sys("mmap (floor page)", e))?;
            Ok(SharedPage { ptr, fd })
        }
        #[cfg(not(target_os = "linux"))]
        {
            drop(fd);
            Err(Error::Unsupported(
                "the shared-memory floors are implemented on Linux only".into(),
            ))
        }
    }

    /// A copy of the descriptor, for the other process.
    ///
    /// # Errors
    /// The system error.
    pub fn share(&self) -> Result<OwnedFd> {
        self.fd
            .try_clone()
            .map_err(|e| Error::io("dup the floor page", e))
    }

    /// The page's first word.
    pub fn word(&self) -> &AtomicU32 {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the mapping is page-aligned, at least 4 bytes, lives as long as
            // `self`, and is only ever accessed through this atomic (in both processes).
            unsafe { &*(self.ptr.as_ptr() as *const AtomicU32) }
        }
        #[cfg(not(target_os = "linux"))]
        {
            unreachable!("a SharedPage cannot be made off Linux")
        }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: `ptr` is our mapping of PAGE bytes; no reference from `word`
            // outlives `self`.
            let _ = unsafe { nix::sys::mman::munmap(self.ptr, PAGE) };
        }
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout`. Spurious returns happen; the
/// caller re-checks.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    #[cfg(target_os = "linux")]
    {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT on a valid, aligned u32 in a shared mapping (not PRIVATE);
        // the timespec lives across the call. The result is ignored on purpose: EAGAIN,
        // EINTR and ETIMEDOUT all mean "re-check the word".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (word, expected);
        std::thread::sleep(timeout.min(Duration::from_micros(50)));
    }
}

/// Wakes one waiter on `word`.
pub fn futex_wake(word: &AtomicU32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: FUTEX_WAKE on a valid, aligned u32; no memory is written by the kernel.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                1u32,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = word;
    }
}

/// Descriptors open in this process now (Linux: entries of /proc/self/fd), or `None`.
pub fn open_fds() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // The directory handle itself is one of the entries.
        std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count().saturating_sub(1))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
