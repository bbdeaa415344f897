//! Quick check of the `shm` transport between two processes: round trips of a 64-byte
//! message (two one-way rings), with the peer forked and pinned to cpu 1, this process
//! on cpu 0. Checks every reply, prints p50/p99. Not a benchmark (see benches/).
//!
//! `cargo run --release --example shm_rtt -- [N] [spin|block]`

use std::time::Instant;

use ipc_audit::transport::shm::Shm;
use ipc_audit::transport::{Config, Transport};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::{ForkResult, Pid, fork};

fn pin(cpu: usize) {
    let mut s = CpuSet::new();
    s.set(cpu).unwrap();
    sched_setaffinity(Pid::from_raw(0), &s).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20000);
    let shm = match args.get(2).map(String::as_str) {
        Some("block") => Shm::blocking(),
        _ => Shm::spinning(),
    };
    let cfg = Config::default();
    let to_child = shm.open(&cfg).unwrap();
    let to_parent = shm.open(&cfg).unwrap();
    // SAFETY: this process is single-threaded here; the child only uses what it owns.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            pin(1);
            let mut rx = to_child.local;
            let mut tx = shm.attach(to_parent.peer).unwrap();
            std::mem::forget(to_parent.local);
            let mut buf = Vec::new();
            for _ in 0..n {
                rx.recv(&mut buf).unwrap();
                tx.send(&buf).unwrap();
            }
            std::process::exit(0);
        }
        ForkResult::Parent { child } => {
            pin(0);
            let mut tx = shm.attach(to_child.peer).unwrap();
            std::mem::forget(to_child.local);
            let mut rx = to_parent.local;
            let mut buf = Vec::new();
            let mut msg = [0u8; 64];
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let t = Instant::now();
                tx.send(&msg).unwrap();
                rx.recv(&mut buf).unwrap();
                v.push(t.elapsed().as_nanos() as u64);
                assert_eq!(buf, msg, "reply {i}");
            }
            nix::sys::wait::waitpid(child, None).unwrap();
            v.sort_unstable();
            println!(
                "shm ({}) 64 B cpu0<->cpu1: p50 {} ns  p99 {} ns  ({n} round trips, all replies checked)",
                args.get(2).map_or("spin", String::as_str),
                v[n / 2],
                v[n * 99 / 100]
            );
        }
    }
}
