//! The unit-level contract of a transport: generic checks over `&dyn Transport`, each
//! deciding what it expects from the transport's declared [`Guarantees`], and one line
//! per built-in transport in `contracts!` at the bottom (the model: iceoryx2's
//! `iceoryx2-cal/conformance-tests`). Both ends live in this process: these check the
//! local behaviour of an [`Endpoint`]; what needs a peer in another process (ordering
//! under load, access, death, ...) is the audit's, in `tests/conformance.rs`.
//!
//! Errors are matched by variant (`Error::Truncated { len, .. }`, `Error::Timeout`),
//! never by their text. Every wait has a deadline: the endpoints get timeouts, and a call
//! that could hang runs on a thread that the test waits for only so long ([`within`]).
//! Named objects go under a fresh temporary directory or have the transport's unique
//! names, and are removed by the link's guard (`named_objects_have_the_mode_and_go`
//! checks that).
//!
//! Controls: each contract was seen to fail against a broken transport, then the break
//! was reverted (not kept; tests/controls.rs holds the audit's kept controls). All in
//! src/transport/datagram.rs (uds-dgram, udp, uds-seqpacket fail; the rest pass) but
//! the last two:
//! - `short_buffer_reports_real_length`: `recv_into` returning `Ok(buf.len())` where
//!   MSG_TRUNC said the datagram was cut: "uds-dgram: a message of 100 bytes received
//!   into 10 bytes must be Truncated, got Ok(10)".
//! - `max_message_round_trip`, `configured_max_is_exact`: `send` refusing at
//!   `len >= max` (off by one): "uds-dgram: send of the declared maximum 212960: message
//!   of 212960 bytes exceeds the maximum of 212960 bytes".
//! - `nonblocking_recv_would_block`: `set_nonblocking` ignoring its argument: "... must
//!   be WouldBlock, got Err(Timeout { .. })".
//! - `recv_times_out`: `set_timeout` ignoring its argument (every wait forever): "udp
//!   (local): recv with a 30ms timeout did not return within 2s"; `messages_arrive_whole`
//!   then fails by the one-minute bound of every test.
//! - `named_objects_have_the_mode_and_go`: `named::chmod` applying `mode & 0o755`: the
//!   six transports with a path (fifo, uds-stream, uds-dgram, uds-seqpacket, file,
//!   semaphore) fail on "mode of PATH".
//! - `every_transport_has_a_contract_line`: the semaphore line removed: "no contract
//!   line for semaphore".

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipc_audit::Error;
use ipc_audit::transport::{
    self, Boundaries, Config, Endpoint, Link, Ordering, Transport, datagram::DatagramEndpoint,
};

/// How long a wait that should succeed may take before the contract calls it a hang.
const LONG: Duration = Duration::from_secs(5);
/// The timeout of a wait that should time out.
const SHORT: Duration = Duration::from_millis(30);
/// The bound of one contract test.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// A link with both ends in this process, timeouts set, and the temporary directory its
/// named objects live in (removed last).
struct Pair {
    /// The link's local end: the receiver of a one-way transport.
    local: Box<dyn Endpoint>,
    /// The peer's end, attached here: the sender of a one-way transport.
    peer: Box<dyn Endpoint>,
    guard: Option<Box<dyn std::any::Any + Send>>,
    _dir: tempfile::TempDir,
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ipc-audit-contract-")
        .tempdir()
        .unwrap()
}

/// Opens `t` with `cfg` made to point at a fresh temporary directory.
fn pair_with(t: &dyn Transport, cfg: Config) -> Pair {
    let dir = tempdir();
    let cfg = cfg.with_dir(dir.path());
    let Link {
        mut local,
        peer,
        guard,
        ..
    } = t
        .open(&cfg)
        .unwrap_or_else(|e| panic!("{}: open: {e}", t.name()));
    let mut peer = t
        .attach(peer)
        .unwrap_or_else(|e| panic!("{}: attach: {e}", t.name()));
    local.set_timeout(Some(LONG)).unwrap();
    peer.set_timeout(Some(LONG)).unwrap();
    Pair {
        local,
        peer,
        guard,
        _dir: dir,
    }
}

