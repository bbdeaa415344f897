//! `fifo`: a named pipe made with `mkfifo` in a private directory, framed.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

use super::named::{NamedDir, publish_named};
use super::pipe::parse_max;
use super::stream::FramedStream;
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_FRAME;

/// A FIFO (`mkfifo`), mode 0600 from the moment its name exists. One way: the peer opens
/// it for writing, the local end reads. Boundaries are restored by the
/// [`frame`](crate::frame) codec.
///
/// A send to a reader that is gone is [`Error::Closed`], never
/// death by SIGPIPE: SIGPIPE's disposition is read when the writing end is made (one
/// `sigaction`, not one per message); if it is not SIG_IGN then, SIGPIPE is blocked in
/// the sending thread around each write. A program that sets SIGPIPE back to SIG_DFL
/// must do so before it makes its writing ends (Rust programs start with it ignored).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fifo;

/// Opens `path` with `flags` | O_CLOEXEC, naming the path in errors.
pub(crate) fn open_path(path: &Path, flags: OFlag, what: &str) -> Result<OwnedFd> {
    open(path, flags | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| Error::sys(format!("{what}: open {}", path.display()), e))
}

impl Transport for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: DEFAULT_MAX_FRAME,
            duplex: false,
            access: Access::FileMode,
            rendezvous: Rendezvous::Named,
            platforms: super::posix(),
            many_senders: Some(super::stream::ATOMIC_FRAME_MAX),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        let make = |p: &Path| {
            nix::unistd::mkfifo(p, Mode::S_IRUSR | Mode::S_IWUSR)
                .map_err(|e| Error::sys(format!("mkfifo {}", p.display()), e))
        };
        let (path, guard): (_, Box<dyn std::any::Any + Send>) = match &cfg.name {
            Some(name) => {
                let (path, (), _stale, claim) = publish_named("fifo", cfg, name, make)?;
                (path, Box::new(claim))
            }
            None => {
                let dir = NamedDir::for_config("fifo", cfg)?;
                let (path, ()) = dir.publish("fifo", cfg.mode, make)?;
                (path, Box::new(dir))
            }
        };
        // Nonblocking, so the open does not wait for a writer.
        let r = open_path(&path, OFlag::O_RDONLY | OFlag::O_NONBLOCK, "fifo")?;
        let local = FramedStream::new("fifo", Some(r), None, max)?.await_writer();
        let link_path = Some(path.clone());
        Ok(Link {
            local: Box::new(local),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {}", path.display()),
            },
            guard: Some(guard),
            path: link_path,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let (max, path) = peer
            .info
            .split_once(' ')
            .ok_or_else(|| Error::Protocol(format!("fifo: bad peer info {:?}", peer.info)))?;
        let max = parse_max(max, "fifo")?;
        // Nonblocking: ENXIO at once if no reader is there, instead of a wait.
        let w = open_path(Path::new(path), OFlag::O_WRONLY | OFlag::O_NONBLOCK, "fifo")?;
        Ok(Box::new(FramedStream::new("fifo", None, Some(w), max)?))
    }
}
