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
}

/// The options to send a peer, and the user namespace to start it in: when it is to
/// drop to an identity and this process is not root, the peer starts as inner root of
/// a new user namespace and drops to the inner ids of that identity.
pub(super) fn in_userns(opts: &PeerOptions) -> Result<(PeerOptions, Option<UserNs>)> {
    let Some(id) = &opts.drop_to else {
        return Ok((opts.clone(), None));
    };
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
        Ok((inner, Some(ids)))
    }
    #[cfg(not(target_os = "linux"))]
    Err(Error::Unsupported(format!(
        "dropping to uid {} needs root here",
        id.uid
    )))
}

/// What a peer's user namespace maps.
#[cfg(target_os = "linux")]
pub(super) type UserNs = crate::sys::userns::SubIds;
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
