//! Signal storms for the `eintr` property: a harmless signal (SIGURG) with a no-op
//! handler installed without SA_RESTART, so that every blocking call it lands in returns
//! EINTR, sent every few tens of microseconds at one thread with `pthread_kill`.
//!
//! The handler is process-wide and installed once; a storm is aimed at one thread only,
//! so the other threads of a multi-threaded test binary never see the signal. SIGURG's
//! default action is to be ignored, so a stray one could not hurt anyway.

use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use nix::sys::pthread::{Pthread, pthread_kill, pthread_self};
use nix::sys::signal::Signal;

use crate::error::{Error, Result};

/// The storm's signal.
pub(crate) const STORM_SIGNAL: Signal = Signal::SIGURG;

static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the no-op handler (without SA_RESTART), once per process.
pub(crate) fn install() -> Result<()> {
    INSTALL.call_once(|| {
        // It replaces SIGURG's default (ignore), which nothing else in the crate uses.
        if crate::sys::signal::count_without_restart(STORM_SIGNAL).is_ok() {
            INSTALLED.store(true, Ordering::Release);
        }
    });
    if INSTALLED.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(Error::Unsupported(format!(
            "could not install a handler for {STORM_SIGNAL:?}"
        )))
    }
}

/// How many storm signals this process has handled so far.
pub(crate) fn delivered() -> u64 {
    crate::sys::signal::counted()
}

/// A storm aimed at the thread that made it; stopped and joined on drop, before that
/// thread can go away.
pub(crate) struct Storm {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Storm {
    /// Starts sending the storm signal to the calling thread every `period`.
    pub(crate) fn at_this_thread(period: Duration) -> Result<Storm> {
        install()?;
        let target: Pthread = pthread_self();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::Builder::new()
            .name("ipc-audit-storm".into())
            .spawn(move || {
                while !s.load(Ordering::Acquire) {
                    // The target outlives this thread: Storm's drop joins it first.
                    let _ = pthread_kill(target, STORM_SIGNAL);
                    thread::sleep(period);
                }
            })
            .map_err(|e| Error::io("start the signal storm", e))?;
        let storm = Storm {
            stop,
            thread: Some(thread),
        };
        // Return once the first signal has landed, so that even a short exchange runs
        // under a storm already going (a loaded machine may start the thread late).
        let before = delivered();
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while delivered() == before && std::time::Instant::now() < until {
            thread::sleep(Duration::from_micros(100));
        }
        Ok(storm)
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
