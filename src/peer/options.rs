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
