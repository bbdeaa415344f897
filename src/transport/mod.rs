//! The transports, behind one trait.
//!
//! A [`Transport`] makes a [`Link`] in the calling process before the peer starts. The
//! link's `local` end stays; its [`PeerEnd`] (inherited descriptors plus a short text
//! such as a path or a queue name) is handed to the peer process, which rebuilds its
//! end with [`Transport::attach`]. Both ends are [`Endpoint`]s.
//!
//! Direction: on a one-way transport (pipe, FIFO, message queues, ...) the peer end
//! sends and the local end receives. On a duplex transport both ends do both.
//!
//! # Examples
//!
//! A pipe, with both ends in this process (the audit puts the peer end in another one):
//!
//! ```
//! use ipc_audit::transport::{by_name, Config};
//!
//! let pipe = by_name("pipe").unwrap();
//! let link = pipe.open(&Config::default()).unwrap();
//! let mut rx = link.local;
//! let mut tx = pipe.attach(link.peer).unwrap();
//! tx.send(b"ping").unwrap();
//! let mut buf = Vec::new();
//! assert_eq!(rx.recv(&mut buf).unwrap(), 4);
//! assert_eq!(buf, b"ping");
//! ```

use std::any::Any;
use std::fmt;
use std::os::fd::OwnedFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;

pub mod datagram;
pub mod fifo;
#[cfg(target_os = "linux")]
pub mod file;
pub(crate) mod named;
pub mod pipe;
#[cfg(target_os = "linux")]
pub mod posix_mq;
#[cfg(target_os = "linux")]
pub mod semaphore;
pub mod shm;
#[cfg(target_os = "linux")]
pub mod signal;
pub(crate) mod stream;
#[cfg(target_os = "linux")]
pub mod sysv_mq;
pub mod tcp;
pub mod udp;
pub mod uds;
pub mod uds_dgram;
#[cfg(target_os = "linux")]
pub mod uds_seqpacket;

/// How a transport keeps message boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Boundaries {
    /// The kernel keeps them (datagrams, message queues).
    Native,
    /// A byte stream; the crate's [`frame`](crate::frame) codec restores them.
    Framed,
    /// Not kept.
    None,
}

/// The order in which messages arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Ordering {
    /// First in, first out.
    Fifo,
    /// Higher priority first, FIFO within one priority.
    Priority,
    /// No promise.
    None,
}

/// Who may reach a transport's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Only processes that inherit a descriptor.
    Inherited,
    /// File-like permission bits on a named object.
    FileMode,
    /// File mode, plus the peer's credentials are known to the other end (SO_PEERCRED).
    FileModeAndPeerCred,
    /// Any local user.
    Anyone,
    /// A process of the same user, or one with CAP_KILL (signals).
    SameUid,
}

/// How unrelated processes meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rendezvous {
    /// By a name (path, queue name, port): unrelated processes can meet.
    Named,
    /// By inherited descriptors: related processes only.
    Inherited,
}

/// What a transport promises. The audit reports each promise next to what it observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guarantees {
    /// Whether it carries bytes at all (a semaphore does not).
    pub carries_data: bool,
    /// Message boundaries.
    pub boundaries: Boundaries,
    /// Message order.
    pub ordering: Ordering,
    /// Every message sent is delivered (no loss while both ends live).
    pub reliable: bool,
    /// Largest message in bytes that it accepts.
    pub max_message: usize,
    /// Both ends can send.
    pub duplex: bool,
    /// Who can reach it.
    pub access: Access,
    /// How processes meet.
    pub rendezvous: Rendezvous,
    /// The platforms it runs on, by standard: e.g. `["POSIX"]`, `["Linux"]`.
    pub platforms: Vec<String>,
    /// Whether several processes may send into one link at once, and up to what size
    /// their messages stay whole: `Some(n)` means any number of senders, and a message
    /// of at most `n` bytes is never interleaved with another (for a framed pipe, PIPE_BUF
    /// minus the frame header; above it concurrent frames may interleave); `None` means
    /// one sender per link. Missing in older JSON: `None`.
    #[serde(default)]
    pub many_senders: Option<usize>,
}

