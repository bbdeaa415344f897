//! Negative controls: deliberately faulty transports, each caught by the audit with a
//! `fail` verdict on the property that guards what it breaks. The peer here is this test
//! binary, re-run for the `peer_entry` test: the same path a third-party transport takes.
//!
//! The controls: a pipe that drops one message in a thousand (`ordering`), swaps two
//! (`ordering`), merges two (`boundaries`), flips a bit (`integrity`); a pipe whose peer
//! end leaks its descriptor across exec, a FIFO whose local side does (`cloexec`); a FIFO
//! made with mode 0666 whatever is asked (`access-uid`, as root; not run otherwise, and
//! the test says so); a pipe that reports a message that did not fit a full buffer as
//! sent (`full`), and one whose peer opens a descriptor every 100 messages (`fd-flat`);
//! a Unix stream socket that reports the identity its peer claims in a hello
//! (`peercred-uid`), beside its twin that reports SO_PEERCRED; a pipe that declares
//! whole messages from many senders up to 16 MiB (`senders`: the pipe's own declaration,
//! PIPE_BUF, passes in `tests/conformance.rs`); a pipe whose receive never returns once
//! its peer is dead (`death`: the audit's watchdog fails it instead of hanging).
//! The second set, 21 more with their clean twin, is in `tests/controls_power.rs`.

use std::time::Duration;

use ipc_audit::Result;
use ipc_audit::audit::{Auditor, PeerLauncher, Verdict};
use ipc_audit::run_if_peer;
use ipc_audit::transport::{
    self, Config, Credentials, Endpoint, Guarantees, Link, PeerEnd, Transport,
};

/// How a [`Faulty`] transport breaks the messages its peer end sends.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Drops about one message in a thousand.
    Drop,
    /// Swaps the second and third messages.
    Swap,
    /// Sends the first two messages as one.
    Merge,
    /// Flips one bit of the first non-empty message.
    Flip,
    /// In nonblocking mode, reports a message that did not fit as sent (it is lost).
    HideFull,
    /// Opens a descriptor every 100 messages and never closes it.
    LeakFd,
}

/// A pipe whose sending end misbehaves.
struct Faulty(Fault, &'static str);

struct FaultyEnd {
    inner: Box<dyn Endpoint>,
    fault: Fault,
    sent: u64,
    held: Option<Vec<u8>>,
    rng: u64,
    flipped: bool,
}

impl Endpoint for FaultyEnd {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let n = self.sent;
        self.sent += 1;
        match self.fault {
            Fault::Drop => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                if self.rng.is_multiple_of(1000) {
                    return Ok(());
                }
                self.inner.send(msg)
            }
            Fault::Swap if n == 1 => {
                self.held = Some(msg.to_vec());
                Ok(())
            }
            Fault::Swap if n == 2 => {
                self.inner.send(msg)?;
                let held = self.held.take().unwrap_or_default();
                self.inner.send(&held)
            }
            Fault::Merge if n == 0 => {
                self.held = Some(msg.to_vec());
                Ok(())
            }
            Fault::Merge if n == 1 => {
                let mut both = self.held.take().unwrap_or_default();
                both.extend_from_slice(msg);
                self.inner.send(&both)
            }
            Fault::Flip if !self.flipped && !msg.is_empty() => {
                self.flipped = true;
                let mut m = msg.to_vec();
                let mid = m.len() / 2;
                m[mid] ^= 0x01;
                self.inner.send(&m)
            }
            Fault::HideFull => match self.inner.send(msg) {
                Err(ipc_audit::Error::WouldBlock { .. }) => Ok(()),
                r => r,
            },
            Fault::LeakFd if n % 100 == 99 => {
                let fd = std::fs::File::open("/dev/null").map_err(ipc_audit::Error::from)?;
                std::mem::forget(fd);
                self.inner.send(msg)
            }
            _ => self.inner.send(msg),
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.inner.recv(buf)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.inner.set_timeout(t)
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.inner.set_nonblocking(on)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

impl Drop for FaultyEnd {
    fn drop(&mut self) {
        // A held message goes out at the end: the fault is the reordering or the merge,
        // not a loss.
        if let Some(m) = self.held.take() {
            // Bounded: once the case is over nobody reads, and a large held message
            // would keep the peer from exiting.
            let _ = self.inner.set_timeout(Some(Duration::from_millis(200)));
            let _ = self.inner.send(&m);
        }
    }
}

impl Transport for Faulty {
    fn name(&self) -> &'static str {
        self.1
    }

    fn guarantees(&self) -> Guarantees {
        // Declares exactly what a pipe declares: the faults break those promises.
        transport::pipe::Pipe.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        transport::pipe::Pipe.open(cfg)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(FaultyEnd {
            inner: transport::pipe::Pipe.attach(peer)?,
            fault: self.0,
            sent: 0,
            held: None,
            rng: u64::from(std::process::id()) | 1,
            flipped: false,
        }))
    }
}

