//! The crate's error type, written by hand.
//!
//! Every variant carries the offending value where there is one, so that a message read
//! in a CI log is enough to know what went wrong.

use std::fmt;
use std::io;
use std::time::Duration;

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
    /// The operation is not available for this transport or on this platform.
    Unsupported(String),
    /// The peer process failed: it could not start, exited early or reported an error.
    Peer(String),
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

    /// The raw OS error number, if this error came from a system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
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
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Peer(m) => write!(f, "peer process: {m}"),
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
