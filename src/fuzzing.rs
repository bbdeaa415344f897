//! Checks shared by the fuzz targets in `fuzz/` and the stable test that replays their
//! committed corpus (`tests/fuzz_corpus.rs`), so both run exactly the same code.
//!
//! Not part of the public API: hidden from the docs, may change at any time.
//!
//! Each target is a function `fn(&[u8])` that panics when a property is broken; it is
//! listed in [`TARGETS`] under the name of its fuzz target and its corpus folder
//! (`fuzz/corpus/<name>/`). Adding a target: write the check here (or in the module of
//! the parser it checks, reaching `pub(crate)` items), add one line to [`TARGETS`], one
//! file `fuzz/fuzz_targets/<name>.rs` and one `[[bin]]` entry in `fuzz/Cargo.toml`, and
//! seed `fuzz/corpus/<name>/` and `fuzz/dict/<name>.dict`. The replay test fails until
//! all of these exist.
//!
//! Memory is checked with [`CountingAlloc`]: a binary that installs it as its global
//! allocator lets the checks see every allocation made on the current thread.

use arbitrary::Unstructured;

use crate::frame::{self, Decoder, FrameError, HEADER_LEN, LIMIT_MAX_FRAME, MAGIC, Step, VERSION};

/// A fuzz target: its name (fuzz target, corpus folder, dictionary) and its check.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Name of the fuzz target, its corpus folder and its dictionary.
    pub name: &'static str,
    /// Runs one input; panics when a property is broken.
    pub check: fn(&[u8]),
}

/// Every fuzz target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame_decode",
        check: frame_decode,
    },
    Target {
        name: "frame_chunked_roundtrip",
        check: frame_chunked_roundtrip,
    },
    Target {
        name: "frame_differential",
        check: frame_differential,
    },
    #[cfg(target_os = "linux")]
    Target {
        name: "shm_ring_header",
        check: shm_ring_header,
    },
    #[cfg(target_os = "linux")]
    Target {
        name: "file_log_recovery",
        check: file_log_recovery,
    },
    #[cfg(target_os = "linux")]
    Target {
        name: "signal_chunks",
        check: signal_chunks,
    },
];

/// The check registered under `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|t| t.name == name).map(|t| t.check)
}

// ---------------------------------------------------------------------------------------
// Allocation counting

// The allocator itself (a `GlobalAlloc` impl) is in
// `crate::sys::alloc` beside the process-wide counting allocator.
pub use crate::sys::alloc::{AllocStats, ThreadCountingAlloc as CountingAlloc};

/// True once [`CountingAlloc`] has served an allocation: it is the global allocator.
pub fn alloc_counting() -> bool {
    crate::sys::alloc::thread_counting()
}

/// Starts a new counting window on this thread.
pub fn alloc_reset() {
    crate::sys::alloc::thread_reset()
}

/// What this thread allocated since [`alloc_reset`].
pub fn alloc_stats() -> AllocStats {
    crate::sys::alloc::thread_stats()
}

// ---------------------------------------------------------------------------------------
// A reference decoder

/// A second, deliberately simple decoder of a whole stream, written from the format
/// description without sharing code with [`Decoder`]: the oracle of the fuzz targets.
/// Same contract as [`frame::decode_stream`].
pub fn reference_decode(max: usize, stream: &[u8]) -> Vec<Result<Vec<u8>, FrameError>> {
    reference_events(max, stream)
        .map(|e| e.map(<[u8]>::to_vec))
        .collect()
}

