//! The peer's side: set up as the harness asked, attach, then serve one role's
//! commands until standard input closes.

use std::fs::File;
use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::options::{drop_privileges, limit_nofile};
use super::{NO_TRANSPORT, PEER_ENV, PeerOptions, Reply, Role, launcher, storm};
use crate::error::{Error, ErrorReport, Result};
use crate::transport::{Endpoint, Link, PeerEnd, Transport};

/// The control descriptor in the peer.
pub(super) const CONTROL_FD: RawFd = 3;
/// The bound on one wait of the peer's transport end.
pub(crate) const PEER_WAIT: Duration = Duration::from_secs(30);

/// What the peer is told through [`PEER_ENV`].
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PeerSpec {
    /// The [`Role::NAME`] to serve.
    pub(super) role: String,
    pub(super) transport: String,
    pub(super) info: String,
    pub(super) nfds: usize,
    #[serde(default)]
    pub(super) opts: PeerOptions,
    /// Descriptors after the transport's that belong to the role (the measurements: a
    /// socket that carries descriptors back, a shared page).
    #[serde(default)]
    pub(super) aux: usize,
}

/// What a role's commands act on in the peer.
pub struct Peer<'t> {
    /// The transport it attached to (`None` for [`NO_TRANSPORT`]).
    pub transport: Option<Box<dyn Transport + 't>>,
    /// Its end of the link: a detached end that refuses every operation when the peer
    /// attached to nothing.
    pub end: Box<dyn Endpoint + 't>,
    /// The descriptors it inherited and kept, when it attached to nothing.
    pub spare: Vec<OwnedFd>,
    aux: Vec<OwnedFd>,
}

impl Peer<'_> {
    /// The role's auxiliary descriptor `i` (see
    /// [`PeerProcess::spawn_with`](super::PeerProcess::spawn_with)).
    ///
    /// # Errors
    /// [`Error::Invalid`] when there is no such descriptor.
    pub fn aux(&self, i: usize) -> Result<&OwnedFd> {
        self.aux
            .get(i)
            .ok_or_else(|| Error::invalid("no such aux descriptor in the peer", i))
    }

    /// A link of the peer's own transport opened with `cfg`, for a role that needs a
    /// second link (the measurements' way back, a held name).
    ///
    /// # Errors
    /// When the peer has no transport, or the open fails.
    pub fn open(&self, cfg: &crate::transport::Config) -> Result<Link> {
        self.transport
            .as_ref()
            .ok_or_else(|| Error::Unsupported("this peer has no transport".into()))?
            .open(cfg)
    }
}

/// A role the peer program can serve: made by [`RoleEntry::of`] and handed to
/// [`run_if_peer_with`].
#[derive(Clone, Copy)]
pub struct RoleEntry {
    name: &'static str,
    serve: fn(&mut Peer<'_>, &mut File) -> Result<()>,
}

impl RoleEntry {
    /// The entry of role `R`.
    pub const fn of<R: Role>() -> Self {
        RoleEntry {
            name: R::NAME,
            serve: serve_role::<R>,
        }
    }
}

/// If this process was started as a peer (the [`PEER_ENV`] variable is set), serves
/// the role the harness asked for, one of `roles`, and exits; otherwise returns at once.
/// [`crate::run_if_peer`] calls it with every role of the crate; `resolve` finds a
/// transport by name.
pub fn run_if_peer_with<'t, F>(resolve: F, roles: &[RoleEntry])
where
    F: Fn(&str) -> Option<Box<dyn Transport + 't>>,
{
    launcher::list_fds_if_asked();
    let Some(spec) = std::env::var_os(PEER_ENV) else {
        return;
    };
    // The harness put the control channel at descriptor 3, then the transport's and
    // the role's descriptors (see PeerProcess::spawn).
    let Some(mut placed) = crate::sys::process::claim_placed(CONTROL_FD, 1 + peer_fds(&spec))
    else {
        eprintln!("ipc-audit peer: the descriptors from the harness are not open");
        std::process::exit(1);
    };
    let mut ctl = File::from(placed.remove(0));
    let code = match peer_main(&spec, &resolve, roles, placed, &mut ctl) {
        Ok(()) => 0,
        Err(e) => {
            // The harness gets the error over the control channel and decides whether
            // it was expected (an access check refused, a limit reached); stderr is
            // only for an error that channel could not carry.
            if let Err(r) = report::<()>(&mut ctl, &Reply::Failed(e.report())) {
                eprintln!("ipc-audit peer: {e} (and the control channel failed: {r})");
            }
            1
        }
    };
    std::process::exit(code);
}

fn report<E: Serialize>(ctl: &mut File, reply: &Reply<E>) -> Result<()> {
    let mut line =
        serde_json::to_string(reply).map_err(|e| Error::Protocol(format!("encode reply: {e}")))?;
    line.push('\n');
    ctl.write_all(line.as_bytes())
        .map_err(|e| Error::io("peer: write the control channel", e))
}

fn peer_main<'t, F>(
    spec: &std::ffi::OsStr,
    resolve: &F,
    roles: &[RoleEntry],
    placed: Vec<OwnedFd>,
    ctl: &mut File,
) -> Result<()>
where
    F: Fn(&str) -> Option<Box<dyn Transport + 't>>,
{
    let spec: PeerSpec = serde_json::from_str(&spec.to_string_lossy())
        .map_err(|e| Error::Protocol(format!("bad {PEER_ENV}: {e}")))?;
    let role = roles.iter().find(|r| r.name == spec.role).ok_or_else(|| {
        let known: Vec<&str> = roles.iter().map(|r| r.name).collect();
        Error::invalid(
            format!("no such peer role (this program knows {known:?})"),
            &spec.role,
        )
    })?;
    let (fds, aux) = inherited(&spec, placed, ctl)?;
    set_up(&spec.opts)?;
    let _storm = match spec.opts.storm_us {
        Some(us) => Some(storm::Storm::at_this_thread(Duration::from_micros(us))?),
        None => None,
    };
    let mut peer = attach(spec.transport, spec.info, fds, aux, resolve)?;
    peer.end.set_timeout(Some(PEER_WAIT))?;
    report::<()>(
        ctl,
        &Reply::Ready {
            pid: std::process::id(),
        },
    )?;
    (role.serve)(&mut peer, ctl)
}

