//! Private directories for named objects (FIFOs, socket paths, files).
//!
//! Every link gets its own directory, named with the pid and a counter, and removed with
//! everything in it when the guard drops. An object is made in a `staging/` folder that
//! only the owner can enter, given its exact mode with `chmod` (so the umask neither
//! widens nor narrows it), then renamed into the directory: the name appears with its
//! final mode, with no window in which it is more open.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The longest path a Unix socket can be bound or connected at: `sun_path` holds 108
/// bytes, the last of them the NUL.
pub(crate) const SUN_PATH_MAX: usize = 107;

/// Room a link's private directory and the socket in it take under their parent:
/// `ipc-audit-uds-seqpacket-PID-N-XXXXXX/staging/sock`, with room to spare.
const SOCKET_ROOM: usize = 64;

/// Where to make a directory that will hold a socket path `room` bytes long below it:
/// the temporary directory when the path fits `sun_path` there, otherwise `/tmp` (short,
/// and reachable by every uid, as the access properties need; the directory made in it
/// is private: a random name, mode 0711).
pub(crate) fn socket_parent(room: usize) -> PathBuf {
    let tmp = std::env::temp_dir();
    if tmp.as_os_str().len() + 1 + room <= SUN_PATH_MAX {
        tmp
    } else {
        PathBuf::from("/tmp")
    }
}

/// `make` for a socket at a path: refuses a path longer than `sun_path` holds, naming
/// the limit, before the kernel would say only "File name too long".
pub(crate) fn fits_sun_path(p: &Path) -> Result<()> {
    let len = p.as_os_str().len();
    if len > SUN_PATH_MAX {
        return Err(Error::invalid(
            format!(
                "a Unix socket path is at most {SUN_PATH_MAX} bytes (sun_path holds 108 with \
                 the NUL); this one has {len}: choose a shorter Config::dir or name"
            ),
            p.display(),
        ));
    }
    Ok(())
}

/// A name unique in this machine for as long as this process lives: `prefix-pid-n`.
pub(crate) fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// An [`Error::Io`] from tempfile's error, with an errno: tempfile wraps the kernel's
/// error with its path, which hides the errno from `raw_os_error`, so it is taken back
/// from the error's kind (which the standard library derived from it).
pub(crate) fn tempdir_error(op: String, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    let raw = e.raw_os_error().or(match e.kind() {
        K::PermissionDenied => Some(libc::EACCES),
        K::ReadOnlyFilesystem => Some(libc::EROFS),
        K::StorageFull => Some(libc::ENOSPC),
        K::QuotaExceeded => Some(libc::EDQUOT),
        K::InvalidFilename => Some(libc::ENAMETOOLONG),
        K::NotFound => Some(libc::ENOENT),
        _ => None,
    });
    match raw {
        Some(n) => Error::io(format!("{op}: {e}"), std::io::Error::from_raw_os_error(n)),
        None => Error::io(op, e),
    }
}

/// A directory owned by one link; removed with its content on drop.
#[derive(Debug)]
pub(crate) struct NamedDir {
    dir: tempfile::TempDir,
}

impl NamedDir {
    /// A new directory under the system temporary directory, mode 0711: others may reach
    /// a name inside it that they know, but not list it.
    #[allow(dead_code)] // for transports that take no Config
    pub(crate) fn new(kind: &str) -> Result<Self> {
        Self::in_dir(kind, None)
    }

    /// A new directory under `cfg.dir` (or the system temporary directory).
    pub(crate) fn for_config(kind: &str, cfg: &crate::transport::Config) -> Result<Self> {
        Self::in_dir(kind, cfg.dir.as_deref())
    }

    /// A new directory for a socket: under `cfg.dir`, or where a socket path fits
    /// `sun_path` ([`socket_parent`]).
    #[allow(dead_code)] // Linux-only transports
    pub(crate) fn for_socket(kind: &str, cfg: &crate::transport::Config) -> Result<Self> {
        match &cfg.dir {
            Some(d) => Self::in_dir(kind, Some(d)),
            None => Self::in_dir(kind, Some(&socket_parent(SOCKET_ROOM))),
        }
    }

