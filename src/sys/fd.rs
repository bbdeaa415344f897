//! Descriptors: close-on-exec pipes, descriptor passing over a Unix socket
//! (SCM_RIGHTS), and the list of descriptors open in this process.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// `PIPE_BUF`: writes to a pipe or FIFO up to this size are atomic.
pub const PIPE_BUF: usize = libc::PIPE_BUF;

/// `O_CLOEXEC`, for `OpenOptionsExt::custom_flags`.
pub const O_CLOEXEC: i32 = libc::O_CLOEXEC;

/// The most descriptors [`recv_fds`] takes from one message.
pub const MAX_FDS: usize = 16;

/// A pipe whose two ends are close-on-exec. Atomic with `pipe2` where it exists; macOS
/// has no `pipe2`, so there the flag is set just after `pipe`, and a concurrent fork+exec
/// elsewhere in the process could inherit the ends in between. `what` names the pipe in
/// errors.
///
/// # Errors
/// The system error, naming `what`.
pub fn pipe_cloexec(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::sys(format!("pipe2 ({what})"), e))
    }
    #[cfg(target_vendor = "apple")]
    {
        let (r, w) = nix::unistd::pipe().map_err(|e| Error::sys(format!("pipe ({what})"), e))?;
        for fd in [&r, &w] {
            set_cloexec(fd).map_err(|e| Error::sys(format!("F_SETFD ({what})"), e))?;
        }
        Ok((r, w))
    }
}

/// Sets `FD_CLOEXEC` on `fd`.
///
/// # Errors
/// The errno of `fcntl`.
pub fn set_cloexec(fd: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(drop)
}

/// Sends `data` with the descriptors `fds` (possibly none) over a Unix socket, retrying
/// on EINTR. Returns the bytes sent.
///
/// # Errors
/// The errno of `sendmsg`.
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None) {
            Err(nix::errno::Errno::EINTR) => {}
            r => return r,
        }
    }
}

/// Receives into `buf` one message sent by [`send_fds`] and the descriptors it carries
/// (at most [`MAX_FDS`]), close-on-exec, retrying on EINTR. Returns the bytes received
/// and the descriptors, which the caller then owns.
///
/// # Errors
/// The errno of `recvmsg`, of reading its control data, or of `fcntl` (platforms
/// without `MSG_CMSG_CLOEXEC`).
pub fn recv_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixAddr, recvmsg};
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let flags = MsgFlags::MSG_CMSG_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let flags = MsgFlags::empty();
    let (n, raws) = loop {
        match recvmsg::<UnixAddr>(sock.as_raw_fd(), &mut iov, Some(&mut space), flags) {
            Ok(m) => {
                let mut raws = Vec::new();
                for c in m.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(r) = c {
                        raws.extend(r);
                    }
                }
                break (m.bytes, raws);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    };
    let fds: Vec<OwnedFd> = raws
        .into_iter()
        .map(|fd| {
            // SAFETY: the kernel just installed this descriptor in this process for
            // this message; nothing else owns it.
            unsafe { OwnedFd::from_raw_fd(fd) }
        })
        .collect();
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    for fd in &fds {
        set_cloexec(fd)?;
    }
    Ok((n, fds))
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

/// This process's open descriptors beyond 0, 1 and 2, with what each names (the target
/// of its `/proc/self/fd` link), in the directory's order, leaving out the one that
/// lists the directory and any closed meanwhile. Empty off Linux.
pub fn open_fd_targets() -> Vec<(RawFd, String)> {
    #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
    let mut v = Vec::new();
    #[cfg(target_os = "linux")]
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(n) = name.parse::<RawFd>() else {
                continue;
            };
            if n <= 2 {
                continue;
            }
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            // The directory being read, or a descriptor already closed.
            if target.starts_with("/proc/") || target.is_empty() {
                continue;
            }
            v.push((n, target));
        }
    }
    v
}

/// A POSIX queue descriptor from the file descriptor it is on Linux (handed to a peer
/// process as one), owned by the result.
#[cfg(target_os = "linux")]
pub fn mqd(fd: OwnedFd) -> nix::mqueue::MqdT {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: `fd` is an open queue descriptor given up whole (into_raw_fd): the MqdT
    // owns it from now on and closes it once.
    unsafe { nix::mqueue::MqdT::from_raw_fd(fd.into_raw_fd()) }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "sockets and /proc are not available under Miri")]
    fn passed_descriptors_arrive_and_are_listed() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, w) = pipe_cloexec("test").unwrap();
        assert_eq!(
            send_fds(a.as_fd(), b"x", &[r.as_fd(), w.as_fd()]).unwrap(),
            1
        );
        let mut buf = [0u8; 4];
        let (n, fds) = recv_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fds.len(), buf[0]), (1, 2, b'x'));
        #[cfg(target_os = "linux")]
        {
            let raw = fds[0].as_raw_fd();
            let listed = open_fd_targets();
            assert!(
                listed
                    .iter()
                    .any(|(fd, t)| *fd == raw && t.starts_with("pipe:")),
                "{listed:?}"
            );
            assert!(open_fds().unwrap() >= listed.len());
        }
    }
}
