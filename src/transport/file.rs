//! `file`: an append-only file of frames that the reader follows as it grows.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::Mode;

use super::fifo::open_path;
use super::named::publish_path;
use super::pipe::parse_max;
use super::stream::{deadline, wait_fd};
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::frame::{self, DEFAULT_MAX_FRAME, Decoder, Step};

const NAME: &str = "file";

/// Size of the reader's buffer.
const READ_BUF: usize = 64 * 1024;

/// An append-only file of [`frame`]s in a private directory, mode 0600
/// from the moment its name exists. One way: the peer appends (O_APPEND, one `write` per
/// frame), the local end reads and follows the file as it grows: at end-of-file it
/// sleeps in `poll` on an inotify descriptor (IN_MODIFY, IN_CLOSE_WRITE), so a waiting
/// reader uses no CPU.
///
/// One writer per link. When the writer closes the file (or dies: the kernel closes its
/// descriptors), the reader delivers what is complete and then reports
/// [`Error::Closed`]; a torn last frame (a writer killed mid-write) is reported as a
/// frame error, never delivered. Every frame carries CRCs, so bytes changed in the file
/// are reported, not delivered. With `fsync`, the writer calls `fdatasync` after each
/// frame: a message is on disk when `send` returns.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileLog {
    /// `fdatasync` after every frame.
    pub fsync: bool,
}

impl FileLog {
    /// A log whose writer syncs every frame to disk before `send` returns.
    pub fn durable() -> Self {
        FileLog { fsync: true }
    }
}

/// The reading end.
pub struct FileReader {
    fd: OwnedFd,
    inotify: Inotify,
    dec: Decoder,
    rbuf: Box<[u8]>,
    rpos: usize,
    rend: usize,
    writer_closed: bool,
    /// The last read of the file reached its end (it filled less than the buffer): all
    /// the bytes of every inotify event read so far have been read, so the next read
    /// waits for an event first, instead of a read that would find nothing.
    wait_first: bool,
    timeout: Option<Duration>,
    path: String,
    /// "wait for data in PATH", made once: the per-message path does not allocate.
    wait_op: String,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("path", &self.path)
            .finish()
    }
}

impl FileReader {
    /// A reader of a finished log: `fd` is read from its current offset to its end as
    /// a log whose writer has closed (or died), with a read buffer of `read_buf` bytes.
    /// For the `file_log_recovery` fuzz target: the same `recv` as a live reader.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a zero `read_buf`; the error of `inotify_init1`.
    #[doc(hidden)]
    pub fn over_closed_log(fd: OwnedFd, max: usize, read_buf: usize) -> Result<Self> {
        if read_buf == 0 {
            return Err(Error::invalid("file: read buffer size", read_buf));
        }
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| Error::sys(format!("{NAME}: inotify_init1"), e))?;
        Ok(FileReader {
            fd,
            inotify,
            dec: Decoder::new(max),
            rbuf: vec![0u8; read_buf].into_boxed_slice(),
            rpos: 0,
            rend: 0,
            writer_closed: true,
            wait_first: false,
            timeout: Some(Duration::ZERO),
            path: "(closed log)".into(),
            wait_op: format!("{NAME}: wait for data in a closed log"),
        })
    }

    /// Waits for the file to change (or the deadline), and notes a writer's close.
    ///
    /// The inotify events are read into a buffer on the stack and only their masks are
    /// looked at (nix's `read_events` returns a `Vec` per call): a wait that succeeds
    /// does not allocate.
    fn wait_change(&mut self, dl: Option<std::time::Instant>) -> Result<()> {
        wait_fd(self.inotify.as_fd(), PollFlags::POLLIN, dl, &self.wait_op)?;
        // One read takes the events queued now (up to INOTIFY_BUF bytes of them); any
        // left or queued later wake the next wait at once, which then reads the file
        // again and finds nothing lost.
        let mut events = [0u8; INOTIFY_BUF];
        loop {
            match nix::unistd::read(self.inotify.as_fd(), &mut events) {
                Ok(n) => {
                    let closed = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_Q_OVERFLOW;
                    if inotify_masks(&events[..n]).any(|m| m.intersects(closed)) {
                        // On overflow a close may have been lost: treat it as seen; the
                        // worst case is an early Closed on a file still being written,
                        // never a wrong message.
                        self.writer_closed = true;
                    }
                    return Ok(());
                }
                // Woken with nothing to read (poll woke early): the file is read again,
                // as after an event.
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys(format!("{NAME}: read inotify events"), e)),
            }
        }
    }
}

