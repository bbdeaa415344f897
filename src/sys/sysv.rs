//! System V message queues (`msgget`, `msgsnd`, `msgrcv`, `msgctl`): nix has none.
//!
//! A message buffer is the message type (a `c_long`, [`MTYPE_LEN`] bytes, native
//! endian) followed by the text, as the kernel reads and writes it.

use std::ffi::c_long;

use nix::errno::Errno;

/// Bytes of the message type at the start of a message buffer.
pub const MTYPE_LEN: usize = std::mem::size_of::<c_long>();

/// A queue's status (`struct msqid_ds`), from [`msg_stat`].
pub type MsqidDs = libc::msqid_ds;

/// A new private queue (IPC_PRIVATE, IPC_CREAT | IPC_EXCL) with permissions `mode`
/// (exactly: the umask does not apply to System V IPC). Returns its id.
///
/// # Errors
/// `EINVAL` for a mode over 0o777, or the errno of `msgget`.
pub fn msgget_private(mode: u32) -> nix::Result<i32> {
    if mode & !0o777 != 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: msgget takes two integers and touches no memory of ours.
    let id = unsafe {
        libc::msgget(
            libc::IPC_PRIVATE,
            libc::IPC_CREAT | libc::IPC_EXCL | mode as libc::c_int,
        )
    };
    if id < 0 { Err(Errno::last()) } else { Ok(id) }
}

/// Sends the message in `buf` (type, then text) to queue `id`; with `nowait`
/// (IPC_NOWAIT) `EAGAIN` when the queue is full, else it waits for room (until a
/// signal: `EINTR`, never restarted).
///
/// # Errors
/// `EINVAL` for a buffer shorter than the type, or the errno of `msgsnd`.
pub fn msgsnd(id: i32, buf: &[u8], nowait: bool) -> nix::Result<()> {
    let Some(text) = buf.len().checked_sub(MTYPE_LEN) else {
        return Err(Errno::EINVAL);
    };
    // SAFETY: `buf` holds an mtype (a c_long) followed by `text` bytes, which is what
    // msgsnd reads with msgsz = text; the kernel copies it, with no alignment need.
    let r = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), text, flags(nowait)) };
    if r == 0 { Ok(()) } else { Err(Errno::last()) }
}

fn flags(nowait: bool) -> libc::c_int {
    if nowait { libc::IPC_NOWAIT } else { 0 }
}

/// Receives the first message of type `mtype` from queue `id` into `buf` (type, then
/// at most `buf.len() - MTYPE_LEN` bytes of text); with `nowait` (IPC_NOWAIT) `ENOMSG`
/// when there is none, else it waits for one (until a signal: `EINTR`, never
/// restarted). Returns the length of the text.
///
/// # Errors
/// `EINVAL` for a buffer shorter than the type, `E2BIG` for a longer message (it stays
/// queued), or the errno of `msgrcv`.
pub fn msgrcv(id: i32, buf: &mut [u8], mtype: c_long, nowait: bool) -> nix::Result<usize> {
    let Some(cap) = buf.len().checked_sub(MTYPE_LEN) else {
        return Err(Errno::EINVAL);
    };
    // SAFETY: `buf` has MTYPE_LEN + cap writable bytes: room for the mtype and `cap`
    // bytes of text, which is all msgrcv writes with msgsz = cap.
    let r = unsafe { libc::msgrcv(id, buf.as_mut_ptr().cast(), cap, mtype, flags(nowait)) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as usize)
    }
}

/// The status of queue `id` (IPC_STAT: needs read permission).
///
/// # Errors
/// The errno of `msgctl`.
pub fn msg_stat(id: i32) -> nix::Result<MsqidDs> {
    let mut ds = std::mem::MaybeUninit::<MsqidDs>::zeroed();
    // SAFETY: `ds` is valid, writable memory for a msqid_ds that outlives the call.
    let r = unsafe { libc::msgctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: msqid_ds is plain data, zeroed and then filled by msgctl.
    Ok(unsafe { ds.assume_init() })
}

/// Removes queue `id` (IPC_RMID); a stale id gives `EINVAL`.
///
/// # Errors
/// The errno of `msgctl`.
pub fn msg_remove(id: i32) -> nix::Result<()> {
    // SAFETY: IPC_RMID takes no buffer (a null pointer is allowed); the id is a plain
    // integer.
    let r = unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}
