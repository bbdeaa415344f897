//! The floors: the cheapest ways for two processes to bounce a word, measured by the
//! crate in the same run as the transports. A spinning cache line (both processes busy,
//! cross-cpu only: on one cpu a spinner waits out the other's time slice) and a futex
//! hand-off (each side sleeps in the kernel until woken). The same protocol as
//! `limits.c`: round `i` writes `2i+1` one way and `2i+2` the other.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sys::{SharedPage, futex_wait, futex_wake};

/// Which floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloorKind {
    /// A cache line in shared memory, both sides spinning.
    ShmSpin,
    /// A word in shared memory, both sides sleeping on a futex until woken.
    ShmFutex,
    /// Two cache lines per direction, both sides spinning: what a 64-byte payload and
    /// its signal need at least (`scripts/experiments/two-line-bounce.c`, "two-par").
    ShmTwoLine,
    /// Two pipes, blocking `read`/`write` (the floor of `pipe`).
    #[serde(rename = "raw-pipe")]
    Pipe,
    /// Two FIFOs made with `mkfifo` where the `fifo` transport makes its own (the
    /// temporary directory), blocking `read`/`write` (the floor of `fifo`).
    #[serde(rename = "raw-fifo")]
    Fifo,
    /// A Unix stream socket pair.
    #[serde(rename = "raw-uds-stream")]
    UdsStream,
    /// A Unix datagram socket pair.
    #[serde(rename = "raw-uds-dgram")]
    UdsDgram,
    /// A Unix seqpacket socket pair.
    #[serde(rename = "raw-uds-seqpacket")]
    UdsSeqpacket,
    /// A TCP connection on loopback (TCP_NODELAY).
    #[serde(rename = "raw-tcp")]
    Tcp,
    /// Two connected UDP sockets on loopback.
    #[serde(rename = "raw-udp")]
    Udp,
    /// A System V queue, blocking `msgsnd`/`msgrcv` by message type.
    #[serde(rename = "raw-sysv-mq")]
    SysvMq,
    /// Two POSIX queues (`mq_send`/`mq_timedreceive`).
    #[serde(rename = "raw-posix-mq")]
    PosixMq,
    /// Two named POSIX semaphores (`sem_post`/`sem_wait`), no data.
    #[serde(rename = "raw-semaphore")]
    Semaphore,
    /// Two files in a private directory, appended to and followed with inotify.
    #[serde(rename = "raw-file")]
    File,
    /// Realtime signals with a word of payload each, to the thread that reads them.
    #[serde(rename = "raw-signal")]
    Signal,
}

impl FloorKind {
    /// `shm-spin`, `shm-futex`, or `raw-` and the method (`raw-pipe`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FloorKind::ShmSpin => "shm-spin",
            FloorKind::ShmFutex => "shm-futex",
            FloorKind::ShmTwoLine => "shm-two-line",
            FloorKind::Pipe => "raw-pipe",
            FloorKind::Fifo => "raw-fifo",
            FloorKind::UdsStream => "raw-uds-stream",
            FloorKind::UdsDgram => "raw-uds-dgram",
            FloorKind::UdsSeqpacket => "raw-uds-seqpacket",
            FloorKind::Tcp => "raw-tcp",
            FloorKind::Udp => "raw-udp",
            FloorKind::SysvMq => "raw-sysv-mq",
            FloorKind::PosixMq => "raw-posix-mq",
            FloorKind::Semaphore => "raw-semaphore",
            FloorKind::File => "raw-file",
            FloorKind::Signal => "raw-signal",
        }
    }

    /// Whether the floor bounces a word in a shared page (else: a method floor).
    pub fn is_shm(self) -> bool {
        matches!(
            self,
            FloorKind::ShmSpin | FloorKind::ShmFutex | FloorKind::ShmTwoLine
        )
    }

    /// How many aux descriptors the peer of a method floor gets: the write end and the
    /// read end, and for `raw-file` an inotify descriptor watching the read end's file;
    /// none for the floors whose objects are found by an id, names or a thread id in
    /// the command's `aux` (`raw-sysv-mq`, `raw-semaphore`, `raw-signal`).
    pub fn aux_fds(self) -> usize {
        match self {
            FloorKind::SysvMq | FloorKind::Semaphore | FloorKind::Signal => 0,
            FloorKind::File => 3,
            _ => 2,
        }
    }

    /// The floor of the transport named `method` for the same cpu and for cross cpu:
    /// its kernel object with the least code (`shm`: the futex hand-off same cpu, the
    /// two-line bounce cross cpu). `None` for a
    /// method with no floor of its own (then the ratio is to the futex floor).
    pub fn of_method(method: &str) -> Option<(FloorKind, FloorKind)> {
        let k = match method {
            "shm" => return Some((FloorKind::ShmFutex, FloorKind::ShmTwoLine)),
            "pipe" => FloorKind::Pipe,
            "fifo" => FloorKind::Fifo,
            "uds-stream" => FloorKind::UdsStream,
            "uds-dgram" => FloorKind::UdsDgram,
            "uds-seqpacket" => FloorKind::UdsSeqpacket,
            "tcp" => FloorKind::Tcp,
            "udp" => FloorKind::Udp,
            "sysv-mq" => FloorKind::SysvMq,
            "posix-mq" => FloorKind::PosixMq,
            "semaphore" => FloorKind::Semaphore,
            "file" => FloorKind::File,
            "signal" => FloorKind::Signal,
            _ => return None,
        };
        Some((k, k))
    }
}