fn pair(t: &dyn Transport) -> Pair {
    pair_with(t, Config::default())
}

/// Runs `f` on a thread and waits for it at most `limit`: a call that ignores its
/// timeout fails the contract instead of hanging it (the thread is left behind). A
/// panic of `f` is passed on.
fn within<R: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} did not return within {limit:?}"),
    }
}

/// A message of `len` bytes that differs from its neighbours of other lengths.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + len) as u8).collect()
}

/// Runs `f(sender, receiver, direction)` for peer to local, then local to peer when the
/// transport is duplex.
fn each_direction(
    p: &mut Pair,
    duplex: bool,
    mut f: impl FnMut(&mut dyn Endpoint, &mut dyn Endpoint, &str),
) {
    f(&mut *p.peer, &mut *p.local, "peer to local");
    if duplex {
        f(&mut *p.local, &mut *p.peer, "local to peer");
    }
}

/// The declared maximum is accepted whole and one byte more is refused as
/// `Error::TooLarge { len, max }` with both sizes; the link survives the refusal. A
/// transport that carries no data accepts only the empty message (maximum 0).
fn max_message_round_trip(t: &dyn Transport) {
    let g = t.guarantees();
    let max = g.max_message;
    let mut p = pair(t);
    let name = t.name();
    if g.carries_data {
        // The sender runs on its own thread: a byte stream takes a message of the
        // maximum only as the receiver reads it.
        let mut tx = std::mem::replace(&mut p.peer, Box::new(Nothing));
        let big = pattern(max);
        let sent = std::thread::spawn(move || {
            let r = tx.send(&big).and_then(|()| tx.flush());
            (tx, r)
        });
        let mut buf = Vec::new();
        let mut rx = std::mem::replace(&mut p.local, Box::new(Nothing));
        let (rx, got) = within(LONG * 2, "recv of the maximum", move || {
            let r = rx.recv(&mut buf);
            (rx, r.map(|n| (n, buf)))
        });
        p.local = rx;
        let (tx, r) = sent.join().unwrap();
        p.peer = tx;
        r.unwrap_or_else(|e| panic!("{name}: send of the declared maximum {max}: {e}"));
        let (n, buf) = got.unwrap_or_else(|e| panic!("{name}: recv of {max} bytes: {e}"));
        assert_eq!(n, max, "{name}: length of the maximum message");
        assert!(
            buf == pattern(max),
            "{name}: the maximum message arrived changed"
        );
    }
    match p.peer.send(&vec![0u8; max + 1]) {
        Err(Error::TooLarge { len, max: m }) => {
            assert_eq!((len, m), (max + 1, max), "{name}: the sizes in TooLarge");
        }
        other => panic!(
            "{name}: a message of max + 1 = {} bytes must be TooLarge, got {other:?}",
            max + 1
        ),
    }
    let after = if g.carries_data { &b"after"[..] } else { b"" };
    p.peer.send(after).unwrap();
    let mut buf = Vec::new();
    assert_eq!(
        p.local.recv(&mut buf).unwrap(),
        after.len(),
        "{name}: the link after a refusal"
    );
    assert_eq!(buf, after);
}

/// A maximum set in the [`Config`] is the exact limit: that many bytes pass, one more is
/// `Error::TooLarge` naming it. A transport that refuses the configuration (a fixed
/// maximum, or no data) says so at `open`, as an `Error::Invalid`.
fn configured_max_is_exact(t: &dyn Transport) {
    const MAX: usize = 100;
    let name = t.name();
    let dir = tempdir();
    let cfg = Config::default().with_dir(dir.path()).with_max_message(MAX);
    if !t.guarantees().carries_data {
        assert!(
            matches!(t.open(&cfg), Err(Error::Invalid { .. })),
            "{name}: a maximum of {MAX} for a transport without data must be refused"
        );
        return;
    }
    let mut p = pair_with(t, Config::default().with_max_message(MAX));
    each_direction(&mut p, t.guarantees().duplex, |tx, rx, dir| {
        match tx.send(&[0u8; MAX + 1]) {
            Err(Error::TooLarge { len: 101, max: MAX }) => {}
            other => panic!(
                "{name} ({dir}): {} bytes over a configured {MAX} must be TooLarge, got {other:?}",
                MAX + 1
            ),
        }
        tx.send(&pattern(MAX)).unwrap_or_else(|e| {
            panic!("{name} ({dir}): send of the configured maximum {MAX}: {e}")
        });
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), MAX, "{name} ({dir})");
        assert_eq!(buf, pattern(MAX), "{name} ({dir})");
    });
}

