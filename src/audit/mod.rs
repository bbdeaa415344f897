//! The audit: properties checked on a transport with the peer in a separate process.
//!
//! Each property is a proptest property: cases are generated, run against a fresh link
//! and a fresh peer process, and a failing case is shrunk to a minimal one, which the
//! report shows. A property whose guarantee the transport does not declare (UDP's order)
//! still runs: what it saw is reported, and the verdict does not fail.
//!
//! # Auditing your own transport
//!
//! Implement [`Transport`] for it (or for a small adapter
//! around it) and make `ipc_audit::cli::audit_main` (cargo feature `cli`, on by
//! default) the first call in `main`:
//!
//! ```no_run
//! use std::process::ExitCode;
//! use ipc_audit::transport::pipe::Pipe; // your transport here
//!
//! fn main() -> ExitCode {
//!     ipc_audit::cli::audit_main(&[&Pipe])
//! }
//! ```
//!
//! The [guide] walks through a complete adapter. For finer control, call
//! [`crate::run_if_peer`] first thing and use an [`Auditor`] directly.

use std::time::Duration;

use crate::transport::Transport;

pub(crate) mod exchange;
mod faults;
mod props;
mod report;
pub(crate) mod role;
mod security;
#[cfg(all(target_os = "linux", not(loom)))]
mod signals;
mod watch;

pub use crate::peer::{Identity, PEER_ENV, PeerLauncher, PeerOptions};
pub use exchange::content;
pub use report::{PropertyResult, Report, TransportReport, Verdict};

#[doc = include_str!("guide.md")]
pub mod guide {}

/// Default number of cases per property; `IPC_AUDIT_CASES` overrides it.
pub const DEFAULT_CASES: u32 = 32;

/// The environment variable that sets the cases per property (a whole number, at least 1).
pub const CASES_ENV: &str = "IPC_AUDIT_CASES";

/// The environment variable that turns every not-run check into a failure when `1`
/// (as `--strict` does); `0` or unset leaves not run apart.
pub const STRICT_ENV: &str = "IPC_AUDIT_STRICT";

/// The cases per property `IPC_AUDIT_CASES` asks for, or [`DEFAULT_CASES`] when unset.
///
/// # Errors
/// [`crate::Error::Invalid`] naming the value when it is not a whole number of at least 1.
pub fn cases_from_env() -> crate::Result<u32> {
    Ok(whole_from_env(CASES_ENV, 1)?.unwrap_or(DEFAULT_CASES))
}

/// The variables that tune one property each (deeper runs are one variable away), with
/// the least value each takes: `IPC_AUDIT_DEATH_CASES`, `IPC_AUDIT_EINTR_CASES`,
/// `IPC_AUDIT_RETRY_CASES`, `IPC_AUDIT_SENDERS_CASES`, `IPC_AUDIT_SENDERS_MIB`,
/// `IPC_AUDIT_FD_CHURN`, `IPC_AUDIT_FD_MESSAGES` (at least 200),
/// `IPC_AUDIT_DEADLINE_SLACK_MS` and `IPC_AUDIT_RACE_MS` (at least 100).
pub const TUNING_ENV: &[(&str, u32)] = &[
    ("IPC_AUDIT_DEATH_CASES", 1),
    ("IPC_AUDIT_EINTR_CASES", 1),
    ("IPC_AUDIT_RETRY_CASES", 1),
    ("IPC_AUDIT_SENDERS_CASES", 1),
    ("IPC_AUDIT_SENDERS_MIB", 1),
    ("IPC_AUDIT_FD_CHURN", 1),
    ("IPC_AUDIT_FD_MESSAGES", 200),
    ("IPC_AUDIT_DEADLINE_SLACK_MS", 1),
    ("IPC_AUDIT_RACE_MS", 100),
];

/// The whole number that `var` gives, `None` when unset.
///
/// # Errors
/// [`crate::Error::Invalid`] naming the value when it is not a whole number of at least
/// `least`.
pub fn whole_from_env(var: &str, least: u32) -> crate::Result<Option<u32>> {
    let bad = |v: String| {
        crate::Error::invalid(
            format!("{var} must be a whole number of at least {least}"),
            v,
        )
    };
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(bad(v.to_string_lossy().into_owned())),
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n >= least => Ok(Some(n)),
            _ => Err(bad(v)),
        },
    }
}

