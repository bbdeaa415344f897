//! Audits the message queues of the `posixmq` crate (1.0.0), with the peer in another
//! process: `cargo run --release --example posixmq [-- --cases 16]`.
//!
//! The local end creates a queue (`OpenOptions::readonly().create_new()`) with the mode
//! asked; the peer opens it by name, write-only, and sends. Every declared guarantee below
//! quotes the line of the crate's documentation it relies on. The adapter maps the
//! kernel's EMSGSIZE (a message over `max_msg_len`) to `Error::TooLarge` with the queue's
//! limit, and nothing else: timeouts, nonblocking mode and EINTR are the crate's.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use ipc_audit::transport::{
    Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd, Rendezvous,
    Transport,
};
use ipc_audit::{Error, Result};
use posixmq::{OpenOptions, PosixMq};

const NAME: &str = "posixmq";
/// Messages a queue holds: the documented Linux default ("default capacity | 10").
const CAPACITY: usize = 10;

/// `posixmq::PosixMq`, one way: the peer sends, the local end receives.
struct Posixmq;

/// The largest message an unprivileged process may ask for (root may ask more).
fn msgsize_max() -> usize {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// Removes the queue's name on drop.
struct QueueName(String);

impl Drop for QueueName {
    fn drop(&mut self) {
        let _ = posixmq::remove_queue(&self.0);
    }
}

struct End {
    mq: PosixMq,
    max: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
}

impl End {
    fn error(&self, op: &str, e: std::io::Error, len: usize) -> Error {
        if e.raw_os_error() == Some(libc::EMSGSIZE) {
            return Error::TooLarge { len, max: self.max };
        }
        let t = if self.nonblocking {
            Some(Duration::ZERO)
        } else {
            self.timeout
        };
        common::io_error(NAME, op, e, t)
    }
}

impl Endpoint for End {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with_priority(msg, 0)
    }

    fn send_with_priority(&mut self, msg: &[u8], priority: u32) -> Result<()> {
        let r = match self.timeout {
            Some(t) if !self.nonblocking => self.mq.send_timeout(priority, msg, t),
            _ => self.mq.send(priority, msg),
        };
        r.map_err(|e| self.error("send", e, msg.len()))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        // "the receive buffer must be at least as big as the biggest possible message"
        buf.resize(self.max, 0);
        let r = match self.timeout {
            Some(t) if !self.nonblocking => self.mq.recv_timeout(buf, t),
            _ => self.mq.recv(buf),
        };
        let (_, n) = r.map_err(|e| self.error("recv", e, 0))?;
        buf.truncate(n);
        Ok(n)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        Ok(())
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.mq
            .set_nonblocking(on)
            .map_err(|e| Error::io(format!("{NAME}: set nonblocking"), e))?;
        self.nonblocking = on;
        Ok(())
    }
}

impl Transport for Posixmq {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            // "Posix message queues are like pipes, but message-oriented"
            boundaries: Boundaries::Native,
            // "Messages are sorted based on an additional priority parameter";
            // "messages with equal priority will be received in order"
            ordering: Ordering::Priority,
            // "When the queue is full, further `send()`s will either block or fail with an
            // error of type `ErrorKind::WouldBlock`": nothing is dropped.
            reliable: true,
            // `max_msg_len`: "`recv()` will fail if given a buffer smaller than this value"
            max_message: msgsize_max(),
            duplex: false,
            // "Normal file permissions still apply though."
            access: Access::FileMode,
            // "Queues are not placed in the normal file system, but uses a separate, flat
            // namespace": opened by name.
            rendezvous: Rendezvous::Named,
            // The crate's platform table: "Linux | FreeBSD | NetBSD | DragonFly BSD | Illumos"
            platforms: common::platforms(&[
                "Linux",
                "FreeBSD",
                "NetBSD",
                "DragonFly BSD",
                "Illumos",
            ]),
            // Nothing promised about several senders.
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or_else(msgsize_max);
        let name = format!("/{}", common::unique("ipc-audit-posixmq"));
        let mq = OpenOptions::readonly()
            .mode(cfg.mode)
            .max_msg_len(max)
            .capacity(CAPACITY)
            .create_new()
            .open(&name)
            .map_err(|e| Error::io(format!("{NAME}: create {name}"), e))?;
        let guard = QueueName(name.clone());
        Ok(Link {
            local: Box::new(End {
                mq,
                max,
                timeout: None,
                nonblocking: false,
            }),
            path: Some(format!("/dev/mqueue{name}").into()),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {name}"),
            },
            guard: Some(Box::new(guard)),
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info));
        let (max, name) = peer.info.split_once(' ').ok_or_else(bad)?;
        let max: usize = max.parse().map_err(|_| bad())?;
        let mq = OpenOptions::writeonly()
            .existing()
            .open(name)
            .map_err(|e| Error::io(format!("{NAME}: open {name}"), e))?;
        Ok(Box::new(End {
            mq,
            max,
            timeout: None,
            nonblocking: false,
        }))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[&Posixmq])
}
