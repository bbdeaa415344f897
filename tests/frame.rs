//! Properties of the frame codec (`src/frame.rs`).
//!
//! Case counts: `PROPTEST_CASES` (default 256; payloads stay small so that the default
//! runs in seconds in a debug build).

use ipc_audit::frame::{
    Decoder, FrameError, HEADER_LEN, LIMIT_MAX_FRAME, MAGIC, Step, VERSION, decode_stream, encode,
    header,
};
use ipc_audit::fuzzing;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Payload sizes that matter: empty, one byte, around the header size, around 4 KiB,
/// and a few up to 70 KiB (over the 64 KiB pipe capacity).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        4 => 0usize..64,
        2 => 4090usize..4100,
        1 => 65530usize..70_000,
    ];
    (len, any::<u8>()).prop_flat_map(|(len, seed)| {
        // Big payloads are patterned, small ones fully random (cheaper to generate).
        if len > 4096 {
            Just((0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect()).boxed()
        } else {
            proptest::collection::vec(any::<u8>(), len).boxed()
        }
    })
}

fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(payload(), 0..8)
}

fn wire(msgs: &[Vec<u8>], max: usize) -> Vec<u8> {
    let mut w = Vec::new();
    for m in msgs {
        encode(m, max, &mut w).unwrap();
    }
    w
}

/// Cuts `data` at the given points (any values; reduced modulo the length, sorted).
fn cut<'a>(data: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut ps: Vec<usize> = points.iter().map(|p| p % (data.len() + 1)).collect();
    ps.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for p in ps {
        chunks.push(&data[from..p]);
        from = p;
    }
    chunks.push(&data[from..]);
    chunks
}

/// 1 (one byte at a time) for streams up to 16 KiB, 61 above (keeps debug runs short).
fn small_step(s: &[u8]) -> usize {
    if s.len() <= 16 << 10 { 1 } else { 61 }
}

/// A header with a valid checksum that announces `len` bytes.
fn raw_header(len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[4..8].copy_from_slice(&len.to_le_bytes());
    let c = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&c.to_le_bytes());
    h
}

/// A stream that is not only valid frames: frames, corrupted frames, garbage, cut short.
fn messy_stream() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let seg = prop_oneof![
        3 => payload().prop_map(|p| wire(&[p], LIMIT_MAX_FRAME)),
        1 => (payload(), any::<prop::sample::Index>(), 1u8..).prop_map(|(p, i, x)| {
            let mut w = wire(&[p], LIMIT_MAX_FRAME);
            let at = i.index(w.len());
            w[at] ^= x;
            w
        }),
        1 => any::<u32>().prop_map(|l| raw_header(l).to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ];
    (
        prop_oneof![Just(0usize), 1usize..100, Just(70_000usize)],
        proptest::collection::vec(seg, 0..6),
        any::<Option<prop::sample::Index>>(),
    )
        .prop_map(|(max, segs, cut)| {
            let mut s = segs.concat();
            if let Some(c) = cut {
                s.truncate(c.index(s.len() + 1));
            }
            (max, s)
        })
}

