//! A single-producer single-consumer ring of variable-size messages over a byte region
//! shared by two processes (or two threads), with a blocking hand-off.
//!
//! # Layout
//!
//! The region starts with a [`Header`] of [`HEADER_SIZE`] bytes, then `capacity` data
//! bytes (a power of two). Each message is a record: its length as a `u32` little-endian,
//! then its bytes. Records wrap around the end of the data (a record, its length
//! included, may be split in two).
//!
//! `head` and `tail` are byte counters that only grow (wrapping at 2^64): `head` is how
//! many bytes the producer published, `tail` how many the consumer released. Each lives
//! on its own cache line, and each side keeps a private copy of the other's index and
//! reloads it only when it has to (empty or full), so a message in flight touches the
//! remote line once.
//!
//! # Untrusted header
//!
//! The peer can write anything anywhere in the region. Each side keeps its own index,
//! the capacity and the maximum message in private memory, and validates everything it
//! reads from the region (the peer's index, a record's length, the header at attach):
//! garbage gives [`Error::Protocol`] naming the value, never a panic or an access out of
//! the region. All header fields are atomics, so a racing peer cannot cause undefined
//! behaviour through them.
//!
//! # Blocking
//!
//! A side that finds the ring empty (full) spins for a while, then raises its `waiting`
//! flag, issues a SeqCst fence, re-checks, and sleeps on the flag with a [`Futex`]. The
//! other side, after publishing, issues a SeqCst fence and, if the flag is raised, clears
//! it and wakes the sleeper: the two fences guarantee that either the sleeper sees the
//! new index or the publisher sees the flag (Dekker). Sleeps are bounded by the
//! caller's deadline and, between slices, a liveness check of the peer's pid.
//!
//! # Orderings
//!
//! Each one is needed; `tests/loom.rs` has a model that fails when it is weakened:
//! - `head` store Release (publish) / load Acquire (consumer refresh): payload bytes;
//! - `tail` store Release (release) / load Acquire (producer refresh): reuse of space;
//! - the four `fence(SeqCst)`: the two Dekker pairs of the empty and full hand-offs;
//! - `closed` load Acquire (consumer): no message lost on close. It synchronizes with
//!   the release fence (the SeqCst fence of `wake`) that ends every push, sequenced
//!   before the producer's Relaxed `fetch_or` of the flag.

use std::any::Any;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sem::Futex;
use crate::error::{Error, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UnsafeCell, fence, spin_wait};

/// Bytes of the header before the data, in a region.
pub const HEADER_SIZE: usize = 4096;
/// Bytes of a record's length prefix.
pub const RECORD_HEADER: usize = 4;
/// Smallest capacity accepted.
pub const MIN_CAPACITY: usize = 8;
/// Largest capacity accepted (1 GiB).
pub const MAX_CAPACITY: usize = 1 << 30;
/// The header's magic number, "IAshmRB1".
pub const MAGIC: u64 = u64::from_le_bytes(*b"IAshmRB1");
/// The layout version.
pub const VERSION: u32 = 1;

/// `closed` bit: the producer has gone.
const PRODUCER_CLOSED: u32 = 1;
/// `closed` bit: the consumer has gone.
const CONSUMER_CLOSED: u32 = 2;

/// A value on its own cache line pair (128 bytes: the adjacent-line prefetcher of x86
/// pulls lines in pairs).
#[repr(C, align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// The shared header, at the start of the region. Every field is an atomic: the peer
/// may write any of them at any time.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Header {
    /// Written once by the creator, then read-only (line 0).
    meta: Padded<Meta>,
    /// Bytes published by the producer.
    head: Padded<AtomicU64>,
    /// Bytes released by the consumer.
    tail: Padded<AtomicU64>,
    /// 1 while the consumer sleeps (or is about to) on an empty ring; its futex word.
    data_waiting: Padded<AtomicU32>,
    /// 1 while the producer sleeps (or is about to) on a full ring; its futex word.
    space_waiting: Padded<AtomicU32>,
}

#[repr(C)]
#[derive(Debug, Default)]
struct Meta {
    magic: AtomicU64,
    capacity: AtomicU64,
    max_message: AtomicU64,
    version: AtomicU32,
    consumer_pid: AtomicU32,
    producer_pid: AtomicU32,
    closed: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<Header>() <= HEADER_SIZE);
#[cfg(not(loom))]
const _: () = assert!(core::mem::align_of::<Header>() <= 128);

