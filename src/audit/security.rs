//! Security properties: access by a second uid, descriptors across exec, SIGPIPE, peer
//! credentials. Each runs with a real second process, and where it matters a real second
//! uid: as root the peer drops to uid/gid 65534 after exec and before it attaches
//! (otherwise to a subordinate uid in a user namespace). For peer credentials a peer is
//! also started as uid 0 of a user namespace of its own, the second uid outside: it
//! believes it is root, and the identity reported must still be the kernel's.

use std::time::{Duration, Instant};

use nix::unistd::{getegid, geteuid};

use super::exchange::{analyse, ready, receive, spawn, start};
use super::role::{Cmd, Event, PeerProcess};
use super::{Ctx, Property, PropertyResult, Verdict, could_not_run, not_run, result};
use crate::error::{Error, ErrorReport, Result};
use crate::peer::{Identity, NO_TRANSPORT, PeerOptions, can_ns_root, child_fds};
use crate::transport::{Access, Config, Credentials, Rendezvous};

/// The security properties, in report order.
pub(super) fn all() -> Vec<Property> {
    vec![
        Property {
            name: "access-uid",
            about: "a second uid (65534 as root) is refused on mode 0600 and admitted on 0660 with a shared group",
            run: access_uid,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "access-race",
            about: "a racer of a second uid (65534 as root) probing names as they appear never gets into a 0600 object",
            run: access_race,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "access-umask",
            about: "the umask neither widens nor narrows the requested mode",
            run: access_umask,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "cloexec",
            about: "no descriptor of the transport reaches a fork+exec child, on either side",
            run: cloexec,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "sigpipe",
            about: "with SIGPIPE at its default, sending to a closed receiver errs and the sender lives",
            run: sigpipe,
            applies: super::every,
            exclusive: false,
        },
        Property {
            name: "peercred-uid",
            about: "the peer's pid, uid and gid are the kernel's, also when the peer believes it is root; an allow-list refuses other uids",
            run: peercred,
            applies: super::every,
            exclusive: false,
        },
    ]
}

/// Why a second uid cannot be had here, or `None` when it can: root drops to 65534, any
/// other user to its first subordinate uid in a user namespace ([`Identity::second`]).
fn no_second_uid() -> Option<String> {
    Identity::second(vec![]).err()
}

/// The second uid (see [`no_second_uid`]), with the supplementary `groups`.
pub(super) fn second_uid(groups: Vec<u32>) -> Identity {
    Identity::second(groups.clone()).unwrap_or_else(|_| Identity::nobody(groups))
}

/// The second uid as the texts name it: "uid 65534" as root, the subordinate uid
/// otherwise.
fn uid_text() -> String {
    format!("uid {}", second_uid(vec![]).uid)
}

/// How the peer became the second uid, for the details.
fn dropped_text() -> String {
    let who = second_uid(vec![]);
    if geteuid().is_root() {
        format!("peer dropped to uid/gid {}/{} after exec", who.uid, who.gid)
    } else {
        format!(
            "peer dropped to uid/gid {}/{} (subordinate ids, in a user namespace) after exec",
            who.uid, who.gid
        )
    }
}

/// What happened when a peer tried to use a link.
#[derive(Debug)]
enum Try {
    /// It got in: its message arrived.
    Admitted,
    /// The kernel refused it (EACCES or EPERM), with the error text.
    Refused(String),
    /// Something else went wrong, which proves nothing either way: what was reported,
    /// with the error's kind and errno when it was an error ([`reported`]).
    Other(String),
}

impl std::fmt::Display for Try {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Try::Admitted => f.write_str("admitted"),
            Try::Refused(why) => write!(f, "refused ({why})"),
            Try::Other(what) => write!(f, "neither refused nor admitted: {what}"),
        }
    }
}

/// An error as the verdicts quote it: its text, its kind and its errno (or that it has
/// none), which are what tell a refusal (EACCES, EPERM) from anything else.
fn reported(e: &ErrorReport) -> String {
    let errno = e.errno.map_or("no errno".to_string(), |n| {
        format!("errno {} ({n})", nix::errno::Errno::from_raw(n))
    });
    format!("{} [kind {:?}, {errno}]", e.message, e.kind)
}

