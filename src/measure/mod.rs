//! Measurements between two processes, for any [`Transport`]: round-trip latency,
//! one-way throughput, CPU time, context switches and heap allocations per message,
//! beside the floors (a spinning cache line and a futex hand-off in shared memory)
//! measured in the same run. The benches and the `ipc-audit bench` and `table` commands
//! all use this module.
//!
//! # How
//!
//! - The peer is a separate process started by the audit's harness
//!   ([`PeerLauncher`]); it pins itself on command, as this process does.
//! - Round trips: on a duplex transport the peer echoes on the one link. On a one-way
//!   transport (the peer end sends, the local end receives) the peer opens a second link
//!   of the same transport for the way back and hands its descriptors over a Unix socket
//!   (SCM_RIGHTS): each direction then uses the transport as it is meant to be used.
//! - A transport that carries no data (a semaphore) measures the hand-off alone.
//! - Warm-up round trips first, then a histogram (hdrhistogram) for p50, p99 and max.
//! - Throughput: the peer sends N messages as fast as it can; the time is from the first
//!   message received to the last, so the start-up is not counted.
//! - CPU time from `getrusage(RUSAGE_SELF)` in both processes (the peer reports its own);
//!   allocations from [`alloc::CountingAlloc`] when the program installed it (the
//!   `ipc-audit` binary does, and the peer is the same binary).
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use ipc_audit::{audit::PeerLauncher, run_if_peer};
//! use ipc_audit::measure::{latency, LatencyOptions, Pin};
//! use ipc_audit::transport::{self, by_name};
//!
//! fn main() {
//!     run_if_peer(transport::by_name);
//!     let launcher = PeerLauncher::current_exe().unwrap();
//!     let pipe = by_name("pipe").unwrap();
//!     let l = latency(&launcher, pipe.as_ref(), Pin::Same, &LatencyOptions::default()).unwrap();
//!     println!("pipe p50 {} ns", l.stats.p50_ns);
//! }
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::peer::{NO_TRANSPORT, PeerLauncher, PeerOptions};
use role::{Cmd, Event, PeerProcess};

use crate::error::{Error, Result};
use crate::transport::{Config, Endpoint, Link, PeerEnd, Transport};

pub use crate::sys::alloc;
pub(crate) mod floor;
#[cfg(target_os = "linux")]
pub(crate) mod objects;
#[cfg(not(target_os = "linux"))]
#[path = "objects_other.rs"]
pub(crate) mod objects;
pub(crate) mod role;
pub(crate) use crate::sys;

pub use floor::FloorKind;
pub use sys::{Usage, allowed_cpus};

/// Where the two processes run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pin {
    /// Both on the first allowed cpu.
    Same,
    /// This process on the first allowed cpu, the peer on the second.
    Cross,
}

impl Pin {
    /// `same` or `cross`.
    pub fn name(self) -> &'static str {
        match self {
            Pin::Same => "same",
            Pin::Cross => "cross",
        }
    }

    /// (this process's cpu, the peer's cpu).
    ///
    /// # Errors
    /// [`Error::Unsupported`] when there are too few cpus (or pinning is not available).
    pub fn cpus(self) -> Result<(usize, usize)> {
        let cpus = allowed_cpus();
        match (self, cpus.as_slice()) {
            (Pin::Same, [a, ..]) => Ok((*a, *a)),
            (Pin::Cross, [a, b, ..]) => Ok((*a, *b)),
            _ => Err(Error::Unsupported(format!(
                "pin {}: this process may run on cpus {cpus:?}",
                self.name()
            ))),
        }
    }
}

/// Percentiles of a set of round trips, in nanoseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
    /// How many round trips.
    pub round_trips: u64,
    /// The histogram: `[upper bound in ns, round trips in the bucket]`, buckets doubling
    /// from 256 ns, empty buckets at either end left out (empty in older JSON).
    #[serde(default)]
    pub buckets: Vec<[u64; 2]>,
}

impl Stats {
    fn of(h: &Histogram<u64>) -> Self {
        Stats {
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            max_ns: h.max(),
            mean_ns: h.mean(),
            round_trips: h.len(),
            buckets: buckets(h),
        }
    }
}