/// [`reference_decode`] without allocating: the payloads are borrowed from `stream`.
pub fn reference_events(
    max: usize,
    stream: &[u8],
) -> impl Iterator<Item = Result<&[u8], FrameError>> {
    let max = max.min(LIMIT_MAX_FRAME);
    let mut rest = Some(stream);
    std::iter::from_fn(move || {
        let r = rest.take()?;
        if r.is_empty() {
            return None;
        }
        if r.len() < HEADER_LEN {
            return Some(Err(FrameError::Truncated {
                got: r.len(),
                needed: HEADER_LEN,
            }));
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&r[..HEADER_LEN]);
        let le = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(w)
        };
        let reason = if header[0..2] != MAGIC {
            Some("wrong magic")
        } else if header[2] != VERSION {
            Some("unknown version")
        } else if header[3] != 0 {
            Some("unknown flags")
        } else if crc32c::crc32c(&header[..12]) != le(12) {
            Some("header checksum mismatch")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Some(Err(FrameError::BadHeader { reason, header }));
        }
        let len = le(4) as usize;
        if len > max {
            return Some(Err(FrameError::TooLarge { len, max }));
        }
        if r.len() - HEADER_LEN < len {
            return Some(Err(FrameError::Truncated {
                got: r.len(),
                needed: HEADER_LEN + len,
            }));
        }
        let payload = &r[HEADER_LEN..HEADER_LEN + len];
        rest = Some(&r[HEADER_LEN + len..]);
        let (expected, actual) = (le(8), crc32c::crc32c(payload));
        Some(if expected == actual {
            Ok(payload)
        } else {
            Err(FrameError::BadChecksum {
                expected,
                actual,
                len,
            })
        })
    })
}

/// Panics unless `e` is consistent with itself and with the decoder's maximum, and its
/// message names the values it carries.
pub fn check_error(e: &FrameError, max: usize) {
    check_error_fields(e, max);
    let msg = e.to_string();
    let has = |v: usize| msg.contains(&v.to_string());
    match *e {
        FrameError::TooLarge { len, max } => assert!(has(len) && has(max), "{msg}"),
        FrameError::BadChecksum { len, .. } => assert!(has(len), "{msg}"),
        FrameError::BadHeader { reason, .. } => assert!(msg.contains(reason), "{msg}"),
        FrameError::Truncated { got, needed } => assert!(has(got) && has(needed), "{msg}"),
    }
}

/// [`check_error`] without the message (it allocates): the fields only.
pub fn check_error_fields(e: &FrameError, max: usize) {
    match *e {
        FrameError::TooLarge { len, max: m } => {
            assert_eq!(m, max, "TooLarge carries the configured maximum");
            assert!(len > max, "TooLarge with len {len} <= max {max}");
        }
        FrameError::BadChecksum {
            expected,
            actual,
            len,
        } => {
            assert_ne!(expected, actual, "BadChecksum with equal checksums");
            assert!(len <= max, "BadChecksum on a frame over the maximum");
        }
        FrameError::BadHeader { reason, .. } => {
            assert!(
                [
                    "wrong magic",
                    "unknown version",
                    "unknown flags",
                    "header checksum mismatch"
                ]
                .contains(&reason),
                "unknown BadHeader reason {reason:?}"
            );
        }
        FrameError::Truncated { got, needed } => {
            assert!(got < needed, "Truncated with {got} of {needed} bytes");
            assert!(needed >= HEADER_LEN);
        }
    }
    assert_eq!(e.is_fatal(), !matches!(e, FrameError::BadChecksum { .. }));
}

/// Panics unless `events` are what `stream` should decode to: the reference decoder's
/// answer, with every error checked by [`check_error`].
pub fn check_events(max: usize, stream: &[u8], events: &[Result<Vec<u8>, FrameError>]) {
    let expected = reference_decode(max, stream);
    assert_eq!(events, &expected[..], "decoder and reference disagree");
    for e in events.iter().filter_map(|e| e.as_ref().err()) {
        check_error(e, max.min(LIMIT_MAX_FRAME));
    }
}

/// A cheap deterministic sequence of chunk sizes (xorshift), from one seed byte.
struct Chunks(u32);

impl Chunks {
    fn next(&mut self, limit: usize) -> usize {
        if self.0 == 0 {
            return limit;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        // 0..=64 bytes, zero-length chunks included.
        (self.0 as usize % 65).min(limit)
    }
}

// ---------------------------------------------------------------------------------------
// Targets

/// A `frame_decode` input: its maximum (two bytes, 0..=8191), chunking seed and stream.
fn frame_decode_input(data: &[u8]) -> (usize, u8, &[u8]) {
    match data {
        [a, b, s, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b]) & 0x1fff), *s, rest),
        _ => (64, 0, data),
    }
}