/// Opens a link with `cfg`, starts a peer as `who` (or as this process's user), and has
/// it send one message.
fn try_as(ctx: &Ctx<'_>, name: &str, cfg: &Config, who: Option<&Identity>) -> Try {
    let opts = PeerOptions {
        drop_to: who.cloned(),
        ..PeerOptions::default()
    };
    let run = || -> Result<Try> {
        let (mut link, peer) = spawn(ctx, name, cfg, &opts)?;
        let mut peer = match ready(peer) {
            Ok(p) => p,
            Err(e @ Error::Remote { .. }) if e.report().is_permission_denied() => {
                return Ok(Try::Refused(e.to_string()));
            }
            Err(e) => return Ok(Try::Other(reported(&e.report()))),
        };
        let seed = 7;
        // A transport without data (a semaphore) takes empty messages.
        let sizes = [ctx.transport.guarantees().max_message.min(16)];
        let obs = receive(ctx, &mut link, &mut peer, seed, &sizes)?;
        if let Some((_, e)) = obs.send_errors.first() {
            return Ok(if e.is_permission_denied() {
                Try::Refused(e.message.clone())
            } else {
                Try::Other(format!("send: {}", reported(e)))
            });
        }
        let v = analyse(seed, &sizes, &obs);
        Ok(match v.first() {
            None => Try::Admitted,
            Some(v) => Try::Other(v.to_string()),
        })
    };
    run().unwrap_or_else(|e| Try::Other(reported(&e.report())))
}

fn short(text: &str) -> String {
    // The kernel's words are what matter: keep the text after the last colon's operation.
    text.rsplit(": ").next().unwrap_or(text).to_string()
}

/// The property: uid 65534 tries a 0600 object, then (the positive control) a 0660 one
/// with a shared group, or for a same-uid transport the same uid.
fn access_uid(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "access-uid";
    let g = ctx.transport.guarantees();
    let declared = access_declared(g.access);
    if g.access == Access::Inherited || g.rendezvous == Rendezvous::Inherited {
        return result(
            name,
            declared,
            "inherited only: no name that another process could open".into(),
            Verdict::Pass,
            "only a process given the descriptor can use it".into(),
        );
    }
    if let Some(why) = no_second_uid() {
        return not_run(name, declared, why);
    }
    let group = getegid().as_raw();
    let deny = try_as(
        ctx,
        name,
        &Config::default().with_mode(0o600),
        Some(&second_uid(vec![])),
    );
    if g.access == Access::SameUid {
        let same = try_as(ctx, name, &Config::default(), None);
        return same_uid_verdict(name, declared, deny, same);
    }
    if g.access == Access::Anyone {
        return anyone_verdict(name, declared, deny);
    }
    let allow = try_as(
        ctx,
        name,
        &Config::default().with_mode(0o660),
        Some(&second_uid(vec![group])),
    );
    mode_verdict(name, declared, group, deny, allow)
}

/// For a same-uid transport: uid 65534 must be refused, the same uid admitted.
fn same_uid_verdict(name: &str, declared: &str, deny: Try, same: Try) -> PropertyResult {
    match (deny, same) {
        (Try::Refused(why), Try::Admitted) => result(
            name,
            declared,
            format!(
                "{} refused ({}); the same uid admitted",
                uid_text(),
                short(&why)
            ),
            Verdict::Pass,
            dropped_text(),
        ),
        (Try::Admitted, _) => result(
            name,
            declared,
            format!("{} got in", uid_text()),
            Verdict::Fail,
            "only the same uid (or CAP_KILL) may".into(),
        ),
        (Try::Other(what), Try::Admitted) => wrong_cause(name, declared, &what, "the same uid"),
        (_, same) => result(
            name,
            declared,
            format!("positive control failed: the same uid: {same}"),
            Verdict::Fail,
            "a denial with the wrong cause proves nothing".into(),
        ),
    }
}

