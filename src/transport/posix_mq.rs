//! `posix-mq`: a POSIX message queue (`mq_open`), with priorities.
//!
//! Waits: a receive waits in the kernel, in `mq_timedreceive` (the queue descriptor in
//! blocking mode, the endpoint's deadline as an absolute time, recomputed after EINTR):
//! one system call per message, as the method's floor does. A send, which waits only
//! on a full queue, tries `mq_send` on the queue opened O_NONBLOCK and then waits in
//! `poll` on the queue descriptor (on Linux an `mqd_t` is a descriptor). All through
//! nix (no raw call). An endpoint set nonblocking ([`MqEndpoint::set_nonblocking`])
//! does not wait at all: a full queue gives [`Error::WouldBlock`] and the message stays
//! with the caller; an empty one gives [`Error::WouldBlock`] too.

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::mqueue::{
    MQ_OFlag, MqAttr, MqdT, mq_getattr, mq_open, mq_receive, mq_remove_nonblock, mq_send,
    mq_set_nonblock, mq_timedreceive, mq_unlink,
};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

use super::named::{OwnerLock, unique_name};
use super::stream::{deadline, wait_fd};
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};

const NAME: &str = "posix-mq";

/// Longest queue name after the leading '/' (NAME_MAX).
pub const NAME_MAX: usize = 255;

/// Priorities are below this (MQ_PRIO_MAX on Linux).
pub const PRIO_MAX: u32 = 32_768;

/// A POSIX message queue made with a name unique per link (`/ipc-audit-<pid>-<n>`), mode
/// 0600 (exact: set again with `fchmod` after `mq_open`, which applies the umask), and
/// O_CLOEXEC. Depth and message size are the system's limits from /proc/sys/fs/mqueue.
/// One way: the peer sends, the local end receives. Higher priority first, FIFO within
/// a priority ([`MqEndpoint::send_with_priority`]); [`Endpoint::send`] uses priority 0.
/// The queue name is removed by the link's guard.
#[derive(Debug, Clone, Copy, Default)]
pub struct PosixMq;

/// The system's limits for queues made without privilege, from /proc/sys/fs/mqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqLimits {
    /// Largest queue depth (`msg_max`).
    pub msg_max: usize,
    /// Largest message size (`msgsize_max`).
    pub msgsize_max: usize,
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
/// When /proc/sys/fs/mqueue cannot be read.
pub fn limits() -> Result<MqLimits> {
    Ok(MqLimits {
        msg_max: read_proc("/proc/sys/fs/mqueue/msg_max")?,
        msgsize_max: read_proc("/proc/sys/fs/mqueue/msgsize_max")?,
    })
}

/// Checks a queue name: '/' then 1 to [`NAME_MAX`] bytes, none of them '/' or NUL.
///
/// # Errors
/// [`Error::Invalid`] naming the rule and the name.
pub fn validate_name(name: &str) -> Result<()> {
    let Some(rest) = name.strip_prefix('/') else {
        return Err(Error::invalid("queue name must start with '/'", name));
    };
    if rest.is_empty() {
        return Err(Error::invalid(
            "queue name must have a character after '/'",
            name,
        ));
    }
    if rest.contains('/') {
        return Err(Error::invalid(
            "queue name must not contain '/' after the first character",
            name,
        ));
    }
    if rest.contains('\0') {
        return Err(Error::invalid("queue name must not contain NUL", name));
    }
    if rest.len() > NAME_MAX {
        return Err(Error::invalid(
            format!(
                "queue name must be at most {NAME_MAX} bytes after '/' (NAME_MAX), it has {}",
                rest.len()
            ),
            name,
        ));
    }
    Ok(())
}

/// Removes a queue name on drop.
#[derive(Debug)]
pub struct QueueGuard {
    name: String,
    // Dropped after the queue is unlinked: the owner lock of a caller-chosen name.
    _lock: Option<OwnerLock>,
}

impl QueueGuard {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let _ = mq_unlink(self.name.as_str());
    }
}

/// One end of a POSIX message queue.
#[derive(Debug)]
pub struct MqEndpoint {
    name: String,
    mqd: Option<MqdT>,
    msgsize: usize,
    depth: usize,
    sends: bool,
    timeout: Option<Duration>,
    nonblocking: bool,
    /// Whether the queue descriptor is O_NONBLOCK now (a receive end switches it off
    /// to wait in `mq_timedreceive`, and back on when the endpoint is set nonblocking).
    fd_nonblock: bool,
    scratch: Vec<u8>,
    /// "send to NAME" and "receive from NAME", made once: the per-message paths do not
    /// allocate.
    ops: Box<[String; 2]>,
}

