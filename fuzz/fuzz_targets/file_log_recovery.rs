//! `file_log_recovery`: see `ipc_audit::fuzzing::file_log_recovery`, shared with `tests/fuzz_corpus.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ipc_audit::fuzzing::file_log_recovery(data));
