//! A single-producer single-consumer ring of variable-size messages over a byte region
//! shared by two processes (or two threads), with a blocking hand-off.
//!
//! # Layout
//!
//! The region starts with a [`Header`] of [`META_SIZE`] bytes, then a *lane* of
//! [`LANE`] 64-bit record header words, then `capacity` data bytes (a power of two);
//! [`HEADER_SIZE`] is the header and the lane together. Message number `n` (counting
//! from 0) has its header word in lane slot `n % LANE`: its length in the low 32 bits,
//! a tag derived from `n` in the high 32 bits. Its payload alone is in the data, at the
//! byte counter where the previous payload ended, padded to a multiple of the record
//! alignment (64 bytes, one cache line, from a capacity of 4 KiB; 8 below), and wraps
//! around the end of the data.
//!
//! # Where the sides poll
//!
//! The consumer does not read a head index: it polls the lane slot of the message it
//! will read next (and touches the data line the payload will be in, so that both lines
//! travel in parallel). A slot holding 0 (never used) or the tag of the message `LANE`
//! before (its previous occupant) means "nothing yet"; the right tag with a length
//! within the maximum is a message; anything else is an error. Because the header words
//! are apart from the payload, no stale payload can look like a header, and a 64-byte
//! message is one line of payload plus a lane line that eight messages share, which
//! measured closest to the two-line floor of `scripts/experiments/ring-bisect.c`.
//!
//! The consumer publishes its progress as one word, `tail`: the low 40 bits count the
//! bytes it released (modulo 2^40), the high 24 the messages it read (modulo 2^24). It
//! lives on its own cache line; the producer keeps a private copy and reloads it only
//! when the data or the lane looks full (at most `LANE` messages are in flight, so that
//! a slot is reused only after its previous message was read). The producer's own
//! position is private and never published.
//!
//! The consumer publishes `tail` in batches: after a quarter of the lane or of the
//! capacity read unpublished, and whenever it finds the ring empty (before it spins or
//! sleeps, so a producer waiting for room is never left waiting on a consumer that
//! waits too). A receive that finds a message therefore stores nothing to the header
//! and issues no fence: in a round trip, the release and its wake-up check are done
//! while that side waits for the next message, off the critical path.
//!
//! # Untrusted header
//!
//! The peer can write anything anywhere in the region. Each side keeps its own
//! positions, the capacity and the maximum message in private memory, and validates
//! everything it reads from the region (the consumer's tail, a lane slot, the header at
//! attach): garbage gives [`Error::Corrupt`] naming the field and value, never a panic or an
//! access out of the region. All header fields and lane slots are atomics, so a racing
//! peer cannot cause undefined behaviour through them; the payload bytes are read only
//! after the protocol hands them over.
//!
//! # Blocking
//!
//! A side that finds the ring empty (full) spins for a while, then raises its `waiting`
//! flag with a swap (Acquire), re-checks, and sleeps on the flag with a [`Futex`]. The
//! other side, after publishing, clears the flag with a swap (Release) and, if it was
//! raised, wakes the sleeper. Both swaps are read-modify-writes of the same word, so one
//! reads the other: either the publisher sees the flag, or the sleeper synchronizes with
//! the publisher and sees the new record (or space). (Dekker's pattern with two SeqCst
//! fences would do too, but loom 0.7 does not model such fences exactly and reported
//! lost wake-ups that C++20 rules out; read-modify-writes it models exactly.) Sleeps are
//! bounded by the caller's deadline and, between slices, a liveness check of the peer's
//! pid.
//!
//! # Orderings
//!
//! Each one is needed; `tests/loom.rs` has a model that fails when it is weakened (the
//! table is in `.ci/loom-weaken.sh`):
//! - lane slot store Release (publish) / load Acquire (consumer poll): the payload;
//! - `tail` store Release (release) / load Acquire (producer refresh): reuse of the data
//!   bytes and of the lane slot;
//! - the `waiting` swaps, Release in `wake` / Acquire in `prepare_sleep`: the empty and
//!   full hand-offs (no lost wake-up);
//! - `closed` fetch_or Release (producer close) / load Acquire (consumer): no message
//!   lost on close.

use std::any::Any;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sem::Futex;
use crate::error::{Error, Result};
use crate::sync::{AtomicU32, AtomicU64, Ordering, UnsafeCell, spin_wait};

/// Bytes of the header fields at the start of a region, before the lane.
pub const META_SIZE: usize = 4096;
/// Lane slots: the most messages in flight (2 under loom, so that the models reuse
/// slots).
#[cfg(not(loom))]
pub const LANE: usize = 512;
/// Lane slots: the most messages in flight (2 under loom, so that the models reuse
/// slots).
#[cfg(loom)]
pub const LANE: usize = 2;
/// Bytes before the data in a region: the header fields and the lane.
pub const HEADER_SIZE: usize = META_SIZE + 512 * 8;
/// Bytes a message of the maximum size may need beyond its payload (its padding to the
/// record alignment, at most 63).
pub const RECORD_OVERHEAD: usize = 64;
/// Smallest capacity accepted.
pub const MIN_CAPACITY: usize = 32;
/// Largest capacity accepted (1 GiB).
pub const MAX_CAPACITY: usize = 1 << 30;
/// The header's magic number, "IAshmRB1".
pub const MAGIC: u64 = u64::from_le_bytes(*b"IAshmRB1");
/// The layout version (3: header words in a lane, payload alone in the data).
pub const VERSION: u32 = 3;

/// The consumer publishes its progress after this many messages read unpublished, or
/// `capacity >> RELEASE_SHIFT` bytes (a quarter of the capacity), or when it finds the
/// ring empty, whichever comes first. Under loom: the whole lane and capacity, so that
/// the models take the path where only finding the ring empty publishes.
#[cfg(not(loom))]
const RELEASE_MSGS: u64 = (LANE / 4) as u64;
#[cfg(loom)]
const RELEASE_MSGS: u64 = LANE as u64;
/// See [`RELEASE_MSGS`].
#[cfg(not(loom))]
const RELEASE_SHIFT: u32 = 2;
#[cfg(loom)]
const RELEASE_SHIFT: u32 = 0;

/// `closed` bit: the producer has gone.
const PRODUCER_CLOSED: u32 = 1;
/// `closed` bit: the consumer has gone.
const CONSUMER_CLOSED: u32 = 2;
/// Bits of `tail` that count bytes; the rest count messages.
const TAIL_BYTE_BITS: u32 = 40;
const TAIL_BYTES: u64 = (1 << TAIL_BYTE_BITS) - 1;
const TAIL_MSGS: u64 = (1 << (64 - TAIL_BYTE_BITS)) - 1;

