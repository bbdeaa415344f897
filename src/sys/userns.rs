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

/// What a new user namespace maps (one id per line, `(inside, outside)`), and whether
/// the child becomes its root before exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maps {
    /// The uid map: `(inside, outside)` pairs.
    pub uid: Vec<(u32, u32)>,
    /// The gid map: `(inside, outside)` pairs.
    pub gid: Vec<(u32, u32)>,
    /// Between the maps and exec, become uid and gid 0 of the namespace with no
    /// supplementary groups (setgroups, setgid, setuid): for the kernel outside, the
    /// outside ids that inside 0 maps to.
    pub become_root: bool,
}

impl Maps {
    /// Inside 0 is this user (the child stays it, root of the namespace), inside 1 the
    /// first subordinate ids: the peer then drops to inside 1 ([`inner`]).
    pub fn sub(ids: SubIds) -> Self {
        Maps {
            uid: vec![(0, ids.uid), (1, ids.sub_uid)],
            gid: vec![(0, ids.gid), (1, ids.sub_gid)],
            become_root: false,
        }
    }

    /// Inside 0 is `uid` and `gid` outside, and the child becomes it: it believes it is
    /// root (getuid and getgid say 0) while the kernel outside knows it as `uid`/`gid`.
    /// As root the maps are written directly; otherwise `uid` and `gid` must be in this
    /// user's subordinate ranges (`newuidmap`, `newgidmap`).
    pub fn root_as(uid: u32, gid: u32) -> Self {
        Maps {
            uid: vec![(0, uid)],
            gid: vec![(0, gid)],
            become_root: true,
        }
    }
}

/// Whether a child can be started as the root of a user namespace of its own that is
/// `uid`/`gid` outside ([`Maps::root_as`]): starts `true` so, and returns the exact
/// cause when it cannot.
///
/// # Errors
/// What failed: the unshare, a map, the change of ids, or the start itself.
pub fn probe_root_as(uid: u32, gid: u32) -> Result<(), String> {
    let mut cmd = Command::new("true");
    cmd.stdin(std::process::Stdio::null());
    let h = in_new_userns(&mut cmd, Maps::root_as(uid, gid))
        .map_err(|e| format!("pipes for the user-namespace handshake: {e}"))?;
    let spawned = cmd.spawn();
    let mapped = after_spawn(h);
    let mut child = match (spawned, mapped) {
        (Ok(c), Ok(())) => c,
        (Ok(mut c), Err(why)) => {
            let _ = c.kill();
            let _ = c.wait();
            return Err(why);
        }
        (Err(e), Err(why)) => return Err(format!("{why}; then the start failed: {e}")),
        (Err(e), Ok(())) => {
            return Err(format!(
                "a child as root of a user namespace that is uid {uid}, gid {gid} outside: \
                 unshare(CLONE_NEWUSER), setgroups, setgid(0), setuid(0) or exec of `true`: {e}"
            ));
        }
    };
    match child.wait() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`true` in the new user namespace: {s}")),
        Err(e) => Err(format!("wait for the probe: {e}")),
    }
}

/// Arranges for `cmd`'s child to start in a new user namespace with `maps`: between
/// fork and exec it unshares its user namespace, sends its pid to a thread of this
/// process that writes the maps (as root directly, otherwise with `newuidmap` and
/// `newgidmap`), waits for their verdict, and with [`Maps::become_root`] becomes the
/// namespace's root. Call it before any other `pre_exec` is added. The returned handle
/// must be passed to [`after_spawn`] once `cmd` is spawned (or has failed to).
///
/// # Errors
/// When the pipes cannot be made.
pub fn in_new_userns(cmd: &mut Command, maps: Maps) -> nix::Result<Handshake> {
    let (pid_r, pid_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (pw, gr) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
    let become_root = maps.become_root;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // unshare, getpid, write, read, setgroups, setgid and setuid, which are system calls
    // (the child has one thread); it allocates nothing and touches no lock.
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
            if become_root
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(0) != 0
                    || libc::setuid(0) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mapper = std::thread::spawn(move || map_child(pid_r, go_w, &maps));
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

/// The mapping thread: reads the child's pid, writes its maps, tells the child.
fn map_child(pid_r: OwnedFd, go_w: OwnedFd, maps: &Maps) -> Result<(), String> {
    let mut pid = [0u8; 4];
    let mut r = std::fs::File::from(pid_r);
    let mut w = std::fs::File::from(go_w);
    if r.read_exact(&mut pid).is_err() {
        return Err("the child ended before it entered its user namespace".into());
    }
    let pid = i32::from_ne_bytes(pid).to_string();
    let direct = geteuid().is_root();
    let done = write_map(&pid, "uid", &maps.uid, direct)
        .and_then(|()| write_map(&pid, "gid", &maps.gid, direct));
    let _ = w.write_all(&[u8::from(done.is_ok())]);
    done
}

/// Writes one map (`what` is "uid" or "gid") of the child `pid`: as root into
/// /proc/PID/{uid,gid}_map, otherwise with the setuid helper `new{uid,gid}map`.
fn write_map(pid: &str, what: &str, pairs: &[(u32, u32)], direct: bool) -> Result<(), String> {
    if direct {
        let file = format!("/proc/{pid}/{what}_map");
        let text: String = pairs.iter().map(|(i, o)| format!("{i} {o} 1\n")).collect();
        return std::fs::write(&file, &text)
            .map_err(|e| format!("write {:?} to {file}: {e}", text.trim_end()));
    }
    let prog = format!("new{what}map");
    let mut args = vec![pid.to_string()];
    for (i, o) in pairs {
        args.extend([i.to_string(), o.to_string(), "1".into()]);
    }
    let out = Command::new(&prog)
        .args(&args)
        .output()
        .map_err(|e| format!("{prog}: {e} (install the package uidmap)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{prog} {}: {} ({})",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
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
