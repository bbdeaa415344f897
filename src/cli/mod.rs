//! The audit as one call from a user's own program: [`audit_main`].

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::audit::{Auditor, PeerLauncher, Report};
use crate::measure::{Pin, latency};
use crate::report::{Floors, LatencyNs, P50P99, Plan, duration_ns, floors};
use crate::run_if_peer;
use crate::transport::Transport;

/// The environment variable that sets the report format (`table` or `json`) when
/// `--format` is not given.
pub const FORMAT_ENV: &str = "IPC_AUDIT_FORMAT";

/// Report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// The arguments [`audit_main`] understands.
#[derive(Parser, Debug)]
#[command(about = "Checks what transports really guarantee, with the peer in another process")]
struct Args {
    /// Transports to audit, by name (all of them when none is named).
    transports: Vec<String>,
    /// Cases per property (default: IPC_AUDIT_CASES, or 32).
    #[arg(long)]
    cases: Option<u32>,
    /// Only the properties whose names contain one of these words (repeatable).
    #[arg(long = "property")]
    properties: Vec<String>,
    /// Output format (default: IPC_AUDIT_FORMAT, or table).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Also measure round-trip latency (64-byte messages, same cpu and cpu0<->cpu1)
    /// with the same code as `ipc-audit table`, beside the floors of this run.
    #[arg(long)]
    latency: bool,
    /// Built-in transports (e.g. `uds-stream`) measured beside the audited ones for
    /// comparison when `--latency` is given; they are not audited (repeatable).
    #[arg(long = "reference")]
    references: Vec<String>,
    /// Measure only, skip the audit (implies `--latency`).
    #[arg(long)]
    latency_only: bool,
    /// Most round trips per transport and pinning with `--latency` (fewer when they
    /// would take over 2 seconds); the floors take this many too.
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
}

