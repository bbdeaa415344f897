//! One exchange with a peer process: the peer sends, this process receives and compares,
//! and what went wrong is classified.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::Ctx;
use super::role::{Cmd, Event, PeerProcess};
use crate::error::{Error, ErrorReport, Result};
use crate::peer::PeerOptions;
use crate::transport::{Boundaries, Config, Guarantees, Link, Ordering};

/// Fills `out` with the content of message `index` of a case: `len` bytes from a
/// splitmix64 stream seeded by `seed` and `index`. The peer and the harness call it
/// with the same arguments, so the content is checked without sending it twice.
pub fn content(seed: u64, index: usize, len: usize, out: &mut Vec<u8>) {
    let mut state = seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    out.clear();
    out.reserve(len);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&z.to_le_bytes()[..take]);
    }
}

/// What kind of promise a violation breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A message arrived before one sent earlier.
    Order,
    /// A sent message never arrived.
    Loss,
    /// Two messages arrived as one.
    Merge,
    /// A message arrived in pieces or cut short.
    Split,
    /// A message arrived with other bytes than were sent, or corrupt input was reported.
    Corrupt,
    /// The transport failed: a send or receive error on a valid message, a hung peer.
    Failure,
}

impl Kind {
    /// Whether `g` promises what this kind breaks.
    pub(crate) fn declared_by(self, g: &Guarantees) -> bool {
        match self {
            Kind::Order => g.ordering != Ordering::None,
            Kind::Loss => g.reliable,
            Kind::Merge | Kind::Split => g.boundaries != Boundaries::None,
            Kind::Corrupt | Kind::Failure => true,
        }
    }
}

/// One thing that went wrong in an exchange.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub(crate) kind: Kind,
    pub(crate) text: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What was received in one exchange.
#[derive(Debug, Default)]
pub(crate) struct Observation {
    /// Each receive, in order: a message, or the error the receiver reported.
    pub(crate) received: Vec<std::result::Result<Vec<u8>, String>>,
    /// Send errors the peer reported, by message index.
    pub(crate) send_errors: Vec<(usize, ErrorReport)>,
}

/// Opens a link, starts the peer, checks it is another process, and returns both.
pub(crate) fn start(ctx: &Ctx<'_>, property: &str) -> Result<(Link, PeerProcess)> {
    let (link, peer) = spawn(ctx, property, &Config::default(), &PeerOptions::default())?;
    let peer = ready(peer)?;
    Ok((link, peer))
}

/// Opens a link with `cfg` and starts a peer with `opts`, without waiting for it.
pub(crate) fn spawn(
    ctx: &Ctx<'_>,
    property: &str,
    cfg: &Config,
    opts: &PeerOptions,
) -> Result<(Link, PeerProcess)> {
    let label = format!("{} / {}", ctx.transport.name(), property);
    let mut link = ctx.transport.open(cfg)?;
    let peer_end = std::mem::take(&mut link.peer);
    let peer = PeerProcess::spawn(
        ctx.launcher,
        ctx.transport.name(),
        peer_end,
        label,
        ctx.timeout * 3,
        opts,
    )?;
    Ok((link, peer))
}

/// Waits for a started peer to be attached; checks it is a separate process.
pub(crate) fn ready(peer: PeerProcess) -> Result<PeerProcess> {
    peer.ready(Duration::from_secs(10))
}

/// The peer sends messages of `sizes` (content from [`content`] with `seed`); this
/// process receives them until all are there, or the peer is done and nothing more
/// comes, or the deadline passes.
pub(crate) fn send_case(
    ctx: &Ctx<'_>,
    property: &str,
    seed: u64,
    sizes: &[usize],
) -> Result<Observation> {
    let (mut link, mut peer) = start(ctx, property)?;
    let obs = receive(ctx, &mut link, &mut peer, seed, sizes)?;
    peer.finish(Instant::now() + ctx.timeout)?;
    Ok(obs)
}

/// The receiving half of [`send_case`], on a started link and peer.
pub(crate) fn receive(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peer: &mut PeerProcess,
    seed: u64,
    sizes: &[usize],
) -> Result<Observation> {
    // Short receive slices, so that the peer's report is seen soon; once the peer has
    // sent everything, one empty slice means the rest is not coming (a sent message is
    // in the kernel, or in shared memory, when the send returns). The overall deadline
    // bounds the whole exchange.
    let slice = Duration::from_millis(50);
    link.local.set_timeout(Some(slice))?;
    peer.command(&Cmd::Send {
        seed,
        sizes: sizes.to_vec(),
    })?;
    let deadline = Instant::now() + ctx.timeout;
    let mut obs = Observation::default();
    let mut done = false;
    let mut buf = Vec::new();
    while obs.received.len() < sizes.len() {
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                op: format!(
                    "{}: receive message {} of {}",
                    ctx.transport.name(),
                    obs.received.len() + 1,
                    sizes.len()
                ),
                after: ctx.timeout,
            });
        }
        match link.local.recv(&mut buf) {
            Ok(n) => obs.received.push(Ok(buf[..n].to_vec())),
            Err(Error::Timeout { .. }) if done => break,
            Err(Error::Timeout { .. }) => {
                if let Some(ev) = peer.try_expect("reply")? {
                    done = true;
                    if let Event::Sent { errors, .. } = ev {
                        obs.send_errors = errors;
                    }
                }
            }
            Err(Error::Closed { .. }) => break,
            Err(e) => obs.received.push(Err(e.to_string())),
        }
    }
    if !done {
        match peer.expect(deadline, "reply")? {
            Event::Sent { errors, .. } => obs.send_errors = errors,
            other => {
                return Err(Error::Peer(format!("expected sent, got {other:?}")));
            }
        }
    }
    Ok(obs)
}

