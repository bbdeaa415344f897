//! Reproduces, without the audit, an ipmpsc 0.5.1 finding: a sender killed while it holds
//! the ring's process-shared mutex leaves the receiver blocked forever, even in
//! `recv_timeout` (the mutex is not robust: `PTHREAD_MUTEX_ROBUST` is never set, so
//! nobody gets `EOWNERDEAD`).
//!
//! `cargo run --release --example repro_ipmpsc_dead_sender`: a child process sends 4 MiB
//! messages in a loop while this process receives them with `recv_timeout(200 ms)`; the
//! child is SIGKILLed at a random point, up to 20 times. A watchdog thread reports a
//! `recv_timeout` that has not returned after 5 s. Exit status 1 and "REPRODUCED" when
//! the receiver hung; 0 when it never did.

use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipmpsc::{Receiver, Sender, SharedRingBuffer};

const MSG: usize = 4 << 20;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn sender(path: &str) -> ExitCode {
    let tx = Sender::new(SharedRingBuffer::open(path).expect("open the ring"));
    let msg = vec![7u8; MSG];
    loop {
        tx.send(&msg).expect("send");
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "send" {
        return sender(&args[2]);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ring");
    let path = path.to_str().expect("a UTF-8 path").to_string();
    let rx = Receiver::new(SharedRingBuffer::create(&path, 3 * (MSG as u32 + 8)).expect("create"));
    // 0: no receive under way; otherwise the time the current `recv_timeout` began, in ms.
    let began = Arc::new(AtomicU64::new(0));
    let k = Arc::clone(&began);
    let keep = dir.path().to_path_buf();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let at = k.load(Ordering::SeqCst);
            if at != 0 && now_ms().saturating_sub(at) > 5000 {
                println!(
                    "REPRODUCED: a recv_timeout(200 ms) has not returned after 5 s; the SIGKILLed \
                 sender holds the ring's mutex"
                );
                let _ = std::fs::remove_dir_all(&keep);
                std::process::exit(1);
            }
        }
    });
    let exe = std::env::current_exe().expect("own path");
    for attempt in 1..=20u64 {
        let mut child = Command::new(&exe)
            .arg("send")
            .arg(&path)
            .spawn()
            .expect("spawn");
        let delay = Duration::from_millis(30 + (now_ms() * 7919 + attempt * 131) % 170);
        let start = Instant::now();
        let mut got = 0usize;
        let recv = || {
            began.store(now_ms(), Ordering::SeqCst);
            let r = rx.recv_timeout::<Vec<u8>>(Duration::from_millis(200));
            began.store(0, Ordering::SeqCst);
            r
        };
        // A thread kills the sender at a random point while this one receives.
        let pid = child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        });
        while start.elapsed() < delay + Duration::from_millis(300) {
            if let Ok(Some(m)) = recv() {
                got += usize::from(m.len() == MSG);
            }
        }
        let _ = killer.join();
        child.wait().expect("reap the sender");
        // Drain until the ring is empty: each call must return within its 200 ms.
        while let Ok(Some(_)) = recv() {}
        println!("kill {attempt}: {got} messages before it, the receiver is free");
    }
    println!("not reproduced in 20 kills");
    ExitCode::SUCCESS
}
