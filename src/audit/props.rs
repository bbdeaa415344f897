//! The foundation properties: ordering, boundaries, integrity, oversize.

use std::sync::Mutex;
use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestError, TestRunner};

use super::exchange::{Kind, analyse, receive, send_case, start};
use super::role::{Cmd, Event};
use super::{Ctx, Property, PropertyResult, Verdict};
use crate::transport::{Boundaries, Guarantees, Ordering};

/// The foundation properties, in report order.
pub(super) fn all() -> Vec<Property> {
    vec![
        Property {
            name: "ordering",
            about: "up to 1000 messages arrive in the order they were sent",
            run: ordering,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "boundaries",
            about: "each message arrives whole and separate, at edge sizes up to the maximum",
            run: boundaries,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "integrity",
            about: "the content arrives byte-identical",
            run: integrity,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "priority",
            about: "queued messages arrive highest priority first, FIFO within one priority",
            run: priority,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "handoff",
            about: "a transport without data: N posts allow exactly N waits, none coalesced",
            run: handoff,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "oversize",
            about: "a message over the maximum is refused naming the limit; the link still works",
            run: oversize,
            applies: super::every,
            exclusive: false,
        },
    ]
}

/// A result whose declaration is made per transport (see [`super::result`]).
fn result(
    name: &str,
    declared: String,
    observed: String,
    verdict: Verdict,
    detail: String,
) -> PropertyResult {
    super::result(name, &declared, observed, verdict, detail)
}

/// The result for a transport that carries no data, or `None`.
fn skip_if_no_data(ctx: &Ctx<'_>, name: &str, declared: &str) -> Option<PropertyResult> {
    (!ctx.transport.guarantees().carries_data).then(|| {
        result(
            name,
            declared.into(),
            "not applicable".into(),
            Verdict::NotApplicable,
            "the transport carries no data (synchronisation only)".into(),
        )
    })
}

/// An error as a failed proptest case.
fn fail(e: crate::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A proptest runner of `cases` cases, without failure persistence.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PtConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 64,
        ..PtConfig::default()
    })
}

/// A short text for a list of sizes.
fn sizes_text(sizes: &[usize]) -> String {
    if sizes.len() <= 12 {
        format!("{sizes:?}")
    } else {
        format!(
            "{} messages, sizes {:?} ... {:?}",
            sizes.len(),
            &sizes[..6],
            &sizes[sizes.len() - 3..]
        )
    }
}

