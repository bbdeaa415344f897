//! Fault properties: peer death, signal storms, full buffers, stale names, descriptor
//! leaks and resource limits, many senders. Each runs with real peer processes; each
//! reports what it saw next to what the transport declares.
//!
//! One module per property, in report order: [`death`], [`eintr`], [`full`],
//! [`stale`], [`fd_flat`], [`sigpending`] (`fd-sigpending`) and [`senders`]. This module
//! lists them ([`all`]) and holds what they share: the proptest runner, the outcome of
//! a scripted (non-proptest) run, and [`collect`], which receives without commanding
//! the peer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};

use super::exchange::Observation;
use super::role::{Event, PeerProcess};
use super::{Ctx, Property, Verdict};
use crate::error::{Error, Result};
use crate::transport::Link;

mod deadline;
mod death;
mod eintr;
mod fd_exact;
mod fd_flat;
mod full;
mod retry;
mod senders;
mod sigpending;
mod stale;

pub(crate) use fd_exact::loopback;
pub(crate) use retry::{edge_sizes, send_retry};

/// The fault properties, in report order.
pub(super) fn all() -> Vec<Property> {
    vec![
        Property {
            name: "death",
            about: "a peer SIGKILLed mid-send gives a clean error, never a partial message; names are removed",
            run: death::death,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "eintr",
            about: "a SIGURG storm (no SA_RESTART) on both sides surfaces no EINTR; nothing lost or duplicated",
            run: eintr::eintr,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "deadline",
            about: "every wait ends by its timeout + slack, under signals and mid-message; Closed after the peer's exit where the kernel knows",
            run: deadline::deadline,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "retry",
            about: "sends and receives interrupted midway and retried: every message once, whole, in order",
            run: retry::retry,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "full",
            about: "full buffer: nonblocking gives WouldBlock, blocking waits to its deadline, a reader that stops reading causes backpressure, nothing lost",
            run: full::full,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "stale",
            about: "a name left by a SIGKILLed owner is reclaimed on reopen; a live owner's name is refused and its object kept",
            run: stale::stale,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "fd-flat",
            about: "open descriptors stay flat over 10,000 messages on both sides; a low RLIMIT_NOFILE gives clean errors",
            run: fd_flat::fd_flat,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "fd-exact",
            about: "descriptors counted exactly in a peer holding both ends: none per message, per link, or across exec after traffic",
            run: fd_exact::fd_exact,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "fd-sigpending",
            about: "with RLIMIT_SIGPENDING used up, then nearly so, in the receiver: clean errors or throttling, nothing partial or lost",
            run: sigpending::fd_sigpending,
            applies: super::every,
            exclusive: true,
        },
        Property {
            name: "senders",
            about: "4 to 8 processes sending at once: no message lost or interleaved up to the declared atomic size",
            run: senders::senders,
            applies: super::every,
            exclusive: false,
        },
    ]
}

/// The number `var` (one of [`crate::audit::TUNING_ENV`]) gives, `None` when it is
/// unset. A bad value is refused before a run starts ([`crate::audit::check_env`]); a
/// library user who skips that check gets `None` for it.
pub(crate) fn tuned(var: &str) -> Option<u32> {
    let least = crate::audit::TUNING_ENV
        .iter()
        .find(|(v, _)| *v == var)
        .map_or(1, |&(_, least)| least);
    crate::audit::whole_from_env(var, least).ok().flatten()
}

/// The number `var` gives, or `default` when it is unset.
fn env_cases(var: &str, default: u32) -> u32 {
    tuned(var).unwrap_or(default)
}

/// The cases of a fault property: `var` when it is set, else `default`, but no more
/// than the auditor's cases per property (`--cases 2`, `table --quick`: a fault property
/// too runs that few; the default 32 leaves every `default` as it is).
fn fault_cases(ctx: &Ctx<'_>, var: &str, default: u32) -> u32 {
    tuned(var).unwrap_or_else(|| default.min(ctx.cases).max(1))
}

/// A proptest runner of `cases` cases, without failure persistence, with a short shrink
/// (16 steps and 20 s at most: a failing case of these properties can take a timeout
/// each time it runs).
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PtConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 16,
        max_shrink_time: 20_000,
        ..PtConfig::default()
    })
}

/// An error as a failed proptest case.
fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Locks `m`, poisoned or not.
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

/// A step of a scripted (non-proptest) run: what it found, or the run's end as
/// (verdict, observed, detail).
type Step<T> = std::result::Result<T, (Verdict, String, String)>;

/// What a scripted run saw: the observed text of a pass, or (verdict, observed, detail).
type Outcome = Step<String>;

/// A failed [`Step`].
fn failed<T>(observed: String, detail: &str) -> Step<T> {
    Err((Verdict::Fail, observed, detail.into()))
}
