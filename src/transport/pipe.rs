//! `pipe`: an anonymous pipe, framed. The peer inherits the write end.

use super::stream::FramedStream;
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_FRAME;

/// An anonymous pipe (`pipe2` with O_CLOEXEC). One way: the peer writes, the local end
/// reads. Boundaries are restored by the [`frame`](crate::frame) codec.
///
/// A send to a reader that is gone is [`Error::Closed`], never
/// death by SIGPIPE: SIGPIPE's disposition is read when the writing end is made (one
/// `sigaction`, not one per message); if it is not SIG_IGN then, SIGPIPE is blocked in
/// the sending thread around each write. A program that sets SIGPIPE back to SIG_DFL
/// must do so before it makes its writing ends (Rust programs start with it ignored).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pipe;

/// Parses the maximum message handed to the peer in [`PeerEnd::info`].
pub(crate) fn parse_max(info: &str, transport: &str) -> Result<usize> {
    info.parse()
        .map_err(|_| Error::Protocol(format!("{transport}: bad peer info {info:?}")))
}

impl Transport for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: DEFAULT_MAX_FRAME,
            duplex: false,
            access: Access::Inherited,
            rendezvous: Rendezvous::Inherited,
            platforms: super::posix(),
            many_senders: Some(super::stream::ATOMIC_FRAME_MAX),
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        let (r, w) = super::stream::pipe_cloexec("pipe")?;
        Ok(Link {
            local: Box::new(FramedStream::new("pipe", Some(r), None, max)?),
            peer: PeerEnd {
                fds: vec![w],
                info: max.to_string(),
            },
            guard: None,
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let max = parse_max(&peer.info, "pipe")?;
        let w = peer
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("pipe: the peer got no descriptor".into()))?;
        Ok(Box::new(FramedStream::new("pipe", None, Some(w), max)?))
    }
}
