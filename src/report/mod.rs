//! The seed's comparison table, measured: Method | Supporting OS | Security | Latency |
//! Complexity | Efficiency | Usability, one row per transport, every cell from a
//! measurement of this run or an audit verdict.
//!
//! - **Supporting OS**: the standards and systems the transport declares (the CI's
//!   FreeBSD and macOS `cargo check` backs that the code compiles there).
//! - **Security**: the audit's access-control result when the audit has such a
//!   property; until then the declared access, marked "declared".
//! - **Latency**: round-trip p50 and p99, same cpu and cpu0 <-> cpu1, and the ratio of
//!   the p50 to the futex floor measured in the same run.
//! - **Complexity**: a measured proxy: descriptors created by `open` (plus one for a
//!   name both sides must agree on) and context switches per round trip (both
//!   processes, same cpu, from getrusage).
//! - **Efficiency**: one-way throughput (at 64 KiB, or the largest size the transport
//!   takes), CPU time per message (both processes, 64-byte stream) and heap allocations
//!   per message in steady state (round trips, both processes).
//! - **Usability**: declared guarantees, each marked with the audit's verdict.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::audit::{Auditor, TransportReport, Verdict};
use crate::peer::PeerLauncher;
mod latency;
#[cfg(feature = "cli")]
mod svg;

use crate::measure::{self, Floor, FloorKind, Latency, LatencyOptions, Pin, Throughput};
use crate::transport::{Access, Boundaries, Config, Guarantees, Ordering, Rendezvous, Transport};
pub use latency::{LatencyReport, LatencyRow, measure_latency};

/// The report page (`ipc-audit report`): [`Table::to_html`].
#[cfg(feature = "cli")]
mod html;

/// How much to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Latency settings (both pinnings).
    pub latency: LatencyOptions,
    /// Throughput: (message size, message count) pairs.
    pub sizes: Vec<(usize, usize)>,
    /// Longest one throughput run may stream.
    pub stream_limit: Duration,
    /// Floor round trips after a warm-up of a tenth as many.
    pub floor_round_trips: usize,
    /// Audit cases per property; `None` keeps the auditor's default.
    pub audit_cases: Option<u32>,
    /// Latency by message size: the sizes (those over a method's maximum are left
    /// out), the pinnings, and the round trips of each (fewer past the budget).
    pub by_size: BySize,
}

/// How the table measures latency by message size.
#[derive(Debug, Clone, PartialEq)]
pub struct BySize {
    /// Message sizes.
    pub sizes: Vec<usize>,
    /// Pinnings.
    pub pins: Vec<Pin>,
    /// Round trips and budget per size (the warm-up is a tenth).
    pub round_trips: usize,
    /// Longest one size may take.
    pub budget: Duration,
}

/// 64 B to 1 MiB in powers of 4.
pub fn sizes_by_4() -> Vec<usize> {
    (0..8).map(|k| 64usize << (2 * k)).collect()
}

impl Plan {
    /// A few seconds per transport: the whole table in well under a minute.
    pub fn quick() -> Self {
        Plan {
            latency: LatencyOptions {
                size: 64,
                warmup: 200,
                round_trips: 2000,
                budget: Duration::from_millis(150),
                timeout: Duration::from_secs(5),
            },
            sizes: vec![(64, 20_000), (4096, 5000), (65536, 1000)],
            stream_limit: Duration::from_millis(150),
            floor_round_trips: 5000,
            audit_cases: Some(2),
            // Latency by size: the full run only (a peer per size and pinning).
            by_size: BySize {
                sizes: Vec::new(),
                pins: vec![Pin::Same],
                round_trips: 300,
                budget: Duration::from_millis(40),
            },
        }
    }

    /// The full run: more round trips, longer streams, the audit's default cases.
    pub fn full() -> Self {
        Plan {
            latency: LatencyOptions::default(),
            sizes: vec![(64, 500_000), (4096, 100_000), (65536, 20_000)],
            stream_limit: Duration::from_secs(1),
            // As many as the transport's own round trips (LatencyOptions::default).
            floor_round_trips: 20_000,
            audit_cases: None,
            by_size: BySize {
                sizes: sizes_by_4(),
                pins: vec![Pin::Same, Pin::Cross],
                round_trips: 500,
                budget: Duration::from_millis(30),
            },
        }
    }
}

