//! `signal`: messages carried by realtime signals, 8 bytes per signal.
//!
//! # Wire format
//!
//! A message of `n` bytes is `max(1, ceil(n / 8))` queued realtime signals, its *chunks*.
//! Each carries 8 payload bytes in its whole `sival_ptr` (the receiver's signalfd gives it
//! as the 64-bit `ssi_ptr`; first byte lowest, unused bytes zero), and what frames them
//! in its `si_code`:
//!
//! ```text
//! si_code bits 31-24  0xda: the mark of this transport (a negative code, see below)
//!          bits 23-22  kind: 01 start (the message's first chunk), 10 data
//!          bits 21-16  sequence number, +1 per chunk (mod 64) across messages
//!          bits 15-0   start: the message's length; data: zero
//! ```
//!
//! A 64-byte message is 8 signals, as many as `raw-signal`, its floor, sends. Why the
//! code can carry them: `rt_tgsigqueueinfo` lets a process queue a signal for another
//! with any negative `si_code` but SI_TKILL (a non-negative one would pose as the
//! kernel), and the signalfd gives the code back as the sender set it. The mark keeps
//! the code far below the ones the kernel and libc name (SI_QUEUE is -1, SI_ASYNCNL
//! -60), so `siginfo` keeps the layout of SI_QUEUE, with `si_pid`, `si_uid` and the
//! value. `sival_ptr` is a pointer-sized word: on a 32-bit target a chunk does not fit,
//! and [`Signal`] refuses to open or attach ([`Error::Unsupported`]) rather than cut
//! chunks short.
//!
//! [`decode_chunk`] and [`Reassembler`] are pure functions of their input, so that they
//! can be fuzzed.
//!
//! # Delivery, and why signals are sent to one thread
//!
//! The receiver is a dedicated thread that blocks the signal (in itself only) and reads
//! it from a `signalfd`. A *process*-directed signal (`sigqueue`) goes to any thread of
//! the process that does not block it, and in a multi-threaded program (a test binary,
//! a user's program) other threads do not: the default action of a realtime signal
//! would then kill the whole process. So the sender uses `rt_tgsigqueueinfo`, the
//! thread-directed form of `sigqueue` (same `sigval`, same permission check): the signal is queued for the receiving thread alone, which blocks
//! it, and no other thread ever sees it. The peer is told the receiver's pid and thread
//! id in [`PeerEnd::info`].
//!
//! The receiving thread runs SCHED_BATCH: each queued chunk wakes it, but it does not
//! preempt a sender on its cpu, so it reads a message's chunks together once the sender
//! waits, instead of one switch per chunk.
//!
//! Each chunk also carries the sender's cpu + 1 in `si_errno` (0 when unknown), a hint
//! for the receiving thread only: when a message came from another cpu, the thread
//! yields to the caller it has just woken rather than first going back to wait (see
//! `yields_to_caller` in the source). The hint is never trusted for anything else.
//!
//! # Who may send, and the sender check
//!
//! The kernel lets a process signal another only with the same real or effective uid,
//! or CAP_KILL. On top of that, the receiver locks onto the `si_pid`/`si_uid` of the
//! first chunk it gets and refuses every later chunk from another pid or uid (reported
//! as [`Error::Corrupt`] naming the pid, the chunk dropped, the message in progress
//! kept). It also refuses signals whose `si_code` lacks the transport's mark (a
//! `sigqueue` from elsewhere has SI_QUEUE). Note that for a negative `si_code` the
//! kernel takes `si_pid` and `si_uid` from the sender (both `sigqueue` and
//! `rt_tgsigqueueinfo` let the caller fill them): the check catches a stray sender, not
//! a hostile one that already has the permission to signal the receiver (and could kill
//! it anyway).
//!
//! # Limits
//!
//! Every queued signal counts against RLIMIT_SIGPENDING of the receiver's user. The
//! largest message is [`MAX_MESSAGE`] bytes, less if that limit is too small to hold a
//! whole message: a message of `n` bytes needs `max(1, ceil(n / 8))` queued signals (512
//! for 4096 bytes, so a limit of at least 512 allows the whole maximum). When the queue is
//! full the sender waits (EAGAIN, retried with a growing sleep up to 1 ms) until its
//! timeout; a message whose first chunk is queued is accepted, and the rest goes out
//! before the next message (or by `flush`, or on drop). A receiver cannot tell that the
//! sender died: it times out.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::stream::deadline;
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::sys::signal as sys;

const NAME: &str = "signal";

/// The largest message when RLIMIT_SIGPENDING allows it.
pub const MAX_MESSAGE: usize = 4096;

/// Largest length a start chunk can carry (the 16 low bits of its `si_code`).
pub const LEN_LIMIT: u64 = 0xffff;

/// Payload bytes in one chunk: its whole `sival_ptr`.
pub const CHUNK_BYTES: usize = 8;

/// Bits 31-24 of every chunk's `si_code`: negative, and far from the codes the kernel
/// and libc define (see the [module docs](self)).
pub const CODE_MARK: u32 = 0xda;

const KIND_START: u32 = 0b01;
const KIND_DATA: u32 = 0b10;

/// Signals queued but not yet read that the receiving thread keeps in memory (as
/// messages) before it stops reading and lets the kernel queue fill.
const BACKLOG: usize = 256;

/// The realtime signal used: SIGRTMIN + 8 (glibc keeps the first two for itself).
pub fn signal_number() -> i32 {
    sys::sigrtmin() + 8
}

/// One chunk of a message: what one queued signal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Starts a message of `len` bytes, with its first 8 (fewer if it is shorter).
    Start {
        /// Sequence number (6 bits).
        seq: u8,
        /// Message length (16 bits).
        len: u64,
        /// The message's first bytes, zero past its end.
        bytes: [u8; CHUNK_BYTES],
    },
    /// Eight bytes of payload (fewer are used in a message's last chunk).
    Data {
        /// Sequence number (6 bits).
        seq: u8,
        /// The bytes.
        bytes: [u8; CHUNK_BYTES],
    },
}

