//! `eintr`: a SIGURG storm (no SA_RESTART) on both sides surfaces no EINTR, and nothing
//! is lost or duplicated.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError};

use super::{declared_violations, fail, fault_cases, lock, runner};
use crate::audit::exchange::{analyse, ready, receive, spawn};
use crate::audit::role::{Cmd, Event};
use crate::audit::{Ctx, PropertyResult, Verdict, not_applicable, result};
use crate::peer::PeerOptions;
use crate::peer::storm::{self, Storm};
use crate::transport::Config;

/// Default cases of `eintr`; `IPC_AUDIT_EINTR_CASES` overrides it.
const EINTR_CASES: u32 = 3;
/// The storm's period.
const STORM_US: u64 = 50;

/// What the passing cases saw: (cases, messages, signals here, signals in the peer).
type EintrTally = (u32, usize, u64, u64);

/// The property: cases of (seed, message sizes), each under a storm on both sides.
pub(super) fn eintr(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "eintr";
    let declared = "EINTR retried inside the transport";
    let g = ctx.transport.guarantees();
    if !g.carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    let cases = fault_cases(ctx, "IPC_AUDIT_EINTR_CASES", EINTR_CASES);
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
        eintr_case(ctx, name, &opts, seed, &sizes, &tally)
    });
    let t = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    eintr_result(name, declared, cases, t, outcome)
}

/// One case: the peer (storming itself) sends `sizes` while this thread, under its own
/// storm, receives; both storms must have landed, and nothing declared may go wrong.
fn eintr_case(
    ctx: &Ctx<'_>,
    name: &str,
    opts: &PeerOptions,
    seed: u64,
    sizes: &[usize],
    tally: &Mutex<EintrTally>,
) -> std::result::Result<(), TestCaseError> {
    let (mut link, peer) = spawn(ctx, name, &Config::default(), opts).map_err(fail)?;
    let mut peer = ready(peer).map_err(fail)?;
    let before = storm::delivered();
    let storm = Storm::at_this_thread(Duration::from_micros(STORM_US)).map_err(fail)?;
    let obs = receive(ctx, &mut link, &mut peer, seed, sizes);
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
    let v = analyse(seed, sizes, &obs);
    if let Some(text) = declared_violations(ctx, &v) {
        return Err(TestCaseError::fail(format!(
            "under the storm ({here} signals here, {there} in the peer): {text}"
        )));
    }
    let mut t = lock(tally);
    t.0 += 1;
    t.1 += sizes.len();
    t.2 += here;
    t.3 += there;
    Ok(())
}

/// The property's result from the run's outcome and the passing cases' tally.
fn eintr_result(
    name: &str,
    declared: &str,
    cases: u32,
    (n, msgs, here, there): EintrTally,
    outcome: std::result::Result<(), TestError<(u64, Vec<usize>)>>,
) -> PropertyResult {
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
