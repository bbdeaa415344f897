//! `signal_chunks`: see `ipc_audit::fuzzing::signal_chunks`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_audit::fuzzing::signal_chunks(data));
