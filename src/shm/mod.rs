//! Shared memory: a single-producer single-consumer ring of messages ([`ring`]) in a
//! sealed memfd mapped by two processes ([`region`]), with a futex hand-off ([`sem`]).
//!
//! The ring core uses only [`crate::sync`], so the loom models of `tests/loom.rs` check
//! the code that runs; its unit tests run under Miri over a heap buffer.

#[cfg(all(not(loom), target_os = "linux"))]
#[allow(unsafe_code)]
pub mod region;
#[allow(unsafe_code)]
pub mod ring;
pub mod sem;
