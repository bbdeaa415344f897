//! `stale`: a name left by a SIGKILLed owner is reclaimed on reopen; a live owner's
//! name is refused and its object kept (and, for a transport that carries data, still
//! working).

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{Outcome, Step, failed};
use crate::audit::exchange::{analyse, ready, receive, start};
use crate::audit::role::{Cmd, Event, PeerProcess};
use crate::audit::{Ctx, PropertyResult, Verdict, could_not_run, not_applicable, result};
use crate::error::{Error, ErrorKind, ErrorReport, Result};
use crate::peer::PeerOptions;
use crate::transport::{Config, Link, Rendezvous};

/// Where a run opens its objects: a fresh directory and a unique name in it.
struct Place {
    dir: tempfile::TempDir,
    object: String,
}

/// What tells one object at a path from another made later there: inode and change
/// time (an inode number alone may be reused at once).
type Identity = Option<(u64, i64, i64)>;

/// The property: a scripted run, see [`stale_run`]; with an exchange on the live link
/// when the transport carries data.
pub(super) fn stale(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "stale";
    let declared = "stale names reclaimed, live ones kept";
    let g = ctx.transport.guarantees();
    if g.rendezvous == Rendezvous::Inherited {
        return not_applicable(name, declared, "no name (the link is inherited)");
    }
    if !g.carries_data {
        return match stale_run(ctx, name, false) {
            Ok(o) => outcome(name, declared, o),
            Err(e) => could_not_run(name, declared, e),
        };
    }
    match stale_run(ctx, name, true) {
        Ok(o) => outcome(name, declared, o),
        Err(e) => could_not_run(name, declared, e),
    }
}

/// The property's result from the run's outcome.
fn outcome(name: &str, declared: &str, o: Outcome) -> PropertyResult {
    match o {
        Ok(observed) => result(
            name,
            declared,
            observed,
            Verdict::Pass,
            "owner SIGKILLed, then reopened at the same name".into(),
        ),
        Err((v, observed, detail)) => result(name, declared, observed, v, detail),
    }
}

/// The [`Identity`] of the object at `p`, if any.
fn inode(p: &Path) -> Identity {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
}

/// Has `peer` open the transport at `place`: the path it made, or its error.
fn hold(
    ctx: &Ctx<'_>,
    place: &Place,
    peer: &mut PeerProcess,
) -> Result<(Option<String>, Option<ErrorReport>)> {
    peer.command(&Cmd::Hold {
        dir: place.dir.path().to_path_buf(),
        name: place.object.clone(),
    })?;
    match peer.expect(Instant::now() + ctx.timeout, "reply")? {
        Event::Held { path, error } => Ok((path, error)),
        other => Err(Error::Peer(format!("expected held, got {other:?}"))),
    }
}

/// The run: an owner dies without cleaning up, the name is reopened, a second owner
/// is refused while the first lives; then nothing is left in the directory.
fn stale_run(ctx: &Ctx<'_>, name: &str, exchange: bool) -> Result<Outcome> {
    let object = crate::transport::named::unique_name("ipc-audit-stale");
    // The object's staging path holds its name twice: where a socket path would outgrow
    // sun_path under TMPDIR, the directory goes where it fits.
    let room = 3 * object.len() + "-XXXXXX/..staging/".len() + 8;
    let parent = crate::transport::named::socket_parent(room);
    let prefix = format!(
        "{}-",
        crate::transport::named::unique_name("ipc-audit-stale")
    );
    let dir = tempfile::Builder::new()
        .prefix(&prefix)
        .tempdir_in(&parent)
        .map_err(|e| {
            crate::transport::named::tempdir_error(
                format!("make the stale directory in {}", parent.display()),
                e,
            )
        })?;
    let place = Place { dir, object };
    // 1. An owner opens the name and dies without cleaning up.
    let path = match dead_owner(ctx, name, &place)? {
        Ok(path) => path,
        Err(f) => return Ok(Err(f)),
    };
    let left = inode(&path);
    // 2. Reopen: the stale object is replaced by a new one.
    let (mut link, now) = match reopen(ctx, &place, &path, left)? {
        Ok(x) => x,
        Err(f) => return Ok(Err(f)),
    };
    // 3. A second owner while this one lives: refused, and our object is untouched.
    let (mut peer, refusal) = match second_owner(ctx, name, &place, &mut link, &path, now)? {
        Ok(x) => x,
        Err(f) => return Ok(Err(f)),
    };
    if exchange {
        let sizes = [1, 100, 5000];
        let obs = receive(ctx, &mut link, &mut peer, 21, &sizes)?;
        if let Some(v) = analyse(21, &sizes, &obs).first() {
            return Ok(failed(
                format!("the live link broke after the refused open: {v}"),
                "a live owner's object must keep working",
            ));
        }
    }
    peer.finish(Instant::now() + ctx.timeout)?;
    drop(link);
    let rest = left_in(place.dir.path());
    if !rest.is_empty() {
        return Ok(failed(
            format!("left in the directory after the guard: {rest:?}"),
            "the guard removes the object and its lock",
        ));
    }
    let short = refusal.rsplit(": ").next().unwrap_or(&refusal).to_string();
    Ok(Ok(format!(
        "dead owner's {} reclaimed (new object); a live owner's refused ({short}) and kept{}",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        if exchange { ", still working" } else { "" }
    )))
}

