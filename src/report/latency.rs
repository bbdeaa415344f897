//! Round-trip latency of audited transports beside the floors of the same run: what
//! `audit --latency` adds to an audit report.

use serde::Serialize;

use super::{Floors, LatencyNs, P50P99, Plan, duration_ns, floors};
use crate::measure::{Pin, latency};
use crate::peer::PeerLauncher;
use crate::transport::Transport;

/// Round-trip latency of the audited (and reference) transports beside the floors
/// measured in the same run: what `--latency` adds to the report.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    /// Message size of every round trip.
    pub size: usize,
    /// The floors of this run (as `ipc-audit table` measures them).
    pub floor: Floors,
    /// One row per transport.
    pub rows: Vec<LatencyRow>,
}

/// One transport's round trips.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    /// Its name.
    pub transport: String,
    /// Built in and measured for comparison, not audited.
    pub reference: bool,
    /// p50 and p99 per pinning.
    pub latency_ns: LatencyNs,
    /// Why a pinning could not be measured.
    pub errors: Vec<String>,
}

impl LatencyReport {
    /// True when a transport could not be measured (a floor that cannot be measured,
    /// e.g. on one cpu, is reported but is not a failure of the transport).
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| !r.errors.is_empty())
    }

    /// The report as aligned text, with the floors and what could not be measured.
    pub fn to_table(&self) -> String {
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
pub fn measure_latency(
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
