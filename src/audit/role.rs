//! The audit's peer role: the commands a peer serves for the properties, and its events.
//! Errors travel as data ([`ErrorReport`]: kind, errno, text), and the properties decide
//! on kind and errno.

use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, ErrorReport, Result};
use crate::peer::{self, Peer, PeerLauncher, Role};
use crate::transport::{Config, Endpoint, Link};

/// The audit's role: what a peer keeps between commands (the links it holds open).
#[derive(Default)]
pub struct AuditRole {
    held: Vec<Link>,
}

/// A running peer of the audit.
pub(crate) type PeerProcess = peer::PeerProcess<AuditRole>;

impl Role for AuditRole {
    const NAME: &'static str = "audit";
    type Cmd = Cmd;
    type Event = Event;

    fn serve(&mut self, peer: &mut Peer<'_>, cmd: Cmd) -> Result<Event> {
        match cmd {
            Cmd::Hold { dir, name } => Ok(hold(peer, &dir, &name, &mut self.held)),
            Cmd::Loopback {
                sizes,
                rounds,
                churn,
            } => Ok(super::faults::loopback(peer, &sizes, rounds, churn)),
            cmd => run_command(peer.end.as_mut(), &peer.spare, cmd),
        }
    }
}

/// A command from the harness to an audit peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Cmd {
    /// Send messages of these sizes, with content from [`super::exchange::content`].
    Send {
        /// Content seed.
        seed: u64,
        /// Message sizes.
        sizes: Vec<usize>,
    },
    /// Try to send a message of `len` bytes (over the maximum) and report the result.
    Oversize {
        /// Its size.
        len: usize,
    },
    /// Like `Send`, message `i` with priority `priorities[i]`.
    SendPriority {
        /// Content seed.
        seed: u64,
        /// Message sizes.
        sizes: Vec<usize>,
        /// One priority per message.
        priorities: Vec<u32>,
    },
    /// Start a fork+exec child that lists its open descriptors, and report them.
    ListFds,
    /// For `millis` milliseconds, try to get into every object called one of `names` in
    /// every directory under `dir`, as fast as possible.
    Race {
        /// The directory whose subdirectories are watched.
        dir: PathBuf,
        /// The object names to try.
        names: Vec<String>,
        /// For how long.
        millis: u64,
    },
    /// For `millis` milliseconds, watch `dir` and every folder made in it (inotify) and
    /// stat each object called one of `names` the moment it appears or changes, noting
    /// any whose mode has a bit that `mode` does not: the access racer's watcher.
    Watch {
        /// The race directory.
        dir: PathBuf,
        /// The object names to stat.
        names: Vec<String>,
        /// For how long.
        millis: u64,
        /// The mode asked for the objects.
        mode: u32,
    },
    /// Send messages of `size` bytes (content from `seed`) until one is refused or
    /// `limit` went out, in nonblocking mode or with a `timeout_ms` send timeout; then
    /// back to blocking mode and the usual timeout.
    Fill {
        /// Content seed.
        seed: u64,
        /// The index of the first message (its content), so that a later fill can
        /// continue an earlier one's sequence.
        #[serde(default)]
        first: usize,
        /// Message size.
        size: usize,
        /// At most this many.
        limit: usize,
        /// Nonblocking mode (else a send timeout).
        nonblocking: bool,
        /// The send timeout in blocking mode.
        timeout_ms: u64,
    },
    /// Open a link of the peer's transport at `name` in `dir` and keep it open (a crash
    /// then leaves its name behind).
    Hold {
        /// Where.
        dir: PathBuf,
        /// The name.
        name: String,
    },
    /// Report the peer's count of open descriptors.
    CountFds,
    /// Flush the end ([`Endpoint::flush`]) with a 10-second timeout.
    Flush,
    /// Report how many storm signals the peer handled.
    Signals,
    /// Send `signo` to the harness once per value, as `how` says; first make `real_uid`
    /// this process's real uid (the effective uid stays), if given.
    Signal {
        /// How to send.
        how: SigHow,
        /// The harness's pid.
        pid: i32,
        /// The harness thread's tid.
        tid: i32,
        /// The signal.
        signo: i32,
        /// One signal per value.
        values: Vec<i32>,
        /// The real uid to take first.
        #[serde(default)]
        real_uid: Option<u32>,
        /// The `si_pid` to claim in SI_QUEUE signals (default: the peer's own).
        #[serde(default)]
        claim_pid: Option<i32>,
    },
    /// Send messages of these sizes in nonblocking mode (or with a `timeout_ms` send
    /// timeout), retrying a message refused with WouldBlock or Timeout until it is
    /// accepted or `deadline_ms` passed; then flush. Answered with [`Event::Sent`]; a
    /// flush error has the index `sizes.len()`.
    SendRetry {
        /// Content seed.
        seed: u64,
        /// Message sizes.
        sizes: Vec<usize>,
        /// Nonblocking mode (else a send timeout).
        nonblocking: bool,
        /// The send timeout in blocking mode.
        timeout_ms: u64,
        /// The bound on the whole command.
        deadline_ms: u64,
    },
    /// Open links of the peer's own transport and hold both ends in this process: count
    /// descriptors exactly around traffic of `sizes` (sent `rounds` times), list what a
    /// fork+exec child inherits after it, then open and drop `churn` more links.
    Loopback {
        /// Message sizes of one round of traffic.
        sizes: Vec<usize>,
        /// Rounds of that traffic (the count after each must not grow).
        rounds: usize,
        /// Links opened, used once and dropped after.
        churn: usize,
    },
    /// A hostile act on the first descriptor this peer inherited (a memfd of `shm`).
    Hostile {
        /// The act.
        act: HostileAct,
    },
}

