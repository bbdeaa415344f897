//! A byte stream never tears a message: a send whose first bytes went out before its
//! deadline is accepted, and the rest goes out before the next message, on `flush`, or
//! on drop; a send that could not start is refused whole. Checked on real sockets and
//! pipes (both ends in this process: the property tests run the peer in another).

use std::time::Duration;

use ipc_audit::Error;
use ipc_audit::transport::{Config, by_name};

/// A message far larger than a socket or pipe buffer (loopback TCP buffers grow to a
/// few MiB each way: 15 MiB, under the 16 MiB frame limit).
fn big(name: &str, seed: u8) -> Vec<u8> {
    let len = if name == "tcp" { 15 << 20 } else { 4 << 20 };
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn check(name: &str) {
    let t = by_name(name).expect("built in");
    let mut link = t.open(&Config::default()).expect("open");
    let mut tx = t.attach(std::mem::take(&mut link.peer)).expect("attach");
    tx.set_timeout(Some(Duration::from_millis(50))).unwrap();
    // Nobody reads: the buffer takes the first part, the deadline passes, the message is
    // accepted with its rest pending.
    let first = big(name, 1);
    tx.send(&first)
        .expect("a send whose first bytes went out is accepted");
    // While the rest cannot go out, the next message is refused whole.
    tx.set_nonblocking(true).unwrap();
    match tx.send(b"refused") {
        Err(Error::WouldBlock { .. }) => {}
        other => panic!("{name}: expected WouldBlock behind the pending rest, got {other:?}"),
    }
    tx.set_nonblocking(false).unwrap();
    match tx.send(b"refused too") {
        Err(Error::Timeout { .. }) => {}
        other => panic!("{name}: expected a timeout behind the pending rest, got {other:?}"),
    }
    // The reader drains; flush writes the rest; then one more message.
    let mut rx = link.local;
    rx.set_timeout(Some(Duration::from_secs(20))).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = Vec::new();
        for _ in 0..2 {
            let n = rx.recv(&mut buf).expect("recv");
            got.push(buf[..n].to_vec());
        }
        got
    });
    tx.set_timeout(Some(Duration::from_secs(20))).unwrap();
    tx.flush().expect("flush once the reader reads");
    tx.send(b"after").expect("send after the flush");
    let got = reader.join().expect("reader");
    assert_eq!(got.len(), 2);
    assert!(
        got[0] == first,
        "{name}: the accepted message arrived changed or cut"
    );
    assert_eq!(got[1], b"after", "{name}: a refused message arrived");
}

#[test]
fn uds_stream_never_tears_a_message() {
    check("uds-stream");
}

#[test]
fn tcp_never_tears_a_message() {
    check("tcp");
}

#[test]
fn pipe_never_tears_a_message() {
    check("pipe");
}