impl Chunk {
    /// The chunk's sequence number.
    pub fn seq(&self) -> u8 {
        match *self {
            Chunk::Start { seq, .. } | Chunk::Data { seq, .. } => seq,
        }
    }

    /// The chunk's payload bytes.
    pub fn bytes(&self) -> &[u8; CHUNK_BYTES] {
        match self {
            Chunk::Start { bytes, .. } | Chunk::Data { bytes, .. } => bytes,
        }
    }
}

/// Encodes a chunk as the `si_code` and `sival_ptr` of one signal. Sequence numbers
/// are taken mod 64 and lengths mod 2^16; [`encode_message`] never passes larger ones.
pub fn encode_chunk(c: Chunk) -> (i32, u64) {
    let (kind, low) = match c {
        Chunk::Start { len, .. } => (KIND_START, (len & LEN_LIMIT) as u32),
        Chunk::Data { .. } => (KIND_DATA, 0),
    };
    let code = (CODE_MARK << 24) | (kind << 22) | (u32::from(c.seq() & 0x3f) << 16) | low;
    // The mark's top bit makes the code negative: the bits are the i32's.
    (code as i32, u64::from_le_bytes(*c.bytes()))
}

/// Decodes a signal's `si_code` and `sival_ptr` into a chunk.
///
/// # Errors
/// [`Error::Protocol`] naming the code when it lacks the mark, its kind bits are not a
/// chunk kind, or a data chunk has low bits set.
pub fn decode_chunk(code: i32, value: u64) -> Result<Chunk> {
    let bits = code as u32;
    if bits >> 24 != CODE_MARK {
        return Err(Error::Protocol(format!(
            "{NAME}: si_code {code} ({bits:#010x}) is not a chunk: bits 31-24 are not \
             {CODE_MARK:#04x}"
        )));
    }
    let seq = ((bits >> 16) & 0x3f) as u8;
    let low = bits & 0xffff;
    let bytes = value.to_le_bytes();
    match (bits >> 22) & 0b11 {
        KIND_START => Ok(Chunk::Start {
            seq,
            len: low.into(),
            bytes,
        }),
        KIND_DATA if low == 0 => Ok(Chunk::Data { seq, bytes }),
        KIND_DATA => Err(Error::Protocol(format!(
            "{NAME}: data chunk with si_code {bits:#010x}: bits 15-0 are {low:#06x}, not 0"
        ))),
        k => Err(Error::Protocol(format!(
            "{NAME}: chunk with si_code {bits:#010x} has kind {k:#04b}, not start (01) or \
             data (10)"
        ))),
    }
}

/// The chunks of `msg` (`si_code`, `sival_ptr`), numbered from `*seq` (advanced past
/// them).
///
/// # Errors
/// [`Error::TooLarge`] over `max` (which is itself capped at [`LEN_LIMIT`]).
pub fn encode_message(msg: &[u8], max: usize, seq: &mut u8) -> Result<Vec<(i32, u64)>> {
    let chunks = message_chunks(msg, max, *seq)?;
    *seq = seq_after(*seq, msg.len());
    Ok(chunks.collect())
}

/// How many chunks carry a message of `len` bytes: one per 8 bytes, at least one.
fn chunk_count(len: usize) -> usize {
    len.div_ceil(CHUNK_BYTES).max(1)
}

/// The sequence number after the chunks of a message of `len` bytes numbered from `seq`.
fn seq_after(seq: u8, len: usize) -> u8 {
    ((seq as usize + chunk_count(len)) & 0x3f) as u8
}

/// Up to 8 bytes, zero-padded.
fn word_of(part: &[u8]) -> [u8; CHUNK_BYTES] {
    let mut bytes = [0u8; CHUNK_BYTES];
    bytes[..part.len()].copy_from_slice(part);
    bytes
}

/// The chunks of `msg`, numbered from `seq`, made one at a time (the sender's path,
/// which does not allocate).
///
/// # Errors
/// As [`encode_message`].
fn message_chunks(
    msg: &[u8],
    max: usize,
    seq: u8,
) -> Result<impl Iterator<Item = (i32, u64)> + '_> {
    let max = max.min(usize::try_from(LEN_LIMIT).unwrap_or(usize::MAX));
    if msg.len() > max {
        return Err(Error::TooLarge {
            len: msg.len(),
            max,
        });
    }
    let next = move |i: usize| ((seq as usize + i) & 0x3f) as u8;
    let (first, rest) = msg.split_at(msg.len().min(CHUNK_BYTES));
    let start = std::iter::once(encode_chunk(Chunk::Start {
        seq: next(0),
        // At most LEN_LIMIT (checked above): a usize that fits in 16 bits.
        len: msg.len() as u64,
        bytes: word_of(first),
    }));
    let data = rest.chunks(CHUNK_BYTES).enumerate().map(move |(i, part)| {
        encode_chunk(Chunk::Data {
            seq: next(i + 1),
            bytes: word_of(part),
        })
    });
    Ok(start.chain(data))
}

/// Rebuilds messages from chunks, checking sequence numbers and the sender. Pure: feed
/// it what `signalfd` gave, in order.
#[derive(Debug, Clone)]
pub struct Reassembler {
    max: usize,
    sender: Option<(u32, u32)>,
    next_seq: Option<u8>,
    /// The message in progress and its announced length.
    msg: Option<(Vec<u8>, usize)>,
    /// A whole message whose start chunk's `push` returned an error (see `take_ready`).
    ready: Option<Vec<u8>>,
    /// A buffer given back with [`Reassembler::recycle`], for the next message.
    spare: Option<Vec<u8>>,
}

