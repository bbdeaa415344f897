//! Audits the shared-memory channels of the `ipmpsc` crate (0.5.1), with the peer in
//! another process: `cargo run --release --example ipmpsc [-- --cases 16]`.
//!
//! The local end makes a `SharedRingBuffer` backed by a file in a private directory and
//! receives on it; the peer opens the same path (`SharedRingBuffer::open`) and sends
//! `Vec<u8>` messages (bincode: an 8-byte length, then the bytes). `ipmpsc` takes a path,
//! not a mode: the adapter makes the file first with exactly `Config::mode`, which
//! `create` then uses ("The file will be created if it does not already exist or truncated
//! otherwise"). Every declared guarantee below quotes the documentation line it relies on.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use ipc_audit::transport::{
    Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd, Rendezvous,
    Transport,
};
use ipc_audit::{Error, Result};
use ipmpsc::{Receiver, Sender, SharedRingBuffer};

const NAME: &str = "ipmpsc";
/// The largest payload by default: 16 MiB, as this crate's own transports.
const MAX: usize = 16 << 20;
/// bincode's length prefix of a `Vec<u8>`.
const LEN_PREFIX: usize = 8;

/// `ipmpsc` over a file-backed ring; the peer sends, the local end receives.
struct Ipmpsc;

fn ipmpsc_error(op: &str, e: ipmpsc::Error, len: usize, max: usize) -> Error {
    let op = format!("{NAME}: {op}");
    match e {
        ipmpsc::Error::MessageTooLarge => Error::TooLarge { len, max },
        ipmpsc::Error::Io(e) => Error::io(op, e),
        other => Error::Protocol(format!("{op}: {other}")),
    }
}

/// How much longer than its own timeout `recv_timeout` may take before the adapter calls
/// the receiver stuck.
const GRACE: Duration = Duration::from_secs(3);

type Got = ipmpsc::Result<Option<Vec<u8>>>;

/// The receiver runs on a thread of its own, so that a `recv_timeout` that never returns
/// (see `repro_ipmpsc_dead_sender`) is reported as an error instead of hanging the
/// audit. The adapter never turns it into a timeout: it is an unclean error, and it
/// stays (the thread does not come back).
struct RxWorker {
    ask: mpsc::Sender<(Option<Duration>, bool)>,
    got: mpsc::Receiver<Got>,
    /// A request was sent and its answer not taken.
    waiting: bool,
    stuck: Option<String>,
}

