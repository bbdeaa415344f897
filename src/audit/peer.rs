//! The peer process: how it is started, how it is talked to, and what it runs.
//!
//! The peer is a real second process, started with [`std::process::Command`] (fork and
//! exec, never arbitrary code after a bare fork), so the harness is safe in a
//! multi-threaded test binary. It is a program that calls [`run_if_peer`] first thing in
//! `main`: the `ipc-audit` binary itself, a test binary, or a user's own program.
//!
//! Hand-over: the environment variable [`PEER_ENV`] holds the transport's name and its
//! [`PeerEnd::info`]; descriptor 3 is the control channel back to the harness; the
//! transport's inherited descriptors follow from descriptor 4 on; standard input carries
//! the commands. Neither control direction goes over the transport under test.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transport::stream::{pipe_cloexec, set_nonblocking, wait_fd};
use crate::transport::{Endpoint, PeerEnd, Transport};

/// The environment variable that makes a program a peer; see [`run_if_peer`].
pub const PEER_ENV: &str = "IPC_AUDIT_PEER";
/// The control descriptor in the peer.
const CONTROL_FD: RawFd = 3;
/// The first transport descriptor in the peer.
const FIRST_FD: RawFd = 4;

/// What the peer is told through [`PEER_ENV`].
#[derive(Debug, Serialize, Deserialize)]
struct PeerSpec {
    transport: String,
    info: String,
    nfds: usize,
    #[serde(default)]
    opts: PeerOptions,
    /// Descriptors after the transport's that belong to the harness protocol (the
    /// measurements: a socket that carries descriptors back, a shared page).
    #[serde(default)]
    aux: usize,
}

/// A user and groups the peer becomes before it attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (replacing all of the parent's).
    pub groups: Vec<u32>,
}

impl Identity {
    /// `nobody`: uid and gid 65534, with the supplementary `groups`.
    pub fn nobody(groups: Vec<u32>) -> Self {
        Identity {
            uid: 65534,
            gid: 65534,
            groups,
        }
    }
}

/// How the peer sets itself up before attaching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerOptions {
    /// Drop to this identity after exec and before attaching (setgroups, setgid,
    /// setuid, in that order). Needs root.
    pub drop_to: Option<Identity>,
    /// Put SIGPIPE back to its default disposition (Rust programs start with it
    /// ignored), so that a write to a closed pipe would kill the peer.
    pub sigpipe_default: bool,
    /// Aim a signal storm (SIGURG, no-op handler without SA_RESTART) at the peer's main
    /// thread every this many microseconds, from before it attaches to its exit.
    #[serde(default)]
    pub storm_us: Option<u64>,
    /// Lower the peer's RLIMIT_NOFILE (soft) to this before it attaches.
    #[serde(default)]
    pub nofile: Option<u64>,
}

