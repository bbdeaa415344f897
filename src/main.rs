//! The `ipc-audit` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ipc_audit::audit::{self, Auditor, PeerLauncher, Report};
use ipc_audit::transport::{self, Transport};

/// Tells the truth about inter-process communication on Linux.
#[derive(Parser, Debug)]
#[command(name = "ipc-audit", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Lists every transport with its declared guarantees.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Checks what transports really guarantee, with the peer in another process.
    Audit {
        /// Transports to audit (all when none is named).
        transports: Vec<String>,
        /// Cases per property (default: IPC_AUDIT_CASES, or 32).
        #[arg(long)]
        cases: Option<u32>,
        /// Only the properties whose names contain one of these words (repeatable).
        #[arg(long = "property")]
        properties: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    audit::run_if_peer(transport::by_name);
    let cli = Cli::parse();
    match cli.command {
        Command::List { format } => {
            list(format);
            ExitCode::SUCCESS
        }
        Command::Audit {
            transports,
            cases,
            properties,
            format,
        } => run_audit(transports, cases, properties, format),
    }
}

/// The transports named, or all of them; an unknown name is an error naming it.
fn select(names: &[String]) -> Result<Vec<Box<dyn Transport>>, String> {
    if names.is_empty() {
        return Ok(transport::all());
    }
    names
        .iter()
        .map(|n| {
            transport::by_name(n).ok_or_else(|| {
                format!(
                    "unknown transport {n:?}; known: {}",
                    transport::names().join(", ")
                )
            })
        })
        .collect()
}

fn list(format: Format) {
    let all = transport::all();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|t| serde_json::json!({"name": t.name(), "guarantees": t.guarantees()}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        }
        Format::Table => {
            println!(
                "{:<14} {:<8} {:<10} {:<8} {:>10} {:<6} {:<24} {:<9} PLATFORMS",
                "NAME", "DATA", "BOUNDARY", "ORDER", "MAX", "DUPLEX", "ACCESS", "MEET"
            );
            for t in &all {
                let g = t.guarantees();
                let enc = |v: &dyn SerdeName| v.text();
                println!(
                    "{:<14} {:<8} {:<10} {:<8} {:>10} {:<6} {:<24} {:<9} {}",
                    t.name(),
                    if g.carries_data { "yes" } else { "no" },
                    enc(&g.boundaries),
                    enc(&g.ordering),
                    g.max_message,
                    if g.duplex { "yes" } else { "no" },
                    enc(&g.access),
                    enc(&g.rendezvous),
                    g.platforms.join(", ")
                );
            }
        }
    }
}

/// The serde name of an enum value, for the table.
trait SerdeName {
    fn text(&self) -> String;
}

impl<T: serde::Serialize> SerdeName for T {
    fn text(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

fn run_audit(
    names: Vec<String>,
    cases: Option<u32>,
    properties: Vec<String>,
    format: Format,
) -> ExitCode {
    let selected = match select(&names) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    let launcher = match PeerLauncher::current_exe() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    let mut auditor = Auditor::new(launcher);
    if let Some(n) = cases {
        if n == 0 {
            eprintln!("ipc-audit: --cases must be at least 1, got 0");
            return ExitCode::from(2);
        }
        auditor = auditor.cases(n);
    }
    if !properties.is_empty() {
        auditor = auditor.only(properties);
    }
    let mut report = Report::default();
    for t in &selected {
        let r = auditor.audit_with(t.as_ref(), |p| eprintln!("auditing {} / {p}", t.name()));
        report.transports.push(r);
    }
    match format {
        Format::Json => println!("{}", report.to_json()),
        Format::Table => print!("{}", report.to_table()),
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
