//! The signal properties (`signal` transport) and the memfd seals (`shm`), with the
//! crate's binary as the peer. They block signals in a dedicated thread of their own and
//! touch no other thread's mask and no disposition; still, everything here that involves
//! signals takes [`SIGNAL_MTX`], as nix's tests do, so that a test added later that does
//! change process-wide signal state cannot race them.

use std::sync::Mutex;

use ipc_audit::audit::{Auditor, PeerLauncher, Report, Verdict};
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};

/// Held by every test of this binary that sends, blocks or waits for signals.
static SIGNAL_MTX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SIGNAL_MTX.lock().unwrap_or_else(|p| p.into_inner())
}

fn audit(transport: &str, only: &[&str]) -> Report {
    let t = ipc_audit::transport::by_name(transport).expect("transport exists");
    let launcher = PeerLauncher::program(env!("CARGO_BIN_EXE_ipc-audit"), []);
    let report = Report {
        transports: vec![
            Auditor::new(launcher)
                .only(only.iter().copied())
                .audit(t.as_ref()),
        ],
    };
    println!("{}", report.to_table());
    report
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The calling thread's signal mask.
fn my_mask() -> SigSet {
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut old)).unwrap();
    old
}

#[test]
fn realtime_signals_queue_in_order_lowest_first() {
    let _g = lock();
    let r = audit("signal", &["signal-rt-queue"]);
    let p = r
        .get("signal", "signal-rt-queue")
        .expect("listed for signal");
    assert_eq!(p.verdict, Verdict::Pass, "{p:?}");
    assert!(p.observed.contains("in order with their values"), "{p:?}");
    assert!(
        p.observed.contains("SIGRTMIN+10 before SIGRTMIN+12"),
        "{p:?}"
    );
}

#[test]
fn standard_signals_coalesce_and_are_shown_so() {
    let _g = lock();
    let r = audit("signal", &["signal-std-coalesce"]);
    let p = r.get("signal", "signal-std-coalesce").expect("listed");
    assert_eq!(p.verdict, Verdict::Pass, "{p:?}");
    assert!(p.declared.contains("not promised"), "{p:?}");
    assert!(p.observed.contains("boundaries not preserved"), "{p:?}");
    assert!(p.observed.contains("64->1"), "{p:?}");
}

#[test]
fn second_uid_is_refused_and_senders_are_named() {
    let _g = lock();
    let r = audit("signal", &["signal-uid"]);
    let p = r.get("signal", "signal-uid").expect("listed");
    if !root() {
        assert_eq!(p.verdict, Verdict::NotRun, "{p:?}");
        println!("not run: signal-uid's uid part: {}", p.detail);
        return;
    }
    assert_eq!(p.verdict, Verdict::Pass, "{p:?}");
    for words in [
        "uid 65534: EPERM from kill, sigqueue, rt_tgsigqueueinfo, tgkill",
        "same uid: admitted",
        "si_uid 65534",
        "chunks refused (Error::Corrupt naming the pid), nothing delivered",
    ] {
        assert!(p.observed.contains(words), "{words:?} not in {p:?}");
    }
}

#[test]
fn shm_peer_cannot_resize_and_garbage_is_an_error() {
    let _g = lock();
    let r = audit("shm", &["access-shm-seal"]);
    let p = r.get("shm", "access-shm-seal").expect("listed for shm");
    assert_eq!(p.verdict, Verdict::Pass, "{p:?}");
    assert_eq!(p.observed.matches("EPERM").count(), 3, "{p:?}");
    assert!(
        p.observed.contains("record header 16045690984833335023"),
        "{p:?}"
    );
}

#[test]
fn the_properties_are_listed_only_where_they_apply() {
    let launcher = PeerLauncher::program(env!("CARGO_BIN_EXE_ipc-audit"), []);
    let auditor = Auditor::new(launcher);
    for t in ipc_audit::transport::all() {
        for p in auditor.properties() {
            let want = match p.name {
                n if n.starts_with("signal-") => t.name() == "signal",
                "access-shm-seal" => t.name() == "shm",
                _ => true,
            };
            assert_eq!(p.applies_to(t.as_ref()), want, "{} / {}", t.name(), p.name);
        }
    }
}

#[test]
fn the_callers_mask_is_untouched() {
    let _g = lock();
    let before = my_mask();
    audit("signal", &["signal-std-coalesce"]);
    assert_eq!(
        my_mask(),
        before,
        "the audit changed the calling thread's mask"
    );
    assert!(!before.contains(nix::sys::signal::Signal::SIGURG));
}

#[test]
fn whole_words_carry_every_size_up_to_the_declared_maximum() {
    use ipc_audit::error::Error;
    use ipc_audit::transport::signal::{Chunk, Signal, encode_chunk, max_message};
    use ipc_audit::transport::{Config, Endpoint, Transport};
    use std::time::Duration;

    let _g = lock();
    let max = max_message();
    assert_eq!(Signal.guarantees().max_message, max);
    let (mut rx, peer) = Signal.open_concrete(&Config::default()).unwrap();
    let info = peer.info.clone();
    let mut tx = Signal.attach_concrete(peer).unwrap();
    let t = Some(Duration::from_secs(5));
    rx.set_timeout(t).unwrap();
    tx.set_timeout(t).unwrap();
    let mut buf = Vec::new();
    for len in [0, 1, 6, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, max] {
        let msg: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        tx.send(&msg).unwrap();
        assert_eq!(rx.recv(&mut buf).unwrap(), len);
        assert_eq!(buf, msg, "{len} bytes");
    }
    assert!(matches!(
        tx.send(&vec![0; max + 1]),
        Err(Error::TooLarge { .. })
    ));
    // A chunk queued by hand: the whole 64 bits arrive (a start chunk of length 8 whose
    // sequence number is the next one), and an invalid kind is refused naming its code.
    let v: Vec<&str> = info.split(' ').collect();
    let (sig, pid, tid) = (
        v[1].parse().unwrap(),
        v[2].parse().unwrap(),
        v[3].parse().unwrap(),
    );
    let queue = |(code, w): (i32, u64)| {
        let w = usize::try_from(w).unwrap();
        ipc_audit::sys::signal::queue_coded(pid, tid, sig, code, 0, w).unwrap()
    };
    let mut seq = 0u8;
    for len in [0usize, 1, 6, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, max] {
        seq = ((seq as usize + len.div_ceil(8).max(1)) % 64) as u8;
    }
    queue(encode_chunk(Chunk::Start {
        seq,
        len: 8,
        bytes: u64::MAX.to_le_bytes(),
    }));
    assert_eq!(rx.recv(&mut buf).unwrap(), 8);
    assert_eq!(buf, [0xff; 8], "all 64 bits of the word");
    queue((0xdac0_0001_u32 as i32, 1));
    let e = rx.recv(&mut buf).unwrap_err();
    assert!(e.to_string().contains("0xdac00001"), "{e}");
    // After a gap in the sequence, a whole short message in one start chunk: the gap is
    // reported, and the message still arrives.
    let start = |seq, bytes: &[u8]| {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        let len = bytes.len() as u64;
        encode_chunk(Chunk::Start {
            seq,
            len,
            bytes: word,
        })
    };
    queue(start(10, b"ab"));
    assert_eq!(rx.recv(&mut buf).unwrap(), 2);
    queue(start(15, b"cde"));
    assert!(matches!(rx.recv(&mut buf), Err(Error::Protocol(_))));
    assert_eq!(rx.recv(&mut buf).unwrap(), 3);
    assert_eq!(buf, b"cde");
}