/// A pipe whose peer end clears FD_CLOEXEC on its descriptor: it leaks into every
/// program the peer runs.
struct LeaksFdInPeer;

impl Transport for LeaksFdInPeer {
    fn name(&self) -> &'static str {
        "leaks-fd-in-peer"
    }

    fn guarantees(&self) -> Guarantees {
        transport::pipe::Pipe.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        transport::pipe::Pipe.open(cfg)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        for fd in &peer.fds {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
                .map_err(|e| ipc_audit::Error::sys("clear FD_CLOEXEC", e))?;
        }
        transport::pipe::Pipe.attach(peer)
    }
}

/// A FIFO whose local side also keeps the FIFO open read-write (a common keep-alive, so
/// that the reader never sees EOF) on a descriptor opened without O_CLOEXEC.
struct LeaksFdLocally;

/// The keep-alive descriptor, dropped with the link after the FIFO's own guard.
struct KeepAlive {
    _fifo_guard: Option<Box<dyn std::any::Any + Send>>,
    _fd: std::os::fd::OwnedFd,
}

impl Transport for LeaksFdLocally {
    fn name(&self) -> &'static str {
        "leaks-fd-locally"
    }

    fn guarantees(&self) -> Guarantees {
        transport::fifo::Fifo.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        let mut link = transport::fifo::Fifo.open(cfg)?;
        let path = link
            .peer
            .info
            .split_once(' ')
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        // The fault: no O_CLOEXEC.
        let fd = open(path.as_str(), OFlag::O_RDWR, Mode::empty())
            .map_err(|e| ipc_audit::Error::sys(format!("keep-alive open {path}"), e))?;
        link.guard = Some(Box::new(KeepAlive {
            _fifo_guard: link.guard.take(),
            _fd: fd,
        }));
        Ok(link)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        transport::fifo::Fifo.attach(peer)
    }
}

/// A FIFO made with mode 0644 and narrowed to the asked mode right after it is in place:
/// a window of microseconds in which the name exists with a mode wider than asked, too
/// short for an open to land in reliably. The bug class of creating a socket or FIFO and
/// fixing its mode afterwards (bind, then chmod), e.g. tokio-rs/tokio#5580 (a way to set
/// a Unix socket's mode at bind, because bind-then-chmod leaves a window) and
/// rust-lang/rust#74893 (`UnixListener::bind` has no mode: chmod after the fact).
struct ChmodAfterFifo;

impl Transport for ChmodAfterFifo {
    fn name(&self) -> &'static str {
        "chmod-after-fifo"
    }

    fn guarantees(&self) -> Guarantees {
        transport::fifo::Fifo.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        use std::os::unix::fs::PermissionsExt;
        let link = transport::fifo::Fifo.open(&cfg.clone().with_mode(0o644))?;
        // The fault: the mode is fixed after the name appeared.
        if let Some(path) = &link.path {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.mode))
                .map_err(|e| ipc_audit::Error::io("chmod", e))?;
        }
        Ok(link)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        transport::fifo::Fifo.attach(peer)
    }
}

