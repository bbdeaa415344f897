//! Audits tokio's Unix IPC types (tokio 1.54.1, features `net`, `rt`, `time`), with the
//! peer in another process: `cargo run --release --example tokio_unix [-- --cases 16]`.
//!
//! Three transports: `tokio-uds-stream` (`tokio::net::UnixStream::pair`, framed by this
//! crate's codec: a stream has no boundaries), `tokio-uds-dgram`
//! (`tokio::net::UnixDatagram::pair`) and `tokio-pipe` (`tokio::net::unix::pipe::pipe`,
//! framed, one way). The peer inherits its end and rebuilds it with `from_std` (after
//! `set_nonblocking(true)`, as `UnixStream::from_std` asks) or `pipe::Sender::from_owned_fd`.
//!
//! The adapter layer for an async crate: each end owns a current-thread runtime and drives
//! tokio's own readiness futures (`readable()`, `writable()`) under `tokio::time::timeout`,
//! then tokio's `try_read` / `try_write` / `try_send` / `try_recv`; every byte moves through
//! tokio's calls. A stream that took part of a frame before the deadline keeps the rest and
//! writes it first on the next send or flush (the `Endpoint::flush` contract).

mod common;

use std::future::Future;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipc_audit::frame::{self, DEFAULT_MAX_FRAME, Decoder, Step};
use ipc_audit::transport::{
    Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd, Rendezvous,
    Transport,
};
use ipc_audit::{Error, Result};
use tokio::net::unix::pipe;
use tokio::net::{UnixDatagram, UnixStream};
use tokio::runtime::Runtime;

/// The adapter's datagram limit (tokio documents none; the socket's send buffer is the
/// kernel's).
const DGRAM_MAX: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stream,
    Dgram,
    Pipe,
}

struct Tokio(Kind);

enum Io {
    Stream(UnixStream),
    Dgram(UnixDatagram),
    PipeTx(pipe::Sender),
    PipeRx(pipe::Receiver),
}

struct End {
    name: &'static str,
    rt: Runtime,
    io: Io,
    max: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
    dec: Decoder,
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Frame bytes accepted by a send but not written yet.
    pending: Vec<u8>,
    ppos: usize,
    wbuf: Vec<u8>,
}

fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("tokio: build a current-thread runtime", e))
}

impl End {
    fn new(name: &'static str, rt: Runtime, io: Io, max: usize) -> Self {
        End {
            name,
            rt,
            io,
            max,
            timeout: None,
            nonblocking: false,
            dec: Decoder::new(max),
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rend: 0,
            pending: Vec::new(),
            ppos: 0,
            wbuf: Vec::new(),
        }
    }

    fn err(&self, op: &str, e: std::io::Error) -> Error {
        let t = if self.nonblocking {
            Some(Duration::ZERO)
        } else {
            self.timeout
        };
        common::io_error(self.name, op, e, t)
    }

