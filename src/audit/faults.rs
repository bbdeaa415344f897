//! Fault properties: peer death, signal storms, full buffers, stale names, descriptor
//! leaks and resource limits, many senders. Each runs with real peer processes; each
//! reports what it saw next to what the transport declares.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering as AtOrd};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestError, TestRunner};

use super::exchange::{Kind, Observation, analyse, content, ready, receive, spawn, start};
use super::role::{Cmd, Event, PeerProcess, Stop};
use super::{Ctx, Property, PropertyResult, Verdict, could_not_run, result, skipped};
use crate::error::{Error, Result};
use crate::peer::PeerOptions;
use crate::peer::storm::{self, Storm};
use crate::transport::{Config, Link, Ordering, PeerEnd, Rendezvous};

/// The fault properties, in report order.
pub(super) fn all() -> Vec<Property> {
    vec![
        Property {
            name: "death",
            about: "a peer SIGKILLed mid-send gives a clean error, never a partial message; names are removed",
            run: death,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "eintr",
            about: "a SIGURG storm (no SA_RESTART) on both sides surfaces no EINTR; nothing lost or duplicated",
            run: eintr,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "full",
            about: "full buffer: nonblocking gives WouldBlock, blocking waits to its deadline, a reader that stops reading causes backpressure, nothing lost",
            run: full,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "stale",
            about: "a name left by a SIGKILLed owner is reclaimed on reopen; a live owner's name is refused and its object kept",
            run: stale,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "fd-flat",
            about: "open descriptors stay flat over 10,000 messages on both sides; a low RLIMIT_NOFILE gives clean errors",
            run: fd_flat,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "fd-sigpending",
            about: "with RLIMIT_SIGPENDING used up, then nearly so, in the receiver: clean errors or throttling, nothing partial or lost",
            run: fd_sigpending,
            applies: super::every,
            exclusive: true,
        },
        Property {
            name: "senders",
            about: "4 to 8 processes sending at once: no message lost or interleaved up to the declared atomic size",
            run: senders,
            applies: super::every,
            exclusive: false,
        },
    ]
}

/// Cases from the environment variable `var`, or `default`.
fn env_cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PtConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 16,
        ..PtConfig::default()
    })
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The declared violations among `v`, as one text, or `None`.
fn declared_violations(ctx: &Ctx<'_>, v: &[super::exchange::Violation]) -> Option<String> {
    let g = ctx.transport.guarantees();
    let d: Vec<String> = v
        .iter()
        .filter(|v| v.kind.declared_by(&g))
        .take(3)
        .map(|v| v.to_string())
        .collect();
    (!d.is_empty()).then(|| d.join("; "))
}

/// Receives up to `n` messages without commanding the peer: until `n` arrived, or the
/// peer reported (its event is returned) and one slice passed quietly, or an error.
fn collect(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peer: &mut PeerProcess,
    n: usize,
    quiet: bool,
) -> Result<(Observation, Option<Event>)> {
    link.local.set_timeout(Some(Duration::from_millis(50)))?;
    let deadline = Instant::now() + ctx.timeout;
    let mut obs = Observation::default();
    let mut event = None;
    let mut buf = Vec::new();
    while obs.received.len() < n {
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                op: format!(
                    "{}: receive message {} of {n}",
                    ctx.transport.name(),
                    obs.received.len() + 1
                ),
                after: ctx.timeout,
            });
        }
        match link.local.recv(&mut buf) {
            Ok(len) => obs.received.push(Ok(buf[..len].to_vec())),
            Err(Error::Timeout { .. }) if event.is_some() || quiet => break,
            Err(Error::Timeout { .. }) => event = peer.try_expect("reply")?,
            Err(Error::Closed { .. }) => break,
            Err(e) => {
                obs.received.push(Err(e.to_string()));
                break;
            }
        }
    }
    if let Some(Event::Sent { errors, .. }) = &event {
        obs.send_errors = errors.clone();
    }
    Ok((obs, event))
}

// ---------------------------------------------------------------------------- death

/// Default cases of `death`; `IPC_AUDIT_DEATH_CASES` overrides it.
const DEATH_CASES: u32 = 6;

#[derive(Default)]
struct DeathTally {
    cases: u32,
    delivered: usize,
    ends: HashMap<&'static str, u32>,
}