/// The alignment of records in a ring of `cap` bytes: a cache line (64) from 4 KiB,
/// else 8 (tiny rings of tests and loom models).
#[inline]
pub fn record_align(cap: usize) -> usize {
    if cap >= 4096 { 64 } else { 8 }
}

/// The tag of message number `n`'s header word: `n` modulo 2^31, with the top bit set
/// so that a header word is never 0 (0 is a never-used slot).
#[inline]
fn tag_for(n: u64) -> u32 {
    (n as u32) | 0x8000_0000
}

/// The `tail` word for `bytes` released and `msgs` read.
#[inline]
fn tail_word(bytes: u64, msgs: u64) -> u64 {
    (bytes & TAIL_BYTES) | (msgs & TAIL_MSGS) << TAIL_BYTE_BITS
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
    /// The consumer's progress: bytes released (low 40 bits), messages read (high 24).
    tail: Padded<AtomicU64>,
    /// 1 while the consumer sleeps (or is about to) on an empty ring; its futex word.
    data_waiting: Padded<AtomicU32>,
    /// 1 while the producer sleeps (or is about to) on a full ring; its futex word.
    space_waiting: Padded<AtomicU32>,
    /// The cpus the two sides last ran on, for the wait policy only (see [`Wait`]).
    cpus: Padded<Cpus>,
}

/// The cpu each side last ran on, plus one (0: not known). Written by its side when it
/// changes (rarely: a migration), read by the other side before it spins. Garbage here
/// only changes whether a wait spins.
#[repr(C)]
#[derive(Debug, Default)]
struct Cpus {
    producer: AtomicU32,
    consumer: AtomicU32,
}

/// The cpu this thread runs on, plus one (0: unknown); none under loom.
#[inline(always)]
fn this_cpu() -> u32 {
    #[cfg(loom)]
    return 0;
    #[cfg(not(loom))]
    crate::sys::cpu::current_cpu_plus_one()
}

/// Stores `cpu` in `word` when it differs from `*mine` (the side's own copy).
#[inline(always)]
fn publish_cpu(word: &AtomicU32, mine: &mut u32, cpu: u32) {
    if cpu != *mine {
        *mine = cpu;
        word.store(cpu, Ordering::Relaxed);
    }
}

/// The busy polls a wait may make: none when the peer last ran on this very cpu (it
/// cannot make progress while this side spins), unless the policy spins regardless.
fn spin_budget(policy: &Wait, peer_cpu: &AtomicU32, me: u32) -> u32 {
    if policy.spin_same_cpu || me == 0 || peer_cpu.load(Ordering::Relaxed) != me {
        policy.spin
    } else {
        0
    }
}

