//! Writing to standard output without panicking when the reader is gone.

/// `print!` to standard output that does not panic when the reader is gone: a closed
/// pipe (`ipc-audit ... | head`) ends the program quietly, as SIGPIPE would; any other
/// write error ends it with status 2 and the error on standard error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($arg)*) {
            $crate::cli::out::stdout_failed(e);
        }
    }};
}

/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            $crate::cli::out::stdout_failed(e);
        }
    }};
}

/// Ends the program after a failed write to standard output.
pub(super) fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        // What a shell reports for a process killed by SIGPIPE.
        std::process::exit(141);
    }
    eprintln!("ipc-audit: write to standard output: {e}");
    std::process::exit(2);
}
