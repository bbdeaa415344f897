//! `sysv-mq`: a System V message queue (`msgget`), with message types.
//!
//! nix has no System V IPC: the four calls (`msgget`, `msgsnd`, `msgrcv`, `msgctl`) are
//! [`crate::sys::sysv`]'s.
//!
//! Waits: a System V queue has no descriptor to `poll` and no timed call, so a send to
//! a full queue or a receive from an empty one blocks in the kernel (`msgsnd`/`msgrcv`
//! without IPC_NOWAIT) and the endpoint's deadline is kept by a per-thread timer signal
//! ([`crate::sys::timer`]: SIGRTMIN + 14 interrupts the call at the deadline). No
//! polling: the waiting thread sleeps until the message, the room or the deadline. Only
//! when the thread can have no timer (RLIMIT_SIGPENDING used up when it is first
//! needed) does a wait fall back to retrying with IPC_NOWAIT and a sleep that grows from
//! 20 µs to 1 ms.

use std::ffi::{c_int, c_long};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::stream::deadline;
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::sys::sysv::{self as raw, MTYPE_LEN as MTYPE};
use crate::sys::timer;

const NAME: &str = "sysv-mq";

/// Message type of messages for the local end (sent by the peer).
pub const TO_LOCAL: c_long = 1;
/// Message type of messages for the peer (sent by the local end).
pub const TO_PEER: c_long = 2;

/// A System V message queue made with IPC_PRIVATE and mode 0600 (exact: the umask does
/// not apply to System V IPC), removed with IPC_RMID by the link's guard. Duplex over
/// one queue: messages of type [`TO_LOCAL`] go to the local end, [`TO_PEER`] to the
/// peer; both directions share the queue's byte budget (`msgmnb`). The largest message
/// is `msgmax` (and at most `msgmnb`), read from /proc/sys/kernel. A receiver cannot
/// tell that its peer died (the queue outlives it): it times out.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysvMq;

/// The system's limits, from /proc/sys/kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvLimits {
    /// Largest message (`msgmax`).
    pub msgmax: usize,
    /// Bytes a queue holds by default (`msgmnb`).
    pub msgmnb: usize,
}

impl SysvLimits {
    /// The largest message that can ever be sent on a new queue.
    pub fn max_message(&self) -> usize {
        self.msgmax.min(self.msgmnb)
    }
}

fn read_proc(path: &str) -> Result<usize> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("read {path}"), e))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Protocol(format!("{path}: not a number: {text:?}")))
}

/// Reads the limits.
///
/// # Errors
/// When /proc/sys/kernel cannot be read.
pub fn limits() -> Result<SysvLimits> {
    Ok(SysvLimits {
        msgmax: read_proc("/proc/sys/kernel/msgmax")?,
        msgmnb: read_proc("/proc/sys/kernel/msgmnb")?,
    })
}

/// Removes the queue (IPC_RMID) on drop, then its marker (see
/// [`crate::sys::reclaim`]: what a killed run leaves, the next run removes).
#[derive(Debug)]
pub struct QueueGuard {
    id: c_int,
    _marker: crate::sys::reclaim::SysvMarker,
}

impl QueueGuard {
    /// The queue's id.
    pub fn id(&self) -> i32 {
        self.id
    }
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        // A stale id only gives EINVAL.
        let _ = raw::msg_remove(self.id);
    }
}

/// The queue's status (IPC_STAT): needs read permission.
///
/// # Errors
/// The system error naming the queue.
pub fn stat(id: i32) -> Result<raw::MsqidDs> {
    raw::msg_stat(id).map_err(|e| Error::sys(format!("{NAME}: msgctl IPC_STAT {id}"), e))
}

/// One end of a System V queue.
#[derive(Debug)]
pub struct SysvEndpoint {
    id: c_int,
    max: usize,
    send_type: c_long,
    recv_type: c_long,
    timeout: Option<Duration>,
    buf: Vec<u8>,
    nonblocking: bool,
    /// "msgsnd to queue ID" and "msgrcv from queue ID", made once: the per-message paths
    /// do not allocate.
    ops: Box<[String; 2]>,
}