impl RxWorker {
    fn start(rx: Receiver) -> Result<Self> {
        let (ask, asked) = mpsc::channel::<(Option<Duration>, bool)>();
        let (give, got) = mpsc::channel();
        std::thread::Builder::new()
            .name("ipmpsc receiver".into())
            .spawn(move || {
                for (timeout, nonblocking) in asked {
                    let r = if nonblocking {
                        rx.try_recv::<Vec<u8>>()
                    } else {
                        match timeout {
                            None => rx.recv::<Vec<u8>>().map(Some),
                            Some(t) => rx.recv_timeout::<Vec<u8>>(t),
                        }
                    };
                    if give.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io(format!("{NAME}: start the receiving thread"), e))?;
        Ok(RxWorker {
            ask,
            got,
            waiting: false,
            stuck: None,
        })
    }

    fn recv(&mut self, timeout: Option<Duration>, nonblocking: bool) -> Result<Got> {
        if let Some(why) = &self.stuck {
            return Err(Error::Peer(why.clone()));
        }
        if !self.waiting {
            self.ask
                .send((timeout, nonblocking))
                .map_err(|_| Error::Peer(format!("{NAME}: the receiving thread ended")))?;
            self.waiting = true;
        }
        let limit = if nonblocking {
            Some(GRACE)
        } else {
            timeout.map(|t| t + GRACE)
        };
        let got = match limit {
            None => self
                .got
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(l) => self.got.recv_timeout(l),
        };
        match got {
            Ok(r) => {
                self.waiting = false;
                Ok(r)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let why = format!(
                    "{NAME}: recv_timeout({timeout:?}) has not returned after {:?} more: the \
                     receiver is stuck inside ipmpsc",
                    GRACE
                );
                self.stuck = Some(why.clone());
                Err(Error::Peer(why))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Peer(format!("{NAME}: the receiving thread ended")))
            }
        }
    }
}

enum Side {
    Rx(RxWorker),
    Tx(Sender),
}

struct End {
    side: Side,
    max: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
}

impl Endpoint for End {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let Side::Tx(tx) = &self.side else {
            return Err(Error::Unsupported(format!(
                "{NAME}: this end only receives"
            )));
        };
        let msg = msg.to_vec();
        let t = if self.nonblocking {
            Some(Duration::ZERO)
        } else {
            self.timeout
        };
        let sent = match t {
            None => tx.send(&msg).map(|()| true),
            Some(t) => tx.send_timeout(&msg, t),
        }
        .map_err(|e| ipmpsc_error("send", e, msg.len(), self.max))?;
        match (sent, self.nonblocking) {
            (true, _) => Ok(()),
            (false, true) => Err(Error::WouldBlock {
                op: format!("{NAME}: send"),
            }),
            (false, false) => Err(Error::Timeout {
                op: format!("{NAME}: send"),
                after: t.unwrap_or_default(),
            }),
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let (timeout, nonblocking, max) = (self.timeout, self.nonblocking, self.max);
        let Side::Rx(rx) = &mut self.side else {
            return Err(Error::Unsupported(format!("{NAME}: this end only sends")));
        };
        let got = rx
            .recv(timeout, nonblocking)?
            .map_err(|e| ipmpsc_error("recv", e, 0, max))?;
        match got {
            Some(m) => {
                *buf = m;
                Ok(buf.len())
            }
            None if self.nonblocking => Err(Error::WouldBlock {
                op: format!("{NAME}: recv"),
            }),
            None => Err(Error::Timeout {
                op: format!("{NAME}: recv"),
                after: self.timeout.unwrap_or_default(),
            }),
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
}

impl Transport for Ipmpsc {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            // "a type-safe, high-performance inter-process channel": one value per send.
            boundaries: Boundaries::Native,
            // A channel ("Multiple Producer, Single Consumer Channels"): in order.
            ordering: Ordering::Fifo,
            // `send`: "waiting for sufficient contiguous space to become available in the
            // ring buffer if necessary": nothing is dropped.
            reliable: true,
            // "If the serialized size is greater than the ring buffer capacity, this method
            // will return Err(Error::MessageTooLarge)": capacity MAX + the length prefix.
            max_message: MAX,
            duplex: false,
            // "backed by a file with the specified name": the file's permission bits.
            access: Access::FileMode,
            // "the same path may be used to create one or more corresponding instances in
            // other processes using the SharedRingBuffer::open method"
            rendezvous: Rendezvous::Named,
            // The crate has `posix.rs` and `windows.rs`.
            platforms: common::platforms(&["POSIX", "Windows"]),
            // "Inter-Process Multiple Producer, Single Consumer Channels": several senders,
            // each message whole.
            many_senders: Some(MAX),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(MAX);
        let dir = common::private_dir("ipc-audit-ipmpsc", cfg.dir.as_deref())?;
        let path: PathBuf = dir.path().join("ring");
        // The file first, with exactly the mode asked (the umask does not apply).
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(cfg.mode)
            .open(&path)
            .map_err(|e| Error::io(format!("{NAME}: create {}", path.display()), e))?;
        file.set_permissions(std::fs::Permissions::from_mode(cfg.mode))
            .map_err(|e| Error::io(format!("{NAME}: chmod {}", path.display()), e))?;
        drop(file);
        let p = path
            .to_str()
            .ok_or_else(|| Error::invalid("a UTF-8 path", path.display()))?;
        let cap = u32::try_from(max + LEN_PREFIX)
            .map_err(|_| Error::invalid(format!("{NAME}: max_message"), max))?;
        let ring = SharedRingBuffer::create(p, cap)
            .map_err(|e| ipmpsc_error(&format!("create {p}"), e, 0, max))?;
        Ok(Link {
            local: Box::new(End {
                side: Side::Rx(RxWorker::start(Receiver::new(ring))?),
                max,
                timeout: None,
                nonblocking: false,
            }),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {p}"),
            },
            guard: Some(Box::new(dir)),
            path: Some(path),
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info));
        let (max, path) = peer.info.split_once(' ').ok_or_else(bad)?;
        let max: usize = max.parse().map_err(|_| bad())?;
        let ring = SharedRingBuffer::open(path)
            .map_err(|e| ipmpsc_error(&format!("open {path}"), e, 0, max))?;
        Ok(Box::new(End {
            side: Side::Tx(Sender::new(ring)),
            max,
            timeout: None,
            nonblocking: false,
        }))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[&Ipmpsc])
}
