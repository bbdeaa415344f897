//! Interrupted runs leave nothing: SIGINT and SIGTERM are taken by a thread of their own
//! (blocked in every other thread; peers start with an empty mask, as `std::process`
//! gives them), which kills the live peers, removes every object whose name carries this
//! process's or a peer's pid ([`crate::sys::reclaim`]), says what it removed and exits
//! with 130 or 143. At the start of a run, what a SIGKILLed run left (its pid is dead)
//! is removed and listed.

use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

/// Takes SIGINT and SIGTERM on a thread of its own. Call it before any other thread
/// starts, so that every thread inherits the mask.
pub(super) fn install() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if let Err(e) = set.thread_block() {
        eprintln!("ipc-audit: SIGINT and SIGTERM not handled (cannot block them: {e})");
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ipc-audit-signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                interrupted(sig);
            }
        });
    if let Err(e) = spawned {
        eprintln!("ipc-audit: SIGINT and SIGTERM not handled (no thread: {e})");
        let _ = set.thread_unblock();
    }
}

/// Kills the peers, removes what is ours, and exits `128 + sig`. The other threads run
/// on meanwhile and may make a peer or an object after a pass (a floor's queue made
/// once its peer was killed), so it makes three passes, 50 ms apart; what a thread makes
/// in the last microseconds before the exit, the next run reclaims (its pid is dead).
fn interrupted(sig: Signal) -> ! {
    let mut killed = Vec::new();
    let mut removed = Vec::new();
    for _ in 0..3 {
        for p in crate::peer::live_peers() {
            if let Ok(pid) = i32::try_from(p) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if !killed.contains(&p) {
                killed.push(p);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut gone = killed.clone();
        gone.push(std::process::id());
        removed.extend(crate::sys::reclaim::reclaim(&gone));
    }
    eprintln!(
        "\nipc-audit: interrupted by {}; killed {} peers, removed {} objects{}",
        sig.as_str(),
        killed.len(),
        removed.len(),
        list(&removed)
    );
    std::process::exit(128 + sig as i32);
}

/// Removes what runs that died (SIGKILL) left, and says so.
pub(super) fn reclaim_dead() {
    let removed = crate::sys::reclaim::reclaim(&[]);
    if !removed.is_empty() {
        eprintln!(
            "ipc-audit: removed {} objects left by runs that died{}",
            removed.len(),
            list(&removed)
        );
    }
}

fn list(items: &[String]) -> String {
    items.iter().map(|i| format!("\n  {i}")).collect()
}
