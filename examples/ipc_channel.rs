//! Audits the channels of the `ipc-channel` crate (Servo), with the peer in another
//! process: `cargo run --release --example ipc_channel [-- --cases 16]`.
//!
//! The local end makes an `IpcOneShotServer<Vec<u8>>`; the peer gets the server's name in
//! `PeerEnd::info`, connects an `IpcSender<Vec<u8>>` to it and sends a hello, which the
//! server's `accept` returns with the `IpcReceiver<Vec<u8>>`; every later message is the
//! audit's. `ipc-channel` is "a multiprocess drop-in replacement for Rust channels": the
//! promises declared below are those of a channel (every message, whole, in order). Its
//! documentation says nothing of a size limit (large messages are split and reassembled
//! by the crate), nor of who may connect: the adapter refuses messages over 16 MiB, and
//! declares the server a named object under file-mode access.

use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ipc_audit::transport::{
    Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd, Rendezvous,
    Transport,
};
use ipc_audit::{Error, Result};
use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use ipc_channel::{IpcError, TryRecvError};

const NAME: &str = "ipc-channel";
/// The adapter's limit (ipc-channel documents none).
const MAX: usize = 16 << 20;
/// The first message the peer sends, which `accept` consumes.
const HELLO: &[u8] = b"ipc-audit hello";

/// `ipc_channel::ipc` over a one-shot server; one way, the peer sends.
struct IpcChannel;

type Accepted = std::result::Result<(IpcReceiver<Vec<u8>>, Vec<u8>), IpcError>;

fn ipc_error(op: &str, e: IpcError) -> Error {
    let op = format!("{NAME}: {op}");
    match e {
        IpcError::Disconnected => Error::Closed { op },
        IpcError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Error::Closed { op },
        IpcError::Io(e) => Error::io(op, e),
        other => Error::Protocol(format!("{op}: {other}")),
    }
}

/// A one-shot server whose `accept` runs on a thread (it has no timeout).
struct Pending {
    accepted: mpsc::Receiver<Accepted>,
    server_name: String,
    /// The accept's result was taken: nothing left to unblock.
    taken: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        // No peer came: connect once ourselves so that the blocked accept returns and its
        // thread drops the server, which removes its temporary directory.
        if let Ok(s) = IpcSender::<Vec<u8>>::connect(self.server_name.clone()) {
            let _ = s.send(Vec::new());
        }
        let _ = self.accepted.recv_timeout(Duration::from_secs(5));
    }
}

/// The receiving end: the first receive waits for the accept within the timeout.
enum Local {
    Waiting {
        pending: Pending,
        timeout: Option<Duration>,
    },
    Connected {
        rx: IpcReceiver<Vec<u8>>,
        timeout: Option<Duration>,
    },
    Done,
}

impl Local {
    fn receiver(&mut self) -> Result<(&IpcReceiver<Vec<u8>>, Option<Duration>)> {
        if let Local::Waiting { pending, timeout } = self {
            let t = *timeout;
            let ended = || Error::Peer(format!("{NAME}: the accept thread ended"));
            let got = match t {
                Some(t) => pending.accepted.recv_timeout(t).map_err(|e| match e {
                    mpsc::RecvTimeoutError::Timeout => Error::Timeout {
                        op: format!("{NAME}: accept"),
                        after: t,
                    },
                    mpsc::RecvTimeoutError::Disconnected => ended(),
                })?,
                None => pending.accepted.recv().map_err(|_| ended())?,
            };
            pending.taken = true;
            let (rx, hello) = match got {
                Ok(pair) => pair,
                Err(e) => {
                    *self = Local::Done;
                    return Err(ipc_error("accept", e));
                }
            };
            if hello != HELLO {
                *self = Local::Done;
                return Err(Error::Protocol(format!(
                    "{NAME}: the first message is {} bytes, not the hello",
                    hello.len()
                )));
            }
            *self = Local::Connected { rx, timeout: t };
        }
        match self {
            Local::Connected { rx, timeout } => Ok((rx, *timeout)),
            _ => Err(Error::Closed {
                op: format!("{NAME}: recv"),
            }),
        }
    }
}

impl Endpoint for Local {
    fn send(&mut self, _msg: &[u8]) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{NAME}: this end only receives"
        )))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let (rx, timeout) = self.receiver()?;
        let msg = match timeout {
            Some(t) => rx.try_recv_timeout(t).map_err(|e| match e {
                TryRecvError::Empty => Error::Timeout {
                    op: format!("{NAME}: recv"),
                    after: t,
                },
                TryRecvError::IpcError(e) => ipc_error("recv", e),
            })?,
            None => rx.recv().map_err(|e| ipc_error("recv", e))?,
        };
        *buf = msg;
        Ok(buf.len())
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        match self {
            Local::Waiting { timeout, .. } | Local::Connected { timeout, .. } => *timeout = t,
            Local::Done => {}
        }
        Ok(())
    }
}

/// The sending end, in the peer.
struct Peer {
    tx: IpcSender<Vec<u8>>,
}

impl Endpoint for Peer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > MAX {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: MAX,
            });
        }
        self.tx.send(msg.to_vec()).map_err(|e| ipc_error("send", e))
    }

    fn recv(&mut self, _buf: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Unsupported(format!("{NAME}: this end only sends")))
    }

    fn set_timeout(&mut self, _t: Option<Duration>) -> Result<()> {
        // IpcSender has no send timeout: a send to a full channel blocks. The audit's
        // watchdog bounds the peer from outside.
        Ok(())
    }
}

impl Transport for IpcChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: MAX,
            duplex: false,
            access: Access::FileMode,
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

    fn open(&self, _cfg: &Config) -> Result<Link> {
        // `Config::mode` and `Config::dir` cannot be passed on: ipc-channel chooses the
        // server's path (a socket in a new temporary directory).
        let (server, server_name) = IpcOneShotServer::<Vec<u8>>::new()
            .map_err(|e| Error::io(format!("{NAME}: one-shot server"), e))?;
        let (tx, accepted) = mpsc::channel();
        thread::Builder::new()
            .name("ipc-channel accept".into())
            .spawn(move || {
                let _ = tx.send(server.accept());
            })
            .map_err(|e| Error::io(format!("{NAME}: start the accept thread"), e))?;
        Ok(Link {
            local: Box::new(Local::Waiting {
                pending: Pending {
                    accepted,
                    server_name: server_name.clone(),
                    taken: false,
                },
                timeout: None,
            }),
            path: Some(server_name.clone().into()),
            peer: PeerEnd {
                fds: Vec::new(),
                info: server_name,
            },
            guard: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let tx = IpcSender::<Vec<u8>>::connect(peer.info.clone())
            .map_err(|e| Error::io(format!("{NAME}: connect {}", peer.info), e))?;
        tx.send(HELLO.to_vec())
            .map_err(|e| ipc_error("send the hello", e))?;
        Ok(Box::new(Peer { tx }))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[&IpcChannel])
}