/// Checks every variable the audit reads: [`CASES_ENV`], [`STRICT_ENV`] and
/// [`TUNING_ENV`], so that a bad value stops a run before anything is measured instead
/// of silently becoming the default.
///
/// # Errors
/// [`crate::Error::Invalid`] naming the first bad variable and its value.
///
/// # Examples
/// ```
/// // Unset variables take their defaults.
/// ipc_audit::audit::check_env().unwrap();
/// ```
pub fn check_env() -> crate::Result<()> {
    cases_from_env()?;
    strict_from_env()?;
    for &(var, least) in TUNING_ENV {
        whole_from_env(var, least)?;
    }
    Ok(())
}

/// Whether `IPC_AUDIT_STRICT` asks for strict mode: `1` yes; `0`, empty or unset no.
///
/// # Errors
/// [`crate::Error::Invalid`] naming any other value.
pub fn strict_from_env() -> crate::Result<bool> {
    match std::env::var(STRICT_ENV).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0") => Ok(false),
        Ok("1") => Ok(true),
        Ok(v) => Err(crate::Error::invalid(
            format!("{STRICT_ENV} must be 0 or 1"),
            v,
        )),
        Err(std::env::VarError::NotUnicode(v)) => Err(crate::Error::invalid(
            format!("{STRICT_ENV} must be 0 or 1"),
            v.to_string_lossy(),
        )),
    }
}

/// What a property gets to run with.
pub struct Ctx<'a> {
    /// The transport under audit.
    pub transport: &'a dyn Transport,
    /// How to start the peer.
    pub launcher: &'a PeerLauncher,
    /// Cases to generate.
    pub cases: u32,
    /// The bound on any one wait.
    pub timeout: Duration,
}

/// A property of the audit.
#[derive(Clone, Copy)]
pub struct Property {
    /// Its name in the report, e.g. `ordering`.
    pub name: &'static str,
    /// One line on what it checks.
    pub about: &'static str,
    run: fn(&Ctx<'_>) -> PropertyResult,
    /// Whether it applies to a transport: when not, that transport's audit leaves it out.
    applies: fn(&dyn Transport) -> bool,
    /// It changes state of the whole process (a resource limit): no other property runs
    /// in this process meanwhile (see [`EXCLUSIVE`]).
    exclusive: bool,
}

/// Properties hold it shared while they run, an `exclusive` one holds it alone, so that
/// audits running in parallel threads of one process (as in `cargo test`) never see
/// another property's process-wide change.
static EXCLUSIVE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A property's result.
fn result(
    name: &str,
    declared: &str,
    observed: String,
    verdict: Verdict,
    detail: String,
) -> PropertyResult {
    PropertyResult {
        property: name.into(),
        declared: declared.into(),
        observed,
        verdict,
        detail,
    }
}

/// Not applicable: the transport has no such feature; `why` says which.
fn not_applicable(name: &str, declared: &str, why: &str) -> PropertyResult {
    result(
        name,
        declared,
        "not applicable".into(),
        Verdict::NotApplicable,
        why.into(),
    )
}

/// Not run here: `why` gives the cause and what would make it run.
fn not_run(name: &str, declared: &str, why: String) -> PropertyResult {
    result(name, declared, "not run".into(), Verdict::NotRun, why)
}

/// A check that could not run. When the cause is the environment (see [`environment`]),
/// it is not run, with the cause and what would make it run; otherwise a fail, with the
/// error.
fn could_not_run(name: &str, declared: &str, e: crate::Error) -> PropertyResult {
    match environment(&e.report()) {
        Some(cause) => not_run(name, declared, format!("{e}: {cause}")),
        None => result(
            name,
            declared,
            e.to_string(),
            Verdict::Fail,
            "the check could not run".into(),
        ),
    }
}

/// Whether an error that stopped a check comes from the machine rather than the
/// transport, decided on its errno and on a probe of the temporary directory, never on
/// its text: `Some(cause and remedy)` for a full disk or quota (ENOSPC, EDQUOT), a
/// read-only or unwritable temporary directory (EROFS; EACCES or EPERM when a directory
/// cannot be made there), a name the file system cannot hold (ENAMETOOLONG), no
/// descriptors left (EMFILE, ENFILE), memory or a per-user kernel quota used up
/// (ENOMEM; EAGAIN from a system call, as sigqueue gives when RLIMIT_SIGPENDING is
/// spent).
pub(crate) fn environment(e: &crate::error::ErrorReport) -> Option<String> {
    use nix::errno::Errno;
    let errno = Errno::from_raw(e.errno?);
    let cause = match errno {
        Errno::ENOSPC | Errno::EDQUOT => "a disk, queue or quota is full here (free some, or \
             raise the limit: /proc/sys/fs/mqueue, ulimit -q)"
            .to_string(),
        Errno::EROFS => format!("{} is read-only (set TMPDIR to a writable one)", tmp()),
        Errno::ENAMETOOLONG => format!(
            "a name under {} is too long (set TMPDIR to a shorter directory)",
            tmp()
        ),
        Errno::EMFILE | Errno::ENFILE => {
            "no file descriptors left (raise ulimit -n, or run fewer jobs at once)".to_string()
        }
        Errno::ENOMEM => "the kernel is out of memory or of a per-user quota".to_string(),
        Errno::EAGAIN => "a per-user kernel quota is used up (RLIMIT_SIGPENDING, \
             RLIMIT_MSGQUEUE: raise it with ulimit -i / -q, or run fewer jobs at once)"
            .to_string(),
        Errno::EACCES | Errno::EPERM => tmp_unwritable()?,
        _ => return None,
    };
    Some(format!("not run: the environment ({errno}): {cause}"))
}

/// The temporary directory, for messages.
fn tmp() -> String {
    std::env::temp_dir().display().to_string()
}

/// `Some(why)` when no directory can be made in the temporary directory.
pub(crate) fn tmp_unwritable() -> Option<String> {
    let e = tempfile::Builder::new()
        .prefix(&crate::transport::named::unique_name("ipc-audit-probe"))
        .tempdir()
        .err()?;
    Some(format!(
        "cannot create a directory in {} ({e}); set TMPDIR to a writable directory",
        tmp()
    ))
}

/// The per-user (or per-machine) kernel quota that checks of `transport` spend, which
/// two runs at once must not share: pending signals (RLIMIT_SIGPENDING) for `signal`
/// and for an `exclusive` property (it changes a resource limit), queue bytes
/// (RLIMIT_MSGQUEUE) for `posix-mq`, the System V queue limits for `sysv-mq`, inotify
/// instances for `file`, socket buffer memory for `tcp`.
#[cfg(target_os = "linux")]
fn quota_of(transport: &dyn Transport, p: &Property) -> Option<&'static str> {
    match transport.name() {
        "signal" => Some("sigpending"),
        "posix-mq" => Some("mqueue"),
        "sysv-mq" => Some("sysv"),
        "file" => Some("inotify"),
        // Socket buffer memory is accounted machine-wide (net.ipv4.tcp_mem): a full
        // buffer in one run changes what another's autotuning gives.
        "tcp" => Some("tcp-mem"),
        _ => p.exclusive.then_some("sigpending"),
    }
}