impl Reassembler {
    /// A reassembler for messages up to `max` bytes.
    pub fn new(max: usize) -> Self {
        Reassembler {
            max,
            sender: None,
            next_seq: None,
            msg: None,
            ready: None,
            spare: None,
        }
    }

    /// Gives back a buffer (a message this reassembler returned, once used) to hold a
    /// later message, so that a steady stream of messages does not allocate. Its
    /// content is dropped. One spare buffer is kept; more are freed.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.is_none() {
            self.spare = Some(buf);
        }
    }

    /// Whether a recycled buffer waits to be used.
    pub fn has_spare(&self) -> bool {
        self.spare.is_some()
    }

    /// A message completed by a start chunk whose [`Reassembler::push`] returned an
    /// error (it came after a gap, or cut a message short, and held its whole message,
    /// at most 8 bytes): ask after every `push` that fails.
    pub fn take_ready(&mut self) -> Option<Vec<u8>> {
        self.ready.take()
    }

    /// The sender this reassembler locked onto (pid, uid), after the first chunk.
    pub fn sender(&self) -> Option<(u32, u32)> {
        self.sender
    }

    /// Takes one chunk: `code` is `si_code`, `value` the `sival_ptr` word (`ssi_ptr`),
    /// `pid`/`uid` the sender's. Returns a message when this chunk completes one.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the pid for a chunk from another sender than the first
    /// (dropped; the message in progress is kept); [`Error::Protocol`] for a signal
    /// whose code lacks the mark (dropped likewise), an invalid chunk, a
    /// gap in the sequence, data without a start or a start that cuts a message short
    /// (the message in progress is dropped; a start begins the next one), and
    /// [`Error::TooLarge`] for a start announcing more than the maximum.
    pub fn push(&mut self, code: i32, value: u64, pid: u32, uid: u32) -> Result<Option<Vec<u8>>> {
        self.admit(code, pid, uid)?;
        let chunk = match decode_chunk(code, value) {
            Ok(c) => c,
            Err(e) => {
                self.msg = None;
                self.next_seq = None;
                return Err(e);
            }
        };
        let expected = self.next_seq;
        self.next_seq = Some((chunk.seq() + 1) & 0x3f);
        if let Some(want) = expected
            && chunk.seq() != want
        {
            let cut = self.msg.take();
            if let Chunk::Start { len, bytes, .. } = chunk {
                self.begin(len)?;
                self.append(&bytes);
                self.ready = self.complete()?;
            }
            return Err(Error::Protocol(format!(
                "{NAME}: chunk {} where {want} was expected: chunks were lost{}",
                chunk.seq(),
                if cut.is_some() {
                    "; the message in progress is dropped"
                } else {
                    ""
                }
            )));
        }
        match chunk {
            Chunk::Start { len, bytes, .. } => {
                let cut = self.msg.take();
                self.begin(len)?;
                self.append(&bytes);
                if let Some((got, want)) = cut {
                    // The new message is kept: `take_ready` gives it if this chunk
                    // holds all of it.
                    self.ready = self.complete()?;
                    return Err(Error::Protocol(format!(
                        "{NAME}: a new message began after {} of {want} bytes: the message \
                         in progress is dropped",
                        got.len()
                    )));
                }
                self.complete()
            }
            Chunk::Data { bytes, .. } => {
                if self.msg.is_none() {
                    return Err(Error::Protocol(format!(
                        "{NAME}: data chunk {} without a start",
                        chunk.seq()
                    )));
                }
                self.append(&bytes);
                self.complete()
            }
        }
    }

    /// The checks before a chunk is decoded: the code's mark, then the sender (locked
    /// onto at the first marked chunk). A refused signal changes nothing.
    fn admit(&mut self, code: i32, pid: u32, uid: u32) -> Result<()> {
        if (code as u32) >> 24 != CODE_MARK {
            return Err(Error::Protocol(format!(
                "{NAME}: signal from pid {pid} uid {uid} with si_code {code}, not a chunk \
                 of this transport: dropped"
            )));
        }
        match self.sender {
            None => self.sender = Some((pid, uid)),
            Some((p, u)) if (p, u) != (pid, uid) => {
                return Err(Error::Corrupt {
                    field: "signal: sender pid",
                    value: pid.into(),
                    detail: format!(
                        "a chunk from pid {pid} uid {uid}, but this link's sender is pid {p} \
                         uid {u}: dropped"
                    ),
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Appends what the message in progress still lacks of `bytes`.
    fn append(&mut self, bytes: &[u8; CHUNK_BYTES]) {
        if let Some((buf, len)) = self.msg.as_mut() {
            let take = (*len - buf.len()).min(CHUNK_BYTES);
            buf.extend_from_slice(&bytes[..take]);
        }
    }

    fn begin(&mut self, len: u64) -> Result<()> {
        let len = match usize::try_from(len) {
            Ok(len) if len <= self.max => len,
            _ => {
                return Err(Error::TooLarge {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    max: self.max,
                });
            }
        };
        let mut buf = self.spare.take().unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        self.msg = Some((buf, len));
        Ok(())
    }

    fn complete(&mut self) -> Result<Option<Vec<u8>>> {
        match &self.msg {
            Some((buf, len)) if buf.len() == *len => Ok(self.msg.take().map(|(b, _)| b)),
            _ => Ok(None),
        }
    }
}

/// The largest message for a receiver whose RLIMIT_SIGPENDING is `pending`: a whole
/// message must fit in the queue.
pub fn max_for_sigpending(pending: u64) -> usize {
    let room = pending.saturating_mul(CHUNK_BYTES as u64);
    MAX_MESSAGE.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// The largest message in this process (from its RLIMIT_SIGPENDING soft limit).
pub fn max_message() -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    match getrlimit(Resource::RLIMIT_SIGPENDING) {
        Ok((soft, _)) => max_for_sigpending(soft),
        Err(_) => max_for_sigpending(0),
    }
}

/// The receiving end: a dedicated thread reads the signals and hands over messages.
pub struct SignalReceiver {
    rx: Option<mpsc::Receiver<Result<Vec<u8>>>>,
    /// Buffers given back to the receiving thread for later messages (see
    /// [`Reassembler::recycle`]): a steady stream of messages does not allocate.
    free: Option<mpsc::SyncSender<Vec<u8>>>,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    timeout: Option<Duration>,
    nonblocking: bool,
    tid: i32,
}

impl std::fmt::Debug for SignalReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalReceiver")
            .field("tid", &self.tid)
            .finish()
    }
}

impl Drop for SignalReceiver {
    fn drop(&mut self) {
        // Receiver first (a thread blocked on a full channel wakes), then the stop pipe
        // (a thread in poll wakes), then wait for it.
        self.rx = None;
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blocks `sig` in the calling thread and returns a signalfd for it.
fn block_and_signalfd(sig: i32) -> Result<OwnedFd> {
    block_and_signalfd_set(&[sig])
}

/// Blocks the signals `sigs` in the calling thread only (its mask; no other thread's,
/// no disposition) and returns a nonblocking, close-on-exec signalfd for them.
pub(crate) fn block_and_signalfd_set(sigs: &[i32]) -> Result<OwnedFd> {
    let mut set = sys::SignalSet::empty();
    for &sig in sigs {
        set.add(sig)
            .map_err(|_| Error::invalid("not a signal number", sig))?;
    }
    sys::block_in_thread(&set).map_err(|e| Error::sys(format!("{NAME}: pthread_sigmask"), e))?;
    sys::signalfd(&set).map_err(|e| Error::sys(format!("{NAME}: signalfd"), e))
}

/// Size of one `struct signalfd_siginfo`.
pub(crate) const SIGINFO: usize = 128;

/// The native-endian `u32` at `off` of a `struct signalfd_siginfo`.
pub(crate) fn field_u32(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The native-endian `u64` at `off` of a `struct signalfd_siginfo`.
fn field_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_ne_bytes(v)
}

/// Whether the receiving thread, having woken the caller with a message, gives it the
/// cpu at once (`sched_yield`) instead of first going back to wait: when the sender's
/// cpu (`sender`, + 1, from the chunk's `si_errno`) is another than this thread's
/// (`mine`, + 1). Then this cpu has nothing else to run, and the caller, which runs
/// here too, starts its reply a few µs sooner (cross cpu on the development VM: 1.64x of
/// the floor without, 1.25x with). When they share a cpu the yield would only add a
/// switch (a yield every time took same cpu from 1.33x to 1.75x), and when either is
/// unknown (0) there is none.
/// A hint, never trusted for anything else: a wrong one costs a switch.
fn yields_to_caller(sender: u32, mine: u32) -> bool {
    sender != 0 && mine != 0 && sender != mine
}

/// The receiving thread: reads signals until `stop` is closed or the channel is gone.
fn receive_loop(
    sfd: OwnedFd,
    stop: OwnedFd,
    max: usize,
    tx: mpsc::SyncSender<Result<Vec<u8>>>,
    free: mpsc::Receiver<Vec<u8>>,
) {
    let mut re = Reassembler::new(max);
    let mut buf = vec![0u8; SIGINFO * 64];
    loop {
        let mut fds = [
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => {
                let _ = tx.send(Err(Error::sys(format!("{NAME}: poll"), e)));
                return;
            }
        }
        if fds[1].any().unwrap_or(true) {
            return;
        }
        match nix::unistd::read(sfd.as_fd(), &mut buf) {
            Ok(n) => {
                // The sender's cpu + 1 with the last message handed over, if any.
                let mut handed = None;
                for info in buf[..n].chunks_exact(SIGINFO) {
                    // Offsets in struct signalfd_siginfo: errno 4, code 8, pid 12, uid 16,
                    // ptr 48.
                    let code = field_u32(info, 8) as i32;
                    let pid = field_u32(info, 12);
                    let uid = field_u32(info, 16);
                    let value = field_u64(info, 48);
                    if !re.has_spare()
                        && let Ok(b) = free.try_recv()
                    {
                        re.recycle(b);
                    }
                    let Some(out) = re.push(code, value, pid, uid).transpose() else {
                        continue;
                    };
                    if tx.send(out).is_err() {
                        return;
                    }
                    handed = Some(field_u32(info, 4));
                    if let Some(m) = re.take_ready()
                        && tx.send(Ok(m)).is_err()
                    {
                        return;
                    }
                }
                if let Some(sender) = handed
                    && yields_to_caller(sender, crate::sys::cpu::current_cpu_plus_one())
                {
                    std::thread::yield_now();
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                let _ = tx.send(Err(Error::sys(format!("{NAME}: read signalfd"), e)));
                return;
            }
        }
    }
}

impl SignalReceiver {
    /// Starts the receiving thread for messages up to `max` bytes on signal `sig`.
    fn start(sig: i32, max: usize) -> Result<Self> {
        let (stop_r, stop_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2 (stop)", e))?;
        let (tx, rx) = mpsc::sync_channel(BACKLOG);
        let (free_tx, free_rx) = mpsc::sync_channel(BACKLOG);
        let (ready_tx, ready_rx) = mpsc::channel::<Result<i32>>();
        let thread = std::thread::Builder::new()
            .name("ipc-audit-signal-rx".into())
            .spawn(move || {
                let sfd = match block_and_signalfd(sig) {
                    Ok(fd) => fd,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Woken for every chunk, this thread does not preempt a sender on its
                // cpu: it reads the chunks together once the sender waits (best effort:
                // the policy only changes when it runs).
                let _ = crate::sys::cpu::batch_this_thread();
                // The signal is blocked here before anyone learns this thread's id.
                let _ = ready_tx.send(Ok(nix::unistd::gettid().as_raw()));
                receive_loop(sfd, stop_r, max, tx, free_rx);
            })
            .map_err(|e| Error::io(format!("{NAME}: spawn the receiving thread"), e))?;
        let tid = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(tid)) => tid,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(Error::Timeout {
                    op: format!("{NAME}: start the receiving thread"),
                    after: Duration::from_secs(10),
                });
            }
        };
        Ok(SignalReceiver {
            rx: Some(rx),
            free: Some(free_tx),
            stop: Some(stop_w),
            thread: Some(thread),
            timeout: None,
            nonblocking: false,
            tid,
        })
    }
}

impl Endpoint for SignalReceiver {
    fn send(&mut self, _msg: &[u8]) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{NAME}: this end only receives"
        )))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        // Named only on the error paths: a receive that succeeds does not allocate.
        let op = || format!("{NAME}: recv");
        let rx = self.rx.as_ref().ok_or_else(|| Error::Closed { op: op() })?;
        let got = match self.timeout {
            _ if self.nonblocking => rx.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => Error::WouldBlock { op: op() },
                mpsc::TryRecvError::Disconnected => Error::Closed { op: op() },
            }),
            None => rx.recv().map_err(|_| Error::Closed { op: op() }),
            Some(t) => rx.recv_timeout(t).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout => Error::Timeout { op: op(), after: t },
                mpsc::RecvTimeoutError::Disconnected => Error::Closed { op: op() },
            }),
        }?;
        // The message's buffer becomes the caller's, and the caller's old one goes back
        // to the receiving thread for a later message: no copy, no allocation.
        let mut old = std::mem::replace(buf, got?);
        old.clear();
        if let Some(free) = &self.free {
            // A full channel (the thread is behind) frees the buffer instead.
            let _ = free.try_send(old);
        }
        Ok(buf.len())
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    /// Nonblocking: a receive with no whole message waiting gives WouldBlock at once.
    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        self.nonblocking = nonblocking;
        Ok(())
    }
}

