//! One conformance line per transport: the audit's properties, with the peer in another
//! process (the `ipc-audit` binary in its peer role). Cases per property: `IPC_AUDIT_CASES`
//! (default 32).
//!
//! A check that could not run here is written straight to the test's standard error
//! (a `write(2)` on descriptor 2, which the test harness does not capture), so that a
//! default `cargo test` shows every `NOT RUN` line and its cause; with
//! `IPC_AUDIT_STRICT=1` the test fails on it.

use ipc_audit::audit::{Auditor, PeerLauncher, Report, Verdict};

/// Audits `name` with the crate's binary as the peer; panics with the table on a `fail`.
fn conforms(name: &str) {
    let t = ipc_audit::transport::by_name(name).expect("transport exists");
    let launcher = PeerLauncher::program(env!("CARGO_BIN_EXE_ipc-audit"), []);
    let auditor = Auditor::from_env(launcher).unwrap_or_else(|e| panic!("{e}"));
    let strict = ipc_audit::audit::strict_from_env().unwrap_or_else(|e| panic!("{e}"));
    let report = Report {
        transports: vec![auditor.audit(t.as_ref())],
    };
    let table = report.to_table();
    println!("{table}");
    for (_, p) in report.results() {
        assert_ne!(
            p.verdict,
            Verdict::Fail,
            "{name} / {}:\n{table}",
            p.property
        );
    }
    let not_run = report.not_run_lines();
    if !not_run.is_empty() {
        let mut text = String::new();
        for line in &not_run {
            text.push_str(&format!("NOT RUN {line}\n"));
        }
        // Not eprintln!: the harness captures that for a test that passes.
        let _ = nix::unistd::write(std::io::stderr(), text.as_bytes());
    }
    assert!(
        !strict || not_run.is_empty(),
        "{name}: {} checks not run, a failure in strict mode (IPC_AUDIT_STRICT=1):\n{}",
        not_run.len(),
        not_run.join("\n")
    );
}

macro_rules! conformance {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                conforms($name);
            }
        )*

        #[test]
        fn every_transport_has_a_conformance_line() {
            let lines = [$($name),*];
            for n in ipc_audit::transport::names() {
                assert!(lines.contains(&n), "no conformance line for {n}");
            }
        }
    };
}

conformance! {
    pipe => "pipe",
    fifo => "fifo",
    uds_stream => "uds-stream",
    uds_dgram => "uds-dgram",
    uds_seqpacket => "uds-seqpacket",
    tcp => "tcp",
    udp => "udp",
    posix_mq => "posix-mq",
    sysv_mq => "sysv-mq",
    file => "file",
    signal => "signal",
    semaphore => "semaphore",
    shm => "shm",
}
