//! The audit as one call from a user's own program: [`audit_main`].

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use super::{Auditor, PeerLauncher, Report, run_if_peer};
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
    /// Transports to audit, by name (all given to `audit_main` when none is named).
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
/// Command line: `[NAME]... [--cases N] [--property WORD]... [--format table|json]`;
/// `IPC_AUDIT_CASES` and `IPC_AUDIT_FORMAT` are the defaults of `--cases` and `--format`.
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
///     ipc_audit::audit::audit_main(&[&Pipe])
/// }
/// ```
pub fn audit_main(transports: &[&dyn Transport]) -> ExitCode {
    run_if_peer(|name| {
        transports
            .iter()
            .find(|t| t.name() == name)
            .map(|t| Box::new(*t) as Box<dyn Transport + '_>)
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
/// `transports` by name.
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
    let mut report = Report::default();
    for t in selected {
        let r = auditor.audit_with(t, |p| eprintln!("auditing {} / {p}", t.name()));
        report.transports.push(r);
    }
    let text = match format {
        Format::Json => format!("{}\n", report.to_json()),
        Format::Table => report.to_table(),
    };
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("ipc-audit: write the report: {e}");
        return ExitCode::from(2);
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