/// How a [`Cmd::Signal`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigHow {
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
pub enum HostileAct {
    /// Try to shrink it (to 0 and to one page) and to grow it.
    Resize,
    /// Map it, attach to its ring as the producer, and write `value` into the header
    /// field `field`.
    Scribble {
        /// The header field.
        field: String,
        /// The value written.
        value: u64,
    },
}

/// An event from an audit peer to the harness.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// Finished a `Send`: how many went out, and the send errors by message index.
    Sent {
        /// Messages the command named.
        count: usize,
        /// The errors, by message index.
        errors: Vec<(usize, ErrorReport)>,
    },
    /// Finished an `Oversize`: the error, or `None` if the send was accepted.
    Oversize {
        /// The refusal.
        error: Option<ErrorReport>,
    },
    /// The descriptors a fork+exec child of the peer found open, beyond 0, 1 and 2.
    Fds {
        /// `N -> target` each.
        fds: Vec<String>,
    },
    /// Finished a `Watch`: how many stats found an object, and the paths seen with a mode
    /// wider than asked (`PATH 0o644`, at most 10).
    Watched {
        /// Stats that found an object.
        stats: u64,
        /// Paths seen with a mode wider than asked, with that mode.
        wider: Vec<String>,
    },
    /// Finished a `Race`: how many objects were probed, and the paths it got into.
    Raced {
        /// Probes that found an object.
        probes: u64,
        /// Paths it got into (at most 10).
        entered: Vec<String>,
    },
    /// Finished a `Signal`: the sender's pid, real and effective uid, and the errors by
    /// value index.
    Signalled {
        /// The sender's pid.
        pid: u32,
        /// Its real uid.
        uid: u32,
        /// Its effective uid.
        euid: u32,
        /// The errors, by value index.
        errors: Vec<(usize, ErrorReport)>,
    },
    /// Finished a `Hostile`: what each attempt returned.
    Hostile {
        /// One per attempt: what was tried, and its error or `None` if it succeeded.
        results: Vec<(String, Option<ErrorReport>)>,
    },
    /// Finished a `Fill`: how many were accepted, and the first refusal (`None` if
    /// `limit` went out).
    Filled {
        /// Messages accepted.
        accepted: usize,
        /// The refusal that stopped it.
        error: Option<ErrorReport>,
    },
    /// Finished a `Hold`: the object's path, or the error of the open.
    Held {
        /// The object's path, if it has one.
        path: Option<String>,
        /// The open's error.
        error: Option<ErrorReport>,
    },
    /// The peer's open descriptors beyond 0, 1 and 2.
    FdCount {
        /// How many.
        n: usize,
    },
    /// Finished a `Flush`: the error, if any.
    Flushed {
        /// The flush's error.
        error: Option<ErrorReport>,
    },
    /// Finished a `Loopback`: descriptors (`N -> target`) at each step, and what went
    /// wrong, if anything did.
    Loopback {
        /// Before any link of this command.
        base: Vec<String>,
        /// After each round of traffic on one link.
        rounds: Vec<Vec<String>>,
        /// What a fork+exec child inherited after the traffic, beyond what it did before.
        exec_leaks: Vec<String>,
        /// After that link was dropped.
        dropped: Vec<String>,
        /// After `churn` links were opened and dropped.
        churned: Vec<String>,
        /// The error that stopped it.
        error: Option<ErrorReport>,
    },
    /// Storm signals the peer handled so far.
    Signals {
        /// How many.
        count: u64,
    },
}