/// The sending end.
#[derive(Debug)]
pub struct SignalSender {
    pid: i32,
    tid: i32,
    sig: i32,
    max: usize,
    seq: u8,
    timeout: Option<Duration>,
    nonblocking: bool,
    // Chunks of an accepted message that the full queue did not take before the
    // deadline: queued before the next message (see `Endpoint::flush`).
    pending: std::collections::VecDeque<(i32, u64)>,
}

impl SignalSender {
    /// The deadline of an operation starting now: now itself in nonblocking mode.
    fn deadline(&self) -> Option<Instant> {
        if self.nonblocking {
            Some(Instant::now())
        } else {
            deadline(self.timeout)
        }
    }

    /// Queues the pending chunks, by `dl`; on EAGAIN waits with a growing sleep.
    fn queue_pending(&mut self, dl: Option<Instant>, op: &dyn Fn() -> String) -> Result<()> {
        let started = Instant::now();
        let mut step = 0u32;
        while let Some(&(code, value)) = self.pending.front() {
            match self.queue(code, value) {
                Ok(()) => {
                    self.pending.pop_front();
                    step = 0;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    // The receiver's pending-signal queue is full: wait for it to drain,
                    // within the deadline.
                    if let Some(d) = dl
                        && Instant::now() >= d
                    {
                        return Err(Error::Timeout {
                            op: format!("{} ({} chunks waiting)", op(), self.pending.len()),
                            after: started.elapsed(),
                        });
                    }
                    let pause =
                        Duration::from_micros(10u64 << step.min(7)).min(Duration::from_millis(1));
                    std::thread::sleep(pause);
                    step += 1;
                }
                Err(Errno::ESRCH) => return Err(Error::Closed { op: op() }),
                Err(e) => return Err(Error::sys(op(), e)),
            }
        }
        Ok(())
    }

