//! Reproduces, without the audit, the four iceoryx2 0.10.0 findings:
//!
//! 1. Silent loss: with `enable_safe_overflow(false)` and
//!    `BackpressureStrategy::RetryUntilDelivered`, a publisher whose subscriber has not yet
//!    called `receive` (so has not connected its side) fills the subscriber's buffer, then
//!    *drops* every further sample while `send` returns `Ok`
//!    (`ZeroCopySendError::NoConnectedReceiverAndBufferIsFull`, treated as "causes no
//!    problem" in `port/details/sender.rs`).
//! 2. Descriptors leak into child processes: the node's and the service's files and the
//!    listener's socket are not close-on-exec; a `Command` child lists them.
//! 3. `Listener::timed_wait` returns `ListenerWaitError::InterruptSignal` when any signal
//!    handler without SA_RESTART runs, instead of retrying to its deadline.
//! 4. (As root.) A second uid kept out by the root's directory modes is told
//!    `NodeCreationFailure::InternalError`, not `InsufficientPermissions`: a forked child
//!    dropped to uid 65534 creates a node under the same root (made 0711, as the audit's
//!    adapter does); the `nodes` directory is 0750, and the kernel's EACCES is lost. The
//!    node-id segment in /dev/shm is mode 0666 (the child opened it read-write).
//!
//! `cargo run --release --example repro_iceoryx2`. Exit status 1 and "REPRODUCED n" for each
//! finding shown. Everything lives under a temporary root and a unique prefix, removed at
//! the end.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use iceoryx2::prelude::*;

fn main() -> ExitCode {
    set_log_level(LogLevel::Error);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let prefix = format!("iox2repro{}_", std::process::id());
    let mut config = Config::default();
    let root = format!("{}/", dir.path().display());
    config
        .global
        .set_root_path(&Path::new(root.as_bytes()).expect("root"));
    config.global.prefix = FileName::new(prefix.as_bytes()).expect("prefix");
    let node = NodeBuilder::new()
        .config(&config)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("node");
    let name = ServiceName::new("repro/iceoryx2").expect("name");
    let service = node
        .service_builder(&name)
        .publish_subscribe::<u64>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(2)
        .create()
        .expect("service");
    let subscriber = service
        .subscriber_builder()
        .buffer_size(2)
        .create()
        .expect("subscriber");
    let publisher = service
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .expect("publisher");
    let mut shown = 0;

    // 1. Ten sends, all Ok, before the subscriber's first receive.
    let oks = (0..10u64)
        .filter(|i| publisher.send_copy(*i).is_ok())
        .count();
    let mut got = Vec::new();
    while let Some(s) = subscriber.receive().expect("receive") {
        got.push(*s);
    }
    if oks == 10 && got.len() < 10 {
        shown += 1;
        println!(
            "REPRODUCED 1: 10 sends returned Ok, the subscriber received {got:?}: {} lost",
            10 - got.len()
        );
    } else {
        println!("not reproduced 1: {oks} sends Ok, received {got:?}");
    }

    // 2. What a child process inherits.
    let event = node
        .service_builder(&name)
        .event()
        .create()
        .expect("event service");
    let listener = event.listener_builder().create().expect("listener");
    let out = Command::new("ls")
        .arg("-l")
        .arg("/proc/self/fd/")
        .output()
        .expect("ls");
    let listing = String::from_utf8_lossy(&out.stdout);
    let leaked: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(&root) || l.contains("socket:"))
        .collect();
    if leaked.is_empty() {
        println!("not reproduced 2: the child inherited nothing of iceoryx2's");
    } else {
        shown += 1;
        println!(
            "REPRODUCED 2: a child process inherited {} descriptors:",
            leaked.len()
        );
        for l in &leaked {
            println!(
                "    {}",
                l.split_whitespace().skip(8).collect::<Vec<_>>().join(" ")
            );
        }
    }

    // 3. A signal during timed_wait.
    ipc_audit::sys::signal::count_without_restart(nix::sys::signal::Signal::SIGURG)
        .expect("a SIGURG handler without SA_RESTART");
    let me = nix::unistd::Pid::this();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let _ = nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGURG);
    });
    let start = Instant::now();
    let r = listener.timed_wait(|_| {}, Duration::from_secs(1));
    let _ = t.join();
    match r {
        Err(e) => {
            shown += 1;
            println!(
                "REPRODUCED 3: timed_wait(1 s) returned {e:?} after {:?}",
                start.elapsed()
            );
        }
        Ok(n) => println!(
            "not reproduced 3: timed_wait returned Ok({n}) after {:?}",
            start.elapsed()
        ),
    }
    shown += second_uid(dir.path(), &config, &prefix);
    drop((listener, event, publisher, subscriber, service, node));
    if let Ok(rd) = std::fs::read_dir("/dev/shm") {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if shown > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Finding 4: a child dropped to uid 65534 creates a node under `root`; 1 when it is
/// told something other than `InsufficientPermissions`.
fn second_uid(root: &std::path::Path, config: &Config, prefix: &str) -> usize {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !nix::unistd::geteuid().is_root() {
        println!("not run 4: needs root for a second uid");
        return 0;
    }
    let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711));
    let mode = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.mode() & 0o7777);
    let nodes = mode(&root.join("nodes"));
    let shm: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter(|e| mode(&e.path()) & 0o077 != 0)
                .map(|e| format!("{} {:o}", e.file_name().to_string_lossy(), mode(&e.path())))
                .collect()
        })
        .unwrap_or_default();
    let (r, w) = nix::unistd::pipe().expect("pipe");
    // SAFETY: the threads this program started have been joined; the child only creates
    // a node, writes one line and exits.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let uid = nix::unistd::Uid::from_raw(65534);
            let gid = nix::unistd::Gid::from_raw(65534);
            let _ = nix::unistd::setgroups(&[]);
            let _ = nix::unistd::setgid(gid);
            let _ = nix::unistd::setuid(uid);
            let r = NodeBuilder::new()
                .config(config)
                .signal_handling_mode(SignalHandlingMode::Disabled)
                .create::<ipc::Service>();
            let text = match r {
                Ok(_) => "Ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            let _ = nix::unistd::write(&w, text.as_bytes());
            unsafe { nix::libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut got = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut got);
            let _ = nix::sys::wait::waitpid(child, None);
            if got == "Ok" || got.contains("InsufficientPermissions") {
                println!("not reproduced 4: as uid 65534, NodeBuilder::create gave {got}");
                return 0;
            }
            println!(
                "REPRODUCED 4: as uid 65534, NodeBuilder::create gave {got}, not \
                 InsufficientPermissions (root 0711, nodes {nodes:o}); open to others in /dev/shm: {shm:?}"
            );
            1
        }
    }
}