/// A pipe that claims what a pipe cannot keep: whole messages from many senders up to
/// its maximum (16 MiB), when the kernel keeps only writes of up to PIPE_BUF whole.
struct ClaimsAtomicPipe;

impl Transport for ClaimsAtomicPipe {
    fn name(&self) -> &'static str {
        "claims-atomic-pipe"
    }

    fn guarantees(&self) -> Guarantees {
        let mut g = transport::pipe::Pipe.guarantees();
        g.many_senders = Some(g.max_message);
        g
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        transport::pipe::Pipe.open(cfg)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        transport::pipe::Pipe.attach(peer)
    }
}

/// A pipe whose local receive never returns once its peer is gone (as a receiver stuck
/// on a lock its dead peer held).
struct HangsAfterDeath;

struct HangingEnd(Box<dyn Endpoint>);

impl Endpoint for HangingEnd {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.0.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        match self.0.recv(buf) {
            // The peer's death shows as the end of the pipe or a cut frame.
            Err(ipc_audit::Error::Closed { .. } | ipc_audit::Error::Frame(_)) => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            r => r,
        }
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.0.set_timeout(t)
    }
}

impl Transport for HangsAfterDeath {
    fn name(&self) -> &'static str {
        "hangs-after-death"
    }

    fn guarantees(&self) -> Guarantees {
        transport::pipe::Pipe.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let mut link = transport::pipe::Pipe.open(cfg)?;
        link.local = Box::new(HangingEnd(link.local));
        Ok(link)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        transport::pipe::Pipe.attach(peer)
    }
}

/// A FIFO made readable and writable by everyone, whatever `Config::mode` asks.
struct WorldWritableFifo;

impl Transport for WorldWritableFifo {
    fn name(&self) -> &'static str {
        "world-writable-fifo"
    }

    fn guarantees(&self) -> Guarantees {
        // Declares what a FIFO declares: access by file mode.
        transport::fifo::Fifo.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        // The fault: the asked mode is ignored.
        transport::fifo::Fifo.open(&cfg.clone().with_mode(0o666))
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        transport::fifo::Fifo.attach(peer)
    }
}

/// A Unix stream socket whose peer sends a hello first, its getpid(), getuid() and
/// getgid() as three little-endian u32; the local end reads it before the first message.
/// With `in_band` (the fault) the identity it reports is the hello's, the peer's own
/// claim; without (the clean twin) it is the kernel's (SO_PEERCRED). The bug class of
/// taking a peer's identity from the message contents instead of from the kernel:
/// openpmix/openpmix#91 (the "native" security mode accepted the credentials a client
/// sent in its handshake without checking them against SO_PEERCRED) and
/// alpacax/alpamon#409 (a request's PID taken from its JSON payload, no SO_PEERCRED).
struct HelloCreds {
    in_band: bool,
    name: &'static str,
}

struct HelloEnd {
    inner: Box<dyn Endpoint>,
    in_band: bool,
    /// The local end has not read the peer's hello yet.
    hello_pending: bool,
    claimed: Option<Credentials>,
}

impl Endpoint for HelloEnd {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        if self.hello_pending {
            self.inner.recv(buf)?;
            self.hello_pending = false;
            let word = |i: usize| {
                let b = buf.get(4 * i..4 * i + 4).unwrap_or(&[0; 4]);
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            };
            self.claimed = Some(Credentials {
                pid: word(0),
                uid: word(1),
                gid: word(2),
            });
        }
        self.inner.recv(buf)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.inner.set_timeout(timeout)
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        if self.in_band {
            // The fault: the peer's claim.
            self.claimed
        } else {
            self.inner.peer_credentials()
        }
    }

    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    fn flush(&mut self) -> Result<()> {
        self.inner.flush()
    }
}