/// The second uid was kept out, not by a refusal (no EACCES or EPERM), while the positive
/// control (`admitted`) got in: the transport's refusal cannot be told from a failure.
fn wrong_cause(name: &str, declared: &str, what: &str, admitted: &str) -> PropertyResult {
    result(
        name,
        declared,
        format!(
            "{} did not get in, but was not refused (no EACCES or EPERM): {what}; {admitted} \
             admitted",
            uid_text()
        ),
        Verdict::Fail,
        "a refusal is EACCES or EPERM; a denial with another cause proves nothing".into(),
    )
}

/// For a transport open to anyone: uid 65534 must get in, whatever the mode asked.
fn anyone_verdict(name: &str, declared: &str, deny: Try) -> PropertyResult {
    match deny {
        Try::Admitted => result(
            name,
            declared,
            format!(
                "{} got in although mode 0600 was asked: open to every local user",
                uid_text()
            ),
            Verdict::Pass,
            "the mode does not apply to this transport".into(),
        ),
        other => result(
            name,
            declared,
            format!("{} did not get in: {other}", uid_text()),
            Verdict::Fail,
            "declared open to every local user".into(),
        ),
    }
}

/// For a transport with file modes: uid 65534 must be refused on 0600 and admitted on
/// 0660 with the shared `group`.
fn mode_verdict(name: &str, declared: &str, group: u32, deny: Try, allow: Try) -> PropertyResult {
    match (deny, allow) {
        (Try::Refused(why), Try::Admitted) => result(
            name,
            declared,
            format!(
                "{} refused on 0600 ({}); admitted on 0660 with group {group}",
                uid_text(),
                short(&why)
            ),
            Verdict::Pass,
            dropped_text(),
        ),
        (Try::Admitted, _) => result(
            name,
            declared,
            format!("{} got into an object made with mode 0600", uid_text()),
            Verdict::Fail,
            "the mode is not enforced".into(),
        ),
        (Try::Other(what), Try::Admitted) => wrong_cause(
            name,
            declared,
            &what,
            &format!("with group {group} on 0660"),
        ),
        (_, allow) => result(
            name,
            declared,
            format!(
                "positive control failed: {} with group {group} on 0660: {allow}",
                uid_text()
            ),
            Verdict::Fail,
            "a denial with the wrong cause proves nothing".into(),
        ),
    }
}

fn cloexec(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "cloexec";
    let declared = "every descriptor close-on-exec";
    let run = || -> Result<(Vec<String>, Vec<String>)> {
        let before = child_fds(ctx.launcher)?;
        let (mut link, mut peer) = start(ctx, name)?;
        if ctx.transport.guarantees().carries_data {
            // One message, so that lazily made descriptors (accept) exist.
            let obs = receive(ctx, &mut link, &mut peer, 3, &[8])?;
            if let Some(v) = analyse(3, &[8], &obs).first() {
                return Err(Error::Peer(format!(
                    "exchange before the check failed: {v}"
                )));
            }
        }
        let after = child_fds(ctx.launcher)?;
        let local: Vec<String> = after.into_iter().filter(|f| !before.contains(f)).collect();
        peer.command(&Cmd::ListFds)?;
        let remote = match peer.expect(Instant::now() + ctx.timeout, "reply")? {
            Event::Fds { fds } => fds,
            other => return Err(Error::Peer(format!("expected fds, got {other:?}"))),
        };
        peer.finish(Instant::now() + ctx.timeout)?;
        drop(link);
        // Descriptors this process itself inherited without close-on-exec (from a shell or
        // a build tool) reach the peer too: they are in `before`, and not the transport's.
        let remote = remote.into_iter().filter(|f| !before.contains(f)).collect();
        Ok((local, remote))
    };
    match run() {
        Ok((local, remote)) if local.is_empty() && remote.is_empty() => result(
            name,
            declared,
            "no descriptor reached a fork+exec child (local: open/accept; peer: attach)".into(),
            Verdict::Pass,
            "children listed /proc/self/fd".into(),
        ),
        Ok((local, remote)) => result(
            name,
            declared,
            format!("leaked across exec: local {local:?}, peer {remote:?}"),
            Verdict::Fail,
            "a fork+exec child listed these in /proc/self/fd".into(),
        ),
        Err(e) => could_not_run(name, declared, e),
    }
}