/// `frame_decode`: arbitrary bytes into the incremental decoder.
///
/// Input: two bytes of maximum (0..=8191), one seed byte for the chunking (0: the whole
/// stream in one call), then the stream. Checks: no panic; `consumed` is within the input
/// and all of it on `NeedMore`; no frame over the maximum delivered; a fatal error
/// repeats and takes nothing more; every error's fields are consistent
/// ([`check_error_fields`]); with [`CountingAlloc`] installed, no single allocation over
/// the maximum and no more than twice the maximum live at once (the decoder's buffer
/// plus `out`). Built to be cheap (nothing but the decoder allocates, no second decoder),
/// so that the fuzzer runs it hundreds of thousands of times a second: agreement with
/// the reference decoder, on structured and raw streams alike, is
/// [`frame_differential`]'s job.
pub fn frame_decode(data: &[u8]) {
    let (max, seed, stream) = frame_decode_input(data);
    let check = |e: &FrameError| check_error_fields(e, max);

    alloc_reset();
    let mut dec = Decoder::new(max);
    let mut out = Vec::new();
    let mut chunks = Chunks(u32::from(seed) * 0x0101_0101);
    let mut rest = stream;
    'feed: while !rest.is_empty() {
        let n = chunks.next(rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        loop {
            let d = dec.decode(chunk, &mut out);
            assert!(d.consumed <= chunk.len(), "consumed past the input");
            chunk = &chunk[d.consumed..];
            match d.step {
                Step::NeedMore => {
                    assert!(chunk.is_empty(), "NeedMore with input left");
                    break;
                }
                Step::Frame => {
                    assert!(out.len() <= max, "frame over the maximum delivered");
                }
                Step::Error(e) => {
                    check(&e);
                    if e.is_fatal() {
                        assert!(dec.is_failed());
                        let again = dec.decode(chunk, &mut out);
                        assert_eq!(again.consumed, 0, "input taken after a fatal error");
                        assert!(dec.finish() == Err(e.clone()), "finish forgot the error");
                        assert_eq!(again.step, Step::Error(e), "fatal error not repeated");
                        break 'feed;
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
        }
    }
    if !dec.is_failed() {
        match dec.finish() {
            Ok(()) => assert!(dec.is_idle()),
            Err(e) => check(&e),
        }
    }
    let st = alloc_stats();
    if alloc_counting() {
        assert!(
            st.largest <= max,
            "an allocation of {} bytes with a maximum of {max}",
            st.largest
        );
        assert!(
            st.peak <= 2 * max as isize,
            "{} bytes live with a maximum of {max}",
            st.peak
        );
    }
}

/// A `frame_decode` input decoded with the same maximum and chunking, then compared with
/// the reference decoder ([`check_events`]). Too slow for the fuzzer's inner loop; the
/// corpus replay (`tests/fuzz_corpus.rs`) runs it on every committed `frame_decode`
/// input, so what the campaigns keep is checked both ways.
pub fn frame_decode_against_reference(data: &[u8]) {
    let (max, seed, stream) = frame_decode_input(data);
    let mut chunks = Chunks(u32::from(seed) * 0x0101_0101);
    let mut cuts = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let n = chunks.next(rest.len());
        cuts.push(&rest[..n]);
        rest = &rest[n..];
    }
    check_events(max, stream, &frame::decode_stream(max, cuts));
}

/// `frame_chunked_roundtrip`: arbitrary messages, encoded, cut into arbitrary chunks,
/// decoded (into a different `out` vector now and then): the messages come back, in
/// order, and nothing else.
pub fn frame_chunked_roundtrip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let max = u.int_in_range(0..=1usize << 17).unwrap_or(0);
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    // At most 64 messages and 512 KiB in all: enough to cross every boundary, small
    // enough for thousands of runs a second.
    while msgs.len() < 64 && total < 512 << 10 && !u.is_empty() {
        let msg = match u.int_in_range(0..=3u8).unwrap_or(0) {
            // A long run of one byte: payloads over 64 KiB from a short input.
            0 => {
                let len = u.int_in_range(0..=max).unwrap_or(0);
                vec![u.arbitrary::<u8>().unwrap_or(0); len]
            }
            // Exactly the maximum.
            1 if max <= 1 << 16 => vec![0xa5; max],
            _ => {
                let bytes: &[u8] = u.arbitrary().unwrap_or_default();
                bytes[..bytes.len().min(max)].to_vec()
            }
        };
        total += msg.len();
        msgs.push(msg);
    }
    let mut wire = Vec::new();
    for m in &msgs {
        frame::encode(m, max, &mut wire).expect("a payload within the maximum encodes");
    }

    let mut cuts = Vec::new();
    let mut pos = 0;
    while pos < wire.len() {
        let n = if u.is_empty() {
            wire.len() - pos
        } else {
            u.int_in_range(0..=wire.len() - pos)
                .unwrap_or(wire.len() - pos)
        };
        cuts.push((pos, pos + n, u.arbitrary::<bool>().unwrap_or(false)));
        pos += n;
    }

    let mut dec = Decoder::new(max);
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    let mut got: Vec<Vec<u8>> = Vec::new();
    for &(from, to, swap) in &cuts {
        let mut chunk = &wire[from..to];
        loop {
            let out = if swap { &mut out_b } else { &mut out_a };
            let d = dec.decode(chunk, out);
            chunk = &chunk[d.consumed..];
            match d.step {
                Step::Frame => got.push(out.clone()),
                Step::NeedMore => break,
                Step::Error(e) => panic!("error on a valid stream: {e}"),
            }
            if chunk.is_empty() {
                break;
            }
        }
    }
    assert_eq!(dec.finish(), Ok(()), "valid stream reported unfinished");
    assert!(got == msgs, "decoded messages differ from the input");

    let events = frame::decode_stream(max, cuts.iter().map(|&(a, b, _)| &wire[a..b]));
    assert!(
        events.len() == msgs.len() && events.iter().zip(&msgs).all(|(e, m)| e.as_ref() == Ok(m)),
        "decode_stream differs from the input"
    );
}

/// `frame_differential`: a stream mixing valid frames, frames with a corrupted byte,
/// headers announcing any length and raw bytes, possibly cut short, decoded whole, one
/// byte at a time and in arbitrary chunks: all three agree with each other and with the
/// reference decoder, errors included.
pub fn frame_differential(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let max = u.int_in_range(0..=4096usize).unwrap_or(0);
    let mut stream = Vec::new();
    let mut segments = 0;
    while segments < 32 && !u.is_empty() {
        segments += 1;
        let kind = u.int_in_range(0..=4u8).unwrap_or(0);
        let bytes: &[u8] = u.arbitrary().unwrap_or_default();
        match kind {
            // A valid frame (over the maximum if the bytes are).
            0 | 1 => {
                let _ = frame::encode(bytes, LIMIT_MAX_FRAME, &mut stream);
            }
            // A frame with one byte changed.
            2 => {
                let at = stream.len();
                let _ = frame::encode(bytes, LIMIT_MAX_FRAME, &mut stream);
                let i = u.int_in_range(at..=stream.len() - 1).unwrap_or(at);
                stream[i] ^= u.int_in_range(1..=255u8).unwrap_or(1);
            }
            // A valid header announcing any length, then whatever follows.
            3 => {
                let len: u32 = u.arbitrary().unwrap_or(0);
                let mut h = [0u8; HEADER_LEN];
                h[0..2].copy_from_slice(&MAGIC);
                h[2] = VERSION;
                h[4..8].copy_from_slice(&len.to_le_bytes());
                h[8..12].copy_from_slice(&u.arbitrary::<u32>().unwrap_or(0).to_le_bytes());
                let hcrc = crc32c::crc32c(&h[..12]);
                h[12..16].copy_from_slice(&hcrc.to_le_bytes());
                stream.extend_from_slice(&h);
            }
            // Raw bytes.
            _ => stream.extend_from_slice(bytes),
        }
    }
    if u.arbitrary::<bool>().unwrap_or(false) {
        let keep = u.int_in_range(0..=stream.len()).unwrap_or(stream.len());
        stream.truncate(keep);
    }

    let whole = frame::decode_stream(max, [&stream[..]]);
    let bytewise = frame::decode_stream(max, stream.chunks(1));
    assert_eq!(whole, bytewise, "whole and one-byte-at-a-time disagree");
    let mut cuts = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let n = u
            .int_in_range(0..=stream.len() - pos)
            .unwrap_or(stream.len() - pos);
        let n = if u.is_empty() { stream.len() - pos } else { n };
        cuts.push(&stream[pos..pos + n]);
        pos += n;
    }
    let chunked = frame::decode_stream(max, cuts);
    assert_eq!(whole, chunked, "whole and chunked disagree");
    check_events(max, &stream, &whole);
}