/// Memory that holds a ring: a shared mapping, or a heap buffer in tests.
///
/// # Safety
/// `base()` must be valid for reads and writes of `len()` bytes, aligned to 128 bytes,
/// for as long as the value lives, and must not be accessed other than through rings
/// (and atomics) while it lives.
pub unsafe trait Region: Any + Send + Sync {
    /// Start of the region.
    fn base(&self) -> NonNull<u8>;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A zeroed heap buffer as a [`Region`], for tests (Miri) and single-process use.
#[cfg(not(loom))]
#[derive(Debug)]
pub struct HeapRegion {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is owned; concurrent access goes through atomics and the ring
// protocol only.
#[cfg(not(loom))]
unsafe impl Send for HeapRegion {}
// SAFETY: as above.
#[cfg(not(loom))]
unsafe impl Sync for HeapRegion {}

#[cfg(not(loom))]
impl HeapRegion {
    /// A zeroed region of `len` bytes, aligned to 128.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `len` is zero or too large to allocate.
    pub fn new(len: usize) -> Result<Self> {
        let layout = std::alloc::Layout::from_size_align(len, 128)
            .map_err(|_| Error::invalid("heap region size", len))?;
        if len == 0 {
            return Err(Error::invalid("heap region size must not be 0", len));
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            NonNull::new(ptr).ok_or_else(|| Error::invalid("heap region: out of memory", len))?;
        Ok(HeapRegion { ptr, layout })
    }
}

#[cfg(not(loom))]
impl Drop for HeapRegion {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: the allocation is valid for `layout.size()` bytes, 128-aligned, and lives as
// long as the value.
#[cfg(not(loom))]
unsafe impl Region for HeapRegion {
    fn base(&self) -> NonNull<u8> {
        self.ptr
    }
    fn len(&self) -> usize {
        self.layout.size()
    }
}

/// Under loom the header holds loom atomics and the data loom cells, which cannot be
/// laid over raw bytes: the model owns them as ordinary values.
#[cfg(loom)]
struct LoomStorage {
    header: Header,
    data: Box<[UnsafeCell<u8>]>,
}

// SAFETY: the cells are accessed only under the ring protocol, which loom checks.
#[cfg(loom)]
unsafe impl Sync for LoomStorage {}
// SAFETY: as above.
#[cfg(loom)]
unsafe impl Send for LoomStorage {}

/// Pointers into the memory of one ring, with the values each side keeps privately.
struct Shared {
    header: NonNull<Header>,
    data: NonNull<UnsafeCell<u8>>,
    /// Private copy of the capacity (power of two), validated.
    cap: usize,
    /// Private copy of the maximum message, validated.
    max: usize,
    futex: Arc<dyn Futex>,
    /// Keeps the memory alive.
    _owner: Arc<dyn Any + Send + Sync>,
}

// SAFETY: the pointers target memory kept alive by `_owner`; it is only accessed through
// atomics and through cells under the ring protocol, which works across threads.
unsafe impl Send for Shared {}

impl Shared {
    fn header(&self) -> &Header {
        // SAFETY: `header` points to a live, aligned `Header` (all atomics, so any bytes
        // are a valid value) for as long as `_owner` lives.
        unsafe { self.header.as_ref() }
    }

    fn data(&self) -> &[UnsafeCell<u8>] {
        // SAFETY: `data` points to `cap` live cells for as long as `_owner` lives.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.cap) }
    }

    /// Copies `src` into the data at byte counter `at`, wrapping.
    ///
    /// # Safety
    /// The bytes `at..at + src.len()` (mod capacity) belong to the caller by the protocol.
    unsafe fn write_at(&self, at: u64, src: &[u8]) {
        let data = self.data();
        let off = (at as usize) & (self.cap - 1);
        let first = src.len().min(self.cap - off);
        // SAFETY: the caller owns these bytes; `off + first <= cap`.
        unsafe { crate::sync::write_cells(&data[off..off + first], &src[..first]) };
        // SAFETY: as above; the rest starts at 0 and `src.len() <= cap`.
        unsafe { crate::sync::write_cells(&data[..src.len() - first], &src[first..]) };
    }

    /// Copies the data at byte counter `at` into `dst`, wrapping.
    ///
    /// # Safety
    /// The bytes `at..at + dst.len()` (mod capacity) belong to the caller by the protocol.
    unsafe fn read_at(&self, at: u64, dst: &mut [u8]) {
        let data = self.data();
        let off = (at as usize) & (self.cap - 1);
        let first = dst.len().min(self.cap - off);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: the caller owns these bytes; `off + first <= cap`.
        unsafe { crate::sync::read_cells(a, &data[off..off + first]) };
        // SAFETY: as above; the rest starts at 0 and `dst.len() <= cap`.
        unsafe { crate::sync::read_cells(b, &data[..b.len()]) };
    }

    /// Wakes the side sleeping on `waiting`, if it sleeps. The fence pairs with the one
    /// in [`Shared::prepare_sleep`] (Dekker): after it, either the sleeper sees what was
    /// published before the call, or this sees its flag.
    fn wake(&self, waiting: &AtomicU32) {
        fence(Ordering::SeqCst);
        if waiting.load(Ordering::Relaxed) != 0 && waiting.swap(0, Ordering::Relaxed) != 0 {
            self.futex.wake(waiting);
        }
    }

