//! The harness's side of a peer: start it, send it commands, read its replies.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;

use super::serve::{CONTROL_FD, PeerSpec};
use super::{PEER_ENV, PeerLauncher, PeerOptions, Reply, Role};
use crate::error::{Error, Result};
use crate::transport::PeerEnd;
use crate::transport::stream::{pipe_cloexec, set_nonblocking, wait_fd};

/// The most descriptors one peer can be handed, the control channel included.
const MAX_FDS: usize = crate::sys::process::MAX_PLACED;

/// A running peer process serving role `R`; killed and reaped on drop.
pub struct PeerProcess<R: Role> {
    child: Child,
    stdin: Option<ChildStdin>,
    ctl: BufReader<File>,
    line: String,
    label: String,
    watchdog: Option<(mpsc::Sender<()>, thread::JoinHandle<()>)>,
    role: PhantomData<fn() -> R>,
}

impl<R: Role> PeerProcess<R> {
    /// Starts a peer for `transport` with `peer`'s descriptors and info. `label` (the
    /// transport and property) names the peer in errors. The watchdog kills the peer
    /// after `limit`, whatever the harness is waiting on.
    ///
    /// # Errors
    /// When the control channel cannot be made or the program cannot be started.
    pub fn spawn(
        launcher: &PeerLauncher,
        transport: &str,
        peer: PeerEnd,
        label: String,
        limit: Duration,
        opts: &PeerOptions,
    ) -> Result<Self> {
        Self::spawn_with(launcher, transport, peer, Vec::new(), label, limit, opts)
    }

    /// [`PeerProcess::spawn`] with `aux` descriptors after the transport's (they land
    /// in the peer right after the transport's: [`Peer::aux`](super::Peer::aux)).
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn), and when more than 63 descriptors are to be handed.
    pub fn spawn_with(
        launcher: &PeerLauncher,
        transport: &str,
        peer: PeerEnd,
        aux: Vec<OwnedFd>,
        label: String,
        limit: Duration,
        opts: &PeerOptions,
    ) -> Result<Self> {
        let (ctl_r, ctl_w) = pipe_cloexec("control channel")?;
        let (opts, userns) = super::options::in_userns(opts)?;
        let spec = PeerSpec {
            role: R::NAME.into(),
            transport: transport.into(),
            info: peer.info,
            nfds: peer.fds.len(),
            opts,
            aux: aux.len(),
        };
        let spec = serde_json::to_string(&spec)
            .map_err(|e| Error::Protocol(format!("encode peer spec: {e}")))?;
        let mut sources: Vec<RawFd> = vec![ctl_w.as_raw_fd()];
        sources.extend(peer.fds.iter().map(|f| f.as_raw_fd()));
        sources.extend(aux.iter().map(|f| f.as_raw_fd()));
        if sources.len() > MAX_FDS {
            return Err(Error::invalid(
                "at most 63 descriptors can be handed to a peer",
                sources.len() - 1,
            ));
        }
        let mut cmd = Command::new(&launcher.program);
        cmd.args(&launcher.args)
            .env(PEER_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = spawn_in(&mut cmd, userns, sources, &label).map_err(|e| {
            Error::io(
                format!("{label}: start peer {}", launcher.program.display()),
                e,
            )
        })?;
        // Our copies of the peer's descriptors must go, or the local end never sees EOF.
        drop(ctl_w);
        drop(peer.fds);
        drop(aux);
        let stdin = child.stdin.take();
        set_nonblocking(ctl_r.as_fd(), "control channel")?;
        let watchdog = watchdog(child.id() as i32, limit);
        live(|v| v.push(child.id()));
        Ok(PeerProcess {
            child,
            stdin,
            ctl: BufReader::new(File::from(ctl_r)),
            line: String::new(),
            label,
            watchdog: Some(watchdog),
            role: PhantomData,
        })
    }

    /// Waits up to `timeout` for the peer to report it attached, and checks that it is
    /// a separate process.
    ///
    /// # Errors
    /// [`Error::Remote`] (`what` ends in "could not attach") when the peer reported an
    /// error before attaching; [`Error::Peer`] when it is not a separate process or
    /// replied something else; the errors of [`event`](Self::event).
    pub fn ready(mut self, timeout: Duration) -> Result<Self> {
        match self.event(Instant::now() + timeout)? {
            Reply::Ready { pid } if pid == self.pid() && pid != std::process::id() => Ok(self),
            Reply::Ready { pid } => Err(Error::Peer(format!(
                "{}: the peer reports pid {pid}, the harness started {} and is {}: \
                 not a separate process",
                self.label,
                self.pid(),
                std::process::id()
            ))),
            Reply::Failed(report) => Err(Error::Remote {
                what: format!("{}: peer could not attach", self.label),
                report,
            }),
            Reply::Event(ev) => Err(Error::Peer(format!(
                "{}: expected ready, got {ev:?}",
                self.label
            ))),
        }
    }

    /// The transport and property this peer serves, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The peer's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a command.
    ///
    /// # Errors
    /// When the peer's input is closed or cannot be written.
    pub fn command(&mut self, cmd: &R::Cmd) -> Result<()> {
        let mut line = serde_json::to_string(cmd)
            .map_err(|e| Error::Protocol(format!("encode command: {e}")))?;
        line.push('\n');
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Peer(format!("{}: control input closed", self.label)))?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| Error::io(format!("{}: write to the peer", self.label), e))
    }

    /// The next reply, waiting until `deadline`.
    ///
    /// # Errors
    /// [`Error::Timeout`] at the deadline; [`Error::Peer`] when the peer closed its
    /// control channel; [`Error::Protocol`] for a line that is no reply.
    pub fn event(&mut self, deadline: Instant) -> Result<Reply<R::Event>> {
        loop {
            match self.ctl.read_line(&mut self.line) {
                Ok(0) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(Error::Peer(format!(
                        "{}: peer {} closed its control channel (exit status: {})",
                        self.label,
                        self.child.id(),
                        status.map_or("still running".to_string(), |s| s.to_string())
                    )));
                }
                Ok(_) if self.line.ends_with('\n') => {
                    let line = std::mem::take(&mut self.line);
                    return serde_json::from_str(&line).map_err(|e| {
                        Error::Protocol(format!("{}: bad reply {line:?}: {e}", self.label))
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let op = format!("{}: wait for the peer", self.label);
                    wait_fd(
                        self.ctl.get_ref().as_fd(),
                        PollFlags::POLLIN,
                        Some(deadline),
                        &op,
                    )?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io(format!("{}: read the peer", self.label), e));
                }
            }
        }
    }

    /// The next event of the role, waiting until `deadline`; a [`Reply::Failed`] is an
    /// [`Error::Remote`] naming `what` was asked.
    ///
    /// # Errors
    /// As [`event`](Self::event); [`Error::Remote`] for a failure the peer reported.
    pub fn expect(&mut self, deadline: Instant, what: &str) -> Result<R::Event> {
        match self.event(deadline)? {
            Reply::Event(ev) => Ok(ev),
            Reply::Failed(report) => Err(Error::Remote {
                what: format!("{}: {what}", self.label),
                report,
            }),
            Reply::Ready { .. } => Err(Error::Peer(format!(
                "{}: {what}: the peer said ready twice",
                self.label
            ))),
        }
    }

    /// The next reply if one is there now.
    ///
    /// # Errors
    /// As [`event`](Self::event), except the timeout.
    pub fn try_event(&mut self) -> Result<Option<Reply<R::Event>>> {
        match self.event(Instant::now()) {
            Ok(e) => Ok(Some(e)),
            Err(Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The next event of the role if one is there now; a failure the peer reported is
    /// an [`Error::Remote`], as in [`expect`](Self::expect).
    ///
    /// # Errors
    /// As [`expect`](Self::expect), except the timeout.
    pub fn try_expect(&mut self, what: &str) -> Result<Option<R::Event>> {
        match self.expect(Instant::now(), what) {
            Ok(e) => Ok(Some(e)),
            Err(Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the peer to exit by `deadline` and returns its status.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it is still running at the deadline.
    pub fn wait_exit(&mut self, deadline: Instant) -> Result<std::process::ExitStatus> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        op: format!("{}: wait for peer {} to exit", self.label, self.child.id()),
                        after: Duration::ZERO,
                    });
                }
                Ok(None) => thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(Error::io(format!("{}: wait for the peer", self.label), e)),
            }
        }
    }

    /// Closes the peer's input and waits for it to exit by `deadline`; kills it then.
    ///
    /// # Errors
    /// When it does not exit in time, or exits with a failure status.
    pub fn finish(mut self, deadline: Instant) -> Result<()> {
        self.stdin = None;
        let status = self.wait_exit(deadline)?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Peer(format!(
                "{}: peer {} exited with {status}",
                self.label,
                self.child.id()
            )))
        }
    }
}

