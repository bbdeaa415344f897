//! One conformance line per transport: the audit's properties, with the peer in another
//! process (the `ipc-audit` binary in its peer role). Cases per property: `IPC_AUDIT_CASES`
//! (default 32).

use ipc_audit::audit::{Auditor, PeerLauncher, Report, Verdict};

/// Audits `name` with the crate's binary as the peer; panics with the table on a `fail`.
fn conforms(name: &str) {
    let t = ipc_audit::transport::by_name(name).expect("transport exists");
    let launcher = PeerLauncher::program(env!("CARGO_BIN_EXE_ipc-audit"), []);
    let report = Report {
        transports: vec![Auditor::new(launcher).audit(t.as_ref())],
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
        if p.verdict == Verdict::NotRun {
            println!("not run {name} / {}: {}", p.property, p.detail);
        }
    }
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