/// The property: a peer with SIGPIPE at its default sends to a receiver that is gone,
/// with small messages and with large ones (a large message takes another path in many
/// transports: chunks, a second write).
fn sigpipe(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "sigpipe";
    let declared = "error, not death";
    let max = ctx.transport.guarantees().max_message;
    if !ctx.transport.guarantees().carries_data {
        return result(
            name,
            declared,
            "not applicable".into(),
            Verdict::NotApplicable,
            "the transport carries no data".into(),
        );
    }
    // Few, so that a queue that outlives its receiver takes them all.
    let large = max.min(64 * 1024);
    let mut runs = vec![vec![16.min(max); 4]];
    if large > 4096 {
        runs.push(vec![large; 2]);
    }
    let mut seen = Vec::new();
    for sizes in runs {
        match sigpipe_once(ctx, name, declared, &sizes) {
            Ok(Ok(observed)) => seen.push(format!("{} bytes: {observed}", sizes[0])),
            Ok(Err(fail)) => return fail,
            Err(e) => return could_not_run(name, declared, e),
        }
    }
    result(
        name,
        declared,
        seen.join("; "),
        Verdict::Pass,
        "peer with SIGPIPE at SIG_DFL, small and large messages".into(),
    )
}

/// One run of [`sigpipe`] with messages of `sizes`: what the sender saw, or the failure.
fn sigpipe_once(
    ctx: &Ctx<'_>,
    name: &str,
    declared: &str,
    sizes: &[usize],
) -> Result<std::result::Result<String, PropertyResult>> {
    let opts = PeerOptions {
        sigpipe_default: true,
        ..PeerOptions::default()
    };
    let (link, peer) = spawn(ctx, name, &Config::default(), &opts)?;
    let mut peer = ready(peer)?;
    // The receiver goes away, then the peer sends.
    drop(link);
    peer.command(&Cmd::Send {
        seed: 1,
        sizes: sizes.to_vec(),
    })?;
    let deadline = Instant::now() + ctx.timeout;
    match peer.expect(deadline, "reply") {
        Ok(Event::Sent { errors, .. }) => {
            let observed = match errors.first() {
                Some((i, e)) => format!(
                    "send {i} returned an error ({}); the sender lives",
                    short(&e.message)
                ),
                None => "sends succeeded after the receiver closed (the object keeps them); \
                         the sender lives"
                    .into(),
            };
            peer.finish(deadline)?;
            Ok(Ok(observed))
        }
        Ok(other) => Err(Error::Peer(format!("expected sent, got {other:?}"))),
        Err(_) => {
            let status = peer.wait_exit(deadline)?;
            Ok(Err(result(
                name,
                declared,
                format!(
                    "the sender of {}-byte messages died: {status}",
                    sizes.first().copied().unwrap_or(0)
                ),
                Verdict::Fail,
                "sending to a closed receiver must return an error (MSG_NOSIGNAL or a blocked \
                 SIGPIPE)"
                    .into(),
            )))
        }
    }
}

