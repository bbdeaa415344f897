//! The audit as one call from a user's own program: [`audit_main`].

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use crate::audit::{Auditor, PeerLauncher, Report};
use crate::report::{LatencyReport, measure_latency};
use crate::run_if_peer;
use crate::transport::Transport;
use clap::{Parser, ValueEnum};

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
    /// Every check that could not run here is a failure (exit 1); also IPC_AUDIT_STRICT=1.
    #[arg(long)]
    strict: bool,
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
/// returns [`ExitCode::FAILURE`] if any verdict is `fail` (with `--strict` or
/// `IPC_AUDIT_STRICT=1`, also `not-run`), `2` on bad arguments or variables.
///
/// Command line: `[NAME]... [--cases N] [--strict] [--property WORD]... [--format table|json]
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
    match run_audit(transports, launcher, &args, out) {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("ipc-audit: {message}");
            ExitCode::from(2)
        }
    }
}

/// A command line that cannot be run: exit status 2, with this message.
struct Usage(String);

/// [`audit_cli`] after parsing: checks every argument before anything runs, audits,
/// measures, and writes the report.
fn run_audit(
    transports: &[&dyn Transport],
    launcher: PeerLauncher,
    args: &Args,
    out: &mut dyn Write,
) -> Result<ExitCode, Usage> {
    let format = format_of(args.format)?;
    let selected = select(transports, &args.transports)?;
    let references = references(&args.references)?;
    if args.cases == Some(0) {
        return Err(Usage("--cases must be at least 1, got 0".into()));
    }
    crate::audit::check_env().map_err(|e| Usage(e.to_string()))?;
    let strict =
        args.strict || crate::audit::strict_from_env().map_err(|e| Usage(e.to_string()))?;
    if !(args.references.is_empty() || args.latency || args.latency_only) {
        return Err(Usage(
            "--reference is only measured with --latency or --latency-only".into(),
        ));
    }
    if args.round_trips == 0 {
        return Err(Usage("--round-trips must be at least 1, got 0".into()));
    }
    let mut auditor = match args.cases {
        Some(n) => Auditor::new(launcher).cases(n),
        None => Auditor::from_env(launcher).map_err(|e| Usage(e.to_string()))?,
    };
    if !args.properties.is_empty() {
        auditor = auditor.only(args.properties.clone());
        if let Some(w) = auditor.unknown_words().first() {
            let known: Vec<&str> = crate::audit::properties().iter().map(|p| p.name).collect();
            return Err(Usage(format!(
                "unknown property {w:?} (no property name contains it); known: {}",
                known.join(", ")
            )));
        }
    }
    let mut report = Report::default();
    if !args.latency_only {
        for t in &selected {
            let r = auditor.audit_with(*t, |p| eprintln!("auditing {} / {p}", t.name()));
            report.transports.push(r);
        }
    }
    let latency = (args.latency || args.latency_only).then(|| {
        let mut measured: Vec<(&dyn Transport, bool)> =
            selected.iter().map(|t| (*t, false)).collect();
        measured.extend(references.iter().map(|t| (t.as_ref(), true)));
        measure_latency(auditor.launcher(), &measured, args.round_trips)
    });
    let text = render(format, &report, latency.as_ref(), args.latency_only);
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        return Err(Usage(format!("write the report: {e}")));
    }
    let not_run = report.not_run_lines();
    if !not_run.is_empty() {
        let mode = if strict {
            "failures in strict mode"
        } else {
            "not a pass; --strict fails them"
        };
        eprintln!("ipc-audit: {} checks not run ({mode}):", not_run.len());
        for line in &not_run {
            eprintln!("  {line}");
        }
    }
    Ok(
        if report.fails(strict) || latency.as_ref().is_some_and(LatencyReport::failed) {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        },
    )
}

/// `--format`, or [`FORMAT_ENV`], or the table.
fn format_of(given: Option<Format>) -> Result<Format, Usage> {
    if let Some(f) = given {
        return Ok(f);
    }
    match std::env::var(FORMAT_ENV).ok().as_deref() {
        None | Some("") | Some("table") => Ok(Format::Table),
        Some("json") => Ok(Format::Json),
        Some(other) => Err(Usage(format!(
            "{FORMAT_ENV} must be table or json, got {other:?}"
        ))),
    }
}

/// The transports named, in order, or all of them.
fn select<'a>(
    transports: &[&'a dyn Transport],
    names: &[String],
) -> Result<Vec<&'a dyn Transport>, Usage> {
    if names.is_empty() {
        return Ok(transports.to_vec());
    }
    names
        .iter()
        .map(|n| {
            transports
                .iter()
                .find(|t| t.name() == n)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<&str> = transports.iter().map(|t| t.name()).collect();
                    Usage(format!(
                        "unknown transport {n:?}; known: {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// The built-in transports named by `--reference`.
fn references(names: &[String]) -> Result<Vec<Box<dyn Transport>>, Usage> {
    names
        .iter()
        .map(|n| {
            crate::transport::by_name(n).ok_or_else(|| {
                Usage(format!(
                    "unknown reference transport {n:?}; built-in: {}",
                    crate::transport::names().join(", ")
                ))
            })
        })
        .collect()
}

/// The report in `format`; with `latency_only`, the table holds only the latency.
fn render(
    format: Format,
    report: &Report,
    latency: Option<&LatencyReport>,
    latency_only: bool,
) -> String {
    match (format, latency) {
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
            let mut t = if latency_only {
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
    }
}
