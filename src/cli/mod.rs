//! The command line: [`audit_main`] for a user's own program, and the `ipc-audit`
//! commands ([`main`]: list, audit, bench, table, report). Cargo feature `cli` (on by default):
//! clap, indicatif and plotters.

#[macro_use]
mod out;
mod audit;
mod bench;
mod list;
mod report;
#[cfg(target_os = "linux")]
mod signals;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use audit::{FORMAT_ENV, audit_cli, audit_main};

use crate::peer::PeerLauncher;
use crate::transport::{self, Transport};

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
    ///
    /// `ipc-audit audit [NAME]... [--cases N] [--strict] [--property WORD]... [--format table|json]
    /// [--latency [--reference NAME]... [--round-trips N]] [--latency-only]`; see
    /// `ipc-audit audit --help`. The same command line as `ipc_audit::cli::audit_main`.
    #[command(disable_help_flag = true)]
    Audit {
        /// The arguments of the audit (`--help` lists them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Measures one transport: round trips (p50, p99, max) and one-way throughput.
    Bench {
        /// The transport.
        transport: String,
        /// Message size in bytes, for round trips and the stream.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Round trips measured (after a tenth as many for warm-up), and messages streamed.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Both processes on one cpu, or cpu0 <-> cpu1.
        #[arg(long, value_enum, default_value_t = PinArg::Same)]
        pin: PinArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Prints the seed's comparison table, measured: audit, latency, throughput, floors.
    Table {
        /// Transports to measure (all when none is named).
        transports: Vec<String>,
        /// A few cases and short runs: under a minute for every transport.
        #[arg(long)]
        quick: bool,
        /// Output format: `text` fits 160 columns; `md` is the seed's table with every
        /// cell in full.
        #[arg(long, value_enum, default_value_t = TableFormat::Text)]
        format: TableFormat,
        /// With `--format text`: each row's long cells and audit verdicts below it.
        #[arg(long)]
        detail: bool,
        /// Also draw latency and throughput per method into this SVG file.
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
    },
    /// Writes the table as one self-contained HTML page, every cell linked to its
    /// evidence, with the charts and the audit matrix: DIR/index.html and DIR/table.json.
    Report {
        /// Transports to measure (all when none is named).
        transports: Vec<String>,
        /// A few cases and short runs, as `table --quick`.
        #[arg(long)]
        quick: bool,
        /// The folder to write into (made if missing; checked before any measuring).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Render this table (the JSON of `table --format json` or of an earlier
        /// report) instead of measuring.
        #[arg(long, conflicts_with_all = ["transports", "quick"])]
        from: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PinArg {
    Same,
    Cross,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TableFormat {
    Text,
    Md,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// The `ipc-audit` program: parses the command line and runs the command. The binary's
/// `main` calls [`crate::run_if_peer`] first, then this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(target_os = "linux")]
    if matches!(cli.command, Command::Audit { .. } | Command::Table { .. }) {
        signals::install();
        signals::reclaim_dead();
    }
    match cli.command {
        Command::List { format } => {
            list::list(format);
            ExitCode::SUCCESS
        }
        Command::Audit { args } => run_audit(args),
        Command::Bench {
            transport,
            size,
            count,
            pin,
            format,
        } => bench::bench(&transport, size, count, pin, format),
        Command::Table {
            transports,
            quick,
            format,
            detail,
            svg,
        } => table::run_table(transports, quick, (format, detail), svg),
        Command::Report {
            transports,
            quick,
            out,
            from,
        } => report::run_report(transports, quick, out, from),
    }
}

/// This program, to be started again as a peer.
fn launcher() -> Result<PeerLauncher, ExitCode> {
    PeerLauncher::current_exe().map_err(|e| {
        eprintln!("ipc-audit: {e}");
        ExitCode::from(2)
    })
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

fn run_audit(args: Vec<std::ffi::OsString>) -> ExitCode {
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    let all = transport::all();
    let refs: Vec<&dyn Transport> = all.iter().map(|t| t.as_ref()).collect();
    let argv = std::iter::once(std::ffi::OsString::from("ipc-audit audit")).chain(args);
    audit_cli(&refs, launcher, argv, &mut std::io::stdout().lock())
}
