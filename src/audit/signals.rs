//! Signal semantics (for the `signal` transport) and the memfd seals (for `shm`), each
//! checked with a real second process.
//!
//! Signals are received the way [`crate::transport::signal`] receives them: a dedicated
//! thread of the harness (a [`Tap`]) blocks them in itself only and reads them from a
//! `signalfd`; the peer sends them *to that thread* (`rt_tgsigqueueinfo`, `tgkill`).
//! No other thread of the process (a multi-threaded test binary) ever sees them, and no
//! signal mask but the tap's own and no disposition is touched, so these properties may
//! run beside any other test. What is sent process-directed (`kill`, `sigqueue`) is
//! signal 0: the kernel's permission check, with nothing delivered.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::{Pid, Uid, geteuid, getpid, getuid};

use super::exchange::{analyse, content, ready, receive};
use super::role::{Cmd, Event, HostileAct, PeerProcess, SigHow};
use super::{Ctx, Property, PropertyResult, Verdict, could_not_run, result};
use crate::error::{Error, ErrorReport, Result};
use crate::peer::{Identity, NO_TRANSPORT, PeerOptions};
use crate::transport::signal::{SIGINFO, block_and_signalfd_set, field_u32, queue_info, tgkill};
use crate::transport::{Config, Link, PeerEnd, Transport};

fn is_signal(t: &dyn Transport) -> bool {
    t.name() == "signal"
}

fn is_shm(t: &dyn Transport) -> bool {
    t.name() == "shm"
}

/// The signal and seal properties, in report order.
pub(super) fn all() -> Vec<Property> {
    vec![
        Property {
            name: "signal-rt-queue",
            about: "realtime signals queued N times arrive N times, in order, with their values; \
                    the lowest-numbered pending one first",
            run: rt_queue,
            applies: is_signal,
            exclusive: false,
        },
        Property {
            name: "signal-std-coalesce",
            about: "a standard signal sent N times while blocked arrives once: boundaries are \
                    not preserved",
            run: std_coalesce,
            applies: is_signal,
            exclusive: false,
        },
        Property {
            name: "signal-uid",
            about: "uid 65534 gets EPERM from kill, sigqueue and the thread-directed forms; \
                    si_pid/si_uid name the sender; the transport refuses an unexpected sender",
            run: signal_uid,
            applies: is_signal,
            exclusive: false,
        },
        Property {
            name: "access-shm-seal",
            about: "a hostile peer cannot shrink or grow the sealed memfd (no SIGBUS); garbage \
                    in the ring header is an error naming the value",
            run: shm_seal,
            applies: is_shm,
            exclusive: false,
        },
    ]
}

/// The first realtime signal of the taps: SIGRTMIN + 10 (the transport uses + 8).
fn rt_low() -> i32 {
    libc::SIGRTMIN() + 10
}

/// A higher realtime signal: SIGRTMIN + 12.
fn rt_high() -> i32 {
    libc::SIGRTMIN() + 12
}

/// `SIGRTMIN+k`, or the number.
fn sig_name(sig: i32) -> String {
    match sig {
        libc::SIGURG => "SIGURG".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        s if s >= libc::SIGRTMIN() => format!("SIGRTMIN+{}", s - libc::SIGRTMIN()),
        s => format!("signal {s}"),
    }
}

/// One signal as `signalfd` gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    signo: i32,
    code: i32,
    pid: u32,
    uid: u32,
    value: i32,
}

/// A dedicated thread that blocks some signals in itself only and reads them from a
/// `signalfd` when asked: what is sent to it stays pending until [`Tap::drain`].
/// Signals still pending when it exits die with the thread.
struct Tap {
    tid: i32,
    ask: Option<mpsc::Sender<()>>,
    got: mpsc::Receiver<Result<Vec<Rec>>>,
    thread: Option<JoinHandle<()>>,
}

