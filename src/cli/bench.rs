//! `ipc-audit bench`: one transport's round trips and stream, beside the floors of the
//! same pinning measured in the same run.

use std::process::ExitCode;
use std::time::Duration;

use super::{Format, PinArg, launcher, select};
use crate::error::Result;
use crate::measure::{self, Floor, FloorKind, Latency, LatencyOptions, Pin, Throughput};
use crate::peer::PeerLauncher;
use crate::report::duration_ns;
use crate::transport::Transport;

/// What one bench run measured.
struct Bench {
    name: String,
    lat: Result<Latency>,
    floors: Vec<Result<Floor>>,
    /// `None` for a transport that carries no data.
    thr: Option<Result<Vec<Throughput>>>,
}

impl Bench {
    fn failed(&self) -> bool {
        self.lat.is_err() || matches!(self.thr, Some(Err(_)))
    }
}

/// Runs `ipc-audit bench`: checks the arguments, measures, prints.
pub(super) fn bench(
    name: &str,
    size: usize,
    count: usize,
    pin: PinArg,
    format: Format,
) -> ExitCode {
    let t = match checked(name, size, count) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ipc-audit: {e}");
            return ExitCode::from(2);
        }
    };
    let launcher = match launcher() {
        Ok(l) => l,
        Err(c) => return c,
    };
    let pin = match pin {
        PinArg::Same => Pin::Same,
        PinArg::Cross => Pin::Cross,
    };
    let b = run(&launcher, t.as_ref(), pin, size, count);
    match format {
        Format::Json => print_json(&b),
        Format::Table => print_text(&b),
    }
    if b.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The transport named, when `size` and `count` suit it.
fn checked(
    name: &str,
    size: usize,
    count: usize,
) -> std::result::Result<Box<dyn Transport>, String> {
    let t = select(&[name.to_string()])?.remove(0);
    if count == 0 {
        return Err("--count must be at least 1, got 0".into());
    }
    let max = t.guarantees().max_message;
    if t.guarantees().carries_data && size > max {
        return Err(format!(
            "--size {size} is over {name}'s maximum message of {max} bytes"
        ));
    }
    Ok(t)
}

/// Measures `t`'s round trips between the floors of the same pinning (before and
/// after, so that ratios can be read off one run: medians drift between runs on a
/// shared machine; the lower p50 of the two is kept), then its stream.
fn run(launcher: &PeerLauncher, t: &dyn Transport, pin: Pin, size: usize, count: usize) -> Bench {
    let opts = LatencyOptions {
        size,
        warmup: (count / 10).max(1),
        round_trips: count,
        budget: Duration::from_secs(3600),
        ..LatencyOptions::default()
    };
    let mut floor_kinds = match pin {
        Pin::Same => vec![FloorKind::ShmFutex],
        Pin::Cross => vec![FloorKind::ShmSpin, FloorKind::ShmFutex],
    };
    // The method's own floor too.
    if let Some((same, cross)) = FloorKind::of_method(t.name()) {
        let own = if pin == Pin::Same { same } else { cross };
        if !floor_kinds.contains(&own) {
            floor_kinds.push(own);
        }
    }
    let measure_floors = || {
        floor_kinds
            .iter()
            .map(|&k| {
                let n = count.min(20_000);
                measure::floor(launcher, k, pin, (n / 10).max(1), n, opts.timeout)
            })
            .collect::<Vec<_>>()
    };
    let floors_before = measure_floors();
    let lat = measure::latency(launcher, t, pin, &opts);
    let floors_after = measure_floors();
    let floors = floors_before
        .into_iter()
        .zip(floors_after)
        .map(|(a, b)| match (a, b) {
            (Ok(a), Ok(b)) if b.stats.p50_ns < a.stats.p50_ns => Ok(b),
            (Ok(a), _) => Ok(a),
            (Err(_), b) => b,
        })
        .collect();
    let thr = t.guarantees().carries_data.then(|| {
        let limit = Duration::from_secs(10);
        measure::throughput(launcher, t, pin, &[(size, count)], limit, opts.timeout)
    });
    Bench {
        name: t.name().to_string(),
        lat,
        floors,
        thr,
    }
}

fn print_json(b: &Bench) {
    let v = serde_json::json!({
        "transport": b.name,
        "latency": b.lat.as_ref().map_err(|e| e.to_string()),
        "floors": b.floors.iter().map(|f| f.as_ref().map_err(|e| e.to_string())).collect::<Vec<_>>(),
        "throughput": b.thr.as_ref().map(|r| r.as_ref().map_err(|e| e.to_string())),
    });
    outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
}

fn print_text(b: &Bench) {
    let name = &b.name;
    match &b.lat {
        Ok(l) => print_latency(name, l),
        Err(e) => outln!("{name}: round trips failed: {e}"),
    }
    for f in &b.floors {
        match (f, &b.lat) {
            (Ok(f), Ok(l)) => outln!(
                "  floor {} {}-cpu: p50 {}  p99 {}; {name} p50 / floor p50 = {:.2}x",
                f.kind.name(),
                f.pin.name(),
                duration_ns(f.stats.p50_ns as f64),
                duration_ns(f.stats.p99_ns as f64),
                l.stats.p50_ns as f64 / f.stats.p50_ns.max(1) as f64,
            ),
            (Ok(f), Err(_)) => outln!(
                "  floor {} {}-cpu: p50 {}",
                f.kind.name(),
                f.pin.name(),
                duration_ns(f.stats.p50_ns as f64)
            ),
            (Err(e), _) => outln!("  floor failed: {e}"),
        }
    }
    match &b.thr {
        Some(Ok(v)) => {
            for x in v {
                outln!(
                    "  stream of {} x {} bytes ({} received): {:.1} MB/s, {:.0} msg/s, CPU {} per message",
                    x.sent,
                    x.size,
                    x.received,
                    x.bytes_per_s / 1e6,
                    x.msgs_per_s,
                    duration_ns(x.cpu_ns_per_msg),
                );
            }
        }
        Some(Err(e)) => outln!("  stream failed: {e}"),
        None => outln!("  no stream: {name} carries no data"),
    }
}

fn print_latency(name: &str, l: &Latency) {
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
        duration_ns(l.stats.p50_ns as f64),
        duration_ns(l.stats.p99_ns as f64),
        duration_ns(l.stats.max_ns as f64),
        duration_ns(l.stats.mean_ns),
    );
    outln!(
        "  CPU {} per round trip, {:.2} context switches per round trip, allocations per message: {allocs}",
        duration_ns(l.cpu_ns_per_round_trip),
        l.switches_per_round_trip,
    );
}