    /// Raises `waiting` before the caller re-checks its condition and sleeps.
    fn prepare_sleep(&self, waiting: &AtomicU32) {
        waiting.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// Sleeps on `waiting` (raised by `prepare_sleep`) for at most one slice of `policy`,
    /// after checking the deadline and, when this wait already slept once (`again`) and
    /// still found nothing, the peer's liveness. (Not after every wake-up: reading
    /// `/proc` costs more than a futex round trip.)
    fn sleep(
        &self,
        waiting: &AtomicU32,
        policy: &Wait,
        peer_pid: u32,
        op: &str,
        again: bool,
    ) -> Result<()> {
        if again
            && peer_pid != 0
            && let Some(check) = policy.liveness
            && let Err(e) = check(peer_pid, op)
        {
            waiting.store(0, Ordering::Relaxed);
            return Err(e);
        }
        let now = policy.deadline.map(|_| Instant::now());
        let mut timeout = policy.slice;
        if let (Some(d), Some(now)) = (policy.deadline, now) {
            if now >= d {
                waiting.store(0, Ordering::Relaxed);
                return Err(Error::Timeout {
                    op: op.into(),
                    after: policy.timeout.unwrap_or_default(),
                });
            }
            let left = d - now;
            timeout = Some(timeout.map_or(left, |s| s.min(left)));
        }
        let r = self.futex.wait(waiting, 1, timeout);
        waiting.store(0, Ordering::Relaxed);
        r
    }

    /// While spinning: every 1024 polls checks the deadline, every 65536 the peer's
    /// liveness, so that a spinning side also ends its wait in time.
    fn spin_check(&self, spins: u32, policy: &Wait, pid_word: &AtomicU32, op: &str) -> Result<()> {
        if spins & 0x3ff == 0
            && let Some(d) = policy.deadline
            && Instant::now() >= d
        {
            return Err(Error::Timeout {
                op: op.into(),
                after: policy.timeout.unwrap_or_default(),
            });
        }
        if spins & 0xffff == 0
            && let Some(check) = policy.liveness
        {
            let pid = self.pid(pid_word, "peer")?;
            if pid != 0 {
                check(pid, op)?;
            }
        }
        Ok(())
    }

    /// A pid read from the header, validated (0: not known yet).
    fn pid(&self, word: &AtomicU32, who: &str) -> Result<u32> {
        let pid = word.load(Ordering::Relaxed);
        if pid > i32::MAX as u32 {
            return Err(Error::Protocol(format!(
                "shm: {who} pid {pid} out of range"
            )));
        }
        Ok(pid)
    }
}

/// How a blocking [`Producer::push`] or [`Consumer::pop`] waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait {
    /// Busy polls before sleeping (0: sleep at once).
    pub spin: u32,
    /// Give up with [`Error::Timeout`] at this instant (`None`: never).
    pub deadline: Option<Instant>,
    /// The timeout the deadline came from, reported in [`Error::Timeout`].
    pub timeout: Option<Duration>,
    /// Longest single sleep; the liveness check runs after each (`None`: one sleep).
    pub slice: Option<Duration>,
    /// Called with the peer's pid and the operation after each sleep; an error ends the
    /// wait (e.g. [`Error::Closed`] when the peer process died).
    pub liveness: Option<fn(u32, &str) -> Result<()>>,
}

impl Wait {
    /// Sleep at once, no deadline, no slices: the policy of the loom models.
    pub fn blocking() -> Self {
        Wait::default()
    }

    /// The policy for one operation with `timeout` starting now.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self.deadline = timeout.map(|t| Instant::now() + t);
        self
    }
}

/// A ring being built: split it into its [`Producer`] and [`Consumer`] ends.
pub struct Ring {
    shared: Shared,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.shared.cap)
            .field("max_message", &self.shared.max)
            .finish()
    }
}

/// Checks a capacity and a maximum message.
fn check_sizes(cap: u64, max: u64) -> Result<(usize, usize)> {
    if !cap.is_power_of_two() || cap < MIN_CAPACITY as u64 || cap > MAX_CAPACITY as u64 {
        return Err(Error::Protocol(format!(
            "shm: capacity {cap} is not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"
        )));
    }
    if max == 0 || max > cap - RECORD_HEADER as u64 {
        return Err(Error::Protocol(format!(
            "shm: maximum message {max} not in 1..={} for capacity {cap}",
            cap - RECORD_HEADER as u64
        )));
    }
    Ok((cap as usize, max as usize))
}

impl Ring {
    /// The capacity that holds messages of up to `max` bytes: at least `min`, a power of
    /// two.
    pub fn capacity_for(max: usize, min: usize) -> usize {
        (max + RECORD_HEADER)
            .next_power_of_two()
            .max(min.next_power_of_two())
    }

