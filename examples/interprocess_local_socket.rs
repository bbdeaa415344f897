//! Audits the local sockets of the `interprocess` crate (2.x), with the peer in another
//! process: `cargo run --release --example interprocess_local_socket [-- --cases 16]`.
//!
//! On Linux a local socket with a file-path name is a Unix stream socket bound to that
//! path. `interprocess` documents that it "never inserts its own message framing", so the
//! adapter restores message boundaries with this crate's frame codec; that the listener's
//! `mode()` is "applied to the socket file" and authenticates clients by its write bits;
//! and that `peer_creds()` gives the peer's credentials. Those are the promises declared
//! below. The peer end connects and sends; the local end accepts one connection and
//! receives.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use interprocess::local_socket::prelude::*;
use interprocess::local_socket::{GenericFilePath, ListenerNonblockingMode, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use ipc_audit::frame::{self, DEFAULT_MAX_FRAME, Decoder, Step};
use ipc_audit::transport::{
    Access, Boundaries, Config, Credentials, Endpoint, Guarantees, Link, Ordering, PeerEnd,
    Rendezvous, Transport,
};
use ipc_audit::{Error, Result};
use nix::poll::PollFlags;

const NAME: &str = "interprocess-local-socket";

/// `interprocess::local_socket` with a file-path name, framed.
struct LocalSocket;

/// The error for `op`, with timeouts and closures told apart.
fn io_error(op: &str, e: std::io::Error, timeout: Option<Duration>) -> Error {
    let op = format!("{NAME}: {op}");
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout {
            op,
            after: timeout.unwrap_or_default(),
        },
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => Error::Closed { op },
        _ => Error::io(op, e),
    }
}

/// A connected stream, framed.
struct Framed {
    stream: LocalSocketStream,
    max: usize,
    timeout: Option<Duration>,
    dec: Decoder,
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    wbuf: Vec<u8>,
    /// The rest of a frame whose first bytes went out before a send timed out: it goes
    /// out before the next frame (a frame cut short would garble the stream).
    pending: Vec<u8>,
}

impl Framed {
    fn new(stream: LocalSocketStream, max: usize) -> Self {
        Framed {
            stream,
            max,
            timeout: None,
            dec: Decoder::new(max),
            rbuf: vec![0; 64 * 1024],
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    /// After EINTR: waits in `poll` for `ev` for what is left of `deadline`, so that
    /// signals cannot stretch a wait (a retried `read` or `write` would start the
    /// socket's whole timeout again).
    fn wait_after_eintr(&self, ev: PollFlags, op: &str, deadline: Option<Instant>) -> Result<()> {
        let LocalSocketStream::UdSocket(s) = &self.stream;
        wait_fd(s.as_fd(), ev, op, deadline, self.timeout)
    }

    /// Writes `buf` with interprocess's own `write`; returns how far it got when a send
    /// timed out after some bytes went, the error when none did.
    fn write_some(&mut self, buf: &[u8], deadline: Option<Instant>) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match (&self.stream).write(&buf[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    if let Err(e) = self.wait_after_eintr(PollFlags::POLLOUT, "send", deadline) {
                        return if done == 0 { Err(e) } else { Ok(done) };
                    }
                }
                Err(e)
                    if done > 0
                        && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Ok(done);
                }
                Err(e) => return Err(io_error("send", e, self.timeout)),
            }
        }
        Ok(done)
    }

    /// Sends the rest of a frame begun earlier; what does not go out stays pending.
    fn write_pending(&mut self, deadline: Option<Instant>) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        let r = self.write_some(&pending, deadline);
        let (rest, r) = common::keep_rest(pending, r, NAME, self.timeout);
        self.pending = rest;
        r
    }

    fn credentials(&self) -> Option<Credentials> {
        let c = self.stream.peer_creds().ok()?;
        Some(Credentials {
            pid: u32::try_from(c.pid()?).ok()?,
            uid: c.euid()?,
            gid: c.egid()?,
        })
    }
}

impl Endpoint for Framed {
    /// interprocess's own `write`: what it does on a closed peer is what is audited. A
    /// frame of which some bytes went out is accepted and its rest kept for later
    /// (`write_all` would lose how far it got).
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let deadline = self.deadline();
        if !self.pending.is_empty() {
            self.write_pending(deadline)?;
        }
        let mut wbuf = std::mem::take(&mut self.wbuf);
        wbuf.clear();
        let r = frame::encode(msg, self.max, &mut wbuf)
            .map_err(Error::from)
            .and_then(|()| {
                let done = self.write_some(&wbuf, deadline)?;
                if done < wbuf.len() {
                    self.pending = wbuf[done..].to_vec();
                }
                Ok(())
            });
        self.wbuf = wbuf;
        r
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let deadline = self.deadline();
        self.write_pending(deadline)
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
            match (&self.stream).read(&mut self.rbuf) {
                Ok(0) => {
                    return match self.dec.finish() {
                        Ok(()) => Err(Error::Closed {
                            op: format!("{NAME}: recv"),
                        }),
                        Err(e) => Err(e.into()),
                    };
                }
                Ok(n) => self.rend = n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    self.wait_after_eintr(PollFlags::POLLIN, "recv", deadline)?
                }
                Err(e) => return Err(io_error("recv", e, self.timeout)),
            }
        }
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        // The socket refuses a zero timeout; the shortest one it takes means "do not wait".
        let t = timeout.map(|d| d.max(Duration::from_micros(1)));
        self.stream
            .set_recv_timeout(t)
            .and_then(|()| self.stream.set_send_timeout(t))
            .map_err(|e| io_error("set timeout", e, t))?;
        self.timeout = timeout;
        Ok(())
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        self.credentials()
    }
}