/// The histogram's counts in buckets doubling from 256 ns, without empty ends.
fn buckets(h: &Histogram<u64>) -> Vec<[u64; 2]> {
    let mut b: Vec<[u64; 2]> = h
        .iter_log(256, 2.0)
        .map(|v| [v.value_iterated_to(), v.count_since_last_iteration()])
        .collect();
    while b.last().is_some_and(|x| x[1] == 0) {
        b.pop();
    }
    let first = b.iter().position(|x| x[1] > 0).unwrap_or(b.len());
    b.drain(..first);
    b
}

/// A histogram for round trips from 1 ns to 100 s, 3 significant digits.
fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3)
        .map_err(|e| Error::invalid("histogram bounds", e))
}

/// How the way back is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WayBack {
    /// The peer answers on the same (duplex) link.
    SameLink,
    /// The peer answers on its link; this process sends on a second link that the peer
    /// opened.
    SecondLink,
}

/// Round-trip latency of one transport with one pinning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// The transport.
    pub transport: String,
    /// Where the processes ran.
    pub pin: Pin,
    /// Message size in bytes (0 for a transport that carries no data).
    pub size: usize,
    /// How the answer comes back.
    pub way_back: WayBack,
    /// The round trips.
    pub stats: Stats,
    /// CPU time of both processes per round trip (user + system).
    pub cpu_ns_per_round_trip: f64,
    /// Context switches (voluntary and involuntary, both processes) per round trip.
    pub switches_per_round_trip: f64,
    /// Heap allocations in this process per message (two messages per round trip),
    /// when the counting allocator is installed.
    pub allocs_per_msg: Option<f64>,
    /// The same in the peer, when it has the counting allocator.
    pub peer_allocs_per_msg: Option<f64>,
}

/// One-way throughput of one transport at one message size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// The transport.
    pub transport: String,
    /// Message size in bytes.
    pub size: usize,
    /// Messages the peer sent.
    pub sent: u64,
    /// Messages received (fewer than sent on a transport that drops).
    pub received: u64,
    /// Payload bytes per second, from the first message received to the last.
    pub bytes_per_s: f64,
    /// Messages per second, likewise.
    pub msgs_per_s: f64,
    /// CPU time of both processes per message received.
    pub cpu_ns_per_msg: f64,
    /// Heap allocations per message in this process (receiving), if counted.
    pub allocs_per_msg: Option<f64>,
    /// The same in the peer (sending), if counted.
    pub peer_allocs_per_msg: Option<f64>,
}

/// A floor measured in this run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Floor {
    /// Which floor.
    pub kind: FloorKind,
    /// Where the processes ran.
    pub pin: Pin,
    /// The round trips.
    pub stats: Stats,
}

/// Settings of a latency measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyOptions {
    /// Message size in bytes.
    pub size: usize,
    /// Round trips before measuring.
    pub warmup: usize,
    /// Most round trips measured.
    pub round_trips: usize,
    /// Fewer round trips when the warm-up shows they would take longer than this.
    pub budget: Duration,
    /// Bound on one round trip (and on every wait for the peer).
    pub timeout: Duration,
}

impl Default for LatencyOptions {
    fn default() -> Self {
        LatencyOptions {
            size: 64,
            warmup: 1000,
            round_trips: 20_000,
            budget: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        }
    }
}

impl LatencyOptions {
    /// How many round trips fit the budget, given a warm-up that took `took` for `n`.
    fn fit(&self, took: Duration, n: usize) -> usize {
        if n == 0 || took.is_zero() {
            return self.round_trips;
        }
        let per = took.as_secs_f64() / n as f64;
        let fit = (self.budget.as_secs_f64() / per) as usize;
        fit.clamp(100.min(self.round_trips), self.round_trips)
    }
}

/// What [`Stream::receive_stream`] saw: messages received, when the first and the last
/// arrived, and the peer's count sent and usage if its report came.
type Received = (u64, Option<Instant>, Option<Instant>, Option<(u64, Usage)>);

/// The watchdog bound of a measuring peer: long, since a bench session lasts; every
/// single wait has its own, shorter deadline.
const SESSION_LIMIT: Duration = Duration::from_secs(3600);

/// Waits for the peer's next event, by `timeout`; a failure it reports is an error.
fn expect(peer: &mut PeerProcess, label: &str, timeout: Duration) -> Result<Event> {
    peer.expect(Instant::now() + timeout, label)
}