/// `shm_ring_header`: a hostile peer writes arbitrary values into the shared ring's
/// header fields and data, between arbitrary pushes and pops of the two ends. Neither end
/// may panic or read out of bounds (the Miri and sanitizer builds check that); a pop that
/// succeeds returns at most the maximum message; an error names the bad value.
#[cfg(target_os = "linux")]
pub fn shm_ring_header(data: &[u8]) {
    use std::sync::Arc;

    use crate::shm::ring::Ring;
    use crate::shm::sem::CondvarFutex;

    const FIELDS: [&str; 8] = [
        "record",
        "tail",
        "capacity",
        "max",
        "magic",
        "version",
        "producer_pid",
        "consumer_pid",
    ];
    let mut u = Unstructured::new(data);
    let cap = 64usize << u.int_in_range(0..=3u8).unwrap_or(0);
    let max = u.int_in_range(0..=(cap - 16) as u32).unwrap_or(16) as usize;
    let Ok(ring) = Ring::heap(cap, max, Arc::new(CondvarFutex::new())) else {
        return;
    };
    let (mut tx, mut rx) = ring.split();
    let mut out = Vec::new();
    let payload = [0xa5u8; 1024];
    // Unstructured gives defaults once the data is used up: stop there.
    while !u.is_empty() {
        let op = u.int_in_range(0..=4u8).unwrap_or(4);
        match op {
            0 => {
                let f = FIELDS[u.int_in_range(0..=7usize).unwrap_or(0)];
                let v = u.arbitrary::<u64>().unwrap_or(0);
                rx.poke(f, v);
            }
            1 => {
                let at = u.arbitrary::<u64>().unwrap_or(0);
                let n = u.int_in_range(0..=16usize).unwrap_or(0);
                let bytes = u.bytes(n).unwrap_or(&[]);
                rx.poke_data_split(&mut tx, at, bytes);
            }
            2 => {
                let n = u.int_in_range(0..=max.min(payload.len())).unwrap_or(0);
                let _ = tx.try_push(&payload[..n]);
            }
            _ => match rx.try_pop(&mut out) {
                Ok(Some(n)) => assert!(
                    n <= max && out.len() == n,
                    "popped {n} bytes (out {}) over the maximum {max}",
                    out.len()
                ),
                Ok(None) => {}
                Err(e) => assert!(!e.to_string().is_empty()),
            },
        }
    }
}

