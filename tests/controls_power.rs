//! Negative controls, second set (the first is `tests/controls.rs`): one third-party
//! style adapter, a chunked length-prefixed protocol over a pipe written with `nix`
//! (`FramedPipe`), and 21 copies of it each carrying one bug of a class that real IPC
//! crates have had (the issue or the crate cited on each [`Bug`]). Each control must
//! fail the property it names; the clean adapter, its twin, must pass every one of those
//! properties. Through the public API only: the peer is this test binary, re-run for
//! `peer_entry`.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use ipc_audit::audit::{Auditor, PeerLauncher, Verdict};
use ipc_audit::transport::{self, Config, Endpoint, Guarantees, Link, PeerEnd, Transport};
use ipc_audit::{Error, Result, run_if_peer};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// The adapter's largest message.
const MAX: usize = 1 << 20;
/// The body bytes of one chunk.
const CHUNK: usize = 16 * 1024;
/// A chunk header's flag: more chunks of this message follow.
const MORE: u32 = 1 << 31;

/// The bug a [`FramedPipe`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    /// None: the clean twin.
    None,
    /// A receive restarts its whole timeout after EINTR, so under a steady stream of
    /// signals it never times out (`deadline`). capnproto/capnproto#580 ("If poll() fails
    /// with EINTR, it is restarted with the wrong timeout"); smol-rs/polling#164 (review:
    /// "a poll with a timeout of one second can now run infinitely long").
    RestartOnEintr,
    /// Once part of a message is in, the rest is awaited with no deadline (`deadline`).
    /// de-vri-es/serial2-rs#31 (read_exact's timeout applies per read, so a slow
    /// sender stretches it without bound); servo/ipc-channel#266 (recv hangs).
    NoDeadlineMidMessage,
    /// End of file is reported as a timeout, never as closed (`deadline`).
    /// servo/ipc-channel#266 (Disconnected never reported once the other process
    /// ends); mutouyun/cpp-ipc#1 (waits forever when the sender quit).
    EofAsTimeout,
    /// An expired receive timeout is reported as WouldBlock (`deadline`).
    /// algesten/ureq#131 and mimblewimble/grin#3047 (set_read_timeout surfaces as
    /// WouldBlock on Unix).
    TimeoutAsWouldBlock,
    /// A blocking send waits for room with no deadline, ignoring the timeout
    /// (`deadline`). servo/ipc-channel#275 (send hangs when nobody receives).
    SendIgnoresTimeout,
    /// A receive that times out mid-message throws away the part it had (`retry`).
    /// astrid-runtime/astrid#1146 (read_exact under a timeout drops partial header
    /// bytes, desyncing the frames); Etoile-Bleu/ZamSync#31; commonwarexyz/monorepo#2596.
    DropsPartialOnTimeout,
    /// A nonblocking send that wrote part of a frame returns WouldBlock and forgets the
    /// rest: the retry writes a new frame after half of one (`retry`).
    /// hyprwm/Hyprland#15262 (a short write silently dropped the tail of an event);
    /// gvanem/Watt-32#106.
    PartialSendWouldBlock,
    /// The same with a send timeout: part written, Timeout returned, rest forgotten
    /// (`retry`). MisterTea/EternalTerminal#796 (a partially written buffer abandoned at
    /// the EAGAIN give-up).
    PartialSendTimeout,
    /// A send that wrote part keeps the rest (right) but still reports WouldBlock or
    /// Timeout, so the caller's retry sends the message twice (`retry`).
    /// MisterTea/EternalTerminal#815 (-1 after a prefix went out: the retry sent the
    /// prefix twice and corrupted the framed stream).
    DoublesOnRetry,
    /// A message refused with WouldBlock is kept and sent after the next one (`retry`).
    /// Hacker-Valley-Media/Interceptor#230 (writes must queue behind unsent data, or
    /// order and framing break).
    ReordersAfterWouldBlock,
    /// The size check lets one byte over the declared maximum through (`oversize`).
    /// paritytech/soketto#61 (off-by-one in the MAX_HEADERS_SIZE check).
    AcceptsOneOver,
    /// Three bytes over (`oversize`): a limit checked with part of the header added.
    /// zowens/commitlog#7 and apache/httpd#611 (a length checked against the wrong bound
    /// by the header's size).
    AcceptsThreeOver,
    /// A message of exactly the declared maximum is refused (`boundaries`).
    /// paritytech/soketto#61 (a size equal to the maximum is rejected).
    RefusesAtMax,
    /// A message of an exact multiple of the chunk size is not terminated, and merges
    /// with the next one (`boundaries`). uber/tchannel-java#14 (messages over 64 KiB not
    /// fragmented properly); ofiwg/libfabric#11954 (chunking of large messages).
    ChunkMultipleMerge,
    /// An empty message is never sent (`boundaries`). zeromq/czmq#633 and #634
    /// (zero-sized messages sent nothing); OpenCyphal/libcanard#33.
    DropsEmpty,
    /// A large message's write loop unwraps EPIPE and panics; small ones return Closed
    /// (`sigpipe`, with large messages). hops/pack2#17 and imsnif/bandwhich#429
    /// (`unwrap()` on BrokenPipe panics).
    PanicsOnEpipeLarge,
    /// A large message's wait for room surfaces EINTR (`eintr`). mozilla/audioipc#18
    /// (EINTR from sendmsg/recvmsg not retried); minpeter/et.rs#7.
    EintrInChunkLoop,
    /// A receive keeps only the first 64 KiB of a larger message, silently
    /// (`boundaries`). zephyrproject-rtos/zephyr#45509 (a message too big for the buffer
    /// silently dropped); zeromq/libzmq#1153 (IPC drops large messages).
    TruncatesLarge,
    /// The receiver opens a descriptor every 200 messages and never closes it: slower
    /// than the first set's control, under fd-flat's local slack (`fd-exact`).
    /// mitsuhiko/unix-ipc#3 (a descriptor leaked per channel sent).
    LeakPerRecv200,
    /// `open` dups a descriptor it never closes: one leaked per link (`fd-exact`).
    /// Consensys-Incorporated/teku#10510 (a socket leaked per failed connect);
    /// grpc/grpc#18365 (leak per channel recreated).
    LeakPerLink,
    /// The receiver `dup`s its descriptor (no O_CLOEXEC) on the first large message:
    /// made after traffic began, it reaches every exec'd child (`fd-exact`).
    /// tailhook/openat#46 (`try_clone` calls dup(2), which does not set CLOEXEC).
    LateDupNoCloexec,
}

