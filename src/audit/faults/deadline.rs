//! `deadline`: every blocking operation returns within its timeout plus a stated slack:
//! a receive on an idle link under a signal storm, a receive with part of a message in
//! (then called again: the whole message), a blocking send into a full link under a
//! storm in the sender; and after the peer exits or is killed the survivor gets
//! `Closed` within its deadline where the kernel can know (an inherited link: the
//! peer's descriptors close with it), or the report says that it only times out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtOrd};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Outcome, Step, failed};
use crate::audit::exchange::{content, ready, spawn, start};
use crate::audit::role::{Cmd, Event, Stop};
use crate::audit::{Ctx, PropertyResult, Verdict, could_not_run, not_applicable, result};
use crate::error::{Error, Result};
use crate::peer::PeerOptions;
use crate::peer::storm::{self, STORM_SIGNAL};
use crate::transport::{Config, Endpoint, Rendezvous};

/// The timeout every checked operation is given.
const T: Duration = Duration::from_millis(200);
/// The storm's period.
const STORM_US: u64 = 50;

/// The slack over the timeout: `IPC_AUDIT_DEADLINE_SLACK_MS`, or 1000 ms (a loaded
/// 2-core machine may not run a woken thread for hundreds of milliseconds).
fn slack() -> Duration {
    Duration::from_millis(u64::from(super::env_cases(
        "IPC_AUDIT_DEADLINE_SLACK_MS",
        1000,
    )))
}

/// The property: a scripted run, see [`deadline_run`].
pub(super) fn deadline(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "deadline";
    let declared = "every wait ends by its timeout + slack; Closed after the peer's exit";
    if !ctx.transport.guarantees().carries_data {
        return not_applicable(name, declared, "the transport carries no data");
    }
    match deadline_run(ctx, name) {
        Ok(Ok(observed)) => result(
            name,
            declared,
            observed,
            Verdict::Pass,
            format!(
                "timeout {} ms, slack {} ms (IPC_AUDIT_DEADLINE_SLACK_MS); SIGURG every {STORM_US} µs",
                T.as_millis(),
                slack().as_millis()
            ),
        ),
        Ok(Err((v, observed, detail))) => result(name, declared, observed, v, detail),
        Err(e) => could_not_run(name, declared, e),
    }
}

