//! Experiment: instructions per message on the ring's fast path, counted by callgrind
//! (`valgrind --tool=callgrind target/release/examples/ring_instr ring|transport N`):
//! one process, each message pushed then popped at once, so no spinning is counted.
use std::sync::Arc;

use ipc_audit::shm::region::Mapping;
use ipc_audit::shm::ring::{HEADER_SIZE, Ring, Wait};
use ipc_audit::shm::sem::LinuxFutex;
use ipc_audit::transport::shm::Shm;
use ipc_audit::transport::{Config, Transport};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or("ring".into());
    let n: usize = std::env::args()
        .nth(2)
        .map_or(100_000, |a| a.parse().unwrap());
    let msg = [0xa5u8; 64];
    let mut buf = Vec::with_capacity(64);
    if mode == "ring" {
        let cap = 1 << 20;
        let (map, _fd) = Mapping::create("ipc-audit-ring-instr", HEADER_SIZE + cap).unwrap();
        let (mut p, mut c) = Ring::create(Arc::new(map), cap, 64, 1, Arc::new(LinuxFutex))
            .unwrap()
            .split();
        let w = Wait::default();
        for _ in 0..n {
            p.push(&msg, &w).unwrap();
            c.pop(&mut buf, &w).unwrap();
        }
    } else {
        let shm = Shm::default();
        let mut link = shm.open(&Config::default()).unwrap();
        let mut tx = shm.attach(std::mem::take(&mut link.peer)).unwrap();
        link.local
            .set_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        tx.set_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        for _ in 0..n {
            tx.send(&msg).unwrap();
            link.local.recv(&mut buf).unwrap();
        }
    }
    assert_eq!(buf, msg);
}