/// A command from the harness to the peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub(crate) enum Cmd {
    /// Send messages of these sizes, with content from [`super::exchange::content`].
    Send { seed: u64, sizes: Vec<usize> },
    /// Try to send a message of `len` bytes (over the maximum) and report the result.
    Oversize { len: usize },
    /// Like `Send`, message `i` with priority `priorities[i]`.
    SendPriority {
        seed: u64,
        sizes: Vec<usize>,
        priorities: Vec<u32>,
    },
    /// Start a fork+exec child that lists its open descriptors, and report them.
    ListFds,
    /// For `millis` milliseconds, try to get into every object called one of `names` in
    /// every directory under `dir`, as fast as possible.
    Race {
        dir: PathBuf,
        names: Vec<String>,
        millis: u64,
    },
    /// Send messages of `size` bytes (content from `seed`) until one is refused or
    /// `limit` went out, in nonblocking mode or with a `timeout_ms` send timeout; then
    /// back to blocking mode and the usual timeout.
    Fill {
        seed: u64,
        size: usize,
        limit: usize,
        nonblocking: bool,
        timeout_ms: u64,
    },
    /// Open a link of the peer's transport at `name` in `dir` and keep it open (a crash
    /// then leaves its name behind).
    Hold { dir: PathBuf, name: String },
    /// Report the peer's count of open descriptors.
    CountFds,
    /// Flush the end ([`Endpoint::flush`]) with a 10-second timeout.
    Flush,
    /// Report how many storm signals the peer handled.
    Signals,
    /// Send `signo` to the harness once per value, as `how` says; first make `real_uid`
    /// this process's real uid (the effective uid stays), if given.
    Signal {
        how: SigHow,
        pid: i32,
        tid: i32,
        signo: i32,
        values: Vec<i32>,
        #[serde(default)]
        real_uid: Option<u32>,
        /// The `si_pid` to claim in SI_QUEUE signals (default: the peer's own).
        #[serde(default)]
        claim_pid: Option<i32>,
    },
    /// A hostile act on the first descriptor this peer inherited (a memfd of `shm`).
    Hostile { act: HostileAct },
    /// Pin every thread of the peer to `cpu`.
    Pin { cpu: usize },
    /// Open a link of the same transport for the way back (harness to peer): its
    /// descriptors go to the harness over the socket at aux descriptor `aux` (one byte,
    /// SCM_RIGHTS), its info in [`Event::BackOpened`].
    OpenBack {
        max_message: Option<usize>,
        aux: usize,
    },
    /// Receive `count` messages (on the back link when there is one, else on the link)
    /// and send each back on the link, unchanged.
    Echo { count: usize },
    /// Send `count` messages of `size` bytes as fast as possible; stop after `limit_ms`.
    Stream {
        count: usize,
        size: usize,
        limit_ms: u64,
    },
    /// Bounce `count` round trips over the shared page at aux descriptor `aux`.
    Floor {
        kind: crate::measure::FloorKind,
        count: usize,
        aux: usize,
    },
}

/// How a [`Cmd::Signal`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SigHow {
    /// `kill(pid, signo)`: process-directed, SI_USER.
    Kill,
    /// `sigqueue(pid, signo, value)` (`rt_sigqueueinfo`): process-directed, SI_QUEUE.
    Sigqueue,
    /// `rt_tgsigqueueinfo(pid, tid, signo, value)`: to one thread, SI_QUEUE.
    ThreadQueue,
    /// `tgkill(pid, tid, signo)`: to one thread, SI_TKILL.
    Tgkill,
}

/// What a [`Cmd::Hostile`] does to the inherited memfd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum HostileAct {
    /// Try to shrink it (to 0 and to one page) and to grow it.
    Resize,
    /// Map it, attach to its ring as the producer, and write `value` into the header
    /// field `field`.
    Scribble { field: String, value: u64 },
}

/// An event from the peer to the harness.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub(crate) enum Event {
    /// Attached; its pid.
    Ready { pid: u32 },
    /// Could not attach, or a command was malformed.
    Failed { message: String },
    /// Finished a `Send`: how many went out, and the send errors by message index.
    Sent {
        count: usize,
        errors: Vec<(usize, String)>,
    },
    /// Finished an `Oversize`: the error, or `None` if the send was accepted.
    Oversize { error: Option<String> },
    /// The descriptors a fork+exec child of the peer found open, beyond 0, 1 and 2.
    Fds { fds: Vec<String> },
    /// Finished a `Race`: how many objects were probed, and the paths it got into.
    Raced { probes: u64, entered: Vec<String> },
    /// Finished a `Signal`: the sender's pid, real and effective uid, and the errors by
    /// value index.
    Signalled {
        pid: u32,
        uid: u32,
        euid: u32,
        errors: Vec<(usize, String)>,
    },
    /// Finished a `Hostile`: what each attempt returned, in words.
    Hostile { results: Vec<String> },
    /// Finished a `Fill`: how many were accepted, and how the first refusal read
    /// (`would-block`, `timeout`, `closed`, `other`, or `none` if `limit` went out).
    Filled {
        accepted: usize,
        kind: String,
        error: Option<String>,
    },
    /// Finished a `Hold`: the object's path, or the error of the open.
    Held {
        path: Option<String>,
        error: Option<String>,
    },
    /// The peer's open descriptors beyond 0, 1 and 2.
    FdCount { n: usize },
    /// Finished a `Flush`: the error, if any.
    Flushed { error: Option<String> },
    /// Storm signals the peer handled so far.
    Signals { count: u64 },
    /// Finished a `Pin`.
    Pinned { cpu: usize },
    /// Finished an `OpenBack`: the back link's info and how many descriptors were sent.
    BackOpened { info: String, nfds: usize },
    /// Finished an `Echo`: round trips served, the peer's resource usage while serving
    /// them, the error that stopped it early.
    Echoed {
        count: usize,
        usage: crate::measure::Usage,
        error: Option<String>,
    },
    /// Finished a `Stream`: messages sent, usage, the error that stopped it early.
    Streamed {
        sent: usize,
        usage: crate::measure::Usage,
        error: Option<String>,
    },
    /// Finished a `Floor`.
    FloorDone { count: usize, error: Option<String> },
}

