//! A framed byte stream over any descriptor: the endpoint behind pipe, FIFO, Unix stream
//! and TCP. Every wait is bounded by the endpoint's timeout, so no wait is unbounded
//! unless the caller asks for it.
//!
//! # Syscalls per message
//!
//! A send is one `writev` (pipe, FIFO) or `sendmsg` (socket) of header and payload. A
//! receive reads up to 64 KiB at once, so a small frame (header and payload) comes in
//! one read, and frames already read are decoded without a syscall. How a receive waits:
//!
//! - Sockets stay in blocking mode with SO_RCVTIMEO set to the timeout: the first read
//!   of a receive blocks in the kernel, bounded by the timeout, so an idle receive costs
//!   one `recv`, as in C. Any further read of that receive (the rest of a frame, a retry
//!   after EINTR) is a MSG_DONTWAIT read that waits in `poll` for what is left of the
//!   deadline. Sends use MSG_DONTWAIT and wait in `poll`, so they stay bounded too.
//! - Pipes and FIFOs have no receive timeout in the kernel, so they are nonblocking, and
//!   a receive that has to wait does so before its next read. A `poll` that sleeps
//!   costs about a third more than a blocking `read` (a wait-queue entry added and
//!   removed, a second pass through the pipe), so the wait is first a yield of the cpu
//!   (`sched_yield`), at most [`YIELDS_PER_RECV`] a receive: when the writer shares this
//!   cpu, the yield runs it at once, as a blocking read's sleep would, and its message is
//!   there for the read that follows. A yield that returns within [`YIELD_USEFUL`] ran
//!   nobody (the writer is on another cpu, or idle): the receive sleeps in `poll`, and
//!   the next [`YIELD_BACKOFF`] receives poll without yielding, so a receive never spins
//!   on a cpu of its own. After a read that found nothing, the next receives wait
//!   (yield or `poll`) before their first read: `writev`, `sched_yield`, `read` a side
//!   in a same-cpu ping-pong, as against `write`, `read` in C; `writev`, `poll`, `read`
//!   across cpus. A read that fills the whole buffer (the reader is behind) makes the
//!   next receives read first again.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};
use crate::frame::{self, Decoder, Step};
use crate::sys::signal::{sigpipe_ignored, take_pending_sigpipe};
use crate::transport::{Credentials, Endpoint};

/// Size of the read buffer of a framed stream.
const READ_BUF: usize = 64 * 1024;

/// The largest payload whose frame (header and payload, one `writev`) fits in PIPE_BUF
/// bytes, which the kernel writes to a pipe or FIFO atomically: frames of concurrent
/// senders up to this size never interleave. Larger ones may.
pub(crate) const ATOMIC_FRAME_MAX: usize = crate::sys::fd::PIPE_BUF - frame::HEADER_LEN;

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

/// The deadline for a wait starting now; a timeout too large to represent waits forever.
pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// What a descriptor written by [`write_some`] is, for how to write without SIGPIPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// A socket: `sendmsg` with MSG_NOSIGNAL (and MSG_DONTWAIT).
    Socket,
    /// A pipe or FIFO: `writev`, with SIGPIPE blocked around it unless its disposition
    /// was SIG_IGN when the writer was made (see [`Sink::pipe`]).
    Pipe {
        /// SIGPIPE was ignored when the writer was made.
        sigpipe_ignored: bool,
    },
}

impl Sink {
    /// A pipe or FIFO writer, reading SIGPIPE's disposition now (one `sigaction`), not
    /// on every write: each would cost a syscall, about as much as the write itself.
    /// Where SIGPIPE is ignored now (the default in Rust programs) the writes are plain
    /// `writev`s; otherwise SIGPIPE is blocked in the writing thread around each write.
    /// So a program that puts SIGPIPE back to SIG_DFL must do it before it makes its
    /// pipe and FIFO writers (as the audit's peer does); one made while SIGPIPE was
    /// ignored is not protected if the program later restores the default.
    pub(crate) fn pipe() -> Self {
        Sink::Pipe {
            sigpipe_ignored: sigpipe_ignored(),
        }
    }

