//! What the third-party adapters in `examples/` share: unique names, private directories
//! and the mapping of `std::io::Error` kinds to this crate's errors. Each adapter includes
//! it with `mod common;`; it is not an example of its own (a folder without `main.rs`).

#![allow(dead_code)]

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipc_audit::{Error, Result};

/// `PREFIX-PID-N`: unique per process and call.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The error of `op` on transport `name`, told apart by the error's kind (never its text):
/// a timeout, a would-block (in nonblocking mode), a closed peer, or the I/O error.
pub fn io_error(name: &str, op: &str, e: std::io::Error, timeout: Option<Duration>) -> Error {
    let op = format!("{name}: {op}");
    match e.kind() {
        ErrorKind::WouldBlock if timeout == Some(Duration::ZERO) => Error::WouldBlock { op },
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Error::Timeout {
            op,
            after: timeout.unwrap_or_default(),
        },
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof => {
            Error::Closed { op }
        }
        _ => Error::io(op, e),
    }
}

/// A private directory `PREFIX-PID-N-*` under `dir` (or the system's temporary
/// directory), mode 0711: others may reach a name in it, not list it. Removed on drop.
pub fn private_dir(prefix: &str, dir: Option<&std::path::Path>) -> Result<tempfile::TempDir> {
    let prefix = format!("{}-", unique(prefix));
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    let d = match dir {
        Some(d) => b.tempdir_in(d),
        None => b.tempdir(),
    }
    .map_err(|e| Error::io(format!("create a temporary directory {prefix}*"), e))?;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o711))
        .map_err(|e| Error::io(format!("chmod 0711 {}", d.path().display()), e))?;
    Ok(d)
}

/// Platforms as the crate documents them.
pub fn platforms(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

/// After a write of the rest of a begun frame (`rest`) that got `r` (how far it went, or
/// the error when nothing did): what stays pending and the send's outcome. What did not
/// go out stays: it is part of a frame already begun, and the next frame must follow it;
/// a part left over is a timeout of `name`'s send.
pub fn keep_rest(
    rest: Vec<u8>,
    r: Result<usize>,
    name: &str,
    timeout: Option<Duration>,
) -> (Vec<u8>, Result<()>) {
    match r {
        Err(e) => (rest, Err(e)),
        Ok(done) if done < rest.len() => (
            rest[done..].to_vec(),
            Err(Error::Timeout {
                op: format!("{name}: send"),
                after: timeout.unwrap_or_default(),
            }),
        ),
        Ok(_) => (Vec::new(), Ok(())),
    }
}