/// Compares what arrived with what was sent: every violation, in the order seen.
pub(crate) fn analyse(seed: u64, sizes: &[usize], obs: &Observation) -> Vec<Violation> {
    let mut expected = Vec::with_capacity(sizes.len());
    let mut index: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, &len) in sizes.iter().enumerate() {
        let mut m = Vec::new();
        content(seed, i, len, &mut m);
        index.entry(crc32c::crc32c(&m)).or_default().push(i);
        expected.push(m);
    }
    let mut v = Vec::new();
    for (i, e) in &obs.send_errors {
        v.push(Violation {
            kind: Kind::Failure,
            text: format!(
                "send of message {i} ({} bytes) failed: {e}",
                sizes.get(*i).copied().unwrap_or(0)
            ),
        });
    }
    let mut seen = vec![false; sizes.len()];
    let mut last: Option<usize> = None;
    for (pos, r) in obs.received.iter().enumerate() {
        let msg = match r {
            Ok(m) => m,
            Err(e) => {
                v.push(Violation {
                    kind: Kind::Corrupt,
                    text: format!("receive {pos} reported an error: {e}"),
                });
                continue;
            }
        };
        let hit = index
            .get(&crc32c::crc32c(msg))
            .and_then(|c| c.iter().copied().find(|&i| !seen[i] && expected[i] == *msg));
        match hit {
            Some(i) => {
                seen[i] = true;
                if let Some(l) = last
                    && i < l
                {
                    v.push(Violation {
                        kind: Kind::Order,
                        text: format!("message {i} arrived after message {l}"),
                    });
                }
                last = Some(last.map_or(i, |l| l.max(i)));
            }
            None => v.push(classify(pos, msg, &expected, last.map_or(0, |l| l + 1))),
        }
    }
    let missing: Vec<usize> = (0..sizes.len()).filter(|&i| !seen[i]).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing
            .iter()
            .take(5)
            .map(|&i| format!("{i} ({} bytes)", sizes[i]))
            .collect();
        v.push(Violation {
            kind: Kind::Loss,
            text: format!(
                "{} of {} messages never arrived: {}{}",
                missing.len(),
                sizes.len(),
                shown.join(", "),
                if missing.len() > 5 { ", ..." } else { "" }
            ),
        });
    }
    v
}

/// Names what an unmatched message is: two merged, a piece, or corrupt bytes.
fn classify(pos: usize, msg: &[u8], expected: &[Vec<u8>], next: usize) -> Violation {
    let lo = next.saturating_sub(2);
    let hi = (next + 3).min(expected.len());
    for k in lo..hi {
        let a = &expected[k];
        if let Some(b) = expected.get(k + 1)
            && msg.len() == a.len() + b.len()
            && msg.starts_with(a)
            && msg.ends_with(b)
        {
            return Violation {
                kind: Kind::Merge,
                text: format!(
                    "receive {pos} ({} bytes) is messages {k} and {} merged",
                    msg.len(),
                    k + 1
                ),
            };
        }
    }
    for (k, a) in expected.iter().enumerate().take(hi).skip(lo) {
        if msg.len() < a.len() && a.windows(msg.len().max(1)).any(|w| w == msg) {
            return Violation {
                kind: Kind::Split,
                text: format!(
                    "receive {pos} ({} bytes) is a piece of message {k} ({} bytes)",
                    msg.len(),
                    a.len()
                ),
            };
        }
    }
    let near = expected
        .iter()
        .enumerate()
        .skip(lo)
        .take(hi - lo)
        .find(|(_, a)| a.len() == msg.len());
    let text = match near {
        Some((k, a)) => {
            let off = a.iter().zip(msg).position(|(x, y)| x != y).unwrap_or(0);
            format!(
                "receive {pos} ({} bytes) differs from message {k} first at byte {off}: \
                 sent {:#04x}, got {:#04x}",
                msg.len(),
                a[off],
                msg[off]
            )
        }
        None => format!(
            "receive {pos} ({} bytes) matches no message sent",
            msg.len()
        ),
    };
    Violation {
        kind: Kind::Corrupt,
        text,
    }
}
