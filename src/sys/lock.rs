//! Locks shared by every process of one user: kernel quotas that count per user
//! (RLIMIT_SIGPENDING's pending signals, RLIMIT_MSGQUEUE's queue bytes, inotify
//! instances) or per machine (System V queues) are spent by one audit at a time, so that
//! two runs at once never see each other's use as the transport's fault.
//!
//! A lock is an exclusive `flock` on `ipc-audit-quota-KIND.lock` in the user's runtime
//! directory (`XDG_RUNTIME_DIR`, else `/run/user/UID` when it is ours), or else in a
//! hidden directory `.ipc-audit-locks-UID` (mode 0700) under the temporary directory.
//! The kernel drops it when its holder dies, however it dies.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::geteuid;

/// A held quota lock; released on drop.
#[derive(Debug)]
pub struct QuotaLock {
    _lock: Flock<fs::File>,
}

/// The directory of the lock files: the user's runtime directory, or a private one.
fn lock_dir() -> std::io::Result<PathBuf> {
    let uid = geteuid().as_raw();
    let ours = |p: &PathBuf| fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid);
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && ours(&d)
    {
        return Ok(d);
    }
    let run = PathBuf::from(format!("/run/user/{uid}"));
    if ours(&run) {
        return Ok(run);
    }
    let d = std::env::temp_dir().join(format!(".ipc-audit-locks-{uid}"));
    match fs::DirBuilder::new().mode(0o700).create(&d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if !ours(&d) {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of uid {uid}",
            d.display()
        )));
    }
    Ok(d)
}

impl QuotaLock {
    /// Waits up to `limit` for the lock of quota `kind` (e.g. `sigpending`).
    ///
    /// # Errors
    /// The error that kept the lock file from opening, or a timeout naming the file
    /// when another process held it all along.
    pub fn take(kind: &str, limit: Duration) -> std::io::Result<Self> {
        let path = lock_dir()?.join(format!("ipc-audit-quota-{kind}.lock"));
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)?;
        let deadline = Instant::now() + limit;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(QuotaLock { _lock: lock }),
                Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) if Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("{} held by another process for {limit:?}", path.display()),
                    ));
                }
                Err((_, e)) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_times_out_for_another_holder_and_frees_on_drop() {
        let kind = format!("test-{}", std::process::id());
        let held = QuotaLock::take(&kind, Duration::from_secs(1)).expect("first");
        let again = QuotaLock::take(&kind, Duration::from_millis(100));
        assert_eq!(
            again.expect_err("held").kind(),
            std::io::ErrorKind::TimedOut
        );
        drop(held);
        let _ = QuotaLock::take(&kind, Duration::from_secs(1)).expect("free again");
        let path = lock_dir()
            .expect("dir")
            .join(format!("ipc-audit-quota-{kind}.lock"));
        let _ = fs::remove_file(path);
    }
}
