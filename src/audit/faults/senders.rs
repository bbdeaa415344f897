//! `senders`: 4 to 8 processes sending on one link at once: no message lost or
//! interleaved up to the declared atomic size; above it, what happens is reported.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{TestCaseError, TestError};

use super::{edge_sizes, fail, fault_cases, lock, runner};
use crate::audit::exchange::{content, ready};
use crate::audit::role::{Cmd, Event, PeerProcess};
use crate::audit::{Ctx, PropertyResult, Verdict, not_applicable, not_run, result};
use crate::error::{Error, Result};
use crate::peer::PeerOptions;
use crate::transport::{Config, Link, Ordering, PeerEnd};

/// Default cases of `senders`; `IPC_AUDIT_SENDERS_CASES` overrides it.
const SENDERS_CASES: u32 = 2;

/// Default bound, in MiB, on the bytes of a case's larger messages, all senders
/// together; `IPC_AUDIT_SENDERS_MIB` sets another.
const SENDERS_MIB: usize = 256;

/// The variable that sets the bound of [`SENDERS_MIB`]: a whole number of MiB.
const SENDERS_MIB_ENV: &str = "IPC_AUDIT_SENDERS_MIB";

/// Messages up to this size are never cut by the bound.
const SMALL: usize = 64;

/// What one many-sender run saw.
#[derive(Debug, Default)]
struct Crowd {
    whole: usize,
    /// The bytes of the whole messages.
    bytes: usize,
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
                c.bytes += m.len();
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
    // The peers' watchdog: three timeouts, and one more per 256 MiB the case sends (a
    // sender killed mid-send would fail the case for the wrong reason).
    let bytes = n * sizes.iter().sum::<usize>();
    let limit = ctx.timeout * (3 + u32::try_from(bytes >> 28).unwrap_or(u32::MAX - 3));
    let mut peers = spawn_senders(ctx, name, &mut link, n, limit)?;
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

/// Starts `n` peer processes, each with duplicates of the peer end of `link`, killed by
/// their watchdog after `limit`, and waits until all are ready.
fn spawn_senders(
    ctx: &Ctx<'_>,
    name: &str,
    link: &mut Link,
    n: usize,
    limit: Duration,
) -> Result<Vec<PeerProcess>> {
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
            limit,
            &PeerOptions::default(),
        )?;
        peers.push(p);
    }
    drop(template);
    peers.into_iter().map(ready).collect()
}