/// The longest single futex sleep: deadlines are checked after each.
const SLICE: Duration = Duration::from_millis(10);

/// Waits until `word` is `want`, by `deadline`.
fn wait_for(kind: FloorKind, word: &AtomicU32, want: u32, deadline: Instant) -> Result<()> {
    let mut spins = 0u32;
    loop {
        let c = word.load(Ordering::Acquire);
        if c == want {
            return Ok(());
        }
        match kind {
            FloorKind::ShmSpin => {
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(4096) && Instant::now() >= deadline {
                    return Err(timeout(kind, want, deadline));
                }
                std::hint::spin_loop();
            }
            _ => {
                if Instant::now() >= deadline {
                    return Err(timeout(kind, want, deadline));
                }
                futex_wait(word, c, SLICE);
            }
        }
    }
}

fn timeout(kind: FloorKind, want: u32, deadline: Instant) -> Error {
    Error::Timeout {
        op: format!("{} floor: wait for the word to reach {want}", kind.name()),
        after: deadline.elapsed(),
    }
}

fn post(kind: FloorKind, word: &AtomicU32, v: u32) {
    word.store(v, Ordering::Release);
    if kind != FloorKind::ShmSpin {
        futex_wake(word);
    }
}

/// Word index of line `line` (0: the signal, 1: the payload's) of direction `dir` (0:
/// to the peer, 1: back) in the page: 256 bytes apart, each direction in its own half.
fn two_line(dir: usize, line: usize) -> usize {
    dir * 512 + line * 64
}

/// Sends `v` one way of the two-line bounce: the payload's line, then the signal's.
fn two_send(page: &SharedPage, dir: usize, v: u32) {
    page.word_at(two_line(dir, 1)).store(v, Ordering::Relaxed);
    page.word_at(two_line(dir, 0)).store(v, Ordering::Release);
}

/// Waits for `v` on the signal line of `dir`, touching the payload's line meanwhile so
/// that both travel in parallel; then checks the payload.
fn two_recv(page: &SharedPage, dir: usize, v: u32, deadline: Instant) -> Result<()> {
    let (sig, data) = (
        page.word_at(two_line(dir, 0)),
        page.word_at(two_line(dir, 1)),
    );
    let mut spins = 0u32;
    while sig.load(Ordering::Acquire) != v {
        let _ = data.load(Ordering::Relaxed);
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) && Instant::now() >= deadline {
            return Err(timeout(FloorKind::ShmTwoLine, v, deadline));
        }
    }
    if data.load(Ordering::Relaxed) != v {
        return Err(Error::Protocol(format!(
            "shm-two-line floor: payload line not {v} after its signal"
        )));
    }
    Ok(())
}

/// Zeroes the words a floor uses, before a batch.
pub(crate) fn reset(page: &SharedPage) {
    for i in [0, two_line(0, 1), two_line(1, 0), two_line(1, 1)] {
        page.word_at(i).store(0, Ordering::Release);
    }
}

/// The peer's side: answers `count` rounds on the page it inherited.
pub(crate) fn peer(kind: FloorKind, fd: OwnedFd, count: usize) -> Result<()> {
    let page = SharedPage::map(fd)?;
    let word = page.word();
    let deadline = Instant::now() + Duration::from_secs(30);
    if kind == FloorKind::ShmTwoLine {
        for i in 1..=count as u32 {
            two_recv(&page, 0, i, deadline)?;
            two_send(&page, 1, i);
        }
        return Ok(());
    }
    for i in 0..count as u32 {
        wait_for(kind, word, 2 * i + 1, deadline)?;
        post(kind, word, 2 * i + 2);
    }
    Ok(())
}

/// The measuring side: `count` round trips, each timed and given to `record` in
/// nanoseconds. The word must be 0 and the peer told to answer `count` rounds.
pub(crate) fn local(
    kind: FloorKind,
    page: &SharedPage,
    count: usize,
    timeout: Duration,
    mut record: impl FnMut(u64),
) -> Result<()> {
    let word = page.word();
    if kind == FloorKind::ShmTwoLine {
        for i in 1..=count as u32 {
            let t = Instant::now();
            two_send(page, 0, i);
            two_recv(page, 1, i, t + timeout)?;
            record(t.elapsed().as_nanos() as u64);
        }
        return Ok(());
    }
    for i in 0..count as u32 {
        let deadline = Instant::now() + timeout;
        let t = Instant::now();
        post(kind, word, 2 * i + 1);
        wait_for(kind, word, 2 * i + 2, deadline)?;
        record(t.elapsed().as_nanos() as u64);
    }
    Ok(())
}
