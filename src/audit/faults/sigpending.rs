//! `fd-sigpending`: with RLIMIT_SIGPENDING used up, then nearly so, in the receiver,
//! sends give clean errors or are throttled; nothing arrives partial, nothing accepted
//! is lost. Linux only (the queued-signal count comes from /proc).

#[cfg(target_os = "linux")]
use std::time::Instant;

#[cfg(target_os = "linux")]
use super::{Outcome, collect, failed};
#[cfg(target_os = "linux")]
use crate::audit::exchange::{Kind, analyse, ready, spawn};
#[cfg(target_os = "linux")]
use crate::audit::role::{Cmd, Event, Stop};
use crate::audit::{Ctx, PropertyResult, not_applicable};
#[cfg(target_os = "linux")]
use crate::audit::{Verdict, could_not_run, result};
#[cfg(target_os = "linux")]
use crate::error::{Error, Result};
#[cfg(target_os = "linux")]
use crate::peer::PeerOptions;
#[cfg(target_os = "linux")]
use crate::transport::Config;

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

/// The property: a scripted run in two stages, see `sigpending_run`.
pub(super) fn fd_sigpending(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "fd-sigpending";
    let declared = "clean errors or throttling when queued signals run out";
    if !ctx.transport.guarantees().carries_data {
        return not_applicable(name, declared, "the transport carries no data");
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
    crate::audit::not_run(
        name,
        declared,
        "reads the queued-signal count from /proc (Linux only)".into(),
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
        first: 0,
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
    let bad = stage_violations(ctx, seed, &vec![size; accepted], &obs);
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

/// Up to 3 of what went wrong with the `sizes` accepted of case `seed`: every violation
/// but a loss the transport does not promise against.
#[cfg(target_os = "linux")]
fn stage_violations(
    ctx: &Ctx<'_>,
    seed: u64,
    sizes: &[usize],
    obs: &crate::audit::exchange::Observation,
) -> Vec<String> {
    analyse(seed, sizes, obs)
        .iter()
        .filter(|v| v.kind.declared_by(&ctx.transport.guarantees()) || v.kind != Kind::Loss)
        .take(3)
        .map(|v| v.to_string())
        .collect()
}

#[cfg(target_os = "linux")]
/// The run: a stage with no queued signal left to this process, then one with
/// [`SIGPENDING_ROOM`] left and the reader draining.
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
