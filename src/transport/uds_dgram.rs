//! `uds-dgram`: a Unix datagram socket bound to a path, mode 0600 from creation.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, connect, socket};

use super::datagram::{DatagramEndpoint, Dir, sndbuf, split_info};
use super::named::publish_socket;
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};

/// What `unix_dgram_sendmsg` refuses above: the send buffer less 32 bytes.
const SNDBUF_SLACK: usize = 32;

/// A Unix datagram socket bound to a path in a private directory; the peer connects a
/// socket of its own to that path and sends. One way: the peer sends, the local end
/// receives. The kernel keeps the boundaries; a message longer than the receive buffer
/// is reported as [`Error::Truncated`]. The largest message is the sender's SO_SNDBUF
/// less 32 bytes (Linux refuses larger ones with EMSGSIZE), read at run time.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdsDgram;

/// A new Unix socket of type `ty`, close-on-exec.
pub(crate) fn unix_socket(ty: SockType, what: &str) -> Result<OwnedFd> {
    #[cfg(not(target_vendor = "apple"))]
    {
        socket(AddressFamily::Unix, ty, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| Error::sys(format!("{what}: socket"), e))
    }
    #[cfg(target_vendor = "apple")]
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        let fd = socket(AddressFamily::Unix, ty, SockFlag::empty(), None)
            .map_err(|e| Error::sys(format!("{what}: socket"), e))?;
        fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| Error::sys(format!("{what}: F_SETFD"), e))?;
        Ok(fd)
    }
}

/// The largest datagram a Unix socket with `fd`'s send buffer accepts.
pub(crate) fn unix_max(fd: &OwnedFd, what: &str) -> Result<usize> {
    Ok(sndbuf(fd, what)?.saturating_sub(SNDBUF_SLACK))
}

/// The largest datagram a new Unix socket of type `ty` accepts on this machine now.
pub(crate) fn default_unix_max(ty: SockType, what: &str) -> Result<usize> {
    unix_max(&unix_socket(ty, what)?, what)
}

/// The maximum for a link: the kernel's, or a smaller one the configuration asks for.
pub(crate) fn choose_max(cfg: &Config, kernel: usize, what: &str) -> Result<usize> {
    match cfg.max_message {
        None => Ok(kernel),
        Some(m) if m <= kernel => Ok(m),
        Some(m) => Err(Error::invalid(
            format!("{what}: max_message must be at most {kernel} bytes (SO_SNDBUF - 32)"),
            m,
        )),
    }
}

/// Binds a new socket of type `ty` to `path`.
pub(crate) fn bind_unix(ty: SockType, path: &Path, what: &str) -> Result<OwnedFd> {
    let fd = unix_socket(ty, what)?;
    let addr = UnixAddr::new(path)
        .map_err(|e| Error::sys(format!("{what}: address {}", path.display()), e))?;
    use std::os::fd::AsRawFd;
    bind(fd.as_raw_fd(), &addr)
        .map_err(|e| Error::sys(format!("{what}: bind {}", path.display()), e))?;
    Ok(fd)
}

/// Connects a new socket of type `ty` to `path`.
pub(crate) fn connect_unix(ty: SockType, path: &Path, what: &str) -> Result<OwnedFd> {
    let fd = unix_socket(ty, what)?;
    let addr = UnixAddr::new(path)
        .map_err(|e| Error::sys(format!("{what}: address {}", path.display()), e))?;
    use std::os::fd::AsRawFd;
    connect(fd.as_raw_fd(), &addr)
        .map_err(|e| Error::sys(format!("{what}: connect {}", path.display()), e))?;
    Ok(fd)
}

impl UdsDgram {
    /// The largest message on this machine now: a new socket's SO_SNDBUF less 32.
    pub fn max_message() -> usize {
        // 212992 - 32 is the Linux default (net.core.wmem_default); fall back to it only
        // if a socket cannot even be made.
        default_unix_max(SockType::Datagram, "uds-dgram").unwrap_or(212_992 - SNDBUF_SLACK)
    }