/// Creates a queue `name` (which must not exist) with `depth` messages of up to
/// `msgsize` bytes and exactly `mode`, and opens it for receiving. The guard removes the
/// name.
///
/// # Errors
/// [`Error::Invalid`] for a bad name, a depth of 0 or over `msg_max`, a message size of
/// 0 or over `msgsize_max`, or a mode over 0o777 (each naming the value and the limit);
/// the system error otherwise.
pub fn create(
    name: &str,
    depth: usize,
    msgsize: usize,
    mode: u32,
) -> Result<(MqEndpoint, QueueGuard)> {
    validate_name(name)?;
    let lim = limits()?;
    if depth == 0 || depth > lim.msg_max {
        return Err(Error::invalid(
            format!(
                "queue depth must be between 1 and {} (/proc/sys/fs/mqueue/msg_max)",
                lim.msg_max
            ),
            depth,
        ));
    }
    if msgsize == 0 || msgsize > lim.msgsize_max {
        return Err(Error::invalid(
            format!(
                "queue message size must be between 1 and {} bytes \
                 (/proc/sys/fs/mqueue/msgsize_max)",
                lim.msgsize_max
            ),
            msgsize,
        ));
    }
    if mode & !0o777 != 0 {
        return Err(Error::invalid(
            "mode must be within 0o777",
            format!("{mode:#o}"),
        ));
    }
    let attr = MqAttr::new(0, depth as _, msgsize as _, 0);
    let flags = MQ_OFlag::O_RDONLY
        | MQ_OFlag::O_CREAT
        | MQ_OFlag::O_EXCL
        | MQ_OFlag::O_NONBLOCK
        | MQ_OFlag::O_CLOEXEC;
    // The umask can only narrow the mode at creation; fchmod then sets it exactly, so
    // the queue is never more open than asked.
    let mqd = mq_open(
        name,
        flags,
        Mode::from_bits_truncate(mode & 0o600),
        Some(&attr),
    )
    .map_err(|e| Error::sys(format!("{NAME}: mq_open {name}"), e))?;
    let guard = QueueGuard {
        name: name.into(),
        _lock: None,
    };
    nix::sys::stat::fchmod(mqd.as_fd(), Mode::from_bits_truncate(mode))
        .map_err(|e| Error::sys(format!("{NAME}: fchmod {mode:#o} {name}"), e))?;
    let end = MqEndpoint::new(name, mqd, false)?;
    Ok((end, guard))
}

/// Opens an existing queue for sending.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; the system error (ENOENT, EACCES) naming it.
pub fn open_sender(name: &str) -> Result<MqEndpoint> {
    validate_name(name)?;
    let flags = MQ_OFlag::O_WRONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
    let mqd = mq_open(name, flags, Mode::empty(), None)
        .map_err(|e| Error::sys(format!("{NAME}: mq_open {name}"), e))?;
    MqEndpoint::new(name, mqd, true)
}

impl Drop for MqEndpoint {
    fn drop(&mut self) {
        // nix's MqdT does not close itself: without this every link would keep its
        // queue (and its share of RLIMIT_MSGQUEUE) alive after mq_unlink.
        if let Some(mqd) = self.mqd.take() {
            let _ = nix::mqueue::mq_close(mqd);
        }
    }
}

impl MqEndpoint {
    fn mqd(&self) -> &MqdT {
        self.mqd.as_ref().expect("the queue is open until drop")
    }

