//! A single-producer single-consumer ring of variable-size messages over a byte region
//! shared by two processes (or two threads), with a blocking hand-off.
//!
//! # Layout
//!
//! The region starts with a [`Header`] of [`HEADER_SIZE`] bytes, then `capacity` data
//! bytes (a power of two). Each message is a record at an 8-aligned byte counter: a
//! 64-bit record header word (its length in the low 32 bits, a tag derived from the
//! record's position in the high 32 bits), then its bytes, padded to a multiple of 8.
//! A record's payload wraps around the end of the data (its header word never does).
//!
//! # Where the sides poll
//!
//! The consumer does not read a head index: it polls the header word of the record it
//! will read next, in the data itself, so that a message in flight costs one cache-line
//! transfer (the line that holds both the header word and the first bytes) instead of
//! two (an index line, then the data). A zero word means "nothing yet". For that to
//! hold after wrap-around, where the next position holds stale bytes of an older lap,
//! the producer writes a zero *terminator* word just after each record before it
//! publishes the record's header word (Release): the consumer, having acquired that
//! header, sees at the next position either the terminator or a newer header. So the
//! producer keeps 8 bytes free beyond each record.
//!
//! `tail` is a byte counter that only grows (wrapping at 2^64): how many bytes the
//! consumer released. It lives on its own cache line; the producer keeps a private copy
//! and reloads it only when the ring looks full. The producer's own position (`head`)
//! is private and never published.
//!
//! # Untrusted header
//!
//! The peer can write anything anywhere in the region. Each side keeps its own
//! position, the capacity and the maximum message in private memory, and validates
//! everything it reads from the region (the consumer's tail, a record's header word,
//! the header at attach): garbage gives [`Error::Protocol`] naming the value, never a
//! panic or an access out of the region. All header fields and record header words
//! are atomics, so a racing peer cannot cause undefined behaviour through them.
//!
//! # Blocking
//!
//! A side that finds the ring empty (full) spins for a while, then raises its `waiting`
//! flag, issues a SeqCst fence, re-checks, and sleeps on the flag with a [`Futex`]. The
//! other side, after publishing, issues a SeqCst fence and, if the flag is raised, clears
//! it and wakes the sleeper: the two fences guarantee that either the sleeper sees the
//! new record (or space) or the publisher sees the flag (Dekker). Sleeps are bounded by
//! the caller's deadline and, between slices, a liveness check of the peer's pid.
//!
//! # Orderings
//!
//! Each one is needed; `tests/loom.rs` has a model that fails when it is weakened (the
//! table is in `.ci/loom-weaken.sh`):
//! - record header store Release (publish) / load Acquire (consumer poll): the payload
//!   bytes and the terminator after them;
//! - `tail` store Release (release) / load Acquire (producer refresh): reuse of space;
//! - the four `fence(SeqCst)`: the two Dekker pairs of the empty and full hand-offs;
//! - `closed` load Acquire (consumer): no message lost on close. It synchronizes with
//!   the release fence (the SeqCst fence of `wake`) that ends every push, sequenced
//!   before the producer's Relaxed `fetch_or` of the flag.
//!
//! The terminator store is Relaxed: the Release of the header word after it publishes it.

use std::any::Any;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sem::Futex;
use crate::error::{Error, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UnsafeCell, fence, spin_wait};

/// Bytes of the header before the data, in a region.
pub const HEADER_SIZE: usize = 4096;
/// Bytes of a record's header word; records start at multiples of it.
pub const RECORD_HEADER: usize = 8;
/// Bytes a message of the maximum size needs beyond its payload: its header word, and
/// the terminator word after it.
pub const RECORD_OVERHEAD: usize = 2 * RECORD_HEADER;
/// The cache line size assumed for the order of the producer's stores.
const CACHE_LINE: usize = 64;
/// Smallest capacity accepted.
pub const MIN_CAPACITY: usize = 32;
/// Largest capacity accepted (1 GiB).
pub const MAX_CAPACITY: usize = 1 << 30;
/// The header's magic number, "IAshmRB1".
pub const MAGIC: u64 = u64::from_le_bytes(*b"IAshmRB1");
/// The layout version (2: records polled in the data, no head index).
pub const VERSION: u32 = 2;

/// `closed` bit: the producer has gone.
const PRODUCER_CLOSED: u32 = 1;
/// `closed` bit: the consumer has gone.
const CONSUMER_CLOSED: u32 = 2;

/// The bytes a record of `len` payload bytes takes: its header word, then the payload
/// padded to a multiple of 8.
#[inline]
pub fn record_size(len: usize) -> usize {
    RECORD_HEADER + len.next_multiple_of(RECORD_HEADER)
}

