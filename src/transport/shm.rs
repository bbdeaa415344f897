//! `shm`: a single-producer single-consumer ring of messages in shared memory
//! ([`crate::shm::ring`]), in a sealed memfd that the peer inherits
//! ([`crate::shm::region`]), with a futex hand-off when empty or full
//! ([`crate::shm::sem`]).
//!
//! One way: the peer produces, the local end consumes. Boundaries are native (each
//! message is one record: a header word with its length, and its bytes), order is FIFO,
//! nothing is lost while both ends live. A side waiting on a dead peer gets
//! [`Error::Closed`](crate::Error::Closed) within one sleep slice ([`SLICE`]), found by a
//! liveness check of the peer's pid; a message is either whole or absent, never partial.
//!
//! # Examples
//!
//! ```
//! use ipc_audit::transport::{Config, Transport, shm::Shm};
//!
//! let shm = Shm::default();
//! let link = shm.open(&Config::default()).unwrap();
//! let mut rx = link.local;
//! let mut tx = shm.attach(link.peer).unwrap(); // in the peer process, normally
//! tx.send(b"ping").unwrap();
//! let mut buf = Vec::new();
//! assert_eq!(rx.recv(&mut buf).unwrap(), 4);
//! assert_eq!(buf, b"ping");
//! ```

use std::time::Duration;

use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::Result;

/// Largest message by default (1 MiB).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;
/// Smallest ring (1 MiB of data); larger when the maximum message needs it.
pub const MIN_RING: usize = 1 << 20;
/// Busy polls before sleeping, by default (a few microseconds).
pub const DEFAULT_SPIN: u32 = 2000;
/// `sched_yield` calls after the spins and before the futex, by default (`shm`): none.
/// A yield hands the cpu to any runnable task, not necessarily the peer: with two
/// yields, same-cpu round trips measured 1.8 µs on a quiet machine but 9.7 ms p50 with
/// builds running on that cpu, where the futex hand-off (the waker's wake-up preempts)
/// stays near its floor.
pub const DEFAULT_YIELDS: u32 = 0;
/// Longest single sleep: the peer's liveness is checked after each.
pub const SLICE: Duration = Duration::from_millis(20);

/// Shared-memory ring transport. `Shm::default()` (`shm`) spins [`DEFAULT_SPIN`] times
/// while the peer last ran on another cpu (not at all against a peer on its own cpu,
/// which cannot progress while it spins), yields the cpu [`DEFAULT_YIELDS`] times, then
/// sleeps on a futex; [`Shm::spinning`] (`shm-spinning`) and [`Shm::blocking`]
/// (`shm-blocking`) are the two extremes. The two variants are not in
/// [`all`](super::all) (the table shows `shm` once) but
/// [`by_name`](super::by_name) knows them, so that `ipc-audit bench shm-blocking`
/// measures the mode alone (the peer process finds the same variant by its name).
#[derive(Debug, Clone, Copy)]
pub struct Shm {
    spin: u32,
    name: &'static str,
}

impl Default for Shm {
    fn default() -> Self {
        Shm {
            spin: DEFAULT_SPIN,
            name: "shm",
        }
    }
}

impl Shm {
    /// Spins `spin` times before each sleep (named `shm`: a peer process started by
    /// name gets the default for the links it opens itself).
    pub fn with_spin(spin: u32) -> Self {
        Shm { spin, name: "shm" }
    }

    /// Spins (practically) always: lowest latency, one core busy per waiting side.
    /// Deadlines and the peer's liveness are still checked while spinning.
    pub fn spinning() -> Self {
        Shm {
            spin: u32::MAX,
            name: "shm-spinning",
        }
    }

    /// Sleeps at once when empty or full: no busy core.
    pub fn blocking() -> Self {
        Shm {
            spin: 0,
            name: "shm-blocking",
        }
    }

    /// The variant called `name`: `shm`, `shm-spinning` or `shm-blocking`.
    pub fn variant(name: &str) -> Option<Shm> {
        [Shm::default(), Shm::spinning(), Shm::blocking()]
            .into_iter()
            .find(|s| s.name == name)
    }
}

