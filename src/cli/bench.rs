//! `ipc-audit bench`: one transport's round trips and stream, beside the floors of the
//! same pinning measured in the same run.

use std::process::ExitCode;

use super::{Format, PinArg, launcher, select};
use crate::measure::{self, FloorKind, LatencyOptions, Pin};
use crate::report::duration_ns;

pub(super) fn bench(
    name: &str,
    size: usize,
    count: usize,
    pin: PinArg,
    format: Format,
) -> ExitCode {
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
                            duration_ns(x.cpu_ns_per_msg),
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
