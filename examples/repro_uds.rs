//! Reproduces, without the audit, the two uds 0.4.2 findings:
//!
//! 1. `UnixSeqpacketListener::bind` takes no mode: the socket file gets 0777 less the
//!    umask (0755 under umask 022), so a group or a second user cannot be let in (connect
//!    needs write permission), and a caller cannot ask for less either (0700 under 077 is
//!    the umask's doing).
//! 2. A peer that closes and a zero-length packet look the same: after the peer is gone,
//!    `recv` returns `Ok(0)` at once, again and again, like an endless stream of empty
//!    packets (as the crate's documentation warns).
//!
//! `cargo run --release --example repro_uds`. Exit status 1 and "REPRODUCED" for each
//! finding shown.

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

use uds::{UnixSeqpacketConn, UnixSeqpacketListener};

fn main() -> ExitCode {
    let mut shown = 0;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("sock");
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let listener = UnixSeqpacketListener::bind(&path).expect("bind");
    nix::sys::stat::umask(old);
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    if mode == 0o755 {
        shown += 1;
        println!(
            "REPRODUCED 1: bound under umask 022, the socket has mode {mode:04o}; uds has no way to ask for another"
        );
    } else {
        println!("not reproduced 1: mode {mode:04o}");
    }
    drop(listener);

    let (a, b) = UnixSeqpacketConn::pair().expect("pair");
    a.send(b"").expect("send an empty packet");
    let mut buf = [0u8; 16];
    let empty = b.recv(&mut buf).expect("recv the empty packet");
    drop(a);
    let after: Vec<usize> = (0..3)
        .map(|_| b.recv(&mut buf).expect("recv after close"))
        .collect();
    if empty == 0 && after == [0, 0, 0] {
        shown += 1;
        println!(
            "REPRODUCED 2: an empty packet gave Ok(0); after the peer closed, recv gave Ok(0) three times more: no way to tell them apart"
        );
    } else {
        println!("not reproduced 2: empty packet {empty}, after close {after:?}");
    }
    if shown > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