impl Transport for HelloCreds {
    fn name(&self) -> &'static str {
        self.name
    }

    fn guarantees(&self) -> Guarantees {
        transport::uds::UdsStream.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let mut link = transport::uds::UdsStream.open(cfg)?;
        link.local = Box::new(HelloEnd {
            inner: link.local,
            in_band: self.in_band,
            hello_pending: true,
            claimed: None,
        });
        Ok(link)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let mut inner = transport::uds::UdsStream.attach(peer)?;
        let mut hello = Vec::new();
        for w in [
            std::process::id(),
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ] {
            hello.extend_from_slice(&w.to_le_bytes());
        }
        inner.send(&hello)?;
        Ok(Box::new(HelloEnd {
            inner,
            in_band: self.in_band,
            hello_pending: false,
            claimed: None,
        }))
    }
}

fn resolve(name: &str) -> Option<Box<dyn Transport>> {
    match name {
        "creds-from-hello" => {
            return Some(Box::new(HelloCreds {
                in_band: true,
                name: "creds-from-hello",
            }));
        }
        "creds-from-kernel" => {
            return Some(Box::new(HelloCreds {
                in_band: false,
                name: "creds-from-kernel",
            }));
        }
        "claims-atomic-pipe" => return Some(Box::new(ClaimsAtomicPipe)),
        "hangs-after-death" => return Some(Box::new(HangsAfterDeath)),
        "leaks-fd-in-peer" => return Some(Box::new(LeaksFdInPeer)),
        "leaks-fd-locally" => return Some(Box::new(LeaksFdLocally)),
        "world-writable-fifo" => return Some(Box::new(WorldWritableFifo)),
        "chmod-after-fifo" => return Some(Box::new(ChmodAfterFifo)),
        _ => {}
    }
    let f = match name {
        "drops-one-in-1000" => Faulty(Fault::Drop, "drops-one-in-1000"),
        "swaps-two" => Faulty(Fault::Swap, "swaps-two"),
        "merges-two" => Faulty(Fault::Merge, "merges-two"),
        "flips-a-bit" => Faulty(Fault::Flip, "flips-a-bit"),
        "hides-full" => Faulty(Fault::HideFull, "hides-full"),
        "leaks-fd-per-100" => Faulty(Fault::LeakFd, "leaks-fd-per-100"),
        _ => return transport::by_name(name),
    };
    Some(Box::new(f))
}

/// The peer role of this test binary; a no-op when run as a normal test.
#[test]
fn peer_entry() {
    run_if_peer(resolve);
}

/// Audits `name` on `property` and returns the verdict and the observed text.
fn audit(name: &str, property: &str) -> (Verdict, String) {
    let t = resolve(name).expect("known transport");
    let auditor = Auditor::new(PeerLauncher::test_binary("peer_entry").expect("own exe"))
        .cases(16)
        .only([property]);
    let r = auditor.audit(t.as_ref());
    let p = &r.properties[0];
    println!(
        "{name} / {}: {:?}: {} ({})",
        p.property, p.verdict, p.observed, p.detail
    );
    (p.verdict, p.observed.clone())
}

#[test]
fn a_sound_transport_passes_through_the_test_binary_peer() {
    for prop in ["ordering", "boundaries", "integrity"] {
        assert_eq!(audit("pipe", prop).0, Verdict::Pass, "{prop}");
    }
}

#[test]
fn dropping_one_in_a_thousand_fails_ordering() {
    let (v, observed) = audit("drops-one-in-1000", "ordering");
    assert_eq!(v, Verdict::Fail);
    assert!(observed.contains("never arrived"), "{observed}");
}

#[test]
fn swapping_two_fails_ordering() {
    let (v, observed) = audit("swaps-two", "ordering");
    assert_eq!(v, Verdict::Fail);
    assert!(observed.contains("arrived after"), "{observed}");
}