    /// Queues one chunk for the receiving thread, its `si_code`, this thread's cpu + 1
    /// in `si_errno` (the receiver's hint, see [`yields_to_caller`]) and the whole word
    /// in `sival_ptr` (EOVERFLOW, never a cut chunk, where a pointer is narrower than 64
    /// bits).
    fn queue(&self, code: i32, value: u64) -> std::result::Result<(), Errno> {
        let word = usize::try_from(value).map_err(|_| Errno::EOVERFLOW)?;
        let cpu = crate::sys::cpu::current_cpu_plus_one() as i32;
        sys::queue_coded(self.pid, self.tid, self.sig, code, cpu, word)
    }
}

/// The raw calls of the audit's signal checks (`rt_sigqueueinfo`, `rt_tgsigqueueinfo`,
/// `tgkill`), re-exported from [`crate::sys::signal`].
#[cfg_attr(loom, allow(unused_imports))] // its user, the audit, is not built under loom
pub(crate) use crate::sys::signal::{queue_info, tgkill};

impl Drop for SignalSender {
    fn drop(&mut self) {
        // The rest of an accepted message: a bounded last try.
        if !self.pending.is_empty() {
            let op = || format!("{NAME}: queue the rest of a message");
            let _ = self.queue_pending(Some(Instant::now() + Duration::from_secs(1)), &op);
        }
    }
}