/// How long a run waits for another run's use of a quota to end.
#[cfg(target_os = "linux")]
const QUOTA_WAIT: Duration = Duration::from_secs(300);

/// Takes the cross-process lock of the quota that `p` spends on `transport`, if any
/// ([`crate::sys::lock`]); `Err` with the not-run cause when it cannot be had.
#[cfg(target_os = "linux")]
fn quota_lock(
    transport: &dyn Transport,
    p: &Property,
) -> Result<Option<crate::sys::lock::QuotaLock>, String> {
    let Some(kind) = quota_of(transport, p) else {
        return Ok(None);
    };
    crate::sys::lock::QuotaLock::take(kind, QUOTA_WAIT)
        .map(Some)
        .map_err(|e| {
            format!("not run: the {kind} quota lock, shared with other runs, could not be had: {e}")
        })
}

/// Elsewhere: no quota locks.
#[cfg(not(target_os = "linux"))]
fn quota_lock(_: &dyn Transport, _: &Property) -> Result<Option<()>, String> {
    Ok(None)
}

/// For [`Property::applies`]: every transport.
fn every(_: &dyn Transport) -> bool {
    true
}

impl std::fmt::Debug for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Property")
            .field("name", &self.name)
            .finish()
    }
}

impl Property {
    /// Runs the property.
    pub fn run(&self, ctx: &Ctx<'_>) -> PropertyResult {
        (self.run)(ctx)
    }

    /// Whether the property applies to `transport` (the signal properties only to
    /// `signal`, the memfd seals only to `shm`); [`Auditor::audit`] runs only those.
    pub fn applies_to(&self, transport: &dyn Transport) -> bool {
        (self.applies)(transport)
    }
}