    /// Opens a link and returns the receiving end as its concrete type (with
    /// [`DatagramEndpoint::recv_into`]), the peer's part, and the guard.
    ///
    /// # Errors
    /// The system error, naming the path; [`Error::Invalid`] for a maximum over the
    /// kernel's.
    pub fn open_concrete(
        &self,
        cfg: &Config,
    ) -> Result<(DatagramEndpoint, PeerEnd, Box<dyn std::any::Any + Send>)> {
        let (path, fd, dir) = publish_socket("uds-dgram", cfg, "sock", |p| {
            bind_unix(SockType::Datagram, p, "uds-dgram")
        })?;
        let max = choose_max(cfg, unix_max(&fd, "uds-dgram")?, "uds-dgram")?;
        let local = DatagramEndpoint::new("uds-dgram", fd, max, Dir::Recv)?;
        let peer = PeerEnd {
            fds: Vec::new(),
            info: format!("{max} {}", path.display()),
        };
        Ok((local, peer, dir))
    }

    /// Rebuilds the sending end as its concrete type.
    ///
    /// # Errors
    /// As [`Transport::attach`].
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<DatagramEndpoint> {
        let (max, path) = split_info(&peer.info, "uds-dgram")?;
        let fd = connect_unix(SockType::Datagram, Path::new(path), "uds-dgram")?;
        let own = unix_max(&fd, "uds-dgram")?;
        DatagramEndpoint::new("uds-dgram", fd, max.min(own), Dir::Send)
    }
}

impl Transport for UdsDgram {
    fn name(&self) -> &'static str {
        "uds-dgram"
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: Self::max_message(),
            duplex: false,
            access: Access::FileMode,
            rendezvous: Rendezvous::Named,
            platforms: super::posix(),
            many_senders: Some(Self::max_message()),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (local, peer, guard) = self.open_concrete(cfg)?;
        let path = super::named::path_in_info(&peer.info);
        Ok(Link {
            local: Box::new(local),
            peer,
            guard: Some(guard),
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
    use std::time::Duration;

    fn pair() -> (
        DatagramEndpoint,
        DatagramEndpoint,
        Box<dyn std::any::Any + Send>,
        String,
    ) {
        let (rx, peer, guard) = UdsDgram.open_concrete(&Config::default()).unwrap();
        let info = peer.info.clone();
        let tx = UdsDgram.attach_concrete(peer).unwrap();
        (rx, tx, guard, info)
    }

    #[test]
    fn kernel_refuses_one_byte_over_the_declared_max() {
        // The declared maximum is the kernel's, not a guess: one byte more is refused by
        // the kernel itself (bypassing our own check).
        let (_rx, tx, _g, _) = pair();
        let max = tx.max_message();
        let buf = vec![0u8; max + 1];
        use std::os::fd::AsRawFd;
        let r = nix::sys::socket::send(
            tx.fd.as_raw_fd(),
            &buf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        );
        assert_eq!(r, Err(nix::errno::Errno::EMSGSIZE));
    }

    #[test]
    fn full_queue_send_times_out_and_loses_nothing() {
        let (mut rx, mut tx, _g, _) = pair();
        tx.set_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut sent = 0u32;
        loop {
            match tx.send(&sent.to_le_bytes()) {
                Ok(()) => sent += 1,
                Err(Error::Timeout { .. }) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < 100_000, "the queue never filled");
        }
        rx.set_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = Vec::new();
        for i in 0..sent {
            rx.recv(&mut buf).unwrap();
            assert_eq!(buf, i.to_le_bytes());
        }
        assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));
    }

    #[test]
    fn oversized_config_is_refused_naming_the_value() {
        let max = UdsDgram::max_message();
        let e = UdsDgram
            .open(&Config::default().with_max_message(max + 1))
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&(max + 1).to_string()) && text.contains(&max.to_string()),
            "{text}"
        );
    }
}
