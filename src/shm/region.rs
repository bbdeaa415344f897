//! The shared memory of the `shm` transport: a memfd, sized, sealed against shrinking
//! and growing, mapped `MAP_SHARED` by both processes. The peer inherits the memfd.

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use super::ring::Region;
use crate::error::{Error, Result};

/// Seals every ring memfd carries: the size is fixed, so a peer cannot shrink the file
/// under the other side's mapping (which would turn its next access into SIGBUS).
pub fn required_seals() -> SealFlag {
    SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW
}

/// A `MAP_SHARED` mapping of a whole memfd, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; concurrent access goes through
// atomics and the ring protocol.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

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
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
            .map_err(|e| Error::sys(format!("memfd_create {name}"), e))?;
        let off = libc::off_t::try_from(len).map_err(|_| Error::invalid("shm size", len))?;
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
        let nz = NonZeroUsize::new(len).ok_or_else(|| Error::invalid("shm size", len))?;
        // SAFETY: a fresh shared mapping of a file we hold, at an address the kernel
        // picks: it aliases no Rust object.
        let ptr = unsafe {
            mmap(
                None,
                nz,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED | MapFlags::MAP_POPULATE,
                fd.as_fd(),
                0,
            )
        }
        .map_err(|e| Error::sys(format!("mmap {name} ({len} bytes)"), e))?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in `map` with this length, unmapped once; no reference into it
        // outlives `self` (rings hold the mapping in an `Arc`).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

// SAFETY: the mapping is page-aligned (so 128-aligned), `len` bytes long, readable and
// writable, and lives until `self` is dropped; its size cannot change (sealed).
unsafe impl Region for Mapping {
    fn base(&self) -> NonNull<u8> {
        self.ptr
    }
    fn len(&self) -> usize {
        self.len
    }
}