/// The fallback wait, without a timer: sleeps a little longer each time, up to 1 ms;
/// `Err(Timeout)` past the deadline.
fn backoff(step: &mut u32, dl: Option<Instant>, op: &str, started: Instant) -> Result<()> {
    if let Some(d) = dl
        && Instant::now() >= d
    {
        return Err(Error::Timeout {
            op: op.into(),
            after: started.elapsed(),
        });
    }
    let mut pause = Duration::from_micros(20u64 << (*step).min(6)).min(Duration::from_millis(1));
    if let Some(d) = dl {
        pause = pause.min(d.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(pause);
    *step += 1;
    Ok(())
}

fn timed_out(op: &str, started: Instant) -> Error {
    Error::Timeout {
        op: op.into(),
        after: started.elapsed(),
    }
}

/// Runs `call` (given `nowait`) as the endpoint waits: once with IPC_NOWAIT when
/// nonblocking, blocking until `dl` otherwise (bounded by the thread's timer, or by the
/// fallback's retries). EINTR from other signals is retried. Returns the call's last
/// result, or `Err(Timeout)` at the deadline.
fn waiting<T>(
    nonblocking: bool,
    dl: Option<Instant>,
    op: &str,
    mut call: impl FnMut(bool) -> nix::Result<T>,
) -> Result<nix::Result<T>> {
    let started = Instant::now();
    let retried = |call: &mut dyn FnMut() -> nix::Result<T>| loop {
        match call() {
            Err(Errno::EINTR) => {}
            r => return r,
        }
    };
    let Some(d) = dl.filter(|_| !nonblocking) else {
        return Ok(retried(&mut || call(nonblocking)));
    };
    match timer::bounded(d, || call(false)) {
        Some(Err(Errno::ETIMEDOUT)) => Err(timed_out(op, started)),
        Some(r) => Ok(r),
        None => {
            let mut step = 0;
            loop {
                match retried(&mut || call(true)) {
                    Err(Errno::EAGAIN | Errno::ENOMSG) => backoff(&mut step, dl, op, started)?,
                    r => return Ok(r),
                }
            }
        }
    }
}

impl SysvEndpoint {
    fn new(id: i32, max: usize, send_type: c_long, recv_type: c_long) -> Self {
        SysvEndpoint {
            id,
            max,
            send_type,
            recv_type,
            timeout: None,
            buf: Vec::new(),
            nonblocking: false,
            ops: Box::new([
                format!("{NAME}: msgsnd to queue {id}"),
                format!("{NAME}: msgrcv from queue {id}"),
            ]),
        }
    }

    /// The largest message.
    pub fn max_message(&self) -> usize {
        self.max
    }

    /// Receives one message of this end's type into a buffer of `cap` bytes (not the
    /// maximum), for checking how a short buffer is reported.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the message is longer than `cap` (E2BIG: the message
    /// stays queued), [`Error::Timeout`], [`Error::Closed`] when the queue was removed,
    /// or the system error.
    pub fn recv_capped(&mut self, out: &mut Vec<u8>, cap: usize) -> Result<usize> {
        let dl = deadline(self.timeout);
        let op = self.ops[1].as_str();
        self.buf.resize(MTYPE + cap, 0);
        let (id, buf, mtype) = (self.id, &mut self.buf, self.recv_type);
        // `buf` has MTYPE + cap bytes: msgrcv writes at most `cap` bytes of text.
        match waiting(self.nonblocking, dl, op, |nowait| {
            raw::msgrcv(id, buf, mtype, nowait)
        })? {
            Ok(n) => {
                out.clear();
                out.extend_from_slice(&self.buf[MTYPE..MTYPE + n]);
                Ok(n)
            }
            Err(Errno::ENOMSG | Errno::EAGAIN) => Err(Error::WouldBlock { op: op.into() }),
            Err(Errno::E2BIG) => Err(Error::Truncated {
                buf: cap,
                len: None,
            }),
            Err(Errno::EIDRM | Errno::EINVAL) => Err(Error::Closed { op: op.into() }),
            Err(e) => Err(Error::sys(op, e)),
        }
    }
}

impl Endpoint for SysvEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.send_type.to_ne_bytes());
        self.buf.extend_from_slice(msg);
        let dl = deadline(self.timeout);
        let op = self.ops[0].as_str();
        let (id, buf) = (self.id, &self.buf);
        // `buf` holds an mtype followed by the msg.len() bytes of text.
        match waiting(self.nonblocking, dl, op, |nowait| {
            raw::msgsnd(id, buf, nowait)
        })? {
            Ok(()) => Ok(()),
            Err(Errno::EAGAIN) => Err(Error::WouldBlock { op: op.into() }),
            Err(Errno::EIDRM) => Err(Error::Closed { op: op.into() }),
            // Removed queue, or a size over msgmax (checked above): tell which.
            Err(Errno::EINVAL) if !msg.is_empty() => match stat(self.id) {
                Err(_) => Err(Error::Closed { op: op.into() }),
                Ok(_) => Err(Error::TooLarge {
                    len: msg.len(),
                    max: self.max,
                }),
            },
            Err(Errno::EINVAL) => Err(Error::Closed { op: op.into() }),
            Err(e) => Err(Error::sys(op, e)),
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_capped(buf, self.max)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        self.nonblocking = nonblocking;
        Ok(())
    }
}