    fn in_dir(kind: &str, parent: Option<&Path>) -> Result<Self> {
        let prefix = format!("{}-", unique_name(&format!("ipc-audit-{kind}")));
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix);
        let dir = match parent {
            Some(p) => b.tempdir_in(p),
            None => b.tempdir(),
        }
        .map_err(|e| tempdir_error(format!("create a temporary directory {prefix}*"), e))?;
        chmod(dir.path(), 0o711)?;
        let staging = dir.path().join("staging");
        fs::create_dir(&staging)
            .map_err(|e| Error::io(format!("mkdir {}", staging.display()), e))?;
        chmod(&staging, 0o700)?;
        Ok(NamedDir { dir })
    }

    /// Makes an object called `name` with `make` (which gets the staging path), sets its
    /// mode to exactly `mode`, and moves it to its public path, which is returned with
    /// what `make` returned.
    pub(crate) fn publish<T>(
        &self,
        name: &str,
        mode: u32,
        make: impl FnOnce(&Path) -> Result<T>,
    ) -> Result<(PathBuf, T)> {
        if mode & !0o777 != 0 {
            return Err(Error::invalid(
                "mode must be within 0o777",
                format!("{mode:#o}"),
            ));
        }
        let staged = self.dir.path().join("staging").join(name);
        let public = self.dir.path().join(name);
        let made = make(&staged)?;
        chmod(&staged, mode)?;
        fs::rename(&staged, &public).map_err(|e| {
            Error::io(
                format!("rename {} to {}", staged.display(), public.display()),
                e,
            )
        })?;
        Ok((public, made))
    }
}

/// Sets the mode of `path` to exactly `mode`.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {mode:#o} {}", path.display()), e))
}

/// The owner lock of a name chosen by the caller ([`Config::name`](super::Config::name)):
/// an exclusive `flock` on `.NAME.lock` beside the object, held for the link's life. The
/// kernel drops the lock when its owner dies, however it dies, so a name whose lock can
/// be taken has no live owner: an object still there was left by a crashed process and
/// may be removed. A name whose lock is held is refused; its object is never touched.
#[derive(Debug)]
pub(crate) struct OwnerLock {
    path: PathBuf,
    _lock: nix::fcntl::Flock<fs::File>,
}

impl OwnerLock {
    /// Takes the lock of `name` in `dir`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `name` is not a plain file name or a live process owns it;
    /// the system error otherwise.
    pub(crate) fn take(dir: &Path, name: &str) -> Result<Self> {
        use nix::fcntl::{Flock, FlockArg};
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Error::invalid(
                "a link name must be a plain file name",
                name,
            ));
        }
        let path = dir.join(format!(".{name}.lock"));
        // The owner removes the lock file as it goes; a lock taken on a file that was
        // removed meanwhile guards nothing, so check that the path still names it.
        for _ in 0..8 {
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(crate::sys::fd::O_CLOEXEC)
                .open(&path)
                .map_err(|e| Error::io(format!("open the owner lock {}", path.display()), e))?;
            let lock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => l,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(Error::invalid(
                        format!(
                            "the link name is in use by a live owner (lock {} held)",
                            path.display()
                        ),
                        name,
                    ));
                }
                Err((_, e)) => {
                    return Err(Error::sys(format!("flock {}", path.display()), e));
                }
            };
            let same = match (lock.metadata(), fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                return Ok(OwnerLock { path, _lock: lock });
            }
        }
        Err(Error::invalid(
            "the owner lock kept changing under us",
            path.display(),
        ))
    }
}

impl Drop for OwnerLock {
    fn drop(&mut self) {
        // Removed while still held: a newcomer either waits for nothing (EWOULDBLOCK) or
        // sees the path gone or replaced and retries.
        let _ = fs::remove_file(&self.path);
    }
}

/// A path object at a caller-chosen name, with its owner lock: removes the object, its
/// staging directory, then the lock, on drop.
#[derive(Debug)]
pub(crate) struct Claimed {
    object: PathBuf,
    staging: PathBuf,
    _lock: OwnerLock,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.object);
        let _ = fs::remove_dir_all(&self.staging);
    }
}