/// Every control: (name, bug, the property it must fail).
const CONTROLS: &[(&str, Bug, &str)] = &[
    ("restarts-timeout-on-eintr", Bug::RestartOnEintr, "deadline"),
    (
        "no-deadline-mid-message",
        Bug::NoDeadlineMidMessage,
        "deadline",
    ),
    ("eof-as-timeout", Bug::EofAsTimeout, "deadline"),
    (
        "timeout-as-wouldblock",
        Bug::TimeoutAsWouldBlock,
        "deadline",
    ),
    ("send-ignores-timeout", Bug::SendIgnoresTimeout, "deadline"),
    (
        "drops-partial-on-timeout",
        Bug::DropsPartialOnTimeout,
        "retry",
    ),
    (
        "partial-send-wouldblock",
        Bug::PartialSendWouldBlock,
        "retry",
    ),
    ("partial-send-timeout", Bug::PartialSendTimeout, "retry"),
    ("doubles-on-retry", Bug::DoublesOnRetry, "retry"),
    (
        "reorders-after-wouldblock",
        Bug::ReordersAfterWouldBlock,
        "retry",
    ),
    ("accepts-one-over", Bug::AcceptsOneOver, "oversize"),
    ("accepts-three-over", Bug::AcceptsThreeOver, "oversize"),
    ("refuses-at-max", Bug::RefusesAtMax, "boundaries"),
    (
        "chunk-multiple-merge",
        Bug::ChunkMultipleMerge,
        "boundaries",
    ),
    ("drops-empty", Bug::DropsEmpty, "boundaries"),
    ("panics-on-epipe-large", Bug::PanicsOnEpipeLarge, "sigpipe"),
    ("eintr-in-chunk-loop", Bug::EintrInChunkLoop, "eintr"),
    ("truncates-large", Bug::TruncatesLarge, "boundaries"),
    ("leaks-fd-per-200-recv", Bug::LeakPerRecv200, "fd-exact"),
    ("leaks-fd-per-link", Bug::LeakPerLink, "fd-exact"),
    ("late-dup-not-cloexec", Bug::LateDupNoCloexec, "fd-exact"),
];