    fn new(name: &str, mqd: MqdT, sends: bool) -> Result<Self> {
        let attr =
            mq_getattr(&mqd).map_err(|e| Error::sys(format!("{NAME}: mq_getattr {name}"), e))?;
        Ok(MqEndpoint {
            name: name.into(),
            mqd: Some(mqd),
            msgsize: attr.msgsize() as usize,
            depth: attr.maxmsg() as usize,
            sends,
            timeout: None,
            nonblocking: false,
            fd_nonblock: true,
            scratch: Vec::new(),
            ops: Box::new([
                format!("{NAME}: send to {name}"),
                format!("{NAME}: receive from {name}"),
            ]),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest message (the queue's `mq_msgsize`).
    pub fn max_message(&self) -> usize {
        self.msgsize
    }

    /// The queue's depth (`mq_maxmsg`).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Nonblocking: a full (send) or empty (receive) queue gives
    /// [`Error::WouldBlock`] at once instead of a wait.
    pub fn set_nonblocking(&mut self, on: bool) {
        self.nonblocking = on;
    }

    fn wait(&self, events: PollFlags, dl: Option<std::time::Instant>, op: &str) -> Result<()> {
        if self.nonblocking {
            return Err(Error::WouldBlock { op: op.into() });
        }
        wait_fd(self.mqd().as_fd(), events, dl, op).map(drop)
    }

    /// Sends `msg` with priority `prio` (higher is received first).
    ///
    /// # Errors
    /// [`Error::TooLarge`] over the queue's message size, [`Error::Invalid`] for a
    /// priority of [`PRIO_MAX`] or more, [`Error::WouldBlock`] on a full queue when
    /// nonblocking, [`Error::Timeout`] past the timeout, or the system error.
    pub fn send_with_priority(&mut self, msg: &[u8], prio: u32) -> Result<()> {
        if !self.sends {
            return Err(Error::Unsupported(format!(
                "{NAME}: this end only receives"
            )));
        }
        if msg.len() > self.msgsize {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.msgsize,
            });
        }
        if prio >= PRIO_MAX {
            return Err(Error::invalid(
                format!("{NAME}: priority must be below {PRIO_MAX} (MQ_PRIO_MAX)"),
                prio,
            ));
        }
        let dl = deadline(self.timeout);
        let op = self.ops[0].as_str();
        loop {
            match mq_send(self.mqd(), msg, prio) {
                Ok(()) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLOUT, dl, op)?,
                Err(Errno::EMSGSIZE) => {
                    return Err(Error::TooLarge {
                        len: msg.len(),
                        max: self.msgsize,
                    });
                }
                Err(e) => return Err(Error::sys(op, e)),
            }
        }
    }

    /// Receives the oldest message of the highest priority into `buf` (not resized) and
    /// returns its length and priority.
    ///
    /// # Errors
    /// [`Error::Truncated`] when `buf` is shorter than the queue's message size (the
    /// kernel refuses with EMSGSIZE; the message stays queued), [`Error::WouldBlock`] on
    /// an empty queue when nonblocking, [`Error::Timeout`] past the timeout, or the
    /// system error.
    pub fn recv_with_priority_into(&mut self, buf: &mut [u8]) -> Result<(usize, u32)> {
        if self.sends {
            return Err(Error::Unsupported(format!("{NAME}: this end only sends")));
        }
        let dl = deadline(self.timeout);
        self.fd_nonblocking(self.nonblocking)?;
        let op = self.ops[1].as_str();
        loop {
            let mut prio = 0;
            let r = match dl {
                Some(d) if !self.nonblocking => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    let now = clock_gettime(ClockId::CLOCK_REALTIME)
                        .map_err(|e| Error::sys(format!("{op}: clock_gettime"), e))?;
                    let abs = now + TimeSpec::from_duration(left);
                    mq_timedreceive(self.mqd(), buf, &mut prio, &abs)
                }
                _ => mq_receive(self.mqd(), buf, &mut prio),
            };
            match r {
                Ok(n) => return Ok((n, prio)),
                Err(Errno::EINTR) => {}
                // The realtime clock may have been set back: the deadline is monotonic.
                Err(Errno::ETIMEDOUT) => match dl {
                    Some(d) if std::time::Instant::now() >= d => {
                        return Err(Error::Timeout {
                            op: op.into(),
                            after: d.elapsed(),
                        });
                    }
                    _ => {}
                },
                Err(Errno::EAGAIN) if self.nonblocking => {
                    return Err(Error::WouldBlock { op: op.into() });
                }
                Err(Errno::EMSGSIZE) => {
                    return Err(Error::Truncated {
                        buf: buf.len(),
                        len: None,
                    });
                }
                Err(e) => return Err(Error::sys(op, e)),
            }
        }
    }

    /// Sets the queue descriptor's O_NONBLOCK to `on` unless it already is.
    fn fd_nonblocking(&mut self, on: bool) -> Result<()> {
        if self.fd_nonblock != on {
            let r = if on {
                mq_set_nonblock(self.mqd())
            } else {
                mq_remove_nonblock(self.mqd())
            };
            r.map_err(|e| Error::sys(format!("{}: mq_setattr", self.ops[1]), e))?;
            self.fd_nonblock = on;
        }
        Ok(())
    }

