//! `fd-exact`: the transport's descriptors counted exactly, with no slack. The peer, a
//! process that does nothing else, holds both ends of links of its own transport and
//! lists `/proc/self/fd` (number and readlink target): traffic of every size class,
//! repeated, must not add one; a fork+exec child started after that traffic must
//! inherit none; a dropped link must leave none; and neither may many links opened and
//! dropped one after another.

use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, failed};
use crate::audit::exchange::{content, start};
use crate::audit::role::{Cmd, Event};
use crate::audit::{Ctx, PropertyResult, Verdict, could_not_run, not_applicable, result};
use crate::error::{Error, Result};
use crate::peer::{Peer, PeerLauncher, child_fds, open_fds};
use crate::transport::{Config, Endpoint, Link};

/// Links opened and dropped in the churn; `IPC_AUDIT_FD_CHURN` overrides it.
const CHURN: u32 = 50;
/// Rounds of traffic (the first warms up).
const ROUNDS: usize = 3;

/// The property: one loopback run in the peer, see [`Cmd::Loopback`].
pub(super) fn fd_exact(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "fd-exact";
    let declared = "no descriptor leaked, per message or per link; close-on-exec after traffic";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    match fd_run(ctx, name) {
        Ok(Ok(observed)) => result(
            name,
            declared,
            observed,
            Verdict::Pass,
            "both ends in the peer; /proc/self/fd listed exactly (no slack)".into(),
        ),
        Ok(Err((v, observed, detail))) => result(name, declared, observed, v, detail),
        Err(e) => could_not_run(name, declared, e),
    }
}

/// The traffic of one round: many small messages, then one of each size class.
fn round_sizes(max: usize) -> Vec<usize> {
    let mut v = vec![8usize.min(max); 300];
    v.extend(
        [0, 1, 4097, 65_537, 262_145, 1 << 20]
            .into_iter()
            .filter(|&s| s <= max),
    );
    v.push(max.min(1 << 20));
    v
}

/// The run: the peer's loopback, then the checks on its lists.
fn fd_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    let max = ctx.transport.guarantees().max_message;
    let churn = super::env_cases("IPC_AUDIT_FD_CHURN", CHURN) as usize;
    let (_link, mut peer) = start(ctx, name)?;
    peer.command(&Cmd::Loopback {
        sizes: round_sizes(max),
        rounds: ROUNDS,
        churn,
    })?;
    let ev = peer.expect(Instant::now() + 3 * ctx.timeout, "reply")?;
    let _ = peer.finish(Instant::now() + ctx.timeout);
    let Event::Loopback {
        base,
        rounds,
        exec_leaks,
        dropped,
        churned,
        error,
    } = ev
    else {
        return Err(Error::Peer(format!("expected loopback, got {ev:?}")));
    };
    if let Some(e) = error {
        return Ok(Err((
            Verdict::NotRun,
            "not run".into(),
            format!("both ends of a link in one process did not work: {e}"),
        )));
    }
    check_lists(max, churn, &base, &rounds, &exec_leaks, &dropped, &churned)
}

/// The verdict on a loopback's descriptor lists.
fn check_lists(
    max: usize,
    churn: usize,
    base: &[String],
    rounds: &[Vec<String>],
    exec_leaks: &[String],
    dropped: &[String],
    churned: &[String],
) -> Result<Outcome> {
    let new = |after: &[String], before: &[String]| -> Vec<String> {
        after
            .iter()
            .filter(|f| !before.contains(f))
            .cloned()
            .collect()
    };
    let per_round = rounds.len().saturating_sub(1);
    for (i, r) in rounds.iter().enumerate().skip(1) {
        let grown = new(r, &rounds[0]);
        if !grown.is_empty() {
            return Ok(failed(
                format!(
                    "{} new descriptors after {i} more rounds of {} messages: {grown:?}",
                    grown.len(),
                    round_sizes(max).len()
                ),
                "traffic leaks descriptors",
            ));
        }
    }
    if !exec_leaks.is_empty() {
        return Ok(failed(
            format!("after traffic, a fork+exec child inherited {exec_leaks:?}"),
            "a descriptor made after the link opened is not close-on-exec",
        ));
    }
    let left = new(dropped, base);
    if !left.is_empty() {
        return Ok(failed(
            format!("a dropped link left {left:?} open"),
            "dropping a link must close its descriptors",
        ));
    }
    let left = new(churned, base);
    if !left.is_empty() {
        return Ok(failed(
            format!(
                "{churn} links opened and dropped left {} descriptors open: {:?}",
                left.len(),
                &left[..left.len().min(5)]
            ),
            "each link leaks descriptors",
        ));
    }
    Ok(Ok(format!(
        "exact: {} descriptors throughout {per_round} rounds of {} messages (0 to {} bytes); \
         none inherited by a fork+exec child after traffic; none left by the link nor by \
         {churn} more opened and dropped",
        rounds.first().map_or(0, Vec::len),
        round_sizes(max).len(),
        max.min(1 << 20)
    )))
}