impl Tap {
    fn start(sigs: &[i32]) -> Result<Tap> {
        let sigs = sigs.to_vec();
        let (ask_tx, ask_rx) = mpsc::channel::<()>();
        let (got_tx, got_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<i32>>();
        let thread = thread::Builder::new()
            .name("ipc-audit-signal-tap".into())
            .spawn(move || {
                let sfd = match block_and_signalfd_set(&sigs) {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Blocked before anyone learns this thread's id.
                let _ = ready_tx.send(Ok(nix::unistd::gettid().as_raw()));
                while ask_rx.recv().is_ok() {
                    if got_tx.send(read_pending(&sfd)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io("spawn the signal tap thread", e))?;
        let tid = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Timeout {
                    op: "start the signal tap thread".into(),
                    after: Duration::from_secs(10),
                });
            }
        };
        Ok(Tap {
            tid,
            ask: Some(ask_tx),
            got: got_rx,
            thread: Some(thread),
        })
    }

    /// Every signal pending for the tap now, in the order the kernel hands them out.
    fn drain(&self, timeout: Duration) -> Result<Vec<Rec>> {
        let closed = || Error::Closed {
            op: "signal tap".into(),
        };
        self.ask
            .as_ref()
            .ok_or_else(closed)?
            .send(())
            .map_err(|_| closed())?;
        self.got.recv_timeout(timeout).map_err(|_| Error::Timeout {
            op: "drain the signal tap".into(),
            after: timeout,
        })?
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.ask = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads a nonblocking signalfd until it is empty.
fn read_pending(sfd: &OwnedFd) -> Result<Vec<Rec>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; SIGINFO * 64];
    loop {
        match nix::unistd::read(sfd.as_fd(), &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                for info in buf[..n].chunks_exact(SIGINFO) {
                    // struct signalfd_siginfo: signo 0, code 8, pid 12, uid 16, int 44.
                    out.push(Rec {
                        signo: field_u32(info, 0) as i32,
                        code: field_u32(info, 8) as i32,
                        pid: field_u32(info, 12),
                        uid: field_u32(info, 16),
                        value: field_u32(info, 44) as i32,
                    });
                }
            }
            Err(Errno::EAGAIN) => return Ok(out),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::sys("read the tap's signalfd", e)),
        }
    }
}

/// A peer attached to no transport, holding `fds`, set up with `opts`.
fn detached(
    ctx: &Ctx<'_>,
    name: &str,
    fds: Vec<OwnedFd>,
    opts: &PeerOptions,
) -> Result<PeerProcess> {
    let label = format!("{} / {name}", ctx.transport.name());
    let peer = PeerProcess::spawn(
        ctx.launcher,
        NO_TRANSPORT,
        PeerEnd {
            fds,
            info: String::new(),
        },
        label,
        ctx.timeout * 3,
        opts,
    )?;
    ready(peer)
}

/// What a peer said after a [`Cmd::Signal`].
#[derive(Debug)]
struct Sent {
    pid: u32,
    uid: u32,
    euid: u32,
    errors: Vec<(usize, ErrorReport)>,
}

/// Has `peer` send `signo` to this process (thread `tid`) once per value.
fn send(
    ctx: &Ctx<'_>,
    peer: &mut PeerProcess,
    how: SigHow,
    tid: i32,
    signo: i32,
    values: &[i32],
    real_uid: Option<u32>,
) -> Result<Sent> {
    send_claiming(ctx, peer, how, tid, signo, values, real_uid, None)
}

/// [`send`], the SI_QUEUE signals claiming `si_pid` `claim_pid`.
#[allow(clippy::too_many_arguments)]
fn send_claiming(
    ctx: &Ctx<'_>,
    peer: &mut PeerProcess,
    how: SigHow,
    tid: i32,
    signo: i32,
    values: &[i32],
    real_uid: Option<u32>,
    claim_pid: Option<i32>,
) -> Result<Sent> {
    peer.command(&Cmd::Signal {
        how,
        pid: std::process::id() as i32,
        tid,
        signo,
        values: values.to_vec(),
        real_uid,
        claim_pid,
    })?;
    match peer.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::Signalled {
            pid,
            uid,
            euid,
            errors,
        } => Ok(Sent {
            pid,
            uid,
            euid,
            errors,
        }),
        other => Err(Error::Peer(format!("expected signalled, got {other:?}"))),
    }
}