/// p50 and p99 of one pinning, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct P50P99 {
    /// Median round trip.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

/// Same-cpu and cross-cpu round trips.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct LatencyNs {
    /// Both processes on one cpu.
    pub same_cpu: Option<P50P99>,
    /// cpu0 <-> cpu1.
    pub cross_cpu: Option<P50P99>,
}

/// The floors measured in this run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Floors {
    /// A spinning cache line, cross cpu.
    pub shm_spin: LatencyNs,
    /// A futex hand-off.
    pub shm_futex: LatencyNs,
    /// Every floor measurement, with max and mean.
    pub details: Vec<Floor>,
    /// Floors that could not be measured, with the reason.
    pub errors: Vec<String>,
}

/// The measured proxy for complexity.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Complexity {
    /// Descriptors that `open` created (the local end's and the peer's), if countable.
    pub setup_fds: Option<usize>,
    /// Whether both sides must agree on a name (a path, a queue name, a port).
    pub named: bool,
    /// Context switches of both processes per round trip, same cpu.
    pub switches_per_round_trip: Option<f64>,
}

/// One row: one transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The transport's name.
    pub method: String,
    /// Supporting OS cell.
    pub supporting_os: String,
    /// Security cell.
    pub security: String,
    /// Round-trip latency.
    pub latency_ns: LatencyNs,
    /// The method's own floor ([`FloorKind::of_method`]), measured in the same run just
    /// before each pinning of this row; none for a method without one.
    #[serde(default)]
    pub own_floor: LatencyNs,
    /// The names of the own floors, same cpu and cross cpu (empty: none).
    #[serde(default)]
    pub own_floor_names: Vec<String>,
    /// The own floors' measurements.
    #[serde(default)]
    pub own_floor_details: Vec<Floor>,
    /// Throughput at the headline size (64 KiB, or the largest the transport takes).
    pub throughput_bytes_per_s: Option<f64>,
    /// The headline size of `throughput_bytes_per_s`.
    pub throughput_size: Option<usize>,
    /// CPU time per message, both processes, 64-byte stream (or round trips for a
    /// transport that carries no data: half a round trip).
    pub cpu_ns_per_msg: Option<f64>,
    /// Heap allocations per message in steady state, both processes (round trips).
    pub allocs_per_msg: Option<f64>,
    /// Complexity cell.
    pub complexity: String,
    /// The measured proxy behind it.
    pub complexity_measured: Complexity,
    /// Usability cell.
    pub usability: String,
    /// Every latency measurement.
    pub latency: Vec<Latency>,
    /// Latency by message size ([`Plan::by_size`]), one entry per size and pinning.
    #[serde(default)]
    pub latency_by_size: Vec<Latency>,
    /// Every throughput measurement.
    pub throughput: Vec<Throughput>,
    /// The audit's verdicts.
    pub audit: TransportReport,
    /// Measurements that failed, with the error.
    pub errors: Vec<String>,
}

/// The machine the table was measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// cpus this process may use.
    pub cpus: usize,
    /// The cpu model, from /proc/cpuinfo.
    pub cpu_model: String,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpus: measure::allowed_cpus().len(),
            cpu_model,
            kernel,
        }
    }
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// The floors of this run.
    pub floor: Floors,
    /// One row per transport, in the order given.
    pub rows: Vec<Row>,
    /// Where it was measured.
    pub machine: Machine,
    /// Whether this was a quick run.
    pub quick: bool,
    /// How long the run took, in seconds.
    pub seconds: f64,
}

/// What the table is doing, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Steps done.
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// The transport (or floor) being measured.
    pub subject: &'a str,
    /// What is being measured.
    pub what: &'a str,
}

/// Steps per transport: audit, same-cpu, cross-cpu, stream.
const STEPS: usize = 4;