/// A link of the peer's transport with both ends here: (the link, with the receiving
/// end as `local`; the sending end).
fn pair<'a>(peer: &'a Peer<'_>) -> Result<(Link, Box<dyn Endpoint + 'a>)> {
    let transport = peer
        .transport
        .as_ref()
        .ok_or_else(|| Error::Unsupported("this peer has no transport".into()))?;
    let mut link = transport.open(&Config::default())?;
    let mut tx = transport.attach(std::mem::take(&mut link.peer))?;
    link.local.set_timeout(Some(Duration::from_secs(5)))?;
    tx.set_timeout(Some(Duration::from_secs(5)))?;
    Ok((link, tx))
}

/// Sends `sizes` on `tx` from another thread and receives them on `rx`, checking each.
fn traffic(rx: &mut dyn Endpoint, tx: &mut (dyn Endpoint + '_), sizes: &[usize]) -> Result<()> {
    thread::scope(|s| {
        let sender = s.spawn(move || -> Result<()> {
            let mut buf = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                content(41, i, len, &mut buf);
                tx.send(&buf)?;
            }
            tx.flush()
        });
        let mut buf = Vec::new();
        let mut want = Vec::new();
        let mut got = Ok(());
        for (i, &len) in sizes.iter().enumerate() {
            content(41, i, len, &mut want);
            match rx.recv(&mut buf) {
                Ok(n) if buf[..n] == want[..] => {}
                Ok(n) => {
                    got = Err(Error::Protocol(format!(
                        "loopback message {i} ({len} bytes) arrived as {n} other bytes"
                    )));
                    break;
                }
                Err(e) => {
                    got = Err(e);
                    break;
                }
            }
        }
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(Error::Peer("the loopback sender panicked".into())));
        got.and(sent)
    })
}

/// Runs a [`Cmd::Loopback`] in the peer.
pub(crate) fn loopback(peer: &Peer<'_>, sizes: &[usize], rounds: usize, churn: usize) -> Event {
    let mut ev = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let error = loopback_steps(peer, sizes, rounds, churn, &mut ev)
        .err()
        .map(|e| e.report());
    let (base, rounds, exec_leaks, dropped, churned) = ev;
    Event::Loopback {
        base,
        rounds,
        exec_leaks,
        dropped,
        churned,
        error,
    }
}

/// The lists a loopback fills: (base, rounds, exec leaks, dropped, churned).
type Lists = (
    Vec<String>,
    Vec<Vec<String>>,
    Vec<String>,
    Vec<String>,
    Vec<String>,
);

/// The steps of [`loopback`], filling `out` as they go.
fn loopback_steps(
    peer: &Peer<'_>,
    sizes: &[usize],
    rounds: usize,
    churn: usize,
    out: &mut Lists,
) -> Result<()> {
    // A first link made and dropped, so that what a transport makes once per process
    // (on its first open) is in the base.
    {
        let (mut link, mut tx) = pair(peer)?;
        traffic(link.local.as_mut(), tx.as_mut(), &[8])?;
    }
    let launcher = PeerLauncher::current_exe_or_self();
    let child_before = child_fds(&launcher)?;
    out.0 = open_fds();
    {
        let (mut link, mut tx) = pair(peer)?;
        for _ in 0..rounds {
            traffic(link.local.as_mut(), tx.as_mut(), sizes)?;
            out.1.push(open_fds());
        }
        out.2 = child_fds(&launcher)?
            .into_iter()
            .filter(|f| !child_before.contains(f))
            .collect();
    }
    out.3 = open_fds();
    for _ in 0..churn {
        let (mut link, mut tx) = pair(peer)?;
        traffic(link.local.as_mut(), tx.as_mut(), &[8])?;
    }
    out.4 = open_fds();
    Ok(())
}