/// Size of the buffer that inotify events are read into: room for many events of a
/// watched file (16 bytes each: a watch on a file carries no name).
const INOTIFY_BUF: usize = 4096;

/// Length of `struct inotify_event` without its name.
const INOTIFY_HEADER: usize = 16;

/// The masks of the `struct inotify_event`s in `bytes` (what one `read` of an inotify
/// descriptor gave): `wd` (i32), `mask`, `cookie`, `len` (u32 each), then `len` bytes of
/// name. A truncated last event is ignored.
fn inotify_masks(bytes: &[u8]) -> impl Iterator<Item = AddWatchFlags> + '_ {
    let mut off = 0;
    std::iter::from_fn(move || {
        let header = bytes.get(off..off + INOTIFY_HEADER)?;
        let mask = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
        let len = u32::from_ne_bytes([header[12], header[13], header[14], header[15]]);
        off = off
            .saturating_add(INOTIFY_HEADER)
            .saturating_add(len as usize);
        Some(AddWatchFlags::from_bits_truncate(mask))
    })
}

impl Endpoint for FileReader {
    fn send(&mut self, _msg: &[u8]) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{NAME}: this end only receives"
        )))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let dl = deadline(self.timeout);
        loop {
            if self.rpos < self.rend {
                let d = self.dec.decode(&self.rbuf[self.rpos..self.rend], buf);
                self.rpos += d.consumed;
                match d.step {
                    Step::Frame => return Ok(buf.len()),
                    Step::NeedMore => {}
                    Step::Error(e) => return Err(e.into()),
                }
            }
            self.rpos = 0;
            self.rend = 0;
            // Once the writer has closed, no event will come: read to the end.
            if self.wait_first && !self.writer_closed {
                self.wait_change(dl)?;
                self.wait_first = false;
            }
            let r = nix::unistd::read(self.fd.as_fd(), &mut self.rbuf);
            // A read of a regular file fills less than the buffer only at its end.
            self.wait_first = matches!(r, Ok(n) if n < self.rbuf.len());
            match r {
                Ok(0) if self.writer_closed => {
                    // Everything the writer wrote before closing has been read.
                    return match self.dec.finish() {
                        Ok(()) => Err(Error::Closed {
                            op: format!("{NAME}: recv from {}", self.path),
                        }),
                        Err(e) => Err(e.into()),
                    };
                }
                Ok(0) => {}
                Ok(n) => self.rend = n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys(format!("{NAME}: read {}", self.path), e)),
            }
        }
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}

/// The writing end.
#[derive(Debug)]
pub struct FileWriter {
    fd: OwnedFd,
    max: usize,
    fsync: bool,
    buf: Vec<u8>,
    path: String,
}

impl FileWriter {
    /// The underlying descriptor, for tests that tear a frame on purpose.
    #[cfg(test)]
    fn raw_write(&self, bytes: &[u8]) {
        nix::unistd::write(&self.fd, bytes).unwrap();
    }
}

impl Endpoint for FileWriter {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.buf.clear();
        frame::encode(msg, self.max, &mut self.buf)?;
        // One write per frame (O_APPEND puts it at the end); a short write is finished
        // with more writes.
        let mut off = 0;
        while off < self.buf.len() {
            match nix::unistd::write(&self.fd, &self.buf[off..]) {
                Ok(n) => off += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(Error::sys(format!("{NAME}: write {}", self.path), e)),
            }
        }
        if self.fsync {
            loop {
                match nix::unistd::fdatasync(self.fd.as_fd()) {
                    Ok(()) => break,
                    Err(Errno::EINTR) => {}
                    Err(e) => {
                        return Err(Error::sys(format!("{NAME}: fdatasync {}", self.path), e));
                    }
                }
            }
        }
        Ok(())
    }

    fn recv(&mut self, _buf: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Unsupported(format!("{NAME}: this end only sends")))
    }

    fn set_timeout(&mut self, _timeout: Option<Duration>) -> Result<()> {
        // Appends to a regular file do not wait for a reader.
        Ok(())
    }
}

