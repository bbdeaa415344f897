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

/// A check that could not run: a fail, with the error.
fn could_not_run(name: &str, declared: &str, e: crate::Error) -> PropertyResult {
    result(
        name,
        declared,
        e.to_string(),
        Verdict::Fail,
        "the check could not run".into(),
    )
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
    /// property (or `IPC_AUDIT_CASES`) and a 10-second bound on every wait.
    pub fn new(launcher: PeerLauncher) -> Self {
        let cases = std::env::var("IPC_AUDIT_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_CASES);
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
        let properties = self
            .properties()
            .iter()
            .filter(|p| p.applies_to(transport))
            .map(|p| {
                progress(p.name);
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
