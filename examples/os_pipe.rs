//! Audits the pipes of the `os_pipe` crate (1.2.3), with the peer in another process:
//! `cargo run --release --example os_pipe [-- --cases 16]`.
//!
//! `os_pipe::pipe()` makes the pipe; the peer inherits the writing end and sends, the
//! local end reads. A pipe is a byte stream, so the adapter frames messages with this
//! crate's codec. `os_pipe` has blocking reads and writes only: to bound a wait the
//! adapter sets O_NONBLOCK on the descriptor (nix `fcntl`) and waits with `poll`; every
//! byte still goes through `os_pipe`'s `Read` and `Write`. A frame that was partly written
//! at the deadline keeps its rest for the next send or flush (the `Endpoint::flush`
//! contract).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipc_audit::frame::{self, DEFAULT_MAX_FRAME, Decoder, Step};
use ipc_audit::transport::{
    Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd, Rendezvous,
    Transport,
};
use ipc_audit::{Error, Result};
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use os_pipe::{PipeReader, PipeWriter};

const NAME: &str = "os-pipe";

struct OsPipe;

fn set_nonblock(fd: impl AsFd) -> Result<()> {
    let fl = fcntl(fd.as_fd(), FcntlArg::F_GETFL)
        .map_err(|e| Error::sys(format!("{NAME}: F_GETFL"), e))?;
    let fl = OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK;
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(fl))
        .map_err(|e| Error::sys(format!("{NAME}: F_SETFL"), e))?;
    Ok(())
}

/// Waits for `events` on `fd` until `deadline` (forever without one).
fn wait(
    fd: impl AsFd,
    events: PollFlags,
    op: &str,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> Result<()> {
    let ms = match deadline {
        None => PollTimeout::NONE,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    op: format!("{NAME}: {op}"),
                    after: timeout.unwrap_or_default(),
                });
            }
            PollTimeout::try_from(left.as_millis().max(1)).unwrap_or(PollTimeout::MAX)
        }
    };
    match poll(&mut [PollFd::new(fd.as_fd(), events)], ms) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(Error::sys(format!("{NAME}: poll"), e)),
    }
}

enum Side {
    Rx(PipeReader),
    Tx(PipeWriter),
}

struct End {
    side: Side,
    max: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
    dec: Decoder,
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    pending: Vec<u8>,
    wbuf: Vec<u8>,
}

impl End {
    fn new(side: Side, max: usize) -> Self {
        End {
            side,
            max,
            timeout: None,
            nonblocking: false,
            dec: Decoder::new(max),
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rend: 0,
            pending: Vec::new(),
            wbuf: Vec::new(),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    fn would_block(&self, op: &str, deadline: Option<Instant>) -> Result<()> {
        if self.nonblocking {
            return Err(Error::WouldBlock {
                op: format!("{NAME}: {op}"),
            });
        }
        let (fd, ev) = match &self.side {
            Side::Rx(r) => (r.as_fd(), PollFlags::POLLIN),
            Side::Tx(w) => (w.as_fd(), PollFlags::POLLOUT),
        };
        wait(fd, ev, op, deadline, self.timeout)
    }

    /// Writes `buf` from `done`; returns how far it got by the deadline, or the error.
    fn write_from(
        &mut self,
        buf: &[u8],
        mut done: usize,
        deadline: Option<Instant>,
    ) -> Result<usize> {
        while done < buf.len() {
            let Side::Tx(w) = &mut self.side else {
                unreachable!("a writing end")
            };
            match w.write(&buf[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if let Err(e) = self.would_block("send", deadline) {
                        return if done == 0 { Err(e) } else { Ok(done) };
                    }
                }
                Err(e) => return Err(common::io_error(NAME, "send", e, self.timeout)),
            }
        }
        Ok(done)
    }

    fn write_pending(&mut self, deadline: Option<Instant>) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let r = self.write_from(&pending, 0, deadline);
        let (rest, r) = common::keep_rest(pending, r, NAME, self.timeout);
        self.pending = rest;
        r
    }
}

impl Endpoint for End {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if !matches!(self.side, Side::Tx(_)) {
            return Err(Error::Unsupported(format!(
                "{NAME}: this end only receives"
            )));
        }
        let deadline = self.deadline();
        if !self.pending.is_empty() {
            self.write_pending(deadline)?;
        }
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        frame::encode(msg, self.max, &mut wbuf)?;
        let r = self.write_from(&wbuf, 0, deadline);
        if let Ok(done) = r
            && done < wbuf.len()
        {
            self.pending = wbuf[done..].to_vec();
        }
        self.wbuf = wbuf;
        r.map(drop)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let deadline = self.deadline();
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
            let Side::Rx(r) = &mut self.side else {
                return Err(Error::Unsupported(format!("{NAME}: this end only sends")));
            };
            match r.read(&mut self.rbuf) {
                Ok(0) => {
                    return match self.dec.finish() {
                        Ok(()) => Err(Error::Closed {
                            op: format!("{NAME}: recv"),
                        }),
                        Err(e) => Err(e.into()),
                    };
                }
                Ok(n) => self.rend = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.would_block("recv", deadline)?
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(common::io_error(NAME, "recv", e, self.timeout)),
            }
        }
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        Ok(())
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.nonblocking = on;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let deadline = self.deadline();
        if self.pending.is_empty() {
            Ok(())
        } else {
            self.write_pending(deadline)
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.nonblocking = false;
            let _ = self.write_pending(Some(Instant::now() + Duration::from_secs(1)));
        }
    }
}

impl Transport for OsPipe {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            // A pipe is a byte stream ("like those from pipe on Linux"): framed here.
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            // "Pipe writes block until buffer space is available or all readers are
            // closed": nothing is dropped.
            reliable: true,
            max_message: DEFAULT_MAX_FRAME,
            duplex: false,
            // "a cross-platform library for opening OS pipes": anonymous, inherited.
            access: Access::Inherited,
            rendezvous: Rendezvous::Inherited,
            platforms: common::platforms(&["POSIX", "Windows"]),
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        let (r, w) = os_pipe::pipe().map_err(|e| Error::io(format!("{NAME}: pipe"), e))?;
        set_nonblock(&r)?;
        Ok(Link {
            local: Box::new(End::new(Side::Rx(r), max)),
            peer: PeerEnd {
                fds: vec![OwnedFd::from(w)],
                info: max.to_string(),
            },
            guard: None,
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let max: usize = peer
            .info
            .parse()
            .map_err(|_| Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info)))?;
        let fd = peer
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol(format!("{NAME}: no descriptor")))?;
        set_nonblock(&fd)?;
        Ok(Box::new(End::new(Side::Tx(PipeWriter::from(fd)), max)))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[&OsPipe])
}
