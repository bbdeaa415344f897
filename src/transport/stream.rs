//! A framed byte stream over any descriptor: the endpoint behind pipe, FIFO, Unix stream
//! and TCP. Waits use `poll` with the endpoint's timeout, so no wait is unbounded
//! unless the caller asks for it.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};
use crate::frame::{self, Decoder, Step};
use crate::transport::{Credentials, Endpoint};

/// Size of the read buffer of a framed stream.
const READ_BUF: usize = 64 * 1024;

/// The largest payload whose frame (header and payload, one `writev`) fits in PIPE_BUF
/// bytes, which the kernel writes to a pipe or FIFO atomically: frames of concurrent
/// senders up to this size never interleave. Larger ones may.
pub(crate) const ATOMIC_FRAME_MAX: usize = libc::PIPE_BUF - frame::HEADER_LEN;

/// Waits until `fd` is ready for `events` or the deadline passes. EINTR is retried with
/// the time left. `op` names the wait in errors.
pub(crate) fn wait_fd(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Option<Instant>,
    op: &str,
) -> Result<PollFlags> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so that a sub-millisecond remainder still waits.
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, events)];
        match nix::poll::poll(&mut fds, timeout) {
            Ok(0) => {
                if let Some(d) = deadline
                    && Instant::now() >= d
                {
                    return Err(Error::Timeout {
                        op: op.into(),
                        after: Duration::ZERO.max(d.elapsed()),
                    });
                }
            }
            Ok(_) => return Ok(fds[0].revents().unwrap_or(PollFlags::empty())),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys(format!("poll {op}"), e)),
        }
    }
}

/// The deadline for a wait starting now.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

/// Writes `bufs` to a descriptor, retrying on EINTR and short writes, waiting for
/// writability (bounded by `deadline`; `Some(now)` never waits) when it is full. On a
/// socket the write is a `sendmsg` with MSG_NOSIGNAL, so a closed peer gives an error
/// rather than SIGPIPE. Returns the bytes written and the error that stopped it, if any.
pub(crate) fn write_some(
    fd: BorrowedFd<'_>,
    bufs: &[&[u8]],
    socket: bool,
    deadline: Option<Instant>,
    op: &str,
) -> (usize, Option<Error>) {
    use nix::sys::socket::{UnixAddr, sendmsg};
    use std::os::fd::AsRawFd;
    let mut idx = 0;
    let mut off = 0;
    let mut total = 0;
    while idx < bufs.len() {
        if off == bufs[idx].len() {
            idx += 1;
            off = 0;
            continue;
        }
        let mut slices = [IoSlice::new(&[]), IoSlice::new(&[])];
        let mut n = 0;
        for (i, b) in bufs[idx..].iter().take(2).enumerate() {
            slices[i] = IoSlice::new(if i == 0 { &b[off..] } else { b });
            n += 1;
        }
        let written = if socket {
            sendmsg::<UnixAddr>(fd.as_raw_fd(), &slices[..n], &[], nosignal(), None)
        } else {
            writev_nosigpipe(fd, &slices[..n])
        };
        match written {
            Ok(mut w) => {
                total += w;
                while w > 0 && idx < bufs.len() {
                    let left = bufs[idx].len() - off;
                    if w >= left {
                        w -= left;
                        idx += 1;
                        off = 0;
                    } else {
                        off += w;
                        w = 0;
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                if let Err(e) = wait_fd(fd, PollFlags::POLLOUT, deadline, op) {
                    return (total, Some(e));
                }
            }
            Err(e) => return (total, Some(Error::sys(op, e))),
        }
    }
    (total, None)
}

/// A pipe whose two ends are close-on-exec. Atomic with `pipe2` where it exists; macOS
/// has no `pipe2`, so there the flag is set just after `pipe`, and a concurrent fork+exec
/// elsewhere in the process could inherit the ends in between.
pub(crate) fn pipe_cloexec(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::sys(format!("pipe2 ({what})"), e))
    }
    #[cfg(target_vendor = "apple")]
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        let (r, w) = nix::unistd::pipe().map_err(|e| Error::sys(format!("pipe ({what})"), e))?;
        for fd in [&r, &w] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
                .map_err(|e| Error::sys(format!("F_SETFD ({what})"), e))?;
        }
        Ok((r, w))
    }
}

/// Flags for `sendmsg` on a stream socket: no SIGPIPE where the platform has the flag
/// (macOS has only the SO_NOSIGPIPE socket option).
fn nosignal() -> nix::sys::socket::MsgFlags {
    #[cfg(not(target_vendor = "apple"))]
    {
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL
    }
    #[cfg(target_vendor = "apple")]
    {
        nix::sys::socket::MsgFlags::empty()
    }
}

