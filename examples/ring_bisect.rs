//! Experiment (not a benchmark; see benches/ and `scripts/ratios.sh`): the crate's shm
//! ring against a bare Rust copy of `scripts/experiments/ring-bisect.c`'s "lane8 data64
//! copy+tail+fence" protocol and against limits.c's spin floor, in alternating batches of
//! one run: floor, bare lane, crate ring, floor. Each batch forks a peer pinned to cpu 1
//! (this process on cpu 0) and bounces a 64-byte message; the ratio is the batch's p50
//! over the lower floor around it.
//!
//! `cargo run --release --example ring_bisect -- [N] [B]` (N round trips a batch, 3000;
//! B batches, 12)

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::Instant;

use ipc_audit::shm::region::Mapping;
use ipc_audit::shm::ring::{HEADER_SIZE, Ring, Wait};
use ipc_audit::shm::sem::LinuxFutex;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use nix::unistd::{ForkResult, Pid, fork};

/// Data bytes of a bare ring, and the capacity of the crate's.
const CAP: usize = 1 << 20;

#[repr(C, align(128))]
struct Line<T>(T);

/// The bare lane ring: the consumer's progress, a waiting flag (never raised: both sides
/// spin), 8 header slots on one line, and the payloads, one per 64 bytes.
#[repr(C)]
struct Lane {
    tail: Line<AtomicU64>,
    waiting: Line<AtomicU32>,
    lane: Line<[AtomicU64; 8]>,
    data: Line<[AtomicU64; CAP / 8]>,
}

/// A zeroed `T` in memory shared with the children forked later (never unmapped).
fn shared<T>() -> &'static T {
    let len = std::num::NonZeroUsize::new(std::mem::size_of::<T>()).unwrap();
    // SAFETY: a fresh anonymous mapping at an address the kernel picks; it aliases nothing.
    let p = unsafe {
        mmap_anonymous(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .expect("mmap");
    // SAFETY: page-aligned, zeroed, large enough, and only ever used through atomics (an
    // all-zero `T` of atomics is valid); it lives until the process exits.
    unsafe { p.cast::<T>().as_ref() }
}

fn pin(cpu: usize) {
    let mut s = CpuSet::new();
    s.set(cpu).unwrap();
    sched_setaffinity(Pid::from_raw(0), &s).unwrap();
}

/// Runs `parent` here (cpu 0) and `child` in a forked process (cpu 1); the p50 of the
/// times `parent` returns.
fn batch(parent: impl FnOnce() -> Vec<u64>, child: impl FnOnce()) -> u64 {
    // SAFETY: this process is single-threaded; the child only runs `child` and exits.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            pin(1);
            child();
            std::process::exit(0);
        }
        ForkResult::Parent { child } => {
            pin(0);
            let mut v = parent();
            nix::sys::wait::waitpid(child, None).unwrap();
            v.sort_unstable();
            v[v.len() / 2]
        }
    }
}

/// limits.c's spin floor: one word on one line, both directions.
fn floor(flag: &AtomicU64, n: u64) -> u64 {
    flag.store(0, Ordering::SeqCst);
    batch(
        || {
            let mut v = Vec::with_capacity(n as usize);
            for i in 0..n {
                let t = Instant::now();
                flag.store(2 * i + 1, Ordering::SeqCst);
                while flag.load(Ordering::SeqCst) != 2 * i + 2 {}
                v.push(t.elapsed().as_nanos() as u64);
            }
            v
        },
        || {
            for i in 0..n {
                while flag.load(Ordering::SeqCst) != 2 * i + 1 {}
                flag.store(2 * i + 2, Ordering::SeqCst);
            }
        },
    )
}

/// Message `i`'s 64 bytes (8 words) go to data words `8 * i ..`, its header to slot
/// `i % 8`; the payload is copied word by word (Relaxed atomics: no unsafe copy needed,
/// and on x86-64 the same plain moves).
fn lane_push(r: &Lane, i: u64, msg: &[u64; 8]) {
    let at = (i as usize * 8) % (CAP / 8);
    for (k, w) in msg.iter().enumerate() {
        r.data.0[at + k].store(*w, Ordering::Relaxed);
    }
    r.lane.0[i as usize % 8].store(i + 1, Ordering::Release);
    fence(Ordering::SeqCst);
    let _ = r.waiting.0.load(Ordering::Relaxed);
}