    fn write(self, fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> nix::Result<usize> {
        use nix::sys::socket::{UnixAddr, sendmsg};
        match self {
            Sink::Socket => sendmsg::<UnixAddr>(fd.as_raw_fd(), iov, &[], send_flags(), None),
            Sink::Pipe {
                sigpipe_ignored: true,
            } => nix::sys::uio::writev(fd, iov),
            Sink::Pipe {
                sigpipe_ignored: false,
            } => writev_sigpipe_blocked(fd, iov),
        }
    }
}

/// Writes `bufs` to a descriptor, retrying on EINTR and short writes, waiting for
/// writability (bounded by `deadline`; `Some(now)` never waits) when it is full. On a
/// socket the write is a `sendmsg` with MSG_NOSIGNAL, so a closed peer gives an error
/// rather than SIGPIPE; on a pipe, see [`Sink::pipe`]. Returns the bytes written and the error that stopped it, if any.
pub(crate) fn write_some(
    fd: BorrowedFd<'_>,
    bufs: &[&[u8]],
    sink: Sink,
    deadline: Option<Instant>,
    op: &str,
) -> (usize, Option<Error>) {
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
        match sink.write(fd, &slices[..n]) {
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

/// A pipe whose two ends are close-on-exec: [`crate::sys::fd::pipe_cloexec`].
pub(crate) use crate::sys::fd::pipe_cloexec;

/// Flags for `sendmsg` on a stream socket: never wait in the kernel (the socket is in
/// blocking mode for its receives; a send that would wait waits in `poll`, bounded), and
/// no SIGPIPE where the platform has the flag (macOS has only the SO_NOSIGPIPE socket
/// option).
fn send_flags() -> nix::sys::socket::MsgFlags {
    use nix::sys::socket::MsgFlags;
    #[cfg(not(target_vendor = "apple"))]
    {
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT
    }
    #[cfg(target_vendor = "apple")]
    {
        MsgFlags::MSG_DONTWAIT
    }
}

/// `writev` that never raises SIGPIPE, whatever its disposition: a pipe whose reader is
/// gone gives EPIPE, and the process lives. SIGPIPE is blocked in this thread for the
/// write, a SIGPIPE it raised is taken back with `sigtimedwait`, and the mask is restored.
fn writev_sigpipe_blocked(fd: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> nix::Result<usize> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
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
    /// How writes avoid SIGPIPE.
    sink: Sink,
    await_writer: bool,
    cred: Option<Credentials>,
    nonblocking: bool,
    // The rest of a frame whose first bytes went out before its send's deadline (or in
    // nonblocking mode, when the stream was full): written before the next frame, so a
    // frame is never torn. Empty almost always; its capacity is kept.
    pending: Vec<u8>,
    /// Pipes and FIFOs: the last read found nothing, so the next receive waits (a yield
    /// of the cpu, or `poll`) before reading: one syscall less per message in a
    /// ping-pong than a read that finds nothing first.
    poll_first: bool,
    /// Pipes and FIFOs: receives left before the next one tries yielding the cpu again
    /// (a yield that ran nobody sets it to [`YIELD_BACKOFF`]).
    yield_skip: u8,
}

/// Pipes and FIFOs: how many times a receive that found nothing yields the cpu and
/// reads again before it sleeps in `poll`.
pub(crate) const YIELDS_PER_RECV: u8 = 2;
/// A yield that returned sooner than this gave the cpu to nobody.
pub(crate) const YIELD_USEFUL: Duration = Duration::from_micros(1);
/// Receives that go straight to `poll` after a yield that ran nobody.
pub(crate) const YIELD_BACKOFF: u8 = 32;

impl FramedStream {
    /// A stream that reads from `rd` and writes to `wr`; `name` is used in errors. Both
    /// descriptors are set nonblocking, so that no wait happens in the kernel unbounded:
    /// each goes through `poll` with the deadline (or, for a pipe receive, a yield).
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
        // A receiving end never writes: no need to read the disposition for it.
        let sink = match wr {
            Some(_) => Sink::pipe(),
            None => Sink::Pipe {
                sigpipe_ignored: false,
            },
        };
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
            sink,
            await_writer: false,
            cred: None,
            nonblocking: false,
            pending: Vec::new(),
            poll_first: false,
            yield_skip: 0,
        })
    }