impl SysvMq {
    /// Opens a link and returns the local end as its concrete type, the peer's part
    /// (`"<id> <max>"`) and the guard that removes the queue.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a mode over 0o777 or a maximum over the kernel's (naming
    /// both); the system error otherwise.
    pub fn open_concrete(&self, cfg: &Config) -> Result<(SysvEndpoint, PeerEnd, QueueGuard)> {
        let lim = limits()?;
        let kmax = lim.max_message();
        let max = match cfg.max_message {
            None => kmax,
            Some(m) if m <= kmax => m,
            Some(m) => {
                return Err(Error::invalid(
                    format!(
                        "{NAME}: max_message must be at most {kmax} bytes \
                         (/proc/sys/kernel/msgmax {}, msgmnb {})",
                        lim.msgmax, lim.msgmnb
                    ),
                    m,
                ));
            }
        };
        if cfg.mode & !0o777 != 0 {
            return Err(Error::invalid(
                "mode must be within 0o777",
                format!("{:#o}", cfg.mode),
            ));
        }
        let id = raw::msgget_private(cfg.mode)
            .map_err(|e| Error::sys(format!("{NAME}: msgget IPC_PRIVATE"), e))?;
        let marker =
            crate::sys::reclaim::SysvMarker::new(id, &super::named::unique_name("ipc-audit-sysv"));
        let guard = QueueGuard {
            id,
            _marker: marker,
        };
        let end = SysvEndpoint::new(id, max, TO_PEER, TO_LOCAL);
        let peer = PeerEnd {
            fds: Vec::new(),
            info: format!("{id} {max}"),
        };
        Ok((end, peer, guard))
    }

    /// Rebuilds the peer's end as its concrete type.
    ///
    /// # Errors
    /// [`Error::Protocol`] on malformed info; the system error (EACCES, EINVAL) naming
    /// the queue when it cannot be reached.
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<SysvEndpoint> {
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info));
        let (id, max) = peer.info.split_once(' ').ok_or_else(bad)?;
        let id: i32 = id.parse().map_err(|_| bad())?;
        let max: usize = max.parse().map_err(|_| bad())?;
        // Fail now, naming the queue, if it is gone or not ours to read.
        stat(id)?;
        Ok(SysvEndpoint::new(id, max, TO_LOCAL, TO_PEER))
    }
}

