//! Reproduces, without the audit, what `tokio-uds-dgram` fails in `deadline`: after one
//! end of a `tokio::net::UnixDatagram::pair()` is dropped, a `recv` on the other end does
//! not end (no error, no `Ok(0)`): it waits until its timeout, every time. Linux marks
//! the surviving end shut down when its peer closes only for stream and seqpacket
//! sockets (`unix_release_sock`), not for datagram ones, so tokio has nothing to report;
//! tokio's documentation promises nothing about it either.
//!
//! `cargo run --release --example repro_tokio_dgram_close`. Exit status 1 and
//! "REPRODUCED" when the receives after the drop only time out.

use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("runtime");
    let (outcomes, took) = rt.block_on(async {
        let (a, b) = tokio::net::UnixDatagram::pair().expect("a datagram pair");
        b.send(b"last").await.expect("send");
        drop(b);
        let mut buf = [0; 64];
        let first = a.recv(&mut buf).await.map(|n| buf[..n].to_vec());
        let t0 = Instant::now();
        let mut outcomes = vec![format!("{first:?}")];
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_millis(200), a.recv(&mut buf)).await;
            outcomes.push(match r {
                Err(_) => "timed out after 200 ms".to_string(),
                Ok(r) => format!("{r:?}"),
            });
        }
        (outcomes, t0.elapsed())
    });
    if outcomes[1..].iter().all(|o| o.starts_with("timed out")) {
        println!(
            "REPRODUCED: after the peer was dropped: {} ({} ms, never an error or Ok(0))",
            outcomes.join("; "),
            took.as_millis()
        );
        ExitCode::FAILURE
    } else {
        println!("not reproduced: {}", outcomes.join("; "));
        ExitCode::SUCCESS
    }
}