/// Messages arrive whole, each with its own length, the empty one included, and nothing
/// more arrives after them (no message split, merged or repeated). In order where the
/// ordering is declared FIFO or by priority (all sent at one priority); all of them
/// where it is declared reliable. A transport without data counts empty messages.
fn messages_arrive_whole(t: &dyn Transport) {
    let g = t.guarantees();
    let name = t.name();
    let sent: Vec<Vec<u8>> = if g.carries_data {
        vec![
            b"one".to_vec(),
            Vec::new(),
            pattern(300),
            b"three".to_vec(),
            Vec::new(),
        ]
    } else {
        vec![Vec::new(); 5]
    };
    let mut p = pair(t);
    each_direction(&mut p, g.duplex, |tx, rx, dir| {
        for m in &sent {
            tx.send(m).unwrap();
        }
        tx.flush().unwrap();
        let mut got = Vec::new();
        // Start from a stale, short buffer: `recv` replaces its content.
        let mut buf = vec![0xee; 2];
        let n = if g.reliable { sent.len() } else { usize::MAX };
        rx.set_timeout(Some(if g.reliable { LONG } else { SHORT }))
            .unwrap();
        while got.len() < n {
            match rx.recv(&mut buf) {
                Ok(len) => {
                    assert_eq!(len, buf.len(), "{name} ({dir}): returned length vs buffer");
                    got.push(buf.clone());
                }
                Err(Error::Timeout { .. }) if !g.reliable => break,
                Err(e) => panic!("{name} ({dir}): recv after {} messages: {e}", got.len()),
            }
        }
        rx.set_timeout(Some(SHORT)).unwrap();
        match rx.recv(&mut buf) {
            Err(Error::Timeout { .. }) => {}
            other => panic!(
                "{name} ({dir}): after the {} messages sent, expected a timeout, got {other:?}",
                sent.len()
            ),
        }
        rx.set_timeout(Some(LONG)).unwrap();
        match (g.ordering, g.reliable) {
            (Ordering::Fifo | Ordering::Priority, true) => assert_eq!(got, sent, "{name} ({dir})"),
            (_, reliable) => {
                let (mut got, mut sent) = (got.clone(), sent.clone());
                got.sort();
                sent.sort();
                if reliable {
                    assert_eq!(got, sent, "{name} ({dir})");
                } else {
                    for m in &got {
                        assert!(
                            sent.contains(m),
                            "{name} ({dir}): a message never sent: {m:?}"
                        );
                    }
                }
            }
        }
    });
}

/// A receive into a buffer shorter than the message never delivers it cut. Through the
/// trait, `recv` makes room: the real length, whatever the buffer held. A transport
/// with native boundaries must also, where its public API receives into a bounded
/// buffer ([`short_receive`]), report `Error::Truncated` with that buffer's size and
/// the real length where the kernel tells it; the link goes on, and the message is kept
/// or consumed as the transport documents. A framed (stream) transport restores the
/// boundaries itself: there is no short buffer to report.
fn short_buffer_reports_real_length(t: &dyn Transport) {
    let g = t.guarantees();
    let name = t.name();
    if !g.carries_data {
        return;
    }
    let msg = pattern(100);
    let mut p = pair(t);
    each_direction(&mut p, g.duplex, |tx, rx, dir| {
        let mut buf = vec![0xee; 10];
        tx.send(&msg).unwrap();
        tx.send(b"next").unwrap();
        assert_eq!(rx.recv(&mut buf).unwrap(), 100, "{name} ({dir})");
        assert_eq!(buf, msg, "{name} ({dir})");
        buf.truncate(1);
        assert_eq!(rx.recv(&mut buf).unwrap(), 4, "{name} ({dir})");
        assert_eq!(buf, b"next", "{name} ({dir})");
    });
    if g.boundaries != Boundaries::Native {
        return;
    }
    let Some(mut s) = short_receive(t) else {
        println!("{name}: no bounded receive in the public API; the trait part only");
        return;
    };
    s.tx.send(&msg).unwrap();
    match s.rx.recv_short(10) {
        Err(Error::Truncated { buf: 10, len }) => {
            if s.tells_len {
                assert_eq!(len, Some(100), "{name}: the real length in Truncated");
            } else {
                assert!(
                    matches!(len, None | Some(100)),
                    "{name}: a wrong length {len:?}"
                );
            }
        }
        other => panic!(
            "{name}: a message of 100 bytes received into 10 bytes must be Truncated, got {other:?}"
        ),
    }
    s.tx.send(b"next").unwrap();
    let mut buf = Vec::new();
    if s.keeps {
        assert_eq!(
            s.rx.recv(&mut buf).unwrap(),
            100,
            "{name}: the kept message"
        );
        assert_eq!(buf, msg, "{name}: the kept message");
    }
    assert_eq!(
        s.rx.recv(&mut buf).unwrap(),
        4,
        "{name}: the link after Truncated"
    );
    assert_eq!(buf, b"next");
}

