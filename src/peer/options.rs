//! How a peer sets itself up after exec and before it attaches.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
    /// The second uid of the security properties, with the supplementary `groups`: as
    /// root `nobody` (uid and gid 65534); otherwise the first uid and gid of this
    /// user's /etc/subuid and /etc/subgid ranges, which a peer becomes in a user
    /// namespace ([`crate::sys::userns`]).
    ///
    /// # Errors
    /// When neither can be had: exactly what is missing and how to provide it.
    pub fn second(groups: Vec<u32>) -> std::result::Result<Self, String> {
        if nix::unistd::geteuid().is_root() {
            return Ok(Self::nobody(groups));
        }
        #[cfg(target_os = "linux")]
        {
            let ids = crate::sys::userns::sub_ids()?;
            Ok(Identity {
                uid: ids.sub_uid,
                gid: ids.sub_gid,
                groups,
            })
        }
        #[cfg(not(target_os = "linux"))]
        Err(format!(
            "a second uid needs root here (running as uid {})",
            nix::unistd::geteuid()
        ))
    }

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
    /// setuid, in that order): as root directly; otherwise the peer starts in a user
    /// namespace that maps this identity ([`Identity::second`]).
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
    /// With `drop_to` (no supplementary groups): become that identity as the root of a
    /// user namespace of its own, before exec, instead of dropping to it. Inside,
    /// getuid() and getgid() say 0, so the peer believes (and would claim in-band) that
    /// it is root, while the kernel outside knows it as `drop_to`'s uid and gid.
    #[serde(default)]
    pub ns_root: bool,
}

/// The options to send a peer, and the user namespace to start it in: when it is to
/// drop to an identity and this process is not root, the peer starts as inner root of
/// a new user namespace and drops to the inner ids of that identity.
pub(super) fn in_userns(opts: &PeerOptions) -> Result<(PeerOptions, Option<UserNs>)> {
    let Some(id) = &opts.drop_to else {
        if opts.ns_root {
            return Err(Error::invalid("ns_root needs drop_to", "none"));
        }
        return Ok((opts.clone(), None));
    };
    if opts.ns_root {
        return ns_root(opts, id);
    }
    if nix::unistd::geteuid().is_root() {
        return Ok((opts.clone(), None));
    }
    #[cfg(target_os = "linux")]
    {
        let ids = crate::sys::userns::sub_ids().map_err(Error::Unsupported)?;
        let (uid, gid, groups) = crate::sys::userns::inner(ids, id.uid, id.gid, &id.groups)
            .map_err(Error::Unsupported)?;
        let mut inner = opts.clone();
        inner.drop_to = Some(Identity { uid, gid, groups });
        Ok((inner, Some(crate::sys::userns::Maps::sub(ids))))
    }
    #[cfg(not(target_os = "linux"))]
    Err(Error::Unsupported(format!(
        "dropping to uid {} needs root here",
        id.uid
    )))
}

/// [`in_userns`] for [`PeerOptions::ns_root`]: the peer becomes the root of its own
/// user namespace, which is `id` outside, before exec, and drops nothing after.
fn ns_root(opts: &PeerOptions, id: &Identity) -> Result<(PeerOptions, Option<UserNs>)> {
    if !id.groups.is_empty() {
        return Err(Error::invalid(
            "ns_root takes no supplementary groups",
            format!("{:?}", id.groups),
        ));
    }
    #[cfg(target_os = "linux")]
    {
        let mut inner = opts.clone();
        inner.drop_to = None;
        inner.ns_root = false;
        Ok((
            inner,
            Some(crate::sys::userns::Maps::root_as(id.uid, id.gid)),
        ))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = opts;
        Err(Error::Unsupported(format!(
            "a user namespace of its own for a peer as uid {}: Linux only",
            id.uid
        )))
    }
}

/// Whether a peer can be started as `id` with [`PeerOptions::ns_root`] here: a probe
/// child is started so.
///
/// # Errors
/// The exact cause when it cannot (no user namespaces, a map refused, no ids to map).
pub fn can_ns_root(id: &Identity) -> std::result::Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        crate::sys::userns::probe_root_as(id.uid, id.gid)
    }
    #[cfg(not(target_os = "linux"))]
    Err(format!(
        "a user namespace of its own for a peer as uid {}: Linux only",
        id.uid
    ))
}

/// What a peer's user namespace maps.
#[cfg(target_os = "linux")]
pub(super) type UserNs = crate::sys::userns::Maps;
/// No user namespaces here.
#[cfg(not(target_os = "linux"))]
pub(super) type UserNs = ();

/// setgroups, setgid, setuid, in that order.
pub(super) fn drop_privileges(id: &Identity) -> Result<()> {
    use nix::unistd::{Gid, Uid, setgid, setuid};
    crate::sys::process::set_groups(&id.groups)
        .map_err(|e| Error::sys(format!("peer: setgroups {:?}", id.groups), e))?;
    setgid(Gid::from_raw(id.gid)).map_err(|e| Error::sys(format!("peer: setgid {}", id.gid), e))?;
    setuid(Uid::from_raw(id.uid)).map_err(|e| Error::sys(format!("peer: setuid {}", id.uid), e))?;
    Ok(())
}

/// Lowers RLIMIT_NOFILE (soft) to `n`, never above the hard limit.
pub(super) fn limit_nofile(n: u64) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| Error::sys("peer: getrlimit NOFILE", e))?;
    // rlim_t is unsigned on Linux and macOS, signed on FreeBSD.
    #[allow(clippy::useless_conversion)]
    let soft = n.try_into().unwrap_or(hard).min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard)
        .map_err(|e| Error::sys(format!("peer: setrlimit NOFILE {n}"), e))
}
