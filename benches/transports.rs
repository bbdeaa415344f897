//! Criterion benches over `ipc_audit::measure`: round-trip latency (same cpu and
//! cpu0 <-> cpu1) and one-way throughput per transport and message size, beside the
//! floors. Small samples: `cargo bench --bench transports` takes minutes. Narrow it
//! with criterion's filter, e.g. `cargo bench --bench transports -- pipe/`.
//!
//! The peer is this bench binary itself: `main` calls `run_if_peer` first.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ipc_audit::audit::PeerLauncher;
use ipc_audit::measure::{Pin, PingPong, Stream};
use ipc_audit::run_if_peer;
use ipc_audit::transport;

#[global_allocator]
static ALLOC: ipc_audit::measure::alloc::CountingAlloc = ipc_audit::measure::alloc::CountingAlloc;

const TIMEOUT: Duration = Duration::from_secs(5);

fn pins() -> Vec<Pin> {
    [Pin::Same, Pin::Cross]
        .into_iter()
        .filter(|p| p.cpus().is_ok())
        .collect()
}

fn latency(c: &mut Criterion, launcher: &PeerLauncher) {
    let mut g = c.benchmark_group("round-trip");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for t in transport::all() {
        for pin in pins() {
            let id = BenchmarkId::new(t.name(), format!("64B-{}-cpu", pin.name()));
            let mut session = match PingPong::start(launcher, t.as_ref(), pin, 64, TIMEOUT) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("skip {} {}-cpu: {e}", t.name(), pin.name());
                    continue;
                }
            };
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let t0 = Instant::now();
                    if let Err(e) = session.run(iters as usize, |_| {}) {
                        panic!("{}: {e}", t.name());
                    }
                    t0.elapsed()
                })
            });
            let _ = session.finish();
        }
    }
    g.finish();
}

fn throughput(c: &mut Criterion, launcher: &PeerLauncher) {
    let mut g = c.benchmark_group("stream");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for t in transport::all() {
        let max = t.guarantees().max_message;
        let mut session = match Stream::start(launcher, t.as_ref(), Pin::Cross, TIMEOUT) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skip stream {}: {e}", t.name());
                continue;
            }
        };
        for size in [64usize, 4096, 65536].into_iter().filter(|&s| s <= max) {
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(BenchmarkId::new(t.name(), format!("{size}B")), |b| {
                b.iter_custom(|iters| {
                    // The time of `iters` messages at the measured rate (first to last).
                    let n = (iters as usize).max(2);
                    match session.run(n, size, Duration::from_secs(30)) {
                        Ok(x) => Duration::from_secs_f64(iters as f64 / x.msgs_per_s),
                        Err(e) => panic!("{} {size}B: {e}", t.name()),
                    }
                })
            });
        }
        let _ = session.finish();
    }
    g.finish();
}

fn main() {
    run_if_peer(transport::by_name);
    let launcher = PeerLauncher::current_exe().expect("find the bench binary");
    let mut c = Criterion::default().configure_from_args();
    latency(&mut c, &launcher);
    throughput(&mut c, &launcher);
    c.final_summary();
}