impl FileLog {
    /// Opens a link and returns the reader as its concrete type, the peer's part
    /// (`"<max> <fsync> <path>"`) and the guard (the directory).
    ///
    /// # Errors
    /// The system error, naming the path.
    pub fn open_concrete(
        &self,
        cfg: &Config,
    ) -> Result<(FileReader, PeerEnd, Box<dyn std::any::Any + Send>)> {
        let max = cfg.max_message.unwrap_or(DEFAULT_MAX_FRAME);
        let (path, (), dir) = publish_path(NAME, cfg, "log", |p| {
            let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
            nix::fcntl::open(p, flags, Mode::S_IRUSR | Mode::S_IWUSR)
                .map(drop)
                .map_err(|e| Error::sys(format!("{NAME}: create {}", p.display()), e))
        })?;
        let fd = open_path(&path, OFlag::O_RDONLY, NAME)?;
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| Error::sys(format!("{NAME}: inotify_init1"), e))?;
        inotify
            .add_watch(
                &path,
                AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE,
            )
            .map_err(|e| Error::sys(format!("{NAME}: inotify_add_watch {}", path.display()), e))?;
        let reader = FileReader {
            fd,
            inotify,
            dec: Decoder::new(max),
            rbuf: vec![0u8; READ_BUF].into_boxed_slice(),
            rpos: 0,
            rend: 0,
            writer_closed: false,
            wait_first: false,
            timeout: None,
            path: path.display().to_string(),
            wait_op: format!("{NAME}: wait for data in {}", path.display()),
        };
        let peer = PeerEnd {
            fds: Vec::new(),
            info: format!("{max} {} {}", u8::from(self.fsync), path.display()),
        };
        Ok((reader, peer, dir))
    }

    /// Rebuilds the writer as its concrete type.
    ///
    /// # Errors
    /// [`Error::Protocol`] on malformed info; the system error naming the path.
    pub fn attach_concrete(&self, peer: PeerEnd) -> Result<FileWriter> {
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {:?}", peer.info));
        let mut parts = peer.info.splitn(3, ' ');
        let max = parse_max(parts.next().ok_or_else(bad)?, NAME)?;
        let fsync = match parts.next() {
            Some("0") => false,
            Some("1") => true,
            _ => return Err(bad()),
        };
        let path = parts.next().ok_or_else(bad)?;
        let fd = open_path(Path::new(path), OFlag::O_WRONLY | OFlag::O_APPEND, NAME)?;
        Ok(FileWriter {
            fd,
            max,
            fsync,
            buf: Vec::new(),
            path: path.into(),
        })
    }
}

