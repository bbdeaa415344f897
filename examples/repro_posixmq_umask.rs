//! Reproduces, without the audit, a posixmq 1.0.0 finding: `OpenOptions::mode` is narrowed
//! by the process's umask (as its documentation says: "Some bits might be cleared by the
//! process's umask"), so a queue asked with 0660 to admit its group gets 0640 under the
//! usual umask 022 and the group cannot send.
//!
//! `cargo run --release --example repro_posixmq_umask` (needs /dev/mqueue mounted:
//! `mount -t mqueue none /dev/mqueue`). Exit status 1 and "REPRODUCED" when the mode read
//! back differs from the one asked.

use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let name = format!("/repro-posixmq-umask-{}", std::process::id());
    let mq = posixmq::OpenOptions::readonly()
        .mode(0o660)
        .create_new()
        .open(&name)
        .expect("create the queue");
    let meta = std::fs::metadata(format!("/dev/mqueue{name}"));
    let _ = posixmq::remove_queue(&name);
    drop(mq);
    nix::sys::stat::umask(old);
    let mode = meta
        .expect("stat the queue in /dev/mqueue")
        .permissions()
        .mode()
        & 0o7777;
    if mode == 0o660 {
        println!("not reproduced: asked 0660, got 0660");
        ExitCode::SUCCESS
    } else {
        println!("REPRODUCED: asked 0660 under umask 022, the queue has mode {mode:04o}");
        ExitCode::FAILURE
    }
}
