//! The shared memory of the `shm` transport: a memfd, sized, sealed against shrinking
//! and growing, mapped `MAP_SHARED` by both processes. The peer inherits the memfd.

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};

use super::ring::Region;
use crate::error::{Error, Result};
use crate::sys::mem::{SharedMap, memfd};

/// Seals every ring memfd carries: the size is fixed, so a peer cannot shrink the file
/// under the other side's mapping (which would turn its next access into SIGBUS).
pub fn required_seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW
}

/// A `MAP_SHARED` mapping of a whole memfd ([`SharedMap`]), unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    map: SharedMap,
}

impl Mapping {
    /// Creates a memfd of `len` bytes named `name` (CLOEXEC, sealed with
    /// [`required_seals`] and `F_SEAL_SEAL`) and maps it. Returns the mapping and the
    /// memfd to hand to the peer.
    ///
    /// Both this mapping and the peer's ([`Mapping::attach`]) are made with
    /// `MAP_POPULATE`: every page is allocated and mapped before the first message, so
    /// that the first lap of a ring does not take a page fault every 4 KiB (about 20 µs
    /// each in the development VM). With lazy faults the 64-byte spin round trip of
    /// `examples/shm_rtt` had a p99 of 18.8-19.7 µs; populated, 0.44-0.50 µs (p50
    /// 261-270 ns before, 250-251 ns after; 2026-11-27). The cost moves to set-up: the
    /// whole ring is committed at once.
    ///
    /// # Errors
    /// The failing system call, naming the memfd.
    pub fn create(name: &str, len: usize) -> Result<(Mapping, OwnedFd)> {
        let fd = memfd(name, true).map_err(|e| Error::sys(format!("memfd_create {name}"), e))?;
        // `off_t`, inferred from `ftruncate`.
        let off = len
            .try_into()
            .map_err(|_| Error::invalid("shm size", len))?;
        nix::unistd::ftruncate(fd.as_fd(), off)
            .map_err(|e| Error::sys(format!("ftruncate memfd {name} to {len}"), e))?;
        fcntl(
            fd.as_fd(),
            FcntlArg::F_ADD_SEALS(required_seals() | SealFlag::F_SEAL_SEAL),
        )
        .map_err(|e| Error::sys(format!("seal memfd {name}"), e))?;
        let map = Mapping::map(&fd, len, name)?;
        Ok((map, fd))
    }

    /// Maps a memfd received from the peer, after checking that it is sealed with
    /// [`required_seals`] (otherwise the peer could shrink it under this side).
    ///
    /// # Errors
    /// [`Error::Protocol`] when the seals are missing or the size is absurd, or the
    /// failing system call.
    pub fn attach(fd: &OwnedFd) -> Result<Mapping> {
        let seals = fcntl(fd.as_fd(), FcntlArg::F_GET_SEALS)
            .map_err(|e| Error::sys("shm: F_GET_SEALS on the inherited memfd", e))?;
        let seals = SealFlag::from_bits_retain(seals);
        if !seals.contains(required_seals()) {
            return Err(Error::Protocol(format!(
                "shm: memfd seals {seals:?} lack {:?}",
                required_seals()
            )));
        }
        let st = nix::sys::stat::fstat(fd.as_fd())
            .map_err(|e| Error::sys("shm: fstat the inherited memfd", e))?;
        let len = usize::try_from(st.st_size)
            .ok()
            .filter(|&l| l > 0 && l <= (1 << 31))
            .ok_or_else(|| {
                Error::Protocol(format!("shm: memfd size {} out of range", st.st_size))
            })?;
        Mapping::map(fd, len, "inherited memfd")
    }

    fn map(fd: &OwnedFd, len: usize, name: &str) -> Result<Mapping> {
        if len == 0 {
            return Err(Error::invalid("shm size", len));
        }
        let map = SharedMap::new(fd.as_fd(), len, true)
            .map_err(|e| Error::sys(format!("mmap {name} ({len} bytes)"), e))?;
        Ok(Mapping { map })
    }
}

// SAFETY: the mapping is page-aligned (so 128-aligned), `len` bytes long, readable and
// writable, and lives until `self` is dropped (rings hold the mapping in an `Arc`, so no
// pointer into it outlives it); its size cannot change (sealed).
unsafe impl Region for Mapping {
    fn base(&self) -> NonNull<u8> {
        self.map.ptr()
    }
    fn len(&self) -> usize {
        self.map.len()
    }
}