    /// Waits for `ready` until `deadline`: `WouldBlock` at once when nonblocking.
    fn wait<F: Future<Output = std::io::Result<()>>>(
        rt: &Runtime,
        name: &str,
        op: &str,
        ready: F,
        nonblocking: bool,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if nonblocking {
            // tokio's `try_*` calls answer from the readiness the reactor last saw: drive
            // it once without waiting, so that "would block" is the kernel's answer.
            let once = rt.block_on(async { tokio::time::timeout(Duration::ZERO, ready).await });
            return match once {
                Ok(r) => r.map_err(|e| Error::io(format!("{name}: wait for {op}"), e)),
                Err(_) => Err(Error::WouldBlock {
                    op: format!("{name}: {op}"),
                }),
            };
        }
        let timed_out = || Error::Timeout {
            op: format!("{name}: {op}"),
            after: timeout.unwrap_or_default(),
        };
        let r = match deadline {
            None => rt.block_on(ready),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(timed_out());
                }
                rt.block_on(async { tokio::time::timeout(left, ready).await })
                    .map_err(|_| timed_out())?
            }
        };
        r.map_err(|e| Error::io(format!("{name}: wait for {op}"), e))
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    /// One nonblocking write of `buf` on a byte stream.
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.io {
            Io::Stream(s) => s.try_write(buf),
            Io::PipeTx(p) => p.try_write(buf),
            _ => Err(ErrorKind::Unsupported.into()),
        }
    }

    fn wait_writable(&self, deadline: Option<Instant>) -> Result<()> {
        let (rt, name, nb, t) = (&self.rt, self.name, self.nonblocking, self.timeout);
        match &self.io {
            Io::Stream(s) => Self::wait(rt, name, "send", s.writable(), nb, deadline, t),
            Io::PipeTx(p) => Self::wait(rt, name, "send", p.writable(), nb, deadline, t),
            Io::Dgram(d) => Self::wait(rt, name, "send", d.writable(), nb, deadline, t),
            Io::PipeRx(_) => Err(Error::Unsupported(format!(
                "{name}: this end only receives"
            ))),
        }
    }

    fn wait_readable(&self, deadline: Option<Instant>) -> Result<()> {
        let (rt, name, nb, t) = (&self.rt, self.name, self.nonblocking, self.timeout);
        match &self.io {
            Io::Stream(s) => Self::wait(rt, name, "recv", s.readable(), nb, deadline, t),
            Io::PipeRx(p) => Self::wait(rt, name, "recv", p.readable(), nb, deadline, t),
            Io::Dgram(d) => Self::wait(rt, name, "recv", d.readable(), nb, deadline, t),
            Io::PipeTx(_) => Err(Error::Unsupported(format!("{name}: this end only sends"))),
        }
    }

    /// Writes the pending rest of earlier frames, until `deadline`.
    fn write_pending(&mut self, deadline: Option<Instant>) -> Result<()> {
        while self.ppos < self.pending.len() {
            match self.try_write(&self.pending[self.ppos..]) {
                Ok(n) => self.ppos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.wait_writable(deadline)?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err("send", e)),
            }
        }
        self.pending.clear();
        self.ppos = 0;
        Ok(())
    }

    fn send_framed(&mut self, msg: &[u8]) -> Result<()> {
        let deadline = self.deadline();
        self.write_pending(deadline)?;
        self.wbuf.clear();
        frame::encode(msg, self.max, &mut self.wbuf)?;
        let mut done = 0;
        while done < self.wbuf.len() {
            match self.try_write(&self.wbuf[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => match self.wait_writable(deadline) {
                    Ok(()) => {}
                    // Nothing of this frame went out: the message is refused.
                    Err(e) if done == 0 => return Err(e),
                    // Part of it did: it is accepted, its rest goes first next time.
                    Err(_) => break,
                },
                Err(e) => return Err(self.err("send", e)),
            }
        }
        if done < self.wbuf.len() {
            self.pending = self.wbuf[done..].to_vec();
            self.ppos = 0;
        }
        Ok(())
    }

    fn recv_framed(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
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
            let r = match &self.io {
                Io::Stream(s) => s.try_read(&mut self.rbuf),
                Io::PipeRx(p) => p.try_read(&mut self.rbuf),
                _ => Err(ErrorKind::Unsupported.into()),
            };
            match r {
                Ok(0) => {
                    return match self.dec.finish() {
                        Ok(()) => Err(Error::Closed {
                            op: format!("{}: recv", self.name),
                        }),
                        Err(e) => Err(e.into()),
                    };
                }
                Ok(n) => self.rend = n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.wait_readable(deadline)?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err("recv", e)),
            }
        }
    }

    fn send_dgram(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        let deadline = self.deadline();
        loop {
            let Io::Dgram(d) = &self.io else {
                unreachable!("a datagram end")
            };
            match d.try_send(msg) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.wait_writable(deadline)?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err("send", e)),
            }
        }
    }

    fn recv_dgram(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let deadline = self.deadline();
        buf.resize(self.max + 1, 0);
        loop {
            let Io::Dgram(d) = &self.io else {
                unreachable!("a datagram end")
            };
            match d.try_recv(buf) {
                Ok(n) if n > self.max => {
                    return Err(Error::Truncated {
                        buf: self.max,
                        len: None,
                    });
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.wait_readable(deadline)?,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err("recv", e)),
            }
        }
    }
}