/// Gives the cpu to another runnable thread (a peer on this cpu), outside loom.
fn yield_cpu() {
    #[cfg(not(loom))]
    let _ = nix::sched::sched_yield();
    #[cfg(loom)]
    loom::thread::yield_now();
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
const _: () = assert!(core::mem::size_of::<Header>() <= META_SIZE);
#[cfg(not(loom))]
const _: () = assert!(core::mem::align_of::<Header>() <= 128);
#[cfg(not(loom))]
const _: () = assert!(META_SIZE.is_multiple_of(128) && HEADER_SIZE.is_multiple_of(128));
#[cfg(not(loom))]
const _: () = assert!(HEADER_SIZE == META_SIZE + LANE * 8);

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

/// Under loom the header holds loom atomics, the lane loom atomics and the data loom
/// cells, which cannot be laid over raw bytes: the model owns them as ordinary values.
#[cfg(loom)]
struct LoomStorage {
    header: Header,
    lane: Box<[AtomicU64]>,
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
    /// The [`LANE`] record header words.
    lane: NonNull<AtomicU64>,
    data: NonNull<UnsafeCell<u8>>,
    /// Private copy of the capacity (power of two), validated.
    cap: usize,
    /// Private copy of the maximum message, validated.
    max: usize,
    /// Record alignment, [`record_align`] of `cap`.
    align: usize,
    futex: Arc<dyn Futex>,
    /// Keeps the memory alive.
    _owner: Arc<dyn Any + Send + Sync>,
}

// SAFETY: the pointers target memory kept alive by `_owner`; it is only accessed through
// atomics and through cells under the ring protocol, which works across threads.
unsafe impl Send for Shared {}

/// Lowers this side's own `waiting` flag (after a sleep, or when the re-check found what
/// it waited for). A swap, not a store: a read-modify-write continues the release
/// sequence of the publisher's swap in [`Shared::wake`], so that the next
/// [`Shared::prepare_sleep`] still synchronizes with it; a plain store would end that
/// sequence, and the re-check after it could miss what was published (loom's
/// `blocking_hand_off` finds that lost wake-up).
#[inline]
fn lower(waiting: &AtomicU32) {
    waiting.swap(0, Ordering::Relaxed);
}

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

    /// The lane slot of message number `n`: always in bounds.
    #[inline]
    fn slot(&self, n: u64) -> &AtomicU64 {
        let i = (n as usize) & (LANE - 1);
        // SAFETY: `lane` points to LANE live, aligned atomics for as long as `_owner`
        // lives, and `i < LANE`. Any bytes are a valid `AtomicU64`.
        unsafe { &*self.lane.as_ptr().add(i) }
    }

    /// The bytes a payload of `len` takes in the data: `len` padded to the alignment.
    #[inline]
    fn record_size(&self, len: usize) -> usize {
        // A mask, not `next_multiple_of`: the alignment is not a constant, and a division
        // here cost ~30 ns a message, on the critical path of both sides.
        (len + self.align - 1) & !(self.align - 1)
    }

    /// A copy of these pointers and private values, for the other end of a ring used
    /// within one process.
    fn twin(&self) -> Shared {
        Shared {
            header: self.header,
            lane: self.lane,
            data: self.data,
            cap: self.cap,
            max: self.max,
            align: self.align,
            futex: self.futex.clone(),
            _owner: self._owner.clone(),
        }
    }

    /// Copies `src` into the data at byte counter `at`, wrapping.
    ///
    /// # Safety
    /// The bytes `at..at + src.len()` (mod capacity) belong to the caller by the protocol.
    #[inline(always)]
    unsafe fn write_at(&self, at: u64, src: &[u8]) {
        let data = self.data();
        let off = (at as usize) & (self.cap - 1);
        if let Some(dst) = data.get(off..off + src.len()) {
            // The common case, in one piece (one copy, no split).
            // SAFETY: the caller owns these bytes.
            unsafe { crate::sync::write_cells(dst, src) };
            return;
        }
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
    #[inline(always)]
    unsafe fn read_at(&self, at: u64, dst: &mut [u8]) {
        let data = self.data();
        let off = (at as usize) & (self.cap - 1);
        if let Some(src) = data.get(off..off + dst.len()) {
            // The common case, in one piece.
            // SAFETY: the caller owns these bytes.
            unsafe { crate::sync::read_cells(dst, src) };
            return;
        }
        let first = dst.len().min(self.cap - off);
        let (a, b) = dst.split_at_mut(first);
        // SAFETY: the caller owns these bytes; `off + first <= cap`.
        unsafe { crate::sync::read_cells(a, &data[off..off + first]) };
        if !b.is_empty() {
            // SAFETY: as above; the rest starts at 0 and `dst.len() <= cap`.
            unsafe { crate::sync::read_cells(b, &data[..b.len()]) };
        }
    }

    /// Wakes the side sleeping on `waiting`, if it sleeps. The swap (Release) and the
    /// sleeper's in [`Shared::prepare_sleep`] (Acquire) are read-modify-writes of one
    /// word, so one of them reads the other: either this one reads the raised flag and
    /// wakes the sleeper, or the sleeper's reads this one and, synchronized with it,
    /// sees what was published before the call.
    #[inline]
    fn wake(&self, waiting: &AtomicU32) {
        if waiting.swap(0, Ordering::Release) != 0 {
            self.futex.wake(waiting);
        }
    }

    /// Raises `waiting` before the caller re-checks its condition and sleeps (see
    /// [`Shared::wake`]).
    fn prepare_sleep(&self, waiting: &AtomicU32) {
        waiting.swap(1, Ordering::Acquire);
    }

    /// Sleeps on `waiting` (raised by `prepare_sleep`) for at most one slice of `policy`,
    /// after checking the deadline and, when this wait already slept once (`again`) and
    /// still found nothing, the peer's liveness. (Not after every wake-up: reading
    /// `/proc` costs more than a futex round trip.)
    fn sleep(
        &self,
        waiting: &AtomicU32,
        policy: &mut Wait,
        peer_pid: u32,
        op: &'static str,
        again: bool,
    ) -> std::result::Result<(), Stop> {
        if again
            && peer_pid != 0
            && let Some(check) = policy.liveness
            && let Err(e) = check(peer_pid, op)
        {
            lower(waiting);
            return Err(Stop::Liveness(e));
        }
        let mut timeout = policy.slice;
        if policy.deadline.is_some() || policy.timeout.is_some() {
            let now = Instant::now();
            // Fixed here if no spin check fixed it yet.
            let d = *policy
                .deadline
                .get_or_insert_with(|| now + policy.timeout.unwrap_or_default());
            if now >= d {
                lower(waiting);
                return Err(timed_out(policy));
            }
            let left = d - now;
            timeout = Some(timeout.map_or(left, |s| s.min(left)));
        }
        let r = self.futex.wait(waiting, 1, timeout);
        lower(waiting);
        r.map_err(Stop::Futex)
    }

    /// While spinning: every 1024 polls checks the deadline, every 65536 the peer's
    /// liveness, so that a spinning side also ends its wait in time. A deadline not
    /// fixed yet is fixed at the first check (see [`Wait::deadline`]).
    fn spin_check(
        &self,
        spins: u32,
        policy: &mut Wait,
        pid_word: &AtomicU32,
        op: &'static str,
    ) -> std::result::Result<(), Stop> {
        if spins & 0x3ff == 0 {
            match policy.deadline {
                Some(d) if Instant::now() >= d => return Err(timed_out(policy)),
                Some(_) => {}
                None => *policy = policy.started(),
            }
        }
        if spins & 0xffff == 0
            && let Some(check) = policy.liveness
        {
            let pid = self.pid(pid_word, "peer pid")?;
            if pid != 0 {
                check(pid, op).map_err(Stop::Liveness)?;
            }
        }
        Ok(())
    }

    /// A pid read from the header, validated (0: not known yet).
    fn pid(&self, word: &AtomicU32, field: &'static str) -> std::result::Result<u32, Stop> {
        let pid = word.load(Ordering::Relaxed);
        if pid > i32::MAX as u32 {
            return Err(Stop::Corrupt(Corruption {
                field,
                value: pid.into(),
                detail: "out of range".into(),
            }));
        }
        Ok(pid)
    }
}

/// The end of a wait past its deadline.
fn timed_out(policy: &Wait) -> Stop {
    Stop::Timeout(policy.timeout.unwrap_or_default())
}

/// Why [`Producer::try_push`] or [`Producer::push`] failed (modelled on rtrb's
/// per-operation errors; a full ring is not an error of `try_push` but `Ok(false)`).
/// The shm transport turns it into a [`crate::Error`] with `From`.
#[derive(Debug)]
pub enum PushError {
    /// The message is longer than the ring's maximum.
    TooLarge {
        /// Length of the message.
        len: usize,
        /// The ring's maximum message.
        max: usize,
    },
    /// The consumer end has gone.
    Closed,
    /// The shared header holds a value no honest peer writes.
    Corrupt(Corruption),
    /// The wait passed its deadline.
    Timeout {
        /// The timeout of the [`Wait`] policy.
        after: Duration,
    },
    /// The liveness check of the [`Wait`] policy ended the wait with this error.
    Liveness(Error),
    /// The futex wait failed unexpectedly.
    Futex(Error),
}

/// Why [`Consumer::try_pop`] or [`Consumer::pop`] failed (modelled on rtrb's
/// per-operation errors; an empty ring is not an error of `try_pop` but `Ok(None)`).
/// The shm transport turns it into a [`crate::Error`] with `From`.
#[derive(Debug)]
pub enum PopError {
    /// The producer end has gone and every message it sent was received.
    Closed,
    /// A lane slot or header field holds a value no honest peer writes.
    Corrupt(Corruption),
    /// The wait passed its deadline.
    Timeout {
        /// The timeout of the [`Wait`] policy.
        after: Duration,
    },
    /// The liveness check of the [`Wait`] policy ended the wait with this error.
    Liveness(Error),
    /// The futex wait failed unexpectedly.
    Futex(Error),
}

/// A value in the shared memory that no honest peer writes, as data: which field and
/// what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The field, e.g. `"record header"`, `"tail"`, `"capacity"`.
    pub field: &'static str,
    /// The value it held.
    pub value: u64,
    /// What was expected instead, for people.
    pub detail: String,
}

impl std::fmt::Display for Corruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Corruption {
            field,
            value,
            detail,
        } = self;
        write!(f, "shm: {field} {value} ({value:#x}): {detail}")
    }
}

impl From<Corruption> for Error {
    /// [`Error::Corrupt`] with the field named `shm: FIELD`.
    fn from(c: Corruption) -> Self {
        Error::Corrupt {
            field: c.field,
            value: c.value,
            detail: format!("shm: {}", c.detail),
        }
    }
}