/// How to start a peer process. The program must call [`run_if_peer`] at the top of its
/// `main` (or of the test named in its arguments).
#[derive(Debug, Clone)]
pub struct PeerLauncher {
    program: PathBuf,
    args: Vec<OsString>,
}

impl PeerLauncher {
    /// Runs `program` with `args`.
    pub fn program(program: impl Into<PathBuf>, args: impl IntoIterator<Item = OsString>) -> Self {
        PeerLauncher {
            program: program.into(),
            args: args.into_iter().collect(),
        }
    }

    /// Re-runs the current executable with no arguments: right for a program whose
    /// `main` starts with [`run_if_peer`].
    ///
    /// # Errors
    /// When the current executable cannot be found.
    pub fn current_exe() -> Result<Self> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("find the current executable", e))?;
        Ok(Self::program(exe, []))
    }

    /// [`current_exe`](Self::current_exe), keeping the program and arguments of the
    /// launcher this peer was started with when it is itself a test binary.
    pub(crate) fn current_exe_or_self() -> Self {
        let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let args = std::env::args_os().skip(1).collect();
        PeerLauncher { program, args }
    }

    /// Re-runs the current test binary for the one test `test_name`, which must start
    /// with [`run_if_peer`]: for audits run from a `#[test]`.
    ///
    /// # Errors
    /// When the current executable cannot be found.
    pub fn test_binary(test_name: &str) -> Result<Self> {
        let mut l = Self::current_exe()?;
        l.args = [
            "--exact",
            test_name,
            "--nocapture",
            "--test-threads",
            "1",
            "-q",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        Ok(l)
    }
}

/// A running peer process; killed and reaped on drop.
pub(crate) struct PeerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    ctl: BufReader<File>,
    line: String,
    label: String,
    watchdog: Option<(mpsc::Sender<()>, thread::JoinHandle<()>)>,
}