    /// Marks the descriptors as sockets: they go back to blocking mode, so that the
    /// first read of a receive waits in the kernel (bounded by SO_RCVTIMEO, see
    /// [`set_timeout`](Endpoint::set_timeout)); writes use MSG_DONTWAIT and
    /// MSG_NOSIGNAL; the peer's credentials are read once, where the platform tells them.
    ///
    /// # Errors
    /// The system error of `fcntl`.
    pub(crate) fn socket(mut self) -> Result<Self> {
        for fd in self.rd.iter().chain(self.wr.iter()) {
            set_blocking(fd.as_fd(), &self.name)?;
        }
        self.socket = true;
        self.sink = Sink::Socket;
        self.cred = self.wr.as_ref().and_then(|fd| peer_cred(fd.as_fd()));
        Ok(self)
    }

    /// For a FIFO reader opened before any writer: a read before the first writer comes
    /// would see end-of-file, so the first read waits in `poll`, which stays quiet until
    /// a writer has come.
    pub(crate) fn await_writer(mut self) -> Self {
        self.await_writer = true;
        self
    }
}

/// Yields the cpu (`sched_yield`); true when someone else ran meanwhile (the call took
/// at least [`YIELD_USEFUL`] from `since`, a moment just before it).
fn yield_cpu(since: Instant) -> bool {
    std::thread::yield_now();
    since.elapsed() >= YIELD_USEFUL
}

/// Sets O_NONBLOCK on a descriptor.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    set_o_nonblock(fd, true, what)
}

/// Clears O_NONBLOCK on a descriptor.
pub(crate) fn set_blocking(fd: BorrowedFd<'_>, what: &str) -> Result<()> {
    set_o_nonblock(fd, false, what)
}

fn set_o_nonblock(fd: BorrowedFd<'_>, on: bool, what: &str) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags =
        fcntl(fd, FcntlArg::F_GETFL).map_err(|e| Error::sys(format!("{what}: F_GETFL"), e))?;
    let mut flags = OFlag::from_bits_retain(flags);
    flags.set(OFlag::O_NONBLOCK, on);
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| Error::sys(format!("{what}: F_SETFL"), e))?;
    Ok(())
}

/// Accepts the one connection of a listening end, by a deadline: returns it as a framed
/// stream, or an error after which it may be called again.
pub(crate) type Accept = Box<dyn FnMut(Option<Instant>) -> Result<FramedStream> + Send>;

/// The listening end of a stream transport: accepts its one peer on first use, within
/// the timeout, then is that connection. The accept closure, and what it owns (the
/// listener, the directory of its path), is dropped once the peer is accepted: nobody
/// else can connect after it.
pub(crate) struct AcceptOnce {
    accept: Option<Accept>,
    conn: Option<FramedStream>,
    timeout: Option<Duration>,
    nonblocking: bool,
}

impl AcceptOnce {
    /// A listening end that accepts with `accept`.
    pub(crate) fn new(accept: Accept) -> Self {
        AcceptOnce {
            accept: Some(accept),
            conn: None,
            timeout: None,
            nonblocking: false,
        }
    }

    fn stream(&mut self) -> Result<&mut FramedStream> {
        if self.conn.is_none() {
            let accept = self
                .accept
                .as_mut()
                .ok_or_else(|| Error::Protocol("accept-once: no listener left".into()))?;
            let mut f = accept(deadline(self.timeout))?;
            f.set_timeout(self.timeout)?;
            f.set_nonblocking(self.nonblocking)?;
            self.accept = None;
            self.conn = Some(f);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| Error::Protocol("accept-once: not connected".into()))
    }
}