/// The property: the credentials reported for a peer are its own; as root, an
/// allow-list of this process's uid refuses the peer (uid 65534).
fn peercred(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "peercred-uid";
    let g = ctx.transport.guarantees();
    let declared = if g.access == Access::FileModeAndPeerCred {
        "pid, uid, gid of the peer; allow-list"
    } else {
        "not exposed"
    };
    if g.access != Access::FileModeAndPeerCred {
        return result(
            name,
            declared,
            "not applicable".into(),
            Verdict::NotApplicable,
            "the transport does not expose its peer's credentials".into(),
        );
    }
    let second = no_second_uid().is_none();
    let who = if second {
        second_uid(vec![])
    } else {
        Identity {
            uid: geteuid().as_raw(),
            gid: getegid().as_raw(),
            groups: vec![],
        }
    };
    let opts = PeerOptions {
        drop_to: second.then(|| who.clone()),
        ..PeerOptions::default()
    };
    let cfg = Config::default().with_mode(0o666);
    let run = || -> Result<PropertyResult> {
        // 1. The credentials reported are the peer's.
        let want = match credentials_of_peer(ctx, name, &cfg, &opts, &who)? {
            Ok(want) => want,
            Err(observed) => {
                return Ok(result(
                    name,
                    declared,
                    observed,
                    Verdict::Fail,
                    "SO_PEERCRED must name the real peer".into(),
                ));
            }
        };
        if !second {
            return Ok(result(
                name,
                declared,
                format!("reported {want:?}, true; allow-list not checked"),
                Verdict::NotRun,
                no_second_uid().unwrap_or_default(),
            ));
        }
        // 2. A peer that believes it is root (its own user namespace) is still reported
        // as the kernel knows it: an identity claimed in-band would say uid 0.
        if let Some(r) = believes_root(ctx, name, declared, &cfg, &who)? {
            return Ok(r);
        }
        // 3. The allow-list names only our own uid: the peer (second uid) must be refused.
        allow_list_refuses(ctx, name, declared, &cfg, &opts, want)
    };
    run().unwrap_or_else(|e| could_not_run(name, declared, e))
}

/// A peer started with `opts` (as `who`) sends one message on a link made with `cfg`:
/// the credentials the link reports must be its pid, `who`'s uid and gid. Returns them,
/// or the observed text of a mismatch.
fn credentials_of_peer(
    ctx: &Ctx<'_>,
    name: &str,
    cfg: &Config,
    opts: &PeerOptions,
    who: &Identity,
) -> Result<std::result::Result<Credentials, String>> {
    let (mut link, peer) = spawn(ctx, name, cfg, opts)?;
    let mut peer = ready(peer)?;
    let obs = receive(ctx, &mut link, &mut peer, 5, &[8])?;
    if let Some(v) = analyse(5, &[8], &obs).first() {
        return Err(Error::Peer(format!("exchange failed: {v}")));
    }
    let want = Credentials {
        pid: peer.pid(),
        uid: who.uid,
        gid: who.gid,
    };
    let got = link.local.peer_credentials();
    peer.finish(Instant::now() + ctx.timeout)?;
    if got != Some(want) {
        return Ok(Err(format!("reported {got:?}, the peer is {want:?}")));
    }
    Ok(Ok(want))
}

/// Step 2 of [`peercred`]: a peer started as the root of a user namespace of its own,
/// which is `who` outside, so that its getuid() and getgid() say 0 (what it would claim
/// in-band), sends one message: the link must report its pid and `who`'s uid and gid,
/// the kernel's view. `None` when it does; the fail, or not run with the exact cause
/// when such a peer cannot be made here.
fn believes_root(
    ctx: &Ctx<'_>,
    name: &str,
    declared: &str,
    cfg: &Config,
    who: &Identity,
) -> Result<Option<PropertyResult>> {
    let outer = Identity {
        groups: vec![],
        ..who.clone()
    };
    if let Err(why) = can_ns_root(&outer) {
        return Ok(Some(not_run(
            name,
            declared,
            format!(
                "a peer that believes it is uid 0 (root of its own user namespace, uid {} \
                 outside) cannot be made here: {why}",
                who.uid
            ),
        )));
    }
    let opts = PeerOptions {
        drop_to: Some(outer),
        ns_root: true,
        ..PeerOptions::default()
    };
    Ok(match credentials_of_peer(ctx, name, cfg, &opts, who)? {
        Ok(_) => None,
        Err(observed) => Some(result(
            name,
            declared,
            format!(
                "{observed}: the peer believes it is uid 0, gid 0 (root of its own user \
                 namespace); the kernel knows it as uid {}, gid {}",
                who.uid, who.gid
            ),
            Verdict::Fail,
            "the identity must be the kernel's (SO_PEERCRED), never one the peer claims".into(),
        )),
    })
}