impl Transport for SysvMq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: limits().map_or(8192, |l| l.max_message()),
            duplex: true,
            access: Access::FileMode,
            rendezvous: Rendezvous::Named,
            platforms: vec![
                "POSIX (XSI)".into(),
                "Linux".into(),
                "FreeBSD".into(),
                "macOS".into(),
            ],
            many_senders: Some(limits().map_or(8192, |l| l.max_message())),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (end, peer, guard) = self.open_concrete(cfg)?;
        Ok(Link {
            local: Box::new(end),
            peer,
            guard: Some(Box::new(guard)),
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.attach_concrete(peer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Option<Duration> = Some(Duration::from_secs(5));

    fn pair() -> (SysvEndpoint, SysvEndpoint, QueueGuard) {
        let (mut a, peer, g) = SysvMq.open_concrete(&Config::default()).unwrap();
        a.set_timeout(T).unwrap();
        let mut b = SysvMq.attach_concrete(peer).unwrap();
        b.set_timeout(T).unwrap();
        (a, b, g)
    }

    #[test]
    fn duplex_by_message_type() {
        let (mut a, mut b, _g) = pair();
        let mut buf = Vec::new();
        b.send(b"to local").unwrap();
        b.send(b"").unwrap();
        a.send(b"to peer").unwrap();
        // Each end only sees its own type, in order.
        assert_eq!(b.recv(&mut buf).unwrap(), 7);
        assert_eq!(buf, b"to peer");
        assert_eq!(a.recv(&mut buf).unwrap(), 8);
        assert_eq!(buf, b"to local");
        assert_eq!(a.recv(&mut buf).unwrap(), 0);
    }

    #[test]
    fn max_comes_from_proc() {
        let (a, b, _g) = pair();
        let max = limits().unwrap().max_message();
        assert_eq!((a.max_message(), b.max_message()), (max, max));
        assert_eq!(SysvMq.guarantees().max_message, max);
    }

    #[test]
    fn full_queue_times_out_and_loses_nothing() {
        let (mut a, mut b, _g) = pair();
        b.set_timeout(Some(Duration::from_millis(20))).unwrap();
        let msg = vec![7u8; 1000];
        let mut sent = 0;
        loop {
            match b.send(&msg) {
                Ok(()) => sent += 1,
                Err(Error::Timeout { .. }) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < 10_000, "the queue never filled");
        }
        assert_eq!(sent, limits().unwrap().msgmnb / 1000);
        let mut buf = Vec::new();
        for _ in 0..sent {
            assert_eq!(a.recv(&mut buf).unwrap(), 1000);
        }
        a.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(a.recv(&mut buf), Err(Error::Timeout { .. })));
    }

    #[test]
    fn mode_is_exact_and_guard_removes_the_queue() {
        for mode in [0o600, 0o640, 0o666] {
            let (a, peer, g) = SysvMq
                .open_concrete(&Config::default().with_mode(mode))
                .unwrap();
            let ds = stat(g.id()).unwrap();
            assert_eq!(ds.msg_perm.mode as u32 & 0o777, mode);
            let mut b = SysvMq.attach_concrete(peer).unwrap();
            let id = g.id();
            drop(g);
            assert!(stat(id).is_err(), "queue {id} still there");
            // A sender on a removed queue sees Closed; so does a receiver.
            assert!(matches!(b.send(b"x"), Err(Error::Closed { .. })));
            let mut a = a;
            let mut buf = Vec::new();
            assert!(matches!(a.recv(&mut buf), Err(Error::Closed { .. })));
        }
    }

    #[test]
    fn bad_info_and_missing_queue_are_named() {
        let e = SysvMq
            .attach(PeerEnd {
                fds: Vec::new(),
                info: "x".into(),
            })
            .err()
            .unwrap();
        assert!(matches!(e, Error::Protocol(_)), "{e}");
        let e = SysvMq
            .attach(PeerEnd {
                fds: Vec::new(),
                info: "2147483000 100".into(),
            })
            .err()
            .unwrap();
        assert!(e.to_string().contains("2147483000"), "{e}");
        let big = limits().unwrap().max_message() + 1;
        let e = SysvMq
            .open(&Config::default().with_max_message(big))
            .unwrap_err();
        assert!(e.to_string().contains(&big.to_string()), "{e}");
    }
}