/// `n` pseudo-random `sival_int`s for case `seed`.
fn values(seed: u64, n: usize) -> Vec<i32> {
    let mut b = Vec::new();
    content(seed, 0, n * 4, &mut b);
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// What a step of a property saw, or its failure: (observed, detail).
type Check<T> = std::result::Result<T, (String, &'static str)>;

/// The property: per case, the peer queues two realtime signals to a tap, the higher
/// first; they must arrive lowest first, each in sending order, with their values.
fn rt_queue(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "signal-rt-queue";
    let declared = "queued: N sent, N arrive in order with their values; lowest number first";
    let run = || -> Result<PropertyResult> {
        let (lo, hi) = (rt_low(), rt_high());
        let tap = Tap::start(&[lo, hi])?;
        let mut peer = detached(ctx, name, Vec::new(), &PeerOptions::default())?;
        let mut total = 0;
        let mut most = 0;
        for case in 0..u64::from(ctx.cases) {
            let (n_hi, n_lo) = match rt_case(ctx, &tap, &mut peer, case, (lo, hi))? {
                Ok(n) => n,
                Err((observed, detail)) => {
                    return Ok(result(name, declared, observed, Verdict::Fail, detail));
                }
            };
            total += n_hi + n_lo;
            most = most.max(n_hi).max(n_lo);
        }
        peer.finish(Instant::now() + ctx.timeout)?;
        Ok(result(
            name,
            declared,
            format!(
                "{total} queued, {total} arrived in order with their values; {} before {} \
                 whenever both were pending",
                sig_name(lo),
                sig_name(hi)
            ),
            Verdict::Pass,
            format!(
                "{} cases of up to {most} per signal, the higher sent first; peer uses \
                 rt_tgsigqueueinfo to a thread that blocks them and reads a signalfd",
                ctx.cases
            ),
        ))
    };
    run().unwrap_or_else(|e| could_not_run(name, declared, e))
}

/// One case of `signal-rt-queue`: 1..=24 values of `hi`, then of `lo`, queued to the
/// tap; returns how many of each (hi, lo), or the failure (observed, detail).
fn rt_case(
    ctx: &Ctx<'_>,
    tap: &Tap,
    peer: &mut PeerProcess,
    case: u64,
    (lo, hi): (i32, i32),
) -> Result<std::result::Result<(usize, usize), (String, String)>> {
    // 1..=24 of each, the higher signal sent first: if they arrive lowest first,
    // it is the signal number that orders them, not the sending order.
    let n_hi = 1 + (case * 7 % 24) as usize;
    let n_lo = 1 + (case * 11 % 24) as usize;
    let v_hi = values(2 * case, n_hi);
    let v_lo = values(2 * case + 1, n_lo);
    for (sig, v) in [(hi, &v_hi), (lo, &v_lo)] {
        let s = send(ctx, peer, SigHow::ThreadQueue, tap.tid, sig, v, None)?;
        if let Some((i, e)) = s.errors.first() {
            return Err(Error::Peer(format!(
                "queueing {} value {i} failed: {e}",
                sig_name(sig)
            )));
        }
    }
    let got = tap.drain(ctx.timeout)?;
    let want: Vec<(i32, i32)> = v_lo
        .iter()
        .map(|&v| (lo, v))
        .chain(v_hi.iter().map(|&v| (hi, v)))
        .collect();
    let seen: Vec<(i32, i32)> = got.iter().map(|r| (r.signo, r.value)).collect();
    if seen != want {
        let count = |s: i32| seen.iter().filter(|(g, _)| *g == s).count();
        return Ok(Err((
            format!(
                "sent {} x{n_hi} then {} x{n_lo}; arrived {} x{}, {} x{}: {}",
                sig_name(hi),
                sig_name(lo),
                sig_name(lo),
                count(lo),
                sig_name(hi),
                count(hi),
                first_difference(&seen, &want)
            ),
            format!("case {case}; thread-directed rt_tgsigqueueinfo to a tap thread"),
        )));
    }
    if let Some(r) = got
        .iter()
        .find(|r| r.code != libc::SI_QUEUE || r.pid != peer.pid())
    {
        return Ok(Err((
            format!(
                "a signal arrived with si_code {} from pid {}, expected SI_QUEUE from \
                 peer {}",
                r.code,
                r.pid,
                peer.pid()
            ),
            format!("case {case}"),
        )));
    }
    Ok(Ok((n_hi, n_lo)))
}

/// Where the (signal, value) arrivals `seen` first differ from `want`, as text.
fn first_difference(seen: &[(i32, i32)], want: &[(i32, i32)]) -> String {
    match seen.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => format!(
            "arrival {i} was {} value {:#x}, expected {} value {:#x}",
            sig_name(seen[i].0),
            seen[i].1,
            sig_name(want[i].0),
            want[i].1
        ),
        None => "the counts differ".into(),
    }
}

/// The standard signal of [`std_coalesce`]: SIGURG, ignored by default, so harmless
/// even if it reached a thread that does not block it.
const STD_SIGNAL: i32 = libc::SIGURG;

fn std_coalesce(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "signal-std-coalesce";
    let declared = "not promised: boundaries not preserved";
    let run = || -> Result<PropertyResult> {
        let sig = STD_SIGNAL;
        let tap = Tap::start(&[sig])?;
        let mut peer = detached(ctx, name, Vec::new(), &PeerOptions::default())?;
        let mut seen = Vec::new();
        for n in [2usize, 5, 16, 64] {
            for how in [SigHow::Tgkill, SigHow::ThreadQueue] {
                let v = values(n as u64, n);
                let s = send(ctx, &mut peer, how, tap.tid, sig, &v, None)?;
                if let Some((i, e)) = s.errors.first() {
                    return Err(Error::Peer(format!(
                        "sending {} ({how:?}) {i} failed: {e}",
                        sig_name(sig)
                    )));
                }
                let got = tap.drain(ctx.timeout)?;
                if got.len() != 1 {
                    return Ok(result(
                        name,
                        declared,
                        format!(
                            "sent {} {n} times ({how:?}) while blocked; arrived {} times",
                            sig_name(sig),
                            got.len()
                        ),
                        Verdict::Fail,
                        "a standard signal pending is one bit: it must arrive exactly once".into(),
                    ));
                }
                if how == SigHow::ThreadQueue && got[0].value != v[0] {
                    return Ok(result(
                        name,
                        declared,
                        format!(
                            "sent {n} values while blocked; the one that arrived is {:#x}, not \
                             the first ({:#x})",
                            got[0].value, v[0]
                        ),
                        Verdict::Fail,
                        "later sends of a pending standard signal are discarded".into(),
                    ));
                }
                seen.push(format!("{n}->1"));
            }
        }
        peer.finish(Instant::now() + ctx.timeout)?;
        Ok(result(
            name,
            declared,
            format!(
                "boundaries not preserved: {} sent N times while blocked arrived once ({}; \
                 tgkill and sigqueue alike, the first value kept)",
                sig_name(sig),
                seen.join(", ")
            ),
            Verdict::Pass,
            "every send succeeded; the receiving thread blocked the signal and read a \
             signalfd after the peer was done"
                .into(),
        ))
    };
    run().unwrap_or_else(|e| could_not_run(name, declared, e))
}

/// What each way of signalling returned: `None` for success.
type Tries = Vec<(&'static str, Option<ErrorReport>)>;

/// The four ways of signalling the harness, each once: `kill` and `sigqueue` with
/// signal 0 (permission check only), `rt_tgsigqueueinfo` and `tgkill` with `sig` to the
/// tap. Returns what each returned, `None` for success.
fn four_ways(ctx: &Ctx<'_>, peer: &mut PeerProcess, tid: i32, sig: i32) -> Result<(u32, Tries)> {
    let mut out = Vec::new();
    let mut pid = 0;
    for (label, how, signo, value) in [
        ("kill", SigHow::Kill, 0, 0),
        ("sigqueue", SigHow::Sigqueue, 0, 1),
        ("rt_tgsigqueueinfo", SigHow::ThreadQueue, sig, 0x5151),
        ("tgkill", SigHow::Tgkill, sig, 0),
    ] {
        let s = send(ctx, peer, how, tid, signo, &[value], None)?;
        pid = s.pid;
        out.push((label, s.errors.first().map(|(_, e)| e.clone())));
    }
    Ok((pid, out))
}

/// The property: who may signal the harness and how the kernel names the sender; as
/// root with a second uid, else only the same-uid parts.
fn signal_uid(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "signal-uid";
    let declared =
        "same uid or CAP_KILL; sender named by the kernel (kill, tgkill); one sender per link";
    let root = geteuid().is_root();
    let run = || -> Result<PropertyResult> {
        let sig = rt_low();
        let tap = Tap::start(&[sig])?;
        let mut observed = Vec::new();
        let fail = |(observed, detail): (String, &str)| {
            Ok(result(
                name,
                declared,
                observed,
                Verdict::Fail,
                detail.into(),
            ))
        };
        // 1. A second uid (65534 as root, else a subordinate uid in a user namespace):
        // every form refused, nothing arrives.
        let second = Identity::second(vec![]);
        if second.is_ok() {
            match nobody_refused(ctx, name, &tap, sig)? {
                Ok(seen) => observed.push(seen),
                Err(f) => return fail(f),
            }
        }
        // 2. Positive control: the same uid gets through, and is named truly.
        match same_uid_named(ctx, name, &tap, sig)? {
            Ok(seen) => observed.push(seen),
            Err(f) => return fail(f),
        }
        // 2b. For SI_QUEUE the kernel checks the permission but takes si_pid and si_uid
        // from the sender: a claimed pid arrives as claimed. Shown, not judged: only
        // kill and tgkill (SI_USER, SI_TKILL) are named by the kernel.
        observed.push(claimed_pid(ctx, name, &tap, sig)?);
        // 3. si_uid is the sender's real uid: a peer with real uid 65534 and effective
        // uid 0 may signal (effective uid matches), and is named 65534 by the kernel
        // (without root: the second uid and this user's, in a user namespace).
        if second.is_ok() {
            match real_uid_named(ctx, name, &tap, sig)? {
                Ok(seen) => observed.push(seen),
                Err(f) => return fail(f),
            }
        }
        // 4. The transport locks onto its first sender and refuses chunks from another.
        match sender_lock(ctx)? {
            Ok(seen) => observed.push(seen),
            Err(bad) => {
                return fail((
                    bad,
                    "the receiver must refuse chunks from a second sender (Error::Corrupt \
                     naming its pid) and deliver nothing of them",
                ));
            }
        }
        let (verdict, detail) = uid_verdict(root, second.err());
        Ok(result(name, declared, observed.join("; "), verdict, detail))
    };
    run().unwrap_or_else(|e| could_not_run(name, declared, e))
}

/// Step 1 of `signal-uid`: a peer as uid 65534 tries the four ways; each must give
/// EPERM, and nothing may arrive at the tap.
fn nobody_refused(ctx: &Ctx<'_>, name: &str, tap: &Tap, sig: i32) -> Result<Check<String>> {
    let opts = PeerOptions {
        drop_to: Some(super::security::second_uid(vec![])),
        ..PeerOptions::default()
    };
    let mut peer = detached(ctx, name, Vec::new(), &opts)?;
    let (_, tries) = four_ways(ctx, &mut peer, tap.tid, sig)?;
    peer.finish(Instant::now() + ctx.timeout)?;
    let got = tap.drain(ctx.timeout)?;
    let admitted: Vec<&str> = tries
        .iter()
        .filter(|(_, e)| {
            e.as_ref()
                .is_none_or(|e| e.errno != Some(Errno::EPERM as i32))
        })
        .map(|(l, _)| *l)
        .collect();
    if !admitted.is_empty() || !got.is_empty() {
        return Ok(Err((
            format!(
                "uid 65534 was not refused EPERM by {admitted:?} ({tries:?}); {} \
                 signals arrived",
                got.len()
            ),
            "only the same uid or CAP_KILL may signal a process",
        )));
    }
    Ok(Ok(
        "uid 65534: EPERM from kill, sigqueue, rt_tgsigqueueinfo, tgkill".into(),
    ))
}

/// Step 2 of `signal-uid`: a peer of this process's uid tries the four ways; all must
/// succeed, and the two real signals arrive naming it (si_pid, si_uid).
fn same_uid_named(ctx: &Ctx<'_>, name: &str, tap: &Tap, sig: i32) -> Result<Check<String>> {
    let me = getuid().as_raw();
    let mut peer = detached(ctx, name, Vec::new(), &PeerOptions::default())?;
    let (pid, tries) = four_ways(ctx, &mut peer, tap.tid, sig)?;
    peer.finish(Instant::now() + ctx.timeout)?;
    let got = tap.drain(ctx.timeout)?;
    if tries.iter().any(|(_, e)| e.is_some()) || got.len() != 2 {
        return Ok(Err((
            format!(
                "positive control failed: the same uid: {tries:?}; {} of 2 signals arrived",
                got.len()
            ),
            "a refusal with the wrong cause proves nothing",
        )));
    }
    let want = [
        (libc::SI_QUEUE, pid, me, 0x5151),
        (libc::SI_TKILL, pid, me, got[1].value),
    ];
    let seen: Vec<_> = got
        .iter()
        .map(|r| (r.code, r.pid, r.uid, r.value))
        .collect();
    if seen != want {
        return Ok(Err((
            format!(
                "same-uid peer {pid}: siginfo (code, pid, uid, value) {seen:?}, expected {want:?}"
            ),
            "si_pid and si_uid must name the sender",
        )));
    }
    Ok(Ok(format!("same uid: admitted, si_pid {pid} si_uid {me}")))
}

/// Step 2b of `signal-uid`: a peer queues a signal claiming si_pid 1; what arrived, as
/// text (shown, not judged).
fn claimed_pid(ctx: &Ctx<'_>, name: &str, tap: &Tap, sig: i32) -> Result<String> {
    let mut peer = detached(ctx, name, Vec::new(), &PeerOptions::default())?;
    let s = send_claiming(
        ctx,
        &mut peer,
        SigHow::ThreadQueue,
        tap.tid,
        sig,
        &[7],
        None,
        Some(1),
    )?;
    peer.finish(Instant::now() + ctx.timeout)?;
    let got = tap.drain(ctx.timeout)?;
    Ok(match got.as_slice() {
        [r] if s.errors.is_empty() && r.pid == 1 => format!(
            "SI_QUEUE's si_pid is the sender's claim (peer {} claimed pid 1 and it arrived \
             so): only kill/tgkill's are the kernel's",
            s.pid
        ),
        other => format!(
            "SI_QUEUE claiming si_pid 1 from peer {}: {:?}, arrived {other:?}",
            s.pid, s.errors
        ),
    })
}

/// Step 3 of `signal-uid`: a peer with real uid 65534 and effective uid 0 tgkills the
/// tap; the kernel must name it by its real uid.
fn real_uid_named(ctx: &Ctx<'_>, name: &str, tap: &Tap, sig: i32) -> Result<Check<String>> {
    // As root: real uid 65534, effective 0. Otherwise, in a user namespace ([`Identity::
    // second`]): the peer stays inner root (this user outside) and takes inner uid 1 (the
    // second uid outside) as its real uid; the kernel must name the outer second uid.
    let (opts, real, named) = if geteuid().is_root() {
        (PeerOptions::default(), 65534, 65534)
    } else {
        let second = super::security::second_uid(vec![]);
        let me = Identity {
            uid: geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: vec![],
        };
        let opts = PeerOptions {
            drop_to: Some(me),
            ..PeerOptions::default()
        };
        (opts, 1, second.uid)
    };
    let mut peer = detached(ctx, name, Vec::new(), &opts)?;
    let s = send(
        ctx,
        &mut peer,
        SigHow::Tgkill,
        tap.tid,
        sig,
        &[0],
        Some(real),
    )?;
    peer.finish(Instant::now() + ctx.timeout)?;
    let got = tap.drain(ctx.timeout)?;
    let seen: Vec<_> = got.iter().map(|r| (r.code, r.pid, r.uid)).collect();
    let want = vec![(libc::SI_TKILL, s.pid, named)];
    if !s.errors.is_empty() || s.uid != real || s.euid != 0 || seen != want {
        return Ok(Err((
            format!(
                "peer {} with uid {} euid {}: {:?}; siginfo (code, pid, uid) {seen:?}, \
                 expected {want:?}",
                s.pid, s.uid, s.euid, s.errors
            ),
            "tgkill's si_uid is filled by the kernel with the sender's real uid",
        )));
    }
    Ok(Ok(format!(
        "real uid {named} (euid {}): si_uid {named}",
        if real == 1 { "this user's" } else { "0" }
    )))
}

/// The verdict and detail of a `signal-uid` that saw nothing wrong: a pass as root, a
/// skip otherwise (the uid parts did not run).
fn uid_verdict(root: bool, no_second: Option<String>) -> (Verdict, String) {
    match no_second {
        None if root => (
            Verdict::Pass,
            "peers dropped to uid/gid 65534 after exec; kill and sigqueue with signal 0 \
             (the permission check), the thread-directed forms with a real signal to a \
             thread that blocks it"
                .to_string(),
        ),
        None => (
            Verdict::Pass,
            "peers in a user namespace as a subordinate uid (newuidmap); kill and sigqueue \
             with signal 0 (the permission check), the thread-directed forms with a real \
             signal to a thread that blocks it"
                .to_string(),
        ),
        Some(why) => (
            Verdict::NotRun,
            format!("uid part not run: {why} (running as uid {})", geteuid()),
        ),
    }
}

/// A first peer sends on a signal link, then a second peer (same uid, so the kernel lets
/// it) queues a message to the same receiving thread: the receiver must report
/// [`Error::Corrupt`] naming its pid and deliver none of it; then the first peer's next message
/// arrives. `Ok(Ok(observed))`, or `Ok(Err(observed))` when it did not go so.
fn sender_lock(ctx: &Ctx<'_>) -> Result<std::result::Result<String, String>> {
    let name = "signal-uid";
    let label = format!("{} / {name}", ctx.transport.name());
    let mut link = ctx.transport.open(&Config::default())?;
    // The second sender gets the same rendezvous (pid and thread id) as the first.
    let info = link.peer.info.clone();
    let first = PeerProcess::spawn(
        ctx.launcher,
        ctx.transport.name(),
        std::mem::take(&mut link.peer),
        label.clone(),
        ctx.timeout * 3,
        &PeerOptions::default(),
    )?;
    let mut first = ready(first)?;
    let check = |link: &mut crate::transport::Link, first: &mut PeerProcess, seed| {
        let obs = receive(ctx, link, first, seed, &[5])?;
        Ok::<_, Error>(analyse(seed, &[5], &obs).first().map(|v| v.to_string()))
    };
    if let Some(v) = check(&mut link, &mut first, 1)? {
        return Err(Error::Peer(format!("first sender's message: {v}")));
    }
    let second = PeerProcess::spawn(
        ctx.launcher,
        ctx.transport.name(),
        PeerEnd {
            fds: Vec::new(),
            info,
        },
        format!("{label} (second sender)"),
        ctx.timeout * 3,
        &PeerOptions::default(),
    )?;
    let mut second = ready(second)?;
    second.command(&Cmd::Send {
        seed: 2,
        sizes: vec![7],
    })?;
    match second.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::Sent { errors, .. } if errors.is_empty() => {}
        other => {
            return Err(Error::Peer(format!(
                "second sender: expected sent, got {other:?}"
            )));
        }
    }
    let intruder = second.pid();
    second.finish(Instant::now() + ctx.timeout)?;
    let (refused, delivered, other) = drain_intruder(&mut link, intruder)?;
    // Positive control: the link still works for its sender.
    let after = check(&mut link, &mut first, 3)?;
    first.finish(Instant::now() + ctx.timeout)?;
    if delivered > 0 || refused == 0 || !other.is_empty() || after.is_some() {
        return Ok(Err(format!(
            "second sender {intruder}: {delivered} messages delivered, {refused} chunks \
             refused, other errors {other:?}; the first sender afterwards: {}",
            after.as_deref().unwrap_or("ok")
        )));
    }
    Ok(Ok(format!(
        "second sender {intruder}: {refused} chunks refused (Error::Corrupt naming the pid), \
         nothing delivered; the first sender's next message arrived"
    )))
}

/// Reads what the second sender `intruder` left pending until the link is quiet:
/// (chunks refused as [`Error::Corrupt`] naming its pid, messages delivered, other
/// errors).
fn drain_intruder(
    link: &mut crate::transport::Link,
    intruder: u32,
) -> Result<(usize, usize, Vec<String>)> {
    link.local.set_timeout(Some(Duration::from_millis(200)))?;
    let (mut refused, mut delivered, mut other) = (0, 0, Vec::new());
    let mut buf = Vec::new();
    loop {
        match link.local.recv(&mut buf) {
            Ok(_) => delivered += 1,
            Err(Error::Timeout { .. }) => break,
            Err(Error::Corrupt {
                field: "signal: sender pid",
                value,
                ..
            }) if value == u64::from(intruder) => refused += 1,
            Err(e) => other.push(e.to_string()),
        }
        if refused + delivered + other.len() > 64 {
            return Ok((refused, delivered, other));
        }
    }
    Ok((refused, delivered, other))
}

/// The property: hostile peers on the memfd of a `shm` link: resizing it is refused
/// and the ring works on; garbage in a record header is an error naming the value.
fn shm_seal(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "access-shm-seal";
    let declared = "sealed against shrink and grow; the header is validated";
    let run = || -> Result<PropertyResult> {
        let fail = |(observed, detail): (String, &str)| {
            Ok(result(
                name,
                declared,
                observed,
                Verdict::Fail,
                detail.into(),
            ))
        };
        // 1. A hostile peer tries to resize the memfd it inherited.
        let mut link = ctx.transport.open(&Config::default())?;
        let (before, tries_text) = match resize_refused(ctx, name, &link)? {
            Ok(x) => x,
            Err(f) => return fail(f),
        };
        // The reader then reads more than the whole ring, touching every page.
        let read = match ring_intact(ctx, name, &mut link, before)? {
            Ok(read) => read,
            Err(f) => return fail(f),
        };
        drop(link);
        // 2. A hostile producer writes garbage into the header word of the first record:
        // the reader errs.
        let mut errs = Vec::new();
        for value in [0xdead_beef_dead_beef_u64, 1 << 40, 2] {
            match garbage_header(ctx, name, value)? {
                Ok(e) => errs.push(e),
                Err(f) => return fail(f),
            }
        }
        Ok(result(
            name,
            declared,
            format!(
                "resize by the peer refused ({}); the reader then read {} bytes intact; a \
                 garbage record header is an error naming it: {}",
                tries_text.join(", "),
                read,
                errs.join(" | ")
            ),
            Verdict::Pass,
            "hostile peers acted on the memfd they inherited; this process survived".into(),
        ))
    };
    run().unwrap_or_else(|e| could_not_run(name, declared, e))
}

/// The size of the memfd `fd`.
fn memfd_size(fd: &OwnedFd) -> Result<i64> {
    nix::sys::stat::fstat(fd.as_fd())
        .map(|s| s.st_size)
        .map_err(|e| Error::sys("fstat the memfd", e))
}

/// Step 1 of `access-shm-seal`: a hostile peer given a duplicate of the memfd of `link`
/// tries to resize it; every try must give EPERM and the size stay. Returns the size and
/// what each try returned.
fn resize_refused(ctx: &Ctx<'_>, name: &str, link: &Link) -> Result<Check<(i64, Vec<String>)>> {
    let own = link
        .peer
        .fds
        .first()
        .ok_or_else(|| Error::Protocol("shm: the link has no descriptor for the peer".into()))?
        .try_clone()
        .map_err(|e| Error::io("dup the memfd", e))?;
    let before = memfd_size(&own)?;
    let dup = own.try_clone().map_err(|e| Error::io("dup the memfd", e))?;
    let mut hostile = detached(ctx, name, vec![dup], &PeerOptions::default())?;
    hostile.command(&Cmd::Hostile {
        act: HostileAct::Resize,
    })?;
    let tries = match hostile.expect(Instant::now() + ctx.timeout, "resize")? {
        Event::Hostile { results } => results,
        other => return Err(Error::Peer(format!("expected hostile, got {other:?}"))),
    };
    hostile.finish(Instant::now() + ctx.timeout)?;
    let after = memfd_size(&own)?;
    let refused = |(_, e): &(String, Option<ErrorReport>)| {
        e.as_ref()
            .is_some_and(|e| e.errno == Some(Errno::EPERM as i32))
    };
    let tries_text: Vec<String> = tries
        .iter()
        .map(|(op, e)| match e {
            Some(e) => e.message.clone(),
            None => format!("{op}: succeeded"),
        })
        .collect();
    if after != before || !tries.iter().all(refused) {
        // Not a page is touched: a shrunk mapping would SIGBUS this process.
        return Ok(Err((
            format!("the peer resized the memfd from {before} to {after} bytes: {tries_text:?}"),
            "F_SEAL_SHRINK and F_SEAL_GROW must refuse it (EPERM)",
        )));
    }
    Ok(Ok((before, tries_text)))
}

/// After step 1: the peer of `link` sends one and a half times the ring of `before`
/// bytes, in 128 KiB messages; all must arrive intact. Returns the bytes read.
fn ring_intact(ctx: &Ctx<'_>, name: &str, link: &mut Link, before: i64) -> Result<Check<usize>> {
    let peer = PeerProcess::spawn(
        ctx.launcher,
        ctx.transport.name(),
        std::mem::take(&mut link.peer),
        format!("{} / {name}", ctx.transport.name()),
        ctx.timeout * 3,
        &PeerOptions::default(),
    )?;
    let mut peer = ready(peer)?;
    let sizes = vec![128 << 10; (before as usize / (128 << 10)) * 3 / 2 + 1];
    let obs = receive(ctx, link, &mut peer, 11, &sizes)?;
    peer.finish(Instant::now() + ctx.timeout)?;
    if let Some(v) = analyse(11, &sizes, &obs).first() {
        return Ok(Err((
            format!("after the resize attempts, the exchange failed: {v}"),
            "the ring must work on, every page mapped",
        )));
    }
    Ok(Ok(sizes.iter().sum::<usize>()))
}

/// Step 2 of `access-shm-seal`: on a fresh link, a hostile producer writes `value` into
/// the header of the first record; the reader must fail with an [`Error::Corrupt`]
/// naming it. Returns that error's text.
fn garbage_header(ctx: &Ctx<'_>, name: &str, value: u64) -> Result<Check<String>> {
    let mut link = ctx.transport.open(&Config::default())?;
    let fds = std::mem::take(&mut link.peer.fds);
    let mut hostile = detached(ctx, name, fds, &PeerOptions::default())?;
    hostile.command(&Cmd::Hostile {
        act: HostileAct::Scribble {
            field: "record".into(),
            value,
        },
    })?;
    match hostile.expect(Instant::now() + ctx.timeout, "scribble")? {
        Event::Hostile { .. } => {}
        other => return Err(Error::Peer(format!("expected hostile, got {other:?}"))),
    }
    link.local.set_timeout(Some(ctx.timeout))?;
    let mut buf = Vec::new();
    let got = link.local.recv(&mut buf);
    hostile.finish(Instant::now() + ctx.timeout)?;
    match got {
        Err(
            e @ Error::Corrupt {
                field: "record header",
                value: v,
                ..
            },
        ) if v == value => Ok(Ok(e.to_string())),
        other => Ok(Err((
            format!("record header {value} written by the peer; the reader got {other:?}"),
            "a corrupt header must be an error naming the value",
        ))),
    }
}

/// The peer's side of [`Cmd::Signal`].
pub(super) fn peer_signal(
    how: SigHow,
    (pid, tid): (i32, i32),
    signo: i32,
    values: &[i32],
    real_uid: Option<u32>,
    claim_pid: Option<i32>,
) -> Result<Event> {
    if let Some(r) = real_uid {
        let keep = Uid::from_raw(u32::MAX);
        nix::unistd::setresuid(Uid::from_raw(r), keep, keep)
            .map_err(|e| Error::sys(format!("peer: setresuid({r}, -1, -1)"), e))?;
    }
    let me = getpid().as_raw();
    let uid = getuid().as_raw();
    let claim = claim_pid.unwrap_or(me);
    let mut errors = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        let r = match how {
            SigHow::Kill => match signo {
                0 => nix::sys::signal::kill(Pid::from_raw(pid), None),
                s => nix::sys::signal::Signal::try_from(s)
                    .and_then(|s| nix::sys::signal::kill(Pid::from_raw(pid), s)),
            },
            SigHow::Sigqueue => queue_info(pid, None, signo, v, claim, uid),
            SigHow::ThreadQueue => queue_info(pid, Some(tid), signo, v, claim, uid),
            SigHow::Tgkill => tgkill(pid, tid, signo),
        };
        if let Err(e) = r {
            errors.push((i, ErrorReport::from_errno(format!("{how:?}"), e)));
        }
    }
    Ok(Event::Signalled {
        pid: me as u32,
        uid,
        euid: geteuid().as_raw(),
        errors,
    })
}

