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

/// A name unique in this machine for as long as this process lives: `prefix-pid-n`.
pub(crate) fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
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

    fn in_dir(kind: &str, parent: Option<&Path>) -> Result<Self> {
        let prefix = format!("{}-", unique_name(&format!("ipc-audit-{kind}")));
        let mut b = tempfile::Builder::new();
        b.prefix(&prefix);
        let dir = match parent {
            Some(p) => b.tempdir_in(p),
            None => b.tempdir(),
        }
        .map_err(|e| Error::io(format!("create a temporary directory {prefix}*"), e))?;
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
