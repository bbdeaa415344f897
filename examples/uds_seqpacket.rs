//! Audits the SOCK_SEQPACKET sockets of the `uds` crate (0.4.2), with the peer in another
//! process: `cargo run --release --example uds_seqpacket [-- --cases 16]`.
//!
//! The local end binds a `UnixSeqpacketListener` to a path in a private directory and
//! accepts one connection on first use; the peer connects with
//! `UnixSeqpacketConn::connect` and sends. `uds` has no way to give the socket file a mode
//! (`bind` takes a path only), so `Config::mode` cannot be passed on: the socket gets what
//! `bind(2)` gives (0777 less the umask). Every declared guarantee quotes the line of the
//! crate's documentation it relies on.

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ipc_audit::transport::{
    Access, Boundaries, Config, Credentials, Endpoint, Guarantees, Link, Ordering, PeerEnd,
    Rendezvous, Transport,
};
use ipc_audit::{Error, Result};
use uds::{UnixSeqpacketConn, UnixSeqpacketListener};

const NAME: &str = "uds-seqpacket-crate";
/// The adapter's limit: 64 KiB (uds documents none; the kernel's is the send buffer).
const MAX: usize = 64 * 1024;

struct Seqpacket;

struct Conn {
    conn: UnixSeqpacketConn,
    max: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
}

impl Conn {
    fn err(&self, op: &str, e: std::io::Error) -> Error {
        let t = if self.nonblocking {
            Some(Duration::ZERO)
        } else {
            self.timeout
        };
        common::io_error(NAME, op, e, t)
    }

    fn credentials(&self) -> Option<Credentials> {
        let c = self.conn.initial_peer_credentials().ok()?;
        Some(Credentials {
            pid: c.pid()?.get(),
            uid: c.euid(),
            gid: c.egid()?,
        })
    }
}

impl Endpoint for Conn {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if msg.len() > self.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.max,
            });
        }
        let n = self.conn.send(msg).map_err(|e| self.err("send", e))?;
        if n != msg.len() {
            return Err(Error::Protocol(format!(
                "{NAME}: sent {n} of {} bytes",
                msg.len()
            )));
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        buf.resize(self.max + 1, 0);
        let n = self.conn.recv(buf).map_err(|e| self.err("recv", e))?;
        if n > self.max {
            return Err(Error::Truncated {
                buf: self.max,
                len: None,
            });
        }
        buf.truncate(n);
        Ok(n)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        // SO_RCVTIMEO refuses zero; the shortest one it takes means "do not wait".
        let t2 = t.map(|d| d.max(Duration::from_micros(1)));
        self.conn
            .set_read_timeout(t2)
            .and_then(|()| self.conn.set_write_timeout(t2))
            .map_err(|e| Error::io(format!("{NAME}: set timeout"), e))?;
        self.timeout = t;
        Ok(())
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.conn
            .set_nonblocking(on)
            .map_err(|e| Error::io(format!("{NAME}: set nonblocking"), e))?;
        self.nonblocking = on;
        Ok(())
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        self.credentials()
    }
}

enum Local {
    Waiting {
        listener: UnixSeqpacketListener,
        max: usize,
        timeout: Option<Duration>,
        nonblocking: bool,
        allow: Option<Vec<u32>>,
    },
    Connected(Conn),
}

impl Local {
    fn conn(&mut self) -> Result<&mut Conn> {
        if let Local::Waiting {
            listener,
            max,
            timeout,
            nonblocking,
            allow,
        } = self
        {
            let t = timeout.map(|d| d.max(Duration::from_micros(1)));
            listener
                .set_timeout(t)
                .map_err(|e| Error::io(format!("{NAME}: set accept timeout"), e))?;
            let (conn, _) = listener
                .accept_unix_addr()
                .map_err(|e| common::io_error(NAME, "accept", e, *timeout))?;
            let mut c = Conn {
                conn,
                max: *max,
                timeout: None,
                nonblocking: false,
            };
            if let Some(allow) = allow {
                let uid = c.credentials().map(|c| c.uid);
                if !uid.is_some_and(|u| allow.contains(&u)) {
                    return Err(Error::invalid(
                        format!("{NAME}: peer uid not in the allow-list {allow:?}"),
                        uid.map_or("unknown".into(), |u| u.to_string()),
                    ));
                }
            }
            c.set_timeout(*timeout)?;
            c.set_nonblocking(*nonblocking)?;
            *self = Local::Connected(c);
        }
        match self {
            Local::Connected(c) => Ok(c),
            Local::Waiting { .. } => unreachable!("connected just above"),
        }
    }
}

impl Endpoint for Local {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.conn()?.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.conn()?.recv(buf)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        match self {
            Local::Waiting { timeout, .. } => {
                *timeout = t;
                Ok(())
            }
            Local::Connected(c) => c.set_timeout(t),
        }
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        match self {
            Local::Waiting { nonblocking, .. } => {
                *nonblocking = on;
                Ok(())
            }
            Local::Connected(c) => c.set_nonblocking(on),
        }
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        match self {
            Local::Waiting { .. } => None,
            Local::Connected(c) => c.credentials(),
        }
    }
}

impl Transport for Seqpacket {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            // "What is sent separately is received separately"
            boundaries: Boundaries::Native,
            // "They have guaranteed in-order and reliable delivery"
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: MAX,
            duplex: true,
            // A socket file (`bind` to a path), and `initial_peer_credentials`: "Returns
            // information about the process of the peer when the connection was established."
            access: Access::FileModeAndPeerCred,
            rendezvous: Rendezvous::Named,
            // "Sequential-packet sockets are supported by Linux, FreeBSD, NetBSD and Illumos"
            platforms: common::platforms(&["Linux", "FreeBSD", "NetBSD", "Illumos"]),
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(MAX);
        let dir = common::private_dir("ipc-audit-uds", cfg.dir.as_deref())?;
        let path: PathBuf = dir.path().join("sock");
        let listener = UnixSeqpacketListener::bind(&path)
            .map_err(|e| Error::io(format!("{NAME}: bind {}", path.display()), e))?;
        Ok(Link {
            local: Box::new(Local::Waiting {
                listener,
                max,
                timeout: None,
                nonblocking: false,
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
        let conn = UnixSeqpacketConn::connect(path)
            .map_err(|e| Error::io(format!("{NAME}: connect {path}"), e))?;
        Ok(Box::new(Conn {
            conn,
            max,
            timeout: None,
            nonblocking: false,
        }))
    }
}

fn main() -> ExitCode {
    ipc_audit::cli::audit_main(&[&Seqpacket])
}