/// Starts a peer, checks it is another process, pins it to `cpu`.
fn start_peer(
    launcher: &PeerLauncher,
    transport: &str,
    peer_end: PeerEnd,
    aux: Vec<OwnedFd>,
    label: &str,
    cpu: usize,
    timeout: Duration,
) -> Result<PeerProcess> {
    let mut peer = PeerProcess::spawn_with(
        launcher,
        transport,
        peer_end,
        aux,
        label.to_string(),
        SESSION_LIMIT,
        &PeerOptions::default(),
    )?
    .ready(timeout)?;
    peer.command(&Cmd::Pin { cpu })?;
    match expect(&mut peer, label, timeout)? {
        Event::Pinned { .. } => Ok(peer),
        other => Err(Error::Peer(format!(
            "{label}: expected pinned, got {other:?}"
        ))),
    }
}

/// A started round-trip session: a link (and a link back on one-way transports), a
/// pinned peer that echoes, and this process pinned. Dropping it ends the peer and
/// restores this process's affinity.
pub struct PingPong {
    label: String,
    link: Link,
    back: Option<Box<dyn Endpoint>>,
    // Always `Some` until drop: an `Option` so that drop can end the peer gracefully.
    peer: Option<PeerProcess>,
    msg: Vec<u8>,
    buf: Vec<u8>,
    size: usize,
    data: bool,
    timeout: Duration,
    pin: Pin,
    _pinned: sys::Pinned,
}

impl std::fmt::Debug for PingPong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PingPong")
            .field("label", &self.label)
            .field("size", &self.size)
            .finish()
    }
}

/// What one batch of round trips or one stream cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunCost {
    /// Wall time of the batch in this process.
    pub elapsed: Duration,
    /// This process's usage during the batch.
    pub local: Usage,
    /// The peer's usage, as it reported it.
    pub peer: Usage,
}

impl PingPong {
    /// Opens the link(s), starts and pins the peer, pins this process.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `size` is over the transport's maximum, errors from the
    /// transport and the peer, [`Error::Unsupported`] when the pinning is impossible.
    pub fn start(
        launcher: &PeerLauncher,
        transport: &dyn Transport,
        pin: Pin,
        size: usize,
        timeout: Duration,
    ) -> Result<Self> {
        let name = transport.name();
        let label = format!("{name} / round trip {}-cpu", pin.name());
        let g = transport.guarantees();
        let size = if g.carries_data { size } else { 0 };
        if size > g.max_message {
            return Err(Error::invalid(
                format!("{name}: message size over the maximum of {}", g.max_message),
                size,
            ));
        }
        let (local_cpu, peer_cpu) = pin.cpus()?;
        let mut link = transport.open(&Config::default())?;
        let peer_end = std::mem::take(&mut link.peer);
        let (ours, theirs) = if g.duplex {
            (None, Vec::new())
        } else {
            let (a, b) = UnixStream::pair().map_err(|e| Error::io("socketpair (fd passing)", e))?;
            (Some(a), vec![OwnedFd::from(b)])
        };
        let mut peer = start_peer(launcher, name, peer_end, theirs, &label, peer_cpu, timeout)?;
        let pinned = sys::pin_process(local_cpu)?;
        let back = match ours {
            None => None,
            Some(sock) => {
                peer.command(&Cmd::OpenBack {
                    max_message: None,
                    aux: 0,
                })?;
                let (info, nfds) = match expect(&mut peer, &label, timeout)? {
                    Event::BackOpened { info, nfds } => (info, nfds),
                    other => {
                        return Err(Error::Peer(format!(
                            "{label}: expected back-opened, got {other:?}"
                        )));
                    }
                };
                sock.set_read_timeout(Some(timeout))
                    .map_err(|e| Error::io("fd passing: set timeout", e))?;
                let fds = recv_fds(sock.as_fd(), nfds)?;
                let mut end = transport.attach(PeerEnd { fds, info })?;
                end.set_timeout(Some(timeout))?;
                Some(end)
            }
        };
        link.local.set_timeout(Some(timeout))?;
        Ok(PingPong {
            label,
            link,
            back,
            peer: Some(peer),
            msg: vec![0xa5; size],
            buf: Vec::with_capacity(size.max(64)),
            size,
            data: g.carries_data,
            timeout,
            pin,
            _pinned: pinned,
        })
    }