/// A link with `cfg` and an allow-list of this process's uid, and a peer as uid 65534
/// (`opts`) that sends: the receive must fail with the peer's uid as the invalid value.
/// `want` is what step 1 reported, for the text.
fn allow_list_refuses(
    ctx: &Ctx<'_>,
    name: &str,
    declared: &str,
    cfg: &Config,
    opts: &PeerOptions,
    want: Credentials,
) -> Result<PropertyResult> {
    let own = geteuid().as_raw();
    let (mut link, peer) = spawn(ctx, name, &cfg.clone().with_allow_uids(vec![own]), opts)?;
    let mut peer = ready(peer)?;
    peer.command(&Cmd::Send {
        seed: 9,
        sizes: vec![8],
    })?;
    link.local.set_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    // A refusal at accept is an invalid peer: the offending value is its uid.
    let got = link.local.recv(&mut buf);
    drop(link);
    drop(peer);
    let second = opts.drop_to.as_ref().map(|i| i.uid.to_string());
    Ok(match got {
        Err(Error::Invalid { value, .. }) if Some(&value) == second.as_ref() => result(
            name,
            declared,
            format!(
                "reported {want:?}, true; the peer as uid 0 of its own user namespace reported the \
                 same (the kernel's), true; uid {} refused at accept by allow-list [{own}]",
                want.uid
            ),
            Verdict::Pass,
            dropped_text(),
        ),
        other => result(
            name,
            declared,
            format!(
                "allow-list [{own}] did not refuse uid {}: {other:?}",
                want.uid
            ),
            Verdict::Fail,
            "the allow-list must refuse at accept time".into(),
        ),
    })
}

/// The declared access, as the access properties word it.
fn access_declared(a: Access) -> &'static str {
    match a {
        Access::Inherited => "inherited only",
        Access::FileMode | Access::FileModeAndPeerCred => "mode 0600 enforced",
        Access::Anyone => "any local user",
        Access::SameUid => "same uid or CAP_KILL",
    }
}

/// The result for a transport with no named object to check, or `None`.
fn skip_unnamed(ctx: &Ctx<'_>, name: &str) -> Option<PropertyResult> {
    let g = ctx.transport.guarantees();
    let declared = access_declared(g.access);
    if g.access == Access::Inherited || g.rendezvous == Rendezvous::Inherited {
        return Some(result(
            name,
            declared,
            "inherited only: no name to race or to set a mode on".into(),
            Verdict::Pass,
            "only a process given the descriptor can use it".into(),
        ));
    }
    if g.access == Access::SameUid {
        return Some(result(
            name,
            declared,
            "no name and no mode: the kernel checks the sender's uid".into(),
            Verdict::Pass,
            "see access-uid".into(),
        ));
    }
    if g.access == Access::Anyone {
        return Some(result(
            name,
            declared,
            "no mode: open to every local user".into(),
            Verdict::Pass,
            "see access-uid".into(),
        ));
    }
    None
}

/// Makes links with `cfg` for `millis` while a racer as uid 65534 probes their names;
/// returns (links made, probes, paths entered).
/// What one round of the access race saw.
struct Raced {
    /// Objects made.
    made: u32,
    /// The racer's probes that found an object.
    probes: u64,
    /// Paths the racer (uid 65534) got into.
    entered: Vec<String>,
    /// The watcher's stats that found an object.
    stats: u64,
    /// Paths the watcher saw with a mode wider than asked, with that mode.
    wider: Vec<String>,
}