impl Endpoint for SignalSender {
    /// Queues the message's chunks. While the receiver's queue is full the sender waits
    /// (EAGAIN, retried with a growing sleep up to 1 ms) until its timeout: if not one
    /// chunk went out, the message is refused ([`Error::Timeout`]); once its first chunk
    /// is queued it is accepted, and the rest is queued before the next message, by
    /// [`Endpoint::flush`], or on drop.
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let (pid, tid) = (self.pid, self.tid);
        let op = move || format!("{NAME}: queue a signal for pid {pid} thread {tid}");
        let dl = self.deadline();
        // The rest of an earlier message first; this one is refused whole meanwhile.
        let nb = self.nonblocking;
        self.queue_pending(dl, &op)
            .map_err(|e| e.would_block_if(nb))?;
        let chunks = message_chunks(msg, self.max, self.seq)?;
        let total = chunk_count(msg.len());
        self.pending.extend(chunks);
        match self.queue_pending(dl, &op) {
            Ok(()) => {}
            // Not one chunk out: refused, nothing to undo.
            Err(e) if self.pending.len() == total => {
                self.pending.clear();
                return Err(e.would_block_if(self.nonblocking));
            }
            // Accepted: the rest stays pending.
            Err(Error::Timeout { .. }) => {}
            Err(e) => {
                // The receiver is gone or refuses: what went out is a cut message, which
                // a receiver drops when the next message starts.
                let queued = total - self.pending.len();
                self.pending.clear();
                self.seq = ((usize::from(self.seq) + queued) & 0x3f) as u8;
                return Err(e);
            }
        }
        self.seq = seq_after(self.seq, msg.len());
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let (pid, tid) = (self.pid, self.tid);
        let op = move || format!("{NAME}: queue a signal for pid {pid} thread {tid}");
        let dl = self.deadline();
        let nb = self.nonblocking;
        self.queue_pending(dl, &op)
            .map_err(|e| e.would_block_if(nb))
    }

    fn recv(&mut self, _buf: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Unsupported(format!("{NAME}: this end only sends")))
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }

    /// Nonblocking: a send that finds the receiver's signal queue full gives WouldBlock
    /// at once if not one chunk went out (the message is refused whole), and is accepted
    /// otherwise, its other chunks queued before the next message or by `flush`.
    fn set_nonblocking(&mut self, nonblocking: bool) -> Result<()> {
        self.nonblocking = nonblocking;
        Ok(())
    }
}

/// A chunk is a whole 64-bit word in `sival_ptr`, which is pointer-sized.
///
/// # Errors
/// [`Error::Unsupported`] where a pointer is narrower than 64 bits.
fn word_is_64_bits() -> Result<()> {
    if usize::BITS < u64::BITS {
        return Err(Error::Unsupported(format!(
            "{NAME}: a chunk is 64 bits, sival_ptr here {}",
            usize::BITS
        )));
    }
    Ok(())
}

/// Realtime signals (see the [module docs](self)): the local end's dedicated thread
/// receives, the peer sends with `rt_tgsigqueueinfo`. One way. FIFO (realtime signals
/// of one number are queued in order), nothing coalesced; the largest message is
/// [`max_message`] (4096 bytes, or less under a small RLIMIT_SIGPENDING).
#[derive(Debug, Clone, Copy, Default)]
pub struct Signal;

impl Signal {
    /// Opens a link and returns the receiver as its concrete type and the peer's part
    /// (`"<max> <signal> <pid> <tid>"`).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a maximum over [`max_message`]; [`Error::Unsupported`] on
    /// a 32-bit target; the system error.
    pub fn open_concrete(&self, cfg: &Config) -> Result<(SignalReceiver, PeerEnd)> {
        word_is_64_bits()?;
        let limit = max_message();
        let max = match cfg.max_message {
            None => limit,
            Some(m) if m <= limit => m,
            Some(m) => {
                return Err(Error::invalid(
                    format!(
                        "{NAME}: max_message must be at most {limit} bytes \
                         (RLIMIT_SIGPENDING and the protocol's {MAX_MESSAGE})"
                    ),
                    m,
                ));
            }
        };
        let sig = signal_number();
        let rx = SignalReceiver::start(sig, max)?;
        let info = format!("{max} {sig} {} {}", std::process::id(), rx.tid);
        Ok((
            rx,
            PeerEnd {
                fds: Vec::new(),
                info,
            },
        ))
    }

    /// Rebuilds the sender as its concrete type.
    ///
    /// # Errors
    /// [`Error::Protocol`] on malformed info; [`Error::Unsupported`] on a 32-bit target;
    /// [`Error::Closed`] if the receiving thread is gone.
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<SignalSender> {
        word_is_64_bits()?;
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info));
        let v: Vec<&str> = peer.info.split(' ').collect();
        let [max, sig, pid, tid] = v[..] else {
            return Err(bad());
        };
        let max: usize = max.parse().map_err(|_| bad())?;
        let sig: i32 = sig.parse().map_err(|_| bad())?;
        let pid: i32 = pid.parse().map_err(|_| bad())?;
        let tid: i32 = tid.parse().map_err(|_| bad())?;
        if !(sys::sigrtmin()..=sys::sigrtmax()).contains(&sig) {
            return Err(Error::invalid(
                format!(
                    "{NAME}: signal must be a realtime signal ({}..={})",
                    sys::sigrtmin(),
                    sys::sigrtmax()
                ),
                sig,
            ));
        }
        if pid <= 0 || tid <= 0 {
            return Err(bad());
        }
        Ok(SignalSender {
            pid,
            tid,
            sig,
            max,
            seq: 0,
            timeout: None,
            nonblocking: false,
            pending: std::collections::VecDeque::new(),
        })
    }
}