/// Settings for [`Transport::open`]. `Config::default()` is what the audit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Permission bits of a named object, exactly (the umask does not apply). 0o600.
    pub mode: u32,
    /// Largest message, for transports whose maximum is configurable; `None` keeps the
    /// transport's default.
    pub max_message: Option<usize>,
    /// The directory in which path-based transports make their per-link directory;
    /// `None` is the system's temporary directory.
    pub dir: Option<std::path::PathBuf>,
    /// For transports that know their peer's credentials: the user ids allowed to
    /// connect; others are refused at accept time. `None` allows every uid the mode
    /// lets in.
    pub allow_uids: Option<Vec<u32>>,
    /// Open the link at this name (a file name in `dir` for path transports, a queue or
    /// segment name otherwise) instead of a fresh unique one, for transports that honour
    /// it. A name left by a crashed owner is detected (its owner's lock is gone) and
    /// reclaimed; a name whose owner lives is refused. `None`: a unique name.
    pub name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: 0o600,
            max_message: None,
            dir: None,
            allow_uids: None,
            name: None,
        }
    }
}

impl Config {
    /// The same configuration with another mode.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// The same configuration making per-link directories under `dir`.
    pub fn with_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The same configuration with an allow-list of peer user ids.
    pub fn with_allow_uids(mut self, uids: Vec<u32>) -> Self {
        self.allow_uids = Some(uids);
        self
    }

    /// The same configuration opening the link at `name` (see [`Config::name`]).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The same configuration with another maximum message size.
    pub fn with_max_message(mut self, max: usize) -> Self {
        self.max_message = Some(max);
        self
    }
}

/// One end of a link.
pub trait Endpoint: Send {
    /// Sends one message, whole.
    ///
    /// # Errors
    /// [`Error::TooLarge`](crate::Error::TooLarge) when `msg` is over the maximum (the
    /// link stays usable), [`Error::Closed`](crate::Error::Closed) when the peer is gone,
    /// [`Error::Timeout`](crate::Error::Timeout) past the timeout, or the system error.
    fn send(&mut self, msg: &[u8]) -> Result<()>;

    /// Receives one message into `buf` (its old content is replaced) and returns its
    /// length.
    ///
    /// # Errors
    /// [`Error::Closed`](crate::Error::Closed) when the peer closed with no message
    /// pending, [`Error::Timeout`](crate::Error::Timeout) past the timeout, a frame error
    /// on corrupt input, or the system error.
    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize>;

    /// Sets how long one `send` or `recv` may wait; `None` waits forever.
    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()>;

    /// Sends one message with a priority, on a transport whose ordering is
    /// [`Ordering::Priority`]; the default refuses.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) where there are no priorities,
    /// or as [`send`](Self::send).
    fn send_with_priority(&mut self, msg: &[u8], priority: u32) -> Result<()> {
        let _ = (msg, priority);
        Err(crate::Error::Unsupported(
            "this transport has no message priorities".into(),
        ))
    }

    /// The credentials of the process at the other end, as the kernel tells them
    /// (SO_PEERCRED), where the transport can know them; `None` otherwise, or before the
    /// peer is connected.
    fn peer_credentials(&self) -> Option<Credentials> {
        None
    }

    /// Switches nonblocking mode: when on, a `send` that would wait for room and a `recv`
    /// that would wait for a message return [`Error::WouldBlock`](crate::Error::WouldBlock)
    /// at once, having sent or taken nothing of that message.
    ///
    /// # Errors
    /// [`Error::Unsupported`](crate::Error::Unsupported) (the default) where the
    /// transport has no such mode.
    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        let _ = nonblocking;
        Err(crate::Error::Unsupported(
            "this transport has no nonblocking mode".into(),
        ))
    }

    /// Writes out what earlier sends accepted but could not write yet, waiting up to the
    /// timeout. A byte stream may take the first part of a message and not the rest
    /// before the deadline (or in nonblocking mode): that `send` accepts the message and
    /// keeps its rest, which the next `send`, `flush` or drop writes first, so that a
    /// message is never torn. Nothing to do (the default) on other transports.
    ///
    /// # Errors
    /// [`Error::Timeout`](crate::Error::Timeout) when the rest could not go out by the
    /// deadline (it stays for the next try); the system error.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A process's identity as the kernel reports it to its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Process id.
    pub pid: u32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// What the peer process needs to rebuild its end: descriptors it inherits, and a
