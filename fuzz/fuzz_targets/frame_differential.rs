//! `frame_differential`: A stream of valid, corrupted and forged frames and raw bytes, decoded whole, one
//! byte at a time and in arbitrary chunks: all agree (errors included) with each other
//! and with the reference decoder.
//!
//! The check is `ipc_audit::fuzzing::frame_differential`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

use ipc_audit::fuzzing::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_audit::fuzzing::frame_differential(data));