/// A receive with nothing to receive returns `Error::Timeout` after about its timeout:
/// not before it, and not much after (the bound of 2 s catches a timeout ignored). On
/// every end that receives.
fn recv_times_out(t: &dyn Transport) {
    let name = t.name();
    let duplex = t.guarantees().duplex;
    let p = pair(t);
    let (mut local, mut peer) = (p.local, p.peer);
    let mut ends: Vec<(&str, &mut Box<dyn Endpoint>)> = vec![("local", &mut local)];
    if duplex {
        ends.push(("peer", &mut peer));
    }
    for (which, end) in ends {
        end.set_timeout(Some(SHORT)).unwrap();
        let mut e = std::mem::replace(end, Box::new(Nothing));
        let what = format!("{name} ({which}): recv with a {SHORT:?} timeout");
        let (e, r, took) = within(Duration::from_secs(2), &what, move || {
            let t0 = Instant::now();
            let r = e.recv(&mut Vec::new());
            (e, r, t0.elapsed())
        });
        *end = e;
        match r {
            Err(Error::Timeout { .. }) => {}
            other => panic!("{name} ({which}): an empty link must time out, got {other:?}"),
        }
        assert!(
            took >= SHORT - Duration::from_millis(2),
            "{name} ({which}): timed out after {took:?}, before the {SHORT:?} timeout"
        );
    }
    drop((local, peer, p.guard));
}

/// In nonblocking mode (where the transport has one: `set_nonblocking` is
/// `Error::Unsupported` otherwise), a receive with nothing to receive is
/// `Error::WouldBlock` at once, not after the timeout; a message sent then arrives.
fn nonblocking_recv_would_block(t: &dyn Transport) {
    let name = t.name();
    let mut p = pair(t);
    match p.local.set_nonblocking(true) {
        Err(Error::Unsupported(_)) => {
            println!("{name}: no nonblocking mode");
            return;
        }
        r => r.unwrap(),
    }
    let mut buf = Vec::new();
    let t0 = Instant::now();
    match p.local.recv(&mut buf) {
        Err(Error::WouldBlock { .. }) => {}
        other => {
            panic!("{name}: a nonblocking recv on an empty link must be WouldBlock, got {other:?}")
        }
    }
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "{name}: a nonblocking recv waited {:?}",
        t0.elapsed()
    );
    let msg: &[u8] = if t.guarantees().carries_data {
        b"hello"
    } else {
        b""
    };
    p.peer.send(msg).unwrap();
    let t0 = Instant::now();
    let got = loop {
        match p.local.recv(&mut buf) {
            Err(Error::WouldBlock { .. }) if t0.elapsed() < LONG => {
                std::thread::sleep(Duration::from_millis(1));
            }
            r => break r,
        }
    };
    assert_eq!(got.unwrap(), msg.len(), "{name}");
    assert_eq!(buf, msg, "{name}");
    assert!(
        matches!(p.local.recv(&mut buf), Err(Error::WouldBlock { .. })),
        "{name}: after the message"
    );
}

