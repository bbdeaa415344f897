//! A message endpoint over one datagram or seqpacket socket: the endpoint behind
//! `uds-dgram`, `uds-seqpacket` and `udp`. The kernel keeps the boundaries; this module
//! makes sure a message that does not fit is reported (MSG_TRUNC), never cut silently,
//! and that every wait has the endpoint's deadline.
//!
//! The socket stays in blocking mode with SO_RCVTIMEO set to the timeout, as a stream
//! socket's (see `stream.rs`): the first `recvmsg` of a receive waits in the kernel,
//! so an idle receive costs one syscall, as in C, where a nonblocking try, a `poll` and
//! a second try cost three. A retry (after EINTR, or a wake before the deadline) is a
//! MSG_DONTWAIT `recvmsg` that waits in `poll` for what is left of the deadline. Sends
//! are MSG_DONTWAIT and wait in `poll`, so they stay bounded too.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{MsgFlags, recvmsg, send};

use super::Endpoint;
use super::stream::{deadline, set_blocking, set_recv_timeout, wait_fd};
use crate::error::{Error, Result};

/// Which directions an end may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Only `send`.
    Send,
    /// Only `recv`.
    Recv,
    /// Both.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Both,
}

/// One end of a datagram link: a connected or bound socket in blocking mode, every wait
/// bounded by the timeout (SO_RCVTIMEO for a receive's first wait, `poll` for the rest).
pub struct DatagramEndpoint {
    name: &'static str,
    pub(crate) fd: OwnedFd,
    max: usize,
    dir: Dir,
    timeout: Option<Duration>,
    scratch: Box<[u8]>,
    /// "NAME: send" and "NAME: recv", made once: the per-message paths do not allocate.
    ops: Box<[String; 2]>,
    /// The control-message buffer of every receive, made once (seqpacket only: room for
    /// the credentials that mark an empty message).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    cmsg: Vec<u8>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    /// Seqpacket: a read of 0 bytes is an empty message when it carries credentials
    /// (SO_PASSCRED on this socket), end-of-file when it carries none.
    creds_mark_messages: bool,
    /// A send that would wait for room, or a receive that would wait for a datagram,
    /// gives WouldBlock at once.
    nonblocking: bool,
}

impl std::fmt::Debug for DatagramEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramEndpoint")
            .field("name", &self.name)
            .field("max", &self.max)
            .finish()
    }
}

impl DatagramEndpoint {
    /// An endpoint over `fd` (made blocking here, with no receive timeout) for messages
    /// up to `max` bytes.
    pub(crate) fn new(name: &'static str, fd: OwnedFd, max: usize, dir: Dir) -> Result<Self> {
        set_blocking(fd.as_fd(), name)?;
        set_recv_timeout(fd.as_fd(), None, name)?;
        Ok(DatagramEndpoint {
            name,
            fd,
            max,
            dir,
            timeout: None,
            scratch: Box::default(),
            ops: Box::new([format!("{name}: send"), format!("{name}: recv")]),
            cmsg: Vec::new(),
            creds_mark_messages: false,
            nonblocking: false,
        })
    }

    /// Seqpacket mode (Linux): SO_PASSCRED is set on the socket so that an empty message (which
    /// carries credentials) is told apart from end-of-file (which carries none).
    #[cfg(target_os = "linux")]
    pub(crate) fn seqpacket(mut self) -> Result<Self> {
        use nix::sys::socket::{setsockopt, sockopt::PassCred};
        setsockopt(&self.fd, PassCred, &true)
            .map_err(|e| Error::sys(format!("{}: SO_PASSCRED", self.name), e))?;
        self.creds_mark_messages = true;
        self.cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
        Ok(self)
    }