fn lane_pop(r: &Lane, i: u64, buf: &mut [u64; 8]) {
    let at = (i as usize * 8) % (CAP / 8);
    let mut spins = 1u32;
    while r.lane.0[i as usize % 8].load(Ordering::Acquire) != i + 1 {
        // Touch the payload's line too, as the crate's ring does.
        let _ = r.data.0[at].load(Ordering::Relaxed);
        if spins.is_multiple_of(64) {
            std::hint::spin_loop();
        }
        spins += 1;
    }
    for (k, w) in buf.iter_mut().enumerate() {
        *w = r.data.0[at + k].load(Ordering::Relaxed);
    }
    r.tail.0.store(i + 1, Ordering::Release);
    fence(Ordering::SeqCst);
    let _ = r.waiting.0.load(Ordering::Relaxed);
}

fn lane(a: &Lane, b: &Lane, n: u64) -> u64 {
    for r in [a, b] {
        for w in &r.lane.0 {
            w.store(0, Ordering::SeqCst);
        }
    }
    let warm = n / 10;
    batch(
        || {
            let mut v = Vec::with_capacity(n as usize);
            let (msg, mut buf) = ([0xa5a5u64; 8], [0u64; 8]);
            for i in 0..n + warm {
                let t = Instant::now();
                lane_push(a, i, &msg);
                lane_pop(b, i, &mut buf);
                if i >= warm {
                    v.push(t.elapsed().as_nanos() as u64);
                }
            }
            v
        },
        || {
            let mut buf = [0u64; 8];
            for i in 0..n + warm {
                lane_pop(a, i, &mut buf);
                lane_push(b, i, &buf);
            }
        },
    )
}

/// The crate's ring (`ipc_audit::shm::ring`), two fresh ones in memfds, spinning.
fn crate_ring(n: u64) -> u64 {
    let mk = || {
        let (map, _fd) = Mapping::create("ipc-audit-ring-bisect", HEADER_SIZE + CAP).unwrap();
        Ring::create(
            Arc::new(map),
            CAP,
            64,
            std::process::id(),
            Arc::new(LinuxFutex),
        )
        .unwrap()
        .split()
    };
    let ((p1, c1), (p2, c2)) = (mk(), mk());
    let w = Wait {
        spin: u32::MAX,
        ..Wait::default()
    };
    let warm = n / 10;
    batch(
        || {
            let (mut tx, mut rx) = (p1, c2);
            let msg = [0xa5u8; 64];
            let mut buf = Vec::with_capacity(64);
            let mut v = Vec::with_capacity(n as usize);
            for i in 0..n + warm {
                let t = Instant::now();
                tx.push(&msg, &w).unwrap();
                rx.pop(&mut buf, &w).unwrap();
                if i >= warm {
                    v.push(t.elapsed().as_nanos() as u64);
                }
            }
            v
        },
        || {
            let (mut rx, mut tx) = (c1, p2);
            let mut buf = Vec::with_capacity(64);
            for _ in 0..n + warm {
                rx.pop(&mut buf, &w).unwrap();
                tx.push(&buf, &w).unwrap();
            }
        },
    )
}

fn main() {
    let arg = |i: usize, d: u64| {
        std::env::args()
            .nth(i)
            .map_or(d, |a| a.parse().expect("N and B are positive integers"))
    };
    let (n, b) = (arg(1, 3000).max(10), arg(2, 12).max(1) as usize);
    let flag = &shared::<Line<AtomicU64>>().0;
    let (la, lb) = (shared::<Lane>(), shared::<Lane>());
    let names = ["bare lane", "crate ring"];
    let mut ratios = vec![Vec::new(); names.len()];
    for _ in 0..b {
        let f1 = floor(flag, n);
        let x = [lane(la, lb, n), crate_ring(n)];
        let f2 = floor(flag, n);
        println!(
            "floor {f1:4}/{f2:4} ns: bare lane {:4}, crate ring {:4}",
            x[0], x[1]
        );
        for (r, x) in ratios.iter_mut().zip(x) {
            r.push(x as f64 / f1.min(f2) as f64);
        }
    }
    println!("median ratio to the lower floor around each batch, of {b} batches:");
    for (name, r) in names.iter().zip(&mut ratios) {
        r.sort_by(f64::total_cmp);
        let under = r.iter().filter(|&&x| x <= 1.5).count();
        println!("  {name:10} {:.2}x ({under} of {b} <= 1.5x)", r[b / 2]);
    }
}
