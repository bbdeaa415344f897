//! Reproduces, without the audit, an ipmpsc 0.5.1 finding: a sender killed while it holds
//! the ring's process-shared mutex leaves the receiver blocked forever, even in
//! `recv_timeout` (the mutex is not robust: `PTHREAD_MUTEX_ROBUST` is never set, so
//! nobody gets `EOWNERDEAD`).
//!
//! `cargo run --release --example repro_ipmpsc_dead_sender`: a child process sends 4 MiB
//! messages in a loop while this process receives them with `recv_timeout(200 ms)`; the
//! child is SIGKILLed at a random point, up to 20 times. A watchdog thread reports when a
//! `recv_timeout` has not returned 5 s after the kill. Exit status 1 and "REPRODUCED" when
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
    // 0: no kill pending; otherwise the time of the last kill, in ms.
    let killed_at = Arc::new(AtomicU64::new(0));
    let k = Arc::clone(&killed_at);
    let keep = dir.path().to_path_buf();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let at = k.load(Ordering::SeqCst);
            if at != 0 && now_ms().saturating_sub(at) > 5000 {
                println!(
                    "REPRODUCED: recv_timeout(200 ms) has not returned 5 s after the sender was \
                 SIGKILLed: the dead sender holds the ring's mutex"
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
        while start.elapsed() < delay {
            if let Ok(Some(m)) = rx.recv_timeout::<Vec<u8>>(Duration::from_millis(200)) {
                got += usize::from(m.len() == MSG);
            }
        }
        child.kill().expect("SIGKILL the sender");
        child.wait().expect("reap the sender");
        killed_at.store(now_ms(), Ordering::SeqCst);
        // Drain until the ring is empty: each call must return within its 200 ms.
        while let Ok(Some(_)) = rx.recv_timeout::<Vec<u8>>(Duration::from_millis(200)) {}
        killed_at.store(0, Ordering::SeqCst);
        println!("kill {attempt}: {got} messages before it, the receiver is free");
    }
    println!("not reproduced in 20 kills");
    ExitCode::SUCCESS
}