/// The tag of a record header at byte counter `pos` (8-aligned): its word index, with
/// the top bit set so that a header word is never 0 (0 is the terminator).
#[inline]
fn tag_for(pos: u64) -> u32 {
    ((pos >> 3) as u32) | 0x8000_0000
}

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
#[cfg(not(loom))]
const _: () = assert!(HEADER_SIZE.is_multiple_of(core::mem::align_of::<AtomicU64>()));

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
/// laid over raw bytes: the model owns them as ordinary values. The record header words
/// are a separate array of loom atomics, one per 8 data bytes: in a real region they
/// are the same bytes as the data. The protocol never reads as a header word what was
/// last written as payload (the terminator comes between), so the model loses nothing.
#[cfg(loom)]
struct LoomStorage {
    header: Header,
    data: Box<[UnsafeCell<u8>]>,
    words: Box<[AtomicU64]>,
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
    /// The record header words: `cap / 8` atomics (over the data itself, except under
    /// loom).
    words: NonNull<AtomicU64>,
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

    /// The record header word at byte counter `pos` (rounded down to a multiple of 8,
    /// wrapping): always in bounds.
    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        let i = ((pos as usize) & (self.cap - 1)) / RECORD_HEADER;
        // SAFETY: `words` points to `cap / 8` live, aligned atomics for as long as
        // `_owner` lives, and `i < cap / 8`. Any bytes are a valid `AtomicU64`.
        unsafe { &*self.words.as_ptr().add(i) }
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
        if first < src.len() {
            // SAFETY: as above; the rest starts at 0 and `src.len() <= cap`.
            unsafe { crate::sync::write_cells(&data[..src.len() - first], &src[first..]) };
        }
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
        if !b.is_empty() {
            // SAFETY: as above; the rest starts at 0 and `dst.len() <= cap`.
            unsafe { crate::sync::read_cells(b, &data[..b.len()]) };
        }
    }

    /// Wakes the side sleeping on `waiting`, if it sleeps. The fence pairs with the one
    /// in [`Shared::prepare_sleep`] (Dekker): after it, either the sleeper sees what was
    /// published before the call, or this sees its flag.
    #[inline]
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
        op: &'static str,
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
        let mut timeout = policy.slice;
        if let Some(d) = policy.deadline {
            let now = Instant::now();
            if now >= d {
                waiting.store(0, Ordering::Relaxed);
                return Err(timed_out(op, policy));
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
    fn spin_check(
        &self,
        spins: u32,
        policy: &Wait,
        pid_word: &AtomicU32,
        op: &'static str,
    ) -> Result<()> {
        if spins & 0x3ff == 0
            && let Some(d) = policy.deadline
            && Instant::now() >= d
        {
            return Err(timed_out(op, policy));
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

/// The error of a wait past its deadline (allocates only here, on the error path).
fn timed_out(op: &'static str, policy: &Wait) -> Error {
    Error::Timeout {
        op: op.into(),
        after: policy.timeout.unwrap_or_default(),
    }
}

/// How a blocking [`Producer::push`] or [`Consumer::pop`] waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait {
    /// Busy polls before sleeping (0: sleep at once).
    pub spin: u32,
    /// Give up with [`Error::Timeout`] at this instant. `None` with a `timeout`: the
    /// deadline is `timeout` after the operation first finds it has to wait (so that an
    /// operation that need not wait does not read the clock). `None` without: never.
    pub deadline: Option<Instant>,
    /// The timeout the deadline comes from, reported in [`Error::Timeout`].
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

    /// This policy with its deadline fixed: `timeout` from now when it has none yet.
    fn started(&self) -> Wait {
        let mut w = *self;
        if w.deadline.is_none()
            && let Some(t) = w.timeout
        {
            w.deadline = Some(Instant::now() + t);
        }
        w
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
    if max == 0 || max > cap - RECORD_OVERHEAD as u64 {
        return Err(Error::Protocol(format!(
            "shm: maximum message {max} not in 1..={} for capacity {cap}",
            cap - RECORD_OVERHEAD as u64
        )));
    }
    Ok((cap as usize, max as usize))
}

impl Ring {
    /// The capacity that holds messages of up to `max` bytes: at least `min`, a power of
    /// two.
    pub fn capacity_for(max: usize, min: usize) -> usize {
        (max.next_multiple_of(RECORD_HEADER) + RECORD_OVERHEAD)
            .next_power_of_two()
            .max(min.next_power_of_two())
            .max(MIN_CAPACITY)
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
        h.tail.0.store(0, Ordering::Relaxed);
        h.data_waiting.0.store(0, Ordering::Relaxed);
        h.space_waiting.0.store(0, Ordering::Relaxed);
        // The first record's position holds nothing yet.
        shared.word(0).store(0, Ordering::Relaxed);
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
        let data = unsafe { base.add(HEADER_SIZE) };
        Shared {
            header: base.cast::<Header>(),
            data: data.cast::<UnsafeCell<u8>>(),
            // The data is 128-aligned (base and HEADER_SIZE are), so 8-aligned.
            words: data.cast::<AtomicU64>(),
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
                words: (0..cap / RECORD_HEADER)
                    .map(|_| AtomicU64::new(0))
                    .collect(),
            });
            let header = NonNull::from(&storage.header);
            let data = NonNull::from(&storage.data[0]);
            let words = NonNull::from(&storage.words[0]);
            let shared = Shared {
                header,
                data,
                words,
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
    /// `field`: `"record"` (the header word of the first record), `"tail"`,
    /// `"capacity"`, `"max"`, `"magic"`, `"version"`, `"producer_pid"`,
    /// `"consumer_pid"`, `"closed"`; anything else is ignored.
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, 0, field, value)
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
        }
    }

    /// Both ends, for a ring used between threads of this process.
    pub fn split(self) -> (Producer, Consumer) {
        let consumer = Consumer {
            shared: Shared {
                header: self.shared.header,
                data: self.shared.data,
                words: self.shared.words,
                cap: self.shared.cap,
                max: self.shared.max,
                futex: self.shared.futex.clone(),
                _owner: self.shared._owner.clone(),
            },
            tail: 0,
        };
        (self.into_producer(), consumer)
    }
}

/// The hostile writes of the `poke` test hooks; `"record"` is the header word at byte
/// counter `pos`.
fn poke(shared: &Shared, pos: u64, field: &str, value: u64) {
    let h = shared.header();
    let m = &h.meta.0;
    match field {
        "record" => shared.word(pos).store(value, Ordering::Relaxed),
        "tail" => h.tail.0.store(value, Ordering::Relaxed),
        "capacity" => m.capacity.store(value, Ordering::Relaxed),
        "max" => m.max_message.store(value, Ordering::Relaxed),
        "magic" => m.magic.store(value, Ordering::Relaxed),
        "version" => m.version.store(value as u32, Ordering::Relaxed),
        "producer_pid" => m.producer_pid.store(value as u32, Ordering::Relaxed),
        "consumer_pid" => m.consumer_pid.store(value as u32, Ordering::Relaxed),
        "closed" => m.closed.store(value as u32, Ordering::Relaxed),
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

/// The sending end of a ring.
pub struct Producer {
    shared: Shared,
    /// Private head: bytes published (a multiple of 8).
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

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests);
    /// `"record"` is the header word at this end's next position. See [`Ring::poke`].
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, self.head, field, value)
    }

    /// Reloads `tail` from the header, validated: it must be at most `capacity` bytes
    /// behind the private head and not ahead of it.
    fn refresh_tail(&mut self) -> Result<()> {
        self.tail_cache = load_tail(&self.shared, self.head)?;
        Ok(())
    }

    /// Free bytes by the cached tail.
    #[inline]
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
        let rec = record_size(msg.len());
        // The record, and the terminator word after it.
        let need = rec + RECORD_HEADER;
        if self.free() < need {
            self.refresh_tail()?;
            if self.free() < need {
                return Ok(false);
            }
        }
        let at = self.head;
        // The payload bytes that share the header word's cache line are written last,
        // just before the header: the consumer polls that line, and a store to it that
        // came earlier would let the consumer pull the line back before the header
        // store, costing a second transfer of the line.
        let in_line =
            (CACHE_LINE - RECORD_HEADER - (at as usize & (CACHE_LINE - 1))).min(msg.len());
        let (near, far) = msg.split_at(in_line);
        let body = at.wrapping_add(RECORD_HEADER as u64);
        // SAFETY: `need` bytes from `head` are free: the consumer released them (tail,
        // Acquire) and does not read past the last header word it acquired, which is
        // the one at `head` (still the terminator 0) until the store below.
        unsafe { self.shared.write_at(body.wrapping_add(in_line as u64), far) };
        let next = at.wrapping_add(rec as u64);
        // Relaxed: published by the Release below (the consumer reads it only after
        // acquiring this record's header).
        self.shared.word(next).store(0, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { self.shared.write_at(body, near) };
        let word = u64::from(tag_for(at)) << 32 | msg.len() as u64;
        self.shared.word(at).store(word, Ordering::Release);
        self.head = next;
        self.shared.wake(&self.shared.header().data_waiting.0);
        Ok(true)
    }

    /// Sends `msg`, waiting for room as `policy` says.
    ///
    /// # Errors
    /// As [`Producer::try_push`], plus [`Error::Timeout`] past the deadline and the
    /// liveness check's error.
    pub fn push(&mut self, msg: &[u8], policy: &Wait) -> Result<()> {
        if self.try_push(msg)? {
            return Ok(());
        }
        let policy = policy.started();
        let mut spins = 0;
        let mut slept = false;
        loop {
            if spins < policy.spin {
                spins += 1;
                let pid = &self.shared.header().meta.0.consumer_pid;
                self.shared.spin_check(spins, &policy, pid, "shm: send")?;
                spin_wait(spins);
            } else {
                let h = self.shared.header();
                let waiting = &h.space_waiting.0;
                self.shared.prepare_sleep(waiting);
                self.tail_cache = load_tail(&self.shared, self.head)?;
                if self.free() < record_size(msg.len()) + RECORD_HEADER {
                    if let Err(e) = self.consumer_closed() {
                        waiting.store(0, Ordering::Relaxed);
                        return Err(e);
                    }
                    let pid = self.shared.pid(&h.meta.0.consumer_pid, "consumer")?;
                    self.shared
                        .sleep(waiting, &policy, pid, "shm: send", slept)?;
                    slept = true;
                } else {
                    waiting.store(0, Ordering::Relaxed);
                }
            }
            if self.try_push(msg)? {
                return Ok(());
            }
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
    /// Private tail: bytes released; the position of the next record (a multiple of 8).
    tail: u64,
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

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests);
    /// `"record"` is the header word of the next record this end will read. See
    /// [`Ring::poke`].
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, self.tail, field, value)
    }

    /// Writes arbitrary bytes into the data at byte counter `at` (wrapping), as a hostile
    /// peer would (tests). Only while the producer end is idle.
    pub fn poke_data(&self, at: u64, bytes: &[u8]) {
        let n = bytes.len().min(self.shared.cap);
        // SAFETY: test hook, single-threaded by its contract; in bounds (wrapping, at
        // most `cap` bytes).
        unsafe { self.shared.write_at(at, &bytes[..n]) };
    }

    /// The header word of the next record, validated: `None` when nothing is there yet,
    /// else the payload length.
    #[inline]
    fn next_record(&self) -> Result<Option<usize>> {
        let word = self.shared.word(self.tail).load(Ordering::Acquire);
        if word == 0 {
            return Ok(None);
        }
        let len = word as u32 as usize;
        let tag = (word >> 32) as u32;
        if tag != tag_for(self.tail) || len > self.shared.max {
            return Err(bad_record(word, self.tail, self.shared.max));
        }
        Ok(Some(len))
    }

    /// Receives one message into `out` if there is one now (its old content replaced).
    ///
    /// # Errors
    /// [`Error::Protocol`] on a corrupt record header (the value named).
    #[inline]
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>> {
        let Some(len) = self.next_record()? else {
            return Ok(None);
        };
        if out.len() != len {
            out.resize(len, 0);
        }
        // SAFETY: the header word at `tail` was published (Release) after the `len`
        // payload bytes that follow it and acquired above; the producer does not write
        // them again until `tail` moves past them. `len <= max <= cap - 16`.
        unsafe {
            self.shared
                .read_at(self.tail.wrapping_add(RECORD_HEADER as u64), out)
        };
        self.tail = self.tail.wrapping_add(record_size(len) as u64);
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
        if let Some(n) = self.try_pop(out)? {
            return Ok(n);
        }
        let policy = policy.started();
        let mut spins = 0;
        let mut slept = false;
        loop {
            if spins < policy.spin {
                spins += 1;
                // Also touch the cache line after the next record's header: a message of
                // more than 56 bytes continues there, and polling it too lets that
                // line travel in parallel with the header's line instead of after it.
                // The value is not used (Relaxed; any word of the data is an atomic).
                let _ = self
                    .shared
                    .word(self.tail.wrapping_add(CACHE_LINE as u64))
                    .load(Ordering::Relaxed);
                let pid = &self.shared.header().meta.0.producer_pid;
                self.shared.spin_check(spins, &policy, pid, "shm: recv")?;
                spin_wait(spins);
            } else {
                let h = self.shared.header();
                let waiting = &h.data_waiting.0;
                self.shared.prepare_sleep(waiting);
                if self.next_record()?.is_some() {
                    waiting.store(0, Ordering::Relaxed);
                } else if h.meta.0.closed.load(Ordering::Acquire) & PRODUCER_CLOSED != 0 {
                    // Acquire: pairs with the fence that ends every push, so that every
                    // message published before the close is visible to `try_pop`.
                    waiting.store(0, Ordering::Relaxed);
                    return match self.try_pop(out)? {
                        Some(n) => Ok(n),
                        None => Err(Error::Closed {
                            op: "shm: recv".into(),
                        }),
                    };
                } else {
                    let pid = self.shared.pid(&h.meta.0.producer_pid, "producer")?;
                    self.shared
                        .sleep(waiting, &policy, pid, "shm: recv", slept)?;
                    slept = true;
                }
            }
            if let Some(n) = self.try_pop(out)? {
                return Ok(n);
            }
        }
    }
}

