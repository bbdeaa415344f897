//! The `ipc-audit` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ipc_audit::audit::PeerLauncher;
use ipc_audit::measure::{self, FloorKind, LatencyOptions, Pin};
use ipc_audit::report as table;
use ipc_audit::transport::{self, Transport};

/// `print!` to standard output that does not panic when the reader is gone: a closed
/// pipe (`ipc-audit ... | head`) ends the program quietly, as SIGPIPE would; any other
/// write error ends it with status 2 and the error on standard error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            stdout_failed(e);
        }
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            stdout_failed(e);
        }
    }};
}

/// Ends the program after a failed write to standard output.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // What a shell reports for a process killed by SIGPIPE.
        std::process::exit(141);
    }
    eprintln!("ipc-audit: write to standard output: {e}");
    std::process::exit(2);
}

/// Counts heap allocations, for the allocations-per-message figures (the peer is this
/// same binary, so both sides count).
#[global_allocator]
static ALLOC: measure::alloc::CountingAlloc = measure::alloc::CountingAlloc;

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
    /// `ipc-audit audit [NAME]... [--cases N] [--property WORD]... [--format table|json]
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
        /// Output format.
        #[arg(long, value_enum, default_value_t = TableFormat::Md)]
        format: TableFormat,
        /// Also draw latency and throughput per method into this SVG file.
        #[arg(long)]
        svg: Option<std::path::PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PinArg {
    Same,
    Cross,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TableFormat {
    Md,
    Json,
    Csv,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    ipc_audit::run_if_peer(transport::by_name);
    let cli = Cli::parse();
    match cli.command {
        Command::List { format } => {
            list(format);
            ExitCode::SUCCESS
        }
        Command::Audit { args } => run_audit(args),
        Command::Bench {
            transport,
            size,
            count,
            pin,
            format,
        } => bench(&transport, size, count, pin, format),
        Command::Table {
            transports,
            quick,
            format,
            svg,
        } => run_table(transports, quick, format, svg),
    }
}

fn launcher() -> Result<PeerLauncher, ExitCode> {
    PeerLauncher::current_exe().map_err(|e| {
        eprintln!("ipc-audit: {e}");
        ExitCode::from(2)
    })
}

fn bench(name: &str, size: usize, count: usize, pin: PinArg, format: Format) -> ExitCode {
    let t = match select(&[name.to_string()]) {
        Ok(mut v) => v.remove(0),
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    if count == 0 {
        eprintln!("ipc-audit: --count must be at least 1, got 0");
        return ExitCode::from(2);
    }
    let max = t.guarantees().max_message;
    if t.guarantees().carries_data && size > max {
        eprintln!("ipc-audit: --size {size} is over {name}'s maximum message of {max} bytes");
        return ExitCode::from(2);
    }
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    let pin = match pin {
        PinArg::Same => Pin::Same,
        PinArg::Cross => Pin::Cross,
    };
    let opts = LatencyOptions {
        size,
        warmup: (count / 10).max(1),
        round_trips: count,
        budget: std::time::Duration::from_secs(3600),
        ..LatencyOptions::default()
    };
    // The floors of the same pinning, in the same run, so that ratios can be read off
    // one run (medians drift between runs on a shared machine). Measured before and
    // after the transport; the lower p50 of the two is the one shown.
    let floor_kinds: &[FloorKind] = match pin {
        Pin::Same => &[FloorKind::ShmFutex],
        Pin::Cross => &[FloorKind::ShmSpin, FloorKind::ShmFutex],
    };
    let measure_floors = || {
        floor_kinds
            .iter()
            .map(|&k| {
                let n = count.min(20_000);
                measure::floor(&launcher, k, pin, (n / 10).max(1), n, opts.timeout)
            })
            .collect::<Vec<_>>()
    };
    let floors_before = measure_floors();
    let lat = measure::latency(&launcher, t.as_ref(), pin, &opts);
    let floors_after = measure_floors();
    let floors: Vec<_> = floors_before
        .into_iter()
        .zip(floors_after)
        .map(|(a, b)| match (a, b) {
            (Ok(a), Ok(b)) if b.stats.p50_ns < a.stats.p50_ns => Ok(b),
            (Ok(a), _) => Ok(a),
            (Err(_), b) => b,
        })
        .collect();
    let thr = if t.guarantees().carries_data {
        Some(measure::throughput(
            &launcher,
            t.as_ref(),
            pin,
            &[(size, count)],
            std::time::Duration::from_secs(10),
            opts.timeout,
        ))
    } else {
        None
    };
    let mut failed = false;
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "transport": name,
                "latency": lat.as_ref().map_err(|e| e.to_string()),
                "floors": floors.iter().map(|f| f.as_ref().map_err(|e| e.to_string())).collect::<Vec<_>>(),
                "throughput": thr.as_ref().map(|r| r.as_ref().map_err(|e| e.to_string())),
            });
            failed = lat.is_err() || matches!(thr, Some(Err(_)));
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Format::Table => {
            match &lat {
                Ok(l) => {
                    let allocs = match (l.allocs_per_msg, l.peer_allocs_per_msg) {
                        (Some(a), Some(b)) => format!("{a:.2} here, {b:.2} in the peer"),
                        _ => "not counted".into(),
                    };
                    outln!(
                        "{name}: {} round trips of {} bytes, {}-cpu ({:?}): p50 {}  p99 {}  max {}  mean {}",
                        l.stats.round_trips,
                        l.size,
                        l.pin.name(),
                        l.way_back,
                        table::duration_ns(l.stats.p50_ns as f64),
                        table::duration_ns(l.stats.p99_ns as f64),
                        table::duration_ns(l.stats.max_ns as f64),
                        table::duration_ns(l.stats.mean_ns),
                    );
                    outln!(
                        "  CPU {} per round trip, {:.2} context switches per round trip, allocations per message: {allocs}",
                        table::duration_ns(l.cpu_ns_per_round_trip),
                        l.switches_per_round_trip,
                    );
                }
                Err(e) => {
                    failed = true;
                    outln!("{name}: round trips failed: {e}");
                }
            }
            for f in &floors {
                match (f, &lat) {
                    (Ok(f), Ok(l)) => outln!(
                        "  floor {} {}-cpu: p50 {}  p99 {}; {name} p50 / floor p50 = {:.2}x",
                        f.kind.name(),
                        f.pin.name(),
                        table::duration_ns(f.stats.p50_ns as f64),
                        table::duration_ns(f.stats.p99_ns as f64),
                        l.stats.p50_ns as f64 / f.stats.p50_ns.max(1) as f64,
                    ),
                    (Ok(f), Err(_)) => outln!(
                        "  floor {} {}-cpu: p50 {}",
                        f.kind.name(),
                        f.pin.name(),
                        table::duration_ns(f.stats.p50_ns as f64)
                    ),
                    (Err(e), _) => outln!("  floor failed: {e}"),
                }
            }
            match &thr {
                Some(Ok(v)) => {
                    for x in v {
                        outln!(
                            "  stream of {} x {} bytes ({} received): {:.1} MB/s, {:.0} msg/s, CPU {} per message",
                            x.sent,
                            x.size,
                            x.received,
                            x.bytes_per_s / 1e6,
                            x.msgs_per_s,
                            table::duration_ns(x.cpu_ns_per_msg),
                        );
                    }
                }
                Some(Err(e)) => {
                    failed = true;
                    outln!("  stream failed: {e}");
                }
                None => outln!("  no stream: {name} carries no data"),
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run_table(
    names: Vec<String>,
    quick: bool,
    format: TableFormat,
    svg: Option<std::path::PathBuf>,
) -> ExitCode {
    let selected = match select(&names) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    let plan = if quick {
        table::Plan::quick()
    } else {
        table::Plan::full()
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "measuring {len} steps  [{bar:30}] {pos}/{len}  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let t = table::run(&launcher, &selected, &plan, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{}  {}", p.subject, p.what));
    });
    bar.finish_and_clear();
    match format {
        TableFormat::Md => out!("{}", t.to_markdown()),
        TableFormat::Json => outln!("{}", t.to_json()),
        TableFormat::Csv => out!("{}", t.to_csv()),
    }
    eprintln!(
        "ipc-audit: table of {} methods measured in {:.1} s",
        t.rows.len(),
        t.seconds
    );
    if let Some(path) = svg {
        match t.to_svg() {
            Ok(s) => {
                if let Err(e) = std::fs::write(&path, s) {
                    eprintln!("ipc-audit: write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("ipc-audit: draw {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
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
            outln!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            );
        }
        Format::Table => {
            outln!(
                "{:<14} {:<8} {:<10} {:<8} {:>10} {:<6} {:<24} {:<9} PLATFORMS",
                "NAME",
                "DATA",
                "BOUNDARY",
                "ORDER",
                "MAX",
                "DUPLEX",
                "ACCESS",
                "MEET"
            );
            for t in &all {
                let g = t.guarantees();
                let enc = |v: &dyn SerdeName| v.text();
                outln!(
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

fn run_audit(args: Vec<std::ffi::OsString>) -> ExitCode {
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    let all = transport::all();
    let refs: Vec<&dyn Transport> = all.iter().map(|t| t.as_ref()).collect();
    let argv = std::iter::once(std::ffi::OsString::from("ipc-audit audit")).chain(args);
    ipc_audit::cli::audit_cli(&refs, launcher, argv, &mut std::io::stdout().lock())
}
