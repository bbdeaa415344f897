//! `udp`: UDP datagrams on the loopback address.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::OwnedFd;

use super::datagram::{DatagramEndpoint, Dir, split_info};
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};

/// The largest UDP payload over IPv4: 65535 less the IPv4 (20) and UDP (8) headers.
pub const UDP_MAX: usize = 65_507;

/// Receive buffer asked for on the local socket (the kernel caps it at
/// net.core.rmem_max), so that bursts are less likely to be dropped. Drops can still
/// happen: UDP promises neither delivery nor order.
const RCVBUF: usize = 4 << 20;

const NAME: &str = "udp";

/// UDP over 127.0.0.1: the local end binds an ephemeral port; the peer connects a socket
/// of its own to it and sends. One way. The kernel keeps the boundaries (a datagram that
/// does not fit the buffer is reported as [`Error::Truncated`]), but promises neither
/// delivery nor order: declared unreliable and unordered, whatever loopback does in
/// practice. Any local user can send to the port.
#[derive(Debug, Clone, Copy, Default)]
pub struct Udp;

impl Udp {
    /// Opens a link and returns the receiving end as its concrete type, and the peer's
    /// part.
    ///
    /// # Errors
    /// The system error naming the address; [`Error::Invalid`] for a maximum over
    /// 65507.
    pub fn open_concrete(&self, cfg: &Config) -> Result<(DatagramEndpoint, PeerEnd)> {
        let max = match cfg.max_message {
            None => UDP_MAX,
            Some(m) if m <= UDP_MAX => m,
            Some(m) => {
                return Err(Error::invalid(
                    format!("{NAME}: max_message must be at most {UDP_MAX} bytes"),
                    m,
                ));
            }
        };
        let s = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| Error::io(format!("{NAME}: bind 127.0.0.1:0"), e))?;
        let addr = s
            .local_addr()
            .map_err(|e| Error::io(format!("{NAME}: getsockname"), e))?;
        let fd = OwnedFd::from(s);
        {
            use nix::sys::socket::{setsockopt, sockopt::RcvBuf};
            // Best effort: a smaller buffer only means more drops, which are declared.
            let _ = setsockopt(&fd, RcvBuf, &RCVBUF);
        }
        let local = DatagramEndpoint::new(NAME, fd, max, Dir::Recv)?;
        Ok((
            local,
            PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {addr}"),
            },
        ))
    }

    /// Rebuilds the sending end as its concrete type.
    ///
    /// # Errors
    /// As [`Transport::attach`].
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<DatagramEndpoint> {
        let (max, addr) = split_info(&peer.info, NAME)?;
        let addr: SocketAddrV4 = addr
            .parse()
            .map_err(|_| Error::invalid(format!("{NAME}: not an IPv4 socket address"), addr))?;
        if max > UDP_MAX {
            return Err(Error::invalid(
                format!("{NAME}: max_message must be at most {UDP_MAX} bytes"),
                max,
            ));
        }
        let s = UdpSocket::bind("127.0.0.1:0")
            .map_err(|e| Error::io(format!("{NAME}: bind 127.0.0.1:0"), e))?;
        s.connect(SocketAddr::V4(addr))
            .map_err(|e| Error::io(format!("{NAME}: connect {addr}"), e))?;
        DatagramEndpoint::new(NAME, OwnedFd::from(s), max, Dir::Send)
    }
}

impl Transport for Udp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::None,
            reliable: false,
            max_message: UDP_MAX,
            duplex: false,
            access: Access::Anyone,
            rendezvous: Rendezvous::Named,
            platforms: vec![
                "POSIX".into(),
                "Linux".into(),
                "FreeBSD".into(),
                "macOS".into(),
                "Windows".into(),
            ],
            many_senders: Some(UDP_MAX),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (local, peer) = self.open_concrete(cfg)?;
        Ok(Link {
            local: Box::new(local),
            peer,
            guard: None,
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
    use std::time::Duration;

    fn pair() -> (DatagramEndpoint, DatagramEndpoint) {
        let (mut rx, peer) = Udp.open_concrete(&Config::default()).unwrap();
        rx.set_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut tx = Udp.attach_concrete(peer).unwrap();
        tx.set_timeout(Some(Duration::from_secs(5))).unwrap();
        (rx, tx)
    }

    /// The declared maximum is the kernel's: one byte more is refused by the kernel
    /// itself, our own check aside (tests/contract.rs checks our own).
    #[test]
    fn kernel_refuses_one_byte_over_65507() {
        let (_rx, tx) = pair();
        assert_eq!(Udp.guarantees().max_message, 65_507);
        use std::os::fd::AsRawFd;
        let r = nix::sys::socket::send(
            tx.fd.as_raw_fd(),
            &vec![0u8; UDP_MAX + 1],
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        );
        assert_eq!(r, Err(nix::errno::Errno::EMSGSIZE));
    }

    #[test]
    fn closed_receiver_is_reported_to_the_sender() {
        let (rx, mut tx) = pair();
        drop(rx);
        // The first send draws an ICMP port-unreachable; a later one reports it.
        let mut closed = false;
        for _ in 0..10 {
            if let Err(e) = tx.send(b"x") {
                assert!(matches!(e, Error::Closed { .. }), "{e}");
                closed = true;
                break;
            }
        }
        assert!(closed);
    }

    #[test]
    fn bad_address_is_named() {
        let e = Udp
            .attach(PeerEnd {
                fds: Vec::new(),
                info: "100 localhost:x".into(),
            })
            .err()
            .unwrap();
        assert!(e.to_string().contains("localhost:x"), "{e}");
    }
}
