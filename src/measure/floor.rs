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
    /// Two pipes, blocking `read`/`write` (the floor of `pipe` and `fifo`).
    Pipe,
    /// A Unix stream socket pair.
    UdsStream,
    /// A Unix datagram socket pair.
    UdsDgram,
    /// A Unix seqpacket socket pair.
    UdsSeqpacket,
    /// A TCP connection on loopback (TCP_NODELAY).
    Tcp,
    /// Two connected UDP sockets on loopback.
    Udp,
    /// A System V queue, blocking `msgsnd`/`msgrcv` by message type.
    SysvMq,
}

impl FloorKind {
    /// `shm-spin`, `shm-futex`, or `raw-` and the method (`raw-pipe`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FloorKind::ShmSpin => "shm-spin",
            FloorKind::ShmFutex => "shm-futex",
            FloorKind::Pipe => "raw-pipe",
            FloorKind::UdsStream => "raw-uds-stream",
            FloorKind::UdsDgram => "raw-uds-dgram",
            FloorKind::UdsSeqpacket => "raw-uds-seqpacket",
            FloorKind::Tcp => "raw-tcp",
            FloorKind::Udp => "raw-udp",
            FloorKind::SysvMq => "raw-sysv-mq",
        }
    }

    /// Whether the floor bounces a word in a shared page (else: a method floor).
    pub fn is_shm(self) -> bool {
        matches!(self, FloorKind::ShmSpin | FloorKind::ShmFutex)
    }

    /// The floor of the transport named `method` for the same cpu and for cross cpu:
    /// its kernel object with the least code (`shm`: the futex hand-off same cpu, the
    /// spinning line cross cpu; a FIFO is a pipe reached by a path). `None` for the
    /// methods with no floor of their own yet (then the ratio is to the futex floor).
    pub fn of_method(method: &str) -> Option<(FloorKind, FloorKind)> {
        let k = match method {
            "shm" => return Some((FloorKind::ShmFutex, FloorKind::ShmSpin)),
            "pipe" | "fifo" => FloorKind::Pipe,
            "uds-stream" => FloorKind::UdsStream,
            "uds-dgram" => FloorKind::UdsDgram,
            "uds-seqpacket" => FloorKind::UdsSeqpacket,
            "tcp" => FloorKind::Tcp,
            "udp" => FloorKind::Udp,
            "sysv-mq" => FloorKind::SysvMq,
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

/// The peer's side: answers `count` rounds on the page it inherited.
pub(crate) fn peer(kind: FloorKind, fd: OwnedFd, count: usize) -> Result<()> {
    let page = SharedPage::map(fd)?;
    let word = page.word();
    let deadline = Instant::now() + Duration::from_secs(30);
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
    for i in 0..count as u32 {
        let deadline = Instant::now() + timeout;
        let t = Instant::now();
        post(kind, word, 2 * i + 1);
        wait_for(kind, word, 2 * i + 2, deadline)?;
        record(t.elapsed().as_nanos() as u64);
    }
    Ok(())
}
