//! `uds-seqpacket`: a Unix seqpacket socket on a path, mode 0600 from creation.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::poll::PollFlags;
use nix::sys::socket::{Backlog, SockFlag, SockType, accept4, listen};

use super::datagram::{DatagramEndpoint, Dir, split_info};
use super::named::{PathGuard, publish_socket};
use super::stream::{deadline, wait_fd};
use super::uds_dgram::{bind_unix, choose_max, connect_unix, default_unix_max, unix_max};
use super::{
    Access, Boundaries, Config, Credentials, Endpoint, Guarantees, Link, Ordering, PeerEnd,
};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};

/// A Unix seqpacket socket (connection-oriented, boundaries kept by the kernel) bound to
/// a path in a private directory. The local end listens and accepts its one peer on
/// first use; the peer connects. Duplex. SO_PEERCRED tells each end who the other is.
/// A message longer than the receive buffer is reported as [`Error::Truncated`]; the
/// largest message is SO_SNDBUF less 32 bytes, read at run time. Empty messages are
/// delivered: SO_PASSCRED is set on every end so that an empty message (which carries
/// credentials) is told apart from end-of-file (which carries none).
#[derive(Debug, Clone, Copy, Default)]
pub struct UdsSeqpacket;

const NAME: &str = "uds-seqpacket";

/// The listening end: accepts its one peer on first use, within the timeout.
enum Listening {
    Waiting {
        listener: OwnedFd,
        max: usize,
        timeout: Option<Duration>,
        allow: Option<Vec<u32>>,
        nonblocking: bool,
        _dir: PathGuard,
    },
    Connected(DatagramEndpoint, Option<Credentials>),
}

impl Listening {
    fn end(&mut self) -> Result<&mut DatagramEndpoint> {
        if let Listening::Waiting {
            listener,
            max,
            timeout,
            allow,
            nonblocking,
            ..
        } = self
        {
            let op = format!("{NAME}: accept");
            wait_fd(listener.as_fd(), PollFlags::POLLIN, deadline(*timeout), &op)?;
            let s =
                accept4(listener.as_fd(), SockFlag::SOCK_CLOEXEC).map_err(|e| Error::sys(op, e))?;
            let cred = super::stream::peer_cred(s.as_fd());
            if let Some(allow) = allow {
                let uid = cred.map(|c| c.uid);
                if !uid.is_some_and(|u| allow.contains(&u)) {
                    // Dropping `s` closes the connection: the peer sees it refused.
                    return Err(Error::invalid(
                        format!("{NAME}: peer uid not in the allow-list {allow:?}"),
                        uid.map_or("unknown".into(), |u| u.to_string()),
                    ));
                }
            }
            let mut end = DatagramEndpoint::new(NAME, s, *max, Dir::Both)?.seqpacket()?;
            end.set_timeout(*timeout)?;
            end.set_nonblocking(*nonblocking)?;
            // Dropping the listener and the directory removes the path: nobody else can
            // connect after the peer.
            *self = Listening::Connected(end, cred);
        }
        match self {
            Listening::Connected(e, _) => Ok(e),
            Listening::Waiting { .. } => unreachable!("accepted above"),
        }
    }
}

impl Endpoint for Listening {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.end()?.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.end()?.recv(buf)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        match self {
            Listening::Waiting { timeout, .. } => {
                *timeout = t;
                Ok(())
            }
            Listening::Connected(e, _) => e.set_timeout(t),
        }
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        match self {
            Listening::Waiting { nonblocking, .. } => {
                *nonblocking = on;
                Ok(())
            }
            Listening::Connected(e, _) => e.set_nonblocking(on),
        }
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        match self {
            Listening::Connected(_, c) => *c,
            Listening::Waiting { .. } => None,
        }
    }
}

impl UdsSeqpacket {
    /// The largest message on this machine now: a new socket's SO_SNDBUF less 32.
    pub fn max_message() -> usize {
        default_unix_max(SockType::SeqPacket, NAME).unwrap_or(212_992 - 32)
    }

    /// Rebuilds the peer's end (connected) as its concrete type.
    ///
    /// # Errors
    /// As [`Transport::attach`].
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<DatagramEndpoint> {
        let (max, path) = split_info(&peer.info, NAME)?;
        let fd = connect_unix(SockType::SeqPacket, Path::new(path), NAME)?;
        let own = unix_max(&fd, NAME)?;
        DatagramEndpoint::new(NAME, fd, max.min(own), Dir::Both)?.seqpacket()
    }
}

impl Transport for UdsSeqpacket {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: Self::max_message(),
            duplex: true,
            access: Access::FileModeAndPeerCred,
            rendezvous: Rendezvous::Named,
            platforms: super::posix(),
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (path, listener, dir) = publish_socket(NAME, cfg, "sock", |p| {
            let fd = bind_unix(SockType::SeqPacket, p, NAME)?;
            listen(
                &fd,
                Backlog::new(1).map_err(|e| Error::sys("listen backlog", e))?,
            )
            .map_err(|e| Error::sys(format!("{NAME}: listen {}", p.display()), e))?;
            Ok(fd)
        })?;
        let max = choose_max(cfg, unix_max(&listener, NAME)?, NAME)?;
        Ok(Link {
            local: Box::new(Listening::Waiting {
                listener,
                max,
                timeout: None,
                allow: cfg.allow_uids.clone(),
                nonblocking: false,
                _dir: dir,
            }),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {}", path.display()),
            },
            guard: None,
            path: Some(path.clone()),
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.attach_concrete(peer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Box<dyn Endpoint>, DatagramEndpoint, String) {
        let link = UdsSeqpacket.open(&Config::default()).unwrap();
        let info = link.peer.info.clone();
        let mut local = link.local;
        local.set_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut peer = UdsSeqpacket.attach_concrete(link.peer).unwrap();
        peer.set_timeout(Some(Duration::from_secs(5))).unwrap();
        (local, peer, info)
    }

    #[test]
    fn eof_is_closed_not_an_empty_message() {
        let (mut a, b, _) = pair();
        let mut buf = Vec::new();
        a.set_timeout(Some(Duration::from_millis(20))).unwrap();
        // Accept first (the timeout is the only outcome while the peer sends nothing).
        assert!(matches!(a.recv(&mut buf), Err(Error::Timeout { .. })));
        drop(b);
        assert!(
            matches!(a.recv(&mut buf), Err(Error::Closed { .. })),
            "EOF must be Closed"
        );
    }

    #[test]
    fn connect_to_missing_path_names_it() {
        let e = UdsSeqpacket
            .attach(PeerEnd {
                fds: Vec::new(),
                info: "100 /nonexistent/ipc-audit/sock".into(),
            })
            .err()
            .unwrap();
        assert!(e.to_string().contains("/nonexistent/ipc-audit/sock"), "{e}");
    }
}