    /// Lays a new ring over `region` (whose header is overwritten) for messages up to
    /// `max` bytes in `capacity` bytes; this process (`pid`) will be the consumer.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a capacity that is not a power of two in
    /// [`MIN_CAPACITY`]..=[`MAX_CAPACITY`], a `max` that does not fit, or a region too small.
    #[cfg(not(loom))]
    pub fn create(
        region: Arc<dyn Region>,
        capacity: usize,
        max: usize,
        consumer_pid: u32,
        futex: Arc<dyn Futex>,
    ) -> Result<Ring> {
        let (cap, max) = check_sizes(capacity as u64, max as u64)
            .map_err(|e| Error::invalid(e.to_string(), format!("{capacity}/{max}")))?;
        if region.len() < HEADER_SIZE + cap
            || !(region.base().as_ptr() as usize).is_multiple_of(128)
        {
            return Err(Error::invalid(
                "shm: region smaller than header + capacity, or misaligned",
                region.len(),
            ));
        }
        let shared = Self::shared_over(region, cap, max, futex);
        let m = &shared.header().meta.0;
        // Relaxed: the region reaches the other side through fork/exec, fd passing or
        // thread spawn, which order these stores before its first read.
        m.capacity.store(cap as u64, Ordering::Relaxed);
        m.max_message.store(max as u64, Ordering::Relaxed);
        m.version.store(VERSION, Ordering::Relaxed);
        m.consumer_pid.store(consumer_pid, Ordering::Relaxed);
        m.producer_pid.store(0, Ordering::Relaxed);
        m.closed.store(0, Ordering::Relaxed);
        let h = shared.header();
        h.head.0.store(0, Ordering::Relaxed);
        h.tail.0.store(0, Ordering::Relaxed);
        h.data_waiting.0.store(0, Ordering::Relaxed);
        h.space_waiting.0.store(0, Ordering::Relaxed);
        m.magic.store(MAGIC, Ordering::Relaxed);
        Ok(Ring { shared })
    }

    /// Attaches to a ring made by [`Ring::create`] in `region`, as its producer (`pid`),
    /// validating the header.
    ///
    /// # Errors
    /// [`Error::Protocol`] naming the bad value: magic, version, capacity, maximum,
    /// region size, or a producer already attached.
    #[cfg(not(loom))]
    pub fn attach(
        region: Arc<dyn Region>,
        producer_pid: u32,
        futex: Arc<dyn Futex>,
    ) -> Result<Ring> {
        if region.len() < HEADER_SIZE + MIN_CAPACITY
            || !(region.base().as_ptr() as usize).is_multiple_of(128)
        {
            return Err(Error::Protocol(format!(
                "shm: region of {} bytes is too small or misaligned",
                region.len()
            )));
        }
        // SAFETY: the region holds at least HEADER_SIZE aligned bytes, and a Header (all
        // atomics) is valid for any bytes.
        let m = unsafe { &region.base().cast::<Header>().as_ref().meta.0 };
        let magic = m.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(Error::Protocol(format!("shm: bad magic {magic:#018x}")));
        }
        let version = m.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(Error::Protocol(format!("shm: unknown version {version}")));
        }
        let (cap, max) = check_sizes(
            m.capacity.load(Ordering::Relaxed),
            m.max_message.load(Ordering::Relaxed),
        )?;
        if region.len() < HEADER_SIZE + cap {
            return Err(Error::Protocol(format!(
                "shm: capacity {cap} does not fit the region of {} bytes",
                region.len()
            )));
        }
        if let Err(old) =
            m.producer_pid
                .compare_exchange(0, producer_pid, Ordering::Relaxed, Ordering::Relaxed)
        {
            return Err(Error::Protocol(format!(
                "shm: a producer (pid {old}) is already attached"
            )));
        }
        Ok(Ring {
            shared: Self::shared_over(region, cap, max, futex),
        })
    }

    #[cfg(not(loom))]
    fn shared_over(
        region: Arc<dyn Region>,
        cap: usize,
        max: usize,
        futex: Arc<dyn Futex>,
    ) -> Shared {
        let base = region.base();
        // SAFETY: the caller checked that the region holds HEADER_SIZE + cap bytes.
        let data = unsafe { base.add(HEADER_SIZE) }.cast::<UnsafeCell<u8>>();
        Shared {
            header: base.cast::<Header>(),
            data,
            cap,
            max,
            futex,
            _owner: region,
        }
    }

    /// A ring in a fresh heap buffer (a zeroed [`HeapRegion`]; under loom, loom cells),
    /// both ends in this process.
    ///
    /// # Errors
    /// As [`Ring::create`].
    pub fn heap(capacity: usize, max: usize, futex: Arc<dyn Futex>) -> Result<Ring> {
        #[cfg(not(loom))]
        {
            let region = HeapRegion::new(HEADER_SIZE + capacity.min(MAX_CAPACITY))?;
            Ring::create(Arc::new(region), capacity, max, std::process::id(), futex)
        }
        #[cfg(loom)]
        {
            let (cap, max) = check_sizes(capacity as u64, max as u64)?;
            let storage = Arc::new(LoomStorage {
                header: Header::default(),
                data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            });
            let header = NonNull::from(&storage.header);
            let data = NonNull::from(&storage.data[0]);
            let shared = Shared {
                header,
                data,
                cap,
                max,
                futex,
                _owner: storage,
            };
            let m = &shared.header().meta.0;
            m.capacity.store(cap as u64, Ordering::Relaxed);
            m.max_message.store(max as u64, Ordering::Relaxed);
            m.version.store(VERSION, Ordering::Relaxed);
            m.magic.store(MAGIC, Ordering::Relaxed);
            Ok(Ring { shared })
        }
    }

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests).
    ///
    /// `field`: `"head"`, `"tail"`, `"capacity"`, `"max"`, `"magic"`, `"version"`,
    /// `"producer_pid"`, `"consumer_pid"`.
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, field, value)
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.cap
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.max
    }

    /// The producer end (for the process that attached).
    pub fn into_producer(self) -> Producer {
        Producer {
            shared: self.shared,
            head: 0,
            tail_cache: 0,
        }
    }

    /// The consumer end (for the process that created the ring).
    pub fn into_consumer(self) -> Consumer {
        Consumer {
            shared: self.shared,
            tail: 0,
            head_cache: 0,
        }
    }

    /// Both ends, for a ring used between threads of this process.
    pub fn split(self) -> (Producer, Consumer) {
        let consumer = Consumer {
            shared: Shared {
                header: self.shared.header,
                data: self.shared.data,
                cap: self.shared.cap,
                max: self.shared.max,
                futex: self.shared.futex.clone(),
                _owner: self.shared._owner.clone(),
            },
            tail: 0,
            head_cache: 0,
        };
        (self.into_producer(), consumer)
    }
}