/// What stopped a [`Cmd::Fill`], from the kind of its refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nothing: the limit went out.
    None,
    /// [`ErrorKind::WouldBlock`].
    WouldBlock,
    /// [`ErrorKind::Timeout`].
    Timeout,
    /// [`ErrorKind::Closed`].
    Closed,
    /// [`ErrorKind::Unsupported`]: the end has no such mode.
    Unsupported,
    /// Any other error.
    Other,
}

impl Stop {
    /// The stop that `error` (a [`Event::Filled`]'s) means.
    pub fn of(error: &Option<ErrorReport>) -> Stop {
        match error.as_ref().map(|e| e.kind) {
            None => Stop::None,
            Some(ErrorKind::WouldBlock) => Stop::WouldBlock,
            Some(ErrorKind::Timeout) => Stop::Timeout,
            Some(ErrorKind::Closed) => Stop::Closed,
            Some(ErrorKind::Unsupported) => Stop::Unsupported,
            Some(_) => Stop::Other,
        }
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::None => "none",
            Stop::WouldBlock => "would-block",
            Stop::Timeout => "timeout",
            Stop::Closed => "closed",
            Stop::Unsupported => "unsupported",
            Stop::Other => "other",
        })
    }
}

fn run_command(end: &mut dyn Endpoint, spare: &[OwnedFd], cmd: Cmd) -> Result<Event> {
    Ok(match cmd {
        #[cfg(all(target_os = "linux", not(loom)))]
        Cmd::Signal {
            how,
            pid,
            tid,
            signo,
            values,
            real_uid,
            claim_pid,
        } => super::signals::peer_signal(how, (pid, tid), signo, &values, real_uid, claim_pid)?,
        #[cfg(all(target_os = "linux", not(loom)))]
        Cmd::Hostile { act } => super::signals::peer_hostile(spare, &act)?,
        #[cfg(not(all(target_os = "linux", not(loom))))]
        Cmd::Signal { .. } | Cmd::Hostile { .. } => {
            let _ = spare;
            return Err(Error::Unsupported(
                "signal and shm commands need Linux".into(),
            ));
        }
        Cmd::Send { seed, sizes } => send(end, seed, &sizes, None),
        Cmd::SendPriority {
            seed,
            sizes,
            priorities,
        } => send(end, seed, &sizes, Some(&priorities)),
        Cmd::ListFds => Event::Fds {
            fds: peer::child_fds(&PeerLauncher::current_exe_or_self())?,
        },
        Cmd::Race { dir, names, millis } => race(&dir, &names, millis),
        Cmd::Watch {
            dir,
            names,
            millis,
            mode,
        } => super::watch::watch(&dir, &names, millis, mode)?,
        Cmd::Fill {
            seed,
            first,
            size,
            limit,
            nonblocking,
            timeout_ms,
        } => fill(end, (seed, first), size, limit, nonblocking, timeout_ms),
        Cmd::Flush => {
            let r = end
                .set_timeout(Some(Duration::from_secs(10)))
                .and_then(|()| end.flush());
            Event::Flushed {
                error: r.err().map(ErrorReport::from),
            }
        }
        Cmd::CountFds => Event::FdCount {
            n: crate::peer::open_fds().len(),
        },
        Cmd::Signals => Event::Signals {
            count: peer::storm::delivered(),
        },
        Cmd::SendRetry {
            seed,
            sizes,
            nonblocking,
            timeout_ms,
            deadline_ms,
        } => super::faults::send_retry(end, seed, &sizes, nonblocking, timeout_ms, deadline_ms),
        Cmd::Hold { .. } | Cmd::Loopback { .. } => {
            return Err(Error::Protocol(
                "hold and loopback are served by the role, with the transport".into(),
            ));
        }
        Cmd::Oversize { len } => {
            let buf = vec![0x5a; len];
            Event::Oversize {
                error: end.send(&buf).err().map(ErrorReport::from),
            }
        }
    })
}