    /// One round trip, timed.
    fn one(&mut self, i: usize) -> Result<u64> {
        let t = Instant::now();
        let n = match self.back.as_mut() {
            Some(back) => {
                back.send(&self.msg)?;
                self.link.local.recv(&mut self.buf)
            }
            None => {
                self.link.local.send(&self.msg)?;
                self.link.local.recv(&mut self.buf)
            }
        }
        .map_err(|e| match e {
            Error::Timeout { op, after } => Error::Timeout {
                op: format!("{}: round trip {i}: {op}", self.label),
                after,
            },
            e => e,
        })?;
        let ns = t.elapsed().as_nanos() as u64;
        if self.data && n != self.size {
            return Err(Error::Protocol(format!(
                "{}: round trip {i} came back with {n} bytes, not {}",
                self.label, self.size
            )));
        }
        Ok(ns)
    }

    /// `count` round trips; each is given to `record` in nanoseconds.
    ///
    /// # Errors
    /// A transport error (naming the round trip), or the peer's.
    pub fn run(&mut self, count: usize, mut record: impl FnMut(u64)) -> Result<RunCost> {
        self.peer()?.command(&Cmd::Echo { count })?;
        let before = Usage::now();
        let t = Instant::now();
        for i in 0..count {
            let ns = self.one(i)?;
            record(ns);
        }
        let elapsed = t.elapsed();
        let local = Usage::now().since(&before);
        let (label, timeout) = (self.label.clone(), self.timeout);
        match expect(self.peer()?, &label, timeout)? {
            Event::Echoed {
                usage, error: None, ..
            } => Ok(RunCost {
                elapsed,
                local,
                peer: usage,
            }),
            Event::Echoed { error: Some(e), .. } => {
                Err(Error::Peer(format!("{}: echo: {e}", self.label)))
            }
            other => Err(Error::Peer(format!(
                "{}: expected echoed, got {other:?}",
                self.label
            ))),
        }
    }

    /// Warm-up, then as many round trips as fit the budget, into a histogram.
    ///
    /// # Errors
    /// As [`PingPong::run`].
    pub fn measure(&mut self, opts: &LatencyOptions) -> Result<Latency> {
        let t = Instant::now();
        self.run(opts.warmup, |_| {})?;
        let n = opts.fit(t.elapsed(), opts.warmup);
        let mut h = histogram()?;
        let cost = self.run(n, |ns| {
            let _ = h.record(ns.max(1));
        })?;
        let per = |x: u64| x as f64 / n.max(1) as f64;
        let allocs = |u: &Usage| u.allocs.map(|a| a as f64 / (2 * n.max(1)) as f64);
        Ok(Latency {
            transport: self.transport_name(),
            pin: self.pin,
            size: self.size,
            way_back: if self.back.is_some() {
                WayBack::SecondLink
            } else {
                WayBack::SameLink
            },
            stats: Stats::of(&h),
            cpu_ns_per_round_trip: per(cost.local.cpu_ns() + cost.peer.cpu_ns()),
            switches_per_round_trip: per(cost.local.switches() + cost.peer.switches()),
            allocs_per_msg: allocs(&cost.local),
            peer_allocs_per_msg: allocs(&cost.peer),
        })
    }