fn poke(shared: &Shared, field: &str, value: u64) {
    let h = shared.header();
    let m = &h.meta.0;
    match field {
        "head" => h.head.0.store(value, Ordering::Relaxed),
        "tail" => h.tail.0.store(value, Ordering::Relaxed),
        "capacity" => m.capacity.store(value, Ordering::Relaxed),
        "max" => m.max_message.store(value, Ordering::Relaxed),
        "magic" => m.magic.store(value, Ordering::Relaxed),
        "version" => m.version.store(value as u32, Ordering::Relaxed),
        "producer_pid" => m.producer_pid.store(value as u32, Ordering::Relaxed),
        "consumer_pid" => m.consumer_pid.store(value as u32, Ordering::Relaxed),
        _ => {}
    }
}

/// Loads `tail` from the header, validated against the producer's private `head`: at
/// most `capacity` bytes behind it and not ahead of it.
fn load_tail(shared: &Shared, head: u64) -> Result<u64> {
    let tail = shared.header().tail.0.load(Ordering::Acquire);
    if head.wrapping_sub(tail) > shared.cap as u64 {
        return Err(Error::Protocol(format!(
            "shm: tail {tail} is out of range of head {head} (capacity {})",
            shared.cap
        )));
    }
    Ok(tail)
}

/// Loads `head` from the header, validated against the consumer's private `tail`: at
/// most `capacity` bytes ahead of it and not behind it.
fn load_head(shared: &Shared, tail: u64) -> Result<u64> {
    let head = shared.header().head.0.load(Ordering::Acquire);
    if head.wrapping_sub(tail) > shared.cap as u64 {
        return Err(Error::Protocol(format!(
            "shm: head {head} is out of range of tail {tail} (capacity {})",
            shared.cap
        )));
    }
    Ok(head)
}

/// The sending end of a ring.
pub struct Producer {
    shared: Shared,
    /// Private head: bytes published.
    head: u64,
    /// Last tail read from the header.
    tail_cache: u64,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("head", &self.head)
            .finish()
    }
}

impl Producer {
    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.max
    }

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests).
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, field, value)
    }

    /// Reloads `tail` from the header, validated: it must be at most `capacity` bytes
    /// behind the private head and not ahead of it.
    fn refresh_tail(&mut self) -> Result<()> {
        self.tail_cache = load_tail(&self.shared, self.head)?;
        Ok(())
    }

    fn free(&self) -> usize {
        self.shared.cap - self.head.wrapping_sub(self.tail_cache) as usize
    }

    fn consumer_closed(&self) -> Result<()> {
        if self.shared.header().meta.0.closed.load(Ordering::Relaxed) & CONSUMER_CLOSED != 0 {
            return Err(Error::Closed {
                op: "shm: send".into(),
            });
        }
        Ok(())
    }

    /// Sends `msg` if there is room now; `Ok(false)` when the ring is full.
    ///
    /// # Errors
    /// [`Error::TooLarge`] over the maximum, [`Error::Closed`] when the consumer is gone,
    /// [`Error::Protocol`] on a corrupt header.
    pub fn try_push(&mut self, msg: &[u8]) -> Result<bool> {
        if msg.len() > self.shared.max {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: self.shared.max,
            });
        }
        self.consumer_closed()?;
        let need = RECORD_HEADER + msg.len();
        if self.free() < need {
            self.refresh_tail()?;
            if self.free() < need {
                return Ok(false);
            }
        }
        let len = (msg.len() as u32).to_le_bytes();
        // SAFETY: `need` bytes from `head` are free: the consumer released them (tail,
        // Acquire) and does not read past `head`, which is published only below.
        unsafe { self.shared.write_at(self.head, &len) };
        // SAFETY: as above.
        unsafe {
            self.shared
                .write_at(self.head.wrapping_add(RECORD_HEADER as u64), msg)
        };
        self.head = self.head.wrapping_add(need as u64);
        self.shared
            .header()
            .head
            .0
            .store(self.head, Ordering::Release);
        self.shared.wake(&self.shared.header().data_waiting.0);
        Ok(true)
    }

    /// Sends `msg`, waiting for room as `policy` says.
    ///
    /// # Errors
    /// As [`Producer::try_push`], plus [`Error::Timeout`] past the deadline and the
    /// liveness check's error.
    pub fn push(&mut self, msg: &[u8], policy: &Wait) -> Result<()> {
        let mut spins = 0;
        let mut slept = false;
        loop {
            if self.try_push(msg)? {
                return Ok(());
            }
            if spins < policy.spin {
                spins += 1;
                let pid = &self.shared.header().meta.0.consumer_pid;
                self.shared.spin_check(spins, policy, pid, "shm: send")?;
                spin_wait(spins);
                continue;
            }
            let h = self.shared.header();
            let waiting = &h.space_waiting.0;
            self.shared.prepare_sleep(waiting);
            self.tail_cache = load_tail(&self.shared, self.head)?;
            if self.free() >= RECORD_HEADER + msg.len() {
                waiting.store(0, Ordering::Relaxed);
                continue;
            }
            if let Err(e) = self.consumer_closed() {
                waiting.store(0, Ordering::Relaxed);
                return Err(e);
            }
            let pid = self.shared.pid(&h.meta.0.consumer_pid, "consumer")?;
            self.shared
                .sleep(waiting, policy, pid, "shm: send", slept)?;
            slept = true;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let h = self.shared.header();
        // Relaxed is enough: every successful push ended with the SeqCst fence of `wake`,
        // a release fence sequenced before this store, so the consumer's Acquire load of
        // the flag synchronizes with it and sees every message published (C++20
        // [atomics.fences]/2). Loom agrees: a Release here is never needed by a model.
        h.meta.0.closed.fetch_or(PRODUCER_CLOSED, Ordering::Relaxed);
        self.shared.wake(&h.data_waiting.0);
    }
}

