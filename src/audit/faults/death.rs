//! `death`: a peer SIGKILLed mid-send gives the receiver a clean error, never a partial
//! message delivered as valid; the link's names are removed once it is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering as AtOrd};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError};

use super::{declared_violations, fail, fault_cases, lock, runner};
use crate::audit::exchange::{Kind, Observation, analyse, start};
use crate::audit::role::{Cmd, PeerProcess};
use crate::audit::{Ctx, PropertyResult, Verdict, not_applicable, result};
use crate::error::Error;
use crate::transport::Link;

/// Default cases of `death`; `IPC_AUDIT_DEATH_CASES` overrides it.
const DEATH_CASES: u32 = 6;

/// What the passing cases saw.
#[derive(Default)]
struct DeathTally {
    cases: u32,
    delivered: usize,
    ends: HashMap<&'static str, u32>,
}

/// How the receiver ended after the kill: the kind of clean end, or why it was not clean.
type End = std::result::Result<&'static str, String>;

/// The property: cases of (seed, kill delay in µs, message size).
pub(super) fn death(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "death";
    let declared = "clean error, no partial message, names removed";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    let cases = fault_cases(ctx, "IPC_AUDIT_DEATH_CASES", DEATH_CASES);
    let big = g.max_message.min(256 * 1024);
    let size = prop_oneof![2 => Just(big), 1 => 1..=big];
    let strategy = (any::<u64>(), 0u64..20_000, size);
    let tally = Mutex::new(DeathTally::default());
    let outcome = runner(cases).run(&strategy, |(seed, delay_us, size)| {
        death_case(ctx, name, (seed, delay_us, size), &tally)
    });
    let t = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    death_result(name, declared, cases, &t, outcome)
}

/// One case: the peer sends, is killed after `delay_us`, and what arrived is checked;
/// a passing case is added to `tally`.
fn death_case(
    ctx: &Ctx<'_>,
    name: &str,
    (seed, delay_us, size): (u64, u64, usize),
    tally: &Mutex<DeathTally>,
) -> std::result::Result<(), TestCaseError> {
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
    let killed = Arc::new(AtomicBool::new(false));
    let killer = kill_after(&peer, delay_us, killed.clone());
    let watched = receive_watched(ctx.timeout, link, killed);
    let _ = killer.join();
    let _ = peer.wait_exit(Instant::now() + ctx.timeout);
    drop(peer);
    let (link, obs, end) = watched.map_err(TestCaseError::fail)?;
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
    let mut t = lock(tally);
    t.cases += 1;
    t.delivered += obs.received.len();
    *t.ends.entry(end).or_default() += 1;
    Ok(())
}

/// A thread that SIGKILLs `peer` after `delay_us` µs, then sets `killed`.
fn kill_after(
    peer: &PeerProcess,
    delay_us: u64,
    killed: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    let pid = Pid::from_raw(peer.pid() as i32);
    thread::spawn(move || {
        thread::sleep(Duration::from_micros(delay_us));
        let _ = kill(pid, Signal::SIGKILL);
        killed.store(true, AtOrd::Release);
    })
}

/// How long past the bounds of its own loop (twice `ctx.timeout`) the receiving thread
/// may take before the case calls the transport's `recv` hung.
const WATCHDOG_GRACE: Duration = Duration::from_secs(5);

/// [`receive_until_end`] on a thread of its own, which takes the link and gives it back
/// with what it saw. A receive that has not returned within twice `timeout` and
/// [`WATCHDOG_GRACE`] more fails the case with a message instead of hanging the audit;
/// that thread and the link stay behind (a `recv` that never returns cannot be taken
/// back).
fn receive_watched(
    timeout: Duration,
    link: Link,
    killed: Arc<AtomicBool>,
) -> std::result::Result<(Link, Observation, End), String> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("death: receive".into())
        .spawn(move || {
            let mut link = link;
            let mut obs = Observation::default();
            let end = receive_until_end(timeout, &mut link, &killed, &mut obs);
            let _ = tx.send((link, obs, end));
        })
        .map_err(|e| format!("start the receiving thread: {e}"))?;
    let limit = timeout * 2 + WATCHDOG_GRACE;
    rx.recv_timeout(limit).map_err(|_| {
        format!(
            "the receiver's recv has not returned {limit:?} after the case began (its own \
             timeout is 100 ms): hung inside the transport (the audit's watchdog; the \
             receiving thread is left behind)"
        )
    })
}

/// Receives into `obs` until the link ends: closed, a typed error, or a quiet timeout
/// once `killed` is set; no end within `timeout` of the kill is not clean.
fn receive_until_end(
    timeout: Duration,
    link: &mut Link,
    killed: &AtomicBool,
    obs: &mut Observation,
) -> End {
    let mut buf = Vec::new();
    let mut deadline = Instant::now() + timeout;
    let mut after_kill = false;
    loop {
        if !after_kill && killed.load(AtOrd::Acquire) {
            after_kill = true;
            deadline = Instant::now() + timeout;
        }
        if Instant::now() >= deadline {
            break Err(format!(
                "no error within {timeout:?} of the peer's death ({} messages received)",
                obs.received.len()
            ));
        }
        match link.local.recv(&mut buf) {
            Ok(n) => obs.received.push(Ok(buf[..n].to_vec())),
            Err(Error::Closed { .. }) => break Ok("closed"),
            Err(Error::Timeout { .. }) if after_kill => break Ok("timeout"),
            Err(Error::Timeout { .. }) => {}
            Err(Error::Frame(_)) => break Ok("frame error"),
            Err(Error::Protocol(_) | Error::Corrupt { .. }) => break Ok("protocol error"),
            Err(e) => break Err(format!("unclean error after the peer's death: {e}")),
        }
    }
}

/// The property's result from the run's outcome and the passing cases' tally.
fn death_result(
    name: &str,
    declared: &str,
    cases: u32,
    t: &DeathTally,
    outcome: std::result::Result<(), TestError<(u64, u64, usize)>>,
) -> PropertyResult {
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