/// How many descriptors after the control channel `spec` (the raw [`PEER_ENV`] value)
/// says the harness placed; 0 when it cannot be read (then `peer_main` reports why).
fn peer_fds(spec: &std::ffi::OsStr) -> usize {
    serde_json::from_str::<PeerSpec>(&spec.to_string_lossy()).map_or(0, |s| s.nfds + s.aux)
}

/// Splits the placed descriptors into the transport's and the aux ones, and puts
/// close-on-exec back on them and on the control channel.
fn inherited(
    spec: &PeerSpec,
    mut fds: Vec<OwnedFd>,
    ctl: &File,
) -> Result<(Vec<OwnedFd>, Vec<OwnedFd>)> {
    if fds.len() != spec.nfds + spec.aux {
        return Err(Error::Protocol(format!(
            "peer: {} descriptors placed, the spec names {} + {}",
            fds.len(),
            spec.nfds,
            spec.aux
        )));
    }
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
    Ok((fds, aux))
}

/// SIGPIPE, identity and descriptor limit, as `opts` asks.
fn set_up(opts: &PeerOptions) -> Result<()> {
    if opts.sigpipe_default {
        crate::sys::process::default_sigpipe().map_err(|e| Error::sys("peer: reset SIGPIPE", e))?;
    }
    if let Some(id) = &opts.drop_to {
        drop_privileges(id)?;
    }
    if let Some(n) = opts.nofile {
        limit_nofile(n)?;
    }
    Ok(())
}

/// Attaches to `transport` (found by `resolve`) with the inherited descriptors; a peer
/// of [`NO_TRANSPORT`] keeps them as its spare ones.
fn attach<'t, F>(
    transport: String,
    info: String,
    fds: Vec<OwnedFd>,
    aux: Vec<OwnedFd>,
    resolve: &F,
) -> Result<Peer<'t>>
where
    F: Fn(&str) -> Option<Box<dyn Transport + 't>>,
{
    if transport == NO_TRANSPORT {
        return Ok(Peer {
            transport: None,
            end: Box::new(Detached),
            spare: fds,
            aux,
        });
    }
    let t = resolve(&transport)
        .ok_or_else(|| Error::invalid("no such transport in the peer", &transport))?;
    let end = t.attach(PeerEnd { fds, info })?;
    Ok(Peer {
        transport: Some(t),
        end,
        spare: Vec::new(),
        aux,
    })
}

/// Serves role `R`'s commands from standard input until it closes.
fn serve_role<R: Role>(peer: &mut Peer<'_>, ctl: &mut File) -> Result<()> {
    let mut role = R::default();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| Error::io("peer: read commands", e))?;
        let reply = match serde_json::from_str::<R::Cmd>(&line) {
            Ok(cmd) => match role.serve(peer, cmd) {
                Ok(ev) => Reply::Event(ev),
                Err(e) => Reply::Failed(e.report()),
            },
            Err(e) => Reply::Failed(ErrorReport::from(Error::Protocol(format!(
                "bad {} command {line:?}: {e}",
                R::NAME
            )))),
        };
        report(ctl, &reply)?;
    }
    Ok(())
}

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