impl<R: Role> Drop for PeerProcess<R> {
    fn drop(&mut self) {
        if let Some((tx, dog)) = self.watchdog.take() {
            let _ = tx.send(());
            let _ = dog.join();
        }
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let pid = self.child.id();
        live(|v| v.retain(|p| *p != pid));
    }
}

/// Places the descriptors and spawns `cmd`, in a new user namespace when `userns` says
/// so (`Err` naming why the second uid could not be had).
fn spawn_in(
    cmd: &mut Command,
    userns: Option<super::options::UserNs>,
    sources: Vec<RawFd>,
    label: &str,
) -> std::io::Result<std::process::Child> {
    #[cfg(target_os = "linux")]
    let handshake = match userns {
        Some(ids) => Some(crate::sys::userns::in_new_userns(cmd, ids)?),
        None => None,
    };
    #[cfg(not(target_os = "linux"))]
    let _ = (userns, label);
    crate::sys::process::place_fds(cmd, sources, CONTROL_FD);
    let spawned = cmd.spawn();
    #[cfg(target_os = "linux")]
    if let Some(Err(why)) = handshake.map(crate::sys::userns::after_spawn) {
        if let Ok(mut c) = spawned {
            let _ = c.kill();
            let _ = c.wait();
        }
        return Err(std::io::Error::other(format!("{label}: second uid: {why}")));
    }
    spawned
}

/// The pids of the peers this process started and has not reaped.
static LIVE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn live(f: impl FnOnce(&mut Vec<u32>)) {
    f(&mut LIVE.lock().unwrap_or_else(|e| e.into_inner()));
}

/// The pids of the peers that are running (started and not yet reaped): what an
/// interrupted run kills before it removes its objects.
pub fn live_peers() -> Vec<u32> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A thread that kills `pid` after `limit` unless told to stop first: a stuck harness
/// then sees every wait on the peer end.
fn watchdog(pid: i32, limit: Duration) -> (mpsc::Sender<()>, thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let dog = thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    (tx, dog)
}
