//! A second uid without root: a child started in a new user namespace whose uid and
//! gid maps (written by the setuid helpers `newuidmap` and `newgidmap`, over the ranges
//! /etc/subuid and /etc/subgid give this user) map inner 0 to this user and inner 1 to
//! the first id of the user's range. Dropped to inner uid 1 the child is, for the
//! kernel, a distinct uid that owns nothing of ours: the kernel's own permission checks
//! decide what it may reach.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Command;

use nix::unistd::{Uid, User, getegid, geteuid};

/// The subordinate ids this user may map: the first uid and gid of its ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIds {
    /// This user's uid.
    pub uid: u32,
    /// This user's gid.
    pub gid: u32,
    /// The first uid of its /etc/subuid range: the second uid.
    pub sub_uid: u32,
    /// The first gid of its /etc/subgid range: the second uid's group.
    pub sub_gid: u32,
}

/// The first id of `user`'s (or `uid`'s) range in a subordinate-id file's text
/// (`name:start:count` lines).
pub fn first_subid(text: &str, user: &str, uid: u32) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        let count: u32 = count.trim().parse().ok()?;
        (count >= 1 && (who == user || who == uid.to_string()))
            .then(|| start.trim().parse().ok())
            .flatten()
    })
}

/// A program on the PATH (or in /usr/bin, /usr/sbin, /bin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// This user's subordinate ids, or exactly what is missing for them and how to provide
/// it: the helpers (Debian package `uidmap`), a range in /etc/subuid and /etc/subgid,
/// user namespaces allowed.
pub fn sub_ids() -> Result<SubIds, String> {
    let (uid, gid) = (geteuid().as_raw(), getegid().as_raw());
    let user = User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let mut missing = Vec::new();
    for p in ["newuidmap", "newgidmap"] {
        if find_program(p).is_none() {
            missing.push(format!("{p} (install the package uidmap)"));
        }
    }
    let mut range = |file: &str, flag: &str| {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let first = first_subid(&text, &user, uid);
        if first.is_none() {
            missing.push(format!(
                "a range for {user} in {file} (e.g. usermod {flag} 100000-165535 {user})"
            ));
        }
        first
    };
    let sub_uid = range("/etc/subuid", "--add-subuids");
    let sub_gid = range("/etc/subgid", "--add-subgids");
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        missing.push("user namespaces (sysctl user.max_user_namespaces is 0)".into());
    }
    let clone = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone");
    if clone.is_ok_and(|c| c.trim() == "0") {
        missing.push("sysctl kernel.unprivileged_userns_clone=1".into());
    }
    match (sub_uid, sub_gid) {
        (Some(sub_uid), Some(sub_gid)) if missing.is_empty() => Ok(SubIds {
            uid,
            gid,
            sub_uid,
            sub_gid,
        }),
        _ => Err(format!(
            "a second uid needs root or a user namespace; missing here: {}",
            missing.join("; ")
        )),
    }
}

/// Arranges for `cmd`'s child to start in a new user namespace mapped by `ids`: between
/// fork and exec it unshares its user namespace, sends its pid to a thread of this
/// process that runs `newuidmap` and `newgidmap` on it, and waits for their verdict.
/// Call it before any other `pre_exec` is added. The returned handle must be passed to
/// [`after_spawn`] once `cmd` is spawned (or has failed to).
///
/// # Errors
/// When the pipes cannot be made.
pub fn in_new_userns(cmd: &mut Command, ids: SubIds) -> nix::Result<Handshake> {
    let (pid_r, pid_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (pw, gr) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // unshare, getpid, write, read and close, which are async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(pw, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                return Err(std::io::Error::last_os_error());
            }
            let mut ok = [0u8; 1];
            let n = libc::read(gr, ok.as_mut_ptr().cast(), 1);
            if n != 1 || ok[0] != 1 {
                return Err(std::io::Error::from_raw_os_error(libc::EPERM));
            }
            Ok(())
        });
    }
    let mapper = std::thread::spawn(move || map_child(pid_r, go_w, ids));
    Ok(Handshake {
        child_ends: Some((pid_w, go_r)),
        mapper: Some(mapper),
    })
}

/// The parent's side of [`in_new_userns`].
#[derive(Debug)]
pub struct Handshake {
    child_ends: Option<(OwnedFd, OwnedFd)>,
    mapper: Option<std::thread::JoinHandle<Result<(), String>>>,
}

/// After the spawn: closes this process's copies of the child's pipe ends and returns
/// what the mapping thread saw (`Err` with the helpers' failure).
pub fn after_spawn(mut h: Handshake) -> Result<(), String> {
    drop(h.child_ends.take());
    match h.mapper.take().map(|m| m.join()) {
        Some(Ok(r)) => r,
        _ => Err("the uid-mapping thread panicked".into()),
    }
}

/// The mapping thread: reads the child's pid, runs the helpers, tells the child.
fn map_child(pid_r: OwnedFd, go_w: OwnedFd, ids: SubIds) -> Result<(), String> {
    let mut pid = [0u8; 4];
    let mut r = std::fs::File::from(pid_r);
    let mut w = std::fs::File::from(go_w);
    if r.read_exact(&mut pid).is_err() {
        return Err("the child ended before it entered its user namespace".into());
    }
    let pid = i32::from_ne_bytes(pid).to_string();
    let run = |prog: &str, own: u32, sub: u32| -> Result<(), String> {
        let out = Command::new(prog)
            .args([&pid, "0", &own.to_string(), "1", "1", &sub.to_string(), "1"])
            .output()
            .map_err(|e| format!("{prog}: {e} (install the package uidmap)"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{prog} {pid} 0 {own} 1 1 {sub} 1: {} ({})",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let done = run("newuidmap", ids.uid, ids.sub_uid)
        .and_then(|()| run("newgidmap", ids.gid, ids.sub_gid));
    let _ = w.write_all(&[u8::from(done.is_ok())]);
    done
}

/// The ids inside the namespace for an identity given by its ids outside: this user
/// and group are 0, the first subordinate ones 1.
///
/// # Errors
/// An id that the namespace does not map, named.
pub fn inner(
    ids: SubIds,
    uid: u32,
    gid: u32,
    groups: &[u32],
) -> Result<(u32, u32, Vec<u32>), String> {
    let u = |x: u32| match x {
        _ if x == ids.uid => Ok(0),
        _ if x == ids.sub_uid => Ok(1),
        _ => Err(format!("uid {x} is not mapped in the user namespace")),
    };
    let g = |x: u32| match x {
        _ if x == ids.gid => Ok(0),
        _ if x == ids.sub_gid => Ok(1),
        _ => Err(format!("gid {x} is not mapped in the user namespace")),
    };
    let groups = groups.iter().map(|&x| g(x)).collect::<Result<_, _>>()?;
    Ok((u(uid)?, g(gid)?, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_subordinate_id_is_read_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:10\nbob:300000:0\n";
        assert_eq!(first_subid(text, "alice", 1000), Some(100000));
        assert_eq!(first_subid(text, "carol", 1001), Some(200000));
        assert_eq!(first_subid(text, "bob", 1002), None);
        assert_eq!(first_subid(text, "dave", 7), None);
    }
}