/// Makes a path object called `cfg.name` in `cfg.dir` (or the temporary directory): takes
/// the owner lock, removes what a dead owner left there (the object and its staging
/// directory `.NAME.staging`), makes the object with `make` in that staging directory
/// (mode 0700) with exactly `cfg.mode`, and renames it into place. Returns the path, what
/// `make` returned, whether a stale object was reclaimed, and the guard.
pub(crate) fn publish_named<T>(
    kind: &str,
    cfg: &crate::transport::Config,
    name: &str,
    make: impl FnOnce(&Path) -> Result<T>,
) -> Result<(PathBuf, T, bool, Claimed)> {
    if cfg.mode & !0o777 != 0 {
        return Err(Error::invalid(
            "mode must be within 0o777",
            format!("{:#o}", cfg.mode),
        ));
    }
    let dir = cfg.dir.clone().unwrap_or_else(std::env::temp_dir);
    let lock = OwnerLock::take(&dir, name)?;
    let object = dir.join(name);
    let staging = dir.join(format!(".{name}.staging"));
    let mut stale = false;
    if fs::symlink_metadata(&staging).is_ok() {
        fs::remove_dir_all(&staging)
            .map_err(|e| Error::io(format!("remove the stale {}", staging.display()), e))?;
        stale = true;
    }
    if fs::symlink_metadata(&object).is_ok() {
        fs::remove_file(&object)
            .map_err(|e| Error::io(format!("remove the stale {kind} {}", object.display()), e))?;
        stale = true;
    }
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| Error::io(format!("mkdir {}", staging.display()), e))?;
    }
    let guard = Claimed {
        object: object.clone(),
        staging: staging.clone(),
        _lock: lock,
    };
    chmod(&staging, 0o700)?;
    let staged = staging.join(name);
    let made = make(&staged)?;
    chmod(&staged, cfg.mode)?;
    fs::rename(&staged, &object).map_err(|e| {
        Error::io(
            format!("rename {} to {}", staged.display(), object.display()),
            e,
        )
    })?;
    Ok((object, made, stale, guard))
}

/// The owner's guard of a published path object.
pub(crate) type PathGuard = Box<dyn std::any::Any + Send>;

/// Makes a path object: at `cfg.name` with its owner lock ([`publish_named`]), or as
/// `unique` in a fresh private directory ([`NamedDir::publish`]). Returns its path, what
/// `make` returned, and the guard that removes it.
#[allow(dead_code)] // Linux-only transports
pub(crate) fn publish_path<T>(
    kind: &str,
    cfg: &crate::transport::Config,
    unique: &str,
    make: impl FnOnce(&Path) -> Result<T>,
) -> Result<(PathBuf, T, PathGuard)> {
    match &cfg.name {
        Some(name) => {
            let (path, made, _stale, claim) = publish_named(kind, cfg, name, make)?;
            Ok((path, made, Box::new(claim)))
        }
        None => {
            let dir = NamedDir::for_config(kind, cfg)?;
            let (path, made) = dir.publish(unique, cfg.mode, make)?;
            Ok((path, made, Box::new(dir)))
        }
    }
}

/// [`publish_path`] for a Unix socket: without `cfg.dir`, its directory is where the path
/// fits `sun_path` ([`socket_parent`]); a path that cannot fit is an
/// [`Error::Invalid`] naming the limit.
#[allow(dead_code)] // Linux-only transports
pub(crate) fn publish_socket<T>(
    kind: &str,
    cfg: &crate::transport::Config,
    unique: &str,
    make: impl FnOnce(&Path) -> Result<T>,
) -> Result<(PathBuf, T, PathGuard)> {
    let make = |p: &Path| {
        fits_sun_path(p)?;
        make(p)
    };
    match (&cfg.dir, &cfg.name) {
        (None, Some(name)) => {
            let room = 2 * name.len() + ".".len() + ".staging/".len() + 1;
            let cfg = cfg.clone().with_dir(socket_parent(room));
            publish_path(kind, &cfg, unique, make)
        }
        (None, None) => {
            let dir = NamedDir::for_socket(kind, cfg)?;
            let (path, made) = dir.publish(unique, cfg.mode, make)?;
            Ok((path, made, Box::new(dir)))
        }
        _ => publish_path(kind, cfg, unique, make),
    }
}

/// Where a POSIX message queue called `name` shows in the file system, if the mqueue file
/// system is mounted at /dev/mqueue.
#[allow(dead_code)] // Linux-only transports
pub(crate) fn mqueue_path(name: &str) -> Option<PathBuf> {
    let dir = Path::new("/dev/mqueue");
    dir.is_dir().then(|| dir.join(name.trim_start_matches('/')))
}

/// The path at the end of a peer info of the form `"... /abs/path"`, if there is one.
#[allow(dead_code)] // Linux-only transports
pub(crate) fn path_in_info(info: &str) -> Option<PathBuf> {
    let last = info.rsplit(' ').next()?;
    last.starts_with('/').then(|| PathBuf::from(last))
}
