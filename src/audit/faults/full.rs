//! `full`: on a full buffer a nonblocking send gives WouldBlock, a blocking one waits
//! to its deadline, a reader that stops reading holds the sender back, and nothing
//! accepted is lost.

use std::thread;
use std::time::{Duration, Instant};

use super::{Outcome, Step, collect, declared_violations, failed};
use crate::audit::exchange::{Kind, analyse, start};
use crate::audit::role::{Cmd, Event, PeerProcess, Stop};
use crate::audit::{Ctx, PropertyResult, Verdict, could_not_run, not_applicable, result};
use crate::error::{Error, Result};
use crate::transport::Link;

/// Messages a `full` fill may send before it calls the buffer unbounded.
const FILL_LIMIT: usize = 20_000;

/// How the first fill of a link nobody reads ended.
struct Fill {
    /// Messages accepted before the refusal (or the limit).
    k: usize,
    /// Whether the fill was nonblocking (the transport has the mode).
    nonblocking: bool,
    /// Whether a send was refused: WouldBlock, or a blocking send's timeout.
    bounded: bool,
    /// Messages that blocking sends took after the refusal, before one timed out.
    more: usize,
}

/// The property: a scripted run, see [`full_run`].
pub(super) fn full(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "full";
    let declared = "WouldBlock when full, sender waits, nothing lost";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    match full_run(ctx, name) {
        Ok(Ok(observed)) => result(
            name,
            declared,
            observed,
            Verdict::Pass,
            "peer fills without a reader, then the reader drains".into(),
        ),
        Ok(Err((verdict, observed, detail))) => result(name, declared, observed, verdict, detail),
        Err(e) => could_not_run(name, declared, e),
    }
}

/// The run: fill until refused, block on the full buffer, drain, then a sender of more
/// than the buffer holds against a reader that stops reading.
fn full_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    let g = ctx.transport.guarantees();
    // One frame of this size fits in PIPE_BUF, so a pipe takes it whole or not at all.
    let size = g.max_message.min(256);
    let (mut link, mut peer) = start(ctx, name)?;
    // 1. Nobody reading: fill until refused.
    let mut fill = match fill_until_refused(ctx, &mut peer, size)? {
        Ok(f) => f,
        Err(f) => return Ok(Err(f)),
    };
    // 2. Blocking with a short timeout on the full buffer: the sender waits, then gives up.
    let mut blocked = String::new();
    if fill.bounded && fill.nonblocking {
        match block_on_full(ctx, &mut peer, size, fill.k)? {
            Ok(0) => blocked = "; a blocking send on it timed out".into(),
            Ok(more) => {
                blocked = format!(
                    "; blocking sends on it took {more} more (the buffer grew), then one timed out"
                );
                fill.more = more;
            }
            Err(f) => return Ok(Err(f)),
        }
    }
    // 3. Drain: exactly the k accepted messages, in order, whole; nothing of the refused.
    let loss = match drain(ctx, &mut link, &mut peer, size, fill.k + fill.more)? {
        Ok(loss) => loss,
        Err(f) => return Ok(Err(f)),
    };
    // 4. A reader that stops reading: a blocking sender of more than the buffer holds.
    let back = match stopped_reader(ctx, &mut link, peer, size, &fill)? {
        Ok(back) => back,
        Err(f) => return Ok(Err(f)),
    };
    let mut first = describe_fill(&fill, size, &blocked);
    if let Some(l) = loss {
        first = format!("{first} (loss, which the transport does not promise against: {l})");
    }
    Ok(Ok(format!("{first}; {back}")))
}

