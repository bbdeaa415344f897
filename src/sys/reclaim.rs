//! What a dead run left: every named object of ours carries its maker's pid in its
//! name (`ipc-audit-KIND-PID-N...`), so that a later run, or this run on SIGINT or
//! SIGTERM, can find and remove what no live process owns.
//!
//! System V queues have no name: each gets a marker file `ipc-audit-sysv-PID-N` in the
//! temporary directory, holding the queue's id and change time, for as long as it lives.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::{Pid, geteuid};

/// The pid in one of our names: the first of two all-digit parts, separated by `-`,
/// after `ipc-audit` (`ipc-audit-uds-dgram-4242-7-Xa1b2c` gives 4242).
pub fn pid_in_name(name: &str) -> Option<u32> {
    let rest = &name[name.find("ipc-audit")? + "ipc-audit".len()..];
    let parts: Vec<&str> = rest.split(['-', '.']).collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts
        .windows(2)
        .find(|w| digits(w[0]) && digits(w[1]))
        .and_then(|w| w[0].parse().ok())
}

/// Whether no process has `pid` (kill(pid, 0) gives ESRCH).
pub fn is_dead(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|p| kill(Pid::from_raw(p), None) == Err(Errno::ESRCH))
}

/// The directories where our named objects live.
fn places() -> Vec<PathBuf> {
    let mut v = vec![
        PathBuf::from("/dev/shm"),
        PathBuf::from("/dev/mqueue"),
        std::env::temp_dir(),
        PathBuf::from("/tmp"),
    ];
    v.dedup();
    v
}

/// Removes every object of ours (owned by this user, with `ipc-audit` and a pid in its
/// name) whose pid is dead or is one of `gone` (this process and its peers, when it is
/// ending). Returns what it removed.
pub fn reclaim(gone: &[u32]) -> Vec<String> {
    let me = geteuid().as_raw();
    let mut removed = Vec::new();
    for dir in places() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = pid_in_name(&name) else {
                continue;
            };
            let path = e.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.uid() != me || !(gone.contains(&pid) || is_dead(pid)) {
                continue;
            }
            if name.starts_with("ipc-audit-sysv-")
                && let Some(q) = remove_marked_queue(&path)
            {
                removed.push(q);
            }
            let gone = if meta.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if gone.is_ok() {
                removed.push(path.display().to_string());
            }
        }
    }
    removed
}

/// Removes the System V queue a marker names, if it is still that queue (same id,
/// change time and creator uid): `Some` with what was removed.
fn remove_marked_queue(marker: &Path) -> Option<String> {
    let text = fs::read_to_string(marker).ok()?;
    let mut it = text.split_whitespace().map(str::parse::<i64>);
    let (id, ctime) = (it.next()?.ok()?, it.next()?.ok()?);
    let id = i32::try_from(id).ok()?;
    let ds = super::sysv::msg_stat(id).ok()?;
    if ds.msg_ctime != ctime || ds.msg_perm.cuid != geteuid().as_raw() {
        return None;
    }
    super::sysv::msg_remove(id).ok()?;
    Some(format!("System V queue {id} ({} messages)", ds.msg_qnum))
}

/// A marker file for System V queue `id`, removed on drop.
#[derive(Debug)]
pub struct SysvMarker(Option<PathBuf>);

impl SysvMarker {
    /// Writes the marker of queue `id` in the temporary directory. A marker that cannot
    /// be written (an unwritable TMPDIR) is left out: the queue still works.
    pub fn new(id: i32, unique: &str) -> Self {
        let Ok(ds) = super::sysv::msg_stat(id) else {
            return SysvMarker(None);
        };
        let path = std::env::temp_dir().join(unique);
        let ok = fs::write(&path, format!("{id} {}\n", ds.msg_ctime)).is_ok();
        SysvMarker(ok.then_some(path))
    }
}

impl Drop for SysvMarker {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_is_read_from_our_names() {
        assert_eq!(pid_in_name("ipc-audit-uds-dgram-4242-7-Xa1b2c"), Some(4242));
        assert_eq!(pid_in_name("ipc-audit-4242-0"), Some(4242));
        assert_eq!(pid_in_name("sem.ipc-audit-sem-17-3"), Some(17));
        assert_eq!(pid_in_name("ipc-audit-stale-Xa1b2c"), None);
        assert_eq!(pid_in_name("other-4242-7"), None);
    }

    #[test]
    fn a_dead_pid_is_seen_dead_and_a_live_one_alive() {
        assert!(!is_dead(std::process::id()));
        let mut c = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = c.id();
        c.wait().expect("wait");
        assert!(is_dead(pid));
    }
}