/// Audits `transports` from a program's `main`, with the same properties, report and
/// exit status as `ipc-audit audit`.
///
/// Call it first thing in `main`: the peer processes of the audit are this same program,
/// started again, and this call runs their role (see [`run_if_peer`]) before anything
/// else. Then it reads the command line, audits each transport with the peer in another
/// process, prints the report on standard output (progress goes to standard error), and
/// returns [`ExitCode::FAILURE`] if any verdict is `fail`, `2` on bad arguments.
///
/// Command line: `[NAME]... [--cases N] [--property WORD]... [--format table|json]
/// [--latency [--reference BUILTIN]... [--round-trips N]] [--latency-only]`; `IPC_AUDIT_CASES` and
/// `IPC_AUDIT_FORMAT` are the defaults of `--cases` and `--format`.
///
/// `--latency` measures each transport's round trip with the same code as `ipc-audit
/// table` ([`crate::measure::latency`]): 64-byte messages, both processes pinned to one
/// cpu, then to two, with the futex and spinning floors measured in the same run, so
/// the ratios compare with the table's. `--reference uds-stream` measures a built-in
/// transport beside yours in the same run (it is not audited).
///
/// Not for a `#[test]`: there, the program is the test binary, which must be re-run for
/// one test only; use [`audit_cli`] with [`PeerLauncher::test_binary`].
///
/// # Examples
///
/// ```no_run
/// use std::process::ExitCode;
/// use ipc_audit::transport::pipe::Pipe;
///
/// fn main() -> ExitCode {
///     ipc_audit::cli::audit_main(&[&Pipe])
/// }
/// ```
pub fn audit_main(transports: &[&dyn Transport]) -> ExitCode {
    run_if_peer(|name| {
        transports
            .iter()
            .find(|t| t.name() == name)
            .map(|t| Box::new(*t) as Box<dyn Transport + '_>)
            .or_else(|| crate::transport::by_name(name))
    });
    let launcher = match PeerLauncher::current_exe() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    audit_cli(
        transports,
        launcher,
        std::env::args_os(),
        &mut std::io::stdout().lock(),
    )
}

/// What [`audit_main`] does after the peer role: parses `args` (the first is the program
/// name), audits `transports` with peers started by `launcher`, writes the report to
/// `out`, and returns the exit status.
///
/// The program `launcher` starts must call [`run_if_peer`] with a resolver that knows
/// `transports` by name (and the built-in transports named by `--reference`, as
/// [`audit_main`]'s resolver does).
pub fn audit_cli<I, T>(
    transports: &[&dyn Transport],
    launcher: PeerLauncher,
    args: I,
    out: &mut dyn Write,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let format = match args.format {
        Some(f) => f,
        None => match std::env::var(FORMAT_ENV).ok().as_deref() {
            None | Some("") | Some("table") => Format::Table,
            Some("json") => Format::Json,
            Some(other) => {
                eprintln!("ipc-audit: {FORMAT_ENV} must be table or json, got {other:?}");
                return ExitCode::from(2);
            }
        },
    };
    let selected: Vec<&dyn Transport> = if args.transports.is_empty() {
        transports.to_vec()
    } else {
        let mut v = Vec::new();
        for n in &args.transports {
            match transports.iter().find(|t| t.name() == n) {
                Some(t) => v.push(*t),
                None => {
                    let known: Vec<&str> = transports.iter().map(|t| t.name()).collect();
                    eprintln!(
                        "ipc-audit: unknown transport {n:?}; known: {}",
                        known.join(", ")
                    );
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    let mut auditor = Auditor::new(launcher);
    if let Some(n) = args.cases {
        if n == 0 {
            eprintln!("ipc-audit: --cases must be at least 1, got 0");
            return ExitCode::from(2);
        }
        auditor = auditor.cases(n);
    }
    if !args.properties.is_empty() {
        auditor = auditor.only(args.properties);
    }
    let mut references = Vec::new();
    for n in &args.references {
        match crate::transport::by_name(n) {
            Some(t) => references.push(t),
            None => {
                let known: Vec<String> = crate::transport::all()
                    .iter()
                    .map(|t| t.name().to_string())
                    .collect();
                eprintln!(
                    "ipc-audit: unknown reference transport {n:?}; built-in: {}",
                    known.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    let mut report = Report::default();
    if !args.latency_only {
        for t in &selected {
            let r = auditor.audit_with(*t, |p| eprintln!("auditing {} / {p}", t.name()));
            report.transports.push(r);
        }
    }
    if !(args.references.is_empty() || args.latency || args.latency_only) {
        eprintln!("ipc-audit: --reference is only measured with --latency or --latency-only");
        return ExitCode::from(2);
    }
    let latency = if args.latency || args.latency_only {
        let mut measured: Vec<(&dyn Transport, bool)> =
            selected.iter().map(|t| (*t, false)).collect();
        measured.extend(references.iter().map(|t| (t.as_ref(), true)));
        if args.round_trips == 0 {
            eprintln!("ipc-audit: --round-trips must be at least 1, got 0");
            return ExitCode::from(2);
        }
        Some(measure_latency(
            auditor.launcher(),
            &measured,
            args.round_trips,
        ))
    } else {
        None
    };
    let text = match (format, &latency) {
        (Format::Json, None) => format!("{}\n", report.to_json()),
        (Format::Json, Some(l)) => {
            let v = serde_json::json!({ "transports": report.transports, "latency": l });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&v)
                    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
            )
        }
        (Format::Table, l) => {
            let mut t = if args.latency_only {
                String::new()
            } else {
                report.to_table()
            };
            if let Some(l) = l {
                if !t.is_empty() {
                    t.push('\n');
                }
                t.push_str(&l.to_table());
            }
            t
        }
    };
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("ipc-audit: write the report: {e}");
        return ExitCode::from(2);
    }
    if report.failed() || latency.as_ref().is_some_and(LatencyReport::failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Round-trip latency of the audited (and reference) transports beside the floors
/// measured in the same run: what `--latency` adds to the report.
#[derive(Debug, Clone, Serialize)]
struct LatencyReport {
    /// Message size of every round trip.
    size: usize,
    /// The floors of this run (as `ipc-audit table` measures them).
    floor: Floors,
    /// One row per transport.
    rows: Vec<LatencyRow>,
}

/// One transport's round trips.
#[derive(Debug, Clone, Serialize)]
struct LatencyRow {
    transport: String,
    /// Built in and measured for comparison, not audited.
    reference: bool,
    latency_ns: LatencyNs,
    /// Why a pinning could not be measured.
    errors: Vec<String>,
}

impl LatencyReport {
    /// True when a transport could not be measured (a floor that cannot be measured,
    /// e.g. on one cpu, is reported but is not a failure of the transport).
    fn failed(&self) -> bool {
        self.rows.iter().any(|r| !r.errors.is_empty())
    }

    fn to_table(&self) -> String {
        let cell = |p: Option<P50P99>, floor: Option<P50P99>| match p {
            None => "-".to_string(),
            Some(p) => {
                let ratio = floor
                    .filter(|f| f.p50 > 0)
                    .map(|f| format!(" ({:.2}x floor)", p.p50 as f64 / f.p50 as f64))
                    .unwrap_or_default();
                format!(
                    "{} / {}{ratio}",
                    duration_ns(p.p50 as f64),
                    duration_ns(p.p99 as f64)
                )
            }
        };
        let head = [
            "TRANSPORT".to_string(),
            format!("SAME CPU p50 / p99 ({} B)", self.size),
            "CPU0<->CPU1 p50 / p99".to_string(),
        ];
        let futex = self.floor.shm_futex;
        let mut rows: Vec<[String; 3]> = vec![head];
        for r in &self.rows {
            let name = if r.reference {
                format!("{} (built-in, reference)", r.transport)
            } else {
                r.transport.clone()
            };
            rows.push([
                name,
                cell(r.latency_ns.same_cpu, futex.same_cpu),
                cell(r.latency_ns.cross_cpu, futex.cross_cpu),
            ]);
        }
        let mut width = [0usize; 3];
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &rows {
            let line = format!(
                "{:<a$}  {:<b$}  {}",
                r[0],
                r[1],
                r[2],
                a = width[0],
                b = width[1]
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let fl =
            |p: Option<P50P99>| p.map_or("not measured".to_string(), |p| duration_ns(p.p50 as f64));
        out.push_str(&format!(
            "Floors in this run (p50 round trip): shm-futex same cpu {}, cross cpu {}; shm-spin cross cpu {}. Ratios are to the shm-futex floor, as in `ipc-audit table`.\n",
            fl(futex.same_cpu),
            fl(futex.cross_cpu),
            fl(self.floor.shm_spin.cross_cpu),
        ));
        for e in self
            .floor
            .errors
            .iter()
            .chain(self.rows.iter().flat_map(|r| &r.errors))
        {
            out.push_str(&format!("not measured: {e}\n"));
        }
        out
    }
}

/// Measures `transports` with [`crate::measure::latency`] (both pinnings) and the
/// floors, with the settings of the full `ipc-audit table`.
fn measure_latency(
    launcher: &PeerLauncher,
    transports: &[(&dyn Transport, bool)],
    round_trips: usize,
) -> LatencyReport {
    let mut plan = Plan::full();
    plan.latency.round_trips = round_trips;
    plan.latency.warmup = (round_trips / 20).clamp(1, plan.latency.warmup);
    plan.floor_round_trips = round_trips;
    let floor = floors(launcher, &plan, |what| eprintln!("measuring floor {what}"));
    let mut rows = Vec::new();
    for &(t, reference) in transports {
        let mut row = LatencyRow {
            transport: t.name().to_string(),
            reference,
            latency_ns: LatencyNs::default(),
            errors: Vec::new(),
        };
        let mut opts = plan.latency.clone();
        if t.guarantees().carries_data {
            opts.size = opts.size.min(t.guarantees().max_message);
        } else {
            opts.size = 0;
        }
        for pin in [Pin::Same, Pin::Cross] {
            eprintln!("measuring {} / {}-cpu round trips", t.name(), pin.name());
            match latency(launcher, t, pin, &opts) {
                Ok(l) => {
                    let p = Some(P50P99 {
                        p50: l.stats.p50_ns,
                        p99: l.stats.p99_ns,
                    });
                    match pin {
                        Pin::Same => row.latency_ns.same_cpu = p,
                        Pin::Cross => row.latency_ns.cross_cpu = p,
                    }
                }
                Err(e) => row
                    .errors
                    .push(format!("{} {}-cpu: {e}", t.name(), pin.name())),
            }
        }
        rows.push(row);
    }
    LatencyReport {
        size: plan.latency.size,
        floor,
        rows,
    }
}