impl Endpoint for End {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        match self.io {
            Io::Dgram(_) => self.send_dgram(msg),
            Io::PipeRx(_) => Err(Error::Unsupported(format!(
                "{}: this end only receives",
                self.name
            ))),
            _ => self.send_framed(msg),
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        match self.io {
            Io::Dgram(_) => self.recv_dgram(buf),
            Io::PipeTx(_) => Err(Error::Unsupported(format!(
                "{}: this end only sends",
                self.name
            ))),
            _ => self.recv_framed(buf),
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
        self.write_pending(deadline)
    }
}

impl Drop for End {
    fn drop(&mut self) {
        // The rest of an accepted frame goes out before the end closes (bounded).
        if self.ppos < self.pending.len() {
            self.nonblocking = false;
            let _ = self.write_pending(Some(Instant::now() + Duration::from_secs(1)));
        }
    }
}

impl Transport for Tokio {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Stream => "tokio-uds-stream",
            Kind::Dgram => "tokio-uds-dgram",
            Kind::Pipe => "tokio-pipe",
        }
    }

    fn guarantees(&self) -> Guarantees {
        let (boundaries, max, duplex) = match self.0 {
            // `UnixStream`: "A structure representing a connected Unix socket", read and
            // written as a byte stream (`try_read`, `try_write`): the adapter frames it.
            Kind::Stream => (Boundaries::Framed, DEFAULT_MAX_FRAME, true),
            // `UnixDatagram`: "An I/O object representing a Unix datagram socket";
            // `recv`: "Receives data from the socket", one datagram per call.
            Kind::Dgram => (Boundaries::Native, DGRAM_MAX, true),
            // `pipe`: "Creates a new anonymous Unix pipe", a one-way byte stream.
            Kind::Pipe => (Boundaries::Framed, DEFAULT_MAX_FRAME, false),
        };
        Guarantees {
            carries_data: true,
            boundaries,
            // A stream delivers its bytes in order; tokio promises nothing about the
            // order or loss of datagrams, so none is declared for them.
            ordering: if self.0 == Kind::Dgram {
                Ordering::None
            } else {
                Ordering::Fifo
            },
            reliable: self.0 != Kind::Dgram,
            max_message: max,
            duplex,
            // "a pair of anonymous Unix sockets can be created with `UnixStream::pair`";
            // "Creates a new anonymous Unix pipe": reached only by inheriting a descriptor.
            access: Access::Inherited,
            rendezvous: Rendezvous::Inherited,
            platforms: common::platforms(&["Linux", "FreeBSD", "macOS"]),
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let rt = runtime()?;
        let name = self.name();
        let io = |op: &str, e| Error::io(format!("{name}: {op}"), e);
        let (local, peer, max): (Io, OwnedFd, usize) = {
            let _enter = rt.enter();
            match self.0 {
                Kind::Stream => {
                    let (a, b) = UnixStream::pair().map_err(|e| io("pair", e))?;
                    let b = b.into_std().map_err(|e| io("into_std", e))?;
                    (
                        Io::Stream(a),
                        b.into(),
                        cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME),
                    )
                }
                Kind::Dgram => {
                    let (a, b) = UnixDatagram::pair().map_err(|e| io("pair", e))?;
                    let b = b.into_std().map_err(|e| io("into_std", e))?;
                    (Io::Dgram(a), b.into(), cfg.max_message.unwrap_or(DGRAM_MAX))
                }
                Kind::Pipe => {
                    let (tx, rx) = pipe::pipe().map_err(|e| io("pipe", e))?;
                    let tx = tx
                        .into_blocking_fd()
                        .map_err(|e| io("into_blocking_fd", e))?;
                    (
                        Io::PipeRx(rx),
                        tx,
                        cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME),
                    )
                }
            }
        };
        Ok(Link {
            local: Box::new(End::new(name, rt, local, max)),
            peer: PeerEnd {
                fds: vec![peer],
                info: max.to_string(),
            },
            guard: None,
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let name = self.name();
        let max: usize = peer
            .info
            .parse()
            .map_err(|_| Error::Protocol(format!("{name}: bad peer info {:?}", peer.info)))?;
        let fd = peer
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol(format!("{name}: no descriptor")))?;
        let rt = runtime()?;
        let io = |op: &str, e| Error::io(format!("{name}: {op}"), e);
        let end = {
            let _enter = rt.enter();
            match self.0 {
                Kind::Stream => {
                    let s = std::os::unix::net::UnixStream::from(fd);
                    s.set_nonblocking(true)
                        .map_err(|e| io("set_nonblocking", e))?;
                    Io::Stream(UnixStream::from_std(s).map_err(|e| io("from_std", e))?)
                }
                Kind::Dgram => {
                    let s = std::os::unix::net::UnixDatagram::from(fd);
                    s.set_nonblocking(true)
                        .map_err(|e| io("set_nonblocking", e))?;
                    Io::Dgram(UnixDatagram::from_std(s).map_err(|e| io("from_std", e))?)
                }
                Kind::Pipe => {
                    Io::PipeTx(pipe::Sender::from_owned_fd(fd).map_err(|e| io("from_owned_fd", e))?)
                }
            }
        };
        Ok(Box::new(End::new(name, rt, end, max)))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[
        &Tokio(Kind::Stream),
        &Tokio(Kind::Dgram),
        &Tokio(Kind::Pipe),
    ])
}