/// Step 1: the peer fills nonblocking until refused; without a nonblocking mode, in
/// blocking mode with a short send timeout instead. A refusal other than WouldBlock
/// (or the timeout) fails.
fn fill_until_refused(ctx: &Ctx<'_>, peer: &mut PeerProcess, size: usize) -> Result<Step<Fill>> {
    peer.command(&Cmd::Fill {
        seed: 11,
        first: 0,
        size,
        limit: FILL_LIMIT,
        nonblocking: true,
        timeout_ms: 0,
    })?;
    let (k, kind, error) = match peer.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::Filled { accepted, error } => (accepted, Stop::of(&error), error),
        other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
    };
    let nonblocking = kind != Stop::Unsupported;
    let (k, kind, error) = if nonblocking {
        (k, kind, error)
    } else {
        match blocking_fill(ctx, peer, size)? {
            Ok(x) => x,
            Err(f) => return Ok(Err(f)),
        }
    };
    let bounded = match (nonblocking, kind) {
        (true, Stop::WouldBlock) | (false, Stop::Timeout) => true,
        (_, Stop::None) => false,
        (true, _) => {
            return Ok(failed(
                format!("nonblocking send {k} failed with {kind}: {error:?}"),
                "a full buffer must give WouldBlock",
            ));
        }
        (false, _) => {
            return Ok(failed(
                format!("blocking send {k} (200 ms timeout) failed with {kind}: {error:?}"),
                "a full buffer must make a blocking sender wait to its deadline",
            ));
        }
    };
    Ok(Ok(Fill {
        k,
        nonblocking,
        bounded,
        more: 0,
    }))
}

/// Step 1b, without a nonblocking mode: fill in blocking mode with a 200 ms send
/// timeout; a full buffer then shows as the first send that times out. Returns
/// (accepted, how it stopped, the error).
fn blocking_fill(
    ctx: &Ctx<'_>,
    peer: &mut PeerProcess,
    size: usize,
) -> Result<Step<(usize, Stop, Option<crate::error::ErrorReport>)>> {
    peer.command(&Cmd::Fill {
        seed: 11,
        first: 0,
        size,
        limit: FILL_LIMIT,
        nonblocking: false,
        timeout_ms: 200,
    })?;
    // Blocking sends until one times out: longer than a nonblocking fill.
    let ev = match peer.expect(Instant::now() + 2 * ctx.timeout, "reply") {
        Err(Error::Timeout { .. }) => {
            return Ok(failed(
                format!(
                    "blocking sends with a 200 ms timeout into a link nobody reads were \
                     still waiting after {:?}",
                    2 * ctx.timeout
                ),
                "a full buffer must make a blocking sender wait to its deadline, not forever",
            ));
        }
        ev => ev?,
    };
    match ev {
        Event::Filled { accepted, error } => Ok(Ok((accepted, Stop::of(&error), error))),
        other => Err(Error::Peer(format!("expected filled, got {other:?}"))),
    }
}

/// Step 2: blocking sends with a 200 ms timeout on the full buffer, continuing the
/// fill's sequence, until one times out. A link whose kernel buffer grows after the
/// refusal (TCP's autotuning, loopback segments moving from the send queue to the
/// receive queue) may take a few more first; a send that never waits does not time out
/// within [`FILL_LIMIT`] and fails. Returns how many more were accepted.
fn block_on_full(
    ctx: &Ctx<'_>,
    peer: &mut PeerProcess,
    size: usize,
    k: usize,
) -> Result<Step<usize>> {
    peer.command(&Cmd::Fill {
        seed: 11,
        first: k,
        size,
        limit: FILL_LIMIT - k.min(FILL_LIMIT - 1),
        nonblocking: false,
        timeout_ms: 200,
    })?;
    match peer.expect(Instant::now() + 2 * ctx.timeout, "reply")? {
        Event::Filled { accepted, error } if Stop::of(&error) == Stop::Timeout => Ok(Ok(accepted)),
        Event::Filled { accepted, error } => {
            let kind = Stop::of(&error);
            Ok(failed(
                format!(
                    "blocking sends on the full buffer did not time out: {kind} after \
                     {accepted} more accepted, {error:?}"
                ),
                "the sender must wait up to its deadline",
            ))
        }
        other => Err(Error::Peer(format!("expected filled, got {other:?}"))),
    }
}

