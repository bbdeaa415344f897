//! `raw-signal`: the floor of the `signal` transport. Realtime signals queued with a
//! payload (`rt_tgsigqueueinfo`, code SI_QUEUE, what `sigqueue` does, but directed at
//! one thread) to a thread that blocks the signal and reads it from a signalfd.
//!
//! A message of [`SIZE`] bytes is [`SIGNALS`] signals each way, a whole word in each
//! `sival_ptr` (8 signals of 8 bytes on 64-bit): the least the kernel object allows. The
//! transport sends as many (8 bytes in each `sival_ptr`, its framing in `si_code`), so
//! its ratio to this floor is what it adds around them: the hand-off from its receiving
//! thread to the caller, framing and checks.
//!
//! Why a signalfd and not `sigtimedwait`: the transport's receiving thread sleeps in
//! `poll` on a signalfd and reads it, so a queued signal wakes it through the
//! signalfd's wait queue, not by waking the thread itself as `sigtimedwait` is woken;
//! dequeueing is the same in both. The floor keeps the transport's kernel path: `poll`
//! on the signalfd (which also gives the deadline), then one `read` of every signal
//! pending, up to the ones still expected.
//!
//! Signals go to one thread, never to the process: the measuring process has other
//! threads, which do not block the signal, and its default action would end the
//! process. The measuring thread blocks the signal (its own mask only) before the peer
//! starts and passes its pid and thread id in the command's `aux`; the peer blocks it,
//! then sends a first signal carrying its thread id (its pid is the signal's `si_pid`),
//! so that neither side sends before the other blocks. Each side drains what is left
//! and restores its mask when done.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use super::{SIZE, nix};
use crate::error::{Error, Result};
use crate::sys::signal as sys;
use crate::transport::stream::wait_fd;

/// The signal: SIGRTMIN + 16 (the transport uses + 8, the audit's taps + 10 and + 12,
/// the deadline timers + 14).
pub(crate) fn signal_number() -> i32 {
    sys::sigrtmin() + 16
}

/// Bytes of payload per signal: `sival_ptr`, a word.
const WORD: usize = std::mem::size_of::<usize>();
/// Signals per message each way.
pub(crate) const SIGNALS: usize = SIZE / WORD;
/// Size of one `struct signalfd_siginfo`, and the offsets of `ssi_pid` and `ssi_ptr`.
const INFO: usize = 128;
const SSI_PID: usize = 12;
const SSI_PTR: usize = 48;

/// The calling thread's receiving end: the signal blocked in it and a signalfd. Drop
/// drains the signalfd and restores the thread's mask, in the thread that made it.
#[derive(Debug)]
pub(crate) struct Receiver {
    sfd: OwnedFd,
    old: sys::SignalSet,
}

impl Receiver {
    fn new() -> Result<Self> {
        let mut set = sys::SignalSet::empty();
        set.add(signal_number()).map_err(nix("sigaddset"))?;
        let old = sys::block_in_thread_saving(&set).map_err(nix("pthread_sigmask"))?;
        match sys::signalfd(&set) {
            Ok(sfd) => Ok(Receiver { sfd, old }),
            Err(e) => {
                let _ = sys::set_thread_mask(&old);
                Err(nix("signalfd")(e))
            }
        }
    }

    /// Receives `words.len()` signals into `words` (their `sival_ptr`s, in order) by
    /// `deadline`; returns the last one's `si_pid`.
    fn recv(&self, words: &mut [usize], deadline: Instant) -> Result<u32> {
        let mut buf = [0u8; SIGNALS * INFO];
        let (mut got, mut pid) = (0, 0);
        while got < words.len() {
            let op = "raw-signal floor: wait for a signal";
            wait_fd(self.sfd.as_fd(), PollFlags::POLLIN, Some(deadline), op)?;
            let want = (words.len() - got).min(SIGNALS) * INFO;
            let n = match nix::unistd::read(&self.sfd, &mut buf[..want]) {
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(nix("read signalfd")(e)),
            };
            for info in buf[..n].chunks_exact(INFO) {
                let field = |off: usize, len: usize| {
                    let mut b = [0u8; 8];
                    b[..len].copy_from_slice(&info[off..off + len]);
                    u64::from_ne_bytes(b)
                };
                words[got] = field(SSI_PTR, 8) as usize;
                pid = field(SSI_PID, 4) as u32;
                got += 1;
            }
        }
        Ok(pid)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut buf = [0u8; SIGNALS * INFO];
        while matches!(nix::unistd::read(&self.sfd, &mut buf), Ok(n) if n > 0) {}
        let _ = sys::set_thread_mask(&self.old);
    }
}

/// Queues `words` to thread `tid` of `pid`, one signal each.
fn send(pid: i32, tid: i32, words: &[usize]) -> Result<()> {
    for &w in words {
        sys::queue_word(pid, tid, signal_number(), w).map_err(nix("rt_tgsigqueueinfo"))?;
    }
    Ok(())
}

/// The measuring side: its receiver and its thread id.
#[derive(Debug)]
pub(crate) struct Local {
    rx: Receiver,
    tid: i32,
}

/// Blocks the signal in the calling thread (the one that will measure) and returns its
/// receiver and the peer's `aux`: this pid (high 32 bits) and thread id.
///
/// # Errors
/// The system error.
pub(crate) fn make() -> Result<(Local, usize)> {
    let tid = nix::unistd::gettid().as_raw();
    let aux = (std::process::id() as usize) << 32 | tid as usize;
    Ok((
        Local {
            rx: Receiver::new()?,
            tid,
        },
        aux,
    ))
}

impl Local {
    /// Waits for the peer's first signal (its thread id), then `count` round trips,
    /// each timed and given to `record` in ns.
    ///
    /// # Errors
    /// [`Error::Protocol`] on another thread than the one that made the objects; the
    /// system error, or a timeout of `timeout` per wait.
    pub(crate) fn run(
        &mut self,
        count: usize,
        timeout: Duration,
        mut record: impl FnMut(u64),
    ) -> Result<()> {
        if nix::unistd::gettid().as_raw() != self.tid {
            return Err(Error::Protocol(
                "raw-signal floor: measured on another thread than the one that blocks".into(),
            ));
        }
        let mut hello = [0usize; 1];
        let pid = self.rx.recv(&mut hello, Instant::now() + timeout)? as i32;
        let tid = hello[0] as i32;
        let msg = [0xa5a5_a5a5usize; SIGNALS];
        let mut buf = [0usize; SIGNALS];
        for _ in 0..count {
            let t = Instant::now();
            send(pid, tid, &msg)?;
            self.rx.recv(&mut buf, t + timeout)?;
            record(t.elapsed().as_nanos() as u64);
        }
        Ok(())
    }
}

/// The peer's side: blocks the signal in this thread, tells the measuring thread (pid
/// and thread id in `aux`) its own thread id, then answers `count` round trips, each
/// wait bounded by 30 s.
///
/// # Errors
/// The system error, or a timeout.
pub(crate) fn peer(aux: usize, count: usize) -> Result<()> {
    let (pid, tid) = ((aux >> 32) as i32, (aux & 0xffff_ffff) as i32);
    let rx = Receiver::new()?;
    send(pid, tid, &[nix::unistd::gettid().as_raw() as usize])?;
    let mut buf = [0usize; SIGNALS];
    for _ in 0..count {
        rx.recv(&mut buf, Instant::now() + Duration::from_secs(30))?;
        send(pid, tid, &buf)?;
    }
    Ok(())
}