impl Transport for Shm {
    fn name(&self) -> &'static str {
        self.name
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Native,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: DEFAULT_MAX_MESSAGE,
            duplex: false,
            access: Access::Inherited,
            rendezvous: Rendezvous::Inherited,
            platforms: vec!["Linux".into()],
            // A single-producer ring.
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        imp::open(self.spin, cfg)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        imp::attach(peer)
    }
}

/// The implementation; under `cfg(loom)` (no processes, no mmap) and off Linux (no
/// memfd, no futex) a stub that refuses.
#[cfg(all(not(loom), target_os = "linux"))]
mod imp {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::named::unique_name;
    use super::super::{Config, Endpoint, Link, PeerEnd};
    use super::{DEFAULT_MAX_MESSAGE, DEFAULT_YIELDS, MIN_RING, SLICE};
    use crate::error::{Error, Result};
    use crate::shm::region::Mapping;
    use crate::shm::ring::{
        Consumer, HEADER_SIZE, MAX_CAPACITY, Producer, RECORD_OVERHEAD, Ring, Wait,
    };
    use crate::shm::sem::{LinuxFutex, pid_alive};

    /// The liveness check of the waits: [`Error::Closed`] once the peer process is gone.
    fn liveness(pid: u32, op: &str) -> Result<()> {
        if pid_alive(pid)? {
            Ok(())
        } else {
            Err(Error::Closed {
                op: format!("{op}: peer pid {pid} exited"),
            })
        }
    }

    /// The wait policy of one operation. The deadline is left for the ring to fix when
    /// the operation first has to wait: one that need not wait reads no clock. In
    /// nonblocking mode: no spin and a deadline of now, so that an operation that would
    /// wait ends at once with a timeout (which the caller makes WouldBlock),
    /// after the same checks as a blocking one (a closed or dead peer is reported as
    /// such).
    fn policy(spin: u32, timeout: Option<Duration>, nonblocking: bool) -> Wait {
        let wait = Wait {
            spin,
            spin_same_cpu: spin == u32::MAX,
            yields: if spin == 0 || spin == u32::MAX {
                0
            } else {
                DEFAULT_YIELDS
            },
            slice: Some(SLICE),
            liveness: Some(liveness),
            timeout,
            deadline: None,
        };
        if nonblocking {
            Wait {
                spin: 0,
                yields: 0,
                timeout: Some(Duration::ZERO),
                deadline: Some(std::time::Instant::now()),
                ..wait
            }
        } else {
            wait
        }
    }

    /// The local, receiving end.
    struct ShmReceiver {
        ring: Consumer,
        spin: u32,
        timeout: Option<Duration>,
        nonblocking: bool,
    }

    impl Endpoint for ShmReceiver {
        fn send(&mut self, _msg: &[u8]) -> Result<()> {
            Err(Error::Unsupported("shm: this end only receives".into()))
        }

        fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
            // A message already there needs no wait policy (it is built only to wait).
            if let Some(n) = self.ring.try_pop(buf)? {
                return Ok(n);
            }
            let nb = self.nonblocking;
            self.ring
                .pop(buf, &policy(self.spin, self.timeout, nb))
                .map_err(|e| Error::from(e).would_block_if(nb))
        }

        fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
            self.timeout = timeout;
            Ok(())
        }

        fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
            self.nonblocking = nonblocking;
            Ok(())
        }
    }

    /// The peer's, sending end.
    struct ShmSender {
        ring: Producer,
        spin: u32,
        timeout: Option<Duration>,
        nonblocking: bool,
    }

    impl Endpoint for ShmSender {
        fn send(&mut self, msg: &[u8]) -> Result<()> {
            // Room now: no wait policy to build.
            if self.ring.try_push(msg)? {
                return Ok(());
            }
            let nb = self.nonblocking;
            self.ring
                .push(msg, &policy(self.spin, self.timeout, nb))
                .map_err(|e| Error::from(e).would_block_if(nb))
        }

        fn recv(&mut self, _buf: &mut Vec<u8>) -> Result<usize> {
            Err(Error::Unsupported("shm: this end only sends".into()))
        }

        fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
            self.timeout = timeout;
            Ok(())
        }

        fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
            self.nonblocking = nonblocking;
            Ok(())
        }
    }

    pub(super) fn open(spin: u32, cfg: &Config) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_MESSAGE);
        if max == 0 || max > MAX_CAPACITY / 2 {
            return Err(Error::invalid(
                format!("shm: maximum message must be in 1..={}", MAX_CAPACITY / 2),
                max,
            ));
        }
        let cap = Ring::capacity_for(max, MIN_RING.max(2 * (max + RECORD_OVERHEAD)));
        let name = unique_name("ipc-audit-shm");
        let (map, fd) = Mapping::create(&name, HEADER_SIZE + cap)?;
        let ring = Ring::create(
            Arc::new(map),
            cap,
            max,
            std::process::id(),
            Arc::new(LinuxFutex),
        )?;
        Ok(Link {
            local: Box::new(ShmReceiver {
                ring: ring.into_consumer(),
                spin,
                timeout: None,
                nonblocking: false,
            }),
            peer: PeerEnd {
                fds: vec![fd],
                info: spin.to_string(),
            },
            guard: None,
            path: None,
        })
    }

    pub(super) fn attach(peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let spin = peer
            .info
            .parse()
            .map_err(|_| Error::Protocol(format!("shm: bad peer info {:?}", peer.info)))?;
        let fd = peer
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("shm: the peer got no descriptor".into()))?;
        // The mapping outlives the descriptor, which is closed here.
        let map = Mapping::attach(&fd)?;
        let ring = Ring::attach(Arc::new(map), std::process::id(), Arc::new(LinuxFutex))?;
        Ok(Box::new(ShmSender {
            ring: ring.into_producer(),
            spin,
            timeout: None,
            nonblocking: false,
        }))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::process::Command;
        use std::time::Instant;

        /// A receiving end over a real memfd, its producer pid forced to `pid`.
        fn receiver(pid: u32, timeout: Duration) -> ShmReceiver {
            let (map, _fd) = Mapping::create("ipc-audit-test", HEADER_SIZE + 4096).unwrap();
            let ring = Ring::create(
                Arc::new(map),
                4096,
                100,
                std::process::id(),
                Arc::new(LinuxFutex),
            )
            .unwrap();
            let ring = ring.into_consumer();
            ring.poke("producer_pid", u64::from(pid));
            ShmReceiver {
                ring,
                spin: 0,
                timeout: Some(timeout),
                nonblocking: false,
            }
        }

        #[test]
        #[cfg_attr(
            miri,
            ignore = "memfd, mmap, futex and /proc are not available under Miri"
        )]
        fn dead_peer_ends_the_wait_with_closed() {
            let mut buf = Vec::new();
            // Positive control: a live peer (this process) is waited for until the
            // deadline.
            let mut rx = receiver(std::process::id(), Duration::from_millis(50));
            assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));

            // A zombie: exited but not reaped, so `kill(pid, 0)` would still succeed.
            let mut child = Command::new("true").spawn().unwrap();
            let pid = child.id();
            let give_up = Instant::now() + Duration::from_secs(10);
            while pid_alive(pid).unwrap() {
                assert!(Instant::now() < give_up, "child {pid} did not exit");
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut rx = receiver(pid, Duration::from_secs(30));
            match rx.recv(&mut buf) {
                Err(Error::Closed { op }) => assert!(op.contains(&pid.to_string()), "{op}"),
                r => panic!("zombie peer {pid}: expected Closed, got {r:?}"),
            }
            // Reaped: the pid is gone altogether.
            child.wait().unwrap();
            let mut rx = receiver(pid, Duration::from_secs(30));
            assert!(matches!(rx.recv(&mut buf), Err(Error::Closed { .. })));
        }
    }
}

