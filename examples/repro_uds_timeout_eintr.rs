//! Reproduces, without the audit, a uds 0.4.2 finding: `UnixSeqpacketConn::recv` retries
//! on EINTR (the crate's `cvt_r!`), and the wait is bounded by SO_RCVTIMEO, which the
//! kernel starts again on every call. So a receive with a read timeout of 200 ms never
//! times out while signals (handled without SA_RESTART) arrive more often than every
//! 200 ms: each signal restarts the whole timeout.
//!
//! Here one thread receives on an idle connection with `set_read_timeout(200 ms)`; the
//! main thread sends it SIGURG (an empty handler, no SA_RESTART) every millisecond for 2
//! seconds, then stops. `cargo run --release --example repro_uds_timeout_eintr`. Exit
//! status 1 and "REPRODUCED" when the receive outlived its timeout by over a second.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::pthread::{pthread_kill, pthread_self};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use uds::UnixSeqpacketConn;

extern "C" fn nothing(_: libc::c_int) {}

fn main() -> ExitCode {
    let action = SigAction::new(
        SigHandler::Handler(nothing),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler does nothing, so it is async-signal-safe.
    unsafe { sigaction(Signal::SIGURG, &action) }.expect("sigaction");
    let (a, _b) = UnixSeqpacketConn::pair().expect("a seqpacket pair");
    let timeout = Duration::from_millis(200);
    a.set_read_timeout(Some(timeout)).expect("set_read_timeout");
    let (tx, rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        tx.send(pthread_self()).expect("send the thread id");
        let t0 = Instant::now();
        let r = a.recv(&mut [0; 64]);
        (r, t0.elapsed())
    });
    let thread = rx.recv().expect("the thread id");
    let storm = Duration::from_secs(2);
    let t0 = Instant::now();
    let mut signals = 0;
    while t0.elapsed() < storm && !receiver.is_finished() {
        let _ = pthread_kill(thread, Signal::SIGURG);
        signals += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    let (r, took) = receiver.join().expect("the receiving thread");
    if took > timeout + Duration::from_secs(1) {
        println!(
            "REPRODUCED: recv with a 200 ms read timeout returned {:?} after {} ms ({signals} signals, one a millisecond, for the first {} ms)",
            r.map_err(|e| e.kind()),
            took.as_millis(),
            storm.as_millis()
        );
        ExitCode::FAILURE
    } else {
        println!(
            "not reproduced: recv returned {:?} after {} ms under {signals} signals",
            r.map_err(|e| e.kind()),
            took.as_millis()
        );
        ExitCode::SUCCESS
    }
}
