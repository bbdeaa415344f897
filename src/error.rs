//! The crate's error type, written by hand.
//!
//! Every variant carries the offending value where there is one, so that a message read
//! in a CI log is enough to know what went wrong.

use std::fmt;
use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::frame::FrameError;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a transport, the audit or the measurements.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed; `op` says which operation, with the object it acted on.
    Io {
        /// What was being done, e.g. `"connect /tmp/x/sock"`.
        op: String,
        /// The error the kernel gave.
        source: io::Error,
    },
    /// The frame codec rejected the byte stream.
    Frame(FrameError),
    /// A message is larger than the transport's declared maximum.
    TooLarge {
        /// Size of the offending message in bytes.
        len: usize,
        /// The maximum in bytes.
        max: usize,
    },
    /// A datagram did not fit the receive buffer and the kernel cut it.
    Truncated {
        /// Size of the buffer that was offered.
        buf: usize,
        /// Real size of the message, when the kernel tells it.
        len: Option<usize>,
    },
    /// A wait ran past its deadline.
    Timeout {
        /// What was being waited for.
        op: String,
        /// How long was waited.
        after: Duration,
    },
    /// The peer closed its end (EOF, EPIPE, ECONNRESET).
    Closed {
        /// What was being done when the closure was seen.
        op: String,
    },
    /// A nonblocking operation would have blocked (full queue, empty queue).
    WouldBlock {
        /// What would have blocked.
        op: String,
    },
    /// A configuration value or an argument is invalid.
    Invalid {
        /// The rule that was broken, e.g. `"queue name must not contain '/'"`.
        what: String,
        /// The offending value, as given.
        value: String,
    },
    /// Bytes from the peer (a control message, a shared header) break the protocol.
    Protocol(String),
    /// A value from the peer that no honest peer sends, named as data: a field of a
    /// shared header, or the sender of a signal on a link that has another.
    Corrupt {
        /// Which value, e.g. `"shm: record header"` or `"signal: sender pid"`.
        field: &'static str,
        /// The value found.
        value: u64,
        /// What was expected instead and what was done, for people.
        detail: String,
    },
    /// The operation is not available for this transport or on this platform.
    Unsupported(String),
    /// The peer process failed: it could not start, exited early or broke the protocol.
    Peer(String),
    /// The peer process reported an error of its own, as data: `what` it was doing, as
    /// the harness saw it, and the error with its kind and errno.
    Remote {
        /// What the peer was asked to do, e.g. `"pipe / death: peer could not attach"`.
        what: String,
        /// The peer's error.
        report: ErrorReport,
    },
}

/// What kind of error an [`Error`] is: its variant, without the data. Verdicts decide on
/// this and on the errno, never on an error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Io`].
    Io,
    /// [`Error::Frame`].
    Frame,
    /// [`Error::TooLarge`].
    TooLarge,
    /// [`Error::Truncated`].
    Truncated,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Closed`].
    Closed,
    /// [`Error::WouldBlock`].
    WouldBlock,
    /// [`Error::Invalid`].
    Invalid,
    /// [`Error::Protocol`].
    Protocol,
    /// [`Error::Corrupt`].
    Corrupt,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::Peer`] (or an [`Error::Remote`] passed on: its report's kind is kept).
    Peer,
}

/// An error as data, for the control channel between the peer and the harness: its
/// kind, the errno when a system call gave one, the size limit of a
/// [`TooLarge`](Error::TooLarge), and the message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// The error's variant.
    pub kind: ErrorKind,
    /// The OS error number, if a system call failed.
    #[serde(default)]
    pub errno: Option<i32>,
    /// For [`ErrorKind::TooLarge`]: the maximum the message exceeded.
    #[serde(default)]
    pub max: Option<usize>,
    /// The error's text ([`Display`](fmt::Display)), for people only.
    pub message: String,
}

impl ErrorReport {
    /// The report of a failed system call: the kind [`Error::sys`] gives `errno`, with
    /// the errno kept even where that kind has none (EAGAIN, EPIPE).
    /// Its message names the errno as nix does (`EPERM: Operation not permitted`).
    pub fn from_errno(op: impl Into<String>, errno: nix::errno::Errno) -> Self {
        let op = op.into();
        ErrorReport {
            errno: Some(errno as i32),
            message: format!("{op}: {errno}"),
            ..Error::sys(op, errno).report()
        }
    }

