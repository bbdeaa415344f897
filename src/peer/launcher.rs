//! Which program a peer is, and the descriptor lister that runs the same program.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::PEER_ENV;
use crate::error::{Error, Result};

/// How to start a peer process. The program must call [`crate::run_if_peer`] at the top
/// of its `main` (or of the test named in its arguments).
#[derive(Debug, Clone)]
pub struct PeerLauncher {
    pub(super) program: PathBuf,
    pub(super) args: Vec<OsString>,
}

impl PeerLauncher {
    /// Runs `program` with `args`.
    pub fn program(program: impl Into<PathBuf>, args: impl IntoIterator<Item = OsString>) -> Self {
        PeerLauncher {
            program: program.into(),
            args: args.into_iter().collect(),
        }
    }

    /// Re-runs the current executable with no arguments: right for a program whose
    /// `main` starts with [`crate::run_if_peer`].
    ///
    /// # Errors
    /// When the current executable cannot be found.
    pub fn current_exe() -> Result<Self> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("find the current executable", e))?;
        Ok(Self::program(exe, []))
    }

    /// [`current_exe`](Self::current_exe), keeping the program and arguments of the
    /// launcher this peer was started with when it is itself a test binary.
    pub(crate) fn current_exe_or_self() -> Self {
        let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let args = std::env::args_os().skip(1).collect();
        PeerLauncher { program, args }
    }

    /// Re-runs the current test binary for the one test `test_name`, which must start
    /// with [`crate::run_if_peer`]: for audits run from a `#[test]`.
    ///
    /// # Errors
    /// When the current executable cannot be found.
    pub fn test_binary(test_name: &str) -> Result<Self> {
        let mut l = Self::current_exe()?;
        l.args = [
            "--exact",
            test_name,
            "--nocapture",
            "--test-threads",
            "1",
            "-q",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        Ok(l)
    }

    /// The program it runs, for messages.
    pub fn program_path(&self) -> &std::path::Path {
        &self.program
    }
}

/// Set in a child that only lists its descriptors (see [`child_fds`]).
pub(super) const LIST_FDS_ENV: &str = "IPC_AUDIT_LIST_FDS";
/// The prefix of each descriptor line the lister prints.
const LIST_FDS_PREFIX: &str = "ipc-audit-fd ";

/// Prints this process's open descriptors for [`child_fds`] and exits, if this process
/// is such a lister; returns otherwise.
pub(super) fn list_fds_if_asked() {
    if std::env::var_os(LIST_FDS_ENV).is_some() {
        for fd in open_fds() {
            println!("{LIST_FDS_PREFIX}{fd}");
        }
        std::process::exit(0);
    }
}

/// This process's open descriptors beyond 0, 1 and 2, as `N -> target`, leaving out the
/// one that lists the directory.
pub(crate) fn open_fds() -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Ok(n) = name.parse::<i32>() else { continue };
            if n <= 2 {
                continue;
            }
            let target = std::fs::read_link(e.path())
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            // The directory being read, or a descriptor already closed.
            if target.starts_with("/proc/") || target.is_empty() {
                continue;
            }
            v.push(format!("{n} -> {target}"));
        }
    }
    v.sort();
    v
}

/// Starts a fork+exec child of `launcher`'s program that lists its descriptors (beyond
/// 0, 1, 2), and returns them: whatever is there leaked across exec.
pub(crate) fn child_fds(launcher: &PeerLauncher) -> Result<Vec<String>> {
    let out = Command::new(&launcher.program)
        .args(&launcher.args)
        .env(LIST_FDS_ENV, "1")
        .env_remove(PEER_ENV)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| {
            Error::io(
                format!("start {} to list descriptors", launcher.program.display()),
                e,
            )
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(LIST_FDS_PREFIX).map(str::to_string))
        .collect())
}