impl Endpoint for AcceptOnce {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.stream()?.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.stream()?.recv(buf)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        self.conn
            .as_mut()
            .map_or(Ok(()), |f| f.set_timeout(timeout))
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        self.nonblocking = nonblocking;
        self.conn
            .as_mut()
            .map_or(Ok(()), |f| f.set_nonblocking(nonblocking))
    }

    fn flush(&mut self) -> Result<()> {
        self.conn.as_mut().map_or(Ok(()), Endpoint::flush)
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        self.conn.as_ref().and_then(Endpoint::peer_credentials)
    }
}

impl Drop for FramedStream {
    fn drop(&mut self) {
        // The rest of an accepted frame: a bounded last try, so that the reader gets the
        // whole message (or, if the reader is gone or stuck, a truncated frame it reports
        // as an error, never as a message).
        if let (Some(wr), false) = (&self.wr, self.pending.is_empty()) {
            let dl = Some(Instant::now() + Duration::from_secs(1));
            let _ = write_some(wr.as_fd(), &[&self.pending], self.sink, dl, &self.ops[0]);
        }
    }
}

/// SO_RCVTIMEO for `timeout`: `None` (zero) waits forever; a timeout under a microsecond
/// is rounded up to one, since zero would mean forever.
pub(crate) fn set_recv_timeout(
    fd: BorrowedFd<'_>,
    timeout: Option<Duration>,
    what: &str,
) -> Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimeout};
    use nix::sys::time::{TimeVal, TimeValLike};
    let micros = match timeout {
        None => 0,
        Some(t) => i64::try_from(t.as_micros()).unwrap_or(i64::MAX).max(1),
    };
    // A timeout too large for a timeval is as good as forever.
    let tv = if micros / 1_000_000 > i64::from(i32::MAX) {
        TimeVal::microseconds(0)
    } else {
        TimeVal::microseconds(micros)
    };
    setsockopt(&fd, ReceiveTimeout, &tv).map_err(|e| {
        Error::sys(
            format!("{what}: setsockopt SO_RCVTIMEO {timeout:?} (as {micros} µs)"),
            e,
        )
    })
}

/// How one receive of a [`FramedStream`] may still wait, fixed at its start.
struct RecvWait {
    /// The receive's deadline.
    dl: Option<Instant>,
    /// A socket's next read may wait in the kernel (bounded by SO_RCVTIMEO).
    kernel_wait: bool,
    /// Pipes and FIFOs: yields left in this receive before sleeping in `poll`.
    yields: u8,
    /// Pipes and FIFOs: wait (yield, or else `poll`) before the next read.
    wait_first: bool,
}

impl FramedStream {
    /// The error of a receive on an end that only sends.
    fn only_sends(&self) -> Error {
        Error::Unsupported(format!("{}: this end only sends", self.name))
    }

    /// The waits one receive may make (see the module documentation).
    fn recv_wait(&mut self) -> RecvWait {
        let dl = deadline(self.timeout);
        // A socket's first read of this call may wait in the kernel: SO_RCVTIMEO bounds
        // it by the timeout, which is at most the deadline. Every later read (the rest of
        // a frame, a retry after EINTR or after SO_RCVTIMEO expired early) waits in
        // `poll` for what is left, so the whole call stays within the deadline. A zero
        // timeout cannot be put in SO_RCVTIMEO (zero means forever): no kernel wait then.
        let kernel_wait = self.socket && !self.nonblocking && self.timeout != Some(Duration::ZERO);
        // Pipes and FIFOs: yields left in this call before sleeping in `poll`.
        let mut yields = 0;
        if !self.socket && !self.nonblocking && self.timeout != Some(Duration::ZERO) {
            if self.yield_skip == 0 {
                yields = YIELDS_PER_RECV;
            } else {
                self.yield_skip -= 1;
            }
        }
        // Pipes and FIFOs: wait (yield, or else `poll`) before the next read.
        let wait_first = self.poll_first && !self.nonblocking;
        RecvWait {
            dl,
            kernel_wait,
            yields,
            wait_first,
        }
    }

