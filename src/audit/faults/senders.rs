//! `senders`: 4 to 8 processes sending on one link at once: no message lost or
//! interleaved up to the declared atomic size; above it, what happens is reported.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestError};

use super::{env_cases, fail, lock, runner};
use crate::audit::exchange::{content, ready};
use crate::audit::role::{Cmd, Event, PeerProcess};
use crate::audit::{Ctx, PropertyResult, Verdict, not_applicable, result};
use crate::error::{Error, Result};
use crate::peer::PeerOptions;
use crate::transport::{Config, Link, Ordering, PeerEnd};

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

/// What the senders of a run send: content identifies sender and index.
struct Expected {
    /// The senders' messages by the CRC of their content: (sender, index).
    index: HashMap<u32, Vec<(usize, usize)>>,
    /// Each sender's messages, in order.
    msgs: Vec<Vec<Vec<u8>>>,
}

impl Expected {
    /// The messages of `n` senders of `sizes`, sender `s` with seed `seed + s`.
    fn new(seed: u64, n: usize, sizes: &[usize]) -> Self {
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
        Expected { index, msgs }
    }
}

/// Which expected messages arrived, and the highest index seen from each sender.
struct Arrivals {
    seen: Vec<Vec<bool>>,
    last: Vec<Option<usize>>,
    /// Whether the transport declares an order (per sender).
    ordered: bool,
}

impl Arrivals {
    /// Nothing arrived yet from `n` senders of `per` messages each.
    fn new(n: usize, per: usize, ordered: bool) -> Self {
        Arrivals {
            seen: vec![vec![false; per]; n],
            last: vec![None; n],
            ordered,
        }
    }

    /// Records the received message `m` in `c`: whole (and in order or not) if it is one
    /// not seen yet of a sender's, foreign otherwise.
    fn record(&mut self, expected: &Expected, m: &[u8], c: &mut Crowd) {
        let hit = expected.index.get(&crc32c::crc32c(m)).and_then(|cands| {
            cands
                .iter()
                .copied()
                .find(|&(s, i)| !self.seen[s][i] && expected.msgs[s][i] == m)
        });
        let last = &mut self.last;
        match hit {
            Some((s, i)) => {
                self.seen[s][i] = true;
                c.whole += 1;
                if self.ordered && last[s].is_some_and(|l| i < l) && c.out_of_order.len() < 3 {
                    c.out_of_order.push(format!(
                        "sender {s}: message {i} after {}",
                        last[s].unwrap_or(0)
                    ));
                }
                last[s] = Some(last[s].map_or(i, |l| l.max(i)));
            }
            None if c.foreign.len() < 3 => c.foreign.push(format!(
                "a {}-byte message that no sender sent whole",
                m.len()
            )),
            None => c.foreign.push(String::new()),
        }
    }

    /// The expected messages that did not arrive.
    fn lost(&self) -> usize {
        self.seen.iter().flatten().filter(|s| !**s).count()
    }
}

/// One run: `n` peer processes share the peer end of one link and each sends `sizes`
/// (sender `s` with seed `seed + s`) while this process receives and sorts out who sent
/// what.
fn crowd_run(ctx: &Ctx<'_>, name: &str, seed: u64, n: usize, sizes: &[usize]) -> Result<Crowd> {
    let mut link = ctx.transport.open(&Config::default())?;
    let mut peers = spawn_senders(ctx, name, &mut link, n)?;
    let expected = Expected::new(seed, n, sizes);
    for (s, p) in peers.iter_mut().enumerate() {
        p.command(&Cmd::Send {
            seed: seed.wrapping_add(s as u64),
            sizes: sizes.to_vec(),
        })?;
    }
    let mut c = Crowd {
        expected: n * sizes.len(),
        ..Crowd::default()
    };
    let ordered = ctx.transport.guarantees().ordering != Ordering::None;
    let mut arrivals = Arrivals::new(n, sizes.len(), ordered);
    receive_all(ctx, &mut link, &mut peers, &expected, &mut arrivals, &mut c)?;
    c.lost = arrivals.lost();
    drop(link);
    for p in peers {
        let _ = p.finish(Instant::now() + ctx.timeout);
    }
    Ok(c)
}