/// Step 1: a peer opens the transport at `place` and is SIGKILLed. Returns the path of
/// its object, or a skip when the transport cannot open at a chosen name.
fn dead_owner(ctx: &Ctx<'_>, name: &str, place: &Place) -> Result<Step<PathBuf>> {
    let (link, mut owner) = start(ctx, name)?;
    drop(link);
    let (path, error) = hold(ctx, place, &mut owner)?;
    if let Some(e) = error {
        owner.finish(Instant::now() + ctx.timeout)?;
        // Decided on the error's kind and errno: the machine (not run), a transport
        // without chosen names (not applicable), or the transport's failure.
        let (verdict, observed, why) = match crate::audit::environment(&e) {
            Some(cause) => (Verdict::NotRun, "not run", cause),
            None if e.kind == ErrorKind::Unsupported => (
                Verdict::NotApplicable,
                "not applicable",
                "the transport cannot open at a chosen name".into(),
            ),
            None => (
                Verdict::Fail,
                "open failed",
                "a chosen name must open".into(),
            ),
        };
        return Ok(Err((
            verdict,
            observed.into(),
            format!("opening at a chosen name failed: {e}; {why}"),
        )));
    }
    let Some(path) = path.filter(|p| p.contains(&place.object)) else {
        // A unique object was made instead: let the owner exit cleanly, so that its
        // guard removes it (a kill would leave it behind).
        owner.finish(Instant::now() + ctx.timeout)?;
        return Ok(Err((
            Verdict::NotApplicable,
            "not applicable".into(),
            "the transport does not honour Config::name".into(),
        )));
    };
    let path = PathBuf::from(path);
    let _ = kill(Pid::from_raw(owner.pid() as i32), Signal::SIGKILL);
    let _ = owner.wait_exit(Instant::now() + ctx.timeout);
    drop(owner);
    Ok(Ok(path))
}

/// Step 2: this process opens at `place`; the dead owner's object (`left`) must have
/// been replaced. Returns the link and the new object's identity.
fn reopen(
    ctx: &Ctx<'_>,
    place: &Place,
    path: &Path,
    left: Identity,
) -> Result<Step<(Link, Identity)>> {
    let cfg = Config::default()
        .with_dir(place.dir.path())
        .with_name(place.object.clone());
    let link = match ctx.transport.open(&cfg) {
        Ok(l) => l,
        Err(e) => {
            return Ok(failed(
                format!("reopening the name of a dead owner failed: {e}"),
                "a stale name must be detected and reclaimed",
            ));
        }
    };
    let now = inode(path);
    if left.is_some() && now == left {
        return Ok(failed(
            format!(
                "{} is the dead owner's object, reused as is",
                path.display()
            ),
            "a stale object must be replaced",
        ));
    }
    Ok(Ok((link, now)))
}

/// Step 3: the peer of `link` tries to open at `place` too: it must be refused, and the
/// object (`now`) left as it is. Returns the peer and the refusal's message.
fn second_owner(
    ctx: &Ctx<'_>,
    name: &str,
    place: &Place,
    link: &mut Link,
    path: &Path,
    now: Identity,
) -> Result<Step<(PeerProcess, String)>> {
    let peer_end = std::mem::take(&mut link.peer);
    let label = format!("{} / {name}", ctx.transport.name());
    let peer = PeerProcess::spawn(
        ctx.launcher,
        ctx.transport.name(),
        peer_end,
        label,
        ctx.timeout * 3,
        &PeerOptions::default(),
    )?;
    let mut peer = ready(peer)?;
    let (_, error) = hold(ctx, place, &mut peer)?;
    let Some(refusal) = error.map(|e| e.message) else {
        return Ok(failed(
            "a second process opened the name while its owner lives".into(),
            "a live owner's name must be refused",
        ));
    };
    if inode(path) != now {
        return Ok(failed(
            format!("{} was replaced while its owner lives", path.display()),
            "a live owner's object must never be deleted",
        ));
    }
    Ok(Ok((peer, refusal)))
}

/// The names of what is left in `dir`.
fn left_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}