#[test]
fn merging_two_fails_boundaries() {
    let (v, observed) = audit("merges-two", "boundaries");
    assert_eq!(v, Verdict::Fail);
    // An empty message merged into the next is, on the wire, that message lost.
    assert!(
        observed.contains("merged") || observed.contains("never arrived"),
        "{observed}"
    );
}

#[test]
fn flipping_a_bit_fails_integrity() {
    let (v, observed) = audit("flips-a-bit", "integrity");
    assert_eq!(v, Verdict::Fail);
    assert!(observed.contains("differs"), "{observed}");
}

/// The two leak controls leave a descriptor open across exec in this process or in its
/// peers: they must not run at the same time as each other's check.
static CLOEXEC_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn hiding_a_full_buffer_fails_full() {
    // WouldBlock turned into a silent success: the messages that did not fit are lost.
    let (v, observed) = audit("hides-full", "full");
    assert_eq!(v, Verdict::Fail, "{observed}");
    assert!(observed.contains("never arrived"), "{observed}");
    let (v, observed) = audit("pipe", "full");
    assert_eq!(v, Verdict::Pass, "{observed}");
}

#[test]
fn a_pipe_claiming_whole_16_mib_messages_from_many_senders_fails_senders() {
    // Writes over PIPE_BUF from several processes interleave: the frames break.
    let (v, observed) = audit("claims-atomic-pipe", "senders");
    assert_eq!(v, Verdict::Fail, "{observed}");
    assert!(
        observed.contains("senders, messages up to 16777216 bytes"),
        "{observed}"
    );
}

#[test]
fn a_receive_that_hangs_after_the_peer_dies_fails_death() {
    // The watchdog ends the case (and its shrinking) instead of the audit hanging.
    let t = resolve("hangs-after-death").expect("known transport");
    let auditor = Auditor::new(PeerLauncher::test_binary("peer_entry").expect("own exe"))
        .cases(2)
        .timeout(Duration::from_secs(1))
        .only(["death"]);
    let r = auditor.audit(t.as_ref());
    let p = &r.properties[0];
    assert_eq!(p.verdict, Verdict::Fail, "{}", p.observed);
    assert!(
        p.observed.contains("hung inside the transport"),
        "{}",
        p.observed
    );
}

#[test]
fn a_descriptor_opened_per_100_messages_fails_fd_flat() {
    let (v, observed) = audit("leaks-fd-per-100", "fd-flat");
    assert_eq!(v, Verdict::Fail, "{observed}");
    assert!(
        observed.contains("the peer's descriptors went from"),
        "{observed}"
    );
}

#[test]
fn a_descriptor_leaked_by_the_peer_fails_cloexec() {
    let _lock = CLOEXEC_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (v, observed) = audit("leaks-fd-in-peer", "cloexec");
    assert_eq!(v, Verdict::Fail, "{observed}");
    // The peer's write end of the pipe reached its fork+exec child; nothing local did.
    assert!(observed.contains("local [], peer [\""), "{observed}");
    assert!(observed.contains("pipe:"), "{observed}");
}

#[test]
fn a_descriptor_leaked_locally_fails_cloexec() {
    let _lock = CLOEXEC_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let (v, observed) = audit("leaks-fd-locally", "cloexec");
    assert_eq!(v, Verdict::Fail, "{observed}");
    // The keep-alive descriptor on the FIFO reached this process's fork+exec child.
    assert!(observed.contains("local [\""), "{observed}");
    assert!(observed.contains("ipc-audit-fifo-"), "{observed}");
}