/// `writev` that never raises SIGPIPE: a pipe whose reader is gone gives EPIPE, and the
/// process lives, whatever the SIGPIPE disposition. Where SIGPIPE is ignored (the default
/// in Rust programs) this is a plain `writev`; otherwise SIGPIPE is blocked in this thread
/// for the write, a SIGPIPE it raised is taken back with `sigtimedwait`, and the mask is
/// restored.
fn writev_nosigpipe(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> nix::Result<usize> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    if sigpipe_ignored() {
        return nix::sys::uio::writev(fd, iov);
    }
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&pipe), Some(&mut old))?;
    let r = nix::sys::uio::writev(fd, iov);
    if r == Err(Errno::EPIPE) && !old.contains(Signal::SIGPIPE) {
        take_pending_sigpipe();
    }
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    r
}

/// True when SIGPIPE's disposition is SIG_IGN.
fn sigpipe_ignored() -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only reads the disposition into `old`, which is valid,
    // zeroed memory of the right type.
    let r = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction filled `old` when it returned 0; zeroed memory is a valid
    // sigaction otherwise.
    r == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

/// Consumes a pending SIGPIPE of this thread, if there is one, without waiting.
fn take_pending_sigpipe() {
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        let mut set = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `set` is valid memory for a sigset_t, initialised by sigemptyset
        // before sigaddset and sigtimedwait read it; `zero` outlives the call, and a null
        // siginfo pointer is allowed.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGPIPE);
            libc::sigtimedwait(set.as_ptr(), std::ptr::null_mut(), &zero);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    {
        // macOS has no sigtimedwait: wait only if one is pending, so sigwait returns at once.
        use nix::sys::signal::{SigSet, Signal};
        let mut pending = std::mem::MaybeUninit::<libc::sigset_t>::zeroed();
        // SAFETY: `pending` is valid memory for a sigset_t that sigpending fills.
        let ok = unsafe { libc::sigpending(pending.as_mut_ptr()) } == 0;
        // SAFETY: sigpending filled `pending` when it returned 0.
        if ok && unsafe { libc::sigismember(pending.as_ptr(), libc::SIGPIPE) } == 1 {
            let mut set = SigSet::empty();
            set.add(Signal::SIGPIPE);
            let _ = set.wait();
        }
    }
}

/// A framed stream over one descriptor for reading and/or one for writing.
pub(crate) struct FramedStream {
    name: String,
    // "NAME: send" and "NAME: recv", made once: the per-message paths must not allocate
    // (boxed, to keep the endpoint small inside the transports' enums).
    ops: Box<[String; 2]>,
    rd: Option<OwnedFd>,
    wr: Option<OwnedFd>,
    max: usize,
    dec: Decoder,
    rbuf: Box<[u8]>,
    rpos: usize,
    rend: usize,
    timeout: Option<Duration>,
    socket: bool,
    await_writer: bool,
    cred: Option<Credentials>,
    nonblocking: bool,
    // The rest of a frame whose first bytes went out before its send's deadline (or in
    // nonblocking mode, when the stream was full): written before the next frame, so a
    // frame is never torn. Empty almost always; its capacity is kept.
    pending: Vec<u8>,
}

impl FramedStream {
    /// A stream that reads from `rd` and writes to `wr`; `name` is used in errors. Both
    /// descriptors are set nonblocking so that every wait goes through `poll`.
    pub(crate) fn new(
        name: impl Into<String>,
        rd: Option<OwnedFd>,
        wr: Option<OwnedFd>,
        max: usize,
    ) -> Result<Self> {
        let name = name.into();
        for fd in rd.iter().chain(wr.iter()) {
            set_nonblocking(fd.as_fd(), &name)?;
        }
        Ok(FramedStream {
            ops: Box::new([format!("{name}: send"), format!("{name}: recv")]),
            name,
            rd,
            wr,
            max,
            dec: Decoder::new(max),
            rbuf: Vec::new().into_boxed_slice(),
            rpos: 0,
            rend: 0,
            timeout: None,
            socket: false,
            await_writer: false,
            cred: None,
            nonblocking: false,
            pending: Vec::new(),
        })
    }

    /// Marks the descriptors as sockets: writes use MSG_NOSIGNAL, and the peer's
    /// credentials are read once, where the platform tells them.
    pub(crate) fn socket(mut self) -> Self {
        self.socket = true;
        self.cred = self.wr.as_ref().and_then(|fd| peer_cred(fd.as_fd()));
        self
    }

    /// For a FIFO reader opened before any writer: a read before the first writer comes
    /// would see end-of-file, so the first read waits in `poll`, which stays quiet until
    /// a writer has come.
    pub(crate) fn await_writer(mut self) -> Self {
        self.await_writer = true;
        self
    }
}

/// Sets O_NONBLOCK on a descriptor.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags =
        fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::sys(format!("{what}: F_GETFL"), e))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| Error::sys(format!("{what}: F_SETFL"), e))?;
    Ok(())
}

impl Drop for FramedStream {
    fn drop(&mut self) {
        // The rest of an accepted frame: a bounded last try, so that the reader gets the
        // whole message (or, if the reader is gone or stuck, a truncated frame it reports
        // as an error, never as a message).
        if let (Some(wr), false) = (&self.wr, self.pending.is_empty()) {
            let dl = Some(Instant::now() + Duration::from_secs(1));
            let _ = write_some(wr.as_fd(), &[&self.pending], self.socket, dl, &self.ops[0]);
        }
    }
}