/// Step 3: drain the `k` accepted messages while the peer flushes (a byte stream may
/// hold the rest of the last accepted message until then, see `Endpoint::flush`).
/// Returns the loss seen, which only a reliable transport promises against.
fn drain(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peer: &mut PeerProcess,
    size: usize,
    k: usize,
) -> Result<Step<Option<String>>> {
    peer.command(&Cmd::Flush)?;
    let (obs, ev) = collect(ctx, link, peer, k + 1, false)?;
    let flushed = match ev {
        Some(ev) => ev,
        None => peer.expect(Instant::now() + ctx.timeout, "reply")?,
    };
    match flushed {
        Event::Flushed { error: None } => {}
        Event::Flushed { error: Some(e) } => {
            return Ok(failed(
                format!("the sender could not flush while the reader drained: {e}"),
                "what a send accepted must go out once the reader reads",
            ));
        }
        other => return Err(Error::Peer(format!("expected flushed, got {other:?}"))),
    }
    let v = analyse(11, &vec![size; k], &obs);
    if let Some(text) = declared_violations(ctx, &v) {
        return Ok(failed(
            format!("after {k} accepted and one refused: {text}"),
            "nothing accepted may be lost; nothing refused may arrive",
        ));
    }
    Ok(Ok(v
        .iter()
        .find(|v| v.kind == Kind::Loss)
        .map(|v| v.to_string())))
}

/// Step 4: the peer sends more than the buffer holds while this process does not read
/// for 300 ms, then reads all; nothing may be lost. Ends the peer; returns the text on
/// the backpressure seen.
fn stopped_reader(
    ctx: &Ctx<'_>,
    link: &mut Link,
    mut peer: PeerProcess,
    size: usize,
    fill: &Fill,
) -> Result<Step<String>> {
    let bounded = fill.bounded;
    let n = if bounded { 2 * fill.k + 16 } else { 64 };
    peer.command(&Cmd::Send {
        seed: 13,
        sizes: vec![size; n],
    })?;
    thread::sleep(Duration::from_millis(300));
    let early = peer.try_expect("reply")?;
    let finished_early = early.is_some();
    let (mut obs, ev) = match early {
        Some(ev) => (collect(ctx, link, &mut peer, n, false)?.0, Some(ev)),
        None => collect(ctx, link, &mut peer, n, false)?,
    };
    if let Some(Event::Sent { errors, .. }) = &ev {
        obs.send_errors = errors.clone();
    }
    if ev.is_none() {
        match peer.expect(Instant::now() + ctx.timeout, "reply")? {
            Event::Sent { errors, .. } => obs.send_errors = errors,
            other => return Err(Error::Peer(format!("expected sent, got {other:?}"))),
        }
    }
    let v = analyse(13, &vec![size; n], &obs);
    if let Some(text) = declared_violations(ctx, &v) {
        return Ok(failed(
            format!("with the reader stopped for 300 ms: {text}"),
            "a stopped reader must cause backpressure, not loss",
        ));
    }
    peer.finish(Instant::now() + ctx.timeout)?;
    Ok(Ok(match (bounded, finished_early) {
        (true, false) => format!(
            "a reader stopped for 300 ms held the sender of {n} back (backpressure); all arrived"
        ),
        (true, true) => {
            format!("the sender of {n} finished while the reader was stopped; all arrived")
        }
        (false, _) => format!("{n} more sent while the reader was stopped; all arrived"),
    }))
}

/// The observed text of steps 1 to 3: how the buffer filled and what arrived.
fn describe_fill(fill: &Fill, size: usize, blocked: &str) -> String {
    let k = fill.k;
    if fill.bounded && fill.nonblocking {
        format!(
            "WouldBlock after {k} messages of {size} bytes{blocked}; all {} arrived, nothing \
             refused did",
            k + fill.more
        )
    } else if fill.bounded {
        format!(
            "no nonblocking mode; a blocking send timed out (200 ms) after {k} messages of \
             {size} bytes; all {k} arrived, nothing refused did"
        )
    } else if !fill.nonblocking {
        format!(
            "no nonblocking mode; no bound: {FILL_LIMIT} blocking sends of {size} bytes accepted"
        )
    } else {
        format!("no bound: {FILL_LIMIT} messages of {size} bytes accepted without WouldBlock")
    }
}