/// Every property of the audit, in order.
pub fn properties() -> Vec<Property> {
    let mut v = props::all();
    v.extend(security::all());
    #[cfg(all(target_os = "linux", not(loom)))]
    v.extend(signals::all());
    v.extend(faults::all());
    v
}

/// Runs properties on transports.
#[derive(Debug, Clone)]
pub struct Auditor {
    launcher: PeerLauncher,
    cases: u32,
    timeout: Duration,
    only: Option<Vec<String>>,
}

impl Auditor {
    /// An auditor that starts peers with `launcher`, with [`DEFAULT_CASES`] cases per
    /// property (or `IPC_AUDIT_CASES`) and a 10-second bound on every wait. An invalid
    /// `IPC_AUDIT_CASES` is reported on standard error and the default used; use
    /// [`Auditor::from_env`] to refuse it.
    pub fn new(launcher: PeerLauncher) -> Self {
        let cases = cases_from_env().unwrap_or_else(|e| {
            eprintln!("ipc-audit: {e}; using {DEFAULT_CASES}");
            DEFAULT_CASES
        });
        Self::with_cases(launcher, cases)
    }

    /// As [`Auditor::new`], but an invalid `IPC_AUDIT_CASES`, `IPC_AUDIT_STRICT` or
    /// tuning variable ([`TUNING_ENV`]) is an error.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming the variable and value (see [`check_env`]).
    pub fn from_env(launcher: PeerLauncher) -> crate::Result<Self> {
        check_env()?;
        Ok(Self::with_cases(launcher, cases_from_env()?))
    }

    fn with_cases(launcher: PeerLauncher, cases: u32) -> Self {
        Auditor {
            launcher,
            cases,
            timeout: Duration::from_secs(10),
            only: None,
        }
    }

    /// The launcher that starts this auditor's peers.
    pub fn launcher(&self) -> &PeerLauncher {
        &self.launcher
    }

    /// Sets the number of cases per property.
    pub fn cases(mut self, n: u32) -> Self {
        self.cases = n.max(1);
        self
    }

    /// Sets the bound on any one wait.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Runs only the properties whose names contain one of `words`.
    pub fn only(mut self, words: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.only = Some(words.into_iter().map(Into::into).collect());
        self
    }

    /// The words given to [`Auditor::only`] that name no property (a substring of none).
    pub fn unknown_words(&self) -> Vec<String> {
        let all = properties();
        self.only
            .iter()
            .flatten()
            .filter(|w| !all.iter().any(|p| p.name.contains(w.as_str())))
            .cloned()
            .collect()
    }

    /// The properties this auditor runs.
    pub fn properties(&self) -> Vec<Property> {
        properties()
            .into_iter()
            .filter(|p| match &self.only {
                None => true,
                Some(words) => words.iter().any(|w| p.name.contains(w.as_str())),
            })
            .collect()
    }

    /// Runs every property on `transport`.
    pub fn audit(&self, transport: &dyn Transport) -> TransportReport {
        self.audit_with(transport, |_| {})
    }

    /// Runs every property on `transport`, calling `progress` with each property's
    /// name before it runs.
    pub fn audit_with(
        &self,
        transport: &dyn Transport,
        mut progress: impl FnMut(&str),
    ) -> TransportReport {
        let ctx = Ctx {
            transport,
            launcher: &self.launcher,
            cases: self.cases,
            timeout: self.timeout,
        };
        // One link opened first: when the machine refuses it (no room, an unwritable
        // TMPDIR, a quota used up), no check can run, and none fails for it.
        let no_env = transport
            .open(&crate::transport::Config::default())
            .err()
            .and_then(|e| environment(&e.report()).map(|cause| format!("{e}: {cause}")));
        let properties = self
            .properties()
            .iter()
            .filter(|p| p.applies_to(transport))
            .map(|p| {
                progress(p.name);
                if let Some(why) = &no_env {
                    return not_run(p.name, "(not checked)", why.clone());
                }
                // Across processes first, then within this one (always in that order).
                let _quota = match quota_lock(transport, p) {
                    Ok(l) => l,
                    Err(why) => return not_run(p.name, "(not checked)", why),
                };
                if p.exclusive {
                    let _alone = EXCLUSIVE.write().unwrap_or_else(|e| e.into_inner());
                    p.run(&ctx)
                } else {
                    let _shared = EXCLUSIVE.read().unwrap_or_else(|e| e.into_inner());
                    p.run(&ctx)
                }
            })
            .collect();
        TransportReport {
            name: transport.name().to_string(),
            properties,
        }
    }
}
