//! `semaphore`: a named POSIX semaphore. It carries no data: it is here to be audited
//! (access control, peer death) and measured (hand-off latency).
//!
//! nix has no POSIX semaphores: the calls (`sem_open`, `sem_post`, `sem_wait`,
//! `sem_timedwait`, `sem_close`, `sem_unlink`) are [`crate::sys::sem`]'s.

use std::ffi::CString;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::named::{OwnerLock, unique_name};
use super::stream::deadline;
use super::{Access, Boundaries, Config, Endpoint, Guarantees, Link, Ordering, PeerEnd};
use super::{Rendezvous, Transport};
use crate::error::{Error, Result};
use crate::sys::sem::{self as raw, NamedSem};

const NAME: &str = "semaphore";

/// Longest semaphore name after the '/': NAME_MAX less glibc's "sem." prefix.
pub const SEM_NAME_MAX: usize = 251;

/// A named POSIX semaphore (`sem_open`) with a name unique per link
/// (`/ipc-audit-sem-<pid>-<n>`, the file `/dev/shm/sem.<name>` on Linux), mode 0600
/// (exact: `sem_open` applies the umask, so the mode is set again with `chmod`; it is
/// never wider than asked), removed by the link's guard. One way: the peer posts
/// (`send` of an empty message), the local end waits (`recv`, 0 bytes) with a deadline.
/// Posts are counted, not coalesced. No descriptor stays open (glibc maps the file and
/// closes it). A waiter cannot tell that the poster died: it times out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Semaphore;

/// Checks a semaphore name: '/' then 1 to [`SEM_NAME_MAX`] bytes, none '/' or NUL.
///
/// # Errors
/// [`Error::Invalid`] naming the rule and the name.
pub fn validate_name(name: &str) -> Result<CString> {
    let Some(rest) = name.strip_prefix('/') else {
        return Err(Error::invalid("semaphore name must start with '/'", name));
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(Error::invalid(
            "semaphore name must be '/' then at least one character other than '/'",
            name,
        ));
    }
    if rest.len() > SEM_NAME_MAX {
        return Err(Error::invalid(
            format!(
                "semaphore name must be at most {SEM_NAME_MAX} bytes after '/', it has {}",
                rest.len()
            ),
            name,
        ));
    }
    CString::new(name).map_err(|_| Error::invalid("semaphore name must not contain NUL", name))
}

/// Unlinks the semaphore's name on drop.
#[derive(Debug)]
pub struct SemGuard {
    name: CString,
    // Dropped after the name is unlinked: the owner lock of a caller-chosen name.
    _lock: Option<OwnerLock>,
}

impl SemGuard {
    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.name.to_str().unwrap_or("")
    }
}

impl Drop for SemGuard {
    fn drop(&mut self) {
        let _ = raw::unlink(&self.name);
    }
}

/// One end of the semaphore.
#[derive(Debug)]
pub struct SemEndpoint {
    sem: NamedSem,
    name: String,
    posts: bool,
    timeout: Option<Duration>,
}

fn sem_open(name: &CString, create: Option<u32>) -> Result<NamedSem> {
    match create {
        Some(mode) => NamedSem::create(name, mode),
        None => NamedSem::open(name),
    }
    .map_err(|e| Error::sys(format!("{NAME}: sem_open {}", name.to_string_lossy()), e))
}

/// Creates the semaphore `name` (which must not exist) with value 0 and exactly `mode`,
/// and opens it for waiting. The guard removes the name.
///
/// # Errors
/// [`Error::Invalid`] for a bad name or a mode over 0o777; the system error naming the
/// semaphore.
pub fn create(name: &str, mode: u32) -> Result<(SemEndpoint, SemGuard)> {
    let cname = validate_name(name)?;
    if mode & !0o777 != 0 {
        return Err(Error::invalid(
            "mode must be within 0o777",
            format!("{mode:#o}"),
        ));
    }
    // Owner bits only at creation (the umask may narrow them further), then exactly
    // `mode`: never wider than asked.
    let sem = sem_open(&cname, Some(mode & 0o600))?;
    let end = SemEndpoint {
        sem,
        name: name.into(),
        posts: false,
        timeout: None,
    };
    let guard = SemGuard {
        name: cname,
        _lock: None,
    };
    let path = format!("/dev/shm/sem.{}", &name[1..]);
    super::named::chmod(std::path::Path::new(&path), mode)?;
    Ok((end, guard))
}

