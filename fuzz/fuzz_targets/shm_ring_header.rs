//! `shm_ring_header`: see `ipc_audit::fuzzing::shm_ring_header`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_audit::fuzzing::shm_ring_header(data));