/// A chunked, length-prefixed protocol over a pipe, with one [`Bug`].
struct FramedPipe(Bug, &'static str);

/// One end of a [`FramedPipe`].
struct End {
    fd: OwnedFd,
    bug: Bug,
    timeout: Option<Duration>,
    nonblocking: bool,
    /// Received bytes not yet a whole message.
    inbuf: Vec<u8>,
    /// The rest of a frame a send accepted but could not write yet.
    pending: Vec<u8>,
    /// A frame held back (the reordering bug).
    held: Option<Vec<u8>>,
    received: u64,
    late: Option<OwnedFd>,
}

fn sys(op: &str, e: Errno) -> Error {
    Error::sys(format!("framed-pipe: {op}"), e)
}

/// A poll timeout for `d` (rounded up to whole milliseconds), or forever.
fn poll_timeout(d: Option<Duration>) -> PollTimeout {
    match d {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    }
}

impl End {
    fn limit(&self) -> usize {
        match self.bug {
            Bug::AcceptsOneOver => MAX + 1,
            Bug::AcceptsThreeOver => MAX + 3,
            _ => MAX,
        }
    }

    fn encode(&self, msg: &[u8]) -> Vec<u8> {
        let len = msg.len();
        let mut out = Vec::with_capacity(len + 4 * (len / CHUNK + 1));
        let mut off = 0;
        loop {
            let n = (len - off).min(CHUNK);
            let more = if self.bug == Bug::ChunkMultipleMerge {
                len > 0 && off + CHUNK <= len
            } else {
                off + n < len
            };
            let h = n as u32 | if more { MORE } else { 0 };
            out.extend_from_slice(&h.to_le_bytes());
            out.extend_from_slice(&msg[off..off + n]);
            off += n;
            if off >= len {
                return out;
            }
        }
    }

    /// The first whole message in `inbuf` and the bytes it used, if one is there.
    fn decode(&self) -> Option<Result<(Vec<u8>, usize)>> {
        let b = &self.inbuf;
        let mut pos = 0;
        let mut msg = Vec::new();
        loop {
            let h = u32::from_le_bytes(b.get(pos..pos + 4)?.try_into().ok()?);
            let n = (h & !MORE) as usize;
            if n > CHUNK || msg.len() + n > self.limit() {
                return Some(Err(Error::Protocol(format!(
                    "framed-pipe: bad chunk {h:#x}"
                ))));
            }
            msg.extend_from_slice(b.get(pos + 4..pos + 4 + n)?);
            pos += 4 + n;
            if h & MORE == 0 {
                return Some(Ok((msg, pos)));
            }
        }
    }

    /// Writes as much of `data` as it can by the deadline: the bytes written, and the
    /// error that stopped it.
    fn push(&mut self, data: &[u8], large: bool) -> (usize, Option<Error>) {
        let deadline = if self.nonblocking {
            Some(Instant::now())
        } else {
            self.timeout.map(|t| Instant::now() + t)
        };
        let mut off = 0;
        while off < data.len() {
            match nix::unistd::write(&self.fd, &data[off..]) {
                Ok(n) => off += n,
                Err(Errno::EAGAIN) => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    if left == Some(Duration::ZERO) {
                        let e = if self.nonblocking {
                            Error::WouldBlock {
                                op: "framed-pipe: send".into(),
                            }
                        } else {
                            Error::Timeout {
                                op: "framed-pipe: send".into(),
                                after: self.timeout.unwrap_or_default(),
                            }
                        };
                        return (off, Some(e));
                    }
                    let wait = if self.bug == Bug::SendIgnoresTimeout {
                        None
                    } else {
                        left
                    };
                    let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
                    match poll(&mut fds, poll_timeout(wait)) {
                        Err(Errno::EINTR) if large && self.bug == Bug::EintrInChunkLoop => {
                            return (off, Some(sys("poll", Errno::EINTR)));
                        }
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return (off, Some(sys("poll", e))),
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE) => {
                    if large && self.bug == Bug::PanicsOnEpipeLarge {
                        panic!("framed-pipe: write of a large message failed: EPIPE");
                    }
                    let op = "framed-pipe: send".into();
                    return (off, Some(Error::Closed { op }));
                }
                Err(e) => return (off, Some(sys("write", e))),
            }
        }
        (off, None)
    }

    /// Writes the pending rest, then a held frame (when `held`).
    fn drain_pending(&mut self, held: bool) -> Result<()> {
        if !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            let (n, err) = self.push(&p, p.len() > 4096);
            if let Some(e) = err {
                self.pending = p[n..].to_vec();
                return Err(e);
            }
        }
        if let Some(h) = self.held.take_if(|_| held) {
            let (n, err) = self.push(&h, h.len() > 4096);
            if n < h.len() {
                self.pending = h[n..].to_vec();
            }
            if let Some(e) = err
                && n == 0
            {
                return Err(e);
            }
        }
        Ok(())
    }

    fn deliver(&mut self, msg: Vec<u8>, buf: &mut Vec<u8>) -> Result<usize> {
        self.received += 1;
        let mut msg = msg;
        if self.bug == Bug::TruncatesLarge && msg.len() > 65536 {
            msg.truncate(65536);
        }
        if self.bug == Bug::LeakPerRecv200 && self.received.is_multiple_of(200) {
            std::mem::forget(std::fs::File::open("/dev/null").map_err(Error::from)?);
        }
        if self.bug == Bug::LateDupNoCloexec && msg.len() > 4096 && self.late.is_none() {
            self.late = Some(nix::unistd::dup(&self.fd).map_err(|e| sys("dup", e))?);
        }
        *buf = msg;
        Ok(buf.len())
    }

    fn timed_out(&mut self) -> Error {
        if self.bug == Bug::DropsPartialOnTimeout {
            self.inbuf.clear();
        }
        if self.bug == Bug::TimeoutAsWouldBlock {
            return Error::WouldBlock {
                op: "framed-pipe: recv".into(),
            };
        }
        Error::Timeout {
            op: "framed-pipe: recv".into(),
            after: self.timeout.unwrap_or_default(),
        }
    }
}

