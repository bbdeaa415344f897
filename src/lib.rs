//! # ipc-audit
//!
//! Tells the truth about inter-process communication on Linux: a library of real IPC
//! transports behind one trait ([`transport::Transport`]), an audit that checks what
//! each one really guarantees with the peer in a separate process ([`audit`]), and the
//! frame codec that stream transports use to keep message boundaries ([`frame`]).
//!
//! ```
//! use ipc_audit::transport;
//! for t in transport::all() {
//!     println!("{}: {:?}", t.name(), t.guarantees().boundaries);
//! }
//! ```

#![deny(missing_docs)]
// `unsafe` lives in `sys` (the raw calls), the ring's memory (`shm::ring`,
// `shm::region`), the loom shim (`sync`) and the counting allocators
// (`sys::alloc`); each of those modules allows it by name.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// The peer role must be the first thing in `main`; the examples show exactly that.
#![allow(clippy::needless_doctest_main)]
// Without the `audit` and `measure` features, the raw calls only they use are unused.
#![cfg_attr(
    not(all(feature = "audit", feature = "measure")),
    allow(dead_code, unused_imports)
)]

#[cfg(feature = "audit")]
pub mod audit;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "measure")]
pub mod measure;
#[cfg(any(feature = "audit", feature = "measure"))]
pub mod peer;
#[cfg(all(feature = "audit", feature = "measure"))]
pub mod report;
pub mod shm;
#[allow(unsafe_code)]
pub mod sync;
#[allow(unsafe_code)]
pub mod sys;
pub mod transport;

pub use error::{Error, ErrorKind, ErrorReport, Result};

/// If this process was started as a peer (the [`peer::PEER_ENV`] variable is set), runs
/// the role its harness asked for (the audit's or the measurements') and exits;
/// otherwise returns at once. Call it first thing in `main`, or at the top of the test
/// that [`peer::PeerLauncher::test_binary`] names. `resolve` finds a transport by name,
/// e.g. [`transport::by_name`].
///
/// # Examples
///
/// ```no_run
/// fn main() {
///     ipc_audit::run_if_peer(ipc_audit::transport::by_name);
///     // ... the program's real work ...
/// }
/// ```
#[cfg(any(feature = "audit", feature = "measure"))]
pub fn run_if_peer<'t, F>(resolve: F)
where
    F: Fn(&str) -> Option<Box<dyn transport::Transport + 't>>,
{
    peer::run_if_peer_with(
        resolve,
        &[
            #[cfg(feature = "audit")]
            peer::RoleEntry::of::<audit::role::AuditRole>(),
            #[cfg(feature = "measure")]
            peer::RoleEntry::of::<measure::role::MeasureRole>(),
        ],
    );
}
