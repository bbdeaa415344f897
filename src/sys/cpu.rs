//! CPUs and resource usage: the cpus this process may run on, pinning every thread of
//! it to one (`sched_setaffinity`; Linux only, elsewhere unsupported), and
//! `getrusage(RUSAGE_SELF)`.

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
        // The counting allocator is a leaf module with no system call; its count travels
        // with the rusage figures.
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

/// The cpu this thread runs on now, plus one (0 when it cannot be told): glibc's
/// `sched_getcpu` reads it from the rseq area, a load, without a system call. Under
/// Miri (which cannot call it) and off Linux: 0.
#[inline]
pub fn current_cpu_plus_one() -> u32 {
    #[cfg(all(target_os = "linux", not(miri)))]
    {
        // SAFETY: sched_getcpu takes nothing and touches no memory of ours.
        let c = unsafe { libc::sched_getcpu() };
        if c < 0 { 0 } else { c as u32 + 1 }
    }
    #[cfg(not(all(target_os = "linux", not(miri))))]
    0
}

/// Puts the calling thread in the SCHED_BATCH policy (Linux; any user may): the
/// scheduler does not let it preempt the thread that woke it, so a thread woken for
/// every part of a message (the `signal` transport's receiver, one wake per queued
/// signal) runs once the sender stops or its time slice ends, and reads the parts
/// together, instead of switching in for each. Its share of the cpu is unchanged.
///
/// # Errors
/// The system error; [`Error::Unsupported`] off Linux.
pub fn batch_this_thread() -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param that lives across the call; pid 0 is the
        // calling thread.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if r == 0 {
            Ok(())
        } else {
            Err(Error::sys(
                "sched_setscheduler SCHED_BATCH",
                nix::errno::Errno::last(),
            ))
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(Error::Unsupported("SCHED_BATCH is Linux's own".into()))
    }
}