/// short text (a path, a name, a port).
#[derive(Debug, Default)]
pub struct PeerEnd {
    /// Descriptors the peer inherits, in order.
    pub fds: Vec<OwnedFd>,
    /// Transport-specific text, e.g. a socket path.
    pub info: String,
}

/// A link made by [`Transport::open`]: the local end, what the peer needs, and a guard
/// that removes the link's named objects when dropped.
pub struct Link {
    /// The end that stays in this process.
    pub local: Box<dyn Endpoint>,
    /// What the peer process needs to attach.
    pub peer: PeerEnd,
    /// Removes named objects (paths, queues, segments) on drop.
    pub guard: Option<Box<dyn Any + Send>>,
    /// Where the link's named object shows in the file system (a FIFO, a socket, a file,
    /// `/dev/mqueue/NAME`, `/dev/shm/sem.NAME`), for the audit to check its mode; `None`
    /// for an anonymous link.
    pub path: Option<std::path::PathBuf>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .field("path", &self.path)
            .finish()
    }
}

/// An IPC method. Implement it to audit your own transport (see [`crate::audit`]).
pub trait Transport: Send + Sync {
    /// Stable name, e.g. `"pipe"`, `"uds-stream"`.
    fn name(&self) -> &'static str;

    /// What it promises, with the default [`Config`].
    fn guarantees(&self) -> Guarantees;

    /// Makes a new link in this process, before the peer exists. Named objects are
    /// unique per call (pid and a counter) and removed by the link's guard.
    ///
    /// # Errors
    /// The system error, naming the object.
    fn open(&self, cfg: &Config) -> Result<Link>;

    /// Rebuilds the peer's end from a [`PeerEnd`], in the peer process.
    ///
    /// # Errors
    /// The system error, or [`Error::Protocol`](crate::Error::Protocol) on a malformed
    /// `info`.
    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>>;
}

/// A borrowed transport is a transport: lets [`audit_main`](crate::cli::audit_main)
/// and [`run_if_peer`](crate::run_if_peer) work on `&dyn Transport`.
impl<T: Transport + ?Sized> Transport for &T {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn guarantees(&self) -> Guarantees {
        (**self).guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        (**self).open(cfg)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        (**self).attach(peer)
    }
}

/// Every transport of this crate, in the order of the seed's table.
pub fn all() -> Vec<Box<dyn Transport>> {
    vec![
        Box::new(pipe::Pipe),
        Box::new(fifo::Fifo),
        Box::new(uds::UdsStream),
        Box::new(uds_dgram::UdsDgram),
        #[cfg(target_os = "linux")]
        Box::new(uds_seqpacket::UdsSeqpacket),
        Box::new(tcp::Tcp),
        Box::new(udp::Udp),
        #[cfg(target_os = "linux")]
        Box::new(posix_mq::PosixMq),
        #[cfg(target_os = "linux")]
        Box::new(sysv_mq::SysvMq),
        #[cfg(target_os = "linux")]
        Box::new(file::FileLog { fsync: false }),
        #[cfg(target_os = "linux")]
        Box::new(signal::Signal),
        Box::new(shm::Shm::default()),
        #[cfg(target_os = "linux")]
        Box::new(semaphore::Semaphore),
    ]
}

/// The names of [`all`], in order.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|t| t.name()).collect()
}

/// The transport called `name`, if this crate has one (also the variants of
/// [`shm::Shm::variant`], which [`all`] does not list).
pub fn by_name(name: &str) -> Option<Box<dyn Transport>> {
    all()
        .into_iter()
        .find(|t| t.name() == name)
        .or_else(|| shm::Shm::variant(name).map(|s| Box::new(s) as Box<dyn Transport>))
}

/// Platforms of a transport built on POSIX calls only.
pub(crate) fn posix() -> Vec<String> {
    vec![
        "POSIX".into(),
        "Linux".into(),
        "FreeBSD".into(),
        "macOS".into(),
    ]
}