/// `signal_chunks`: arbitrary signals (`si_code`, 64-bit `sival_ptr`, sender) into the
/// signal transport's chunk decoder and reassembler: no panic; a delivered message is at
/// most the maximum; once locked on a sender, chunks from another are refused.
///
/// Per signal the input holds its word (8 bytes, little-endian), 24 bits of code (4
/// bytes, little-endian; bits 31-24 become the transport's mark), and two flags (one
/// byte each, true when 0 mod 16): the code is the 4 bytes as they are (mostly not a
/// chunk), and the signal comes from a second sender.
#[cfg(target_os = "linux")]
pub fn signal_chunks(data: &[u8]) {
    use crate::transport::signal::{CODE_MARK, Reassembler, decode_chunk};

    let mut u = Unstructured::new(data);
    let max = u.int_in_range(0..=300usize).unwrap_or(64);
    let mut r = Reassembler::new(max);
    // Unstructured gives defaults once the data is used up: stop there.
    while !u.is_empty() {
        let value = u.arbitrary::<u64>().unwrap_or(0);
        let bits = u.arbitrary::<u32>().unwrap_or(0);
        let code = if u.ratio(1u8, 16).unwrap_or(false) {
            bits as i32
        } else {
            ((CODE_MARK << 24) | (bits & 0x00ff_ffff)) as i32
        };
        let _ = decode_chunk(code, value);
        let (pid, uid) = if u.ratio(1u8, 16).unwrap_or(false) {
            (4242, 1000)
        } else {
            (100, 0)
        };
        let locked = r.sender();
        let pushed = r.push(code, value, pid, uid).ok().flatten();
        for msg in pushed.into_iter().chain(r.take_ready()) {
            assert!(
                msg.len() <= max,
                "message of {} bytes over the maximum {max}",
                msg.len()
            );
            assert!(
                locked.is_none_or(|s| s == (pid, uid)),
                "accepted a chunk from another sender"
            );
        }
    }
}

