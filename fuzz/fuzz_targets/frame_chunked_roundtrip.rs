//! `frame_chunked_roundtrip`: Structure-aware: arbitrary messages, encoded, cut into arbitrary chunks, decoded:
//! the messages come back in order and nothing else.
//!
//! The check is `ipc_audit::fuzzing::frame_chunked_roundtrip`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use ipc_audit::fuzzing::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_audit::fuzzing::frame_chunked_roundtrip(data));