/// Opens an existing semaphore for posting.
///
/// # Errors
/// [`Error::Invalid`] for a bad name; the system error (ENOENT, EACCES) naming it.
pub fn open_poster(name: &str) -> Result<SemEndpoint> {
    let cname = validate_name(name)?;
    let sem = sem_open(&cname, None)?;
    Ok(SemEndpoint {
        sem,
        name: name.into(),
        posts: true,
        timeout: None,
    })
}

impl SemEndpoint {
    /// The semaphore's current value (`sem_getvalue`).
    ///
    /// # Errors
    /// The system error.
    pub fn value(&self) -> Result<i32> {
        self.sem
            .value()
            .map_err(|e| Error::sys(format!("{NAME}: sem_getvalue {}", self.name), e))
    }

    /// Waits for one post until `dl`.
    fn wait(&mut self, dl: Option<Instant>) -> Result<()> {
        // Named only on the error path: a wait that succeeds does not allocate.
        let op = || format!("{NAME}: wait on {}", self.name);
        loop {
            let r = match dl {
                None => self.sem.wait(),
                Some(d) => {
                    // sem_timedwait takes an absolute CLOCK_REALTIME time: convert the
                    // time left, again on every retry.
                    let left = d.saturating_duration_since(Instant::now());
                    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
                        .map_err(|e| Error::sys("clock_gettime", e))?;
                    let abs = now + nix::sys::time::TimeSpec::from_duration(left);
                    self.sem.timed_wait(&abs)
                }
            };
            let Err(e) = r else {
                return Ok(());
            };
            match e {
                Errno::EINTR => {}
                Errno::ETIMEDOUT => {
                    // The realtime clock may have jumped: trust the monotonic deadline.
                    if dl.is_some_and(|d| Instant::now() >= d) {
                        return Err(Error::Timeout {
                            op: op(),
                            after: Duration::ZERO,
                        });
                    }
                }
                e => return Err(Error::sys(op(), e)),
            }
        }
    }
}

impl Endpoint for SemEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        if !self.posts {
            return Err(Error::Unsupported(format!("{NAME}: this end only waits")));
        }
        if !msg.is_empty() {
            return Err(Error::TooLarge {
                len: msg.len(),
                max: 0,
            });
        }
        self.sem
            .post()
            .map_err(|e| Error::sys(format!("{NAME}: sem_post {}", self.name), e))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        if self.posts {
            return Err(Error::Unsupported(format!("{NAME}: this end only posts")));
        }
        self.wait(deadline(self.timeout))?;
        buf.clear();
        Ok(0)
    }

    fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.timeout = timeout;
        Ok(())
    }
}

