//! The method floors: the least code that bounces 64 bytes over the very kernel object a
//! transport uses (two pipes, a socket pair of each Unix type, a TCP or UDP pair on
//! loopback, a System V queue), with blocking `read`/`write` (`msgsnd`/`msgrcv`) and
//! nothing else: no framing, no poll, no deadline bookkeeping. The measuring side makes
//! the objects and hands the peer its ends as aux descriptors (the queue by its id).
//! Two floors wait the way their transports do, in `poll`, because their objects have
//! no blocking call of their own to wait in: [`file`] (inotify on two files) and
//! [`signal`] (realtime signals read from a signalfd).
//!
//! Deadlines without per-call cost: SO_RCVTIMEO on sockets, end of file on a pipe whose
//! other process died, the per-thread timer of [`crate::sys::timer`] (armed once per
//! timeout) for the queue on the measuring side; the peer's queue wait ends when the
//! queue is removed (EIDRM).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use std::ffi::CString;
use std::os::fd::AsFd;

use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_open, mq_send, mq_timedreceive, mq_unlink};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

use super::FloorKind;
use crate::error::{Error, Result};
use crate::sys;
use crate::sys::sem::NamedSem;

pub(crate) mod file;
pub(crate) mod signal;

/// Bytes per message of a method floor.
pub const SIZE: usize = 64;
/// Message types of the queue floor: to the measuring side, to the peer.
const TO_LOCAL: i64 = 1;
const TO_PEER: i64 = 2;

/// The measuring side's objects.
#[derive(Debug)]
pub(crate) enum Objects {
    /// Write to the first, read from the second (one socket: the same twice).
    Fds(std::fs::File, std::fs::File),
    /// A System V queue's id, removed on drop, and its marker file, so that a run
    /// killed before the drop leaves a queue the next run can reclaim
    /// ([`crate::sys::reclaim`]).
    Queue {
        /// The queue's id.
        id: i32,
        /// Held for its drop, which removes the marker file.
        _marker: sys::reclaim::SysvMarker,
    },
    /// POSIX queues: to the peer, back (both unlinked once open).
    Mq(MqdT, MqdT),
    /// Named semaphores: to the peer, back, and their names, unlinked on drop.
    Sems(NamedSem, NamedSem, [CString; 2]),
    /// Two files followed with inotify, in a directory removed on drop.
    File(file::Local),
    /// The signal blocked in the measuring thread and its signalfd.
    Signal(signal::Local),
}