/// The peer's side of [`Cmd::Hostile`], on the first inherited descriptor.
pub(super) fn peer_hostile(fds: &[OwnedFd], act: &HostileAct) -> Result<Event> {
    let Some(fd) = fds.first() else {
        return Err(Error::Protocol(
            "peer: no inherited descriptor to act on".into(),
        ));
    };
    match act {
        HostileAct::Resize => {
            let size = nix::sys::stat::fstat(fd.as_fd()).map_or(0, |s| s.st_size);
            let results = [0, 4096, size + 4096]
                .into_iter()
                .map(|len| {
                    let op = format!("ftruncate to {len}");
                    let r = nix::unistd::ftruncate(fd.as_fd(), len);
                    let error = r.err().map(|e| ErrorReport::from_errno(&op, e));
                    (op, error)
                })
                .collect();
            Ok(Event::Hostile { results })
        }
        HostileAct::Scribble { field, value } => {
            use crate::shm::region::Mapping;
            use crate::shm::ring::Ring;
            use crate::shm::sem::LinuxFutex;
            let ring = Mapping::attach(fd)
                .and_then(|m| Ring::attach(Arc::new(m), std::process::id(), Arc::new(LinuxFutex)));
            let producer = ring
                .map_err(|e| Error::Protocol(format!("peer: attach to the ring: {e}")))?
                .into_producer();
            producer.poke(field, *value);
            // Stay attached (not closed) until this process exits.
            std::mem::forget(producer);
            Ok(Event::Hostile {
                results: vec![(format!("wrote {field} = {value}"), None)],
            })
        }
    }
}