/// The receiving end of a ring.
pub struct Consumer {
    shared: Shared,
    /// Private tail: bytes released.
    tail: u64,
    /// Last head read from the header.
    head_cache: u64,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tail", &self.tail)
            .finish()
    }
}

impl Consumer {
    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.max
    }

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests).
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, field, value)
    }

    /// Writes arbitrary bytes into the data at byte counter `at` (wrapping), as a hostile
    /// peer would (tests). Only while the producer end is idle.
    pub fn poke_data(&self, at: u64, bytes: &[u8]) {
        let n = bytes.len().min(self.shared.cap);
        // SAFETY: test hook, single-threaded by its contract; in bounds (wrapping, at
        // most `cap` bytes).
        unsafe { self.shared.write_at(at, &bytes[..n]) };
    }

    /// Reloads `head` from the header, validated: at most `capacity` bytes ahead of the
    /// private tail and not behind it. Returns whether data is available.
    fn refresh_head(&mut self) -> Result<bool> {
        self.head_cache = load_head(&self.shared, self.tail)?;
        Ok(self.head_cache != self.tail)
    }

    /// Receives one message into `out` if there is one now (its old content replaced).
    ///
    /// # Errors
    /// [`Error::Protocol`] on a corrupt header or record (the value named).
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>> {
        if self.head_cache == self.tail && !self.refresh_head()? {
            return Ok(None);
        }
        // `refresh_head` bounded this by the capacity.
        let avail = self.head_cache.wrapping_sub(self.tail) as usize;
        if avail < RECORD_HEADER {
            return Err(Error::Protocol(format!(
                "shm: {avail} bytes published, less than a record header"
            )));
        }
        let mut len = [0u8; RECORD_HEADER];
        // SAFETY: `avail` bytes from `tail` are published (head, Acquire) and the
        // producer does not write them until `tail` moves past them.
        unsafe { self.shared.read_at(self.tail, &mut len) };
        let len = u32::from_le_bytes(len) as usize;
        if len > self.shared.max || RECORD_HEADER + len > avail {
            return Err(Error::Protocol(format!(
                "shm: record length {len} exceeds the maximum {} or the {avail} bytes published",
                self.shared.max
            )));
        }
        if out.len() < len {
            out.resize(len, 0);
        } else {
            out.truncate(len);
        }
        // SAFETY: as above, `RECORD_HEADER + len <= avail`.
        unsafe {
            self.shared
                .read_at(self.tail.wrapping_add(RECORD_HEADER as u64), out)
        };
        self.tail = self.tail.wrapping_add((RECORD_HEADER + len) as u64);
        self.shared
            .header()
            .tail
            .0
            .store(self.tail, Ordering::Release);
        self.shared.wake(&self.shared.header().space_waiting.0);
        Ok(Some(len))
    }

    /// Receives one message into `out`, waiting as `policy` says.
    ///
    /// # Errors
    /// As [`Consumer::try_pop`], plus [`Error::Closed`] once the producer has gone and
    /// every message it sent was received, [`Error::Timeout`] past the deadline, and the
    /// liveness check's error.
    pub fn pop(&mut self, out: &mut Vec<u8>, policy: &Wait) -> Result<usize> {
        let mut spins = 0;
        let mut slept = false;
        loop {
            if let Some(n) = self.try_pop(out)? {
                return Ok(n);
            }
            if spins < policy.spin {
                spins += 1;
                let pid = &self.shared.header().meta.0.producer_pid;
                self.shared.spin_check(spins, policy, pid, "shm: recv")?;
                spin_wait(spins);
                continue;
            }
            let h = self.shared.header();
            let waiting = &h.data_waiting.0;
            self.shared.prepare_sleep(waiting);
            self.head_cache = load_head(&self.shared, self.tail)?;
            if self.head_cache != self.tail {
                waiting.store(0, Ordering::Relaxed);
                continue;
            }
            // Acquire: pairs with the producer's Release on close, so that every message
            // published before is visible to the `try_pop` below.
            if h.meta.0.closed.load(Ordering::Acquire) & PRODUCER_CLOSED != 0 {
                waiting.store(0, Ordering::Relaxed);
                return match self.try_pop(out)? {
                    Some(n) => Ok(n),
                    None => Err(Error::Closed {
                        op: "shm: recv".into(),
                    }),
                };
            }
            let pid = self.shared.pid(&h.meta.0.producer_pid, "producer")?;
            self.shared
                .sleep(waiting, policy, pid, "shm: recv", slept)?;
            slept = true;
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let h = self.shared.header();
        // Relaxed: no data travels with this flag; the fence in `wake` orders it before
        // the producer's re-check (Dekker).
        h.meta.0.closed.fetch_or(CONSUMER_CLOSED, Ordering::Relaxed);
        self.shared.wake(&h.space_waiting.0);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::shm::sem::CondvarFutex;

    fn ring(cap: usize, max: usize) -> (Producer, Consumer) {
        Ring::heap(cap, max, Arc::new(CondvarFutex::new()))
            .unwrap()
            .split()
    }

    #[test]
    fn fifo_across_wrap_around() {
        let (mut p, mut c) = ring(64, 20);
        let mut out = Vec::new();
        let mut next = 0u32;
        // Many laps of a 64-byte ring with records of 5..=24 bytes: every offset of
        // the length prefix and the payload is split by the end at some point.
        for i in 0u32..300 {
            let len = (i % 21) as usize;
            let msg: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
            while !p.try_push(&msg).unwrap() {
                let n = c.try_pop(&mut out).unwrap().unwrap();
                check(next, &out[..n]);
                next += 1;
            }
        }
        while let Some(n) = c.try_pop(&mut out).unwrap() {
            check(next, &out[..n]);
            next += 1;
        }
        assert_eq!(next, 300);
    }

    fn check(i: u32, got: &[u8]) {
        let len = (i % 21) as usize;
        let want: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        assert_eq!(got, &want[..], "message {i}");
    }

    #[test]
    fn full_ring_refuses_then_accepts() {
        let (mut p, mut c) = ring(16, 12);
        assert!(p.try_push(&[1; 12]).unwrap());
        assert!(!p.try_push(&[2]).unwrap());
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(12));
        assert!(p.try_push(&[2]).unwrap());
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(1));
        assert_eq!(out, [2]);
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
    }

    #[test]
    fn oversize_is_refused_with_the_limit() {
        let (mut p, _c) = ring(64, 10);
        match p.try_push(&[0; 11]) {
            Err(Error::TooLarge { len: 11, max: 10 }) => {}
            r => panic!("expected TooLarge, got {r:?}"),
        }
        assert!(p.try_push(&[0; 10]).unwrap());
    }

    #[test]
    fn bad_sizes_are_refused() {
        let f: Arc<dyn Futex> = Arc::new(CondvarFutex::new());
        assert!(Ring::heap(48, 8, f.clone()).is_err());
        assert!(Ring::heap(4, 1, f.clone()).is_err());
        assert!(Ring::heap(16, 13, f.clone()).is_err());
        assert!(Ring::heap(16, 0, f).is_err());
    }

    #[test]
    fn garbage_head_is_a_protocol_error() {
        let mut out = Vec::new();
        for head in [65u64, u64::MAX, 1 << 40] {
            let (_p, mut c) = ring(64, 20);
            c.poke("head", head);
            match c.try_pop(&mut out) {
                Err(Error::Protocol(m)) => assert!(m.contains(&head.to_string()), "{m}"),
                r => panic!("head {head}: expected Protocol, got {r:?}"),
            }
        }
        // A head inside the window, too short for a record.
        let (_p, mut c) = ring(64, 20);
        c.poke("head", 3);
        assert!(matches!(c.try_pop(&mut out), Err(Error::Protocol(m)) if m.contains("3 bytes")));
        // A refused head leaves the ring usable once the header is sane again.
        let (mut p, mut c) = ring(64, 20);
        c.poke("head", 65);
        assert!(c.try_pop(&mut out).is_err());
        c.poke("head", 0);
        assert!(p.try_push(b"ok").unwrap());
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(2));
    }

    #[test]
    fn garbage_record_length_is_a_protocol_error() {
        let mut out = Vec::new();
        for (len, head) in [(21u32, 64u64), (u32::MAX, 64), (10, 8)] {
            let (_p, mut c) = ring(64, 20);
            c.poke_data(0, &len.to_le_bytes());
            c.poke("head", head);
            match c.try_pop(&mut out) {
                Err(Error::Protocol(m)) => assert!(m.contains(&len.to_string()), "{m}"),
                r => panic!("len {len}: expected Protocol, got {r:?}"),
            }
        }
    }

    #[test]
    fn garbage_tail_is_a_protocol_error() {
        let (mut p, _c) = ring(16, 12);
        assert!(p.try_push(&[1; 12]).unwrap());
        for tail in [17u64, u64::MAX - 3] {
            p.poke("tail", tail);
            match p.try_push(&[1; 4]) {
                Err(Error::Protocol(m)) => assert!(m.contains(&tail.to_string()), "{m}"),
                r => panic!("tail {tail}: expected Protocol, got {r:?}"),
            }
        }
    }

    #[test]
    fn garbage_header_at_attach_is_a_protocol_error() {
        let f: Arc<dyn Futex> = Arc::new(CondvarFutex::new());
        let region: Arc<dyn Region> = Arc::new(HeapRegion::new(HEADER_SIZE + 64).unwrap());
        let ring = Ring::create(region.clone(), 64, 20, 1, f.clone()).unwrap();
        for (field, value) in [
            ("magic", 7u64),
            ("version", 9),
            ("capacity", 48),
            ("capacity", 128),
            ("capacity", 1 << 62),
            ("max", 61),
            ("max", 0),
        ] {
            let ring = Ring::create(region.clone(), 64, 20, 1, f.clone()).unwrap();
            ring.poke(field, value);
            match Ring::attach(region.clone(), 2, f.clone()) {
                Err(Error::Protocol(m)) => {
                    let shown = if field == "magic" {
                        format!("{value:#018x}")
                    } else {
                        value.to_string()
                    };
                    assert!(m.contains(&shown), "{field}={value}: {m}");
                }
                r => panic!("{field}={value}: expected Protocol, got {r:?}"),
            }
        }
        drop(ring);
        let _ok = Ring::create(region.clone(), 64, 20, 1, f.clone()).unwrap();
        let _p = Ring::attach(region.clone(), 2, f.clone()).unwrap();
        assert!(matches!(
            Ring::attach(region, 3, f),
            Err(Error::Protocol(m)) if m.contains("pid 2")
        ));
    }

    #[test]
    fn closed_after_all_messages() {
        let (mut p, mut c) = ring(64, 20);
        p.try_push(b"a").unwrap();
        p.try_push(b"bc").unwrap();
        drop(p);
        let mut out = Vec::new();
        assert_eq!(c.pop(&mut out, &Wait::blocking()).unwrap(), 1);
        assert_eq!(c.pop(&mut out, &Wait::blocking()).unwrap(), 2);
        assert_eq!(out, b"bc");
        assert!(matches!(
            c.pop(&mut out, &Wait::blocking()),
            Err(Error::Closed { .. })
        ));
    }

    #[test]
    fn send_to_closed_consumer_fails() {
        let (mut p, c) = ring(64, 20);
        drop(c);
        assert!(matches!(p.try_push(b"x"), Err(Error::Closed { .. })));
    }

    #[test]
    fn timeout_when_nothing_comes() {
        let (_p, mut c) = ring(64, 20);
        let mut out = Vec::new();
        let w = Wait::default().with_timeout(Some(Duration::from_millis(5)));
        assert!(matches!(c.pop(&mut out, &w), Err(Error::Timeout { .. })));
    }

    #[test]
    fn dead_peer_ends_the_wait() {
        let (_p, mut c) = ring(64, 20);
        c.poke("producer_pid", 77);
        let mut out = Vec::new();
        let w = Wait {
            slice: Some(Duration::from_millis(1)),
            liveness: Some(|pid, op| {
                Err(Error::Closed {
                    op: format!("{op}: peer pid {pid} died"),
                })
            }),
            ..Wait::default()
        };
        match c.pop(&mut out, &w) {
            Err(Error::Closed { op }) => assert!(op.contains("77"), "{op}"),
            r => panic!("expected Closed, got {r:?}"),
        }
        c.poke("producer_pid", u64::from(u32::MAX));
        assert!(matches!(c.pop(&mut out, &w), Err(Error::Protocol(_))));
    }

    #[test]
    fn threads_hand_off_through_a_tiny_ring() {
        let n: u32 = if cfg!(miri) { 40 } else { 5000 };
        let (mut p, mut c) = ring(16, 8);
        let t = std::thread::spawn(move || {
            for i in 0..n {
                let len = (i % 9) as usize;
                let msg = vec![i as u8; len];
                p.push(
                    &msg,
                    &Wait {
                        spin: 2,
                        ..Wait::default()
                    },
                )
                .unwrap();
            }
        });
        let mut out = Vec::new();
        for i in 0..n {
            let len = c
                .pop(
                    &mut out,
                    &Wait {
                        spin: 2,
                        ..Wait::default()
                    },
                )
                .unwrap();
            assert_eq!(len, (i % 9) as usize);
            assert!(
                out.iter().all(|&b| b == i as u8),
                "message {i} torn: {out:?}"
            );
        }
        t.join().unwrap();
        assert!(matches!(
            c.pop(&mut out, &Wait::blocking()),
            Err(Error::Closed { .. })
        ));
    }
}