/// Runs a property whose cases are (seed, sizes) sent by the peer and checked here.
/// `focus` is the kinds of violation the property is about: a declared violation of any
/// kind fails it, an undeclared one of a focus kind is reported as observed.
fn send_property(
    ctx: &Ctx<'_>,
    name: &str,
    declared: String,
    strategy: impl Strategy<Value = (u64, Vec<usize>)>,
    focus: &[Kind],
    kept: &str,
) -> PropertyResult {
    if let Some(r) = skip_if_no_data(ctx, name, &declared) {
        return r;
    }
    let g = ctx.transport.guarantees();
    let seen: Mutex<(u32, usize, Vec<String>)> = Mutex::new((0, 0, Vec::new()));
    let start = Instant::now();
    let outcome = runner(ctx.cases).run(&strategy, |(seed, sizes)| {
        let sizes: Vec<usize> = sizes.into_iter().map(|s| s.min(g.max_message)).collect();
        let obs =
            send_case(ctx, name, seed, &sizes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let violations = analyse(seed, &sizes, &obs);
        let (declared_v, other): (Vec<_>, Vec<_>) =
            violations.into_iter().partition(|v| v.kind.declared_by(&g));
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        s.0 += 1;
        s.1 += sizes.len();
        if !declared_v.is_empty() {
            let text: Vec<String> = declared_v.iter().take(3).map(|v| v.to_string()).collect();
            return Err(TestCaseError::fail(text.join("; ")));
        }
        s.2.extend(
            other
                .into_iter()
                .filter(|v| focus.contains(&v.kind))
                .map(|v| v.to_string()),
        );
        Ok(())
    });
    let (cases, messages, notes) = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    let took = start.elapsed();
    match outcome {
        Ok(()) if notes.is_empty() => result(
            name,
            declared,
            format!("{kept} in {cases} cases ({messages} messages)"),
            Verdict::Pass,
            format!("{} cases, {:.1} s", ctx.cases, took.as_secs_f64()),
        ),
        Ok(()) => result(
            name,
            declared,
            format!(
                "not promised, and not kept: {} ({} times)",
                notes[0],
                notes.len()
            ),
            Verdict::Pass,
            format!("{cases} cases, {messages} messages; not declared, so not a failure"),
        ),
        Err(TestError::Fail(why, (seed, sizes))) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!("minimal case: seed {seed}, sizes {}", sizes_text(&sizes)),
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

fn ordering_text(g: &Guarantees) -> String {
    match g.ordering {
        Ordering::Fifo => "FIFO".into(),
        Ordering::Priority => "priority, then FIFO".into(),
        Ordering::None => "none".into(),
    }
}

fn ordering(ctx: &Ctx<'_>) -> PropertyResult {
    let g = ctx.transport.guarantees();
    let strategy = (any::<u64>(), vec(4usize..=64, 1..=1000));
    send_property(
        ctx,
        "ordering",
        ordering_text(&g),
        strategy,
        &[Kind::Order, Kind::Loss],
        "in order",
    )
}

fn boundaries_text(g: &Guarantees) -> String {
    match g.boundaries {
        Boundaries::Native => format!("kept by the kernel, up to {} bytes", g.max_message),
        Boundaries::Framed => format!("kept by framing, up to {} bytes", g.max_message),
        Boundaries::None => "not kept".into(),
    }
}

fn boundaries(ctx: &Ctx<'_>) -> PropertyResult {
    let g = ctx.transport.guarantees();
    let max = g.max_message;
    if let Some(r) = edge_sweep(ctx, &g) {
        return r;
    }
    let size = prop_oneof![
        3 => select(super::faults::edge_sizes(max, g.many_senders)),
        1 => 0..=max.min(256 * 1024),
    ];
    let strategy = (any::<u64>(), vec(size, 1..=8));
    send_property(
        ctx,
        "boundaries",
        boundaries_text(&g),
        strategy,
        &[Kind::Merge, Kind::Split],
        "whole and separate",
    )
}

/// Before the generated cases, one case that has them all: every edge size (see
/// [`super::faults::edge_sizes`]), each followed by a one-byte message, so that a size
/// where the code path changes is always tried, and always with a message after it.
/// `Some` is its failure.
fn edge_sweep(ctx: &Ctx<'_>, g: &Guarantees) -> Option<PropertyResult> {
    if !g.carries_data {
        return None;
    }
    let sizes: Vec<usize> = super::faults::edge_sizes(g.max_message, g.many_senders)
        .into_iter()
        .flat_map(|s| [s, 1.min(g.max_message)])
        .collect();
    let seed = 0xed6e;
    let why = match send_case(ctx, "boundaries", seed, &sizes) {
        Err(e) => e.to_string(),
        Ok(obs) => {
            let v: Vec<String> = analyse(seed, &sizes, &obs)
                .into_iter()
                .filter(|v| v.kind.declared_by(g))
                .take(3)
                .map(|v| v.to_string())
                .collect();
            if v.is_empty() {
                return None;
            }
            v.join("; ")
        }
    };
    Some(result(
        "boundaries",
        boundaries_text(g),
        why,
        Verdict::Fail,
        format!(
            "the edge sweep (each edge size, then one byte): seed {seed}, sizes {}",
            sizes_text(&sizes)
        ),
    ))
}

fn integrity(ctx: &Ctx<'_>) -> PropertyResult {
    let max = ctx.transport.guarantees().max_message;
    let strategy = (any::<u64>(), vec(0..=max.min(256 * 1024), 1..=16));
    send_property(
        ctx,
        "integrity",
        "byte-identical".into(),
        strategy,
        &[Kind::Corrupt],
        "byte-identical",
    )
}

/// The property: cases of (bytes over the maximum, seed).
fn oversize(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "oversize";
    let max = ctx.transport.guarantees().max_message;
    let declared = format!("refused over {max} bytes");
    if let Some(r) = skip_if_no_data(ctx, name, &declared) {
        return r;
    }
    if max >= 1 << 30 {
        return result(
            name,
            declared,
            "not run".into(),
            Verdict::NotRun,
            format!("the maximum of {max} bytes is too large to send in a test"),
        );
    }
    let cases = ctx.cases.min(4);
    let last_error = Mutex::new(String::new());
    // A limit off by a few bytes: the first sizes over the maximum, always.
    for extra in [1, 2, 3] {
        if let Err(why) = oversize_case(ctx, name, max, (extra, 1), &last_error) {
            return result(
                name,
                declared,
                why.to_string(),
                Verdict::Fail,
                format!("edge case: {} bytes ({max} + {extra})", max + extra),
            );
        }
    }
    let outcome = runner(cases).run(&(1usize..=4096, any::<u64>()), |(extra, seed)| {
        oversize_case(ctx, name, max, (extra, seed), &last_error)
    });
    match outcome {
        Ok(()) => result(
            name,
            declared,
            format!(
                "refused: {}; link still works",
                last_error.into_inner().unwrap_or_else(|p| p.into_inner())
            ),
            Verdict::Pass,
            format!("{max} + 1, 2, 3, then {cases} cases up to {max} + 4096 bytes"),
        ),
        Err(TestError::Fail(why, (extra, _))) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!("minimal case: {} bytes ({max} + {extra})", max + extra),
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

/// One case: the peer sends `max + extra` bytes, which must be refused naming the limit
/// `max` (its text kept in `last_error`); a message of seed `seed` then arrives intact.
fn oversize_case(
    ctx: &Ctx<'_>,
    name: &str,
    max: usize,
    (extra, seed): (usize, u64),
    last_error: &Mutex<String>,
) -> Result<(), TestCaseError> {
    let (mut link, mut peer) = start(ctx, name).map_err(fail)?;
    let len = max + extra;
    peer.command(&Cmd::Oversize { len }).map_err(fail)?;
    match peer
        .expect(Instant::now() + ctx.timeout, "reply")
        .map_err(fail)?
    {
        Event::Oversize { error: None } => {
            return Err(TestCaseError::fail(format!(
                "a message of {len} bytes, over the declared maximum of {max}, was accepted"
            )));
        }
        Event::Oversize { error: Some(e) } => {
            if e.max != Some(max) {
                return Err(TestCaseError::fail(format!(
                    "refused, but not as too large for the limit {max} ({:?}, limit {:?}): {e}",
                    e.kind, e.max
                )));
            }
            *last_error.lock().unwrap_or_else(|p| p.into_inner()) = e.message;
        }
        other => {
            return Err(TestCaseError::fail(format!(
                "expected oversize, got {other:?}"
            )));
        }
    }
    let sizes = [max.min(64)];
    let obs = receive(ctx, &mut link, &mut peer, seed, &sizes).map_err(fail)?;
    let v = analyse(seed, &sizes, &obs);
    if let Some(v) = v.first() {
        return Err(TestCaseError::fail(format!(
            "after the refusal the link is broken: {v}"
        )));
    }
    peer.finish(Instant::now() + ctx.timeout).map_err(fail)?;
    Ok(())
}

/// The property: cases of (seed, up to 8 (size, priority) messages).
fn priority(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "priority";
    let g = ctx.transport.guarantees();
    let declared = ordering_text(&g);
    if g.ordering != Ordering::Priority {
        return result(
            name,
            declared,
            "not applicable".into(),
            Verdict::NotApplicable,
            "the transport has no message priorities".into(),
        );
    }
    let max = g.max_message.min(512);
    // At most 8 messages: they must all fit in the queue (Linux's default depth is 10)
    // before the first is received, or the order says nothing.
    let strategy = (any::<u64>(), vec((0..=max, 0u32..4), 1..=8));
    let outcome = runner(ctx.cases).run(&strategy, |(seed, msgs)| {
        priority_case(ctx, name, seed, &msgs)
    });
    match outcome {
        Ok(()) => result(
            name,
            declared,
            "highest priority first, FIFO within one priority".into(),
            Verdict::Pass,
            format!(
                "{} cases of up to 8 queued messages, priorities 0-3",
                ctx.cases
            ),
        ),
        Err(TestError::Fail(why, (seed, msgs))) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!("minimal case: seed {seed}, (size, priority) {msgs:?}"),
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

/// One case: the peer queues `msgs` (size, priority) before anything is received; they
/// must arrive highest priority first, FIFO within one priority.
fn priority_case(
    ctx: &Ctx<'_>,
    name: &str,
    seed: u64,
    msgs: &[(usize, u32)],
) -> Result<(), TestCaseError> {
    let sizes: Vec<usize> = msgs.iter().map(|m| m.0).collect();
    let priorities: Vec<u32> = msgs.iter().map(|m| m.1).collect();
    let (mut link, mut peer) = start(ctx, name).map_err(fail)?;
    peer.command(&Cmd::SendPriority {
        seed,
        sizes: sizes.clone(),
        priorities: priorities.clone(),
    })
    .map_err(fail)?;
    match peer
        .expect(Instant::now() + ctx.timeout, "reply")
        .map_err(fail)?
    {
        Event::Sent { errors, .. } if errors.is_empty() => {}
        other => {
            return Err(TestCaseError::fail(format!(
                "the peer could not send: {other:?}"
            )));
        }
    }
    link.local
        .set_timeout(Some(std::time::Duration::from_secs(2)))
        .map_err(fail)?;
    let got = arrival_order(&mut link, seed, &sizes)?;
    let mut want: Vec<usize> = (0..sizes.len()).collect();
    want.sort_by_key(|&i| (std::cmp::Reverse(priorities[i]), i));
    peer.finish(Instant::now() + ctx.timeout).map_err(fail)?;
    if got != want {
        return Err(TestCaseError::fail(format!(
            "received messages {got:?}, expected {want:?} for priorities {priorities:?}"
        )));
    }
    Ok(())
}

/// Receives `sizes.len()` messages of case `seed`: the index of each, in arrival order.
fn arrival_order(
    link: &mut crate::transport::Link,
    seed: u64,
    sizes: &[usize],
) -> Result<Vec<usize>, TestCaseError> {
    let expected_msgs: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut m = Vec::new();
            super::exchange::content(seed, i, len, &mut m);
            m
        })
        .collect();
    let mut got = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..sizes.len() {
        link.local.recv(&mut buf).map_err(fail)?;
        let idx = (0..sizes.len()).find(|&i| !got.contains(&i) && expected_msgs[i] == buf);
        match idx {
            Some(i) => got.push(i),
            None => {
                return Err(TestCaseError::fail(format!(
                    "a {}-byte message matches none sent",
                    buf.len()
                )));
            }
        }
    }
    Ok(got)
}

/// The property: cases of 1 to 32 posts.
fn handoff(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "handoff";
    let g = ctx.transport.guarantees();
    if g.carries_data {
        return result(
            name,
            "n/a".into(),
            "not applicable".into(),
            Verdict::NotApplicable,
            "the transport carries data (see ordering and boundaries)".into(),
        );
    }
    let declared = "N posts, N waits".to_string();
    let outcome = runner(ctx.cases).run(&(1usize..=32), |n| handoff_case(ctx, name, n));
    match outcome {
        Ok(()) => result(
            name,
            declared,
            "every post allowed one wait, and no more".into(),
            Verdict::Pass,
            format!("{} cases of 1 to 32 posts from another process", ctx.cases),
        ),
        Err(TestError::Fail(why, n)) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!("minimal case: {n} posts"),
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

/// One case: the peer posts `n` times; `n` waits succeed, and the next one times out.
fn handoff_case(ctx: &Ctx<'_>, name: &str, n: usize) -> Result<(), TestCaseError> {
    let (mut link, mut peer) = start(ctx, name).map_err(fail)?;
    peer.command(&Cmd::Send {
        seed: 0,
        sizes: vec![0; n],
    })
    .map_err(fail)?;
    match peer
        .expect(Instant::now() + ctx.timeout, "reply")
        .map_err(fail)?
    {
        Event::Sent { errors, .. } if errors.is_empty() => {}
        other => {
            return Err(TestCaseError::fail(format!(
                "the peer could not post: {other:?}"
            )));
        }
    }
    let mut buf = Vec::new();
    link.local
        .set_timeout(Some(std::time::Duration::from_secs(2)))
        .map_err(fail)?;
    for i in 0..n {
        if let Err(e) = link.local.recv(&mut buf) {
            return Err(TestCaseError::fail(format!(
                "wait {} of {n} failed: {e}",
                i + 1
            )));
        }
    }
    link.local
        .set_timeout(Some(std::time::Duration::from_millis(50)))
        .map_err(fail)?;
    match link.local.recv(&mut buf) {
        Err(crate::Error::Timeout { .. }) => {}
        Ok(_) => {
            return Err(TestCaseError::fail(format!(
                "wait {} succeeded after {n} posts",
                n + 1
            )));
        }
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "wait {} failed oddly: {e}",
                n + 1
            )));
        }
    }
    peer.finish(Instant::now() + ctx.timeout).map_err(fail)?;
    Ok(())
}