/// One round: a racer of uid 65534 tries to open every object as it appears, and a
/// watcher of this uid (inotify) stats each the moment its name appears, while this
/// process makes and drops objects with `cfg` for `millis` milliseconds.
fn race_once(ctx: &Ctx<'_>, name: &str, cfg: &Config, object: &str, millis: u64) -> Result<Raced> {
    let dir = cfg
        .dir
        .clone()
        .ok_or_else(|| Error::invalid("race needs a directory", "none"))?;
    let label = format!("{} / {name}", ctx.transport.name());
    let start = |opts: &PeerOptions, label: String| {
        let p = PeerProcess::spawn(
            ctx.launcher,
            NO_TRANSPORT,
            Default::default(),
            label,
            ctx.timeout * 3,
            opts,
        )?;
        ready(p)
    };
    let nobody = PeerOptions {
        drop_to: Some(second_uid(vec![])),
        ..PeerOptions::default()
    };
    let mut racer = start(&nobody, label.clone())?;
    let mut watcher = start(&PeerOptions::default(), format!("{label} (watcher)"))?;
    let names = vec![object.to_string()];
    racer.command(&Cmd::Race {
        dir: dir.clone(),
        names: names.clone(),
        millis,
    })?;
    watcher.command(&Cmd::Watch {
        dir,
        names,
        millis,
        mode: cfg.mode,
    })?;
    // Let the watcher's inotify watch be in place before the first object.
    std::thread::sleep(Duration::from_millis(20));
    let end = Instant::now() + Duration::from_millis(millis);
    let mut made = 0;
    while Instant::now() < end {
        let link = ctx.transport.open(cfg)?;
        made += 1;
        std::thread::sleep(Duration::from_millis(1));
        drop(link);
    }
    let raced = racer.expect(Instant::now() + ctx.timeout, "reply")?;
    let watched = watcher.expect(Instant::now() + ctx.timeout, "reply")?;
    racer.finish(Instant::now() + ctx.timeout)?;
    watcher.finish(Instant::now() + ctx.timeout)?;
    match (raced, watched) {
        (Event::Raced { probes, entered }, Event::Watched { stats, wider }) => Ok(Raced {
            made,
            probes,
            entered,
            stats,
            wider,
        }),
        other => Err(Error::Peer(format!(
            "expected raced and watched, got {other:?}"
        ))),
    }
}

/// How long each round of `access-race` makes objects: `IPC_AUDIT_RACE_MS` when set;
/// else 1.5 s, or 0.5 s when the auditor runs fewer than 8 cases per property (`--cases
/// 2`, `table --quick`: a quick audit races for less time, as its other properties run
/// fewer cases).
fn race_millis(ctx: &Ctx<'_>) -> u64 {
    let ms = super::faults::tuned("IPC_AUDIT_RACE_MS").unwrap_or(if ctx.cases >= 8 {
        1500
    } else {
        500
    });
    u64::from(ms)
}

fn access_race(ctx: &Ctx<'_>) -> PropertyResult {
    let name = "access-race";
    if let Some(r) = skip_unnamed(ctx, name) {
        return r;
    }
    let declared = "mode right from the moment the name appears";
    if let Some(why) = no_second_uid() {
        return not_run(name, declared, why);
    }
    let run = || -> Result<PropertyResult> {
        // Where a socket path below it (a link's directory, staging, sock) fits sun_path.
        let top = tempfile::Builder::new()
            .prefix("ipc-audit-race-")
            .tempdir_in(crate::transport::named::socket_parent(22 + 64))
            .map_err(|e| {
                crate::transport::named::tempdir_error("make the race directory".into(), e)
            })?;
        crate::transport::named::chmod(top.path(), 0o755)?;
        let cfg = Config::default().with_dir(top.path());
        let probe = ctx.transport.open(&cfg)?;
        let object = match probe.path.as_deref() {
            Some(p) if p.parent().and_then(|d| d.parent()) == Some(top.path()) => {
                p.file_name().map(|n| n.to_string_lossy().to_string())
            }
            _ => None,
        };
        drop(probe);
        let Some(object) = object else {
            return Ok(result(
                name,
                declared,
                "not applicable".into(),
                Verdict::NotApplicable,
                "the object is not made in a directory (its mode is given to the \
                 creating call itself)"
                    .into(),
            ));
        };
        let millis = race_millis(ctx);
        let shut = race_once(ctx, name, &cfg.clone().with_mode(0o600), &object, millis)?;
        // Positive control: the same racer gets into objects that allow it, and the
        // watcher sees them.
        let open = race_once(ctx, name, &cfg.with_mode(0o666), &object, millis)?;
        Ok(race_verdict(name, declared, &shut, &open))
    };
    run().unwrap_or_else(|e| could_not_run(name, declared, e))
}