/// One check of the run: what it saw, or the failure.
type Check = fn(&Ctx<'_>, &str) -> Result<Step<String>>;

/// The run: the four checks, in order.
fn deadline_run(ctx: &Ctx<'_>, name: &str) -> Result<Outcome> {
    let mut seen = Vec::new();
    let steps: [Check; 4] = [idle_receive, partial_receive, full_send, after_exit];
    for step in steps {
        match step(ctx, name)? {
            Ok(s) => seen.push(s),
            Err(f) => return Ok(Err(f)),
        }
    }
    Ok(Ok(seen.join("; ")))
}

/// A storm at one thread that another thread can stop.
struct Storm {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Storm {
    /// Starts storming the calling thread until `stop` is set; the calling thread must
    /// [`Storm::join`] it before it exits.
    fn at_this_thread(stop: Arc<AtomicBool>) -> Result<Storm> {
        storm::install()?;
        let target = pthread_self();
        let s = stop.clone();
        let thread = thread::Builder::new()
            .name("ipc-audit-deadline-storm".into())
            .spawn(move || {
                while !s.load(AtOrd::Acquire) {
                    // The target joins this thread before it exits.
                    let _ = pthread_kill(target, STORM_SIGNAL);
                    thread::sleep(Duration::from_micros(STORM_US));
                }
            })
            .map_err(|e| Error::io("start the signal storm", e))?;
        Ok(Storm {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and joins the storm.
    fn join(mut self) {
        self.stop.store(true, AtOrd::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a timed receive gave: the result (the message, or the error), how long it
/// took, the storm signals it got, and the end back.
type Timed = (Result<Vec<u8>>, Duration, u64, Box<dyn Endpoint>);

/// Receives once on `end` (timeout [`T`]) in a thread of its own, under a storm when
/// `stormed`. Returns the channel of its result and the storm's stop switch.
fn timed_recv(
    mut end: Box<dyn Endpoint>,
    stormed: bool,
) -> Result<(mpsc::Receiver<Timed>, Arc<AtomicBool>)> {
    end.set_timeout(Some(T))?;
    let stop = Arc::new(AtomicBool::new(!stormed));
    let (tx, rx) = mpsc::channel();
    let s = stop.clone();
    thread::Builder::new()
        .name("ipc-audit-deadline-recv".into())
        .spawn(move || {
            let before = storm::delivered();
            let storm = if stormed {
                Storm::at_this_thread(s).ok()
            } else {
                None
            };
            let mut buf = Vec::new();
            let t0 = Instant::now();
            let r = end.recv(&mut buf).map(|n| buf[..n].to_vec());
            let took = t0.elapsed();
            if let Some(st) = storm {
                st.join();
            }
            let _ = tx.send((r, took, storm::delivered() - before, end));
        })
        .map_err(|e| Error::io("start the receiving thread", e))?;
    Ok((rx, stop))
}

/// An end that refuses everything: stands in for a link's end while a thread has it.
struct Away;

impl Endpoint for Away {
    fn send(&mut self, _: &[u8]) -> Result<()> {
        Err(Error::Unsupported("the end is in another thread".into()))
    }
    fn recv(&mut self, _: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Unsupported("the end is in another thread".into()))
    }
    fn set_timeout(&mut self, _: Option<Duration>) -> Result<()> {
        Ok(())
    }
}

/// Waits for a [`timed_recv`] up to `T` + slack; when it is late, `rescue` (stop the
/// storm, flush the peer, kill it) and wait again: `Err` then says how late it was.
fn await_recv(
    ctx: &Ctx<'_>,
    rx: &mpsc::Receiver<Timed>,
    rescue: impl FnOnce(),
) -> std::result::Result<Timed, String> {
    let limit = T + slack();
    match rx.recv_timeout(limit) {
        Ok(t) => Ok(t),
        Err(_) => {
            rescue();
            let t0 = Instant::now();
            match rx.recv_timeout(ctx.timeout) {
                Ok((r, took, sigs, _)) => Err(format!(
                    "still waiting {} ms after its {} ms timeout ({sigs} signals); it returned \
                     {:?} after {} ms, once rescued",
                    limit.as_millis() - T.as_millis(),
                    T.as_millis(),
                    r.map(|m| m.len()).map_err(|e| e.to_string()),
                    took.as_millis()
                )),
                Err(_) => Err(format!(
                    "never returned: not {} ms after its {} ms timeout, nor {} ms after rescue",
                    limit.as_millis() - T.as_millis(),
                    T.as_millis(),
                    t0.elapsed().as_millis()
                )),
            }
        }
    }
}

/// Check 1: a receive on a link with nothing in it, under a storm, times out in time.
fn idle_receive(ctx: &Ctx<'_>, name: &str) -> Result<Step<String>> {
    let (mut link, peer) = start(ctx, name)?;
    let end = std::mem::replace(&mut link.local, Box::new(Away));
    let (rx, stop) = timed_recv(end, true)?;
    let got = await_recv(ctx, &rx, || stop.store(true, AtOrd::Release));
    drop(peer);
    let (r, took, sigs, _) = match got {
        Ok(t) => t,
        Err(why) => {
            return Ok(failed(
                format!("a receive on an idle link under a signal storm: {why}"),
                "EINTR must not restart the whole timeout",
            ));
        }
    };
    match r {
        Err(Error::Timeout { .. }) if sigs > 0 => Ok(Ok(format!(
            "idle receive timed out after {} ms under {sigs} signals",
            took.as_millis()
        ))),
        Err(Error::Timeout { .. }) => Err(Error::Peer(
            "the storm did not land on the receiving thread".into(),
        )),
        other => Ok(failed(
            format!(
                "a receive on an idle link returned {:?} after {} ms, not a timeout",
                other.map(|m| m.len()),
                took.as_millis()
            ),
            "a receive with nothing to get must end with Timeout",
        )),
    }
}

/// Check 2: the peer sends a message larger than the link holds, with a short send
/// timeout and nobody reading (a byte stream keeps its rest, see `Endpoint::flush`);
/// a receive under a storm gets part of it and must time out in time, then a receive
/// after the peer flushed gets the whole message.
fn partial_receive(ctx: &Ctx<'_>, name: &str) -> Result<Step<String>> {
    let size = ctx.transport.guarantees().max_message.min(1 << 20);
    let (mut link, mut peer) = start(ctx, name)?;
    peer.command(&Cmd::Fill {
        seed: 21,
        first: 0,
        size,
        limit: 1,
        nonblocking: false,
        timeout_ms: 100,
    })?;
    let accepted = match peer.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::Filled { accepted, .. } => accepted,
        other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
    };
    if accepted == 0 {
        return Ok(Ok(format!(
            "a {size}-byte message is taken whole or not at all (no partial receive)"
        )));
    }
    let end = std::mem::replace(&mut link.local, Box::new(Away));
    let (rx, stop) = timed_recv(end, true)?;
    let got = await_recv(ctx, &rx, || {
        stop.store(true, AtOrd::Release);
        let _ = peer.command(&Cmd::Flush);
    });
    let (first, took, _, end) = match got {
        Ok(t) => t,
        Err(why) => {
            return Ok(failed(
                format!("a receive with part of a {size}-byte message in: {why}"),
                "the rest of a message must be awaited within the same deadline",
            ));
        }
    };
    link.local = end;
    let mut want = Vec::new();
    content(21, 0, size, &mut want);
    let mut timed_out = false;
    let whole = match first {
        Ok(m) => m,
        Err(Error::Timeout { .. }) => {
            timed_out = true;
            match receive_rest(ctx, &mut link, &mut peer, size)? {
                Ok(m) => m,
                Err(f) => return Ok(Err(f)),
            }
        }
        Err(e) => {
            return Ok(failed(
                format!("a receive with part of a message in failed: {e}"),
                "it must time out, or return the message",
            ));
        }
    };
    drop(peer);
    if whole != want {
        return Ok(failed(
            format!(
                "after a receive timed out mid-message, the next returned {} bytes that are not \
                 the {size} sent",
                whole.len()
            ),
            "a retried receive must deliver the message byte-identical",
        ));
    }
    Ok(Ok(if timed_out {
        format!(
            "with part of {size} bytes in, timed out after {} ms, then the whole message",
            took.as_millis()
        )
    } else {
        format!("a {size}-byte message, taken whole by the link, received whole")
    }))
}

/// After a receive timed out with part of a message in: the peer flushes, and the
/// next receive must give the whole message.
fn receive_rest(
    ctx: &Ctx<'_>,
    link: &mut crate::transport::Link,
    peer: &mut crate::audit::role::PeerProcess,
    size: usize,
) -> Result<Step<Vec<u8>>> {
    peer.command(&Cmd::Flush)?;
    link.local.set_timeout(Some(ctx.timeout))?;
    let mut buf = Vec::new();
    match link.local.recv(&mut buf) {
        Ok(n) => Ok(Ok(buf[..n].to_vec())),
        Err(e) => Ok(failed(
            format!(
                "after a receive timed out with part of a {size}-byte message in, the next \
                 receive failed: {e}"
            ),
            "a receive that timed out must keep what it had for the next one",
        )),
    }
}

/// Check 3: a blocking send into a full link, the peer under a storm, returns within its
/// timeout + slack (timed here, from command to reply).
fn full_send(ctx: &Ctx<'_>, name: &str) -> Result<Step<String>> {
    let size = ctx.transport.guarantees().max_message.min(256);
    let opts = PeerOptions {
        storm_us: Some(STORM_US),
        ..PeerOptions::default()
    };
    let (_link, peer) = spawn(ctx, name, &Config::default(), &opts)?;
    let mut peer = ready(peer)?;
    peer.command(&Cmd::Fill {
        seed: 22,
        first: 0,
        size,
        limit: 20_000,
        nonblocking: true,
        timeout_ms: 0,
    })?;
    let k = match peer.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::Filled { error, accepted } if Stop::of(&error) == Stop::WouldBlock => accepted,
        Event::Filled { error, .. } => {
            return Ok(Ok(format!(
                "blocking send not timed (the fill ended {})",
                Stop::of(&error)
            )));
        }
        other => return Err(Error::Peer(format!("expected filled, got {other:?}"))),
    };
    // Blocking sends continue the sequence until one times out: a kernel buffer that
    // grows after the refusal (TCP's autotuning) takes a few more first, each at once.
    let t0 = Instant::now();
    peer.command(&Cmd::Fill {
        seed: 22,
        first: k,
        size,
        limit: 20_000usize.saturating_sub(k).max(1),
        nonblocking: false,
        timeout_ms: T.as_millis() as u64,
    })?;
    let limit = T + slack();
    let ev = peer.expect(Instant::now() + limit + ctx.timeout, "reply");
    let took = t0.elapsed();
    if took > limit {
        return Ok(failed(
            format!(
                "a blocking send into a full link, with a {} ms timeout, under a signal storm, \
                 returned after {} ms",
                T.as_millis(),
                took.as_millis()
            ),
            "a send must give up by its deadline",
        ));
    }
    match ev? {
        Event::Filled { error, .. } if Stop::of(&error) == Stop::Timeout => Ok(Ok(format!(
            "blocking send into a full link timed out after {} ms",
            took.as_millis()
        ))),
        other => Ok(failed(
            format!("a blocking send into a full link did not time out: {other:?}"),
            "a send on a full link must wait up to its deadline and give up",
        )),
    }
}

/// Check 4: the peer sends one message and exits, or is SIGKILLed; the survivor must
/// get `Closed` within its deadline where the kernel knows the peer is gone.
fn after_exit(ctx: &Ctx<'_>, name: &str) -> Result<Step<String>> {
    let kernel_knows = ctx.transport.guarantees().rendezvous == Rendezvous::Inherited;
    let mut seen = Vec::new();
    for killed in [false, true] {
        let (mut link, mut peer) = start(ctx, name)?;
        if killed {
            let _ = kill(Pid::from_raw(peer.pid() as i32), Signal::SIGKILL);
            let _ = peer.wait_exit(Instant::now() + ctx.timeout);
        } else {
            let obs = crate::audit::exchange::receive(ctx, &mut link, &mut peer, 24, &[16])?;
            if obs.received.len() != 1 {
                return Err(Error::Peer(
                    "the message before the exit did not arrive".into(),
                ));
            }
            peer.finish(Instant::now() + ctx.timeout)?;
        }
        let how = if killed { "killed" } else { "exited" };
        link.local.set_timeout(Some(T))?;
        let t0 = Instant::now();
        let mut buf = Vec::new();
        let end = loop {
            let r = link.local.recv(&mut buf);
            match r {
                Err(Error::Timeout { .. }) if t0.elapsed() < T + slack() => continue,
                r => break r,
            }
        };
        let ms = t0.elapsed().as_millis();
        match end {
            Err(Error::Closed { .. }) => seen.push(format!("peer {how}: closed in {ms} ms")),
            Err(Error::Timeout { .. }) if kernel_knows => {
                return Ok(failed(
                    format!(
                        "after the peer {how}, receives only timed out for {ms} ms, never Closed"
                    ),
                    "an inherited link's peer descriptors close with it: the kernel knows",
                ));
            }
            Err(Error::Timeout { .. }) => seen.push(format!(
                "peer {how}: only timeouts (named: the object outlives its peer)"
            )),
            Ok(n) => {
                return Ok(failed(
                    format!("after the peer {how}, a {n}-byte message arrived that was not sent"),
                    "nothing may arrive that the peer did not send",
                ));
            }
            Err(e) => seen.push(format!("peer {how}: {:?}", e.report().kind)),
        }
    }
    Ok(Ok(seen.join(", ")))
}