impl Endpoint for End {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let too_large = if self.bug == Bug::RefusesAtMax {
            msg.len() >= MAX
        } else {
            msg.len() > self.limit()
        };
        if too_large {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: MAX,
            });
        }
        if self.bug == Bug::DropsEmpty && msg.is_empty() {
            return Ok(());
        }
        let frame = self.encode(msg);
        // The reordering bug: a message that must wait is held, and goes out after the
        // next one.
        let reorders = self.bug == Bug::ReordersAfterWouldBlock;
        match self.drain_pending(!reorders) {
            Err(Error::WouldBlock { .. } | Error::Timeout { .. })
                if reorders && self.held.is_none() =>
            {
                self.held = Some(frame);
                return Ok(());
            }
            r => r?,
        }
        let (n, err) = self.push(&frame, msg.len() > 4096);
        let Some(e) = err else {
            return self.drain_pending(true);
        };
        let retryable = matches!(e, Error::WouldBlock { .. } | Error::Timeout { .. });
        if n == 0 {
            if retryable && self.bug == Bug::ReordersAfterWouldBlock && self.held.is_none() {
                self.held = Some(frame);
                return Ok(());
            }
            return Err(e);
        }
        if !retryable {
            return Err(e);
        }
        match self.bug {
            Bug::PartialSendWouldBlock if matches!(e, Error::WouldBlock { .. }) => Err(e),
            Bug::PartialSendTimeout if matches!(e, Error::Timeout { .. }) => Err(e),
            Bug::DoublesOnRetry => {
                self.pending = frame[n..].to_vec();
                Err(e)
            }
            _ => {
                self.pending = frame[n..].to_vec();
                Ok(())
            }
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let mut deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(r) = self.decode() {
                let (msg, used) = r?;
                self.inbuf.drain(..used);
                return self.deliver(msg, buf);
            }
            let left = if self.nonblocking {
                Some(Duration::ZERO)
            } else {
                deadline.map(|d| d.saturating_duration_since(Instant::now()))
            };
            // The bug: once part of a message is in, the deadline no longer counts.
            let no_deadline = self.bug == Bug::NoDeadlineMidMessage && !self.inbuf.is_empty();
            if left == Some(Duration::ZERO) && !no_deadline {
                return Err(self.timed_out());
            }
            let wait = if no_deadline { None } else { left };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, poll_timeout(wait)) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(Errno::EINTR) => {
                    if self.bug == Bug::RestartOnEintr {
                        deadline = self.timeout.map(|t| Instant::now() + t);
                    }
                    continue;
                }
                Err(e) => return Err(sys("poll", e)),
            }
            let mut chunk = vec![0u8; 64 * 1024];
            match nix::unistd::read(&self.fd, &mut chunk) {
                Ok(0) if self.inbuf.is_empty() => {
                    if self.bug == Bug::EofAsTimeout {
                        std::thread::sleep(left.unwrap_or(Duration::from_millis(100)));
                        return Err(self.timed_out());
                    }
                    return Err(Error::Closed {
                        op: "framed-pipe: recv".into(),
                    });
                }
                Ok(0) => {
                    return Err(Error::Protocol(
                        "framed-pipe: end of file in the middle of a message".into(),
                    ));
                }
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(sys("read", e)),
            }
        }
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        Ok(())
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.nonblocking = on;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let nb = std::mem::replace(&mut self.nonblocking, false);
        let r = self.drain_pending(true);
        self.nonblocking = nb;
        r
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if !self.pending.is_empty() || self.held.is_some() {
            self.nonblocking = false;
            self.timeout = Some(Duration::from_secs(1));
            let _ = self.drain_pending(true);
        }
    }
}

