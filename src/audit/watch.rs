//! The access racer's watcher: a peer that sees every object the moment its name appears
//! (inotify on the race directory and on each folder made in it) and stats it at once,
//! so that a name that exists for microseconds with a mode wider than asked is seen,
//! whether or not an open could win the race. See [`Cmd::Watch`](super::role::Cmd).

use std::path::Path;

use super::role::Event;
use crate::error::Result;

/// Watches `dir` and every folder made in it for `millis` milliseconds; each time a
/// name in `names` is created, moved in or changes attributes in one of those folders,
/// stats it at once. Reports how many stats found an object and the paths whose mode
/// had a bit that `mode` does not (at most 10, with the mode seen).
#[cfg(target_os = "linux")]
pub(super) fn watch(dir: &Path, names: &[String], millis: u64, mode: u32) -> Result<Event> {
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

    use crate::error::Error;

    let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| Error::sys("watch: inotify_init1", e))?;
    let top = ino
        .add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
        .map_err(|e| Error::sys(format!("watch: watch {}", dir.display()), e))?;
    let inside = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ATTRIB;
    let mut folders = HashMap::new();
    let (mut stats, mut wider) = (0u64, Vec::new());
    let look = |path: &Path, stats: &mut u64, wider: &mut Vec<String>| {
        if let Ok(m) = std::fs::symlink_metadata(path) {
            *stats += 1;
            let got = m.permissions().mode() & 0o777;
            if got & !mode != 0 && wider.len() < 10 {
                wider.push(format!("{} {got:#o}", path.display()));
            }
        }
    };
    let end = Instant::now() + Duration::from_millis(millis);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(Error::sys("watch: poll", e)),
        }
        let events = match ino.read_events() {
            Ok(ev) => ev,
            Err(nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return Err(Error::sys("watch: read the inotify events", e)),
        };
        for ev in events {
            let Some(name) = ev.name else { continue };
            if ev.wd == top {
                let folder = dir.join(&name);
                // A folder made in the race directory: watch it, then look at once for
                // what may have been made in it before the watch was in place.
                if let Ok(wd) = ino.add_watch(&folder, inside) {
                    folders.insert(wd, folder.clone());
                }
                for n in names {
                    look(&folder.join(n), &mut stats, &mut wider);
                }
            } else if let Some(folder) = folders.get(&ev.wd)
                && names.iter().any(|n| name.as_os_str() == n.as_str())
            {
                look(&folder.join(&name), &mut stats, &mut wider);
            }
        }
    }
    Ok(Event::Watched { stats, wider })
}

/// Not on this system: inotify is Linux's.
#[cfg(not(target_os = "linux"))]
pub(super) fn watch(_: &Path, _: &[String], _: u64, _: u32) -> Result<Event> {
    Err(crate::error::Error::Unsupported(
        "watching a directory needs inotify (Linux)".into(),
    ))
}
