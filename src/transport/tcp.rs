//! `tcp`: a TCP connection on the loopback address, framed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::poll::PollFlags;

use super::pipe::parse_max;
use super::stream::{AcceptOnce, FramedStream, wait_fd};
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_FRAME;

/// A TCP connection over 127.0.0.1 with an ephemeral port and TCP_NODELAY. The local end
/// listens and accepts one connection on first use; the peer connects. Duplex;
/// boundaries restored by the [`frame`](crate::frame) codec. Any local user can connect
/// to a loopback port: the first to connect is accepted, so access is
/// [`Access::Anyone`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

const NAME: &str = "tcp";

/// A connected stream as a framed endpoint, with TCP_NODELAY.
fn framed(s: TcpStream, max: usize) -> Result<FramedStream> {
    s.set_nodelay(true)
        .map_err(|e| Error::io(format!("{NAME}: TCP_NODELAY"), e))?;
    let r = s
        .try_clone()
        .map_err(|e| Error::io(format!("{NAME}: dup"), e))?;
    FramedStream::new(NAME, Some(OwnedFd::from(r)), Some(OwnedFd::from(s)), max)?.socket()
}

impl Transport for Tcp {
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
            access: Access::Anyone,
            rendezvous: Rendezvous::Named,
            platforms: vec![
                "POSIX".into(),
                "Linux".into(),
                "FreeBSD".into(),
                "macOS".into(),
                "Windows".into(),
            ],
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        // std sets close-on-exec on every socket it makes.
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io(format!("{NAME}: bind 127.0.0.1:0"), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(format!("{NAME}: getsockname"), e))?;
        Ok(Link {
            local: Box::new(AcceptOnce::new(Box::new(move |dl| {
                let op = format!("{NAME}: accept");
                wait_fd(listener.as_fd(), PollFlags::POLLIN, dl, &op)?;
                let (s, _) = listener.accept().map_err(|e| Error::io(op, e))?;
                framed(s, max)
            }))),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {addr}"),
            },
            guard: None,
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let (max, addr) = peer
            .info
            .split_once(' ')
            .ok_or_else(|| Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info)))?;
        let max = parse_max(max, NAME)?;
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| Error::invalid(format!("{NAME}: not a socket address"), addr))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| Error::io(format!("{NAME}: connect {addr}"), e))?;
        Ok(Box::new(framed(s, max)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cfg: &Config) -> (Box<dyn Endpoint>, Box<dyn Endpoint>) {
        let link = Tcp.open(cfg).unwrap();
        let mut a = link.local;
        a.set_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = Tcp.attach(link.peer).unwrap();
        b.set_timeout(Some(Duration::from_secs(5))).unwrap();
        (a, b)
    }

    #[test]
    fn timeout_and_close() {
        let (mut a, b) = pair(&Config::default());
        let mut buf = Vec::new();
        a.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(a.recv(&mut buf), Err(Error::Timeout { .. })));
        drop(b);
        assert!(matches!(a.recv(&mut buf), Err(Error::Closed { .. })));
    }

    #[test]
    fn unreachable_address_is_named() {
        // Bind a port and close it, so that nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let info = format!("100 127.0.0.1:{port}");
        let e = Tcp
            .attach(PeerEnd {
                fds: Vec::new(),
                info,
            })
            .err()
            .unwrap();
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        let e = Tcp
            .attach(PeerEnd {
                fds: Vec::new(),
                info: "100 nowhere".into(),
            })
            .err()
            .unwrap();
        assert!(e.to_string().contains("nowhere"), "{e}");
    }
}