/// `file_log_recovery`: a log file left by a writer that died (whole frames, torn
/// frames, garbage, flipped bytes, in any order), read back by the file transport's
/// reader with an arbitrary read-buffer size. The reader never panics, delivers exactly
/// what the reference decoder finds in the bytes, up to the first fatal error, reports
/// a torn tail as an error (never as a message, never as a clean close), and ends.
#[cfg(target_os = "linux")]
pub fn file_log_recovery(data: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};

    use crate::transport::file::FileReader;

    let mut u = Unstructured::new(data);
    let max = u.int_in_range(0..=256usize).unwrap_or(64);
    let read_buf = u.int_in_range(1..=64usize).unwrap_or(16);
    let log = damaged_log(&mut u, max);
    let Ok(fd) = crate::sys::mem::memfd("ipc-audit-fuzz-log", false) else {
        return;
    };
    let mut file = std::fs::File::from(fd);
    if file.write_all(&log).is_err() || file.seek(SeekFrom::Start(0)).is_err() {
        return;
    }
    let Ok(mut reader) = FileReader::over_closed_log(file.into(), max, read_buf) else {
        return;
    };
    let (events, closed) = read_closed_log(&mut reader, max, log.len());
    let fatal_end = matches!(events.last(), Some(Err(e)) if e.is_fatal());
    assert!(
        closed || fatal_end,
        "the reader neither closed nor stopped: {events:?}"
    );
    check_events(max, &log, &events);
}

/// The log a writer that died may leave, from `u`: whole frames of payloads up to `max`
/// bytes, torn frames, frames with a byte changed, raw bytes, up to about 4 KiB.
#[cfg(target_os = "linux")]
fn damaged_log(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let mut log = Vec::new();
    let mut frame = Vec::new();
    // Unstructured gives defaults once the data is used up: stop there.
    while !u.is_empty() && log.len() < 4096 {
        let op = u.int_in_range(0..=3u8).unwrap_or(0);
        let n = u.int_in_range(0..=max.min(80)).unwrap_or(0);
        let msg = u.bytes(n).unwrap_or(&[]);
        frame.clear();
        if frame::encode(msg, max, &mut frame).is_err() {
            continue;
        }
        match op {
            // A whole frame.
            0 => log.extend_from_slice(&frame),
            // A torn frame: the writer died mid-write.
            1 => {
                let keep = u.int_in_range(0..=frame.len()).unwrap_or(0);
                log.extend_from_slice(&frame[..keep]);
            }
            // A frame with one byte changed on disk.
            2 => {
                let at = u.int_in_range(0..=frame.len() - 1).unwrap_or(0);
                frame[at] ^= u.int_in_range(1..=255u8).unwrap_or(1);
                log.extend_from_slice(&frame);
            }
            // Bytes that are no frame at all (the message's bytes, raw).
            _ => log.extend_from_slice(msg),
        }
    }
    log
}

/// Receives from `reader` (over a closed log of `log_len` bytes) until it reports the
/// end or a fatal error. Returns what it delivered, in order, and whether it ended with
/// a clean close. Panics on an error a closed log cannot cause.
#[cfg(target_os = "linux")]
fn read_closed_log(
    reader: &mut crate::transport::file::FileReader,
    max: usize,
    log_len: usize,
) -> (Vec<Result<Vec<u8>, FrameError>>, bool) {
    use crate::error::Error;
    use crate::transport::Endpoint;

    let mut events: Vec<Result<Vec<u8>, FrameError>> = Vec::new();
    let mut buf = Vec::new();
    // Each step consumes at least one byte or ends: the log's length bounds the loop.
    for _ in 0..=log_len + 1 {
        match reader.recv(&mut buf) {
            Ok(n) => {
                assert!(
                    n <= max && n == buf.len(),
                    "delivered {n} bytes (max {max})"
                );
                events.push(Ok(buf.clone()));
            }
            Err(Error::Closed { .. }) => return (events, true),
            Err(Error::Frame(e)) => {
                let fatal = e.is_fatal();
                events.push(Err(e));
                if fatal {
                    break;
                }
            }
            Err(Error::TooLarge { len, max }) => {
                events.push(Err(FrameError::TooLarge { len, max }));
                break;
            }
            Err(e) => panic!("the reader of a closed log failed with {e}"),
        }
    }
    (events, false)
}