    fn transport_name(&self) -> String {
        self.label
            .split(" / ")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    fn peer(&mut self) -> Result<&mut PeerProcess> {
        self.peer
            .as_mut()
            .ok_or_else(|| Error::Peer(format!("{}: the peer has ended", self.label)))
    }

    /// Ends the peer cleanly.
    ///
    /// # Errors
    /// When the peer does not exit cleanly in time.
    pub fn finish(mut self) -> Result<()> {
        self.end()
    }

    /// Closes our ends (a peer blocked on them sees the closure), then closes the
    /// peer's input and waits for it to exit, so that the guards of the link the peer
    /// opened remove its named objects; the peer is killed only if it does not exit.
    fn end(&mut self) -> Result<()> {
        self.back = None;
        let link = std::mem::replace(
            &mut self.link,
            Link {
                local: Box::new(Closed),
                peer: PeerEnd::default(),
                guard: None,
                path: None,
            },
        );
        drop(link);
        match self.peer.take() {
            Some(p) => p.finish(Instant::now() + Duration::from_secs(5)),
            None => Ok(()),
        }
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// A stand-in for an end that was closed.
struct Closed;

impl Endpoint for Closed {
    fn send(&mut self, _: &[u8]) -> Result<()> {
        Err(Error::Closed {
            op: "send on a finished session".into(),
        })
    }

    fn recv(&mut self, _: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Closed {
            op: "recv on a finished session".into(),
        })
    }

    fn set_timeout(&mut self, _: Option<Duration>) -> Result<()> {
        Ok(())
    }
}

/// Round-trip latency of `transport`: a [`PingPong`] session measured once.
///
/// # Errors
/// As [`PingPong::start`] and [`PingPong::run`].
pub fn latency(
    launcher: &PeerLauncher,
    transport: &dyn Transport,
    pin: Pin,
    opts: &LatencyOptions,
) -> Result<Latency> {
    let mut s = PingPong::start(launcher, transport, pin, opts.size, opts.timeout)?;
    let l = s.measure(opts)?;
    s.finish()?;
    Ok(l)
}

/// A started one-way stream session: the peer sends, this process receives.
pub struct Stream {
    label: String,
    name: String,
    link: Link,
    peer: PeerProcess,
    buf: Vec<u8>,
    max: usize,
    data: bool,
    timeout: Duration,
    _pinned: sys::Pinned,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("label", &self.label)
            .finish()
    }
}

impl Stream {
    /// Opens the link, starts and pins the peer, pins this process.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a transport that carries no data or an impossible
    /// pinning; errors from the transport and the peer.
    pub fn start(
        launcher: &PeerLauncher,
        transport: &dyn Transport,
        pin: Pin,
        timeout: Duration,
    ) -> Result<Self> {
        let name = transport.name();
        let label = format!("{name} / stream {}-cpu", pin.name());
        let g = transport.guarantees();
        if !g.carries_data {
            return Err(Error::Unsupported(format!(
                "{name}: carries no data, so it has no throughput"
            )));
        }
        let (local_cpu, peer_cpu) = pin.cpus()?;
        let mut link = transport.open(&Config::default())?;
        let peer_end = std::mem::take(&mut link.peer);
        let peer = start_peer(
            launcher,
            name,
            peer_end,
            Vec::new(),
            &label,
            peer_cpu,
            timeout,
        )?;
        let pinned = sys::pin_process(local_cpu)?;
        Ok(Stream {
            label,
            name: name.to_string(),
            link,
            peer,
            buf: Vec::with_capacity(64 * 1024),
            max: g.max_message,
            data: g.carries_data,
            timeout,
            _pinned: pinned,
        })
    }

    /// The peer sends `count` messages of `size` bytes (stopping after `limit`); this
    /// process receives them.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `size` is over the maximum; a transport error; fewer than
    /// two messages received.
    pub fn run(&mut self, count: usize, size: usize, limit: Duration) -> Result<Throughput> {
        if size > self.max {
            return Err(Error::invalid(
                format!(
                    "{}: message size over the maximum of {}",
                    self.name, self.max
                ),
                size,
            ));
        }
        debug_assert!(self.data);
        let slice = Duration::from_millis(100);
        self.link.local.set_timeout(Some(slice))?;
        self.peer.command(&Cmd::Stream {
            count,
            size,
            limit_ms: limit.as_millis() as u64,
        })?;
        let before = Usage::now();
        let (received, first, last, done) = self.receive_stream(count, limit)?;
        let local = Usage::now().since(&before);
        let (sent, peer) = match done {
            Some(d) => d,
            None => streamed(
                expect(&mut self.peer, &self.label, limit + self.timeout)?,
                &self.label,
            )?,
        };
        self.link.local.set_timeout(Some(self.timeout))?;
        let (Some(first), Some(last)) = (first, last) else {
            return Err(Error::Protocol(format!(
                "{}: nothing received of {sent} messages",
                self.label
            )));
        };
        let secs = last.duration_since(first).as_secs_f64();
        if received < 2 || secs <= 0.0 {
            return Err(Error::Protocol(format!(
                "{}: {received} of {sent} messages received: too few to time",
                self.label
            )));
        }
        let per = |x: u64| x as f64 / received as f64;
        Ok(Throughput {
            transport: self.name.clone(),
            size,
            sent,
            received,
            bytes_per_s: (received - 1) as f64 * size as f64 / secs,
            msgs_per_s: (received - 1) as f64 / secs,
            cpu_ns_per_msg: per(local.cpu_ns() + peer.cpu_ns()),
            allocs_per_msg: local.allocs.map(per),
            peer_allocs_per_msg: peer.allocs.map(|a| a as f64 / sent.max(1) as f64),
        })
    }