/// The verdict of `access-race` from a round with mode 0600 (`shut`) and one with 0666
/// (`open`, the positive control of both the racer and the watcher).
fn race_verdict(name: &str, declared: &str, shut: &Raced, open: &Raced) -> PropertyResult {
    let fail =
        |observed: String, detail: String| result(name, declared, observed, Verdict::Fail, detail);
    let made = shut.made;
    if !shut.entered.is_empty() {
        return fail(
            format!(
                "{} got into {} of {made} objects made with mode 0600: {:?}",
                uid_text(),
                shut.entered.len(),
                shut.entered
            ),
            format!("{} probes", shut.probes),
        );
    }
    if !shut.wider.is_empty() {
        return fail(
            format!(
                "objects asked with mode 0600 appeared with a wider mode (seen by a watcher \
                 that stats each name as it appears): {:?}",
                shut.wider
            ),
            format!(
                "{} stats of {made} objects; the racer's {} probes got into none",
                shut.stats, shut.probes
            ),
        );
    }
    if open.entered.is_empty() || open.stats == 0 {
        return fail(
            format!(
                "positive control failed: of {} objects made with mode 0666 the racer got \
                 into {} and the watcher saw {}",
                open.made,
                open.entered.len(),
                open.stats
            ),
            "a race that cannot win proves nothing".into(),
        );
    }
    result(
        name,
        declared,
        format!(
            "{} got into 0 of {made} objects made 0600 ({} probes as they appeared); \
             a watcher's {} stats as each name appeared saw no mode wider than 0600; positive \
             control: got into and saw 0666 ones",
            uid_text(),
            shut.probes,
            shut.stats
        ),
        Verdict::Pass,
        "made in a 0700 staging folder with its final mode, then renamed in".into(),
    )
}

/// Serialises the umask changes of [`access_umask`]: the umask is process-wide.
static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn access_umask(ctx: &Ctx<'_>) -> PropertyResult {
    use nix::sys::stat::{Mode, umask};
    use std::os::unix::fs::PermissionsExt;
    let name = "access-umask";
    if let Some(r) = skip_unnamed(ctx, name) {
        return r;
    }
    let declared = "exactly the mode asked";
    let _lock = UMASK.lock().unwrap_or_else(|p| p.into_inner());
    let mut seen = Vec::new();
    for (mask, mode) in [(0o077, 0o660), (0o000, 0o600), (0o027, 0o640)] {
        let old = umask(Mode::from_bits_truncate(mask));
        let link = ctx.transport.open(&Config::default().with_mode(mode));
        umask(old);
        let link = match link {
            Ok(l) => l,
            Err(e) => {
                return could_not_run(name, declared, e);
            }
        };
        let Some(path) = link.path.clone() else {
            return result(
                name,
                declared,
                "not applicable".into(),
                Verdict::NotApplicable,
                "the object has no path to stat".into(),
            );
        };
        let got = match std::fs::metadata(&path) {
            Ok(m) => m.permissions().mode() & 0o777,
            Err(e) => {
                return result(
                    name,
                    declared,
                    format!("stat {}: {e}", path.display()),
                    Verdict::Fail,
                    "the check could not run".into(),
                );
            }
        };
        if got != mode {
            return result(
                name,
                declared,
                format!(
                    "asked {mode:#o} under umask {mask:#o}, got {got:#o} on {}",
                    path.display()
                ),
                Verdict::Fail,
                "the umask changed the mode".into(),
            );
        }
        seen.push(format!("{mode:o} under umask {mask:03o}"));
    }
    result(
        name,
        declared,
        format!("exact: {}", seen.join(", ")),
        Verdict::Pass,
        "mode read back with stat".into(),
    )
}