/// A named object (`Link::path`) has exactly the mode asked for, whatever the umask, and
/// is gone once the link and its ends are dropped; so is anything the transport made
/// in the configured directory.
fn named_objects_have_the_mode_and_go(t: &dyn Transport) {
    use std::os::unix::fs::PermissionsExt;
    let name = t.name();
    for mode in [0o600, 0o640, 0o666] {
        let dir = tempdir();
        let link = t
            .open(&Config::default().with_dir(dir.path()).with_mode(mode))
            .unwrap();
        let peer = t.attach(link.peer).unwrap();
        let Some(path) = link.path.clone() else {
            return;
        };
        if path.parent().is_some_and(|d| d.exists()) {
            let m = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}", path.display()))
                .permissions()
                .mode();
            assert_eq!(m & 0o777, mode, "{name}: mode of {}", path.display());
        } else {
            println!(
                "{name}: {} is not mounted; removal checked only",
                path.parent().unwrap().display()
            );
        }
        drop((link.local, peer, link.guard));
        assert!(!path.exists(), "{name}: {} left behind", path.display());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            left.is_empty(),
            "{name}: left in the link directory: {left:?}"
        );
    }
}

/// A placeholder end, while the real one is on another thread.
struct Nothing;

impl Endpoint for Nothing {
    fn send(&mut self, _: &[u8]) -> ipc_audit::Result<()> {
        unreachable!("placeholder end")
    }
    fn recv(&mut self, _: &mut Vec<u8>) -> ipc_audit::Result<usize> {
        unreachable!("placeholder end")
    }
    fn set_timeout(&mut self, _: Option<Duration>) -> ipc_audit::Result<()> {
        Ok(())
    }
}

/// A receiving end with a bounded receive in its transport's public API.
trait ShortRecv: Endpoint {
    /// Receives one message into a buffer of `cap` bytes, not resized.
    fn recv_short(&mut self, cap: usize) -> ipc_audit::Result<usize>;
}

impl ShortRecv for DatagramEndpoint {
    fn recv_short(&mut self, cap: usize) -> ipc_audit::Result<usize> {
        self.recv_into(&mut vec![0; cap])
    }
}

impl ShortRecv for transport::sysv_mq::SysvEndpoint {
    fn recv_short(&mut self, cap: usize) -> ipc_audit::Result<usize> {
        self.recv_capped(&mut Vec::new(), cap)
    }
}

impl ShortRecv for transport::posix_mq::MqEndpoint {
    fn recv_short(&mut self, cap: usize) -> ipc_audit::Result<usize> {
        self.recv_with_priority_into(&mut vec![0; cap])
            .map(|(n, _)| n)
    }
}

/// A link whose receiver can receive into a short buffer.
struct Short {
    tx: Box<dyn Endpoint>,
    rx: Box<dyn ShortRecv>,
    /// After `Truncated` the message stays queued (message queues) or is gone (sockets).
    keeps: bool,
    /// `Truncated` carries the real length (MSG_TRUNC tells it; the queues' EMSGSIZE
    /// and E2BIG do not).
    tells_len: bool,
    _keep: Vec<Box<dyn std::any::Any>>,
}

/// A sender, a receiver with a bounded receive, (keeps, tells_len) of [`Short`], and
/// what must live as long as the link.
type ShortEnds = (
    Box<dyn Endpoint>,
    Box<dyn ShortRecv>,
    (bool, bool),
    Box<dyn std::any::Any>,
);