/// Runs the audit and the measurements for `transports` and the floors.
pub fn run(
    launcher: &PeerLauncher,
    transports: &[Box<dyn Transport>],
    plan: &Plan,
    mut progress: impl FnMut(Progress<'_>),
) -> Table {
    let start = Instant::now();
    let total = 3 + STEPS * transports.len();
    let mut done = 0;
    let mut step = |subject: &str, what: &str, done: &mut usize| {
        progress(Progress {
            done: *done,
            total,
            subject,
            what,
        });
        *done += 1;
    };
    // The audits first, two at a time (mostly waits: timeouts, races, peers starting),
    // then the measurements one at a time on a machine the audits no longer load.
    let audits = audit_all(launcher, transports, plan, |name| {
        step(name, "audit", &mut done)
    });
    let floor = floors(launcher, plan, |what| step("floor", what, &mut done));
    let futex = floor.shm_futex;
    let mut rows = Vec::new();
    for (t, audit) in transports.iter().zip(audits) {
        let name = t.name();
        let mut row = Row::new(t.as_ref(), audit);
        let own = FloorKind::of_method(name);
        if let Some((same, cross)) = own {
            row.own_floor_names = vec![same.name().into(), cross.name().into()];
        }
        for pin in [Pin::Same, Pin::Cross] {
            step(name, pin_what(pin), &mut done);
            if let Some((same, cross)) = own {
                let kind = if pin == Pin::Same { same } else { cross };
                row.own_floor_at(launcher, plan, kind, pin);
            }
            match measure::latency(launcher, t.as_ref(), pin, &plan.latency) {
                Ok(l) => row.latency.push(l),
                Err(e) => row.errors.push(format!("latency {}-cpu: {e}", pin.name())),
            }
        }
        row.by_size(launcher, t.as_ref(), plan);
        step(name, "throughput", &mut done);
        if t.guarantees().carries_data {
            match measure::throughput(
                launcher,
                t.as_ref(),
                Pin::Cross,
                &plan.sizes,
                plan.stream_limit,
                plan.latency.timeout,
            ) {
                Ok(v) => row.throughput = v,
                Err(e) => row.errors.push(format!("throughput: {e}")),
            }
        }
        row.complexity_measured.setup_fds = setup_fds(t.as_ref());
        row.fill(t.as_ref(), &futex);
        rows.push(row);
    }
    Table {
        floor,
        rows,
        machine: Machine::here(),
        quick: plan.audit_cases.is_some(),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Audits every transport of `transports` with the plan's cases, on two threads (each
/// property of a transport still runs alone or shared as it declares); `started` is told
/// each transport's name as its audit begins. The reports come back in the order of
/// `transports`.
fn audit_all(
    launcher: &PeerLauncher,
    transports: &[Box<dyn Transport>],
    plan: &Plan,
    mut started: impl FnMut(&str),
) -> Vec<TransportReport> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Option<TransportReport>)>();
    let mut out: Vec<Option<TransportReport>> = transports.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        for _ in 0..transports.len().min(2) {
            let (tx, next) = (tx.clone(), &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(t) = transports.get(i) else { break };
                    let _ = tx.send((i, None));
                    let mut auditor = Auditor::new(launcher.clone());
                    if let Some(c) = plan.audit_cases {
                        auditor = auditor.cases(c);
                    }
                    let _ = tx.send((i, Some(auditor.audit(t.as_ref()))));
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            match r {
                None => started(transports[i].name()),
                Some(r) => out[i] = Some(r),
            }
        }
    });
    out.into_iter()
        .zip(transports)
        .map(|(r, t)| {
            r.unwrap_or_else(|| TransportReport {
                name: t.name().to_string(),
                properties: Vec::new(),
            })
        })
        .collect()
}

fn pin_what(pin: Pin) -> &'static str {
    match pin {
        Pin::Same => "same-cpu round trips",
        Pin::Cross => "cross-cpu round trips",
    }
}

/// The floors: shm-spin cross cpu, shm-futex same and cross cpu.
pub(crate) fn floors(launcher: &PeerLauncher, plan: &Plan, mut step: impl FnMut(&str)) -> Floors {
    let mut f = Floors::default();
    let n = plan.floor_round_trips;
    for (kind, pin) in [
        (FloorKind::ShmSpin, Pin::Cross),
        (FloorKind::ShmFutex, Pin::Same),
        (FloorKind::ShmFutex, Pin::Cross),
    ] {
        step(kind.name());
        match measure::floor(launcher, kind, pin, n / 10, n, plan.latency.timeout) {
            Ok(fl) => {
                let p = Some(P50P99 {
                    p50: fl.stats.p50_ns,
                    p99: fl.stats.p99_ns,
                });
                let cell = match kind {
                    FloorKind::ShmSpin => &mut f.shm_spin,
                    _ => &mut f.shm_futex,
                };
                match pin {
                    Pin::Same => cell.same_cpu = p,
                    Pin::Cross => cell.cross_cpu = p,
                }
                f.details.push(fl);
            }
            Err(e) => f
                .errors
                .push(format!("{} {}-cpu: {e}", kind.name(), pin.name())),
        }
    }
    f
}