impl Semaphore {
    /// Opens a link and returns the waiting end as its concrete type, the peer's part
    /// (the name) and the guard.
    ///
    /// # Errors
    /// As [`create`].
    pub fn open_concrete(&self, cfg: &Config) -> Result<(SemEndpoint, PeerEnd, SemGuard)> {
        if let Some(m) = cfg.max_message
            && m > 0
        {
            return Err(Error::invalid(
                format!("{NAME}: carries no data, max_message must be 0"),
                m,
            ));
        }
        let (name, lock) = match &cfg.name {
            // A caller-chosen name: its owner lock (in `cfg.dir`) tells a dead owner's
            // semaphore, which is removed, from a live one's, which is refused.
            Some(n) => {
                let dir = cfg.dir.clone().unwrap_or_else(std::env::temp_dir);
                let lock = OwnerLock::take(&dir, n)?;
                let name = format!("/{n}");
                let c = CString::new(name.clone())
                    .map_err(|_| Error::invalid(format!("{NAME}: a name without NUL"), n))?;
                if let Err(e) = raw::unlink(&c)
                    && e != Errno::ENOENT
                {
                    return Err(Error::sys(
                        format!("{NAME}: remove the stale semaphore {name}"),
                        e,
                    ));
                }
                (name, Some(lock))
            }
            None => (format!("/{}", unique_name("ipc-audit-sem")), None),
        };
        let (end, mut guard) = create(&name, cfg.mode)?;
        guard._lock = lock;
        Ok((
            end,
            PeerEnd {
                fds: Vec::new(),
                info: name,
            },
            guard,
        ))
    }
}

impl Transport for Semaphore {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: false,
            boundaries: Boundaries::None,
            ordering: Ordering::None,
            reliable: true,
            max_message: 0,
            duplex: false,
            access: Access::FileMode,
            rendezvous: Rendezvous::Named,
            platforms: vec!["POSIX".into(), "Linux".into(), "FreeBSD".into()],
            many_senders: None,
        }
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        let (end, peer, guard) = self.open_concrete(cfg)?;
        let path = Some(std::path::PathBuf::from(format!(
            "/dev/shm/sem.{}",
            peer.info.trim_start_matches('/')
        )));
        Ok(Link {
            local: Box::new(end),
            peer,
            guard: Some(Box::new(guard)),
            path,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(open_poster(&peer.info)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cfg: &Config) -> (SemEndpoint, SemEndpoint, SemGuard) {
        let (mut w, peer, g) = Semaphore.open_concrete(cfg).unwrap();
        w.set_timeout(Some(Duration::from_secs(5))).unwrap();
        let p = open_poster(&peer.info).unwrap();
        (w, p, g)
    }

    #[test]
    fn posts_are_counted_not_coalesced() {
        let (mut w, mut p, _g) = pair(&Config::default());
        for _ in 0..5 {
            p.send(b"").unwrap();
        }
        assert_eq!(w.value().unwrap(), 5);
        let mut buf = vec![1, 2, 3];
        for _ in 0..5 {
            assert_eq!(w.recv(&mut buf).unwrap(), 0);
            assert!(buf.is_empty());
        }
        w.set_timeout(Some(Duration::from_millis(20))).unwrap();
        assert!(matches!(w.recv(&mut buf), Err(Error::Timeout { .. })));
    }

    #[test]
    fn wait_wakes_on_a_post_from_another_thread() {
        let (mut w, mut p, _g) = pair(&Config::default());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            p.send(b"").unwrap();
        });
        let mut buf = Vec::new();
        assert_eq!(w.recv(&mut buf).unwrap(), 0);
        t.join().unwrap();
    }

    #[test]
    fn data_is_refused_naming_the_limit() {
        let (_w, mut p, _g) = pair(&Config::default());
        let e = p.send(b"x").unwrap_err();
        assert!(matches!(e, Error::TooLarge { len: 1, max: 0 }), "{e}");
        assert!(
            Semaphore
                .open(&Config::default().with_max_message(1))
                .is_err()
        );
    }

    #[test]
    fn bad_and_missing_names_are_named() {
        for (name, needle) in [("noslash", "noslash"), ("/a/b", "/a/b"), ("/", "\"/\"")] {
            let e = validate_name(name).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let long = format!("/{}", "x".repeat(SEM_NAME_MAX + 1));
        assert!(
            validate_name(&long)
                .unwrap_err()
                .to_string()
                .contains("251")
        );
        let e = open_poster("/ipc-audit-sem-missing").unwrap_err();
        assert!(e.to_string().contains("/ipc-audit-sem-missing"), "{e}");
    }
}