impl Endpoint for FramedStream {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let Some(wr) = &self.wr else {
            return Err(Error::Unsupported(format!(
                "{}: this end only receives",
                self.name
            )));
        };
        let header = frame::header(msg, self.max)?;
        // Nonblocking: no wait at all; blocking: up to the timeout.
        let dl = if self.nonblocking {
            Some(Instant::now())
        } else {
            deadline(self.timeout)
        };
        let refused = |e: Error, nonblocking: bool, op: &str| match e {
            Error::Timeout { .. } if nonblocking => Error::WouldBlock { op: op.into() },
            e => e,
        };
        // First the rest of an earlier frame; while it cannot go out, this message is
        // refused whole.
        if !self.pending.is_empty() {
            let (w, err) = write_some(wr.as_fd(), &[&self.pending], self.socket, dl, &self.ops[0]);
            self.pending.drain(..w);
            if let Some(e) = err {
                return Err(refused(e, self.nonblocking, &self.ops[0]));
            }
        }
        let (w, err) = write_some(wr.as_fd(), &[&header, msg], self.socket, dl, &self.ops[0]);
        match err {
            None => Ok(()),
            // Nothing went out: the message is refused, the stream intact.
            Some(e) if w == 0 => Err(refused(e, self.nonblocking, &self.ops[0])),
            // Part of the frame is out: the message is accepted; the rest goes out
            // before the next frame (or when the end is dropped).
            Some(Error::Timeout { .. }) => {
                let all = header.len() + msg.len();
                let skip = w.min(header.len());
                self.pending.extend_from_slice(&header[skip..]);
                let from = w.saturating_sub(header.len()).min(msg.len());
                self.pending.extend_from_slice(&msg[from..]);
                debug_assert_eq!(self.pending.len(), all - w);
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let Some(rd) = &self.rd else {
            return Err(Error::Unsupported(format!(
                "{}: this end only sends",
                self.name
            )));
        };
        let dl = deadline(self.timeout);
        if self.rbuf.is_empty() {
            self.rbuf = vec![0u8; READ_BUF].into_boxed_slice();
        }
        loop {
            if self.rpos < self.rend {
                let d = self.dec.decode(&self.rbuf[self.rpos..self.rend], buf);
                self.rpos += d.consumed;
                match d.step {
                    Step::Frame => return Ok(buf.len()),
                    Step::NeedMore => {}
                    Step::Error(e) => return Err(e.into()),
                }
            }
            self.rpos = 0;
            self.rend = 0;
            if self.await_writer {
                if self.nonblocking {
                    match wait_fd(
                        rd.as_fd(),
                        PollFlags::POLLIN,
                        Some(Instant::now()),
                        &self.ops[1],
                    ) {
                        Err(Error::Timeout { .. }) => {
                            return Err(Error::WouldBlock {
                                op: self.ops[1].clone(),
                            });
                        }
                        r => r?,
                    };
                } else {
                    wait_fd(rd.as_fd(), PollFlags::POLLIN, dl, &self.ops[1])?;
                }
            }
            match nix::unistd::read(rd.as_fd(), &mut self.rbuf) {
                Ok(0) => {
                    let op = format!("{}: recv", self.name);
                    return match self.dec.finish() {
                        Ok(()) => Err(Error::Closed { op }),
                        Err(e) => Err(e.into()),
                    };
                }
                Ok(n) => {
                    self.rend = n;
                    self.await_writer = false;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if self.nonblocking {
                        // A partial frame stays in the decoder (and in `buf`, which the
                        // caller passes again).
                        return Err(Error::WouldBlock {
                            op: self.ops[1].clone(),
                        });
                    }
                    wait_fd(rd.as_fd(), PollFlags::POLLIN, dl, &self.ops[1])?;
                }
                Err(Errno::ECONNRESET) => {
                    return Err(Error::Closed {
                        op: format!("{}: recv", self.name),
                    });
                }
                Err(e) => return Err(Error::sys(format!("{}: recv", self.name), e)),
            }
        }
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        self.cred
    }

    fn flush(&mut self) -> Result<()> {
        let Some(wr) = &self.wr else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let dl = deadline(self.timeout);
        let (w, err) = write_some(wr.as_fd(), &[&self.pending], self.socket, dl, &self.ops[0]);
        self.pending.drain(..w);
        err.map_or(Ok(()), Err)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        // The descriptors are always O_NONBLOCK; the mode only decides whether a
        // would-be wait in `poll` happens or is reported.
        self.nonblocking = nonblocking;
        Ok(())
    }
}

/// The credentials of a connected Unix socket's peer (SO_PEERCRED), on Linux.
pub(crate) fn peer_cred(fd: BorrowedFd<'_>) -> Option<Credentials> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let c =
            nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::PeerCredentials).ok()?;
        // An unconnected socket (or a TCP one) reports pid 0.
        (c.pid() > 0).then(|| Credentials {
            pid: c.pid() as u32,
            uid: c.uid(),
            gid: c.gid(),
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = fd;
        None
    }
}