/// Descriptors made by `open`, counted in /proc/self/fd.
fn setup_fds(t: &dyn Transport) -> Option<usize> {
    let before = crate::sys::open_fds()?;
    let link = t.open(&Config::default()).ok()?;
    let after = crate::sys::open_fds()?;
    drop(link);
    Some(after.saturating_sub(before))
}

impl Row {
    fn new(t: &dyn Transport, audit: TransportReport) -> Self {
        let g = t.guarantees();
        Row {
            method: t.name().to_string(),
            supporting_os: g.platforms.join(", "),
            security: String::new(),
            latency_ns: LatencyNs::default(),
            own_floor: LatencyNs::default(),
            own_floor_names: Vec::new(),
            own_floor_details: Vec::new(),
            throughput_bytes_per_s: None,
            throughput_size: None,
            cpu_ns_per_msg: None,
            allocs_per_msg: None,
            complexity: String::new(),
            complexity_measured: Complexity {
                named: g.rendezvous == Rendezvous::Named,
                ..Complexity::default()
            },
            usability: String::new(),
            latency: Vec::new(),
            latency_by_size: Vec::new(),
            throughput: Vec::new(),
            audit,
            errors: Vec::new(),
        }
    }

    /// Measures latency by message size (sizes up to the transport's maximum).
    fn by_size(&mut self, launcher: &PeerLauncher, t: &dyn Transport, plan: &Plan) {
        let g = t.guarantees();
        if !g.carries_data {
            return;
        }
        let b = &plan.by_size;
        for &pin in &b.pins {
            for &size in b.sizes.iter().filter(|&&s| s <= g.max_message) {
                let opts = LatencyOptions {
                    size,
                    warmup: (b.round_trips / 10).max(1),
                    round_trips: b.round_trips,
                    budget: b.budget,
                    timeout: plan.latency.timeout,
                };
                match measure::latency(launcher, t, pin, &opts) {
                    Ok(l) => self.latency_by_size.push(l),
                    Err(e) => self
                        .errors
                        .push(format!("latency {size} B {}-cpu: {e}", pin.name())),
                }
            }
        }
    }

    /// Measures this row's own floor `kind` at `pin`, just before the transport.
    fn own_floor_at(&mut self, launcher: &PeerLauncher, plan: &Plan, kind: FloorKind, pin: Pin) {
        let n = plan.floor_round_trips;
        match measure::floor(launcher, kind, pin, n / 10, n, plan.latency.timeout) {
            Ok(fl) => {
                let p = Some(P50P99 {
                    p50: fl.stats.p50_ns,
                    p99: fl.stats.p99_ns,
                });
                match pin {
                    Pin::Same => self.own_floor.same_cpu = p,
                    Pin::Cross => self.own_floor.cross_cpu = p,
                }
                self.own_floor_details.push(fl);
            }
            Err(e) => self
                .errors
                .push(format!("floor {} {}-cpu: {e}", kind.name(), pin.name())),
        }
    }