impl PeerProcess {
    /// Starts a peer for `transport` with `peer`'s descriptors and info. `label` (the
    /// transport and property) names the peer in errors. The watchdog kills the peer
    /// after `limit`, whatever the harness is waiting on.
    pub(crate) fn spawn(
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
    /// in the peer right after the transport's).
    pub(crate) fn spawn_with(
        launcher: &PeerLauncher,
        transport: &str,
        peer: PeerEnd,
        aux: Vec<OwnedFd>,
        label: String,
        limit: Duration,
        opts: &PeerOptions,
    ) -> Result<Self> {
        let (ctl_r, ctl_w) = pipe_cloexec("control channel")?;
        let spec = PeerSpec {
            transport: transport.into(),
            info: peer.info,
            nfds: peer.fds.len(),
            opts: opts.clone(),
            aux: aux.len(),
        };
        let spec = serde_json::to_string(&spec)
            .map_err(|e| Error::Protocol(format!("encode peer spec: {e}")))?;
        let mut sources: Vec<RawFd> = vec![ctl_w.as_raw_fd()];
        sources.extend(peer.fds.iter().map(|f| f.as_raw_fd()));
        sources.extend(aux.iter().map(|f| f.as_raw_fd()));
        if sources.len() > 64 {
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
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // fcntl and dup2, which are async-signal-safe; it touches no lock and allocates
        // nothing (`sources` was built before the fork).
        unsafe {
            cmd.pre_exec(move || {
                // Move every source above the target range first (close-on-exec, so the
                // copies vanish at exec), then put each in its slot; dup2 clears
                // close-on-exec on the target.
                let mut high = [0 as RawFd; 64];
                for (i, &fd) in sources.iter().enumerate().take(high.len()) {
                    let h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
                    if h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    high[i] = h;
                }
                for (i, &h) in high.iter().enumerate().take(sources.len().min(64)) {
                    if libc::dup2(h, CONTROL_FD + i as RawFd) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| {
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
        let (tx, rx) = mpsc::channel::<()>();
        let pid = child.id() as i32;
        let dog = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                // The harness is stuck: kill the peer so that every wait on it ends.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
        Ok(PeerProcess {
            child,
            stdin,
            ctl: BufReader::new(File::from(ctl_r)),
            line: String::new(),
            label,
            watchdog: Some((tx, dog)),
        })
    }

    /// The transport and property this peer serves, for messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The peer's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a command.
    pub(crate) fn command(&mut self, cmd: &Cmd) -> Result<()> {
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

    /// The next event, waiting until `deadline`.
    pub(crate) fn event(&mut self, deadline: Instant) -> Result<Event> {
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
                        Error::Protocol(format!("{}: bad event {line:?}: {e}", self.label))
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

    /// The next event if one is there now.
    pub(crate) fn try_event(&mut self) -> Result<Option<Event>> {
        match self.event(Instant::now()) {
            Ok(e) => Ok(Some(e)),
            Err(Error::Timeout { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the peer to exit by `deadline` and returns its status.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> Result<std::process::ExitStatus> {
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
    pub(crate) fn finish(mut self, deadline: Instant) -> Result<()> {
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

impl Drop for PeerProcess {
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
    }
}

/// If this process was started as a peer (the [`PEER_ENV`] variable is set), runs the
/// peer role and exits; otherwise returns at once. Call it first thing in `main`, or at
/// the top of the test that [`PeerLauncher::test_binary`] names. `resolve` finds a
/// transport by name, e.g. [`crate::transport::by_name`].
///
/// # Examples
///
/// ```no_run
/// fn main() {
///     ipc_audit::audit::run_if_peer(ipc_audit::transport::by_name);
///     // ... the program's real work ...
/// }
/// ```
pub fn run_if_peer<'t, F>(resolve: F)
where
    F: Fn(&str) -> Option<Box<dyn Transport + 't>>,
{
    if std::env::var_os(LIST_FDS_ENV).is_some() {
        for fd in open_fds() {
            println!("{LIST_FDS_PREFIX}{fd}");
        }
        std::process::exit(0);
    }
    let Some(spec) = std::env::var_os(PEER_ENV) else {
        return;
    };
    // SAFETY: the harness put the control channel at descriptor 3 (see
    // PeerProcess::spawn); nothing else in this fresh process owns it.
    let mut ctl = unsafe { File::from_raw_fd(CONTROL_FD) };
    let code = match peer_main(&spec, &resolve, &mut ctl) {
        Ok(()) => 0,
        Err(e) => {
            let ev = Event::Failed {
                message: e.to_string(),
            };
            // The harness gets the error over the control channel and decides whether
            // it was expected (an access check refused, a limit reached); stderr is
            // only for an error that channel could not carry.
            if let Err(r) = report(&mut ctl, &ev) {
                eprintln!("ipc-audit peer: {e} (and the control channel failed: {r})");
            }
            1
        }
    };
    std::process::exit(code);
}

fn report(ctl: &mut File, ev: &Event) -> Result<()> {
    let mut line =
        serde_json::to_string(ev).map_err(|e| Error::Protocol(format!("encode event: {e}")))?;
    line.push('\n');
    ctl.write_all(line.as_bytes())
        .map_err(|e| Error::io("peer: write the control channel", e))
}

fn peer_main<'t, F>(spec: &std::ffi::OsStr, resolve: &F, ctl: &mut File) -> Result<()>
where
    F: Fn(&str) -> Option<Box<dyn Transport + 't>>,
{
    let spec: PeerSpec = serde_json::from_str(&spec.to_string_lossy())
        .map_err(|e| Error::Protocol(format!("bad {PEER_ENV}: {e}")))?;
    let mut fds: Vec<OwnedFd> = (0..spec.nfds + spec.aux)
        .map(|i| {
            // SAFETY: the harness dup2'd the transport's descriptors, then the aux ones,
            // to 4, 5, ... in this process before exec; each is owned here once.
            unsafe { OwnedFd::from_raw_fd(FIRST_FD + i as RawFd) }
        })
        .collect();
    let aux = fds.split_off(spec.nfds);
    // dup2 cleared close-on-exec on the inherited descriptors; put it back so that
    // they do not leak into the peer's own children.
    for fd in fds
        .iter()
        .chain(aux.iter())
        .map(|f| f.as_fd())
        .chain([ctl.as_fd()])
    {
        use nix::fcntl::{FcntlArg, FdFlag, fcntl};
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| Error::sys("peer: set close-on-exec", e))?;
    }
    if spec.opts.sigpipe_default {
        // SAFETY: SIG_DFL installs no handler; the peer is single-threaded here.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            )
        }
        .map_err(|e| Error::sys("peer: reset SIGPIPE", e))?;
    }
    if let Some(id) = &spec.opts.drop_to {
        drop_privileges(id)?;
    }
    if let Some(n) = spec.opts.nofile {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)
            .map_err(|e| Error::sys("peer: getrlimit NOFILE", e))?;
        setrlimit(Resource::RLIMIT_NOFILE, (n as libc::rlim_t).min(hard), hard)
            .map_err(|e| Error::sys(format!("peer: setrlimit NOFILE {n}"), e))?;
    }
    let _storm = match spec.opts.storm_us {
        Some(us) => Some(super::storm::Storm::at_this_thread(Duration::from_micros(
            us,
        ))?),
        None => None,
    };
    let mut held = Vec::new();
    let mut transport = None;
    // A peer attached to nothing keeps the descriptors it inherited, for hostile acts.
    let (mut end, spare): (Box<dyn Endpoint>, Vec<OwnedFd>) = if spec.transport == NO_TRANSPORT {
        (Box::new(Detached), fds)
    } else {
        let t = resolve(&spec.transport)
            .ok_or_else(|| Error::invalid("no such transport in the peer", &spec.transport))?;
        let end = t.attach(PeerEnd {
            fds,
            info: spec.info,
        })?;
        transport = Some(t);
        (end, Vec::new())
    };
    end.set_timeout(Some(PEER_WAIT))?;
    let mut state = PeerState {
        transport,
        back: None,
        aux,
        pinned: None,
    };
    report(
        ctl,
        &Event::Ready {
            pid: std::process::id(),
        },
    )?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| Error::io("peer: read commands", e))?;
        let cmd: Cmd = serde_json::from_str(&line)
            .map_err(|e| Error::Protocol(format!("bad command {line:?}: {e}")))?;
        let ev = match cmd {
            Cmd::Hold { dir, name } => hold(state.transport.as_deref(), &dir, &name, &mut held),
            cmd @ (Cmd::Pin { .. }
            | Cmd::OpenBack { .. }
            | Cmd::Echo { .. }
            | Cmd::Stream { .. }
            | Cmd::Floor { .. }) => state.measure(end.as_mut(), cmd),
            cmd => run_command(end.as_mut(), &spare, cmd),
        };
        report(ctl, &ev)?;
    }
    Ok(())
}

/// The bound on one wait of the peer's transport end.
const PEER_WAIT: Duration = Duration::from_secs(30);

/// What a peer keeps between measurement commands.
struct PeerState<'t> {
    transport: Option<Box<dyn Transport + 't>>,
    back: Option<crate::transport::Link>,
    aux: Vec<OwnedFd>,
    pinned: Option<crate::sys::Pinned>,
}

impl PeerState<'_> {
    fn aux(&self, i: usize) -> Result<&OwnedFd> {
        self.aux
            .get(i)
            .ok_or_else(|| Error::invalid("no such aux descriptor in the peer", i))
    }

    /// The measurement commands ([`crate::measure`]).
    fn measure(&mut self, end: &mut dyn Endpoint, cmd: Cmd) -> Event {
        let failed = |e: Error| Event::Failed {
            message: e.to_string(),
        };
        match cmd {
            Cmd::Pin { cpu } => {
                self.pinned = None;
                match crate::sys::pin_process(cpu) {
                    Ok(p) => {
                        self.pinned = Some(p);
                        Event::Pinned { cpu }
                    }
                    Err(e) => failed(e),
                }
            }
            Cmd::OpenBack { max_message, aux } => match self.open_back(max_message, aux) {
                Ok(ev) => ev,
                Err(e) => failed(e),
            },
            Cmd::Echo { count } => {
                let input = self
                    .back
                    .as_mut()
                    .map(|l| -> &mut dyn Endpoint { l.local.as_mut() });
                let (count, usage, error) = crate::measure::peer_echo(input, end, count);
                Event::Echoed {
                    count,
                    usage,
                    error: error.map(|e| e.to_string()),
                }
            }
            Cmd::Stream {
                count,
                size,
                limit_ms,
            } => {
                let (sent, usage, error) =
                    crate::measure::peer_stream(end, count, size, Duration::from_millis(limit_ms));
                Event::Streamed {
                    sent,
                    usage,
                    error: error.map(|e| e.to_string()),
                }
            }
            Cmd::Floor { kind, count, aux } => {
                let fd = match self.aux(aux).and_then(|f| {
                    f.try_clone()
                        .map_err(|e| Error::io("peer: dup the floor page", e))
                }) {
                    Ok(f) => f,
                    Err(e) => return failed(e),
                };
                match crate::measure::floor::peer(kind, fd, count) {
                    Ok(()) => Event::FloorDone { count, error: None },
                    Err(e) => Event::FloorDone {
                        count: 0,
                        error: Some(e.to_string()),
                    },
                }
            }
            other => failed(Error::Protocol(format!(
                "not a measurement command: {other:?}"
            ))),
        }
    }

    /// Opens the back link and sends its descriptors over the aux socket.
    fn open_back(&mut self, max_message: Option<usize>, aux: usize) -> Result<Event> {
        let transport = self
            .transport
            .as_ref()
            .ok_or_else(|| Error::Protocol("open-back: this peer has no transport".into()))?;
        let mut cfg = crate::transport::Config::default();
        if let Some(m) = max_message {
            cfg = cfg.with_max_message(m);
        }
        let mut link = transport.open(&cfg)?;
        link.local.set_timeout(Some(PEER_WAIT))?;
        let peer_end = std::mem::take(&mut link.peer);
        crate::measure::send_fds(self.aux(aux)?.as_fd(), &peer_end.fds)?;
        let nfds = peer_end.fds.len();
        drop(peer_end.fds);
        self.back = Some(link);
        Ok(Event::BackOpened {
            info: peer_end.info,
            nfds,
        })
    }
}

fn run_command(end: &mut dyn Endpoint, spare: &[OwnedFd], cmd: Cmd) -> Event {
    match cmd {
        #[cfg(all(target_os = "linux", not(loom)))]
        Cmd::Signal {
            how,
            pid,
            tid,
            signo,
            values,
            real_uid,
            claim_pid,
        } => super::signals::peer_signal(how, (pid, tid), signo, &values, real_uid, claim_pid),
        #[cfg(all(target_os = "linux", not(loom)))]
        Cmd::Hostile { act } => super::signals::peer_hostile(spare, &act),
        #[cfg(not(all(target_os = "linux", not(loom))))]
        Cmd::Signal { .. } | Cmd::Hostile { .. } => {
            let _ = spare;
            Event::Failed {
                message: "signal and shm commands need Linux".into(),
            }
        }
        Cmd::Send { seed, sizes } => {
            let mut buf = Vec::new();
            let mut errors = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                super::exchange::content(seed, i, len, &mut buf);
                if let Err(e) = end.send(&buf) {
                    errors.push((i, e.to_string()));
                    if matches!(e, Error::Closed { .. }) {
                        break;
                    }
                }
            }
            Event::Sent {
                count: sizes.len(),
                errors,
            }
        }
        Cmd::ListFds => match child_fds(&PeerLauncher::current_exe_or_self()) {
            Ok(fds) => Event::Fds { fds },
            Err(e) => Event::Failed {
                message: e.to_string(),
            },
        },
        Cmd::SendPriority {
            seed,
            sizes,
            priorities,
        } => {
            let mut buf = Vec::new();
            let mut errors = Vec::new();
            for (i, (&len, &p)) in sizes.iter().zip(&priorities).enumerate() {
                super::exchange::content(seed, i, len, &mut buf);
                if let Err(e) = end.send_with_priority(&buf, p) {
                    errors.push((i, e.to_string()));
                }
            }
            Event::Sent {
                count: sizes.len(),
                errors,
            }
        }
        Cmd::Race { dir, names, millis } => race(&dir, &names, millis),
        Cmd::Fill {
            seed,
            size,
            limit,
            nonblocking,
            timeout_ms,
        } => fill(end, seed, size, limit, nonblocking, timeout_ms),
        Cmd::Flush => {
            let r = end
                .set_timeout(Some(Duration::from_secs(10)))
                .and_then(|()| end.flush());
            Event::Flushed {
                error: r.err().map(|e| e.to_string()),
            }
        }
        Cmd::CountFds => Event::FdCount {
            n: open_fds().len(),
        },
        Cmd::Signals => Event::Signals {
            count: super::storm::delivered(),
        },
        Cmd::Hold { .. } => Event::Failed {
            message: "hold is handled by the peer's main loop".into(),
        },
        Cmd::Oversize { len } => {
            let buf = vec![0x5a; len];
            Event::Oversize {
                error: end.send(&buf).err().map(|e| e.to_string()),
            }
        }
        other => Event::Failed {
            message: format!("unexpected command {other:?}"),
        },
    }
}

/// Runs a [`Cmd::Fill`].
fn fill(
    end: &mut dyn Endpoint,
    seed: u64,
    size: usize,
    limit: usize,
    nonblocking: bool,
    timeout_ms: u64,
) -> Event {
    let mut setup = || -> Result<()> {
        if nonblocking {
            end.set_nonblocking(true)
        } else {
            end.set_timeout(Some(Duration::from_millis(timeout_ms)))
        }
    };
    if let Err(e) = setup() {
        return Event::Filled {
            accepted: 0,
            kind: if matches!(e, Error::Unsupported(_)) {
                "unsupported".into()
            } else {
                "other".into()
            },
            error: Some(e.to_string()),
        };
    }
    let mut buf = Vec::new();
    let mut accepted = 0;
    let mut stop = None;
    while accepted < limit {
        super::exchange::content(seed, accepted, size, &mut buf);
        match end.send(&buf) {
            Ok(()) => accepted += 1,
            Err(e) => {
                stop = Some(e);
                break;
            }
        }
    }
    let _ = end.set_nonblocking(false);
    let _ = end.set_timeout(Some(Duration::from_secs(30)));
    let kind = match &stop {
        None => "none",
        Some(Error::WouldBlock { .. }) => "would-block",
        Some(Error::Timeout { .. }) => "timeout",
        Some(Error::Closed { .. }) => "closed",
        Some(_) => "other",
    };
    Event::Filled {
        accepted,
        kind: kind.into(),
        error: stop.map(|e| e.to_string()),
    }
}

/// Runs a [`Cmd::Hold`]: opens a link at `name` and keeps it in `held`.
fn hold(
    transport: Option<&dyn Transport>,
    dir: &std::path::Path,
    name: &str,
    held: &mut Vec<crate::transport::Link>,
) -> Event {
    let Some(t) = transport else {
        return Event::Held {
            path: None,
            error: Some("this peer has no transport".into()),
        };
    };
    let cfg = crate::transport::Config::default()
        .with_dir(dir)
        .with_name(name);
    match t.open(&cfg) {
        Ok(link) => {
            let path = link.path.as_ref().map(|p| p.display().to_string());
            held.push(link);
            Event::Held { path, error: None }
        }
        Err(e) => Event::Held {
            path: None,
            error: Some(e.to_string()),
        },
    }
}

/// Set in a child that only lists its descriptors (see [`child_fds`]).
const LIST_FDS_ENV: &str = "IPC_AUDIT_LIST_FDS";
/// The prefix of each descriptor line the lister prints.
const LIST_FDS_PREFIX: &str = "ipc-audit-fd ";

/// This process's open descriptors beyond 0, 1 and 2, as `N -> target`, leaving out the
/// one that lists the directory.
fn open_fds() -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(n) = name.parse::<i32>() else { continue };
            if n <= 2 {
                continue;
            }
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            // The directory being read, or a descriptor already closed.
            if target.starts_with("/proc/") || target.is_empty() {
                continue;
            }
            v.push(format!("{n} -> {target}"));
        }
    }
    v.sort();
    v
}

/// Starts a fork+exec child of `launcher`'s program that lists its descriptors (beyond
/// 0, 1, 2), and returns them: whatever is there leaked across exec.
pub(crate) fn child_fds(launcher: &PeerLauncher) -> Result<Vec<String>> {
    let out = Command::new(&launcher.program)
        .args(&launcher.args)
        .env(LIST_FDS_ENV, "1")
        .env_remove(PEER_ENV)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| {
            Error::io(
                format!("start {} to list descriptors", launcher.program.display()),
                e,
            )
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(LIST_FDS_PREFIX).map(str::to_string))
        .collect())
}

/// setgroups, setgid, setuid, in that order.
fn drop_privileges(id: &Identity) -> Result<()> {
    use nix::unistd::{Gid, Uid, setgid, setuid};
    #[cfg(not(target_vendor = "apple"))]
    {
        let groups: Vec<Gid> = id.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        nix::unistd::setgroups(&groups)
            .map_err(|e| Error::sys(format!("peer: setgroups {:?}", id.groups), e))?;
    }
    #[cfg(target_vendor = "apple")]
    {
        let groups: Vec<libc::gid_t> = id.groups.clone();
        // SAFETY: `groups` is a valid array of `groups.len()` gids for the call's duration.
        let r = unsafe { libc::setgroups(groups.len() as libc::c_int, groups.as_ptr()) };
        if r != 0 {
            return Err(Error::io(
                format!("peer: setgroups {:?}", id.groups),
                std::io::Error::last_os_error(),
            ));
        }
    }
    setgid(Gid::from_raw(id.gid)).map_err(|e| Error::sys(format!("peer: setgid {}", id.gid), e))?;
    setuid(Uid::from_raw(id.uid)).map_err(|e| Error::sys(format!("peer: setuid {}", id.uid), e))?;
    Ok(())
}

/// The transport name of a peer that attaches to nothing (a racer).
pub(crate) const NO_TRANSPORT: &str = "-";

/// The end of a peer that attached to nothing.
struct Detached;

impl Endpoint for Detached {
    fn send(&mut self, _: &[u8]) -> Result<()> {
        Err(Error::Unsupported(
            "this peer is attached to no transport".into(),
        ))
    }

    fn recv(&mut self, _: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Unsupported(
            "this peer is attached to no transport".into(),
        ))
    }

    fn set_timeout(&mut self, _: Option<Duration>) -> Result<()> {
        Ok(())
    }
}

/// Tries to get into objects as they appear: see [`Cmd::Race`].
fn race(dir: &std::path::Path, names: &[String], millis: u64) -> Event {
    let end = Instant::now() + Duration::from_millis(millis);
    let mut probes = 0;
    let mut entered = Vec::new();
    while Instant::now() < end {
        let Ok(entries) = std::fs::read_dir(dir) else {
            break;
        };
        for e in entries.flatten() {
            for n in names {
                let p = e.path().join(n);
                if let Some(got_in) = probe(&p) {
                    probes += 1;
                    if got_in && entered.len() < 10 {
                        entered.push(p.display().to_string());
                    }
                }
            }
        }
    }
    Event::Raced { probes, entered }
}

/// Whether this process may open `p` (its permission check passed); `None` when there
/// is nothing there, or the error says nothing about permission.
fn probe(p: &std::path::Path) -> Option<bool> {
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::symlink_metadata(p).ok()?.file_type();
    let denied =
        |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
    let r = if kind.is_socket() {
        std::os::unix::net::UnixStream::connect(p).map(drop)
    } else if kind.is_fifo() {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
            .map(drop)
    } else {
        std::fs::File::open(p).map(drop)
    };
    match r {
        Ok(()) => Some(true),
        Err(e) if denied(&e) => Some(false),
        // Past the permission check: no reader (ENXIO), wrong socket type, refused.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENXIO) | Some(libc::EPROTOTYPE) | Some(libc::ECONNREFUSED)
            ) =>
        {
            Some(true)
        }
        Err(_) => None,
    }
}