proptest! {
    #![proptest_config(config())]

    /// Encode then decode gives the input back, whole and one byte at a time.
    #[test]
    fn roundtrip(msgs in payloads()) {
        let w = wire(&msgs, 1 << 20);
        let want: Vec<Result<Vec<u8>, FrameError>> = msgs.iter().cloned().map(Ok).collect();
        prop_assert_eq!(&decode_stream(1 << 20, [&w[..]]), &want);
        // One byte at a time costs a call per byte in a debug build: do it on streams
        // up to 16 KiB (most cases), in 61-byte pieces above.
        prop_assert_eq!(&decode_stream(1 << 20, w.chunks(small_step(&w))), &want);
    }

    /// Decoding a stream cut at arbitrary points gives the same frames and errors as
    /// decoding it whole, and as the independent reference decoder.
    #[test]
    fn chunking_does_not_matter(
        (max, s) in messy_stream(),
        points in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = decode_stream(max, [&s[..]]);
        prop_assert_eq!(&decode_stream(max, cut(&s, &points)), &whole);
        prop_assert_eq!(&decode_stream(max, s.chunks(small_step(&s))), &whole);
        prop_assert_eq!(&whole, &fuzzing::reference_decode(max, &s));
        for e in whole.iter().filter_map(|e| e.as_ref().err()) {
            fuzzing::check_error(e, max);
        }
    }

    /// Changing any one byte of a valid stream never delivers a wrong frame: the frames
    /// before it arrive, the changed frame is an error, and after a payload error (the
    /// header is intact) the frames after it arrive too.
    #[test]
    fn corruption_is_never_delivered(
        msgs in proptest::collection::vec(payload(), 1..5),
        at in any::<prop::sample::Index>(),
        x in 1u8..,
        points in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut w = wire(&msgs, 1 << 20);
        let i = at.index(w.len());
        w[i] ^= x;
        let mut start = 0;
        let (k, in_header) = msgs
            .iter()
            .enumerate()
            .find_map(|(k, m)| {
                let end = start + HEADER_LEN + m.len();
                let hit = (i < end).then_some((k, i < start + HEADER_LEN));
                start = end;
                hit
            })
            .unwrap();
        let got = decode_stream(1 << 20, cut(&w, &points));
        for (j, m) in msgs[..k].iter().enumerate() {
            prop_assert_eq!(got[j].as_ref(), Ok(m));
        }
        if in_header {
            prop_assert_eq!(got.len(), k + 1);
            prop_assert!(
                matches!(got[k], Err(FrameError::BadHeader { .. })),
                "header corruption gave {:?}", got[k]
            );
        } else {
            prop_assert!(matches!(got[k], Err(FrameError::BadChecksum { .. })), "payload corruption gave {:?}", got[k]);
            prop_assert_eq!(got.len(), msgs.len());
            for (j, m) in msgs.iter().enumerate().skip(k + 1) {
                prop_assert_eq!(got[j].as_ref(), Ok(m));
            }
        }
    }

    /// A header announcing more than the maximum is refused with both numbers in the
    /// message, as soon as the header is complete, before any allocation.
    #[test]
    fn too_large_is_refused_before_allocation(
        max in 0usize..1 << 20,
        extra in prop_oneof![Just(1u64), 2u64..64, 64u64..1 << 32],
    ) {
        let len = (max as u64 + extra).min(u32::MAX as u64) as u32;
        prop_assume!(len as usize > max);
        let h = raw_header(len);
        let mut dec = Decoder::new(max);
        let mut out = Vec::new();
        let d = dec.decode(&h[..HEADER_LEN - 1], &mut out);
        prop_assert_eq!(d, ipc_audit::frame::Decoded { consumed: 15, step: Step::NeedMore });
        let d = dec.decode(&h[HEADER_LEN - 1..], &mut out);
        prop_assert_eq!(d.consumed, 1);
        let want = FrameError::TooLarge { len: len as usize, max };
        prop_assert_eq!(&d.step, &Step::Error(want.clone()));
        let msg = want.to_string();
        prop_assert!(msg.contains(&len.to_string()) && msg.contains(&max.to_string()), "{}", msg);
        prop_assert_eq!(out.capacity(), 0);
        prop_assert!(dec.is_failed());
        prop_assert_eq!(dec.finish(), Err(want));
        // The encoder refuses it too, and appends nothing.
        if max < 1 << 16 {
            let mut w = vec![1, 2, 3];
            let big = vec![0u8; max + 1];
            prop_assert_eq!(
                encode(&big, max, &mut w),
                Err(FrameError::TooLarge { len: max + 1, max })
            );
            prop_assert_eq!(w, vec![1, 2, 3]);
            prop_assert!(header(&big, max).is_err());
        }
    }

    /// Input that stops inside a frame ends in `Truncated` with the right counts, after
    /// the frames that were complete.
    #[test]
    fn truncated_input_ends_in_truncated(
        msgs in proptest::collection::vec(payload(), 1..5),
        at in any::<prop::sample::Index>(),
    ) {
        let w = wire(&msgs, 1 << 20);
        let keep = at.index(w.len());
        let mut start = 0;
        let mut complete = 0;
        let mut partial = None;
        for m in &msgs {
            let end = start + HEADER_LEN + m.len();
            if end <= keep {
                complete += 1;
            } else if partial.is_none() && start < keep {
                let needed = if keep - start < HEADER_LEN { HEADER_LEN } else { HEADER_LEN + m.len() };
                partial = Some(FrameError::Truncated { got: keep - start, needed });
            }
            start = end;
        }
        let got = decode_stream(1 << 20, w[..keep].chunks(7));
        for (j, m) in msgs[..complete].iter().enumerate() {
            prop_assert_eq!(got[j].as_ref(), Ok(m));
        }
        match partial {
            Some(t) => {
                prop_assert_eq!(got.len(), complete + 1);
                prop_assert_eq!(got[complete].as_ref(), Err(&t));
            }
            None => prop_assert_eq!(got.len(), complete),
        }
    }
}

/// `out` is written only when a frame is complete, so a caller may hand a different
/// vector to every call (a receive that timed out mid-frame and is retried with a fresh
/// buffer) and still gets the whole payload.
#[test]
fn out_may_change_between_calls() {
    let msg: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let w = wire(std::slice::from_ref(&msg), 1 << 20);
    let mut dec = Decoder::new(1 << 20);
    let mut frames = Vec::new();
    for chunk in w.chunks(1000) {
        let mut out = vec![0xee; 3];
        let d = dec.decode(chunk, &mut out);
        assert_eq!(d.consumed, chunk.len());
        match d.step {
            Step::Frame => frames.push(out),
            Step::NeedMore => assert_eq!(out, vec![0xee; 3], "out touched mid-frame"),
            Step::Error(e) => panic!("{e}"),
        }
    }
    assert_eq!(frames, vec![msg]);
}

/// The boundary, for every maximum up to 300 and a few large ones: a payload of exactly
/// the maximum passes (encoder and decoder), one byte more is refused by both.
#[test]
fn the_maximum_is_inclusive() {
    let maxes = (0..=300).chain([4095, 4096, 65535, 65536]);
    for max in maxes {
        let ok = vec![0x42; max];
        let mut w = Vec::new();
        encode(&ok, max, &mut w).unwrap();
        assert_eq!(decode_stream(max, [&w[..]]), vec![Ok(ok)], "max {max}");
        let over = vec![0x42; max + 1];
        assert_eq!(
            encode(&over, max, &mut Vec::new()),
            Err(FrameError::TooLarge { len: max + 1, max })
        );
        let mut w = Vec::new();
        encode(&over, LIMIT_MAX_FRAME, &mut w).unwrap();
        assert_eq!(
            decode_stream(max, [&w[..]]),
            vec![Err(FrameError::TooLarge { len: max + 1, max })],
            "max {max}"
        );
    }
}

/// The errors' messages name their values.
#[test]
fn error_messages_name_values() {
    let e = FrameError::TooLarge {
        len: 17_000_000,
        max: 16_777_216,
    };
    assert_eq!(
        e.to_string(),
        "frame of 17000000 bytes exceeds the maximum of 16777216 bytes"
    );
    let e = FrameError::Truncated {
        got: 20,
        needed: 116,
    };
    assert!(e.to_string().contains("20 of 116"));
}
