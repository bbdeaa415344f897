//! `retry`: messages interrupted midway and retried arrive byte-identical. The peer
//! sends in nonblocking mode (or with a send timeout of a few milliseconds) into a link
//! it fills faster than this process drains it, and retries every message refused with
//! WouldBlock or Timeout, as a caller does; this process receives with receive
//! timeouts of one to three milliseconds, which expire in the middle of large messages,
//! and calls `recv` again. Every message must arrive once, whole, in order: none
//! doubled (a send that took it and still said Timeout), none torn (a send that wrote
//! part before WouldBlock and dropped the rest), none lost that was accepted, and no
//! receive may lose the part it had when its timeout expired.

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestError};

use super::{declared_violations, fail, fault_cases, lock, runner};
use crate::audit::exchange::{Observation, analyse, content, start};
use crate::audit::role::{Cmd, Event, PeerProcess};
use crate::audit::{Ctx, PropertyResult, Verdict, not_applicable, result};
use crate::error::{Error, ErrorReport};
use crate::transport::{Endpoint, Link};

/// Default cases of `retry`; `IPC_AUDIT_RETRY_CASES` overrides it.
const RETRY_CASES: u32 = 4;

/// A case: (seed, sizes, nonblocking sender, receive timeout in ms).
type Case = (u64, Vec<usize>, bool, u64);

/// Sizes around the places where a transport's code path changes: PIPE_BUF, powers of
/// two up to 1 MiB (chunk and kernel buffer sizes), the default socket buffer, the
/// atomic size, the maximum; each ± 1 (the maximum: and less 2).
pub(crate) fn edge_sizes(max: usize, atomic: Option<usize>) -> Vec<usize> {
    let mut v = vec![0, 1, 2, 3, 4, 7, 8];
    for k in 9..=20 {
        let p = 1usize << k;
        v.extend([p - 1, p, p + 1]);
    }
    v.extend([4095, 4096, 4097, 4080, 4081, 4079, 212_992, 212_993]);
    if let Some(a) = atomic {
        v.extend([a.saturating_sub(1), a, a + 1]);
    }
    v.extend([max.saturating_sub(2), max.saturating_sub(1), max]);
    v.retain(|&s| s <= max);
    v.sort_unstable();
    v.dedup();
    v
}

/// The property: cases of interrupted and retried sends and receives.
pub(super) fn retry(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "retry";
    let declared = "retried after WouldBlock or Timeout: each message once, whole, in order";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    let cases = fault_cases(ctx, "IPC_AUDIT_RETRY_CASES", RETRY_CASES);
    let max = g.max_message.min(1 << 20);
    let edges = edge_sizes(max, g.many_senders);
    let size = prop_oneof![3 => select(edges), 1 => 0..=max];
    let strategy = (any::<u64>(), vec(size, 2..=12), any::<bool>(), 1u64..=3);
    let tally = Mutex::new((0u32, 0usize));
    // Two fixed cases first, one per sending mode, with messages several times a kernel
    // buffer: a send is certainly cut by WouldBlock or by its timeout, whatever the
    // random cases draw and however the machine is loaded.
    let big = max.min(256 << 10);
    let fixed = [(1, true), (2, false)].map(|(seed, nb)| (seed, vec![big, 1, big, 7, big], nb, 1));
    let outcome = fixed
        .into_iter()
        .find_map(|case| match retry_case(ctx, name, &case, &tally) {
            Err(TestCaseError::Fail(why)) => Some(Err(TestError::Fail(why, case))),
            Err(TestCaseError::Reject(why)) => Some(Err(TestError::Abort(why))),
            Ok(()) => None,
        })
        .unwrap_or_else(|| {
            runner(cases).run(&strategy, |case| retry_case(ctx, name, &case, &tally))
        });
    let (n, msgs) = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(()) => result(
            name,
            declared,
            format!(
                "{msgs} messages in {n} cases, sent nonblocking or with 2 ms send timeouts and \
                 retried, received with 1-3 ms timeouts and retried: each once, whole"
            ),
            Verdict::Pass,
            format!("{cases} cases (IPC_AUDIT_RETRY_CASES), sizes biased to edges"),
        ),
        Err(TestError::Fail(why, (seed, sizes, nb, ms))) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!(
                "minimal case: seed {seed}, sizes {sizes:?}, {} sender, receive timeout {ms} ms",
                if nb { "nonblocking" } else { "2 ms timeout" }
            ),
        ),
        Err(TestError::Abort(why)) => result(
            name,
            declared,
            "aborted".into(),
            Verdict::Fail,
            why.to_string(),
        ),
    }
}