    /// Receives the peer's stream until all `count` arrived, or the peer reported how
    /// many it sent and those arrived, or nothing more comes: the count received, the
    /// times of the first and last, and the peer's report if it came.
    fn receive_stream(&mut self, count: usize, limit: Duration) -> Result<Received> {
        let deadline = Instant::now() + limit + self.timeout;
        let (mut first, mut last) = (None, None);
        let mut received = 0u64;
        let mut done: Option<(u64, Usage)> = None;
        loop {
            if let Some((sent, _)) = done
                && received >= sent
            {
                break;
            }
            if received as usize >= count {
                break;
            }
            match self.link.local.recv(&mut self.buf) {
                Ok(_) => {
                    let now = Instant::now();
                    received += 1;
                    if first.is_none() {
                        first = Some(now);
                    }
                    last = Some(now);
                }
                Err(Error::Timeout { .. }) if done.is_some() => break,
                Err(Error::Timeout { .. }) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            op: format!("{}: receive message {}", self.label, received + 1),
                            after: limit + self.timeout,
                        });
                    }
                    if let Some(ev) = self.peer.try_expect(&self.label)? {
                        done = Some(streamed(ev, &self.label)?);
                    }
                }
                Err(Error::Closed { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        Ok((received, first, last, done))
    }

    /// Ends the peer cleanly.
    ///
    /// # Errors
    /// When the peer does not exit cleanly in time.
    pub fn finish(self) -> Result<()> {
        let Stream { link, peer, .. } = self;
        drop(link);
        peer.finish(Instant::now() + Duration::from_secs(5))
    }
}

fn streamed(ev: Event, label: &str) -> Result<(u64, Usage)> {
    match ev {
        Event::Streamed {
            sent,
            usage,
            error: None,
        } => Ok((sent as u64, usage)),
        Event::Streamed { error: Some(e), .. } => Err(Error::Peer(format!("{label}: stream: {e}"))),
        other => Err(Error::Peer(format!(
            "{label}: expected streamed, got {other:?}"
        ))),
    }
}

/// Throughput of `transport` at each of `sizes` (skipping those over its maximum), in
/// one session.
///
/// # Errors
/// As [`Stream::start`] and [`Stream::run`].
pub fn throughput(
    launcher: &PeerLauncher,
    transport: &dyn Transport,
    pin: Pin,
    sizes: &[(usize, usize)],
    limit: Duration,
    timeout: Duration,
) -> Result<Vec<Throughput>> {
    let max = transport.guarantees().max_message;
    let mut s = Stream::start(launcher, transport, pin, timeout)?;
    let mut out = Vec::new();
    for &(size, count) in sizes.iter().filter(|(s, _)| *s <= max) {
        out.push(s.run(count, size, limit)?);
    }
    s.finish()?;
    Ok(out)
}

/// The measuring side of a floor.
enum FloorSide {
    Page(sys::SharedPage),
    Objects(objects::Objects),
}

fn floor_done(peer: &mut PeerProcess, label: &str, timeout: Duration) -> Result<()> {
    match expect(peer, label, timeout)? {
        Event::FloorDone { error: None, .. } => Ok(()),
        Event::FloorDone { error: Some(e), .. } => Err(Error::Peer(format!("{label}: {e}"))),
        other => Err(Error::Peer(format!(
            "{label}: expected floor-done, got {other:?}"
        ))),
    }
}

/// Measures a floor: `count` round trips after `warmup`, between this process and a
/// peer (with no transport) over a shared page, or over a method's kernel object with
/// the least code ([`FloorKind::of_method`]).
///
/// # Errors
/// [`Error::Unsupported`] off Linux or for `shm-spin` on one cpu; the peer's errors.
pub fn floor(
    launcher: &PeerLauncher,
    kind: FloorKind,
    pin: Pin,
    warmup: usize,
    count: usize,
    timeout: Duration,
) -> Result<Floor> {
    if matches!(kind, FloorKind::ShmSpin | FloorKind::ShmTwoLine) && pin == Pin::Same {
        return Err(Error::Unsupported(
            "shm-spin on one cpu: a spinner waits out the other's time slice".into(),
        ));
    }
    let label = format!("{} floor {}-cpu", kind.name(), pin.name());
    let (local_cpu, peer_cpu) = pin.cpus()?;
    let (mut local, aux, arg) = if kind.is_shm() {
        let page = sys::SharedPage::create()?;
        let share = vec![page.share()?];
        (FloorSide::Page(page), share, 0)
    } else {
        let (objects, fds, arg) = objects::make(kind, timeout)?;
        (FloorSide::Objects(objects), fds, arg)
    };
    let mut peer = start_peer(
        launcher,
        NO_TRANSPORT,
        PeerEnd::default(),
        aux,
        &label,
        peer_cpu,
        timeout,
    )?;
    let _pinned = sys::pin_process(local_cpu)?;
    let mut h = histogram()?;
    for (n, keep) in [(warmup, false), (count, true)] {
        peer.command(&Cmd::Floor {
            kind,
            count: n,
            aux: arg,
        })?;
        let record = |ns: u64| {
            if keep {
                let _ = h.record(ns.max(1));
            }
        };
        match &mut local {
            FloorSide::Page(page) => {
                floor::reset(page);
                floor::local(kind, page, n, timeout, record)?;
            }
            FloorSide::Objects(o) => objects::local(o, n, timeout, record)?,
        }
        floor_done(&mut peer, &label, timeout)?;
    }
    peer.finish(Instant::now() + timeout)?;
    Ok(Floor {
        kind,
        pin,
        stats: Stats::of(&h),
    })
}

/// The peer's side of [`PingPong::run`]: receives `count` messages (on `input`, or on
/// `out` when there is no second link) and sends each back on `out`.
pub(crate) fn peer_echo(
    mut input: Option<&mut dyn Endpoint>,
    out: &mut dyn Endpoint,
    count: usize,
) -> (usize, Usage, Option<Error>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let before = Usage::now();
    for i in 0..count {
        let r = match input.as_deref_mut() {
            Some(inp) => inp.recv(&mut buf),
            None => out.recv(&mut buf),
        }
        .and_then(|n| out.send(&buf[..n]));
        if let Err(e) = r {
            return (i, Usage::now().since(&before), Some(e));
        }
    }
    (count, Usage::now().since(&before), None)
}

/// The peer's side of [`Stream::run`].
pub(crate) fn peer_stream(
    out: &mut dyn Endpoint,
    count: usize,
    size: usize,
    limit: Duration,
) -> (usize, Usage, Option<Error>) {
    let msg = vec![0x5a_u8; size];
    let before = Usage::now();
    let stop = Instant::now() + limit;
    for i in 0..count {
        if i % 64 == 63 && Instant::now() >= stop {
            return (i, Usage::now().since(&before), None);
        }
        if let Err(e) = out.send(&msg) {
            return (i, Usage::now().since(&before), Some(e));
        }
    }
    (count, Usage::now().since(&before), None)
}

/// Sends `fds` (possibly none) with one byte over a Unix socket.
pub(crate) fn send_fds(sock: BorrowedFd<'_>, fds: &[OwnedFd]) -> Result<()> {
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    sys::fd::send_fds(sock, &[1u8], &borrowed)
        .map(drop)
        .map_err(|e| Error::sys("send descriptors (SCM_RIGHTS)", e))
}

/// Receives the one byte and `n` descriptors sent by [`send_fds`], close-on-exec.
pub(crate) fn recv_fds(sock: BorrowedFd<'_>, n: usize) -> Result<Vec<OwnedFd>> {
    if n > 16 {
        return Err(Error::invalid("at most 16 descriptors per link", n));
    }
    let mut byte = [0u8; 1];
    let (_, fds) = sys::fd::recv_fds(sock, &mut byte)
        .map_err(|e| Error::sys("receive descriptors (SCM_RIGHTS)", e))?;
    if fds.len() != n {
        return Err(Error::Protocol(format!(
            "expected {n} descriptors from the peer, got {}",
            fds.len()
        )));
    }
    Ok(fds)
}