/// Runs a [`Cmd::Send`], or a [`Cmd::SendPriority`] when `priorities` are given.
fn send(end: &mut dyn Endpoint, seed: u64, sizes: &[usize], priorities: Option<&[u32]>) -> Event {
    let mut buf = Vec::new();
    let mut errors = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        super::exchange::content(seed, i, len, &mut buf);
        let r = match priorities {
            Some(p) => match p.get(i) {
                Some(&p) => end.send_with_priority(&buf, p),
                None => break,
            },
            None => end.send(&buf),
        };
        if let Err(e) = r {
            let closed = matches!(e, Error::Closed { .. });
            errors.push((i, e.report()));
            if closed && priorities.is_none() {
                break;
            }
        }
    }
    Event::Sent {
        count: sizes.len(),
        errors,
    }
}

/// Runs a [`Cmd::Fill`]; `from` is the content seed and the first message's index.
fn fill(
    end: &mut dyn Endpoint,
    from: (u64, usize),
    size: usize,
    limit: usize,
    nonblocking: bool,
    timeout_ms: u64,
) -> Event {
    let setup = if nonblocking {
        end.set_nonblocking(true)
    } else {
        end.set_timeout(Some(Duration::from_millis(timeout_ms)))
    };
    if let Err(e) = setup {
        return Event::Filled {
            accepted: 0,
            error: Some(e.report()),
        };
    }
    let mut buf = Vec::new();
    let mut accepted = 0;
    let mut stop = None;
    while accepted < limit {
        super::exchange::content(from.0, from.1 + accepted, size, &mut buf);
        match end.send(&buf) {
            Ok(()) => accepted += 1,
            Err(e) => {
                stop = Some(e.report());
                break;
            }
        }
    }
    let _ = end.set_nonblocking(false);
    let _ = end.set_timeout(Some(crate::peer::PEER_WAIT));
    Event::Filled {
        accepted,
        error: stop,
    }
}

/// Runs a [`Cmd::Hold`]: opens a link at `name` and keeps it in `held`.
fn hold(peer: &Peer<'_>, dir: &Path, name: &str, held: &mut Vec<Link>) -> Event {
    match peer.open(&Config::default().with_dir(dir).with_name(name)) {
        Ok(link) => {
            let path = link.path.as_ref().map(|p| p.display().to_string());
            held.push(link);
            Event::Held { path, error: None }
        }
        Err(e) => Event::Held {
            path: None,
            error: Some(e.report()),
        },
    }
}

/// Tries to get into objects as they appear: see [`Cmd::Race`].
fn race(dir: &Path, names: &[String], millis: u64) -> Event {
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
fn probe(p: &Path) -> Option<bool> {
    use nix::errno::Errno;
    use std::os::unix::fs::FileTypeExt;
    let kind = std::fs::symlink_metadata(p).ok()?.file_type();
    let r = if kind.is_socket() {
        std::os::unix::net::UnixStream::connect(p).map(drop)
    } else if kind.is_fifo() {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(p)
            .map(drop)
    } else {
        std::fs::File::open(p).map(drop)
    };
    let errno = |e: &std::io::Error| e.raw_os_error().map(Errno::from_raw);
    match r {
        Ok(()) => Some(true),
        Err(e) if matches!(errno(&e), Some(Errno::EACCES | Errno::EPERM)) => Some(false),
        // Past the permission check: no reader (ENXIO), wrong socket type, refused.
        Err(e)
            if matches!(
                errno(&e),
                Some(Errno::ENXIO | Errno::EPROTOTYPE | Errno::ECONNREFUSED)
            ) =>
        {
            Some(true)
        }
        Err(_) => None,
    }
}
