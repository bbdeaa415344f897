//! `uds-stream`: a Unix domain stream socket on a path, framed.

use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nix::poll::PollFlags;

use super::named::publish_socket;
use super::pipe::parse_max;
use super::stream::{Accept, AcceptOnce, FramedStream, wait_fd};
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::frame::DEFAULT_MAX_FRAME;

/// A Unix stream socket bound to a path in a private directory, mode 0600 from the moment
/// the path exists. The local end listens and accepts one connection on first use; the
/// peer connects. Duplex; boundaries restored by the [`frame`](crate::frame) codec.
#[derive(Debug, Clone, Copy, Default)]
pub struct UdsStream;

/// Accepts the peer on `listener`, checks its uid against `allow`; `guard` (the path's
/// directory or owner lock) lives until then.
fn accept_one(
    listener: UnixListener,
    max: usize,
    allow: Option<Vec<u32>>,
    guard: Box<dyn std::any::Any + Send>,
) -> Accept {
    use std::os::fd::AsFd;
    Box::new(move |dl| {
        let _guard = &guard;
        wait_fd(
            listener.as_fd(),
            PollFlags::POLLIN,
            dl,
            "uds-stream: accept",
        )?;
        let (s, _) = listener
            .accept()
            .map_err(|e| Error::io("uds-stream: accept", e))?;
        let f = framed("uds-stream", s, max)?;
        if let Some(allow) = &allow {
            let uid = f.peer_credentials().map(|c| c.uid);
            if !uid.is_some_and(|u| allow.contains(&u)) {
                // Dropping `f` closes the connection: the peer sees it refused.
                return Err(Error::invalid(
                    format!("uds-stream: peer uid not in the allow-list {allow:?}"),
                    uid.map_or("unknown".into(), |u| u.to_string()),
                ));
            }
        }
        Ok(f)
    })
}

/// Splits a stream socket into a framed endpoint.
fn framed(name: &str, s: UnixStream, max: usize) -> Result<FramedStream> {
    let r = s
        .try_clone()
        .map_err(|e| Error::io(format!("{name}: dup"), e))?;
    FramedStream::new(name, Some(OwnedFd::from(r)), Some(OwnedFd::from(s)), max)?.socket()
}

impl Transport for UdsStream {
    fn name(&self) -> &'static str {
        "uds-stream"
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: DEFAULT_MAX_FRAME,
            duplex: true,
            access: Access::FileModeAndPeerCred,
            rendezvous: Rendezvous::Named,
            platforms: super::posix(),
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        let make = |p: &Path| {
            UnixListener::bind(p).map_err(|e| Error::io(format!("bind {}", p.display()), e))
        };
        let (path, listener, guard) = publish_socket("uds", cfg, "sock", make)?;
        Ok(Link {
            local: Box::new(AcceptOnce::new(accept_one(
                listener,
                max,
                cfg.allow_uids.clone(),
                guard,
            ))),
            peer: PeerEnd {
                fds: Vec::new(),
                info: format!("{max} {}", path.display()),
            },
            guard: None,
            path: Some(path.clone()),
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let (max, path) = peer
            .info
            .split_once(' ')
            .ok_or_else(|| Error::Protocol(format!("uds-stream: bad peer info {:?}", peer.info)))?;
        let max = parse_max(max, "uds-stream")?;
        let s = UnixStream::connect(Path::new(path))
            .map_err(|e| Error::io(format!("uds-stream: connect {path}"), e))?;
        Ok(Box::new(framed("uds-stream", s, max)?))
    }
}