impl Transport for FileLog {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            boundaries: Boundaries::Framed,
            ordering: Ordering::Fifo,
            reliable: true,
            max_message: DEFAULT_MAX_FRAME,
            duplex: false,
            access: Access::FileMode,
            rendezvous: Rendezvous::Named,
            platforms: vec!["Linux".into()],
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (reader, peer, dir) = self.open_concrete(cfg)?;
        let path = super::named::path_in_info(&peer.info);
        Ok(Link {
            local: Box::new(reader),
            peer,
            guard: Some(dir),
            path,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(self.attach_concrete(peer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameError;

    fn pair(
        log: FileLog,
        cfg: &Config,
    ) -> (
        FileReader,
        FileWriter,
        Box<dyn std::any::Any + Send>,
        String,
    ) {
        let (mut rx, peer, dir) = log.open_concrete(cfg).unwrap();
        rx.set_timeout(Some(Duration::from_secs(5))).unwrap();
        let path = peer.info.splitn(3, ' ').nth(2).unwrap().to_string();
        let tx = log.attach_concrete(peer).unwrap();
        (rx, tx, dir, path)
    }

    #[test]
    fn inotify_masks_are_parsed_and_a_torn_tail_ignored() {
        let event = |mask: u32, name: &[u8]| {
            let mut e = Vec::new();
            e.extend_from_slice(&1i32.to_ne_bytes());
            e.extend_from_slice(&mask.to_ne_bytes());
            e.extend_from_slice(&0u32.to_ne_bytes());
            e.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            e.extend_from_slice(name);
            e
        };
        let mut bytes = event(AddWatchFlags::IN_MODIFY.bits(), b"");
        bytes.extend(event(AddWatchFlags::IN_CLOSE_WRITE.bits(), b"name\0\0\0\0"));
        bytes.extend(&event(AddWatchFlags::IN_Q_OVERFLOW.bits(), b"")[..10]);
        let masks: Vec<_> = inotify_masks(&bytes).collect();
        assert_eq!(
            masks,
            [AddWatchFlags::IN_MODIFY, AddWatchFlags::IN_CLOSE_WRITE]
        );
        assert_eq!(inotify_masks(&[]).count(), 0);
    }

    #[test]
    fn send_recv_and_clean_close() {
        for log in [FileLog::default(), FileLog::durable()] {
            let (mut rx, mut tx, _d, _) = pair(log, &Config::default());
            let mut buf = Vec::new();
            for m in [&b"one"[..], b"", b"three"] {
                tx.send(m).unwrap();
            }
            for m in [&b"one"[..], b"", b"three"] {
                assert_eq!(rx.recv(&mut buf).unwrap(), m.len());
                assert_eq!(buf, m);
            }
            drop(tx);
            assert!(matches!(rx.recv(&mut buf), Err(Error::Closed { .. })));
        }
    }

    #[test]
    fn reader_follows_the_file_as_it_grows() {
        let (mut rx, mut tx, _d, _) = pair(FileLog::default(), &Config::default());
        let writer = std::thread::spawn(move || {
            for i in 0u32..200 {
                tx.send(&i.to_le_bytes()).unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let mut buf = Vec::new();
        for i in 0u32..200 {
            rx.recv(&mut buf).unwrap();
            assert_eq!(buf, i.to_le_bytes());
        }
        writer.join().unwrap();
        assert!(matches!(rx.recv(&mut buf), Err(Error::Closed { .. })));
    }

    #[test]
    fn torn_tail_waits_then_is_an_error_never_a_message() {
        let (mut rx, tx, _d, _) = pair(FileLog::default(), &Config::default());
        let mut whole = Vec::new();
        frame::encode(b"a message that will be torn", 1 << 20, &mut whole).unwrap();
        tx.raw_write(&whole[..whole.len() - 5]);
        let mut buf = Vec::new();
        rx.set_timeout(Some(Duration::from_millis(30))).unwrap();
        // While the writer lives, a partial frame is waited for.
        assert!(matches!(rx.recv(&mut buf), Err(Error::Timeout { .. })));
        // The writer dies mid-frame (its descriptor is closed).
        drop(tx);
        match rx.recv(&mut buf) {
            Err(Error::Frame(_)) => {}
            other => panic!("expected a frame error, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_bytes_are_reported_not_delivered() {
        let (mut rx, mut tx, _d, path) = pair(FileLog::default(), &Config::default());
        tx.send(b"good").unwrap();
        tx.send(b"will be flipped").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        // Rewrite in place (same inode; the reader's descriptor sees it).
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&bytes[last..], last as u64).unwrap();
        let mut buf = Vec::new();
        assert_eq!(rx.recv(&mut buf).unwrap(), 4);
        match rx.recv(&mut buf) {
            Err(Error::Frame(FrameError::BadChecksum { .. })) => {}
            other => panic!("expected a CRC error, got {other:?}"),
        }
    }

    #[test]
    fn bad_info_is_refused() {
        for info in ["", "10", "10 2 /x", "x 0 /x"] {
            let e = FileLog::default()
                .attach(PeerEnd {
                    fds: Vec::new(),
                    info: info.into(),
                })
                .err()
                .unwrap();
            assert!(matches!(e, Error::Protocol(_)), "{info:?}: {e}");
        }
    }
}
