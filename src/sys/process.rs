//! Starting a peer process with descriptors at fixed numbers, and taking them over in
//! the peer; process-wide dispositions and identity a peer sets up.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// The most descriptors [`place_fds`] can place.
pub const MAX_PLACED: usize = 64;

/// Makes the child of `cmd` find `sources` at descriptors `first`, `first + 1`, ...
/// after exec (without close-on-exec there). At most [`MAX_PLACED`] are placed.
pub fn place_fds(cmd: &mut Command, sources: Vec<RawFd>, first: RawFd) {
    // SAFETY: the closure runs in the child between fork and exec and calls only fcntl
    // and dup2, which are async-signal-safe; it touches no lock and allocates nothing
    // (`sources` was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            // Move every source above the target range first (close-on-exec, so the
            // copies vanish at exec), then put each in its slot; dup2 clears
            // close-on-exec on the target.
            let mut high = [0 as RawFd; MAX_PLACED];
            for (i, &fd) in sources.iter().enumerate().take(high.len()) {
                let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high[i] = h;
            }
            for (i, &h) in high.iter().enumerate().take(sources.len().min(MAX_PLACED)) {
                if libc::dup2(h, first + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

static CLAIMED: AtomicBool = AtomicBool::new(false);

/// In a process started with [`place_fds`]: takes ownership of descriptors `first` to
/// `first + n - 1`, once per process (a second call returns `None`, as does a
/// descriptor that is not open), so that no descriptor is owned twice through here.
pub fn claim_placed(first: RawFd, n: usize) -> Option<Vec<OwnedFd>> {
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return None;
    }
    let last = first.checked_add(RawFd::try_from(n).ok()?)?;
    (first..last)
        .map(|fd| {
            // SAFETY: F_GETFD reads a descriptor's flags and touches nothing else; an
            // fd that is not open only makes it fail with EBADF.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return None;
            }
            // SAFETY: the descriptor is open (F_GETFD succeeded) and was placed for
            // this process by its parent before exec; this one call per process is
            // the only place that takes it over, so it has one owner.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Puts SIGPIPE back to its default disposition (a write to a closed pipe kills).
pub fn default_sigpipe() -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler, so no handler code can run at a bad time.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.map(drop)
}

/// Replaces this process's supplementary groups.
pub fn set_groups(groups: &[u32]) -> nix::Result<()> {
    #[cfg(not(target_vendor = "apple"))]
    {
        let groups: Vec<nix::unistd::Gid> = groups
            .iter()
            .map(|&g| nix::unistd::Gid::from_raw(g))
            .collect();
        nix::unistd::setgroups(&groups)
    }
    #[cfg(target_vendor = "apple")]
    {
        let groups: Vec<libc::gid_t> = groups.to_vec();
        // SAFETY: `groups` is a valid array of `groups.len()` gids for the call's duration.
        let r = unsafe { libc::setgroups(groups.len() as libc::c_int, groups.as_ptr()) };
        nix::errno::Errno::result(r).map(drop)
    }
}
