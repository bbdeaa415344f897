//! The `ipc-audit` command line ([`ipc_audit::cli::main`]).

use std::process::ExitCode;

/// Counts heap allocations, for the allocations-per-message figures (the peer is this
/// same binary, so both sides count).
#[global_allocator]
static ALLOC: ipc_audit::measure::alloc::CountingAlloc = ipc_audit::measure::alloc::CountingAlloc;

fn main() -> ExitCode {
    ipc_audit::run_if_peer(ipc_audit::transport::by_name);
    ipc_audit::cli::main()
}
