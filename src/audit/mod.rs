//! The audit.