/// What ends a wait of either end, before it is a [`PushError`] or a [`PopError`].
#[derive(Debug)]
enum Stop {
    Corrupt(Corruption),
    Timeout(Duration),
    Liveness(Error),
    Futex(Error),
}

impl From<Stop> for PushError {
    #[cold]
    fn from(s: Stop) -> Self {
        match s {
            Stop::Corrupt(m) => PushError::Corrupt(m),
            Stop::Timeout(after) => PushError::Timeout { after },
            Stop::Liveness(e) => PushError::Liveness(e),
            Stop::Futex(e) => PushError::Futex(e),
        }
    }
}

impl From<Stop> for PopError {
    #[cold]
    fn from(s: Stop) -> Self {
        match s {
            Stop::Corrupt(m) => PopError::Corrupt(m),
            Stop::Timeout(after) => PopError::Timeout { after },
            Stop::Liveness(e) => PopError::Liveness(e),
            Stop::Futex(e) => PopError::Futex(e),
        }
    }
}

/// The operation named in a send's [`crate::Error`].
const SEND: &str = "shm: send";
/// The operation named in a receive's [`crate::Error`].
const RECV: &str = "shm: recv";

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::TooLarge { len, max } => {
                write!(f, "{SEND}: message of {len} bytes over the maximum {max}")
            }
            PushError::Closed => write!(f, "{SEND}: the consumer has gone"),
            PushError::Corrupt(c) => c.fmt(f),
            PushError::Timeout { after } => write!(f, "{SEND}: timed out after {after:?}"),
            PushError::Liveness(e) | PushError::Futex(e) => e.fmt(f),
        }
    }
}

impl std::fmt::Display for PopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PopError::Closed => write!(f, "{RECV}: the producer has gone"),
            PopError::Corrupt(c) => c.fmt(f),
            PopError::Timeout { after } => write!(f, "{RECV}: timed out after {after:?}"),
            PopError::Liveness(e) | PopError::Futex(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PushError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PushError::Liveness(e) | PushError::Futex(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for PopError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PopError::Liveness(e) | PopError::Futex(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PushError> for Error {
    /// The error the shm transport reports: [`Error::TooLarge`], [`Error::Closed`] and
    /// [`Error::Timeout`] naming `shm: send`, [`Error::Corrupt`] for a corrupt header,
    /// and the liveness check's or the futex's error unchanged.
    #[cold]
    fn from(e: PushError) -> Self {
        match e {
            PushError::TooLarge { len, max } => Error::TooLarge { len, max },
            PushError::Closed => Error::Closed { op: SEND.into() },
            PushError::Corrupt(c) => c.into(),
            PushError::Timeout { after } => Error::Timeout {
                op: SEND.into(),
                after,
            },
            PushError::Liveness(e) | PushError::Futex(e) => e,
        }
    }
}

impl From<PopError> for Error {
    /// As for [`PushError`], naming `shm: recv`.
    #[cold]
    fn from(e: PopError) -> Self {
        match e {
            PopError::Closed => Error::Closed { op: RECV.into() },
            PopError::Corrupt(c) => c.into(),
            PopError::Timeout { after } => Error::Timeout {
                op: RECV.into(),
                after,
            },
            PopError::Liveness(e) | PopError::Futex(e) => e,
        }
    }
}

/// How a blocking [`Producer::push`] or [`Consumer::pop`] waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wait {
    /// Busy polls before yielding or sleeping (0: none), made only while the peer last
    /// ran on another cpu (a peer on this cpu cannot progress while this side spins)
    /// unless `spin_same_cpu`.
    pub spin: u32,
    /// Spin even when the peer last ran on this cpu (`shm-spinning`).
    pub spin_same_cpu: bool,
    /// `sched_yield` calls after the spins and before sleeping: a peer that is runnable
    /// on this cpu runs at once, and its answer needs no futex wake-up.
    pub yields: u32,
    /// Give up with [`Error::Timeout`] at this instant. `None` with a `timeout`: the
    /// deadline is `timeout` after the wait's first deadline check (after 1024 polls, or
    /// before its first sleep), so that an operation that need not wait, or waits only
    /// briefly, reads no clock; a spinning wait may thus last up to 1024 polls (a few
    /// microseconds) longer than `timeout`. `None` without: never.
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
fn check_sizes(cap: u64, max: u64) -> std::result::Result<(usize, usize), Corruption> {
    if !cap.is_power_of_two() || cap < MIN_CAPACITY as u64 || cap > MAX_CAPACITY as u64 {
        return Err(Corruption {
            field: "capacity",
            value: cap,
            detail: format!("not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}"),
        });
    }
    if max == 0 || max > cap {
        return Err(Corruption {
            field: "maximum message",
            value: max,
            detail: format!("not in 1..={cap} for capacity {cap}"),
        });
    }
    Ok((cap as usize, max as usize))
}

impl Ring {
    /// The capacity that holds messages of up to `max` bytes: at least `min`, a power of
    /// two.
    pub fn capacity_for(max: usize, min: usize) -> usize {
        max.next_power_of_two()
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
        // No slot holds a message yet.
        for n in 0..LANE as u64 {
            shared.slot(n).store(0, Ordering::Relaxed);
        }
        m.magic.store(MAGIC, Ordering::Relaxed);
        Ok(Ring { shared })
    }

    /// Attaches to a ring made by [`Ring::create`] in `region`, as its producer (`pid`),
    /// validating the header.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the bad field and its value: magic, version, capacity,
    /// maximum, or a producer already attached; [`Error::Protocol`] for a region too
    /// small or misaligned.
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
            return Err(Corruption {
                field: "magic",
                value: magic,
                detail: format!("expected {MAGIC:#018x}"),
            }
            .into());
        }
        let version = m.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(Corruption {
                field: "version",
                value: version.into(),
                detail: format!("expected {VERSION}"),
            }
            .into());
        }
        let (cap, max) = check_sizes(
            m.capacity.load(Ordering::Relaxed),
            m.max_message.load(Ordering::Relaxed),
        )?;
        if region.len() < HEADER_SIZE + cap {
            return Err(Corruption {
                field: "capacity",
                value: cap as u64,
                detail: format!("does not fit the region of {} bytes", region.len()),
            }
            .into());
        }
        if let Err(old) =
            m.producer_pid
                .compare_exchange(0, producer_pid, Ordering::Relaxed, Ordering::Relaxed)
        {
            return Err(Corruption {
                field: "producer pid",
                value: old.into(),
                detail: "a producer is already attached".into(),
            }
            .into());
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
        let (lane, data) = unsafe { (base.add(META_SIZE), base.add(HEADER_SIZE)) };
        Shared {
            header: base.cast::<Header>(),
            // 128-aligned (base and META_SIZE are), so aligned for the atomics.
            lane: lane.cast::<AtomicU64>(),
            data: data.cast::<UnsafeCell<u8>>(),
            cap,
            max,
            align: record_align(cap),
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
                lane: (0..LANE).map(|_| AtomicU64::new(0)).collect(),
                data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
            });
            let header = NonNull::from(&storage.header);
            let lane = NonNull::from(&storage.lane[0]);
            let data = NonNull::from(&storage.data[0]);
            let shared = Shared {
                header,
                lane,
                data,
                cap,
                max,
                align: record_align(cap),
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
    /// `field`: `"record"` (the lane slot of the first message), `"tail"`,
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
            seq: 0,
            tail_cache: 0,
            seq_cache: 0,
            cpu: 0,
        }
    }

    /// The consumer end (for the process that created the ring).
    pub fn into_consumer(self) -> Consumer {
        Consumer::new(self.shared)
    }

    /// Both ends, for a ring used between threads of this process.
    pub fn split(self) -> (Producer, Consumer) {
        let consumer = Consumer::new(self.shared.twin());
        (self.into_producer(), consumer)
    }
}

