//! The method floors off Linux: not built (they use System V and POSIX queues, named
//! semaphores and timers the way Linux has them, inotify for `raw-file`, signalfd and
//! `rt_tgsigqueueinfo` for `raw-signal`); each floor is an [`Error::Unsupported`], so
//! the table shows it as not measured.

use std::os::fd::OwnedFd;
use std::time::Duration;

use super::FloorKind;
use crate::error::{Error, Result};

/// The measuring side's objects (none here).
#[derive(Debug)]
pub(crate) enum Objects {}

fn unsupported(kind: FloorKind) -> Error {
    Error::Unsupported(format!("the {} floor is built on Linux only", kind.name()))
}

/// See the Linux version: always [`Error::Unsupported`] here.
pub(crate) fn make(kind: FloorKind, _: Duration) -> Result<(Objects, Vec<OwnedFd>, usize)> {
    Err(unsupported(kind))
}

/// See the Linux version: there are no objects to measure with here.
pub(crate) fn local(o: &mut Objects, _: usize, _: Duration, _: impl FnMut(u64)) -> Result<()> {
    match *o {}
}

/// See the Linux version: always [`Error::Unsupported`] here.
pub(crate) fn peer(kind: FloorKind, _: Vec<OwnedFd>, _: usize, _: usize) -> Result<()> {
    Err(unsupported(kind))
}