fn death(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "death";
    let declared = "clean error, no partial message, names removed";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return skipped(name, declared, "the transport carries no data");
    }
    let cases = env_cases("IPC_AUDIT_DEATH_CASES", DEATH_CASES);
    let big = g.max_message.min(256 * 1024);
    let size = prop_oneof![2 => Just(big), 1 => 1..=big];
    let strategy = (any::<u64>(), 0u64..20_000, size);
    let tally = Mutex::new(DeathTally::default());
    let outcome = runner(cases).run(&strategy, |(seed, delay_us, size)| {
        let (mut link, mut peer) = start(ctx, name).map_err(fail)?;
        let path = link.path.clone();
        // Enough to be still sending whenever the kill lands.
        let count = (64 << 20) / size.max(1024);
        let sizes = vec![size; count.clamp(16, 4000)];
        link.local
            .set_timeout(Some(Duration::from_millis(100)))
            .map_err(fail)?;
        peer.command(&Cmd::Send {
            seed,
            sizes: sizes.clone(),
        })
        .map_err(fail)?;
        let pid = Pid::from_raw(peer.pid() as i32);
        let killed = Arc::new(AtomicBool::new(false));
        let k = killed.clone();
        let killer = thread::spawn(move || {
            thread::sleep(Duration::from_micros(delay_us));
            let _ = kill(pid, Signal::SIGKILL);
            k.store(true, AtOrd::Release);
        });
        let mut obs = Observation::default();
        let mut buf = Vec::new();
        let mut deadline = Instant::now() + ctx.timeout;
        let mut after_kill = false;
        let end: std::result::Result<&'static str, String> = loop {
            if !after_kill && killed.load(AtOrd::Acquire) {
                after_kill = true;
                deadline = Instant::now() + ctx.timeout;
            }
            if Instant::now() >= deadline {
                break Err(format!(
                    "no error within {:?} of the peer's death ({} messages received)",
                    ctx.timeout,
                    obs.received.len()
                ));
            }
            match link.local.recv(&mut buf) {
                Ok(n) => obs.received.push(Ok(buf[..n].to_vec())),
                Err(Error::Closed { .. }) => break Ok("closed"),
                Err(Error::Timeout { .. }) if after_kill => break Ok("timeout"),
                Err(Error::Timeout { .. }) => {}
                Err(Error::Frame(_)) => break Ok("frame error"),
                Err(Error::Protocol(_)) => break Ok("protocol error"),
                Err(e) => break Err(format!("unclean error after the peer's death: {e}")),
            }
        };
        let _ = killer.join();
        let _ = peer.wait_exit(Instant::now() + ctx.timeout);
        drop(peer);
        // A partial message delivered as valid is the worse fault: report it first.
        let v: Vec<_> = analyse(seed, &sizes, &obs)
            .into_iter()
            .filter(|v| v.kind != Kind::Loss && v.kind != Kind::Failure)
            .collect();
        if let Some(text) = declared_violations(ctx, &v) {
            return Err(TestCaseError::fail(format!(
                "delivered as valid after the kill at {delay_us} µs: {text}"
            )));
        }
        let end = end.map_err(TestCaseError::fail)?;
        drop(link);
        if let Some(p) = path
            && std::fs::symlink_metadata(&p).is_ok()
        {
            return Err(TestCaseError::fail(format!(
                "{} is still there after the link was dropped",
                p.display()
            )));
        }
        let mut t = lock(&tally);
        t.cases += 1;
        t.delivered += obs.received.len();
        *t.ends.entry(end).or_default() += 1;
        Ok(())
    });
    let t = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut ends: Vec<String> = t.ends.iter().map(|(k, n)| format!("{k} {n}")).collect();
    ends.sort();
    match outcome {
        Ok(()) => result(
            name,
            declared,
            format!(
                "{} kills: receiver ended with {}; {} whole messages before, none partial",
                t.cases,
                ends.join(", "),
                t.delivered
            ),
            Verdict::Pass,
            format!("{cases} cases (IPC_AUDIT_DEATH_CASES), kill after 0-20 ms of sending"),
        ),
        Err(TestError::Fail(why, (seed, delay, size))) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!("minimal case: seed {seed}, kill after {delay} µs, messages of {size} bytes"),
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

// ---------------------------------------------------------------------------- eintr

/// Default cases of `eintr`; `IPC_AUDIT_EINTR_CASES` overrides it.
const EINTR_CASES: u32 = 3;
/// The storm's period.
const STORM_US: u64 = 50;

fn eintr(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "eintr";
    let declared = "EINTR retried inside the transport";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return skipped(name, declared, "the transport carries no data");
    }
    let cases = env_cases("IPC_AUDIT_EINTR_CASES", EINTR_CASES);
    let max = g.max_message;
    let size = prop_oneof![
        2 => 0..=64usize.min(max),
        1 => 0..=max.min(64 * 1024),
        1 => Just(max.min(256 * 1024)),
    ];
    let strategy = (any::<u64>(), vec(size, 20..=80));
    let tally = Mutex::new((0u32, 0usize, 0u64, 0u64));
    let opts = PeerOptions {
        storm_us: Some(STORM_US),
        ..PeerOptions::default()
    };
    let outcome = runner(cases).run(&strategy, |(seed, sizes)| {
        let (mut link, peer) = spawn(ctx, name, &Config::default(), &opts).map_err(fail)?;
        let mut peer = ready(peer).map_err(fail)?;
        let before = storm::delivered();
        let storm = Storm::at_this_thread(Duration::from_micros(STORM_US)).map_err(fail)?;
        let obs = receive(ctx, &mut link, &mut peer, seed, &sizes);
        drop(storm);
        let here = storm::delivered() - before;
        let obs = obs.map_err(fail)?;
        peer.command(&Cmd::Signals).map_err(fail)?;
        let there = match peer
            .expect(Instant::now() + ctx.timeout, "reply")
            .map_err(fail)?
        {
            Event::Signals { count } => count,
            other => {
                return Err(TestCaseError::fail(format!(
                    "expected signals, got {other:?}"
                )));
            }
        };
        peer.finish(Instant::now() + ctx.timeout).map_err(fail)?;
        if here == 0 || there == 0 {
            return Err(TestCaseError::fail(format!(
                "the storm did not land ({here} signals handled here, {there} in the peer): \
                 the case proves nothing"
            )));
        }
        let v = analyse(seed, &sizes, &obs);
        if let Some(text) = declared_violations(ctx, &v) {
            return Err(TestCaseError::fail(format!(
                "under the storm ({here} signals here, {there} in the peer): {text}"
            )));
        }
        let mut t = lock(&tally);
        t.0 += 1;
        t.1 += sizes.len();
        t.2 += here;
        t.3 += there;
        Ok(())
    });
    let (n, msgs, here, there) = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(()) => result(
            name,
            declared,
            format!(
                "no error surfaced, nothing lost or doubled: {msgs} messages in {n} cases under \
                 {here} signals at the receiver and {there} at the sender"
            ),
            Verdict::Pass,
            format!(
                "SIGURG every {STORM_US} µs via pthread_kill, no SA_RESTART; {cases} cases (IPC_AUDIT_EINTR_CASES)"
            ),
        ),
        Err(TestError::Fail(why, (seed, sizes))) => result(
            name,
            declared,
            why.to_string(),
            Verdict::Fail,
            format!("minimal case: seed {seed}, {} messages", sizes.len()),
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

// ---------------------------------------------------------------------------- full

/// Messages a `full` fill may send before it calls the buffer unbounded.
const FILL_LIMIT: usize = 20_000;

fn full(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "full";
    let declared = "WouldBlock when full, sender waits, nothing lost";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return skipped(name, declared, "the transport carries no data");
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

type Outcome = std::result::Result<String, (Verdict, String, String)>;

fn failed(observed: String, detail: &str) -> Outcome {
    Err((Verdict::Fail, observed, detail.into()))
}

fn full_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    let g = ctx.transport.guarantees();
    // One frame of this size fits in PIPE_BUF, so a pipe takes it whole or not at all.
    let size = g.max_message.min(256);
    let (mut link, mut peer) = start(ctx, name)?;
    let wait = || Instant::now() + ctx.timeout;
    // 1. Nonblocking, nobody reading: fill until refused.
    peer.command(&Cmd::Fill {
        seed: 11,
        size,
        limit: FILL_LIMIT,
        nonblocking: true,
        timeout_ms: 0,
    })?;
    let (k, kind, error) = match peer.expect(wait(), "reply")? {
        Event::Filled { accepted, error } => (accepted, Stop::of(&error), error),
        other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
    };
    // 1b. No nonblocking mode: fill in blocking mode with a short send timeout instead;
    // a full buffer then shows as the first send that times out.
    let nonblocking = kind != Stop::Unsupported;
    let (k, kind, error) = if nonblocking {
        (k, kind, error)
    } else {
        peer.command(&Cmd::Fill {
            seed: 11,
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
            Event::Filled { accepted, error } => (accepted, Stop::of(&error), error),
            other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
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
    // 2. Blocking with a short timeout on the full buffer: the sender waits, then gives up.
    let mut blocked = String::new();
    if bounded && nonblocking {
        peer.command(&Cmd::Fill {
            seed: 12,
            size,
            limit: 1,
            nonblocking: false,
            timeout_ms: 200,
        })?;
        match peer.expect(wait(), "reply")? {
            Event::Filled { error, .. } if Stop::of(&error) == Stop::Timeout => {
                blocked = "; a blocking send on it timed out".into();
            }
            Event::Filled { accepted, error } => {
                let kind = Stop::of(&error);
                return Ok(failed(
                    format!(
                        "a blocking send on the full buffer did not time out: {kind}, \
                         {accepted} accepted, {error:?}"
                    ),
                    "the sender must wait up to its deadline",
                ));
            }
            other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
        }
    }
    // 3. Drain: exactly the k accepted messages, in order, whole; nothing of the refused.
    // The peer flushes meanwhile: a byte stream may hold the rest of the last accepted
    // message until then (see `Endpoint::flush`).
    peer.command(&Cmd::Flush)?;
    let (obs, ev) = collect(ctx, &mut link, &mut peer, k + 1, false)?;
    let flushed = match ev {
        Some(ev) => ev,
        None => peer.expect(wait(), "reply")?,
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
    let loss = v
        .iter()
        .find(|v| v.kind == Kind::Loss)
        .map(|v| v.to_string());
    // 4. A reader that stops reading: a blocking sender of more than the buffer holds.
    let n = if bounded { 2 * k + 16 } else { 64 };
    peer.command(&Cmd::Send {
        seed: 13,
        sizes: vec![size; n],
    })?;
    thread::sleep(Duration::from_millis(300));
    let early = peer.try_expect("reply")?;
    let finished_early = early.is_some();
    let (mut obs, ev) = match early {
        Some(ev) => (collect(ctx, &mut link, &mut peer, n, false)?.0, Some(ev)),
        None => collect(ctx, &mut link, &mut peer, n, false)?,
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
    let back = match (bounded, finished_early) {
        (true, false) => format!(
            "a reader stopped for 300 ms held the sender of {n} back (backpressure); all arrived"
        ),
        (true, true) => {
            format!("the sender of {n} finished while the reader was stopped; all arrived")
        }
        (false, _) => format!("{n} more sent while the reader was stopped; all arrived"),
    };
    let mut first = if bounded && nonblocking {
        format!(
            "WouldBlock after {k} messages of {size} bytes{blocked}; all {k} arrived, nothing refused did"
        )
    } else if bounded {
        format!(
            "no nonblocking mode; a blocking send timed out (200 ms) after {k} messages of \
             {size} bytes; all {k} arrived, nothing refused did"
        )
    } else if !nonblocking {
        format!(
            "no nonblocking mode; no bound: {FILL_LIMIT} blocking sends of {size} bytes accepted"
        )
    } else {
        format!("no bound: {FILL_LIMIT} messages of {size} bytes accepted without WouldBlock")
    };
    if let Some(l) = loss {
        first = format!("{first} (loss, which the transport does not promise against: {l})");
    }
    Ok(Ok(format!("{first}; {back}")))
}

// ---------------------------------------------------------------------------- stale

fn stale(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "stale";
    let declared = "stale names reclaimed, live ones kept";
    let g = ctx.transport.guarantees();
    if g.rendezvous == Rendezvous::Inherited {
        return skipped(
            name,
            declared,
            "not applicable: no name (the link is inherited)",
        );
    }
    if !g.carries_data {
        return match stale_run(ctx, name, false) {
            Ok(o) => outcome(name, declared, o),
            Err(e) => could_not_run(name, declared, e),
        };
    }
    match stale_run(ctx, name, true) {
        Ok(o) => outcome(name, declared, o),
        Err(e) => could_not_run(name, declared, e),
    }
}

fn outcome(name: &str, declared: &str, o: Outcome) -> PropertyResult {
    match o {
        Ok(observed) => result(
            name,
            declared,
            observed,
            Verdict::Pass,
            "owner SIGKILLed, then reopened at the same name".into(),
        ),
        Err((v, observed, detail)) => result(name, declared, observed, v, detail),
    }
}

/// What tells one object at a path from another made later there: inode and change
/// time (an inode number alone may be reused at once).
fn inode(p: &std::path::Path) -> Option<(u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
}

fn stale_run(ctx: &Ctx<'_>, name: &str, exchange: bool) -> Result<Outcome> {
    let dir = tempfile::Builder::new()
        .prefix("ipc-audit-stale-")
        .tempdir()
        .map_err(|e| Error::io("make the stale directory", e))?;
    let object = crate::transport::named::unique_name("ipc-audit-stale");
    let held = |peer: &mut PeerProcess| -> Result<(Option<String>, Option<String>)> {
        peer.command(&Cmd::Hold {
            dir: dir.path().to_path_buf(),
            name: object.clone(),
        })?;
        match peer.expect(Instant::now() + ctx.timeout, "reply")? {
            Event::Held { path, error } => Ok((path, error.map(|e| e.message))),
            other => Err(Error::Peer(format!("expected held, got {other:?}"))),
        }
    };
    // 1. An owner opens the name and dies without cleaning up.
    let (link, mut owner) = start(ctx, name)?;
    drop(link);
    let (path, error) = held(&mut owner)?;
    if let Some(e) = error {
        owner.finish(Instant::now() + ctx.timeout)?;
        return Ok(Err((
            Verdict::Skipped,
            "not run".into(),
            format!("not applicable: opening at a chosen name failed: {e}"),
        )));
    }
    let Some(path) = path.filter(|p| p.contains(&object)) else {
        // A unique object was made instead: let the owner exit cleanly, so that its
        // guard removes it (a kill would leave it behind).
        owner.finish(Instant::now() + ctx.timeout)?;
        return Ok(Err((
            Verdict::Skipped,
            "not run".into(),
            "not applicable: the transport does not honour Config::name".into(),
        )));
    };
    let path = std::path::PathBuf::from(path);
    let _ = kill(Pid::from_raw(owner.pid() as i32), Signal::SIGKILL);
    let _ = owner.wait_exit(Instant::now() + ctx.timeout);
    drop(owner);
    let left = inode(&path);
    // 2. Reopen: the stale object is replaced by a new one.
    let cfg = Config::default()
        .with_dir(dir.path())
        .with_name(object.clone());
    let mut link = match ctx.transport.open(&cfg) {
        Ok(l) => l,
        Err(e) => {
            return Ok(failed(
                format!("reopening the name of a dead owner failed: {e}"),
                "a stale name must be detected and reclaimed",
            ));
        }
    };
    let now = inode(&path);
    if left.is_some() && now == left {
        return Ok(failed(
            format!(
                "{} is the dead owner's object, reused as is",
                path.display()
            ),
            "a stale object must be replaced",
        ));
    }
    // 3. A second owner while this one lives: refused, and our object is untouched.
    let peer_end = std::mem::take(&mut link.peer);
    let label = format!("{} / {name}", ctx.transport.name());
    let peer = PeerProcess::spawn(
        ctx.launcher,
        ctx.transport.name(),
        peer_end,
        label,
        ctx.timeout * 3,
        &PeerOptions::default(),
    )?;
    let mut peer = ready(peer)?;
    let (_, error) = held(&mut peer)?;
    let Some(refusal) = error else {
        return Ok(failed(
            "a second process opened the name while its owner lives".into(),
            "a live owner's name must be refused",
        ));
    };
    if inode(&path) != now {
        return Ok(failed(
            format!("{} was replaced while its owner lives", path.display()),
            "a live owner's object must never be deleted",
        ));
    }
    if exchange {
        let sizes = [1, 100, 5000];
        let obs = receive(ctx, &mut link, &mut peer, 21, &sizes)?;
        if let Some(v) = analyse(21, &sizes, &obs).first() {
            return Ok(failed(
                format!("the live link broke after the refused open: {v}"),
                "a live owner's object must keep working",
            ));
        }
    }
    peer.finish(Instant::now() + ctx.timeout)?;
    drop(link);
    let rest: Vec<String> = std::fs::read_dir(dir.path())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    if !rest.is_empty() {
        return Ok(failed(
            format!("left in the directory after the guard: {rest:?}"),
            "the guard removes the object and its lock",
        ));
    }
    let short = refusal.rsplit(": ").next().unwrap_or(&refusal).to_string();
    Ok(Ok(format!(
        "dead owner's {} reclaimed (new object); a live owner's refused ({short}) and kept{}",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        if exchange { ", still working" } else { "" }
    )))
}

// ---------------------------------------------------------------------------- fd

/// Messages of the `fd-flat` run; `IPC_AUDIT_FD_MESSAGES` overrides it.
const FD_MESSAGES: usize = 10_000;
/// Descriptors other threads of this process may open meanwhile (a multi-threaded test
/// binary): growth beyond it over the run is a leak. The peer is counted exactly.
const LOCAL_SLACK: usize = 64;

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn fd_flat(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "fd-flat";
    let declared = "no descriptor leak; clean errors at RLIMIT_NOFILE";
    if !ctx.transport.guarantees().carries_data {
        return skipped(name, declared, "the transport carries no data");
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

fn fd_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    let total = std::env::var("IPC_AUDIT_FD_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FD_MESSAGES)
        .max(200);
    let size = ctx.transport.guarantees().max_message.min(32);
    let (mut link, mut peer) = start(ctx, name)?;
    let peer_fds = |peer: &mut PeerProcess| -> Result<usize> {
        peer.command(&Cmd::CountFds)?;
        match peer.expect(Instant::now() + ctx.timeout, "reply")? {
            Event::FdCount { n } => Ok(n),
            other => Err(Error::Peer(format!("expected fd count, got {other:?}"))),
        }
    };
    let run = |link: &mut Link, peer: &mut PeerProcess, seed: u64, n: usize| {
        let sizes = vec![size; n];
        let obs = receive(ctx, link, peer, seed, &sizes)?;
        Ok::<_, Error>(declared_violations(ctx, &analyse(seed, &sizes, &obs)))
    };
    // Warm up (accept, lazily made objects), then count, run, count.
    if let Some(v) = run(&mut link, &mut peer, 31, 100)? {
        return Ok(failed(v, "the warm-up exchange failed"));
    }
    let here0 = count_fds();
    let there0 = peer_fds(&mut peer)?;
    if let Some(v) = run(&mut link, &mut peer, 32, total - 100)? {
        return Ok(failed(v, "the long exchange failed"));
    }
    let here1 = count_fds();
    let there1 = peer_fds(&mut peer)?;
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
        let opts = PeerOptions {
            nofile: Some(limit),
            ..PeerOptions::default()
        };
        let (mut link, peer) = spawn(ctx, name, &Config::default(), &opts)?;
        let what = match ready(peer) {
            // The peer reported its own error before attaching: a clean refusal.
            Err(Error::Remote { report, .. }) => {
                format!(
                    "{limit}: attach refused ({})",
                    report
                        .message
                        .rsplit(": ")
                        .next()
                        .unwrap_or(&report.message)
                )
            }
            Err(e) => {
                return Ok(failed(
                    format!("peer with RLIMIT_NOFILE {limit} did not fail cleanly: {e}"),
                    "a low RLIMIT_NOFILE must give an error, not a crash",
                ));
            }
            Ok(mut peer) => {
                let sizes = vec![size; 20];
                let obs = receive(ctx, &mut link, &mut peer, 33, &sizes);
                let obs = match obs {
                    Ok(o) => o,
                    Err(e) => {
                        return Ok(failed(
                            format!("with RLIMIT_NOFILE {limit} in the peer: {e}"),
                            "a low RLIMIT_NOFILE must give an error, not a crash or a hang",
                        ));
                    }
                };
                let status = peer.finish(Instant::now() + ctx.timeout);
                if let Err(e) = status {
                    return Ok(failed(
                        format!("with RLIMIT_NOFILE {limit} the peer died: {e}"),
                        "a low RLIMIT_NOFILE must give an error, not a crash",
                    ));
                }
                match (
                    obs.send_errors.first(),
                    declared_violations(ctx, &analyse(33, &sizes, &obs)),
                ) {
                    (Some((_, e)), _) => format!("{limit}: send refused ({e})"),
                    (None, None) => format!("{limit}: works"),
                    (None, Some(v)) => {
                        return Ok(failed(
                            format!("with RLIMIT_NOFILE {limit}: {v}"),
                            "no error was reported, yet messages went wrong",
                        ));
                    }
                }
            }
        };
        seen.push(what);
    }
    Ok(Ok(format!(
        "flat over {total} messages (here {here0} -> {here1}, peer {there0} -> {there1}); \
         peer RLIMIT_NOFILE {}",
        seen.join(", ")
    )))
}

// ---------------------------------------------------------------------------- sigpending

#[cfg(target_os = "linux")]
/// The realtime signals queued for this process's real uid, from `SigQ` of
/// /proc/self/status (all of the user's processes count against RLIMIT_SIGPENDING).
fn queued_signals() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io("read /proc/self/status", e))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("SigQ:"))
        .ok_or_else(|| Error::Protocol("no SigQ line in /proc/self/status".into()))?;
    let n = line.trim().split('/').next().unwrap_or("");
    n.parse()
        .map_err(|_| Error::invalid("SigQ in /proc/self/status", line.trim()))
}

/// Restores this process's RLIMIT_SIGPENDING when dropped.
#[cfg(target_os = "linux")]
struct SigpendingLimit {
    old: (u64, u64),
}

#[cfg(target_os = "linux")]
impl SigpendingLimit {
    /// Sets the soft limit to `soft` (the hard limit stays).
    fn set(soft: u64) -> Result<Self> {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let old = getrlimit(Resource::RLIMIT_SIGPENDING)
            .map_err(|e| Error::sys("getrlimit(RLIMIT_SIGPENDING)", e))?;
        setrlimit(Resource::RLIMIT_SIGPENDING, soft.min(old.1), old.1)
            .map_err(|e| Error::sys(format!("setrlimit(RLIMIT_SIGPENDING, {soft})"), e))?;
        Ok(SigpendingLimit { old })
    }
}

#[cfg(target_os = "linux")]
impl Drop for SigpendingLimit {
    fn drop(&mut self) {
        use nix::sys::resource::{Resource, setrlimit};
        let _ = setrlimit(Resource::RLIMIT_SIGPENDING, self.old.0, self.old.1);
    }
}

#[cfg(target_os = "linux")]
/// Room left in the tight stage: a few signals over what is already queued.
const SIGPENDING_ROOM: u64 = 8;

fn fd_sigpending(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "fd-sigpending";
    let declared = "clean errors or throttling when queued signals run out";
    if !ctx.transport.guarantees().carries_data {
        return skipped(name, declared, "the transport carries no data");
    }
    #[cfg(target_os = "linux")]
    {
        match sigpending_run(ctx, name) {
            Ok(Ok(observed)) => result(
                name,
                declared,
                observed,
                Verdict::Pass,
                format!(
                    "RLIMIT_SIGPENDING of this (receiving) process set to the signals already \
                     queued for the user, then {SIGPENDING_ROOM} more; restored after"
                ),
            ),
            Ok(Err((v, observed, detail))) => result(name, declared, observed, v, detail),
            Err(e) => could_not_run(name, declared, e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    skipped(
        name,
        declared,
        "not run: reads the queued-signal count from /proc (Linux only)",
    )
}

/// What one stage of `fd-sigpending` saw: (accepted, how the fill stopped, its error,
/// received), or a verdict.
#[cfg(target_os = "linux")]
type Stage = std::result::Result<(usize, String, Option<String>, usize), (Verdict, String, String)>;

#[cfg(target_os = "linux")]
/// One stage of `fd-sigpending`: the peer sends up to `n` messages, each send bounded by
/// `timeout_ms`, while this process receives. Returns what the peer reported (accepted,
/// kind of the stopping error, error) or a failure.
fn sigpending_stage(
    ctx: &Ctx<'_>,
    name: &str,
    seed: u64,
    n: usize,
    timeout_ms: u64,
) -> Result<Stage> {
    let (mut link, peer) = match spawn(ctx, name, &Config::default(), &PeerOptions::default()) {
        Ok(x) => x,
        // A typed error at open is a clean refusal.
        Err(e) => return Ok(Ok((0, "open".into(), Some(e.to_string()), 0))),
    };
    let mut peer = match ready(peer) {
        Ok(p) => p,
        Err(e @ Error::Remote { .. }) => {
            return Ok(Ok((0, "attach".into(), Some(e.to_string()), 0)));
        }
        Err(e) => return Err(e),
    };
    let size = ctx.transport.guarantees().max_message.min(16);
    peer.command(&Cmd::Fill {
        seed,
        size,
        limit: n,
        nonblocking: false,
        timeout_ms,
    })?;
    let (obs, ev) = collect(ctx, &mut link, &mut peer, n, false)?;
    let ev = match ev {
        Some(ev) => ev,
        None => peer.expect(Instant::now() + ctx.timeout, "reply")?,
    };
    let (accepted, kind, error) = match ev {
        Event::Filled { accepted, error } => (accepted, Stop::of(&error), error),
        other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
    };
    // Whatever is still on its way after the peer's report.
    let (rest, _) = collect(ctx, &mut link, &mut peer, n, true)?;
    let mut obs = obs;
    obs.received.extend(rest.received);
    if let Err(e) = peer.finish(Instant::now() + ctx.timeout) {
        return Ok(Err((
            Verdict::Fail,
            format!("the sender did not end cleanly: {e}"),
            "running out of queued signals must give an error, not a crash".into(),
        )));
    }
    if kind == Stop::Unsupported {
        return Ok(Err((
            Verdict::Fail,
            format!("unexpected stop {kind}: {error:?}"),
            "the peer's report".into(),
        )));
    }
    let received = obs.received.len();
    let v = analyse(seed, &vec![size; accepted], &obs);
    let bad: Vec<String> = v
        .iter()
        .filter(|v| v.kind.declared_by(&ctx.transport.guarantees()) || v.kind != Kind::Loss)
        .take(3)
        .map(|v| v.to_string())
        .collect();
    if !bad.is_empty() {
        return Ok(Err((
            Verdict::Fail,
            format!(
                "{accepted} sends accepted, {received} received: {}",
                bad.join("; ")
            ),
            "every accepted message must arrive whole; nothing refused or partial may".into(),
        )));
    }
    Ok(Ok((
        accepted,
        kind.to_string(),
        error.map(|e| e.message),
        received,
    )))
}

#[cfg(target_os = "linux")]
fn sigpending_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    const N: usize = 20;
    let queued = queued_signals()?;
    // 1. Used up: not one more signal may be queued to this process.
    let used_up = {
        let _limit = SigpendingLimit::set(queued)?;
        sigpending_stage(ctx, name, 41, N, 300)?
    };
    let (a1, kind1, err1, _) = match used_up {
        Ok(x) => x,
        Err(f) => return Ok(Err(f)),
    };
    // 2. Nearly used up, with the reader draining: throttled, all arrive.
    let tight = {
        let _limit = SigpendingLimit::set(queued + SIGPENDING_ROOM)?;
        sigpending_stage(ctx, name, 42, N, 5000)?
    };
    let (a2, kind2, err2, r2) = match tight {
        Ok(x) => x,
        Err(f) => return Ok(Err(f)),
    };
    let stage1 = match (a1, kind1.as_str()) {
        (N, "none") => format!("used up: unaffected ({N} of {N} arrived)"),
        (_, "open" | "attach") => {
            format!("used up: {kind1} refused ({})", err1.unwrap_or_default())
        }
        (a, _) => format!(
            "used up: {a} of {N} sent, then {kind1} ({}); nothing refused or partial arrived",
            err1.unwrap_or_default()
        ),
    };
    let stage2 = match (a2, kind2.as_str()) {
        (N, "none") => format!("{SIGPENDING_ROOM} left: {r2} of {N} arrived whole"),
        (a, _) => {
            return Ok(failed(
                format!(
                    "with {SIGPENDING_ROOM} queued signals left and the reader draining, \
                     {a} of {N} sent, then {kind2}: {}",
                    err2.unwrap_or_default()
                ),
                "a reader that keeps reading frees the queue: the sender must be throttled, not refused",
            ));
        }
    };
    Ok(Ok(format!("{stage1}; {stage2}")))
}

// ---------------------------------------------------------------------------- senders

/// Default cases of `senders`; `IPC_AUDIT_SENDERS_CASES` overrides it.
const SENDERS_CASES: u32 = 2;

/// What one many-sender run saw.
#[derive(Debug, Default)]
struct Crowd {
    whole: usize,
    expected: usize,
    lost: usize,
    foreign: Vec<String>,
    out_of_order: Vec<String>,
    errors: Vec<String>,
}

fn crowd_run(ctx: &Ctx<'_>, name: &str, seed: u64, n: usize, sizes: &[usize]) -> Result<Crowd> {
    let mut link = ctx.transport.open(&Config::default())?;
    let template = std::mem::take(&mut link.peer);
    let mut peers = Vec::new();
    for i in 0..n {
        let fds = template
            .fds
            .iter()
            .map(|f| f.try_clone())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::io("dup the peer's descriptors", e))?;
        let end = PeerEnd {
            fds,
            info: template.info.clone(),
        };
        let label = format!("{} / {name} #{i}", ctx.transport.name());
        let p = PeerProcess::spawn(
            ctx.launcher,
            ctx.transport.name(),
            end,
            label,
            ctx.timeout * 3,
            &PeerOptions::default(),
        )?;
        peers.push(p);
    }
    drop(template);
    let mut peers: Vec<PeerProcess> = peers.into_iter().map(ready).collect::<Result<_>>()?;
    // Who sent what: content identifies sender and index.
    let mut index: HashMap<u32, Vec<(usize, usize)>> = HashMap::new();
    let mut msgs: Vec<Vec<Vec<u8>>> = Vec::new();
    for s in 0..n {
        let mut mine = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let mut m = Vec::new();
            content(seed.wrapping_add(s as u64), i, len, &mut m);
            index.entry(crc32c::crc32c(&m)).or_default().push((s, i));
            mine.push(m);
        }
        msgs.push(mine);
    }
    for (s, p) in peers.iter_mut().enumerate() {
        p.command(&Cmd::Send {
            seed: seed.wrapping_add(s as u64),
            sizes: sizes.to_vec(),
        })?;
    }
    let total = n * sizes.len();
    let mut c = Crowd {
        expected: total,
        ..Crowd::default()
    };
    let mut seen = vec![vec![false; sizes.len()]; n];
    let mut last: Vec<Option<usize>> = vec![None; n];
    let mut done = 0;
    let mut received = 0;
    link.local.set_timeout(Some(Duration::from_millis(50)))?;
    let deadline = Instant::now() + ctx.timeout;
    let mut buf = Vec::new();
    let ordered = ctx.transport.guarantees().ordering != Ordering::None;
    while received < total && Instant::now() < deadline {
        match link.local.recv(&mut buf) {
            Ok(len) => {
                received += 1;
                let m = &buf[..len];
                let hit = index.get(&crc32c::crc32c(m)).and_then(|cands| {
                    cands
                        .iter()
                        .copied()
                        .find(|&(s, i)| !seen[s][i] && msgs[s][i] == m)
                });
                match hit {
                    Some((s, i)) => {
                        seen[s][i] = true;
                        c.whole += 1;
                        if ordered && last[s].is_some_and(|l| i < l) && c.out_of_order.len() < 3 {
                            c.out_of_order.push(format!(
                                "sender {s}: message {i} after {}",
                                last[s].unwrap_or(0)
                            ));
                        }
                        last[s] = Some(last[s].map_or(i, |l| l.max(i)));
                    }
                    None if c.foreign.len() < 3 => c
                        .foreign
                        .push(format!("a {len}-byte message that no sender sent whole")),
                    None => c.foreign.push(String::new()),
                }
            }
            Err(Error::Timeout { .. }) => {
                for p in peers.iter_mut() {
                    if let Some(Event::Sent { errors, .. }) = p.try_expect("reply")? {
                        done += 1;
                        c.errors.extend(
                            errors
                                .into_iter()
                                .take(2)
                                .map(|(i, e)| format!("send {i}: {e}")),
                        );
                    }
                }
                if done == n {
                    // Everything sent is in the kernel: one more quiet slice ends it.
                    match link.local.recv(&mut buf) {
                        Ok(_) => {
                            c.foreign
                                .push("a message after every sender finished".into());
                        }
                        Err(Error::Timeout { .. }) => break,
                        Err(e) => {
                            c.errors.push(format!("receive: {e}"));
                            break;
                        }
                    }
                }
            }
            Err(Error::Closed { .. }) => break,
            Err(e) => {
                // A stream out of sync (interleaved frames) cannot be read further.
                c.errors.push(format!("receive: {e}"));
                break;
            }
        }
    }
    c.lost = seen.iter().flatten().filter(|s| !**s).count();
    drop(link);
    for p in peers {
        let _ = p.finish(Instant::now() + ctx.timeout);
    }
    Ok(c)
}

fn senders(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "senders";
    let g = ctx.transport.guarantees();
    let Some(atomic) = g.many_senders else {
        return skipped(
            name,
            "one sender per link",
            "not applicable: the transport declares one sender per link",
        );
    };
    let atomic = atomic.min(g.max_message);
    let declared_text = if atomic < g.max_message {
        format!("4-8 senders, whole up to {atomic} bytes; may interleave above")
    } else {
        format!("4-8 senders, whole up to {atomic} bytes")
    };
    let declared = declared_text.as_str();
    let cases = env_cases("IPC_AUDIT_SENDERS_CASES", SENDERS_CASES);
    // At least 16 bytes: shorter contents may repeat across senders and could not be told
    // apart.
    let small = prop_oneof![1 => 16..=atomic.min(64), 1 => 16..=atomic, 1 => Just(atomic)];
    let strategy = (any::<u64>(), 4usize..=8, vec(small, 50..=150));
    let tally = Mutex::new((0usize, 0usize));
    let outcome = runner(cases).run(&strategy, |(seed, n, sizes)| {
        let c = crowd_run(ctx, name, seed, n, &sizes).map_err(fail)?;
        let loss = c.lost > 0 && g.reliable;
        if !c.foreign.is_empty() || !c.out_of_order.is_empty() || !c.errors.is_empty() || loss {
            return Err(TestCaseError::fail(format!(
                "{n} senders, messages up to {atomic} bytes: {} whole of {}, {} lost, \
                 {} not whole {:?}, order {:?}, errors {:?}",
                c.whole,
                c.expected,
                c.lost,
                c.foreign.len(),
                c.foreign.iter().take(2).collect::<Vec<_>>(),
                c.out_of_order,
                c.errors.iter().take(2).collect::<Vec<_>>()
            )));
        }
        let mut t = lock(&tally);
        t.0 += 1;
        t.1 += c.whole;
        Ok(())
    });
    let (runs, whole) = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let below = match outcome {
        Ok(()) => format!("{whole} messages from 4-8 senders in {runs} runs, all whole, none lost"),
        Err(TestError::Fail(why, (seed, n, sizes))) => {
            return result(
                name,
                declared,
                why.to_string(),
                Verdict::Fail,
                format!(
                    "minimal case: seed {seed}, {n} senders, {} messages each",
                    sizes.len()
                ),
            );
        }
        Err(TestError::Abort(why)) => {
            return result(
                name,
                declared,
                "aborted".into(),
                Verdict::Fail,
                why.to_string(),
            );
        }
    };
    // Above the atomic size: not promised; what happens is observed and reported.
    let above = if atomic < g.max_message {
        let big = g.max_message.min(64 * 1024);
        let sizes: Vec<usize> = (0..40)
            .map(|i| atomic + 1 + (i * 997) % (big - atomic))
            .collect();
        match crowd_run(ctx, name, 77, 6, &sizes) {
            Ok(c) if c.foreign.is_empty() && c.errors.is_empty() && c.lost == 0 => format!(
                "; above {atomic} bytes: 6 senders x 40 messages arrived whole this time (not promised)"
            ),
            Ok(c) => format!(
                "; above {atomic} bytes, as declared: interleaved ({} whole of {}, {} not whole, {})",
                c.whole,
                c.expected,
                c.foreign.len(),
                c.errors
                    .first()
                    .map_or("no error".to_string(), |e| e.clone())
            ),
            Err(e) => format!("; above {atomic} bytes: the run failed ({e})"),
        }
    } else {
        String::new()
    };
    result(
        name,
        declared,
        format!("{below}{above}"),
        Verdict::Pass,
        format!("{cases} cases (IPC_AUDIT_SENDERS_CASES)"),
    )
}