fn end(fd: OwnedFd, bug: Bug) -> Result<Box<dyn Endpoint>> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| sys("O_NONBLOCK", e))?;
    Ok(Box::new(End {
        fd,
        bug,
        timeout: None,
        nonblocking: false,
        inbuf: Vec::new(),
        pending: Vec::new(),
        held: None,
        received: 0,
        late: None,
    }))
}

impl Transport for FramedPipe {
    fn name(&self) -> &'static str {
        self.1
    }

    fn guarantees(&self) -> Guarantees {
        // What a pipe declares, with this protocol's maximum, one sender per link.
        let mut g = transport::pipe::Pipe.guarantees();
        g.max_message = MAX;
        g.many_senders = None;
        g
    }

    fn open(&self, _cfg: &Config) -> Result<Link> {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| sys("pipe2", e))?;
        if self.0 == Bug::LeakPerLink {
            std::mem::forget(nix::unistd::dup(&r).map_err(|e| sys("dup", e))?);
        }
        Ok(Link {
            local: end(r, self.0)?,
            peer: PeerEnd {
                fds: vec![w],
                info: String::new(),
            },
            guard: None,
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
        // Writes to a pipe whose reader is gone give EPIPE, not death: SIGPIPE stays
        // blocked in the sending thread.
        let mut set = SigSet::empty();
        set.add(Signal::SIGPIPE);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|e| sys("mask", e))?;
        let fd = peer
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("framed-pipe: no descriptor".into()))?;
        end(fd, self.0)
    }
}

fn resolve(name: &str) -> Option<Box<dyn Transport>> {
    if name == "framed-pipe" {
        return Some(Box::new(FramedPipe(Bug::None, "framed-pipe")));
    }
    CONTROLS
        .iter()
        .find(|c| c.0 == name)
        .map(|&(n, bug, _)| Box::new(FramedPipe(bug, n)) as Box<dyn Transport>)
        .or_else(|| transport::by_name(name))
}