/// The error for a record header word that is neither 0 nor a valid header at `pos`.
#[cold]
fn bad_record(word: u64, pos: u64, max: usize) -> Error {
    let len = word as u32;
    let tag = (word >> 32) as u32;
    Error::Protocol(format!(
        "shm: record header {word} ({word:#018x}) at byte {pos}: length {len} (maximum \
         {max}), tag {tag:#010x} (expected {:#010x})",
        tag_for(pos)
    ))
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
        // 16 bytes: a 24-byte record and its terminator fill the 32 bytes.
        let (mut p, mut c) = ring(32, 16);
        assert!(p.try_push(&[1; 16]).unwrap());
        assert!(!p.try_push(&[2]).unwrap());
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(16));
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
        assert!(Ring::heap(16, 1, f.clone()).is_err());
        assert!(Ring::heap(32, 17, f.clone()).is_err());
        assert!(Ring::heap(32, 0, f.clone()).is_err());
        assert!(Ring::heap(32, 16, f).is_ok());
    }

    #[test]
    fn garbage_record_header_is_a_protocol_error() {
        let mut out = Vec::new();
        let good_tag = u64::from(tag_for(0)) << 32;
        for word in [
            2u64,
            u64::MAX,
            1 << 40,
            good_tag | 21,
            good_tag | 0xffff_ffff,
        ] {
            let (_p, mut c) = ring(64, 20);
            c.poke("record", word);
            match c.try_pop(&mut out) {
                Err(Error::Protocol(m)) => assert!(m.contains(&word.to_string()), "{m}"),
                r => panic!("record {word:#x}: expected Protocol, got {r:?}"),
            }
        }
        // Positive control: the right tag and a length within the maximum is a record.
        let (_p, mut c) = ring(64, 20);
        c.poke("record", good_tag | 20);
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(20));
        // A refused header leaves the ring usable once it is sane again.
        let (mut p, mut c) = ring(64, 20);
        c.poke("record", 3);
        assert!(c.try_pop(&mut out).is_err());
        c.poke("record", 0);
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
        assert!(p.try_push(b"ok").unwrap());
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(2));
        assert_eq!(out, b"ok");
    }

    /// Payload that holds valid-looking record headers for the next lap is never taken
    /// for a record after wrap-around: the producer's terminator word covers the next
    /// position before each record is published. (Without the terminator the consumer
    /// reads a phantom message here.)
    #[test]
    fn stale_payload_is_never_a_record() {
        let cap = 64u64;
        let (mut p, mut c) = ring(cap as usize, 40);
        let mut out = Vec::new();
        let mut at = 0u64;
        for i in 0..200u64 {
            let len = [40usize, 8, 24, 0, 16, 33][(i % 6) as usize];
            // Every 8-byte word of the payload is a valid header for the same place
            // one or two laps later.
            let msg: Vec<u8> = (0..len)
                .map(|j| {
                    let q = (at + 8 + j as u64) & !7;
                    let lap = cap * (1 + (i & 1));
                    let w = u64::from(tag_for(q + lap)) << 32 | 1;
                    w.to_le_bytes()[j % 8]
                })
                .collect();
            assert!(p.try_push(&msg).unwrap(), "push {i}");
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(len), "pop {i}");
            assert_eq!(out, msg, "message {i}");
            assert_eq!(c.try_pop(&mut out).unwrap(), None, "phantom after {i}");
            at += record_size(len) as u64;
        }
    }

    #[test]
    fn garbage_tail_is_a_protocol_error() {
        let (mut p, _c) = ring(32, 16);
        assert!(p.try_push(&[1; 16]).unwrap());
        for tail in [25u64, u64::MAX - 15] {
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
        let (mut p, mut c) = ring(64, 8);
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