#[test]
fn a_fifo_open_to_everyone_fails_access_uid_as_root() {
    let (v, observed) = audit("world-writable-fifo", "access-uid");
    // A second uid: 65534 as root, a subordinate uid in a user namespace otherwise.
    if ipc_audit::audit::Identity::second(vec![]).is_ok() {
        assert_eq!(v, Verdict::Fail, "{observed}");
        assert!(observed.contains("got into"), "{observed}");
    } else {
        // Without a second uid the property cannot run: it says so, and so does this
        // test, on descriptor 2 (not captured by the harness).
        let _ = nix::unistd::write(
            std::io::stderr(),
            format!(
                "NOT CHECKED a_fifo_open_to_everyone_fails_access_uid: no second uid; \
                 the property was {v:?}: {observed}\n"
            )
            .as_bytes(),
        );
        assert_eq!(v, Verdict::NotRun, "{observed}");
    }
}

#[test]
fn a_fifo_whose_mode_is_fixed_after_it_appears_fails_access_race() {
    let (v, observed) = audit("chmod-after-fifo", "access-race");
    // A second uid: 65534 as root, a subordinate uid in a user namespace otherwise.
    if ipc_audit::audit::Identity::second(vec![]).is_ok() {
        assert_eq!(v, Verdict::Fail, "{observed}");
    } else {
        let _ = nix::unistd::write(
            std::io::stderr(),
            format!(
                "NOT CHECKED a_fifo_whose_mode_is_fixed_after_it_appears_fails_access_race: \
                 no second uid; the property was {v:?}: {observed}\n"
            )
            .as_bytes(),
        );
        assert_eq!(v, Verdict::NotRun, "{observed}");
    }
}

#[test]
fn the_same_fifo_made_with_its_mode_passes_access_race() {
    // Clean twin of the test above.
    let (v, observed) = audit("fifo", "access-race");
    if ipc_audit::audit::Identity::second(vec![]).is_ok() {
        assert_eq!(v, Verdict::Pass, "{observed}");
    } else {
        assert_eq!(v, Verdict::NotRun, "{observed}");
    }
}

#[test]
fn the_same_fifo_with_its_mode_honoured_passes_access_uid() {
    // Positive control for the test above: the same checks on the sound FIFO.
    let (v, observed) = audit("fifo", "access-uid");
    let want = if ipc_audit::audit::Identity::second(vec![]).is_ok() {
        Verdict::Pass
    } else {
        Verdict::NotRun
    };
    assert_eq!(v, want, "{observed}");
}

#[test]
fn credentials_taken_from_an_in_band_hello_fail_peercred_uid() {
    let (v, observed) = audit("creds-from-hello", "peercred-uid");
    if ipc_audit::audit::Identity::second(vec![]).is_ok() && v == Verdict::NotRun {
        // A second uid but no user namespace of its own for the peer: the step says why.
        let _ = nix::unistd::write(
            std::io::stderr(),
            format!("NOT CHECKED credentials_taken_from_an_in_band_hello: {observed}\n").as_bytes(),
        );
        return;
    }
    if ipc_audit::audit::Identity::second(vec![]).is_ok() {
        assert_eq!(v, Verdict::Fail, "{observed}");
        if nix::unistd::geteuid().is_root() {
            // Dropped to 65534 it claims the truth; root of its own user namespace it
            // claims uid 0 in its hello.
            assert!(observed.contains("believes it is uid 0"), "{observed}");
        } else {
            // In its user namespace the second uid is uid 1, and claims so.
            assert!(observed.contains("uid: 1,"), "{observed}");
        }
    } else {
        assert_eq!(v, Verdict::NotRun, "{observed}");
    }
}

#[test]
fn the_same_hello_with_kernel_credentials_passes_peercred_uid() {
    // Clean twin of the test above: the same hello, the identity from SO_PEERCRED.
    let (v, observed) = audit("creds-from-kernel", "peercred-uid");
    assert_ne!(v, Verdict::Fail, "{observed}");
    if ipc_audit::audit::Identity::second(vec![]).is_ok() && v == Verdict::NotRun {
        let _ = nix::unistd::write(
            std::io::stderr(),
            format!("NOT CHECKED the_same_hello_with_kernel_credentials: {observed}\n").as_bytes(),
        );
        return;
    }
    let want = if ipc_audit::audit::Identity::second(vec![]).is_ok() {
        Verdict::Pass
    } else {
        Verdict::NotRun
    };
    assert_eq!(v, want, "{observed}");
}