impl Drop for Objects {
    fn drop(&mut self) {
        match self {
            Objects::Queue { id, .. } => {
                let _ = sys::sysv::msg_remove(*id);
            }
            Objects::Sems(_, _, names) => {
                for n in names.iter() {
                    let _ = sys::sem::unlink(n);
                }
            }
            _ => {}
        }
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The names of the semaphore floor numbered `aux` (the maker's pid, high 32 bits, and
/// a counter): to the peer, back.
fn sem_names(aux: usize) -> Result<[CString; 2]> {
    let (pid, n) = (aux >> 32, aux & 0xffff_ffff);
    let name = |d: &str| {
        CString::new(format!("/ipc-audit-floor-{pid}-{n}-{d}"))
            .map_err(|_| Error::Protocol("method floor: a NUL in a name".into()))
    };
    Ok([name("a")?, name("b")?])
}

/// Two POSIX queues of [`SIZE`]-byte messages, unlinked at once (their descriptors
/// keep them).
fn mq_pair() -> Result<(MqdT, MqdT)> {
    let attr = MqAttr::new(0, 4, SIZE as _, 0);
    let open = |d: &str| -> Result<MqdT> {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("/ipc-audit-floor-{}-{n}-{d}", std::process::id());
        let q = mq_open(
            name.as_str(),
            MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR | MQ_OFlag::O_CLOEXEC,
            Mode::S_IRUSR | Mode::S_IWUSR,
            Some(&attr),
        )
        .map_err(nix("mq_open"))?;
        let _ = mq_unlink(name.as_str());
        Ok(q)
    };
    Ok((open("a")?, open("b")?))
}

fn mq_fd(q: &MqdT) -> Result<OwnedFd> {
    q.as_fd().try_clone_to_owned().map_err(io("dup a queue"))
}

fn abs_deadline(clock: ClockId, timeout: Duration) -> Result<TimeSpec> {
    let now = clock_gettime(clock).map_err(nix("clock_gettime"))?;
    Ok(now + TimeSpec::from_duration(timeout))
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(format!("method floor: {what}"), e)
}

fn nix(what: &str) -> impl FnOnce(nix::Error) -> Error + '_ {
    move |e| Error::sys(format!("method floor: {what}"), e)
}

fn timed(fd: &OwnedFd, timeout: Duration) -> Result<()> {
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    setsockopt(fd, sockopt::ReceiveTimeout, &tv).map_err(nix("SO_RCVTIMEO"))
}

fn files(a: OwnedFd, b: OwnedFd) -> Objects {
    Objects::Fds(std::fs::File::from(a), std::fs::File::from(b))
}

/// Two FIFOs in a private directory of the temporary directory (where the `fifo`
/// transport makes its own): to the peer, and back. Each is opened for reading
/// (nonblocking, so the open does not wait for a writer), then for writing, then the
/// reading end is made blocking; the directory is removed at once (the descriptors keep
/// the FIFOs), so nothing is left behind.
fn fifos() -> Result<(Objects, Vec<OwnedFd>, usize)> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = tempfile::Builder::new()
        .prefix(&format!("ipc-audit-floor-fifo-{}-{n}-", std::process::id()))
        .tempdir()
        .map_err(io("a temporary directory"))?;
    let mut ends = Vec::new();
    for d in ["to-peer", "back"] {
        let path = dir.path().join(d);
        nix::unistd::mkfifo(&path, Mode::S_IRUSR | Mode::S_IWUSR).map_err(nix("mkfifo"))?;
        let r = open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(nix("open a FIFO to read"))?;
        let w = open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(nix("open a FIFO to write"))?;
        fcntl(&r, FcntlArg::F_SETFL(OFlag::empty())).map_err(nix("F_SETFL"))?;
        ends.push((r, w));
    }
    dir.close().map_err(io("remove the FIFOs' directory"))?;
    let mut it = ends.into_iter();
    let (Some((to_peer_r, to_peer_w)), Some((back_r, back_w))) = (it.next(), it.next()) else {
        return Err(Error::Protocol("method floor: two FIFOs expected".into()));
    };
    Ok((files(to_peer_w, back_r), vec![back_w, to_peer_r], 0))
}

/// A socket end twice (to write and to read), with a receive timeout.
fn duplex(fd: OwnedFd, timeout: Duration) -> Result<(OwnedFd, OwnedFd)> {
    timed(&fd, timeout)?;
    let dup = fd.try_clone().map_err(io("dup a socket"))?;
    Ok((fd, dup))
}

/// Makes the objects of `kind`: this side's, the peer's aux descriptors (write end,
/// then read end; then an inotify descriptor for `raw-file`) and the `aux` argument of
/// its command (the queue id, the semaphores' number, this thread's pid and id, or 0).
/// `raw-signal` blocks its signal in the calling thread: measure on the same thread.
///
/// # Errors
/// [`Error::Unsupported`] for a kind with no objects here (the shm floors); the system
/// error otherwise.
pub(crate) fn make(kind: FloorKind, timeout: Duration) -> Result<(Objects, Vec<OwnedFd>, usize)> {
    let peer_timeout = Duration::from_secs(30);
    let pair = |ty: SockType| -> Result<(Objects, Vec<OwnedFd>, usize)> {
        let (a, b) = socketpair(AddressFamily::Unix, ty, None, SockFlag::SOCK_CLOEXEC)
            .map_err(nix("socketpair"))?;
        let (a1, a2) = duplex(a, timeout)?;
        let (b1, b2) = duplex(b, peer_timeout)?;
        Ok((files(a1, a2), vec![b1, b2], 0))
    };
    match kind {
        FloorKind::Pipe => {
            let (to_peer_r, to_peer_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(nix("pipe2"))?;
            let (back_r, back_w) =
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(nix("pipe2"))?;
            Ok((files(to_peer_w, back_r), vec![back_w, to_peer_r], 0))
        }
        FloorKind::Fifo => fifos(),
        FloorKind::UdsStream => pair(SockType::Stream),
        FloorKind::UdsDgram => pair(SockType::Datagram),
        FloorKind::UdsSeqpacket => pair(SockType::SeqPacket),
        FloorKind::Tcp => {
            let l = TcpListener::bind("127.0.0.1:0").map_err(io("tcp bind"))?;
            let a = TcpStream::connect(l.local_addr().map_err(io("tcp addr"))?)
                .map_err(io("tcp connect"))?;
            let (b, _) = l.accept().map_err(io("tcp accept"))?;
            a.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
            b.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
            let (a1, a2) = duplex(a.into(), timeout)?;
            let (b1, b2) = duplex(b.into(), peer_timeout)?;
            Ok((files(a1, a2), vec![b1, b2], 0))
        }
        FloorKind::Udp => {
            let a = UdpSocket::bind("127.0.0.1:0").map_err(io("udp bind"))?;
            let b = UdpSocket::bind("127.0.0.1:0").map_err(io("udp bind"))?;
            a.connect(b.local_addr().map_err(io("udp addr"))?)
                .map_err(io("udp connect"))?;
            b.connect(a.local_addr().map_err(io("udp addr"))?)
                .map_err(io("udp connect"))?;
            let (a1, a2) = duplex(a.into(), timeout)?;
            let (b1, b2) = duplex(b.into(), peer_timeout)?;
            Ok((files(a1, a2), vec![b1, b2], 0))
        }
        FloorKind::SysvMq => {
            let id = sys::sysv::msgget_private(0o600).map_err(nix("msgget"))?;
            let marker = sys::reclaim::SysvMarker::new(
                id,
                &crate::transport::named::unique_name("ipc-audit-sysv"),
            );
            Ok((
                Objects::Queue {
                    id,
                    _marker: marker,
                },
                Vec::new(),
                id as usize,
            ))
        }
        FloorKind::PosixMq => {
            let (to_peer, back) = mq_pair()?;
            let fds = vec![mq_fd(&back)?, mq_fd(&to_peer)?];
            Ok((Objects::Mq(to_peer, back), fds, 0))
        }
        FloorKind::Semaphore => {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xffff_ffff;
            let aux = (std::process::id() as usize) << 32 | n;
            let names = sem_names(aux)?;
            let a = NamedSem::create(&names[0], 0o600).map_err(nix("sem_open"))?;
            let b = NamedSem::create(&names[1], 0o600).map_err(nix("sem_open"))?;
            Ok((Objects::Sems(a, b, names), Vec::new(), aux))
        }
        FloorKind::File => file::make().map(|(o, fds)| (Objects::File(o), fds, 0)),
        FloorKind::Signal => signal::make().map(|(o, aux)| (Objects::Signal(o), Vec::new(), aux)),
        _ => Err(Error::Unsupported(format!(
            "{}: a shared-page floor, not a method floor",
            kind.name()
        ))),
    }
}

/// Sends `msg` whole and reads a whole answer of the same size into `buf`.
fn bounce(w: &mut std::fs::File, r: &mut std::fs::File, msg: &[u8], buf: &mut [u8]) -> Result<()> {
    w.write_all(msg).map_err(io("write"))?;
    r.read_exact(buf).map_err(io("read"))
}

/// A queue message: the type, then [`SIZE`] bytes.
fn queue_msg(mtype: i64) -> Vec<u8> {
    let mut m = mtype.to_ne_bytes().to_vec();
    m.resize(sys::sysv::MTYPE_LEN + SIZE, 0xa5);
    m
}

/// `op` again while it fails with EINTR: a timer signal of this process (the System V
/// floor's and transport's, [`crate::sys::timer`], which re-fires past its deadline)
/// interrupts a wait that has its own absolute deadline.
fn again<T>(mut op: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    loop {
        match op() {
            Err(nix::errno::Errno::EINTR) => {}
            r => return r,
        }
    }
}

/// The measuring side: `count` round trips, each timed and given to `record` in ns.
///
/// # Errors
/// The system error, or a timeout of `timeout` per round trip.
pub(crate) fn local(
    objects: &mut Objects,
    count: usize,
    timeout: Duration,
    mut record: impl FnMut(u64),
) -> Result<()> {
    match objects {
        Objects::File(f) => f.run(count, timeout, record)?,
        Objects::Signal(s) => s.run(count, timeout, record)?,
        Objects::Fds(w, r) => {
            let msg = [0xa5u8; SIZE];
            let mut buf = [0u8; SIZE];
            for _ in 0..count {
                let t = Instant::now();
                bounce(w, r, &msg, &mut buf)?;
                record(t.elapsed().as_nanos() as u64);
            }
        }
        Objects::Mq(to_peer, back) => {
            let msg = [0xa5u8; SIZE];
            let mut buf = [0u8; SIZE];
            let mut prio = 0;
            for _ in 0..count {
                let t = Instant::now();
                mq_send(to_peer, &msg, 0).map_err(nix("mq_send"))?;
                let abs = abs_deadline(ClockId::CLOCK_REALTIME, timeout)?;
                again(|| mq_timedreceive(back, &mut buf, &mut prio, &abs))
                    .map_err(nix("mq_timedreceive"))?;
                record(t.elapsed().as_nanos() as u64);
            }
        }
        Objects::Sems(to_peer, back, _) => {
            for _ in 0..count {
                let t = Instant::now();
                to_peer.post().map_err(nix("sem_post"))?;
                let abs = abs_deadline(ClockId::CLOCK_REALTIME, timeout)?;
                again(|| back.timed_wait(&abs)).map_err(nix("sem_timedwait"))?;
                record(t.elapsed().as_nanos() as u64);
            }
        }
        Objects::Queue { id, .. } => {
            let id = *id;
            let msg = queue_msg(TO_PEER);
            let mut buf = queue_msg(0);
            for _ in 0..count {
                let t = Instant::now();
                sys::sysv::msgsnd(id, &msg, false).map_err(nix("msgsnd"))?;
                match sys::timer::bounded(t + timeout, || {
                    sys::sysv::msgrcv(id, &mut buf, TO_LOCAL, false)
                }) {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(nix("msgrcv")(e)),
                    None => return Err(Error::Unsupported("no timer for the queue floor".into())),
                }
                record(t.elapsed().as_nanos() as u64);
            }
        }
    }
    Ok(())
}

/// The peer's side: answers `count` round trips over its aux descriptors `fds` (write
/// end, read end, and inotify for `raw-file`), or over what `aux` names.
///
/// # Errors
/// The system error.
pub(crate) fn peer(kind: FloorKind, fds: Vec<OwnedFd>, aux: usize, count: usize) -> Result<()> {
    match kind {
        FloorKind::File => return file::peer(fds, count),
        FloorKind::Signal => return signal::peer(aux, count),
        _ => {}
    }
    if kind == FloorKind::SysvMq {
        let id = aux as i32;
        let msg = queue_msg(TO_LOCAL);
        let mut buf = queue_msg(0);
        for _ in 0..count {
            while let Err(e) = sys::sysv::msgrcv(id, &mut buf, TO_PEER, false) {
                if e != nix::errno::Errno::EINTR {
                    return Err(nix("msgrcv")(e));
                }
            }
            sys::sysv::msgsnd(id, &msg, false).map_err(nix("msgsnd"))?;
        }
        return Ok(());
    }
    if kind == FloorKind::Semaphore {
        let names = sem_names(aux)?;
        let from = NamedSem::open(&names[0]).map_err(nix("sem_open"))?;
        let back = NamedSem::open(&names[1]).map_err(nix("sem_open"))?;
        for _ in 0..count {
            while let Err(e) = from.wait() {
                if e != nix::errno::Errno::EINTR {
                    return Err(nix("sem_wait")(e));
                }
            }
            back.post().map_err(nix("sem_post"))?;
        }
        return Ok(());
    }
    let mut it = fds.into_iter();
    let (Some(w), Some(r)) = (it.next(), it.next()) else {
        return Err(Error::Protocol(
            "method floor: the peer needs two descriptors".into(),
        ));
    };
    if kind == FloorKind::PosixMq {
        let (back, from) = (sys::fd::mqd(w), sys::fd::mqd(r));
        let mut buf = [0u8; SIZE];
        let mut prio = 0;
        for _ in 0..count {
            let abs = abs_deadline(ClockId::CLOCK_REALTIME, Duration::from_secs(30))?;
            let n = mq_timedreceive(&from, &mut buf, &mut prio, &abs)
                .map_err(nix("mq_timedreceive"))?;
            mq_send(&back, &buf[..n], 0).map_err(nix("mq_send"))?;
        }
        return Ok(());
    }
    let (mut w, mut r) = (std::fs::File::from(w), std::fs::File::from(r));
    let mut buf = [0u8; SIZE];
    for _ in 0..count {
        r.read_exact(&mut buf).map_err(io("read"))?;
        w.write_all(&buf).map_err(io("write"))?;
    }
    Ok(())
}
