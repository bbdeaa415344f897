//! `fd-flat`: open descriptors stay flat over 10,000 messages on both sides, and a peer
//! under a low RLIMIT_NOFILE gives clean errors (never a crash or a hang).

use std::time::Instant;

use super::{Outcome, Step, declared_violations, failed};
use crate::audit::exchange::{analyse, ready, receive, spawn, start};
use crate::audit::role::{Cmd, Event, PeerProcess};
use crate::audit::{Ctx, PropertyResult, Verdict, could_not_run, not_applicable, result};
use crate::error::{Error, Result};
use crate::peer::PeerOptions;
use crate::transport::{Config, Link};

/// Messages of the `fd-flat` run; `IPC_AUDIT_FD_MESSAGES` overrides it.
const FD_MESSAGES: usize = 10_000;
/// Descriptors other threads of this process may open meanwhile (a multi-threaded test
/// binary): growth beyond it over the run is a leak. The peer is counted exactly.
const LOCAL_SLACK: usize = 64;

/// Descriptor counts before and after the long exchange: (here, here, peer, peer).
type Counts = (usize, usize, usize, usize);

/// This process's open descriptors.
fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The property: a scripted run, see [`fd_run`].
pub(super) fn fd_flat(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "fd-flat";
    let declared = "no descriptor leak; clean errors at RLIMIT_NOFILE";
    if !ctx.transport.guarantees().carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    match fd_run(ctx, name) {
        Ok(Ok(observed)) => result(
            name,
            declared,
            observed,
            Verdict::Pass,
            format!(
                "/proc/self/fd counted here (slack {LOCAL_SLACK} for other threads) and in the peer (exactly)"
            ),
        ),
        Ok(Err((v, observed, detail))) => result(name, declared, observed, v, detail),
        Err(e) => could_not_run(name, declared, e),
    }
}

/// The run: descriptors counted on both sides around a long exchange, then peers under
/// RLIMIT_NOFILE 4, 5, 6, 8 and 16.
fn fd_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    let total = super::env_cases("IPC_AUDIT_FD_MESSAGES", FD_MESSAGES as u32) as usize;
    let size = ctx.transport.guarantees().max_message.min(32);
    let (mut link, mut peer) = start(ctx, name)?;
    let (here0, here1, there0, there1) =
        match long_exchange(ctx, &mut link, &mut peer, total, size)? {
            Ok(counts) => counts,
            Err(f) => return Ok(Err(f)),
        };
    peer.finish(Instant::now() + ctx.timeout)?;
    drop(link);
    if there1 != there0 {
        return Ok(failed(
            format!("the peer's descriptors went from {there0} to {there1} over {total} messages"),
            "the sender leaks descriptors",
        ));
    }
    if here1 > here0 + LOCAL_SLACK {
        return Ok(failed(
            format!(
                "this process's descriptors went from {here0} to {here1} over {total} messages"
            ),
            "the receiver leaks descriptors",
        ));
    }
    // A peer under a low RLIMIT_NOFILE: it works, or it fails with an error; it never
    // crashes and never hangs.
    let mut seen = Vec::new();
    for limit in [4u64, 5, 6, 8, 16] {
        match low_nofile(ctx, name, size, limit)? {
            Ok(what) => seen.push(what),
            Err(f) => return Ok(Err(f)),
        }
    }
    Ok(Ok(format!(
        "flat over {total} messages (here {here0} -> {here1}, peer {there0} -> {there1}); \
         peer RLIMIT_NOFILE {}",
        seen.join(", ")
    )))
}

/// The peer's open descriptors, as it counts them.
fn peer_fds(ctx: &Ctx<'_>, peer: &mut PeerProcess) -> Result<usize> {
    peer.command(&Cmd::CountFds)?;
    match peer.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::FdCount { n } => Ok(n),
        other => Err(Error::Peer(format!("expected fd count, got {other:?}"))),
    }
}

/// One exchange of `n` messages of `size` bytes: the declared violations, if any.
fn exchange(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peer: &mut PeerProcess,
    seed: u64,
    n: usize,
    size: usize,
) -> Result<Option<String>> {
    let sizes = vec![size; n];
    let obs = receive(ctx, link, peer, seed, &sizes)?;
    Ok(declared_violations(ctx, &analyse(seed, &sizes, &obs)))
}

/// Warms up (accept, lazily made objects), then counts descriptors on both sides, runs
/// the rest of the `total` messages and counts again.
fn long_exchange(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peer: &mut PeerProcess,
    total: usize,
    size: usize,
) -> Result<Step<Counts>> {
    if let Some(v) = exchange(ctx, link, peer, 31, 100, size)? {
        return Ok(failed(v, "the warm-up exchange failed"));
    }
    let here0 = count_fds();
    let there0 = peer_fds(ctx, peer)?;
    if let Some(v) = exchange(ctx, link, peer, 32, total - 100, size)? {
        return Ok(failed(v, "the long exchange failed"));
    }
    let here1 = count_fds();
    let there1 = peer_fds(ctx, peer)?;
    Ok(Ok((here0, here1, there0, there1)))
}

/// A peer under RLIMIT_NOFILE `limit` attaches and sends 20 messages: what it did
/// (refused to attach, refused a send, or worked), or a failure.
fn low_nofile(ctx: &Ctx<'_>, name: &str, size: usize, limit: u64) -> Result<Step<String>> {
    let opts = PeerOptions {
        nofile: Some(limit),
        ..PeerOptions::default()
    };
    let (mut link, peer) = spawn(ctx, name, &Config::default(), &opts)?;
    let mut peer = match ready(peer) {
        // The peer reported its own error before attaching: a clean refusal.
        Err(Error::Remote { report, .. }) => {
            return Ok(Ok(format!(
                "{limit}: attach refused ({})",
                report
                    .message
                    .rsplit(": ")
                    .next()
                    .unwrap_or(&report.message)
            )));
        }
        Err(e) => {
            return Ok(failed(
                format!("peer with RLIMIT_NOFILE {limit} did not fail cleanly: {e}"),
                "a low RLIMIT_NOFILE must give an error, not a crash",
            ));
        }
        Ok(peer) => peer,
    };
    let sizes = vec![size; 20];
    let obs = match receive(ctx, &mut link, &mut peer, 33, &sizes) {
        Ok(o) => o,
        Err(e) => {
            return Ok(failed(
                format!("with RLIMIT_NOFILE {limit} in the peer: {e}"),
                "a low RLIMIT_NOFILE must give an error, not a crash or a hang",
            ));
        }
    };
    if let Err(e) = peer.finish(Instant::now() + ctx.timeout) {
        return Ok(failed(
            format!("with RLIMIT_NOFILE {limit} the peer died: {e}"),
            "a low RLIMIT_NOFILE must give an error, not a crash",
        ));
    }
    match (
        obs.send_errors.first(),
        declared_violations(ctx, &analyse(33, &sizes, &obs)),
    ) {
        (Some((_, e)), _) => Ok(Ok(format!("{limit}: send refused ({e})"))),
        (None, None) => Ok(Ok(format!("{limit}: works"))),
        (None, Some(v)) => Ok(failed(
            format!("with RLIMIT_NOFILE {limit}: {v}"),
            "no error was reported, yet messages went wrong",
        )),
    }
}