    /// Fills the cells from the measurements.
    fn fill(&mut self, t: &dyn Transport, futex: &LatencyNs) {
        let g = t.guarantees();
        let find = |pin: Pin| self.latency.iter().find(|l| l.pin == pin);
        let p = |l: Option<&Latency>| {
            l.map(|l| P50P99 {
                p50: l.stats.p50_ns,
                p99: l.stats.p99_ns,
            })
        };
        self.latency_ns = LatencyNs {
            same_cpu: p(find(Pin::Same)),
            cross_cpu: p(find(Pin::Cross)),
        };
        let head = self
            .throughput
            .iter()
            .filter(|x| x.size <= 65536)
            .max_by_key(|x| x.size);
        self.throughput_bytes_per_s = head.map(|x| x.bytes_per_s);
        self.throughput_size = head.map(|x| x.size);
        self.cpu_ns_per_msg = self
            .throughput
            .iter()
            .min_by_key(|x| x.size)
            .map(|x| x.cpu_ns_per_msg)
            .or_else(|| find(Pin::Same).map(|l| l.cpu_ns_per_round_trip / 2.0));
        self.allocs_per_msg =
            find(Pin::Same).and_then(|l| match (l.allocs_per_msg, l.peer_allocs_per_msg) {
                (Some(a), Some(b)) => Some(a + b),
                (Some(a), None) => Some(a),
                _ => None,
            });
        self.complexity_measured.switches_per_round_trip =
            find(Pin::Same).map(|l| l.switches_per_round_trip);
        self.security = security(&g, &self.audit);
        self.complexity = complexity_cell(&self.complexity_measured);
        self.usability = usability(&g, &self.audit);
        let _ = futex;
    }
}

/// The audit's access-control verdict, or the declared access marked as such.
fn security(g: &Guarantees, audit: &TransportReport) -> String {
    if let Some(p) = audit
        .properties
        .iter()
        .find(|p| p.property.contains("access") || p.property.contains("permission"))
    {
        return format!("{} ({})", p.observed, p.verdict.as_str());
    }
    let declared = match g.access {
        Access::Inherited => "inherited descriptors only",
        Access::FileMode => "file mode (0600 by default)",
        Access::FileModeAndPeerCred => "file mode (0600) + peer credentials",
        Access::SameUid => "same user only",
        Access::Anyone => "any local user",
    };
    format!("{declared} (declared)")
}

fn complexity_cell(c: &Complexity) -> String {
    let setup = match c.setup_fds {
        Some(n) => format!("{n} fd{}", if n == 1 { "" } else { "s" }),
        None => "? fds".into(),
    };
    let name = if c.named { " + a name" } else { "" };
    match c.switches_per_round_trip {
        Some(s) => format!("{setup}{name}; {s:.1} ctx switches/round trip"),
        None => format!("{setup}{name}"),
    }
}

/// The verdict of `property`, as a mark.
fn mark(audit: &TransportReport, property: &str) -> &'static str {
    match audit.properties.iter().find(|p| p.property == property) {
        Some(p) if p.verdict == Verdict::Pass => " ✓",
        Some(p) if p.verdict == Verdict::Fail => " ✗",
        _ => "",
    }
}

fn usability(g: &Guarantees, audit: &TransportReport) -> String {
    let mut parts = Vec::new();
    if !g.carries_data {
        parts.push("synchronisation only, no data".to_string());
    } else {
        parts.push(
            match g.boundaries {
                Boundaries::Native => "boundaries kept",
                Boundaries::Framed => "stream, framed",
                Boundaries::None => "boundaries not kept",
            }
            .to_string()
                + mark(audit, "boundaries"),
        );
        parts.push(
            match g.ordering {
                Ordering::Fifo => "FIFO",
                Ordering::Priority => "priority order",
                Ordering::None => "may reorder",
            }
            .to_string()
                + mark(audit, "ordering"),
        );
        if !g.reliable {
            parts.push("may drop".into());
        }
        parts.push(format!(
            "max {}{}",
            bytes(g.max_message as f64),
            mark(audit, "oversize")
        ));
    }
    parts.push(if g.duplex { "duplex" } else { "one-way" }.into());
    parts.push(
        match g.rendezvous {
            Rendezvous::Named => "unrelated processes",
            Rendezvous::Inherited => "related processes only",
        }
        .into(),
    );
    parts.join("; ")
}

/// 1536 -> "1.5 KiB".
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v.fract() == 0.0 || u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `s` cut to `n` characters (the last one an ellipsis when cut).
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
    c.push('…');
    c
}

/// The audit of a row in a few words, always in the same order: "18 pass, 1 fail, 3 not
/// applicable, 1 not run" (a verdict that no property got is left out).
fn audit_counts(r: &Row) -> String {
    let order = [
        (Verdict::Pass, "pass"),
        (Verdict::Fail, "fail"),
        (Verdict::NotApplicable, "not applicable"),
        (Verdict::NotRun, "not run"),
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|&(v, words)| {
            let n = r.audit.properties.iter().filter(|p| p.verdict == v).count();
            (n > 0).then(|| format!("{n} {words}"))
        })
        .collect();
    if parts.is_empty() {
        "not audited".into()
    } else {
        parts.join(", ")
    }
}