/// Receives until every expected message arrived, or every sender reported and one
/// more slice passed quietly, or the link ended, or `ctx.timeout` passed without a
/// message (a case of many large messages may take longer than that in all).
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
    let mut deadline = Instant::now() + ctx.timeout;
    let mut buf = Vec::new();
    while received < total && Instant::now() < deadline {
        match link.local.recv(&mut buf) {
            Ok(len) => {
                received += 1;
                deadline = Instant::now() + ctx.timeout;
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

/// The bound of [`SENDERS_MIB`] in bytes, from `IPC_AUDIT_SENDERS_MIB` or the default;
/// `Err` names an invalid value (a run through the CLI refuses it before it starts, see
/// [`crate::audit::check_env`]).
fn senders_budget() -> std::result::Result<usize, String> {
    match crate::audit::whole_from_env(SENDERS_MIB_ENV, 1) {
        Ok(mib) => Ok((mib.map_or(SENDERS_MIB, |m| m as usize)).saturating_mul(1 << 20)),
        Err(e) => Err(e.to_string()),
    }
}

/// `sizes` with every message over [`SMALL`] bytes that would take the sender past
/// `budget` bytes cut to 16 to 64 bytes (the count and order of messages stay); the first
/// message of the `atomic` size is always kept whole.
fn within(sizes: Vec<usize>, budget: usize, atomic: usize) -> Vec<usize> {
    let keep = sizes.iter().position(|&s| s == atomic);
    let mut left = budget.saturating_sub(keep.map_or(0, |_| atomic));
    sizes
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            if Some(i) == keep {
                s
            } else if s <= SMALL || s <= left {
                left = left.saturating_sub(s);
                s
            } else {
                16 + s % (SMALL - 15)
            }
        })
        .collect()
}

/// A case: (seed, senders, each sender's sizes).
type Case = (u64, usize, Vec<usize>);

/// Cases of 4 to 8 senders, each sending 51 to 151 messages of 16 bytes to `atomic`:
/// small ones, any size, the sizes where code paths change ([`edge_sizes`]) and the
/// atomic size itself, which every sender sends at least once (at a drawn place). The
/// messages over [`SMALL`] bytes of one case add up to at most `budget` bytes, or one
/// message of the atomic size per sender if that is more ([`within`]).
fn cases_of(atomic: usize, budget: usize) -> impl Strategy<Value = Case> {
    // At least 16 bytes: shorter contents may repeat across senders and could not be told
    // apart.
    let edges: Vec<usize> = edge_sizes(atomic, Some(atomic))
        .into_iter()
        .filter(|&s| s >= 16)
        .collect();
    let size = prop_oneof![
        1 => 16..=atomic.min(SMALL),
        1 => 16..=atomic,
        1 => select(edges),
        1 => Just(atomic),
    ];
    (
        any::<u64>(),
        4usize..=8,
        vec(size, 50..=150),
        any::<Index>(),
    )
        .prop_map(move |(seed, n, mut sizes, at)| {
            sizes.insert(at.index(sizes.len() + 1), atomic);
            (seed, n, within(sizes, (budget / n).max(atomic), atomic))
        })
}

/// The property: cases of (seed, senders, sizes up to the atomic size, see [`cases_of`]);
/// then one run above it, reported only.
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
    let budget = match senders_budget() {
        Ok(b) => b,
        Err(why) => return not_run(name, declared, why),
    };
    let cases = fault_cases(ctx, "IPC_AUDIT_SENDERS_CASES", SENDERS_CASES);
    let tally = Mutex::new((0usize, 0usize, 0usize));
    let outcome = runner(cases).run(&cases_of(atomic, budget), |case| {
        senders_case(ctx, name, atomic, g.reliable, case, &tally)
    });
    let (runs, whole, bytes) = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let below = match outcome {
        Ok(()) => format!(
            "{whole} messages ({} MiB) from 4-8 senders in {runs} runs, each sender at least \
             one of {atomic} bytes, all whole, none lost",
            bytes >> 20
        ),
        Err(TestError::Fail(why, (seed, n, sizes))) => {
            return result(
                name,
                declared,
                why.to_string(),
                Verdict::Fail,
                format!(
                    "minimal case: seed {seed}, {n} senders, {} messages each ({} bytes)",
                    sizes.len(),
                    sizes.iter().sum::<usize>()
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
        format!(
            "{cases} cases (IPC_AUDIT_SENDERS_CASES); messages over {SMALL} bytes at most {} MiB \
             a case ({SENDERS_MIB_ENV}), or one of {atomic} bytes per sender if more",
            budget >> 20
        ),
    )
}

/// One case: every message whole, in order where declared, no error, and none lost if
/// the transport is `reliable`; a passing case adds (1, whole messages, their bytes) to
/// `tally`.
fn senders_case(
    ctx: &Ctx<'_>,
    name: &str,
    atomic: usize,
    reliable: bool,
    (seed, n, sizes): Case,
    tally: &Mutex<(usize, usize, usize)>,
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
    t.2 += c.bytes;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn within_keeps_the_first_atomic_message_and_bounds_the_rest() {
        let atomic = 16 << 20;
        let sizes = vec![20, atomic - 1, 5 << 20, atomic, 64, atomic, 65];
        let got = within(sizes, atomic + (6 << 20), atomic);
        assert_eq!(got.len(), 7);
        assert_eq!(got[3], atomic, "the first message of the atomic size stays");
        assert_eq!(got[0], 20);
        assert_eq!(got[4], 64);
        assert!((16..=64).contains(&got[1]), "{}", got[1]);
        assert_eq!(got[2], 5 << 20, "within the budget left");
        assert!(
            (16..=64).contains(&got[5]),
            "a second atomic one past the budget"
        );
        assert_eq!(got[6], 65, "still within the budget left");
        let large: usize = got.iter().filter(|&&s| s > SMALL).sum();
        assert!(large <= atomic + (6 << 20));
    }
}