#[cfg(any(loom, not(target_os = "linux")))]
mod imp {
    use super::super::{Config, Endpoint, Link, PeerEnd};
    use crate::error::{Error, Result};

    pub(super) fn open(_spin: u32, _cfg: &Config) -> Result<Link> {
        Err(Error::Unsupported(
            "shm: needs Linux (memfd, futex), and is not built under cfg(loom)".into(),
        ))
    }

    pub(super) fn attach(_peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Err(Error::Unsupported(
            "shm: needs Linux (memfd, futex), and is not built under cfg(loom)".into(),
        ))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::error::Error;

    fn pair(max: Option<usize>) -> (Box<dyn Endpoint>, Box<dyn Endpoint>) {
        let shm = Shm::default();
        let cfg = match max {
            Some(m) => Config::default().with_max_message(m),
            None => Config::default(),
        };
        let link = shm.open(&cfg).unwrap();
        let tx = shm.attach(link.peer).unwrap();
        (link.local, tx)
    }

    /// Nonblocking mode: an empty ring and a full one give WouldBlock at once (no wait
    /// for the 5 s timeout), what was accepted arrives in order, and a closed producer
    /// is reported as closed, not as WouldBlock.
    #[test]
    #[cfg_attr(miri, ignore = "memfd, mmap and futex are not available under Miri")]
    fn nonblocking_mode_would_block_when_empty_and_full() {
        let (mut rx, mut tx) = pair(Some(64));
        for end in [&mut rx, &mut tx] {
            end.set_timeout(Some(Duration::from_secs(5))).unwrap();
            end.set_nonblocking(true).unwrap();
        }
        let mut buf = Vec::new();
        let t = std::time::Instant::now();
        assert!(matches!(rx.recv(&mut buf), Err(Error::WouldBlock { .. })));
        let mut sent = 0u32;
        let full = loop {
            match tx.send(&sent.to_le_bytes()) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 1 << 20, "the ring never filled");
        };
        assert!(matches!(full, Error::WouldBlock { .. }), "{full:?}");
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a nonblocking call waited"
        );
        for i in 0..sent {
            assert_eq!(rx.recv(&mut buf).unwrap(), 4);
            assert_eq!(buf, i.to_le_bytes());
        }
        assert!(matches!(rx.recv(&mut buf), Err(Error::WouldBlock { .. })));
        drop(tx);
        assert!(matches!(rx.recv(&mut buf), Err(Error::Closed { .. })));
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd, mmap and futex are not available under Miri")]
    fn closed_sender_after_messages() {
        let (mut rx, mut tx) = pair(None);
        tx.send(b"last").unwrap();
        drop(tx);
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        assert!(matches!(rx.recv(&mut buf), Err(Error::Closed { .. })));
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd, mmap and futex are not available under Miri")]
    fn memfd_is_sealed_and_cloexec() {
        use nix::fcntl::{FcntlArg, FdFlag, SealFlag, fcntl};
        let link = Shm::default().open(&Config::default()).unwrap();
        let fd = &link.peer.fds[0];
        let seals = SealFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GET_SEALS).unwrap());
        assert!(
            seals.contains(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL)
        );
        let fl = FdFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFD).unwrap());
        assert!(fl.contains(FdFlag::FD_CLOEXEC));
        // Shrinking is refused by the kernel.
        assert!(nix::unistd::ftruncate(fd, 4096).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "memfd, mmap and futex are not available under Miri")]
    fn unsealed_memfd_is_refused() {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        let fd = memfd_create("unsealed", MFdFlags::MFD_CLOEXEC).unwrap();
        nix::unistd::ftruncate(&fd, 1 << 16).unwrap();
        let r = Shm::default().attach(PeerEnd {
            fds: vec![fd],
            info: "0".into(),
        });
        assert!(matches!(r, Err(Error::Protocol(m)) if m.contains("seals")));
    }
}
