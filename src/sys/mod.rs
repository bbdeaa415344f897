//! The bottom layer: every raw system call of the crate, as safe functions.
//!
//! Modelled on [rustix](https://docs.rs/rustix): each function here is safe to call,
//! checks or encodes what the kernel needs, and holds its `unsafe` in one expression
//! under a `// SAFETY:` comment. The layers above (`frame`, `shm`, `transport`, then
//! `peer`, `audit` and `measure`) call these functions and contain no `unsafe` of their
//! own, except the shared-memory ring's pointer arithmetic ([`crate::shm::ring`],
//! [`crate::shm::region`]), the loom shim ([`crate::sync`]) and the counting allocators
//! ([`alloc`], also at `measure::alloc`).
//!
//! Errors are [`nix::Error`] (an `errno`) where the call is one system call, so that the
//! caller names the operation in its own [`crate::Error`]; the few types that hold a
//! resource ([`SharedPage`], [`Pinned`]) report [`crate::Error`] as before.
//!
//! | module | calls |
//! |---|---|
//! | [`futex`] | `futex(2)` wait and wake on a process-shared word |
//! | [`mem`] | `memfd_create`, `mmap`/`munmap` of a shared mapping, [`SharedPage`] |
//! | [`fd`] | `pipe2`, close-on-exec, SCM_RIGHTS descriptor passing, listing open descriptors |
//! | [`alloc`] | counting allocators (heap allocations per message) |
//! | [`cpu`] | affinity (pinning) and `getrusage` |
//! | [`signal`] | thread signal masks (set, saved, restored), `signalfd`, `rt_sigqueueinfo`/`rt_tgsigqueueinfo`, `tgkill`, SIGPIPE |
//! | [`sysv`] | System V message queues (`msgget`, `msgsnd`, `msgrcv`, `msgctl`) |
//! | [`timer`] | a per-thread POSIX timer (`timer_create`, SIGEV_THREAD_ID) bounding a blocking call |
//! | [`sem`] | POSIX named semaphores (`sem_open` and friends) |
//! | [`lock`] | locks shared by one user's processes, around per-user kernel quotas |
//! | [`userns`] | a second uid without root: a child in a user namespace mapped by newuidmap |
//! | [`reclaim`] | what a dead run left: objects whose names carry a dead pid |
//! | [`process`] | descriptors placed for a peer before exec and taken over after, SIGPIPE, groups |

pub mod alloc;
pub mod cpu;
pub mod fd;
pub mod futex;
pub mod lock;
pub mod mem;
pub mod process;
#[cfg(target_os = "linux")]
pub mod reclaim;
#[cfg(target_os = "linux")]
pub mod sem;
pub mod signal;
#[cfg(target_os = "linux")]
pub mod sysv;
#[cfg(target_os = "linux")]
pub mod timer;
#[cfg(target_os = "linux")]
pub mod userns;

pub use cpu::{Pinned, Usage, allowed_cpus, pin_process};
pub use fd::open_fds;
pub use futex::{futex_wait, futex_wake};
pub use mem::SharedPage;
