//! `frame_decode`: Arbitrary bytes into the incremental frame decoder (2 bytes of maximum, 1 byte of
//! chunking seed, then the stream): no panic, no frame over the maximum, no
//! allocation over the maximum, every error consistent.
//!
//! The check is `ipc_audit::fuzzing::frame_decode`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use ipc_audit::fuzzing::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_audit::fuzzing::frame_decode(data));