/// The one-call API: same report, exit status non-zero on a fail.
#[test]
fn audit_cli_reports_a_fault_as_json_and_fails() {
    use std::process::ExitCode;
    let faulty = Faulty(Fault::Swap, "swaps-two");
    let sound = transport::pipe::Pipe;
    let transports: [&dyn Transport; 2] = [&faulty, &sound];
    let launcher = PeerLauncher::test_binary("peer_entry").expect("own exe");
    let args = [
        "prog",
        "--cases",
        "8",
        "--property",
        "ordering",
        "--format",
        "json",
    ];
    let mut out = Vec::new();
    let code = ipc_audit::cli::audit_cli(&transports, launcher.clone(), args, &mut out);
    assert_eq!(code, ExitCode::FAILURE);
    let report: ipc_audit::audit::Report =
        serde_json::from_slice(&out).expect("the output is the JSON report");
    assert_eq!(report.transports.len(), 2);
    let swap = report.get("swaps-two", "ordering").expect("swaps-two ran");
    assert_eq!(swap.verdict, Verdict::Fail, "{}", swap.observed);
    let pipe = report.get("pipe", "ordering").expect("pipe ran");
    assert_eq!(pipe.verdict, Verdict::Pass, "{}", pipe.observed);

    // Only the sound one, as a table: success.
    let mut out = Vec::new();
    let args = ["prog", "pipe", "--cases", "8", "--property", "ordering"];
    let code = ipc_audit::cli::audit_cli(&transports, launcher.clone(), args, &mut out);
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    assert!(
        text.contains("1 passed, 0 failed, 0 not applicable, 0 not run"),
        "{text}"
    );

    // An unknown name is refused, naming it.
    let mut out = Vec::new();
    let code = ipc_audit::cli::audit_cli(&transports, launcher, ["prog", "nope"], &mut out);
    assert_eq!(code, ExitCode::from(2));
    assert!(out.is_empty());
}

/// `--latency` measures the audited transport and a built-in reference with the same
/// code as `ipc-audit table`, beside the floors of the same run.
#[test]
fn audit_cli_measures_latency_beside_a_reference() {
    use std::process::ExitCode;
    let sound = transport::pipe::Pipe;
    let transports: [&dyn Transport; 1] = [&sound];
    let launcher = PeerLauncher::test_binary("peer_entry").expect("own exe");
    let args = [
        "prog",
        "--latency-only",
        "--reference",
        "uds-stream",
        "--round-trips",
        "200",
        "--format",
        "json",
    ];
    let mut out = Vec::new();
    let code = ipc_audit::cli::audit_cli(&transports, launcher.clone(), args, &mut out);
    let text = String::from_utf8(out).expect("utf-8");
    assert_eq!(code, ExitCode::SUCCESS, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let rows = v["latency"]["rows"].as_array().expect("rows");
    let names: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| {
            (
                r["transport"].as_str().unwrap_or("?"),
                r["reference"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(names, [("pipe", false), ("uds-stream", true)], "{text}");
    for r in rows {
        let p50 = r["latency_ns"]["same_cpu"]["p50"].as_u64().unwrap_or(0);
        assert!(p50 > 0, "no same-cpu round trip measured: {text}");
    }
    assert!(
        v["latency"]["floor"]["shm_futex"]["same_cpu"]["p50"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{text}"
    );
    assert!(
        v["transports"].as_array().is_some_and(Vec::is_empty),
        "{text}"
    );

    // A reference that is not built in is refused, naming it.
    let mut out = Vec::new();
    let args = ["prog", "--latency", "--reference", "nope"];
    let code = ipc_audit::cli::audit_cli(&transports, launcher, args, &mut out);
    assert_eq!(code, ExitCode::from(2));
}