impl Drop for Framed {
    /// The rest of an accepted frame: a bounded last try.
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.stream.set_send_timeout(Some(Duration::from_secs(1)));
            let _ = self.write_pending(Some(Instant::now() + Duration::from_secs(1)));
        }
    }
}

/// The listening end: accepts its one peer on first use, within the timeout.
enum Local {
    Waiting {
        listener: LocalSocketListener,
        max: usize,
        timeout: Option<Duration>,
        allow: Option<Vec<u32>>,
    },
    Connected(Framed),
}

impl Local {
    fn stream(&mut self) -> Result<&mut Framed> {
        if let Local::Waiting {
            listener,
            max,
            timeout,
            allow,
        } = self
        {
            let deadline = timeout.map(|t| Instant::now() + t);
            let stream = loop {
                match listener.accept() {
                    Ok(s) => break s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        wait_readable(listener, deadline, *timeout)?
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_error("accept", e, *timeout)),
                }
            };
            let mut f = Framed::new(stream, *max);
            if let Some(allow) = allow {
                let uid = f.credentials().map(|c| c.uid);
                if !uid.is_some_and(|u| allow.contains(&u)) {
                    // Dropping `f` closes the connection: the peer sees it refused.
                    return Err(Error::invalid(
                        format!("{NAME}: peer uid not in the allow-list {allow:?}"),
                        uid.map_or("unknown".into(), |u| u.to_string()),
                    ));
                }
            }
            f.set_timeout(*timeout)?;
            *self = Local::Connected(f);
        }
        match self {
            Local::Connected(f) => Ok(f),
            Local::Waiting { .. } => unreachable!("connected just above"),
        }
    }
}

/// Waits until the listener has a connection to accept, or the deadline.
fn wait_readable(
    listener: &LocalSocketListener,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> Result<()> {
    let LocalSocketListener::UdSocket(l) = listener;
    wait_fd(l.as_fd(), PollFlags::POLLIN, "accept", deadline, timeout)
}

/// Waits in `poll` until `fd` is ready for `ev`, or the deadline: [`Error::Timeout`]
/// past it (an EINTR of `poll` itself returns, and the caller tries again).
fn wait_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    ev: PollFlags,
    op: &str,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> Result<()> {
    use nix::poll::{PollFd, PollTimeout, poll};
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
    match poll(&mut [PollFd::new(fd, ev)], ms) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(Error::sys(format!("{NAME}: poll"), e)),
    }
}

impl Endpoint for Local {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.stream()?.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.stream()?.recv(buf)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        match self {
            Local::Waiting { timeout, .. } => {
                *timeout = t;
                Ok(())
            }
            Local::Connected(f) => f.set_timeout(t),
        }
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        match self {
            Local::Waiting { .. } => None,
            Local::Connected(f) => f.credentials(),
        }
    }
}

/// A private directory for one socket path, `ipc-audit-interprocess-PID-N-*` under
/// `Config::dir` (or the system's temporary directory), mode 0711 (others may reach a name
/// in it, not list it); removed with its content on drop.
fn private_dir(cfg: &Config) -> Result<tempfile::TempDir> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, AtomicOrdering::Relaxed);
    let prefix = format!("ipc-audit-interprocess-{}-{n}-", std::process::id());
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    let dir = match &cfg.dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .map_err(|e| Error::io(format!("create a temporary directory {prefix}*"), e))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .map_err(|e| Error::io(format!("chmod 0711 {}", dir.path().display()), e))?;
    Ok(dir)
}

impl Transport for LocalSocket {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: DEFAULT_MAX_FRAME,
            duplex: true,
            access: Access::FileModeAndPeerCred,
            many_senders: None,
            rendezvous: Rendezvous::Named,
            platforms: vec![
                "Linux".into(),
                "FreeBSD".into(),
                "macOS".into(),
                "Windows".into(),
            ],
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        let dir = private_dir(cfg)?;
        let path: PathBuf = dir.path().join("sock");
        let name = path
            .as_path()
            .to_fs_name::<GenericFilePath>()
            .map_err(|e| Error::io(format!("{NAME}: name {}", path.display()), e))?;
        let listener = ListenerOptions::new()
            .name(name)
            .mode(cfg.mode)
            .nonblocking(ListenerNonblockingMode::Accept)
            .create_sync()
            .map_err(|e| Error::io(format!("{NAME}: listen on {}", path.display()), e))?;
        Ok(Link {
            local: Box::new(Local::Waiting {
                listener,
                max,
                timeout: None,
                allow: cfg.allow_uids.clone(),
            }),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {}", path.display()),
            },
            guard: Some(Box::new(dir)),
            path: Some(path),
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info));
        let (max, path) = peer.info.split_once(' ').ok_or_else(bad)?;
        let max: usize = max.parse().map_err(|_| bad())?;
        let name = path
            .to_fs_name::<GenericFilePath>()
            .map_err(|e| Error::io(format!("{NAME}: name {path}"), e))?;
        let stream = LocalSocketStream::connect(name)
            .map_err(|e| Error::io(format!("{NAME}: connect {path}"), e))?;
        Ok(Box::new(Framed::new(stream, max)))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[&LocalSocket])
}