/// Starts `n` peer processes, each with duplicates of the peer end of `link`, and waits
/// until all are ready.
fn spawn_senders(ctx: &Ctx<'_>, name: &str, link: &mut Link, n: usize) -> Result<Vec<PeerProcess>> {
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
    peers.into_iter().map(ready).collect()
}

/// Receives until every expected message arrived, or every sender reported and one
/// more slice passed quietly, or the link ended, or `ctx.timeout` passed.
fn receive_all(
    ctx: &Ctx<'_>,
    link: &mut Link,
    peers: &mut [PeerProcess],
    expected: &Expected,
    arrivals: &mut Arrivals,
    c: &mut Crowd,
) -> Result<()> {
    let total = c.expected;
    let mut done = 0;
    let mut received = 0;
    link.local.set_timeout(Some(Duration::from_millis(50)))?;
    let deadline = Instant::now() + ctx.timeout;
    let mut buf = Vec::new();
    while received < total && Instant::now() < deadline {
        match link.local.recv(&mut buf) {
            Ok(len) => {
                received += 1;
                arrivals.record(expected, &buf[..len], c);
            }
            Err(Error::Timeout { .. }) => {
                done += sender_reports(peers, c)?;
                // Everything sent is in the kernel: one more quiet slice ends it.
                if done == peers.len() && !after_all_sent(link, &mut buf, c) {
                    break;
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
    Ok(())
}

/// The senders that reported the end of their sends since last asked, with up to two
/// send errors each added to `c`.
fn sender_reports(peers: &mut [PeerProcess], c: &mut Crowd) -> Result<usize> {
    let mut done = 0;
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
    Ok(done)
}

/// One receive after every sender finished: a message then is foreign (and receiving
/// goes on); a quiet slice or an error ends it (false).
fn after_all_sent(link: &mut Link, buf: &mut Vec<u8>, c: &mut Crowd) -> bool {
    match link.local.recv(buf) {
        Ok(_) => {
            c.foreign
                .push("a message after every sender finished".into());
            true
        }
        Err(Error::Timeout { .. }) => false,
        Err(e) => {
            c.errors.push(format!("receive: {e}"));
            false
        }
    }
}

/// The property: cases of (seed, senders, sizes up to the atomic size); then one run
/// above it, reported only.
pub(super) fn senders(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "senders";
    let g = ctx.transport.guarantees();
    let Some(atomic) = g.many_senders else {
        return not_applicable(
            name,
            "one sender per link",
            "the transport declares one sender per link",
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
    let outcome = runner(cases).run(&strategy, |case| {
        senders_case(ctx, name, atomic, g.reliable, case, &tally)
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
    let above = if atomic < g.max_message {
        above_atomic(ctx, name, atomic, g.max_message)
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

/// One case: every message whole, in order where declared, no error, and none lost if
/// the transport is `reliable`; a passing case adds (1, whole messages) to `tally`.
fn senders_case(
    ctx: &Ctx<'_>,
    name: &str,
    atomic: usize,
    reliable: bool,
    (seed, n, sizes): (u64, usize, Vec<usize>),
    tally: &Mutex<(usize, usize)>,
) -> std::result::Result<(), TestCaseError> {
    let c = crowd_run(ctx, name, seed, n, &sizes).map_err(fail)?;
    let loss = c.lost > 0 && reliable;
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
    let mut t = lock(tally);
    t.0 += 1;
    t.1 += c.whole;
    Ok(())
}

/// Above the atomic size: not promised; one run of 6 senders x 40 messages between
/// `atomic` and `max_message` (at most 64 KiB), and what happened, as text.
fn above_atomic(ctx: &Ctx<'_>, name: &str, atomic: usize, max_message: usize) -> String {
    let big = max_message.min(64 * 1024);
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
}
