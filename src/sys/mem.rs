//! Shared memory: memfds and `MAP_SHARED` mappings of them (Linux), and the 4 KiB
//! [`SharedPage`] of the measurement floors.

use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU32;

#[cfg(target_os = "linux")]
pub use linux::{SharedMap, memfd};

use crate::error::{Error, Result};

#[cfg(target_os = "linux")]
mod linux {
    use std::num::NonZeroUsize;
    use std::os::fd::{BorrowedFd, OwnedFd};
    use std::ptr::NonNull;

    use nix::sys::memfd::{MFdFlags, memfd_create};
    use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

    /// A new memfd named `name`, close-on-exec, that may be sealed when `sealing`
    /// (`MFD_ALLOW_SEALING`). Its size is 0: `ftruncate` it.
    ///
    /// # Errors
    /// The errno of `memfd_create`.
    pub fn memfd(name: &str, sealing: bool) -> nix::Result<OwnedFd> {
        let mut flags = MFdFlags::MFD_CLOEXEC;
        if sealing {
            flags |= MFdFlags::MFD_ALLOW_SEALING;
        }
        memfd_create(name, flags)
    }

    /// A readable and writable `MAP_SHARED` mapping of the first `len` bytes of a file,
    /// at an address the kernel picks, unmapped on drop.
    ///
    /// The mapping is plain memory that another process may write at any time: this
    /// type hands out only its address ([`SharedMap::ptr`]); reading or writing through
    /// it is the business (and the `unsafe`) of the layer above, which knows the
    /// protocol.
    #[derive(Debug)]
    pub struct SharedMap {
        ptr: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the mapping is owned by this value and not tied to a thread; this type
    // gives out no reference into it, only its address.
    unsafe impl Send for SharedMap {}
    // SAFETY: as above: `&SharedMap` allows nothing but reading the address and length.
    unsafe impl Sync for SharedMap {}

    impl SharedMap {
        /// Maps `len` bytes of `fd` from offset 0; with `populate`, every page is
        /// faulted in now (`MAP_POPULATE`) rather than on first access.
        ///
        /// # Errors
        /// `EINVAL` for a zero length, or the errno of `mmap`.
        pub fn new(fd: BorrowedFd<'_>, len: usize, populate: bool) -> nix::Result<SharedMap> {
            let nz = NonZeroUsize::new(len).ok_or(nix::errno::Errno::EINVAL)?;
            let mut flags = MapFlags::MAP_SHARED;
            if populate {
                flags |= MapFlags::MAP_POPULATE;
            }
            // SAFETY: a fresh shared mapping of a file the caller holds, at an address
            // the kernel picks: it aliases no Rust object; it is unmapped once, on drop.
            let ptr = unsafe {
                mmap(
                    None,
                    nz,
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    flags,
                    fd,
                    0,
                )
            }?;
            Ok(SharedMap {
                ptr: ptr.cast(),
                len,
            })
        }

        /// The first byte of the mapping (page-aligned).
        pub fn ptr(&self) -> NonNull<u8> {
            self.ptr
        }

        /// The length of the mapping in bytes.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Never true: a mapping has at least one byte.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }

    impl Drop for SharedMap {
        fn drop(&mut self) {
            // SAFETY: mapped in `new` with this length, unmapped once; the owners of
            // pointers into it (the layer above) keep this value alive while they use
            // them.
            let _ = unsafe { munmap(self.ptr.cast(), self.len) };
        }
    }
}

/// A 4 KiB page of a memfd mapped shared: the floors' meeting point. One process creates
/// it ([`SharedPage::create`]), the other maps the descriptor it inherits
/// ([`SharedPage::map`]).
#[derive(Debug)]
pub struct SharedPage {
    #[cfg(target_os = "linux")]
    map: SharedMap,
    fd: OwnedFd,
}

/// Size of a [`SharedPage`].
#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

impl SharedPage {
    /// A fresh zeroed page (memfd, close-on-exec).
    ///
    /// # Errors
    /// The system error.
    pub fn create() -> Result<Self> {
        #[cfg(target_os = "linux")]
        {
            let fd = memfd("ipc-audit-floor", false)
                .map_err(|e| Error::sys("memfd_create (floor page)", e))?;
            nix::unistd::ftruncate(&fd, PAGE as i64)
                .map_err(|e| Error::sys("ftruncate (floor page)", e))?;
            Self::map(fd)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(Error::Unsupported(
                "the shared-memory floors are implemented on Linux only".into(),
            ))
        }
    }

    /// Maps a page made by [`SharedPage::create`] in another process.
    ///
    /// # Errors
    /// The system error.
    pub fn map(fd: OwnedFd) -> Result<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsFd;
            let map = SharedMap::new(fd.as_fd(), PAGE, false)
                .map_err(|e| Error::sys("mmap (floor page)", e))?;
            Ok(SharedPage { map, fd })
        }
        #[cfg(not(target_os = "linux"))]
        {
            drop(fd);
            Err(Error::Unsupported(
                "the shared-memory floors are implemented on Linux only".into(),
            ))
        }
    }

    /// A copy of the descriptor, for the other process.
    ///
    /// # Errors
    /// The system error.
    pub fn share(&self) -> Result<OwnedFd> {
        self.fd
            .try_clone()
            .map_err(|e| Error::io("dup the floor page", e))
    }

    /// The page's first word.
    pub fn word(&self) -> &AtomicU32 {
        self.word_at(0)
    }

    /// The word `i` (of 1024; panics past them: a fixed index of the caller's layout).
    pub fn word_at(&self, i: usize) -> &AtomicU32 {
        assert!(i < 1024, "word {i} outside the 4096-byte floor page");
        #[cfg(target_os = "linux")]
        {
            // SAFETY: the mapping is page-aligned, PAGE bytes (word `i < 1024` is inside
            // and aligned), lives as long as `self` (the reference borrows it), and is
            // only ever accessed through atomics (in both processes).
            unsafe { self.map.ptr().cast::<AtomicU32>().add(i).as_ref() }
        }
        #[cfg(not(target_os = "linux"))]
        {
            unreachable!("a SharedPage cannot be made off Linux")
        }
    }
}