/// The bounded receive of a transport with native boundaries, by its public API; `None`
/// where it has none. A new transport with native boundaries must be listed here.
// The five datagram ends differ in type; the tuple names what each case yields.
#[allow(clippy::type_complexity)]
fn short_receive(t: &dyn Transport) -> Option<Short> {
    use transport::{
        posix_mq::PosixMq, sysv_mq::SysvMq, udp::Udp, uds_dgram::UdsDgram,
        uds_seqpacket::UdsSeqpacket,
    };
    let dir = tempdir();
    let cfg = Config::default().with_dir(dir.path());
    // Sockets consume a cut datagram and tell its length; the queues keep the message
    // and do not.
    let socket = (false, true);
    let queue = (true, false);
    let (mut tx, mut rx, (keeps, tells_len), guard): ShortEnds = match t.name() {
        "uds-dgram" => {
            let (rx, peer, g) = UdsDgram.open_concrete(&cfg).unwrap();
            let tx = UdsDgram.attach_concrete(peer).unwrap();
            (Box::new(tx), Box::new(rx), socket, Box::new(g))
        }
        "udp" => {
            let (rx, peer) = Udp.open_concrete(&cfg).unwrap();
            let tx = Udp.attach_concrete(peer).unwrap();
            (Box::new(tx), Box::new(rx), socket, Box::new(()))
        }
        "uds-seqpacket" => {
            // Duplex: the local end sends, the peer's (concrete) end receives.
            let link = UdsSeqpacket.open(&cfg).unwrap();
            let rx = UdsSeqpacket.attach_concrete(link.peer).unwrap();
            (link.local, Box::new(rx), socket, Box::new(link.guard))
        }
        "sysv-mq" => {
            let (rx, peer, g) = SysvMq.open_concrete(&cfg).unwrap();
            let tx = SysvMq.attach_concrete(peer).unwrap();
            (Box::new(tx), Box::new(rx), queue, Box::new(g))
        }
        "posix-mq" => {
            let (rx, peer, g) = PosixMq.open_concrete(&cfg).unwrap();
            let tx = PosixMq.attach_concrete(peer).unwrap();
            (Box::new(tx), Box::new(rx), queue, Box::new(g))
        }
        // The ring's records: `recv` sizes the buffer; nothing receives into less.
        "shm" => return None,
        other => panic!(
            "{other}: native boundaries; say in short_receive how it receives into a short buffer"
        ),
    };
    tx.set_timeout(Some(LONG)).unwrap();
    rx.set_timeout(Some(LONG)).unwrap();
    Some(Short {
        tx,
        rx,
        keeps,
        tells_len,
        _keep: vec![guard, Box::new(dir)],
    })
}

/// One line per transport: every contract function as a test in a module named after
/// the transport, and a test that the lines cover every name of `transport::all()`.
/// Every contract function as a test, in a module named after the transport; the whole
/// test bounded by a minute, so that a wait that ignores its deadline fails it.
macro_rules! contract {
    ($module:ident, $transport:expr) => {
        contract!(@ $module, $transport,
            max_message_round_trip, configured_max_is_exact, messages_arrive_whole,
            short_buffer_reports_real_length, recv_times_out, nonblocking_recv_would_block,
            named_objects_have_the_mode_and_go);
    };
    (@ $module:ident, $transport:expr, $($f:ident),*) => {
        mod $module {
            $(
                #[test]
                fn $f() {
                    super::within(super::TEST_LIMIT, stringify!($f), || super::$f(&$transport));
                }
            )*
        }
    };
}

/// One [`contract!`] per line, and a test that the lines cover every name of
/// `transport::all()`.
macro_rules! contracts {
    ($($module:ident => $transport:expr,)*) => {
        $(contract!($module, $transport);)*

        #[test]
        fn every_transport_has_a_contract_line() {
            let lines: Vec<&str> = vec![$(Transport::name(&$transport)),*];
            for n in transport::names() {
                assert!(lines.contains(&n), "no contract line for {n}");
            }
        }
    };
}

contracts! {
    pipe => ipc_audit::transport::pipe::Pipe,
    fifo => ipc_audit::transport::fifo::Fifo,
    uds_stream => ipc_audit::transport::uds::UdsStream,
    uds_dgram => ipc_audit::transport::uds_dgram::UdsDgram,
    uds_seqpacket => ipc_audit::transport::uds_seqpacket::UdsSeqpacket,
    tcp => ipc_audit::transport::tcp::Tcp,
    udp => ipc_audit::transport::udp::Udp,
    posix_mq => ipc_audit::transport::posix_mq::PosixMq,
    sysv_mq => ipc_audit::transport::sysv_mq::SysvMq,
    file => ipc_audit::transport::file::FileLog { fsync: false },
    signal => ipc_audit::transport::signal::Signal,
    shm => ipc_audit::transport::shm::Shm::default(),
    semaphore => ipc_audit::transport::semaphore::Semaphore,
}