    /// Receives one message into `buf` (replaced) and returns its length and priority.
    ///
    /// # Errors
    /// As [`MqEndpoint::recv_with_priority_into`].
    pub fn recv_with_priority(&mut self, buf: &mut Vec<u8>) -> Result<(usize, u32)> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(self.msgsize, 0);
        let r = self.recv_with_priority_into(&mut scratch);
        if let Ok((n, _)) = r {
            buf.clear();
            buf.extend_from_slice(&scratch[..n]);
        }
        self.scratch = scratch;
        r
    }
}

impl Endpoint for MqEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        MqEndpoint::send_with_priority(self, msg, 0)
    }

    fn send_with_priority(&mut self, msg: &[u8], priority: u32) -> Result<()> {
        MqEndpoint::send_with_priority(self, msg, priority)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.recv_with_priority(buf).map(|(n, _)| n)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        MqEndpoint::set_nonblocking(self, nonblocking);
        Ok(())
    }
}

impl PosixMq {
    /// Opens a link and returns the receiving end as its concrete type, the peer's
    /// part (the queue name) and the guard that removes the name.
    ///
    /// # Errors
    /// As [`create`]; `cfg.max_message` is the message size.
    pub fn open_concrete(&self, cfg: &Config) -> Result<(MqEndpoint, PeerEnd, QueueGuard)> {
        let lim = limits()?;
        let msgsize = cfg.max_message.unwrap_or(lim.msgsize_max);
        let (name, lock) = match &cfg.name {
            // A caller-chosen name: its owner lock (in `cfg.dir`) tells a dead owner's
            // queue, which is removed, from a live one's, which is refused.
            Some(n) => {
                let dir = cfg.dir.clone().unwrap_or_else(std::env::temp_dir);
                let lock = OwnerLock::take(&dir, n)?;
                let name = format!("/{n}");
                validate_name(&name)?;
                match mq_unlink(name.as_str()) {
                    Ok(()) | Err(Errno::ENOENT) => {}
                    Err(e) => {
                        return Err(Error::sys(
                            format!("{NAME}: remove the stale queue {name}"),
                            e,
                        ));
                    }
                }
                (name, Some(lock))
            }
            None => (format!("/{}", unique_name("ipc-audit")), None),
        };
        let (end, mut guard) = create(&name, lim.msg_max, msgsize, cfg.mode)?;
        guard._lock = lock;
        let peer = PeerEnd {
            fds: Vec::new(),
            info: name,
        };
        Ok((end, peer, guard))
    }

    /// Rebuilds the sending end as its concrete type (with
    /// [`MqEndpoint::send_with_priority`]).
    ///
    /// # Errors
    /// As [`open_sender`].
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<MqEndpoint> {
        open_sender(&peer.info)
    }
}