/// The hostile writes of the `poke` test hooks; `"record"` is the lane slot of message
/// number `n`.
fn poke(shared: &Shared, n: u64, field: &str, value: u64) {
    let h = shared.header();
    let m = &h.meta.0;
    match field {
        "record" => shared.slot(n).store(value, Ordering::Relaxed),
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

/// Loads `tail` from the header, validated against the producer's private `head` (bytes
/// published) and `seq` (messages published): the consumer may be at most `capacity`
/// bytes and [`LANE`] messages behind, and not ahead. Returns the full byte and message
/// counters it stands for.
fn load_tail(shared: &Shared, head: u64, seq: u64) -> std::result::Result<(u64, u64), Stop> {
    let word = shared.header().tail.0.load(Ordering::Acquire);
    let bytes_behind = head.wrapping_sub(word) & TAIL_BYTES;
    let msgs_behind = seq.wrapping_sub(word >> TAIL_BYTE_BITS) & TAIL_MSGS;
    if bytes_behind > shared.cap as u64 || msgs_behind > LANE as u64 {
        return Err(Stop::Corrupt(Corruption {
            field: "tail",
            value: word,
            detail: format!(
                "{} bytes, {} messages: out of range of head {head} bytes, {seq} messages \
                 (capacity {}, lane {LANE})",
                word & TAIL_BYTES,
                word >> TAIL_BYTE_BITS,
                shared.cap
            ),
        }));
    }
    Ok((
        head.wrapping_sub(bytes_behind),
        seq.wrapping_sub(msgs_behind),
    ))
}

/// The sending end of a ring.
pub struct Producer {
    shared: Shared,
    /// Private head: bytes published (a multiple of the record alignment).
    head: u64,
    /// Private count of messages published: the next message's number.
    seq: u64,
    /// Bytes released, by the last tail read from the header.
    tail_cache: u64,
    /// Messages read, by the last tail read from the header.
    seq_cache: u64,
    /// The cpu last published in the header's `cpus` (plus one).
    cpu: u32,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("head", &self.head)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Producer {
    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.max
    }

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests);
    /// `"record"` is the lane slot of this end's next message. See [`Ring::poke`].
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, self.seq, field, value)
    }

    /// Reloads `tail` from the header, validated (see [`load_tail`]).
    fn refresh_tail(&mut self) -> std::result::Result<(), Stop> {
        (self.tail_cache, self.seq_cache) = load_tail(&self.shared, self.head, self.seq)?;
        Ok(())
    }

    /// Whether a record of `rec` bytes fits by the cached tail: room in the data, and a
    /// lane slot whose previous message was read.
    #[inline]
    fn fits(&self, rec: usize) -> bool {
        let used = self.head.wrapping_sub(self.tail_cache) as usize;
        self.shared.cap - used >= rec && self.seq.wrapping_sub(self.seq_cache) < LANE as u64
    }

    #[inline(always)]
    fn consumer_closed(&self) -> std::result::Result<(), PushError> {
        if self.shared.header().meta.0.closed.load(Ordering::Relaxed) & CONSUMER_CLOSED != 0 {
            return Err(PushError::Closed);
        }
        Ok(())
    }

    /// Sends `msg` if there is room now; `Ok(false)` when the ring is full.
    ///
    /// # Errors
    /// [`PushError::TooLarge`] over the maximum, [`PushError::Closed`] when the consumer
    /// is gone, [`PushError::Corrupt`] on a corrupt header.
    // Always inlined: its call and the packing of its result cost ~25 instructions, all
    // on the critical path of a round trip (docs/shm-ring.md, "the short path").
    #[inline(always)]
    pub fn try_push(&mut self, msg: &[u8]) -> std::result::Result<bool, PushError> {
        if msg.len() > self.shared.max {
            return Err(PushError::TooLarge {
                len: msg.len(),
                max: self.shared.max,
            });
        }
        self.consumer_closed()?;
        let rec = self.shared.record_size(msg.len());
        if !self.fits(rec) {
            self.refresh_tail()?;
            if !self.fits(rec) {
                return Ok(false);
            }
        }
        // SAFETY: `rec` bytes from `head` are free: the consumer released them (tail,
        // Acquire) and reads only the payload of a message whose slot it acquired; no
        // slot names these bytes until the store below.
        unsafe { self.shared.write_at(self.head, msg) };
        let word = u64::from(tag_for(self.seq)) << 32 | msg.len() as u64;
        // Release: publishes the payload. The slot's previous message was read (`fits`).
        self.shared.slot(self.seq).store(word, Ordering::Release);
        self.head = self.head.wrapping_add(rec as u64);
        self.seq = self.seq.wrapping_add(1);
        self.shared.wake(&self.shared.header().data_waiting.0);
        // The cpu this side runs on, for the consumer's wait policy.
        publish_cpu(
            &self.shared.header().cpus.0.producer,
            &mut self.cpu,
            this_cpu(),
        );
        Ok(true)
    }

    /// Sends `msg`, waiting for room as `policy` says.
    ///
    /// # Errors
    /// As [`Producer::try_push`], plus [`PushError::Timeout`] past the deadline,
    /// [`PushError::Liveness`] and [`PushError::Futex`].
    #[inline]
    pub fn push(&mut self, msg: &[u8], policy: &Wait) -> std::result::Result<(), PushError> {
        if self.try_push(msg)? {
            return Ok(());
        }
        self.push_wait(msg, policy)
    }

    /// The rest of [`Producer::push`] once the ring was found full: out of line, so that
    /// the path of a send that need not wait stays short (every instruction on it is on
    /// the critical path of a round trip).
    #[inline(never)]
    fn push_wait(&mut self, msg: &[u8], policy: &Wait) -> std::result::Result<(), PushError> {
        // The deadline is fixed at the first spin check or before the first sleep, so
        // that a wait that ends within 1024 polls reads no clock.
        let mut policy = *policy;
        let rec = self.shared.record_size(msg.len());
        let me = this_cpu();
        let cpus = &self.shared.header().cpus.0;
        publish_cpu(&cpus.producer, &mut self.cpu, me);
        let budget = spin_budget(&policy, &cpus.consumer, me);
        let (mut spins, mut yields) = (0, 0);
        let mut slept = false;
        loop {
            if spins < budget {
                spins += 1;
                let pid = &self.shared.header().meta.0.consumer_pid;
                self.shared
                    .spin_check(spins, &mut policy, pid, "shm: send")?;
                spin_wait(spins);
            } else if yields < policy.yields {
                yields += 1;
                yield_cpu();
            } else {
                let h = self.shared.header();
                let waiting = &h.space_waiting.0;
                self.shared.prepare_sleep(waiting);
                (self.tail_cache, self.seq_cache) = load_tail(&self.shared, self.head, self.seq)?;
                if !self.fits(rec) {
                    if let Err(e) = self.consumer_closed() {
                        lower(waiting);
                        return Err(e);
                    }
                    let pid = self.shared.pid(&h.meta.0.consumer_pid, "consumer pid")?;
                    self.shared
                        .sleep(waiting, &mut policy, pid, "shm: send", slept)?;
                    slept = true;
                } else {
                    lower(waiting);
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
        // Release: the consumer's Acquire load of the flag then sees every message
        // published before it.
        h.meta.0.closed.fetch_or(PRODUCER_CLOSED, Ordering::Release);
        self.shared.wake(&h.data_waiting.0);
    }
}

/// The receiving end of a ring.
pub struct Consumer {
    shared: Shared,
    /// Private tail: bytes released; where the next payload starts.
    tail: u64,
    /// Private count of messages read: the next message's number.
    seq: u64,
    /// `tail` and `seq` as last published in the header's `tail` word.
    released: (u64, u64),
    /// The cpu last published in the header's `cpus` (plus one).
    cpu: u32,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tail", &self.tail)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Consumer {
    fn new(shared: Shared) -> Consumer {
        Consumer {
            shared,
            tail: 0,
            seq: 0,
            released: (0, 0),
            cpu: 0,
        }
    }

    /// Largest message in bytes.
    pub fn max_message(&self) -> usize {
        self.shared.max
    }

    /// Writes arbitrary bytes into the header, as a hostile peer would (tests);
    /// `"record"` is the lane slot of the next message this end will read. See
    /// [`Ring::poke`].
    pub fn poke(&self, field: &str, value: u64) {
        poke(&self.shared, self.seq, field, value)
    }

    /// Writes arbitrary bytes (at most the capacity) into the data at byte counter `at`
    /// (wrapping), as a hostile peer would (tests and fuzzing).
    ///
    /// # Safety
    /// No other thread or process may read or write the ring's data during the call:
    /// the producer end (wherever it is) must be idle, and no other call on this end may
    /// run (this one takes `&self`). The ring's own reads then see these bytes as
    /// whatever a hostile peer wrote, which they must survive; a concurrent access would
    /// be a data race.
    pub unsafe fn poke_data(&self, at: u64, bytes: &[u8]) {
        let n = bytes.len().min(self.shared.cap);
        // SAFETY: the caller guarantees that nobody else accesses the data meanwhile;
        // in bounds (wrapping, at most `cap` bytes).
        unsafe { self.shared.write_at(at, &bytes[..n]) };
    }

    /// [`Consumer::poke_data`] for a ring whose two ends are both here (from
    /// [`Ring::split`]): holding both exclusively, the caller runs no other operation on
    /// the ring meanwhile, so the write races with nothing and the call is safe.
    ///
    /// # Panics
    /// If `producer` is not the other end of this consumer's ring.
    pub fn poke_data_split(&mut self, producer: &mut Producer, at: u64, bytes: &[u8]) {
        assert!(
            self.shared.header == producer.shared.header,
            "poke_data_split: the producer is not this ring's"
        );
        // SAFETY: both ends of this ring are borrowed exclusively for the call, so no
        // other operation on the ring runs in this process; its ends are not elsewhere
        // (they are both here).
        unsafe { self.poke_data(at, bytes) };
    }

    /// The lane slot of the next message, validated: `None` when nothing is there yet
    /// (0, or the tag of the slot's previous message), else the payload length.
    #[inline]
    fn next_record(&self) -> std::result::Result<Option<usize>, PopError> {
        let word = self.shared.slot(self.seq).load(Ordering::Acquire);
        let tag = (word >> 32) as u32;
        let len = word as u32 as usize;
        if tag == tag_for(self.seq) && len <= self.shared.max {
            return Ok(Some(len));
        }
        if word == 0 || tag == tag_for(self.seq.wrapping_sub(LANE as u64)) {
            return Ok(None);
        }
        Err(bad_record(word, self.seq, self.shared.max))
    }

    /// Receives one message into `out` if there is one now (its old content replaced).
    ///
    /// # Errors
    /// [`PopError::Corrupt`] on a corrupt lane slot (the value named).
    // Always inlined, as `Producer::try_push`.
    #[inline(always)]
    pub fn try_pop(&mut self, out: &mut Vec<u8>) -> std::result::Result<Option<usize>, PopError> {
        let Some(len) = self.next_record()? else {
            // Empty: publish what was read before the caller waits or gives up.
            self.release_pending();
            return Ok(None);
        };
        if out.len() != len {
            out.resize(len, 0);
        }
        // SAFETY: the slot of message `seq` was published (Release) after its `len`
        // payload bytes at `tail`, and acquired above; the producer does not write them
        // again until `tail` moves past them. `len <= max <= cap`.
        unsafe { self.shared.read_at(self.tail, out) };
        self.tail = self.tail.wrapping_add(self.shared.record_size(len) as u64);
        self.seq = self.seq.wrapping_add(1);
        if self.seq.wrapping_sub(self.released.1) >= RELEASE_MSGS
            || self.tail.wrapping_sub(self.released.0) >= (self.shared.cap >> RELEASE_SHIFT) as u64
        {
            self.release();
        }
        Ok(Some(len))
    }

    /// Publishes this end's progress (`tail`, Release: every read before it is done)
    /// and wakes a producer waiting for room. Called in batches and whenever the ring is
    /// found empty (see the module documentation).
    #[inline(never)]
    fn release(&mut self) {
        self.released = (self.tail, self.seq);
        self.shared
            .header()
            .tail
            .0
            .store(tail_word(self.tail, self.seq), Ordering::Release);
        self.shared.wake(&self.shared.header().space_waiting.0);
    }

    /// [`Consumer::release`] if anything read is unpublished: the ring was found empty.
    #[inline]
    fn release_pending(&mut self) {
        if self.released != (self.tail, self.seq) {
            self.release();
        }
    }

    /// Receives one message into `out`, waiting as `policy` says.
    ///
    /// # Errors
    /// As [`Consumer::try_pop`], plus [`PopError::Closed`] once the producer has gone
    /// and every message it sent was received, [`PopError::Timeout`] past the deadline,
    /// [`PopError::Liveness`] and [`PopError::Futex`].
    #[inline]
    pub fn pop(
        &mut self,
        out: &mut Vec<u8>,
        policy: &Wait,
    ) -> std::result::Result<usize, PopError> {
        if let Some(n) = self.try_pop(out)? {
            return Ok(n);
        }
        self.pop_wait(out, policy)
    }

    /// The rest of [`Consumer::pop`] once the ring was found empty, out of line.
    #[inline(never)]
    fn pop_wait(
        &mut self,
        out: &mut Vec<u8>,
        policy: &Wait,
    ) -> std::result::Result<usize, PopError> {
        // As in `Producer::push_wait`: the deadline is fixed late.
        let mut policy = *policy;
        let me = this_cpu();
        let cpus = &self.shared.header().cpus.0;
        publish_cpu(&cpus.consumer, &mut self.cpu, me);
        let budget = spin_budget(&policy, &cpus.producer, me);
        let (mut spins, mut yields) = (0, 0);
        let mut slept = false;
        loop {
            if spins < budget {
                spins += 1;
                // Also touch the data line the next payload starts in, so that it
                // travels in parallel with the slot's line instead of after it.
                let at = (self.tail as usize) & (self.shared.cap - 1);
                crate::sync::prefetch(&self.shared.data()[at]);
                let pid = &self.shared.header().meta.0.producer_pid;
                self.shared
                    .spin_check(spins, &mut policy, pid, "shm: recv")?;
                spin_wait(spins);
            } else if yields < policy.yields {
                yields += 1;
                yield_cpu();
            } else {
                let h = self.shared.header();
                let waiting = &h.data_waiting.0;
                self.shared.prepare_sleep(waiting);
                if self.next_record()?.is_some() {
                    lower(waiting);
                } else if h.meta.0.closed.load(Ordering::Acquire) & PRODUCER_CLOSED != 0 {
                    // Acquire: pairs with the Release of the producer's close, so that
                    // every message published before it is visible to `try_pop`.
                    lower(waiting);
                    return match self.try_pop(out)? {
                        Some(n) => Ok(n),
                        None => Err(PopError::Closed),
                    };
                } else {
                    let pid = self.shared.pid(&h.meta.0.producer_pid, "producer pid")?;
                    self.shared
                        .sleep(waiting, &mut policy, pid, "shm: recv", slept)?;
                    slept = true;
                }
            }
            if let Some(n) = self.try_pop(out)? {
                return Ok(n);
            }
        }
    }
}

/// The error for a lane slot that is neither "nothing yet" nor a valid header for
/// message number `n`.
#[cold]
fn bad_record(word: u64, n: u64, max: usize) -> PopError {
    let len = word as u32;
    let tag = (word >> 32) as u32;
    PopError::Corrupt(Corruption {
        field: "record header",
        value: word,
        detail: format!(
            "of message {n}: length {len} (maximum {max}), tag {tag:#010x} (expected \
             {:#010x}, or {:#010x} or 0 for nothing yet)",
            tag_for(n),
            tag_for(n.wrapping_sub(LANE as u64))
        ),
    })
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let h = self.shared.header();
        // Relaxed: no data travels with this flag; the Release swap of `wake` carries it
        // to a producer whose Acquire swap in `prepare_sleep` reads that swap.
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
        // Many laps of a 64-byte ring with payloads of 0..=20 bytes (8-aligned records):
        // every offset of a payload is split by the end at some point.
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
        // Two 16-byte payloads fill the 32 bytes.
        let (mut p, mut c) = ring(32, 16);
        assert!(p.try_push(&[1; 16]).unwrap());
        assert!(p.try_push(&[3; 9]).unwrap());
        assert!(!p.try_push(&[2]).unwrap());
        let mut out = Vec::new();
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(16));
        assert!(p.try_push(&[2]).unwrap());
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(9));
        assert_eq!(out, [3; 9]);
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(1));
        assert_eq!(out, [2]);
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
    }

    /// At most LANE messages are in flight, even when they take no data bytes: the
    /// slot of message n is reused only after message n - LANE was read.
    #[test]
    fn full_lane_refuses_then_accepts() {
        let (mut p, mut c) = ring(64, 8);
        for i in 0..LANE {
            assert!(p.try_push(&[]).unwrap(), "empty message {i}");
        }
        assert!(!p.try_push(&[]).unwrap());
        let mut out = Vec::new();
        // The consumer publishes its progress in batches of RELEASE_MSGS messages.
        for _ in 1..RELEASE_MSGS {
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        }
        assert!(!p.try_push(b"x").unwrap(), "room before the release");
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        assert!(p.try_push(b"x").unwrap());
        for _ in RELEASE_MSGS as usize..LANE {
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(0));
        }
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(1));
        assert_eq!(out, b"x");
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
    }

    /// From 4 KiB, payloads start on cache lines: 1..=64 bytes take one line, 65 two.
    #[test]
    fn line_aligned_records_across_wrap_around() {
        let (mut p, mut c) = ring(4096, 200);
        let mut out = Vec::new();
        let mut head = 0u64;
        for i in 0..1000u64 {
            let len = (i * 37 % 201) as usize;
            let msg: Vec<u8> = (0..len).map(|j| (i as usize * 7 + j) as u8).collect();
            assert!(p.try_push(&msg).unwrap(), "push {i}");
            head += len.next_multiple_of(64) as u64;
            assert_eq!(p.head, head, "head after {i}");
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(len), "pop {i}");
            assert_eq!(out, msg, "message {i}");
        }
        // Empty: what was read is released.
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
        // 64 one-line records fill the ring; the 65th waits for a pop.
        for i in 0..64 {
            assert!(p.try_push(&[9; 64]).unwrap(), "record {i}");
        }
        assert!(!p.try_push(&[1]).unwrap());
        // Released in batches of a quarter of the capacity (16 records here).
        for i in 0..15 {
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(64), "record {i}");
        }
        assert!(!p.try_push(&[1]).unwrap(), "room before the release");
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(64));
        assert!(p.try_push(&[1]).unwrap());
    }

    /// A consumer that finds the ring empty publishes what it read, however little, so
    /// that a producer waiting for room is not left waiting on a consumer that waits too.
    #[test]
    fn finding_the_ring_empty_releases() {
        // 4 KiB: 64-byte records, a release every 1 KiB or 128 messages.
        let (mut p, mut c) = ring(4096, 64);
        let mut out = Vec::new();
        let tail = |c: &Consumer| c.shared.header().tail.0.load(Ordering::Relaxed);
        assert!(p.try_push(&[1; 24]).unwrap());
        assert!(p.try_push(&[2; 64]).unwrap());
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(24));
        assert_eq!(tail(&c), 0, "released at once, not in a batch");
        assert_eq!(c.try_pop(&mut out).unwrap(), Some(64));
        assert_eq!(tail(&c), 0, "released at once, not in a batch");
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
        assert_eq!(tail(&c), tail_word(128, 2));
        // Nothing new read: nothing stored again.
        c.shared.header().tail.0.store(7, Ordering::Relaxed);
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
        assert_eq!(tail(&c), 7);
    }

    #[test]
    fn oversize_is_refused_with_the_limit() {
        let (mut p, _c) = ring(64, 10);
        match p.try_push(&[0; 11]) {
            Err(PushError::TooLarge { len: 11, max: 10 }) => {}
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
        assert!(Ring::heap(32, 33, f.clone()).is_err());
        assert!(Ring::heap(32, 0, f.clone()).is_err());
        assert!(Ring::heap(32, 32, f).is_ok());
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
                Err(PopError::Corrupt(c)) => {
                    assert_eq!((c.field, c.value), ("record header", word))
                }
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

    /// A slot still holding its previous message's header (one lane lap back) means
    /// "nothing yet", never a record, whatever its length; a slot holding a header from
    /// a lap ahead is an error. Payload bytes are never read as headers. (Loosen the tag
    /// check of `next_record` and the phantom checks fail.)
    #[test]
    fn stale_slot_is_never_a_record() {
        let (mut p, mut c) = ring(64, 40);
        let mut out = Vec::new();
        for i in 0..(3 * LANE as u64 + 5) {
            let len = [40usize, 8, 24, 0, 16, 33][(i % 6) as usize];
            // Every word of the payload is a valid header for the next message.
            let w = (u64::from(tag_for(i + 1)) << 32 | 1).to_le_bytes();
            let msg: Vec<u8> = (0..len).map(|j| w[j % 8]).collect();
            assert!(p.try_push(&msg).unwrap(), "push {i}");
            assert_eq!(c.try_pop(&mut out).unwrap(), Some(len), "pop {i}");
            assert_eq!(out, msg, "message {i}");
            assert_eq!(c.try_pop(&mut out).unwrap(), None, "phantom after {i}");
        }
        let n = c.seq;
        assert!(n >= LANE as u64);
        c.poke("record", u64::from(tag_for(n - LANE as u64)) << 32 | 7);
        assert_eq!(c.try_pop(&mut out).unwrap(), None);
        let ahead = u64::from(tag_for(n + LANE as u64)) << 32 | 7;
        c.poke("record", ahead);
        match c.try_pop(&mut out) {
            Err(PopError::Corrupt(c)) => assert_eq!((c.field, c.value), ("record header", ahead)),
            r => panic!("expected Protocol, got {r:?}"),
        }
    }

    #[test]
    fn garbage_tail_is_a_protocol_error() {
        let (mut p, _c) = ring(32, 16);
        // Full: the next push has to read the tail.
        assert!(p.try_push(&[1; 16]).unwrap());
        assert!(p.try_push(&[1; 16]).unwrap());
        // Bytes ahead of the head; messages ahead of those sent; bytes too far behind.
        for tail in [40u64, 5 << 40 | 32, (2 << 40) - 64] {
            p.poke("tail", tail);
            match p.try_push(&[1; 4]) {
                Err(PushError::Corrupt(c)) => assert_eq!((c.field, c.value), ("tail", tail)),
                r => panic!("tail {tail}: expected Protocol, got {r:?}"),
            }
        }
        // Positive control: a sane tail (one message of 16 bytes read) makes room.
        p.poke("tail", 1 << 40 | 16);
        assert!(p.try_push(&[1; 4]).unwrap());
    }

    #[test]
    fn garbage_header_at_attach_is_a_corrupt_error_naming_field_and_value() {
        let f: Arc<dyn Futex> = Arc::new(CondvarFutex::new());
        let region: Arc<dyn Region> = Arc::new(HeapRegion::new(HEADER_SIZE + 64).unwrap());
        let ring = Ring::create(region.clone(), 64, 20, 1, f.clone()).unwrap();
        for (field, value) in [
            ("magic", 7u64),
            ("version", 9),
            ("capacity", 48),
            ("capacity", 128),
            ("capacity", 1 << 62),
            ("max", 65),
            ("max", 0),
        ] {
            let ring = Ring::create(region.clone(), 64, 20, 1, f.clone()).unwrap();
            ring.poke(field, value);
            let named = if field == "max" {
                "maximum message"
            } else {
                field
            };
            match Ring::attach(region.clone(), 2, f.clone()) {
                Err(Error::Corrupt {
                    field: got,
                    value: v,
                    ..
                }) => assert_eq!((got, v), (named, value), "{field}={value}"),
                r => panic!("{field}={value}: expected Corrupt, got {r:?}"),
            }
        }
        drop(ring);
        let _ok = Ring::create(region.clone(), 64, 20, 1, f.clone()).unwrap();
        let _p = Ring::attach(region.clone(), 2, f.clone()).unwrap();
        assert!(matches!(
            Ring::attach(region, 3, f),
            Err(Error::Corrupt {
                field: "producer pid",
                value: 2,
                ..
            })
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
            Err(PopError::Closed)
        ));
    }

    #[test]
    fn send_to_closed_consumer_fails() {
        let (mut p, c) = ring(64, 20);
        drop(c);
        assert!(matches!(p.try_push(b"x"), Err(PushError::Closed)));
    }

    #[test]
    fn timeout_when_nothing_comes() {
        let (_p, mut c) = ring(64, 20);
        let mut out = Vec::new();
        let w = Wait::default().with_timeout(Some(Duration::from_millis(5)));
        assert!(matches!(c.pop(&mut out, &w), Err(PopError::Timeout { .. })));
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
            Err(PopError::Liveness(Error::Closed { op })) => assert!(op.contains("77"), "{op}"),
            r => panic!("expected Closed, got {r:?}"),
        }
        c.poke("producer_pid", u64::from(u32::MAX));
        assert!(matches!(c.pop(&mut out, &w), Err(PopError::Corrupt(_))));
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
            Err(PopError::Closed)
        ));
    }
}