impl Transport for Signal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: max_message(),
            duplex: false,
            // The kernel lets the same uid (or CAP_KILL) signal a process.
            access: Access::SameUid,
            rendezvous: Rendezvous::Named,
            platforms: vec!["Linux".into()],
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (rx, peer) = self.open_concrete(cfg)?;
        Ok(Link {
            local: Box::new(rx),
            peer,
            guard: None,
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.attach_concrete(peer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Option<Duration> = Some(Duration::from_secs(5));

    fn pair() -> (SignalReceiver, SignalSender) {
        let (mut rx, peer) = Signal.open_concrete(&Config::default()).unwrap();
        rx.set_timeout(T).unwrap();
        let mut tx = Signal.attach_concrete(peer).unwrap();
        tx.set_timeout(T).unwrap();
        (rx, tx)
    }

    #[test]
    fn chunks_match_encode_message_and_recycled_buffers_are_reused() {
        for (len, start) in [(0usize, 0u8), (1, 63), (5, 60), (600, 7)] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut seq = start;
            let v = encode_message(&msg, MAX_MESSAGE, &mut seq).unwrap();
            assert_eq!(v.len(), chunk_count(len));
            let it: Vec<_> = message_chunks(&msg, MAX_MESSAGE, start).unwrap().collect();
            assert_eq!(it, v);
            assert_eq!(seq, seq_after(start, len));
            assert_eq!(seq as usize, (start as usize + v.len()) % 64);
        }
        let mut re = Reassembler::new(100);
        let mut seq = 0;
        let mut feed = |re: &mut Reassembler, msg: &[u8]| {
            let mut out = None;
            for (code, value) in encode_message(msg, 100, &mut seq).unwrap() {
                out = re.push(code, value, 1, 2).unwrap();
            }
            out.unwrap()
        };
        let first = feed(&mut re, b"hello");
        let ptr = first.as_ptr();
        re.recycle(first);
        assert!(re.has_spare());
        let second = feed(&mut re, b"world, again");
        assert_eq!(second, b"world, again");
        assert_eq!(
            second.as_ptr(),
            ptr,
            "the recycled buffer holds the next message"
        );
        assert!(!re.has_spare());
    }

    #[test]
    fn recv_times_out_and_dropped_receiver_is_closed_for_the_sender() {
        let (mut rx, mut tx) = pair();
        rx.set_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut buf = Vec::new();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));
        drop(rx);
        assert!(matches!(tx.send(b"x"), Err(Error::Closed { .. })));
    }

    #[test]
    fn other_threads_do_not_see_the_signal() {
        // This test thread does not block the signal; if a chunk were delivered to it
        // (or to any other thread of the test binary) the default action would kill the
        // whole process. Many links at once, many chunks each.
        let mut pairs: Vec<_> = (0..4).map(|_| pair()).collect();
        for (i, (_, tx)) in pairs.iter_mut().enumerate() {
            tx.send(&vec![i as u8; 1000]).unwrap();
        }
        let mut buf = Vec::new();
        for (i, (rx, _)) in pairs.iter_mut().enumerate() {
            rx.recv(&mut buf).unwrap();
            assert_eq!(buf, vec![i as u8; 1000]);
        }
    }

    #[test]
    fn max_follows_rlimit_sigpending() {
        assert_eq!(max_for_sigpending(0), 0);
        assert_eq!(max_for_sigpending(1), 8);
        assert_eq!(max_for_sigpending(101), 808);
        // 4096 bytes are 512 chunks.
        assert_eq!(max_for_sigpending(511), 4088);
        assert_eq!(max_for_sigpending(512), MAX_MESSAGE);
        assert_eq!(chunk_count(MAX_MESSAGE), 512);
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(8), 1);
        assert_eq!(chunk_count(9), 2);
        assert_eq!(max_for_sigpending(1 << 20), MAX_MESSAGE);
    }

    #[test]
    fn reassembler_checks_sender_code_and_sequence() {
        let mut seq = 0;
        let chunks = encode_message(b"hello, world, again", 100, &mut seq).unwrap();
        assert_eq!(chunks.len(), 3);
        let push =
            |re: &mut Reassembler, (code, value): (i32, u64), pid| re.push(code, value, pid, 20);
        let mut re = Reassembler::new(100);
        // SI_QUEUE (a plain sigqueue), or no mark: refused, and the sender is not locked
        // onto the stray one.
        assert!(re.push(sys::SI_QUEUE, chunks[0].1, 99, 20).is_err());
        assert!(
            re.push(chunks[0].0 & 0x00ff_ffff, chunks[0].1, 99, 20)
                .is_err()
        );
        assert_eq!(re.sender(), None);
        assert!(push(&mut re, chunks[0], 10).unwrap().is_none());
        // A stray signal mid-message: refused, the message goes on.
        assert!(re.push(sys::SI_QUEUE, chunks[1].1, 10, 20).is_err());
        // Another sender mid-message: refused, the message goes on.
        let e = push(&mut re, chunks[1], 11).unwrap_err();
        assert!(e.to_string().contains("pid 11"), "{e}");
        assert!(push(&mut re, chunks[1], 10).unwrap().is_none());
        assert_eq!(
            push(&mut re, chunks[2], 10).unwrap().unwrap(),
            b"hello, world, again"
        );
        assert_eq!(re.sender(), Some((10, 20)));
        // A lost chunk is a gap in the sequence.
        let more = encode_message(b"abcdefghijklmnopq", 100, &mut seq).unwrap();
        push(&mut re, more[0], 10).unwrap();
        assert!(push(&mut re, more[2], 10).is_err());
        assert!(re.take_ready().is_none());
        // A short message whose start comes after a gap, or cuts one short: reported,
        // and still delivered by take_ready.
        let _lost = encode_message(b"lost", 100, &mut seq).unwrap();
        let short = encode_message(b"hi", 100, &mut seq).unwrap();
        assert!(push(&mut re, short[0], 10).is_err());
        assert_eq!(re.take_ready().unwrap(), b"hi");
        let long = encode_message(b"abcdefghijklmnopq", 100, &mut seq).unwrap();
        push(&mut re, long[0], 10).unwrap();
        // An empty message where the long one's second chunk was due.
        let cut = encode_chunk(Chunk::Start {
            seq: decode_chunk(long[1].0, long[1].1).unwrap().seq(),
            len: 0,
            bytes: [0; CHUNK_BYTES],
        });
        assert!(push(&mut re, cut, 10).is_err());
        assert_eq!(re.take_ready().unwrap(), b"");
        // Over the maximum.
        let mut s = 0;
        let big = encode_message(&[0u8; 200], 1000, &mut s).unwrap();
        assert!(matches!(
            push(&mut Reassembler::new(100), big[0], 1),
            Err(Error::TooLarge { len: 200, max: 100 })
        ));
        // The largest length a start chunk carries: refused, not cut to fewer bits.
        let huge = encode_chunk(Chunk::Start {
            seq: 0,
            len: LEN_LIMIT,
            bytes: [0; CHUNK_BYTES],
        });
        assert!(matches!(
            push(&mut Reassembler::new(100), huge, 1),
            Err(Error::TooLarge { max: 100, .. })
        ));
    }

    #[test]
    fn the_senders_cpu_rides_in_si_errno_and_decides_the_yield() {
        // The kernel passes si_errno through: queued to this (test) thread and read back.
        let sig = signal_number();
        let sfd = block_and_signalfd(sig).unwrap();
        let (pid, tid) = (std::process::id() as i32, nix::unistd::gettid().as_raw());
        let (code, value) = encode_chunk(Chunk::Start {
            seq: 0,
            len: 8,
            bytes: *b"whole 64",
        });
        sys::queue_coded(pid, tid, sig, code, 7, value as usize).unwrap();
        let mut buf = [0u8; SIGINFO];
        assert_eq!(nix::unistd::read(&sfd, &mut buf).unwrap(), SIGINFO);
        assert_eq!(field_u32(&buf, 4), 7, "si_errno");
        assert_eq!(field_u32(&buf, 8) as i32, code, "si_code");
        assert_eq!(field_u64(&buf, 48), value, "sival_ptr");
        // Yield only to a caller whose message came from another, known cpu.
        assert!(yields_to_caller(1, 2));
        assert!(!yields_to_caller(2, 2));
        assert!(!yields_to_caller(0, 2));
        assert!(!yields_to_caller(1, 0));
    }

    #[test]
    fn a_64_byte_message_is_8_chunks_of_whole_words() {
        let msg: Vec<u8> = (1..=64).collect();
        let mut seq = 62;
        let v = encode_message(&msg, MAX_MESSAGE, &mut seq).unwrap();
        assert_eq!(v.len(), 8);
        // Start: mark 0xda, kind 01, sequence 62, length 64; bytes 1..=8 first lowest.
        assert_eq!(v[0], (0xda7e_0040_u32 as i32, 0x0807_0605_0403_0201));
        // Data: kind 10, sequence 63, bytes 9..=16.
        assert_eq!(v[1], (0xdabf_0000_u32 as i32, 0x100f_0e0d_0c0b_0a09));
        // The last chunk: sequence (62 + 7) mod 64 = 5, bytes 57..=64.
        assert_eq!(v[7], (0xda85_0000_u32 as i32, 0x403f_3e3d_3c3b_3a39));
        assert_eq!(seq, 6);
        // The codes are negative, and none is one the kernel or libc names.
        assert!(v.iter().all(|&(c, _)| c < -60));
    }

    #[test]
    fn invalid_codes_are_refused_naming_the_value() {
        for code in [
            sys::SI_QUEUE,
            0,
            0x7fff_ffff,
            0xdb40_0000_u32 as i32,
            0xda00_0000_u32 as i32,
            0xdac0_0000_u32 as i32,
            0xda80_0001_u32 as i32,
        ] {
            let e = decode_chunk(code, 0).unwrap_err();
            assert!(
                e.to_string().contains(&format!("{:#010x}", code as u32)),
                "{e}"
            );
        }
    }

    proptest! {
        #[test]
        fn chunks_roundtrip(kind in 0u8..2, seq in 0u8..64, len in 0u64..=LEN_LIMIT,
                            value in any::<u64>()) {
            let bytes = value.to_le_bytes();
            let c = if kind == 0 {
                Chunk::Start { seq, len, bytes }
            } else {
                Chunk::Data { seq, bytes }
            };
            let (code, word) = encode_chunk(c);
            prop_assert_eq!(decode_chunk(code, word).unwrap(), c);
        }

        #[test]
        fn messages_roundtrip(msgs in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..100), 1..10), start in 0u8..64) {
            let mut seq = start;
            let mut re = Reassembler::new(100);
            let mut out = Vec::new();
            for m in &msgs {
                for (code, value) in encode_message(m, 100, &mut seq).unwrap() {
                    if let Some(done) = re.push(code, value, 1, 2).unwrap() {
                        out.push(done);
                    }
                }
            }
            prop_assert_eq!(out, msgs);
        }

        #[test]
        fn any_chunk_stream_never_panics(values in proptest::collection::vec(
            (any::<u32>(), any::<u64>()), 0..64)) {
            let mut re = Reassembler::new(16);
            for (low, v) in values {
                // Mostly marked codes, so that chunks get past the mark.
                let code = ((CODE_MARK << 24) | (low & 0x00ff_ffff)) as i32;
                let code = if low >> 28 == 0 { low as i32 } else { code };
                if let Ok(Some(m)) = re.push(code, v, 1, 1) {
                    prop_assert!(m.len() <= 16);
                }
                if let Some(m) = re.take_ready() {
                    prop_assert!(m.len() <= 16);
                }
            }
        }
    }
}