impl Transport for PosixMq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::Priority,
            reliable: true,
            max_message: limits().map_or(8192, |l| l.msgsize_max),
            duplex: false,
            access: Access::FileMode,
            rendezvous: Rendezvous::Named,
            platforms: vec!["POSIX".into(), "Linux".into(), "FreeBSD".into()],
            many_senders: Some(limits().map_or(8192, |l| l.msgsize_max)),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (end, peer, guard) = self.open_concrete(cfg)?;
        let path = super::named::mqueue_path(&peer.info);
        Ok(Link {
            local: Box::new(end),
            peer,
            guard: Some(Box::new(guard)),
            path,
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

    fn pair() -> (MqEndpoint, MqEndpoint, QueueGuard) {
        let (mut rx, peer, g) = PosixMq.open_concrete(&Config::default()).unwrap();
        rx.set_timeout(T).unwrap();
        let mut tx = PosixMq.attach_concrete(peer).unwrap();
        tx.set_timeout(T).unwrap();
        (rx, tx, g)
    }

    #[test]
    fn limits_come_from_proc() {
        let (rx, _tx, _g) = pair();
        let l = limits().unwrap();
        assert_eq!(rx.depth(), l.msg_max);
        assert_eq!(rx.max_message(), l.msgsize_max);
        assert_eq!(PosixMq.guarantees().max_message, l.msgsize_max);
    }

    #[test]
    fn priority_first_then_fifo() {
        let (mut rx, mut tx, _g) = pair();
        let sent = [
            (1, "a"),
            (5, "b"),
            (1, "c"),
            (5, "d"),
            (0, "e"),
            (32767, "f"),
        ];
        for (p, m) in sent {
            tx.send_with_priority(m.as_bytes(), p).unwrap();
        }
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            let (n, p) = rx.recv_with_priority(&mut buf).unwrap();
            got.push((p, String::from_utf8(buf[..n].to_vec()).unwrap()));
        }
        let want: Vec<(u32, String)> = [
            (32767, "f"),
            (5, "b"),
            (5, "d"),
            (1, "a"),
            (1, "c"),
            (0, "e"),
        ]
        .iter()
        .map(|&(p, m)| (p, m.to_string()))
        .collect();
        assert_eq!(got, want);
        let e = tx.send_with_priority(b"x", PRIO_MAX).unwrap_err();
        assert!(e.to_string().contains("32768"), "{e}");
    }

    #[test]
    fn full_nonblocking_queue_would_block_and_loses_nothing() {
        let (mut rx, mut tx, _g) = pair();
        tx.set_nonblocking(true);
        let depth = tx.depth();
        for i in 0..depth {
            tx.send(&(i as u32).to_le_bytes()).unwrap();
        }
        assert!(matches!(
            tx.send(b"overflow"),
            Err(Error::WouldBlock { .. })
        ));
        // A blocking send on the full queue waits, then times out.
        tx.set_nonblocking(false);
        tx.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(tx.send(b"overflow"), Err(Error::Timeout { .. })));
        let mut buf = Vec::new();
        for i in 0..depth {
            rx.recv(&mut buf).unwrap();
            assert_eq!(buf, (i as u32).to_le_bytes());
        }
        rx.set_nonblocking(true);
        assert!(matches!(rx.recv(&mut buf), Err(Error::WouldBlock { .. })));
        rx.set_nonblocking(false);
        rx.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));
    }

    #[test]
    fn bad_names_depths_and_sizes_are_refused_naming_the_value() {
        let cases: Vec<(String, usize, usize, &str)> = vec![
            ("/a/b".into(), 1, 16, "/a/b"),
            ("noslash".into(), 1, 16, "noslash"),
            ("/".into(), 1, 16, "\"/\""),
            (format!("/{}", "x".repeat(256)), 1, 16, "255"),
            ("/ipc-audit-zero-depth".into(), 0, 16, "\"0\""),
            ("/ipc-audit-deep".into(), 1_000_000, 16, "1000000"),
            ("/ipc-audit-zero-size".into(), 1, 0, "\"0\""),
            ("/ipc-audit-big".into(), 1, 1 << 30, "1073741824"),
        ];
        for (name, depth, size, needle) in cases {
            let e = create(&name, depth, size, 0o600).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{name}: {e}");
            assert!(e.to_string().contains(needle), "{name}: {e}");
        }
        // 255 bytes is fine (and removed by the guard).
        let base = unique_name("ipc-audit-long");
        let name = format!("/{base}{}", "y".repeat(NAME_MAX - base.len()));
        let (_e, g) = create(&name, 1, 16, 0o600).unwrap();
        drop(g);
    }

    #[test]
    fn mode_is_exact_despite_the_umask() {
        let umask = std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|u| u32::from_str_radix(u.trim(), 8).unwrap())
            .unwrap();
        for mode in [0o600, 0o640, 0o666] {
            let (rx, _peer, _g) = PosixMq
                .open_concrete(&Config::default().with_mode(mode))
                .unwrap();
            let st = nix::sys::stat::fstat(rx.mqd().as_fd()).unwrap();
            assert_eq!(st.st_mode & 0o777, mode, "umask {umask:#o}");
        }
    }

    #[test]
    fn guard_removes_the_queue() {
        let (rx, tx, g) = pair();
        let name = g.name().to_string();
        drop(g);
        assert_eq!(
            mq_open(name.as_str(), MQ_OFlag::O_RDONLY, Mode::empty(), None).err(),
            Some(Errno::ENOENT)
        );
        drop((rx, tx));
    }

    #[test]
    fn many_links_release_their_queues() {
        // Each queue holds about 80 KiB of RLIMIT_MSGQUEUE (800 KiB by default) for as
        // long as a descriptor is open: a leaked descriptor fails this within a dozen.
        let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = fds();
        for _ in 0..100 {
            let (mut rx, mut tx, g) = pair();
            tx.send(b"x").unwrap();
            let mut buf = Vec::new();
            rx.recv(&mut buf).unwrap();
            drop((rx, tx, g));
        }
        // Other tests run in parallel: allow some slack, not 200 descriptors.
        assert!(
            fds() < before + 20,
            "descriptors leak: {before} -> {}",
            fds()
        );
    }

    #[test]
    fn missing_queue_is_named() {
        let e = open_sender("/ipc-audit-does-not-exist").unwrap_err();
        assert!(e.to_string().contains("/ipc-audit-does-not-exist"), "{e}");
    }
}
