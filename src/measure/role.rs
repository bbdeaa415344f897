//! The measurements' peer role: pin, open the link back, echo, stream, bounce a floor.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{FloorKind, Usage, floor, objects, peer_echo, peer_stream, send_fds, sys};
use crate::error::{Error, ErrorReport, Result};
use crate::peer::{self, Peer, Role};
use crate::transport::{Config, Endpoint, Link};

/// The measurements' role: what a peer keeps between commands.
#[derive(Default)]
pub struct MeasureRole {
    back: Option<Link>,
    pinned: Option<sys::Pinned>,
}

/// A running peer of the measurements.
pub(crate) type PeerProcess = peer::PeerProcess<MeasureRole>;

/// A command from the harness to a measuring peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Cmd {
    /// Pin every thread of the peer to `cpu`.
    Pin {
        /// The cpu.
        cpu: usize,
    },
    /// Open a link of the same transport for the way back (harness to peer): its
    /// descriptors go to the harness over the socket at aux descriptor `aux` (one byte,
    /// SCM_RIGHTS), its info in [`Event::BackOpened`].
    OpenBack {
        /// The back link's maximum message.
        max_message: Option<usize>,
        /// The aux descriptor of the socket.
        aux: usize,
    },
    /// Receive `count` messages (on the back link when there is one, else on the link)
    /// and send each back on the link, unchanged.
    Echo {
        /// Round trips.
        count: usize,
    },
    /// Send `count` messages of `size` bytes as fast as possible; stop after `limit_ms`.
    Stream {
        /// Messages.
        count: usize,
        /// Their size.
        size: usize,
        /// The time limit.
        limit_ms: u64,
    },
    /// Bounce `count` round trips over the shared page at aux descriptor `aux`; for a
    /// method floor over aux descriptors 0 (write) and 1 (read) (and 2, `raw-file`'s
    /// inotify descriptor), or over what `aux` names: the System V queue's id, the
    /// semaphores' number, the measuring thread's pid and thread id (`raw-signal`).
    Floor {
        /// Which floor.
        kind: FloorKind,
        /// Round trips.
        count: usize,
        /// The aux descriptor of the page, or the method floor's argument.
        aux: usize,
    },
}

/// An event from a measuring peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Finished a `Pin`.
    Pinned {
        /// The cpu.
        cpu: usize,
    },
    /// Finished an `OpenBack`: the back link's info and how many descriptors were sent.
    BackOpened {
        /// [`PeerEnd::info`](crate::transport::PeerEnd::info) of the back link.
        info: String,
        /// Descriptors sent.
        nfds: usize,
    },
    /// Finished an `Echo`: round trips served, the peer's resource usage while serving
    /// them, the error that stopped it early.
    Echoed {
        /// Round trips served.
        count: usize,
        /// The peer's usage meanwhile.
        usage: Usage,
        /// What stopped it early.
        error: Option<ErrorReport>,
    },
    /// Finished a `Stream`: messages sent, usage, the error that stopped it early.
    Streamed {
        /// Messages sent.
        sent: usize,
        /// The peer's usage meanwhile.
        usage: Usage,
        /// What stopped it early.
        error: Option<ErrorReport>,
    },
    /// Finished a `Floor`.
    FloorDone {
        /// Round trips bounced.
        count: usize,
        /// What stopped it.
        error: Option<ErrorReport>,
    },
}

impl Role for MeasureRole {
    const NAME: &'static str = "measure";
    type Cmd = Cmd;
    type Event = Event;

    fn serve(&mut self, peer: &mut Peer<'_>, cmd: Cmd) -> Result<Event> {
        match cmd {
            Cmd::Pin { cpu } => {
                self.pinned = None;
                self.pinned = Some(sys::pin_process(cpu)?);
                Ok(Event::Pinned { cpu })
            }
            Cmd::OpenBack { max_message, aux } => self.open_back(peer, max_message, aux),
            Cmd::Echo { count } => {
                let input = self
                    .back
                    .as_mut()
                    .map(|l| -> &mut dyn Endpoint { l.local.as_mut() });
                let (count, usage, error) = peer_echo(input, peer.end.as_mut(), count);
                Ok(Event::Echoed {
                    count,
                    usage,
                    error: error.map(ErrorReport::from),
                })
            }
            Cmd::Stream {
                count,
                size,
                limit_ms,
            } => {
                let limit = Duration::from_millis(limit_ms);
                let (sent, usage, error) = peer_stream(peer.end.as_mut(), count, size, limit);
                Ok(Event::Streamed {
                    sent,
                    usage,
                    error: error.map(ErrorReport::from),
                })
            }
            Cmd::Floor { kind, count, aux } => {
                let dup = |i: usize| -> Result<OwnedFd> {
                    peer.aux(i)?
                        .try_clone()
                        .map_err(|e| Error::io("peer: dup a floor descriptor", e))
                };
                let r = if kind.is_shm() {
                    floor::peer(kind, dup(aux)?, count)
                } else {
                    let fds = (0..kind.aux_fds()).map(dup).collect::<Result<Vec<_>>>()?;
                    objects::peer(kind, fds, aux, count)
                };
                Ok(match r {
                    Ok(()) => Event::FloorDone { count, error: None },
                    Err(e) => Event::FloorDone {
                        count: 0,
                        error: Some(e.report()),
                    },
                })
            }
        }
    }
}

impl MeasureRole {
    /// Opens the back link and sends its descriptors over the aux socket.
    fn open_back(
        &mut self,
        peer: &Peer<'_>,
        max_message: Option<usize>,
        aux: usize,
    ) -> Result<Event> {
        let mut cfg = Config::default();
        if let Some(m) = max_message {
            cfg = cfg.with_max_message(m);
        }
        let mut link = peer.open(&cfg)?;
        link.local.set_timeout(Some(peer::PEER_WAIT))?;
        let peer_end = std::mem::take(&mut link.peer);
        send_fds(peer.aux(aux)?.as_fd(), &peer_end.fds)?;
        let nfds = peer_end.fds.len();
        drop(peer_end.fds);
        self.back = Some(link);
        Ok(Event::BackOpened {
            info: peer_end.info,
            nfds,
        })
    }
}
