//! Reproduces, without the audit, the finding shared by os_pipe 1.2.3 and tokio 1.54.1's
//! `net::unix::pipe`: writing to a pipe whose reader is gone raises SIGPIPE, and a
//! process whose SIGPIPE is at its default (a program that restores it, a child started
//! from a shell that did, or any non-Rust host) is killed instead of getting `EPIPE`.
//! Rust's runtime ignores SIGPIPE before `main`, which hides this in plain Rust binaries;
//! the child here puts it back to the default first (`ipc_audit::sys::process::
//! default_sigpipe`, one `signal(SIGPIPE, SIG_DFL)` call: nothing of the audit runs).
//!
//! `cargo run --release --example repro_pipe_sigpipe`. Exit status 1 and "REPRODUCED" for
//! each crate whose writer was killed by SIGPIPE.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};

fn child(which: &str) -> ExitCode {
    ipc_audit::sys::process::default_sigpipe().expect("SIGPIPE to SIG_DFL");
    let r = match which {
        "os_pipe" => {
            let (reader, mut writer) = os_pipe::pipe().expect("pipe");
            drop(reader);
            writer.write(b"x").map(drop)
        }
        _ => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .expect("runtime");
            let _enter = rt.enter();
            let (tx, rx) = tokio::net::unix::pipe::pipe().expect("pipe");
            drop(rx);
            rt.block_on(async {
                tx.writable().await?;
                tx.try_write(b"x").map(drop)
            })
        }
    };
    println!("{which}: the write returned {r:?}");
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 2 {
        return child(&args[1]);
    }
    let exe = std::env::current_exe().expect("own path");
    let mut shown = 0;
    for which in ["os_pipe", "tokio"] {
        let out = Command::new(&exe)
            .arg(which)
            .output()
            .expect("run the child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if out.status.signal() == Some(libc::SIGPIPE) {
            shown += 1;
            println!(
                "REPRODUCED: {which}: the writer was killed by SIGPIPE (13) instead of getting EPIPE"
            );
        } else {
            println!(
                "not reproduced: {which}: the writer exited with {}",
                out.status
            );
        }
    }
    if shown > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