    /// The largest message this end sends or receives whole.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// Receives one message into `buf`, which is not resized.
    ///
    /// # Errors
    /// [`Error::Truncated`] (with the real length) when the message is longer than
    /// `buf`: the message is consumed and reported, never delivered cut.
    /// [`Error::Timeout`] past the timeout, [`Error::Closed`] at end-of-file on a
    /// connected socket, or the system error.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.dir == Dir::Send {
            return Err(Error::Unsupported(format!(
                "{}: this end only sends",
                self.name
            )));
        }
        let dl = deadline(self.timeout);
        let op = self.ops[1].as_str();
        // Only the first recvmsg may wait in the kernel (bounded by SO_RCVTIMEO, which is
        // the timeout); a zero timeout cannot be put there (zero means forever).
        let mut kernel_wait = !self.nonblocking && self.timeout != Some(Duration::ZERO);
        loop {
            let mut flags = recv_flags();
            if !kernel_wait {
                flags |= MsgFlags::MSG_DONTWAIT;
            }
            kernel_wait = false;
            #[cfg(target_os = "linux")]
            let cbuf = self.creds_mark_messages.then_some(self.cmsg.as_mut_slice());
            #[cfg(not(target_os = "linux"))]
            let cbuf = None;
            let mut iov = [IoSliceMut::new(buf)];
            // MSG_TRUNC as an input flag makes Linux return the real length of the
            // datagram even when it is longer than the buffer; everywhere the output
            // flag MSG_TRUNC says that it was cut.
            let r = recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, cbuf, flags);
            match r {
                Ok(m) => {
                    let len = m.bytes;
                    let cut = m.flags.contains(MsgFlags::MSG_TRUNC);
                    #[cfg(target_os = "linux")]
                    let has_creds = m.cmsgs().is_ok_and(|mut c| {
                        c.any(|c| {
                            matches!(c, nix::sys::socket::ControlMessageOwned::ScmCredentials(_))
                        })
                    });
                    #[cfg(not(target_os = "linux"))]
                    let has_creds = false;
                    if cut || len > buf.len() {
                        return Err(Error::Truncated {
                            buf: buf.len(),
                            len: Some(len),
                        });
                    }
                    if len == 0 && self.creds_mark_messages && !has_creds {
                        return Err(Error::Closed { op: op.into() });
                    }
                    return Ok(len);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if self.nonblocking {
                        return Err(Error::WouldBlock { op: op.into() });
                    }
                    // After SO_RCVTIMEO expired this gives Timeout at once (or waits for
                    // the rest of the deadline if the kernel woke early).
                    let ev = wait_fd(self.fd.as_fd(), PollFlags::POLLIN, dl, op)?;
                    if ev.contains(PollFlags::POLLERR) && !ev.contains(PollFlags::POLLIN) {
                        return Err(Error::Closed { op: op.into() });
                    }
                }
                Err(Errno::ECONNRESET | Errno::ECONNREFUSED) => {
                    return Err(Error::Closed { op: op.into() });
                }
                Err(e) => return Err(Error::sys(op, e)),
            }
        }
    }
}

impl Endpoint for DatagramEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if self.dir == Dir::Recv {
            return Err(Error::Unsupported(format!(
                "{}: this end only receives",
                self.name
            )));
        }
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        let dl = deadline(self.timeout);
        let op = self.ops[0].as_str();
        loop {
            match send(
                self.fd.as_raw_fd(),
                msg,
                nosignal() | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) if n == msg.len() => return Ok(()),
                Ok(n) => {
                    return Err(Error::Protocol(format!(
                        "{op}: the kernel took {n} of {} bytes of a datagram",
                        msg.len()
                    )));
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN | Errno::ENOBUFS) => {
                    if self.nonblocking {
                        return Err(Error::WouldBlock { op: op.into() });
                    }
                    wait_fd(self.fd.as_fd(), PollFlags::POLLOUT, dl, op)?;
                }
                Err(Errno::EMSGSIZE) => {
                    return Err(Error::TooLarge {
                        len: msg.len(),
                        max: self.max,
                    });
                }
                Err(Errno::ECONNREFUSED | Errno::ENOTCONN) => {
                    return Err(Error::Closed { op: op.into() });
                }
                Err(e) => return Err(Error::sys(op, e)),
            }
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        if self.scratch.len() < self.max {
            self.scratch = vec![0u8; self.max].into_boxed_slice();
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.recv_into(&mut scratch);
        if let Ok(n) = r {
            buf.clear();
            buf.extend_from_slice(&scratch[..n]);
        }
        self.scratch = scratch;
        r
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if self.dir != Dir::Send && timeout != self.timeout {
            set_recv_timeout(self.fd.as_fd(), timeout, self.name)?;
        }
        self.timeout = timeout;
        Ok(())
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        self.nonblocking = nonblocking;
        Ok(())
    }
}

/// MSG_NOSIGNAL where it exists (not on macOS).
fn nosignal() -> MsgFlags {
    #[cfg(not(target_vendor = "apple"))]
    {
        MsgFlags::MSG_NOSIGNAL
    }
    #[cfg(target_vendor = "apple")]
    {
        MsgFlags::empty()
    }
}

/// Flags for every receive.
fn recv_flags() -> MsgFlags {
    #[cfg(target_os = "linux")]
    {
        MsgFlags::MSG_TRUNC | MsgFlags::MSG_CMSG_CLOEXEC
    }
    #[cfg(not(target_os = "linux"))]
    {
        MsgFlags::MSG_TRUNC
    }
}

/// The socket's send buffer size (SO_SNDBUF), as the kernel reports it.
pub(crate) fn sndbuf(fd: &OwnedFd, what: &str) -> Result<usize> {
    use nix::sys::socket::{getsockopt, sockopt::SndBuf};
    getsockopt(fd, SndBuf).map_err(|e| Error::sys(format!("{what}: getsockopt SO_SNDBUF"), e))
}

/// Parses `"<max> <rest>"` from a peer's info.
pub(crate) fn split_info<'a>(info: &'a str, transport: &str) -> Result<(usize, &'a str)> {
    let (max, rest) = info
        .split_once(' ')
        .ok_or_else(|| Error::Protocol(format!("{transport}: bad peer info {info:?}")))?;
    Ok((super::pipe::parse_max(max, transport)?, rest))
}
