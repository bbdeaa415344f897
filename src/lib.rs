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
// (`measure::alloc`); each of those modules allows it by name.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// The peer role must be the first thing in `main`; the examples show exactly that.
#![allow(clippy::needless_doctest_main)]

pub mod audit;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
// TODO(layers): raw calls move to sys (src/measure/mod.rs; then only `measure::alloc`
// keeps the allowance).
#[allow(unsafe_code)]
pub mod measure;
pub mod shm;
#[allow(unsafe_code)]
pub mod sync;
#[allow(unsafe_code)]
pub mod sys;
pub mod transport;

pub use error::{Error, Result};
