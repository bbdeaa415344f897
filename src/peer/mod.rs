//! The two-process harness: how a peer process is started, how it is talked to, and how
//! it serves the role it was started for.
//!
//! The peer is a real second process, started with [`std::process::Command`] (fork and
//! exec, never arbitrary code after a bare fork), so the harness is safe in a
//! multi-threaded test binary. It is a program that calls [`crate::run_if_peer`] first
//! thing in `main`: the `ipc-audit` binary itself, a test binary, or a user's own
//! program.
//!
//! Hand-over: the environment variable [`PEER_ENV`] holds the role, the transport's name
//! and its [`PeerEnd::info`](crate::transport::PeerEnd::info); descriptor 3 is the
//! control channel back to the harness; the transport's inherited descriptors follow
//! from descriptor 4 on, then the role's auxiliary ones; standard input carries the
//! commands. Neither control direction goes over the transport under test.
//!
//! The harness knows no role: the layers above define theirs (the audit's and the
//! measurements'), each with its own command and event types ([`Role`]), and the crate
//! root registers them ([`crate::run_if_peer`]). Every reply is a [`Reply`]: the peer is
//! ready, it failed (with its error as data, an [`ErrorReport`]), or an event of its
//! role.

mod launcher;
mod options;
mod process;
mod serve;
pub(crate) mod storm;

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use crate::error::ErrorReport;
pub use launcher::PeerLauncher;
pub(crate) use launcher::{child_fds, open_fds};
pub use options::{Identity, PeerOptions, can_ns_root};
pub use process::{PeerProcess, live_peers};
pub(crate) use serve::PEER_WAIT;
pub use serve::{Peer, RoleEntry, run_if_peer_with};

/// The environment variable that makes a program a peer; see [`crate::run_if_peer`].
pub const PEER_ENV: &str = "IPC_AUDIT_PEER";

/// The transport name of a peer that attaches to nothing (a racer, a floor): its
/// inherited descriptors stay its own ([`Peer::spare`]).
pub const NO_TRANSPORT: &str = "-";

/// A role a peer can be started for: its commands, its events, and how it serves them.
///
/// One peer process serves one role; [`PeerProcess<R>`] only sends `R`'s commands and
/// reads `R`'s events, so a command cannot reach a peer of another role.
pub trait Role: Default + 'static {
    /// The role's name in the peer's environment, e.g. `"audit"`.
    const NAME: &'static str;
    /// A command from the harness.
    type Cmd: Serialize + DeserializeOwned + Debug;
    /// An event back to the harness.
    type Event: Serialize + DeserializeOwned + Debug;

    /// Serves one command in the peer. An error goes back as [`Reply::Failed`], and the
    /// peer goes on with the next command.
    ///
    /// # Errors
    /// Whatever the command could not do; the harness decides whether it was expected.
    fn serve(&mut self, peer: &mut Peer<'_>, cmd: Self::Cmd) -> crate::Result<Self::Event>;
}

/// One line from the peer to the harness.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply<E> {
    /// Attached to its transport; its pid.
    Ready {
        /// The peer's pid, as it sees it.
        pid: u32,
    },
    /// Could not attach, or a command failed or was malformed.
    Failed(ErrorReport),
    /// An event of the peer's role.
    Event(E),
}