    /// Whether the kernel refused for lack of permission (EACCES or EPERM).
    pub fn is_permission_denied(&self) -> bool {
        use nix::errno::Errno;
        self.errno == Some(Errno::EACCES as i32) || self.errno == Some(Errno::EPERM as i32)
    }
}

impl fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        if let Error::Remote { report, .. } = e {
            return ErrorReport {
                message: e.to_string(),
                ..report.clone()
            };
        }
        ErrorReport {
            kind: e.kind(),
            errno: e.raw_os_error(),
            max: match e {
                Error::TooLarge { max, .. } => Some(*max),
                _ => None,
            },
            message: e.to_string(),
        }
    }
}

impl From<Error> for ErrorReport {
    fn from(e: Error) -> Self {
        ErrorReport::from(&e)
    }
}

impl Error {
    /// An [`Error::Io`] from `errno` with the operation named.
    pub fn io(op: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source,
        }
    }

    /// An [`Error::Io`] (or [`Error::Closed`] / [`Error::WouldBlock`] for the errors that
    /// mean just that) from a `nix` errno.
    pub fn sys(op: impl Into<String>, errno: nix::errno::Errno) -> Self {
        use nix::errno::Errno;
        let op = op.into();
        match errno {
            Errno::EPIPE | Errno::ECONNRESET => Error::Closed { op },
            Errno::EAGAIN => Error::WouldBlock { op },
            e => Error::Io {
                op,
                source: io::Error::from_raw_os_error(e as i32),
            },
        }
    }

    /// In nonblocking mode, a wait cut short by its deadline of now (an
    /// [`Error::Timeout`]) means the operation would have blocked: [`Error::WouldBlock`],
    /// naming the same operation. Any other error, or any error in blocking mode, is
    /// returned as it is.
    pub(crate) fn would_block_if(self, nonblocking: bool) -> Self {
        match self {
            Error::Timeout { op, .. } if nonblocking => Error::WouldBlock { op },
            e => e,
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, value: impl fmt::Display) -> Self {
        Error::Invalid {
            what: what.into(),
            value: value.to_string(),
        }
    }

    /// The raw OS error number, if this error came from a system call (here or, for
    /// an [`Error::Remote`], in the peer).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            Error::Remote { report, .. } => report.errno,
            _ => None,
        }
    }

    /// The error's kind; an [`Error::Remote`] has its report's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Frame(_) => ErrorKind::Frame,
            Error::TooLarge { .. } => ErrorKind::TooLarge,
            Error::Truncated { .. } => ErrorKind::Truncated,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::WouldBlock { .. } => ErrorKind::WouldBlock,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Protocol(_) => ErrorKind::Protocol,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Peer(_) => ErrorKind::Peer,
            Error::Remote { report, .. } => report.kind,
        }
    }

    /// This error as data ([`ErrorReport`]).
    pub fn report(&self) -> ErrorReport {
        ErrorReport::from(self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, source } => write!(f, "{op}: {source}"),
            Error::Frame(e) => write!(f, "frame: {e}"),
            Error::TooLarge { len, max } => write!(
                f,
                "message of {len} bytes exceeds the maximum of {max} bytes"
            ),
            Error::Truncated {
                buf,
                len: Some(len),
            } => write!(
                f,
                "message of {len} bytes truncated to the {buf}-byte receive buffer"
            ),
            Error::Truncated { buf, len: None } => {
                write!(f, "message truncated to the {buf}-byte receive buffer")
            }
            Error::Timeout { op, after } => write!(f, "{op}: timed out after {after:?}"),
            Error::Closed { op } => write!(f, "{op}: peer closed the connection"),
            Error::WouldBlock { op } => write!(f, "{op}: would block"),
            Error::Invalid { what, value } => write!(f, "invalid value {value:?}: {what}"),
            Error::Protocol(m) => write!(f, "protocol violation: {m}"),
            Error::Corrupt {
                field,
                value,
                detail,
            } => write!(f, "corrupt {field} {value} ({value:#x}): {detail}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Peer(m) => write!(f, "peer process: {m}"),
            Error::Remote { what, report } => write!(f, "{what}: {report}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Frame(e) => Some(e),
            _ => None,
        }
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => Error::TooLarge { len, max },
            e => Error::Frame(e),
        }
    }
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io {
            op: "I/O".into(),
            source,
        }
    }
}