/// 1.8e9 -> "1.8 GB/s".
fn rate(bps: f64) -> String {
    const UNITS: [&str; 5] = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];
    let mut v = bps;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// 4300 -> "4.3 µs".
pub fn duration_ns(ns: f64) -> String {
    if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

impl Table {
    /// The floor a row's ratio is to, same cpu and cross cpu: its own, else the futex
    /// floor; with the floor's name.
    pub fn floor_of(&self, r: &Row) -> [(Option<P50P99>, String); 2] {
        let f = &self.floor.shm_futex;
        let named = |own: Option<P50P99>, i: usize, futex: Option<P50P99>| match own {
            Some(p) => (
                Some(p),
                r.own_floor_names.get(i).cloned().unwrap_or_default(),
            ),
            None => (futex, "shm-futex".to_string()),
        };
        [
            named(r.own_floor.same_cpu, 0, f.same_cpu),
            named(r.own_floor.cross_cpu, 1, f.cross_cpu),
        ]
    }

    fn latency_cell(&self, r: &Row) -> String {
        let [fs, fc] = self.floor_of(r);
        let one = |p: Option<P50P99>, (floor, name): (Option<P50P99>, String)| match p {
            Some(p) => {
                let ratio = floor
                    .filter(|f| f.p50 > 0)
                    .map(|f| format!(", {:.2}x {name}", p.p50 as f64 / f.p50 as f64))
                    .unwrap_or_default();
                format!(
                    "{} (p99 {}{ratio})",
                    duration_ns(p.p50 as f64),
                    duration_ns(p.p99 as f64)
                )
            }
            None => "n/a".into(),
        };
        format!(
            "{} / {}",
            one(r.latency_ns.same_cpu, fs),
            one(r.latency_ns.cross_cpu, fc)
        )
    }

    fn efficiency_cell(r: &Row) -> String {
        let mut parts = Vec::new();
        match (r.throughput_bytes_per_s, r.throughput_size) {
            (Some(t), Some(s)) => parts.push(format!("{} @ {}", rate(t), bytes(s as f64))),
            _ => parts.push("no throughput".into()),
        }
        if let Some(c) = r.cpu_ns_per_msg {
            parts.push(format!("{} CPU/msg", duration_ns(c)));
        }
        match r.allocs_per_msg {
            Some(a) if a < 0.005 => parts.push("0 allocs/msg".into()),
            Some(a) => parts.push(format!("{a:.2} allocs/msg")),
            None => parts.push("allocs not counted".into()),
        }
        parts.join(", ")
    }

    /// The table for a terminal, at most 160 columns: per method the p50 and its ratio
    /// to the row's floor for each pinning, the floor's name, the throughput and the
    /// audit's counts; with `detail`, each row's long cells (security, complexity,
    /// usability, errors) below it. The floors and the machine follow.
    pub fn to_text(&self, detail: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<14} {:>9} {:>7} {:>9} {:>7}  {:<31} {:>17}  AUDIT",
            "METHOD",
            "SAME p50",
            "x FLOOR",
            "CROSS p50",
            "x FLOOR",
            "FLOOR (same / cross)",
            "THROUGHPUT",
        );
        for r in &self.rows {
            let [fs, fc] = self.floor_of(r);
            let cell = |p: Option<P50P99>| p.map_or("n/a".into(), |p| duration_ns(p.p50 as f64));
            let ratio = |p: Option<P50P99>, f: Option<P50P99>| match (p, f) {
                (Some(p), Some(f)) if f.p50 > 0 => format!("{:.2}x", p.p50 as f64 / f.p50 as f64),
                _ => "-".into(),
            };
            let thr = match (r.throughput_bytes_per_s, r.throughput_size) {
                (Some(t), Some(s)) => format!("{} @ {}", rate(t), bytes(s as f64)),
                _ => "-".into(),
            };
            let line = format!(
                "{:<14} {:>9} {:>7} {:>9} {:>7}  {:<31} {:>17}  {}",
                clip(&r.method, 14),
                cell(r.latency_ns.same_cpu),
                ratio(r.latency_ns.same_cpu, fs.0),
                cell(r.latency_ns.cross_cpu),
                ratio(r.latency_ns.cross_cpu, fc.0),
                clip(&format!("{} / {}", fs.1, fc.1), 31),
                thr,
                audit_counts(r),
            );
            let _ = writeln!(out, "{}", clip(&line, 160));
            if detail {
                for (k, v) in [
                    ("security", &r.security),
                    ("os", &r.supporting_os),
                    ("complexity", &r.complexity),
                    ("usability", &r.usability),
                ] {
                    let _ = writeln!(out, "    {k}: {v}");
                }
                for p in &r.audit.properties {
                    let _ = writeln!(
                        out,
                        "    audit {}: {:?}: {}",
                        p.property, p.verdict, p.observed
                    );
                }
                for e in &r.errors {
                    let _ = writeln!(out, "    error: {e}");
                }
            }
        }
        out.push('\n');
        out.push_str(&self.footer());
        if !detail {
            out.push_str("Long cells: --detail, --format md or --format json.\n");
        }
        out
    }

    /// The floors, the machine and the time taken.
    fn footer(&self) -> String {
        let mut out = String::new();
        let fl = |p: Option<P50P99>| {
            p.map(|p| duration_ns(p.p50 as f64))
                .unwrap_or_else(|| "n/a".into())
        };
        let _ = writeln!(
            out,
            "Floors in this run (p50 round trip): shm-spin cross cpu {}; shm-futex same cpu {}, cross cpu {}.\n\
             Each ratio is to the floor it names: the method's own (its kernel object with the least code,\n\
             measured just before the row), or shm-futex for a method without one.",
            fl(self.floor.shm_spin.cross_cpu),
            fl(self.floor.shm_futex.same_cpu),
            fl(self.floor.shm_futex.cross_cpu),
        );
        for e in &self.floor.errors {
            let _ = writeln!(out, "Floor not measured: {e}");
        }
        let _ = writeln!(
            out,
            "Machine: {} cpus ({}), Linux {}. {} run, {:.1} s.",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine.kernel,
            if self.quick { "Quick" } else { "Full" },
            self.seconds
        );
        out
    }

    /// The table in Markdown, with the floors, the machine and the time taken below it.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| Method | Supporting OS | Security | Latency p50 same cpu / cross cpu | Complexity | Efficiency | Usability |\n",
        );
        out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        for r in &self.rows {
            let errors = if r.errors.is_empty() {
                String::new()
            } else {
                format!(" (errors: {})", r.errors.join("; "))
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {}{} | {} |",
                r.method,
                r.supporting_os,
                r.security,
                self.latency_cell(r),
                r.complexity,
                Self::efficiency_cell(r),
                errors,
                r.usability
            );
        }
        out.push('\n');
        out.push_str(&self.footer());
        out
    }

    /// The table as JSON: `{"floor", "rows": [...], "machine", "quick", "seconds"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The table as CSV, one line per transport, numbers in their own columns.
    pub fn to_csv(&self) -> String {
        fn q(s: &str) -> String {
            format!("\"{}\"", s.replace('"', "\"\""))
        }
        fn n<T: ToString>(v: Option<T>) -> String {
            v.map(|v| v.to_string()).unwrap_or_default()
        }
        let mut out = String::from(
            "method,supporting_os,security,same_cpu_p50_ns,same_cpu_p99_ns,cross_cpu_p50_ns,cross_cpu_p99_ns,throughput_bytes_per_s,throughput_size,cpu_ns_per_msg,allocs_per_msg,complexity,usability\n",
        );
        for r in &self.rows {
            let l = r.latency_ns;
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                q(&r.method),
                q(&r.supporting_os),
                q(&r.security),
                n(l.same_cpu.map(|p| p.p50)),
                n(l.same_cpu.map(|p| p.p99)),
                n(l.cross_cpu.map(|p| p.p50)),
                n(l.cross_cpu.map(|p| p.p99)),
                n(r.throughput_bytes_per_s.map(|v| v.round())),
                n(r.throughput_size),
                n(r.cpu_ns_per_msg.map(|v| v.round())),
                n(r.allocs_per_msg),
                q(&r.complexity),
                q(&r.usability)
            );
        }
        out
    }
}