    /// Before a read: waits for a writer that has not written yet, or (pipes and FIFOs)
    /// yields or polls when the last read found nothing.
    fn wait_to_read(&mut self, w: &mut RecvWait) -> Result<()> {
        let Some(rd) = &self.rd else {
            return Err(self.only_sends());
        };
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
                wait_fd(rd.as_fd(), PollFlags::POLLIN, w.dl, &self.ops[1])?;
            }
        } else if w.wait_first {
            w.wait_first = false;
            let now = Instant::now();
            if w.yields > 0 && w.dl.is_none_or(|d| now < d) {
                w.yields -= 1;
                if !yield_cpu(now) {
                    // Nobody else wanted this cpu: the writer is elsewhere, sleep.
                    w.yields = 0;
                    self.yield_skip = YIELD_BACKOFF;
                    wait_fd(rd.as_fd(), PollFlags::POLLIN, w.dl, &self.ops[1])?;
                }
            } else {
                wait_fd(rd.as_fd(), PollFlags::POLLIN, w.dl, &self.ops[1])?;
            }
        }
        Ok(())
    }

    /// One read into the read buffer: a `recv` (waiting in the kernel only for the first
    /// read of a receive that may) or a `read`.
    fn read_once(&mut self, w: &mut RecvWait) -> nix::Result<usize> {
        let Some(rd) = &self.rd else {
            return Err(Errno::EBADF);
        };
        if self.socket {
            use nix::sys::socket::MsgFlags;
            let flags = if w.kernel_wait {
                MsgFlags::empty()
            } else {
                MsgFlags::MSG_DONTWAIT
            };
            w.kernel_wait = false;
            nix::sys::socket::recv(rd.as_raw_fd(), &mut self.rbuf, flags)
        } else {
            nix::unistd::read(rd.as_fd(), &mut self.rbuf)
        }
    }

    /// What a read's result means for the receive: `Ok` to go on (decode what came, or
    /// read again), or the error that ends it (end of stream, would block, timeout...).
    fn read_outcome(&mut self, r: nix::Result<usize>, w: &mut RecvWait) -> Result<()> {
        match r {
            Ok(0) => {
                let op = format!("{}: recv", self.name);
                match self.dec.finish() {
                    Ok(()) => Err(Error::Closed { op }),
                    Err(e) => Err(e.into()),
                }
            }
            Ok(n) => {
                self.rend = n;
                self.await_writer = false;
                if n == self.rbuf.len() {
                    // The writer is ahead: data is there when we come to read.
                    self.poll_first = false;
                }
                Ok(())
            }
            Err(Errno::EINTR) => Ok(()),
            Err(Errno::EAGAIN) => {
                if self.nonblocking {
                    // A partial frame stays in the decoder (and in `buf`, which the
                    // caller passes again).
                    return Err(Error::WouldBlock {
                        op: self.ops[1].clone(),
                    });
                }
                if !self.socket {
                    // Yield or poll at the top of the loop, and before the first
                    // read of the next receives.
                    self.poll_first = true;
                    w.wait_first = true;
                    return Ok(());
                }
                let Some(rd) = &self.rd else {
                    return Err(self.only_sends());
                };
                // After SO_RCVTIMEO expired this returns Timeout at once (or waits
                // for the rest of the deadline if the kernel woke early).
                wait_fd(rd.as_fd(), PollFlags::POLLIN, w.dl, &self.ops[1]).map(drop)
            }
            Err(Errno::ECONNRESET) => Err(Error::Closed {
                op: format!("{}: recv", self.name),
            }),
            Err(e) => Err(Error::sys(format!("{}: recv", self.name), e)),
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
        // First the rest of an earlier frame; while it cannot go out, this message is
        // refused whole.
        if !self.pending.is_empty() {
            let (w, err) = write_some(wr.as_fd(), &[&self.pending], self.sink, dl, &self.ops[0]);
            self.pending.drain(..w);
            if let Some(e) = err {
                return Err(e.would_block_if(self.nonblocking));
            }
        }
        let (w, err) = write_some(wr.as_fd(), &[&header, msg], self.sink, dl, &self.ops[0]);
        match err {
            None => Ok(()),
            // Nothing went out: the message is refused, the stream intact.
            Some(e) if w == 0 => Err(e.would_block_if(self.nonblocking)),
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
        if self.rd.is_none() {
            return Err(self.only_sends());
        }
        let mut w = self.recv_wait();
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
            self.wait_to_read(&mut w)?;
            let r = self.read_once(&mut w);
            self.read_outcome(r, &mut w)?;
        }
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        if self.socket
            && let Some(rd) = &self.rd
        {
            set_recv_timeout(rd.as_fd(), timeout, &self.name)?;
        }
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
        let (w, err) = write_some(wr.as_fd(), &[&self.pending], self.sink, dl, &self.ops[0]);
        self.pending.drain(..w);
        err.map_or(Ok(()), Err)
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        // Pipes and FIFOs are always O_NONBLOCK and sockets always read and write with
        // MSG_DONTWAIT in this mode: the mode only decides whether a would-be wait
        // happens or is reported.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    const MAX: usize = frame::DEFAULT_MAX_FRAME;

    /// A framed socket end, and the raw other end of the pair.
    fn socket_pair() -> (FramedStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        let r = a.try_clone().unwrap();
        let end = FramedStream::new("test", Some(OwnedFd::from(r)), Some(OwnedFd::from(a)), MAX)
            .unwrap()
            .socket()
            .unwrap();
        (end, b)
    }

    fn frame_of(msg: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        frame::encode(msg, MAX, &mut f).unwrap();
        f
    }

    #[test]
    fn socket_recv_times_out_within_bounds() {
        let (mut end, _other) = socket_pair();
        end.set_timeout(Some(Duration::from_millis(50))).unwrap();
        let t = Instant::now();
        let mut buf = Vec::new();
        assert!(matches!(end.recv(&mut buf), Err(Error::Timeout { .. })));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(45), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[test]
    fn socket_zero_and_huge_timeouts() {
        let (mut end, mut other) = socket_pair();
        let mut buf = Vec::new();
        end.set_timeout(Some(Duration::ZERO)).unwrap();
        let t = Instant::now();
        assert!(matches!(end.recv(&mut buf), Err(Error::Timeout { .. })));
        assert!(t.elapsed() < Duration::from_secs(1));
        // Too large for an Instant or a timeval: waits forever, never panics.
        end.set_timeout(Some(Duration::MAX)).unwrap();
        other.write_all(&frame_of(b"late")).unwrap();
        assert_eq!(end.recv(&mut buf).unwrap(), 4);
        assert_eq!(buf, b"late");
    }

    #[test]
    fn socket_frame_in_two_pieces_arrives_whole() {
        let (mut end, mut other) = socket_pair();
        end.set_timeout(Some(Duration::from_secs(5))).unwrap();
        let f = frame_of(&[7u8; 100]);
        other.write_all(&f[..30]).unwrap();
        let rest = f[30..].to_vec();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            other.write_all(&rest).unwrap();
            other
        });
        let mut buf = Vec::new();
        assert_eq!(end.recv(&mut buf).unwrap(), 100);
        assert_eq!(buf, [7u8; 100]);
        drop(writer.join().unwrap());
        assert!(matches!(end.recv(&mut buf), Err(Error::Closed { .. })));
    }

    #[test]
    fn socket_torn_frame_times_out_by_the_deadline() {
        // The first read takes part of a frame; the rest never comes: the call still
        // ends at its deadline (the later reads wait in poll, for what is left).
        let (mut end, mut other) = socket_pair();
        end.set_timeout(Some(Duration::from_millis(100))).unwrap();
        let f = frame_of(&[1u8; 50]);
        other.write_all(&f[..20]).unwrap();
        let t = Instant::now();
        let mut buf = Vec::new();
        assert!(matches!(end.recv(&mut buf), Err(Error::Timeout { .. })));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn socket_nonblocking_mode_would_block() {
        let (mut end, mut other) = socket_pair();
        end.set_timeout(Some(Duration::from_secs(5))).unwrap();
        end.set_nonblocking(true).unwrap();
        let mut buf = Vec::new();
        let t = Instant::now();
        assert!(matches!(end.recv(&mut buf), Err(Error::WouldBlock { .. })));
        assert!(t.elapsed() < Duration::from_secs(1));
        other.write_all(&frame_of(b"now")).unwrap();
        assert_eq!(end.recv(&mut buf).unwrap(), 3);
        end.send(b"back").unwrap();
        end.set_nonblocking(false).unwrap();
        let mut back = FramedStream::new(
            "raw",
            Some(OwnedFd::from(other.try_clone().unwrap())),
            None,
            MAX,
        )
        .unwrap();
        back.set_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(back.recv(&mut buf).unwrap(), 4);
        assert_eq!(buf, b"back");
    }

    /// Two threads on one cpu bounce messages over a pipe pair: the receives that yield
    /// the cpu to the writer (rather than sleeping in `poll`) get every message, in
    /// order, and a receive with no writer still times out.
    #[cfg(target_os = "linux")]
    #[test]
    fn pipe_ping_pong_on_one_cpu_keeps_order() {
        use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
        use nix::unistd::Pid;
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let cpu = (0..CpuSet::count()).find(|&c| allowed.is_set(c).unwrap_or(false));
        let pin = move || {
            let mut one = CpuSet::new();
            one.set(cpu.unwrap()).unwrap();
            sched_setaffinity(Pid::from_raw(0), &one).unwrap();
        };
        let (r1, w1) = pipe_cloexec("test").unwrap();
        let (r2, w2) = pipe_cloexec("test").unwrap();
        let mut a_tx = FramedStream::new("a", None, Some(w1), MAX).unwrap();
        let mut a_rx = FramedStream::new("a", Some(r2), None, MAX).unwrap();
        let mut b_rx = FramedStream::new("b", Some(r1), None, MAX).unwrap();
        let mut b_tx = FramedStream::new("b", None, Some(w2), MAX).unwrap();
        for e in [&mut a_rx, &mut b_rx] {
            e.set_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        const N: u32 = 2000;
        let echo = std::thread::spawn(move || {
            pin();
            let mut buf = Vec::new();
            for _ in 0..N {
                let n = b_rx.recv(&mut buf).unwrap();
                b_tx.send(&buf[..n]).unwrap();
            }
        });
        pin();
        let mut buf = Vec::new();
        for i in 0..N {
            a_tx.send(&i.to_le_bytes()).unwrap();
            assert_eq!(a_rx.recv(&mut buf).unwrap(), 4);
            assert_eq!(buf, i.to_le_bytes(), "round trip {i}");
        }
        echo.join().unwrap();
        a_rx.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(a_rx.recv(&mut buf), Err(Error::Closed { .. })));
        let (r, _w) = pipe_cloexec("test").unwrap();
        let mut idle = FramedStream::new("idle", Some(r), None, MAX).unwrap();
        idle.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(idle.recv(&mut buf), Err(Error::Timeout { .. })));
    }

    #[test]
    fn pipe_polls_first_after_an_empty_read_and_still_times_out() {
        let (r, w) = pipe_cloexec("test").unwrap();
        let mut rx = FramedStream::new("test", Some(r), None, MAX).unwrap();
        let mut tx = FramedStream::new("test", None, Some(w), MAX).unwrap();
        rx.set_timeout(Some(Duration::from_millis(30))).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));
        assert!(rx.poll_first);
        tx.send(b"one").unwrap();
        tx.send(b"two").unwrap();
        assert_eq!(rx.recv(&mut buf).unwrap(), 3);
        assert_eq!(rx.recv(&mut buf).unwrap(), 3);
        assert_eq!(buf, b"two");
        let t = Instant::now();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));
        assert!(t.elapsed() >= Duration::from_millis(25));
        rx.set_nonblocking(true).unwrap();
        assert!(matches!(rx.recv(&mut buf), Err(Error::WouldBlock { .. })));
        drop(tx);
        rx.set_nonblocking(false).unwrap();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Closed { .. })));
    }
}