/// One case: the peer sends and retries; this process lets the link fill, then receives
/// with short timeouts and retries.
fn retry_case(
    ctx: &Ctx<'_>,
    name: &str,
    (seed, sizes, nonblocking, ms): &Case,
    tally: &Mutex<(u32, usize)>,
) -> Result<(), TestCaseError> {
    let (mut link, mut peer) = start(ctx, name).map_err(fail)?;
    peer.command(&Cmd::SendRetry {
        seed: *seed,
        sizes: sizes.clone(),
        nonblocking: *nonblocking,
        timeout_ms: 2,
        deadline_ms: ctx.timeout.as_millis() as u64,
    })
    .map_err(fail)?;
    // Let the sender run into a full link first.
    thread::sleep(Duration::from_millis(30));
    let (obs, done) =
        receive_retrying(ctx, &mut link, &mut peer, sizes.len(), *ms).map_err(fail)?;
    let v = analyse(*seed, sizes, &obs);
    if let Some(text) = declared_violations(ctx, &v) {
        // The peer may still be retrying into a link nobody reads: end it now.
        drop(peer);
        return Err(TestCaseError::fail(text));
    }
    if !done {
        return Err(TestCaseError::fail("the peer did not report".to_string()));
    }
    peer.finish(Instant::now() + ctx.timeout).map_err(fail)?;
    let mut t = lock(tally);
    t.0 += 1;
    t.1 += sizes.len();
    Ok(())
}

/// Receives with `ms`-millisecond timeouts, calling again after each, until `n`
/// messages arrived, or the peer reported and 200 ms passed quietly; stops at the first
/// receive error. Returns what arrived, and whether the peer reported.
fn receive_retrying(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peer: &mut PeerProcess,
    n: usize,
    ms: u64,
) -> crate::Result<(Observation, bool)> {
    link.local.set_timeout(Some(Duration::from_millis(ms)))?;
    let deadline = Instant::now() + ctx.timeout;
    let mut obs = Observation::default();
    let mut done = false;
    let mut quiet_since: Option<Instant> = None;
    let mut buf = Vec::new();
    // One message more than sent: a doubled one shows.
    while obs.received.len() <= n {
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                op: format!(
                    "{}: receive message {} of {n} (retrying)",
                    ctx.transport.name(),
                    obs.received.len() + 1
                ),
                after: ctx.timeout,
            });
        }
        match link.local.recv(&mut buf) {
            Ok(len) => {
                quiet_since = None;
                obs.received.push(Ok(buf[..len].to_vec()));
            }
            Err(Error::Timeout { .. }) => {
                if !done && let Some(ev) = peer.try_expect("reply")? {
                    done = true;
                    if let Event::Sent { errors, .. } = ev {
                        obs.send_errors = errors;
                    }
                }
                if done {
                    let q = *quiet_since.get_or_insert_with(Instant::now);
                    if q.elapsed() > Duration::from_millis(200) {
                        break;
                    }
                }
            }
            Err(Error::Closed { .. }) => break,
            Err(e) => {
                obs.received.push(Err(e.to_string()));
                return Ok((obs, done));
            }
        }
    }
    if !done && obs.received.len() <= n {
        match peer.expect(deadline, "reply")? {
            Event::Sent { errors, .. } => obs.send_errors = errors,
            other => return Err(Error::Peer(format!("expected sent, got {other:?}"))),
        }
        done = true;
    }
    Ok((obs, done))
}

/// Runs a [`Cmd::SendRetry`] in the peer.
pub(crate) fn send_retry(
    end: &mut dyn Endpoint,
    seed: u64,
    sizes: &[usize],
    nonblocking: bool,
    timeout_ms: u64,
    deadline_ms: u64,
) -> Event {
    let mut errors: Vec<(usize, ErrorReport)> = Vec::new();
    let setup = if nonblocking {
        end.set_nonblocking(true)
    } else {
        end.set_timeout(Some(Duration::from_millis(timeout_ms)))
    };
    // Without a nonblocking mode: a short send timeout instead.
    let setup = match setup {
        Err(Error::Unsupported(_)) => end.set_timeout(Some(Duration::from_millis(timeout_ms))),
        r => r,
    };
    if let Err(e) = setup {
        errors.push((0, e.report()));
    }
    let deadline = Instant::now() + Duration::from_millis(deadline_ms);
    let mut buf = Vec::new();
    'messages: for (i, &len) in sizes.iter().enumerate() {
        content(seed, i, len, &mut buf);
        loop {
            match end.send(&buf) {
                Ok(()) => break,
                Err(Error::WouldBlock { .. } | Error::Timeout { .. })
                    if Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_micros(500));
                }
                Err(e) => {
                    errors.push((i, e.report()));
                    break 'messages;
                }
            }
        }
    }
    let _ = end.set_nonblocking(false);
    let r = end
        .set_timeout(Some(Duration::from_secs(10)))
        .and_then(|()| end.flush());
    if let Err(e) = r {
        errors.push((sizes.len(), e.report()));
    }
    let _ = end.set_timeout(Some(crate::peer::PEER_WAIT));
    Event::Sent {
        count: sizes.len(),
        errors,
    }
}
