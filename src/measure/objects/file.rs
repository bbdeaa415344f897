//! `raw-file`: the floor of the `file` transport. Two files in a private directory, one
//! per direction; a side appends [`SIZE`] bytes with one `write` (O_APPEND), the other
//! sleeps in `poll` on an inotify descriptor watching that file (IN_MODIFY), reads the
//! event and `pread`s the bytes at its offset. The same kernel objects and wake-up as
//! the transport, without its framing, CRCs or buffering.
//!
//! The measuring side makes both files and both inotify descriptors (a watch belongs to
//! its inotify instance, so the peer's can be made here and handed over with its
//! watch): the peer gets its write end, its read end and its inotify descriptor as aux
//! descriptors 0, 1 and 2, and never needs the path. The directory, named with this
//! pid and a counter, is removed when the objects are dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::stat::Mode;

use super::{COUNTER, SIZE, io, nix};
use crate::error::{Error, Result};
use crate::transport::stream::wait_fd;

/// The private directory, removed on drop.
#[derive(Debug)]
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One side's descriptors: the file it appends to, the file it reads, the inotify
/// descriptor watching the latter, and how far it has read.
#[derive(Debug)]
pub(crate) struct Side {
    w: OwnedFd,
    r: OwnedFd,
    inotify: OwnedFd,
    off: i64,
}

impl Side {
    /// Appends one message.
    fn send(&self, msg: &[u8]) -> Result<()> {
        let n = nix::unistd::write(&self.w, msg).map_err(nix("write"))?;
        if n != msg.len() {
            return Err(Error::Protocol(format!(
                "raw-file floor: wrote {n} of {SIZE}"
            )));
        }
        Ok(())
    }

    /// Waits for the other side's message (an inotify event, then `pread` at the
    /// offset, again while the message is not whole), by `deadline`.
    fn recv(&mut self, buf: &mut [u8], deadline: Instant) -> Result<()> {
        let mut events = [0u8; 256];
        loop {
            wait_fd(
                self.inotify.as_fd(),
                PollFlags::POLLIN,
                Some(deadline),
                "raw-file floor: wait for the inotify event",
            )?;
            nix::unistd::read(&self.inotify, &mut events).map_err(nix("read inotify"))?;
            let n = nix::sys::uio::pread(&self.r, buf, self.off).map_err(nix("pread"))?;
            if n == buf.len() {
                self.off += n as i64;
                return Ok(());
            }
        }
    }
}

/// The measuring side: its descriptors and the directory.
#[derive(Debug)]
pub(crate) struct Local {
    side: Side,
    _dir: Dir,
}

/// Creates `path` (0600, O_EXCL) and returns its append-only write end, a read end and
/// a new inotify descriptor watching it for IN_MODIFY.
fn one_way(path: &std::path::Path) -> Result<(OwnedFd, OwnedFd, OwnedFd)> {
    let cloexec = OFlag::O_CLOEXEC;
    let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_APPEND | cloexec;
    let w = nix::fcntl::open(path, flags, Mode::S_IRUSR | Mode::S_IWUSR).map_err(nix("create"))?;
    let r =
        nix::fcntl::open(path, OFlag::O_RDONLY | cloexec, Mode::empty()).map_err(nix("open"))?;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(nix("inotify_init1"))?;
    inotify
        .add_watch(path, AddWatchFlags::IN_MODIFY)
        .map_err(nix("inotify_add_watch"))?;
    Ok((w, r, inotify.into()))
}

/// Makes the directory and both files: this side's objects and the peer's aux
/// descriptors (write end, read end, inotify).
///
/// # Errors
/// The system error.
pub(crate) fn make() -> Result<(Local, Vec<OwnedFd>)> {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("ipc-audit-floor-{}-{n}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&path)
        .map_err(io("create the directory"))?;
    let dir = Dir(path);
    let (to_peer_w, to_peer_r, peer_inotify) = one_way(&dir.0.join("to-peer"))?;
    let (back_w, back_r, inotify) = one_way(&dir.0.join("back"))?;
    let side = Side {
        w: to_peer_w,
        r: back_r,
        inotify,
        off: 0,
    };
    Ok((
        Local { side, _dir: dir },
        vec![back_w, to_peer_r, peer_inotify],
    ))
}

impl Local {
    /// `count` round trips, each timed and given to `record` in ns.
    ///
    /// # Errors
    /// The system error, or a timeout of `timeout` per round trip.
    pub(crate) fn run(
        &mut self,
        count: usize,
        timeout: Duration,
        mut record: impl FnMut(u64),
    ) -> Result<()> {
        let msg = [0xa5u8; SIZE];
        let mut buf = [0u8; SIZE];
        for _ in 0..count {
            let t = Instant::now();
            self.side.send(&msg)?;
            self.side.recv(&mut buf, t + timeout)?;
            record(t.elapsed().as_nanos() as u64);
        }
        Ok(())
    }
}

/// The peer's side: answers `count` round trips over `fds` (write end, read end,
/// inotify), each wait bounded by 30 s. Its read offset is the length of its own file:
/// it has answered every message before this batch.
///
/// # Errors
/// The system error, or a timeout.
pub(crate) fn peer(fds: Vec<OwnedFd>, count: usize) -> Result<()> {
    let mut it = fds.into_iter();
    let (Some(w), Some(r), Some(inotify)) = (it.next(), it.next(), it.next()) else {
        return Err(Error::Protocol(
            "raw-file floor: the peer needs three descriptors".into(),
        ));
    };
    let off = nix::sys::stat::fstat(&w).map_err(nix("fstat"))?.st_size;
    let mut side = Side { w, r, inotify, off };
    let mut buf = [0u8; SIZE];
    for _ in 0..count {
        side.recv(&mut buf, Instant::now() + Duration::from_secs(30))?;
        side.send(&buf)?;
    }
    Ok(())
}
