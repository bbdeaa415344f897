//! The `bench` and `table` commands end to end, on the real binary: the shape of what
//! they print, never the timings (those belong to benches).

use std::process::Command;

use serde_json::Value;

fn ipc_audit(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
        .args(args)
        .output()
        .expect("run ipc-audit");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn positive(v: &Value, what: &str) {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x > 0.0, "{what} is not positive: {x}");
}

/// A one-way transport (pipe: the way back is a second link) and a duplex one
/// (uds-stream: the peer echoes on the link), quick: every row present, every number
/// positive, the floors measured.
#[test]
fn table_quick_json_has_a_row_per_transport_with_positive_numbers() {
    let names = ["pipe", "uds-stream"];
    let mut args = vec!["table", "--quick", "--format", "json"];
    args.extend(names);
    let (ok, stdout, stderr) = ipc_audit(&args);
    assert!(ok, "table failed: {stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("table prints JSON");
    let rows = v["rows"].as_array().expect("rows");
    let methods: Vec<&str> = rows.iter().filter_map(|r| r["method"].as_str()).collect();
    assert_eq!(methods, names, "one row per transport asked for, in order");
    for r in rows {
        let m = r["method"].as_str().unwrap_or("?");
        assert_eq!(r["errors"], Value::Array(vec![]), "{m}: measurement errors");
        for key in ["supporting_os", "security", "complexity", "usability"] {
            let cell = r[key].as_str().unwrap_or_default();
            assert!(!cell.is_empty(), "{m}: empty {key}");
        }
        for pin in ["same_cpu", "cross_cpu"] {
            for p in ["p50", "p99"] {
                positive(&r["latency_ns"][pin][p], &format!("{m} {pin} {p}"));
            }
        }
        positive(&r["throughput_bytes_per_s"], &format!("{m} throughput"));
        positive(&r["cpu_ns_per_msg"], &format!("{m} cpu per message"));
        let allocs = r["allocs_per_msg"]
            .as_f64()
            .unwrap_or_else(|| panic!("{m}: allocations not counted"));
        assert!(allocs >= 0.0, "{m}: negative allocations");
        let sizes: Vec<u64> = r["throughput"]
            .as_array()
            .expect("throughput list")
            .iter()
            .filter_map(|t| t["size"].as_u64())
            .collect();
        assert_eq!(sizes, [64, 4096, 65536], "{m}: the three stream sizes");
    }
    positive(
        &v["floor"]["shm_futex"]["same_cpu"]["p50"],
        "futex floor same cpu",
    );
    positive(
        &v["floor"]["shm_futex"]["cross_cpu"]["p50"],
        "futex floor cross cpu",
    );
    positive(
        &v["floor"]["shm_spin"]["cross_cpu"]["p50"],
        "spin floor cross cpu",
    );
}

/// Markdown: the seed's seven columns and one line per transport.
#[test]
fn table_quick_markdown_has_the_seed_columns() {
    let (ok, stdout, stderr) = ipc_audit(&["table", "--quick", "--format", "md", "fifo"]);
    assert!(ok, "table failed: {stderr}");
    let mut lines = stdout.lines();
    let head = lines.next().unwrap_or_default();
    for col in [
        "Method",
        "Supporting OS",
        "Security",
        "Latency",
        "Complexity",
        "Efficiency",
        "Usability",
    ] {
        assert!(head.contains(col), "no {col} column in {head:?}");
    }
    assert!(
        stdout.lines().any(|l| l.starts_with("| fifo |")),
        "{stdout}"
    );
    assert!(stdout.contains("Floors in this run"), "{stdout}");
}

/// `bench` in JSON: latency and throughput of one transport, with the peer's figures.
#[test]
fn bench_json_shape() {
    let (ok, stdout, stderr) = ipc_audit(&[
        "bench", "fifo", "--count", "300", "--pin", "cross", "--format", "json",
    ]);
    assert!(ok, "bench failed: {stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("bench prints JSON");
    let l = &v["latency"]["Ok"];
    assert_eq!(l["transport"], "fifo");
    assert_eq!(l["pin"], "cross");
    assert_eq!(l["way_back"], "second-link");
    assert_eq!(l["stats"]["round_trips"], 300);
    positive(&l["stats"]["p50_ns"], "p50");
    let t = &v["throughput"]["Ok"][0];
    assert_eq!(t["size"], 64);
    assert_eq!(t["received"], 300);
    positive(&t["bytes_per_s"], "throughput");
    // The floors of the same pinning, measured in the same run, the method's own last
    // (fifo's: two FIFOs made where the transport makes its own).
    let kinds: Vec<_> = v["floors"]
        .as_array()
        .expect("floors")
        .iter()
        .map(|f| {
            positive(&f["Ok"]["stats"]["p50_ns"], "floor p50");
            f["Ok"]["kind"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(kinds, ["shm-spin", "shm-futex", "raw-fifo"]);
}

/// The floors of the methods that wait in `poll` (file: inotify; signal: a signalfd)
/// and fifo's (FIFOs made in the temporary directory) are measured by `bench`, named
/// after the method, with a positive p50.
#[test]
fn bench_measures_the_file_signal_and_fifo_floors() {
    for (method, want) in [
        ("file", "raw-file"),
        ("signal", "raw-signal"),
        ("fifo", "raw-fifo"),
    ] {
        let (ok, stdout, stderr) = ipc_audit(&[
            "bench", method, "--count", "200", "--pin", "same", "--format", "json",
        ]);
        assert!(ok, "bench {method} failed: {stderr}");
        let v: Value = serde_json::from_str(&stdout).expect("bench prints JSON");
        let own: Vec<_> = v["floors"]
            .as_array()
            .expect("floors")
            .iter()
            .filter(|f| f["Ok"]["kind"] == want)
            .collect();
        assert_eq!(own.len(), 1, "{method}: no {want} floor in {stdout}");
        positive(&own[0]["Ok"]["stats"]["p50_ns"], "own floor p50");
    }
}

/// Bad input is refused with the offending value, exit status 2.
#[test]
fn bench_refuses_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
        .args(["bench", "no-such-transport"])
        .output()
        .expect("run ipc-audit");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-transport"));
    let out = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
        .args(["bench", "pipe", "--count", "0"])
        .output()
        .expect("run ipc-audit");
    assert_eq!(out.status.code(), Some(2));
}

/// A bad value of any variable the audit reads is refused before anything runs, naming
/// the variable and the value, exit status 2: `audit`, and `table` (which audits too).
#[test]
fn audit_and_table_refuse_bad_tuning_variables() {
    for (args, var, value) in [
        (&["audit", "pipe"][..], "IPC_AUDIT_EINTR_CASES", "x"),
        (&["audit", "pipe"][..], "IPC_AUDIT_FD_MESSAGES", "5"),
        (
            &["table", "--quick", "pipe"][..],
            "IPC_AUDIT_RETRY_CASES",
            "0",
        ),
        (&["table", "--quick", "pipe"][..], "IPC_AUDIT_CASES", "-1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ipc-audit"))
            .args(args)
            .env(var, value)
            .output()
            .expect("run ipc-audit");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} {var}={value}: {stderr}"
        );
        assert!(
            stderr.contains(var) && stderr.contains(&format!("{value:?}")),
            "{args:?} {var}={value}: {stderr}"
        );
    }
}