/// The peer role of this test binary; a no-op when run as a normal test.
#[test]
fn peer_entry() {
    run_if_peer(resolve);
}

/// Audits `name` on `property` alone: (verdict, observed, detail).
fn audit(name: &str, property: &str) -> (Verdict, String, String) {
    let t = resolve(name).expect("known transport");
    let auditor = Auditor::new(PeerLauncher::test_binary("peer_entry").expect("own exe"))
        .cases(4)
        .only([property]);
    let r = auditor.audit(t.as_ref());
    let p = r
        .properties
        .iter()
        .find(|p| p.property == property)
        .expect("the property ran");
    println!(
        "{name} / {}: {:?}: {} ({})",
        p.property, p.verdict, p.observed, p.detail
    );
    (p.verdict, p.observed.clone(), p.detail.clone())
}

/// The control called `name` fails its property.
fn control_fails(name: &str) {
    let &(_, _, property) = CONTROLS.iter().find(|c| c.0 == name).expect("a control");
    let (v, observed, detail) = audit(name, property);
    assert_eq!(
        v,
        Verdict::Fail,
        "{name} / {property}: {observed} ({detail})"
    );
}

/// The clean twin passes `property`.
fn twin_passes(property: &str) {
    let (v, observed, detail) = audit("framed-pipe", property);
    assert_eq!(
        v,
        Verdict::Pass,
        "framed-pipe / {property}: {observed} ({detail})"
    );
}

macro_rules! controls {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                control_fails($name);
            }
        )*
    };
}

controls! {
    restarts_timeout_on_eintr_fails_deadline => "restarts-timeout-on-eintr",
    no_deadline_mid_message_fails_deadline => "no-deadline-mid-message",
    eof_as_timeout_fails_deadline => "eof-as-timeout",
    timeout_as_wouldblock_fails_deadline => "timeout-as-wouldblock",
    send_ignores_timeout_fails_deadline => "send-ignores-timeout",
    drops_partial_on_timeout_fails_retry => "drops-partial-on-timeout",
    partial_send_wouldblock_fails_retry => "partial-send-wouldblock",
    partial_send_timeout_fails_retry => "partial-send-timeout",
    doubles_on_retry_fails_retry => "doubles-on-retry",
    reorders_after_wouldblock_fails_retry => "reorders-after-wouldblock",
    accepts_one_over_fails_oversize => "accepts-one-over",
    accepts_three_over_fails_oversize => "accepts-three-over",
    refuses_at_max_fails_boundaries => "refuses-at-max",
    chunk_multiple_merge_fails_boundaries => "chunk-multiple-merge",
    drops_empty_fails_boundaries => "drops-empty",
    panics_on_epipe_large_fails_sigpipe => "panics-on-epipe-large",
    eintr_in_chunk_loop_fails_eintr => "eintr-in-chunk-loop",
    truncates_large_fails_boundaries => "truncates-large",
    leaks_fd_per_200_recv_fails_fd_exact => "leaks-fd-per-200-recv",
    leaks_fd_per_link_fails_fd_exact => "leaks-fd-per-link",
    late_dup_not_cloexec_fails_fd_exact => "late-dup-not-cloexec",
}

#[test]
fn the_clean_twin_passes_deadline() {
    twin_passes("deadline");
}

#[test]
fn the_clean_twin_passes_retry() {
    twin_passes("retry");
}

#[test]
fn the_clean_twin_passes_oversize_boundaries_sigpipe_eintr() {
    for p in ["oversize", "boundaries", "sigpipe", "eintr"] {
        twin_passes(p);
    }
}

#[test]
fn the_clean_twin_passes_fd_exact() {
    twin_passes("fd-exact");
}

#[test]
fn every_control_names_a_property_its_twin_is_tested_on() {
    let twin_tested = [
        "deadline",
        "retry",
        "oversize",
        "boundaries",
        "sigpipe",
        "eintr",
        "fd-exact",
    ];
    for (name, _, p) in CONTROLS {
        assert!(twin_tested.contains(p), "{name}: {p}");
    }
    assert_eq!(CONTROLS.len(), 21);
}
