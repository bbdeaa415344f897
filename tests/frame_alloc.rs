//! Allocations of the frame decoder, counted by a global allocator in this test binary
//! of its own (counts are per thread, so the tests may run in parallel).

use ipc_audit::frame::{Decoder, FrameError, HEADER_LEN, MAGIC, Step, VERSION, encode};
use ipc_audit::fuzzing::{CountingAlloc, alloc_counting, alloc_reset, alloc_stats};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn stream(sizes: &[usize]) -> Vec<u8> {
    let mut w = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let p: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
        encode(&p, 1 << 20, &mut w).unwrap();
    }
    w
}

/// Feeds `w` to `dec` in `chunk`-byte pieces, calling `f` on each frame.
fn feed(
    dec: &mut Decoder,
    w: &[u8],
    chunk: usize,
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut Vec<u8>),
) {
    for mut c in w.chunks(chunk) {
        while !c.is_empty() {
            let d = dec.decode(c, out);
            c = &c[d.consumed..];
            match d.step {
                Step::Frame => f(out),
                Step::NeedMore => {}
                Step::Error(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn the_counting_allocator_is_installed() {
    let v = std::hint::black_box(vec![1u8; 10]);
    drop(v);
    assert!(alloc_counting());
}

/// Reusing `out`, a steady stream of frames allocates nothing once the two buffers (the
/// decoder's and `out`) have grown to the largest payload: whole frames per call, 4 KiB
/// reads, one byte at a time.
#[test]
fn steady_state_allocates_nothing() {
    let sizes: Vec<usize> = (0..64)
        .map(|i| [65536, 0, 1, 4097, 65536, 300][i % 6])
        .collect();
    let w = stream(&sizes);
    for chunk in [w.len(), 65536 + HEADER_LEN, 4096, 1] {
        let mut dec = Decoder::new(1 << 20);
        let mut out = Vec::new();
        // Warm-up: one pass over the same stream grows both buffers.
        feed(&mut dec, &w, chunk, &mut out, |_| {});
        alloc_reset();
        let mut n = 0;
        feed(&mut dec, &w, chunk, &mut out, |_| n += 1);
        let st = alloc_stats();
        assert_eq!(n, sizes.len());
        assert_eq!(st.count, 0, "chunk {chunk}: {st:?}");
    }
}

/// A caller that keeps every payload (takes `out`) pays one allocation per frame, of
/// exactly the payload's size, when a frame arrives in one piece; nothing else.
#[test]
fn one_allocation_per_kept_payload() {
    let sizes = [65536usize, 10, 4097, 1, 65536];
    let w = stream(&sizes);
    let mut dec = Decoder::new(1 << 20);
    let mut out = Vec::new();
    let mut kept = Vec::with_capacity(sizes.len());
    alloc_reset();
    feed(&mut dec, &w, w.len(), &mut out, |o| {
        kept.push(std::mem::take(o))
    });
    let st = alloc_stats();
    assert_eq!(kept.len(), sizes.len());
    assert_eq!(st.count, sizes.len(), "{st:?}");
    assert_eq!(st.bytes, sizes.iter().sum::<usize>(), "{st:?}");
}

/// Nothing is allocated by `new`, by a header, or by an oversize header.
#[test]
fn headers_allocate_nothing() {
    let w = stream(&[500]);
    alloc_reset();
    let mut dec = Decoder::new(1000);
    let mut out = Vec::new();
    assert_eq!(dec.decode(&w[..HEADER_LEN], &mut out).step, Step::NeedMore);
    assert_eq!(alloc_stats().count, 0);

    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[4..8].copy_from_slice(&1001u32.to_le_bytes());
    let c = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&c.to_le_bytes());
    let mut dec = Decoder::new(1000);
    let d = dec.decode(&h, &mut out);
    assert_eq!(
        d.step,
        Step::Error(FrameError::TooLarge {
            len: 1001,
            max: 1000
        })
    );
    assert_eq!(alloc_stats().count, 0);
    assert_eq!(out.capacity(), 0);
}

/// A header that announces 8 MiB and then stalls costs memory for the bytes that came,
/// not for the 8 MiB; as they come, the buffer at most doubles and never passes the
/// announced length.
#[test]
fn memory_follows_the_bytes_received() {
    let len = 8 << 20;
    let payload = vec![7u8; len];
    let mut w = Vec::new();
    encode(&payload, 16 << 20, &mut w).unwrap();
    let mut dec = Decoder::new(16 << 20);
    let mut out = Vec::new();
    alloc_reset();
    assert_eq!(
        dec.decode(&w[..HEADER_LEN + 100], &mut out).step,
        Step::NeedMore
    );
    let st = alloc_stats();
    assert!(st.peak <= 100, "{st:?}");
    let mut fed = HEADER_LEN + 100;
    for c in w[fed..].chunks(1 << 16) {
        let d = dec.decode(c, &mut out);
        fed += d.consumed;
        let st = alloc_stats();
        assert!(st.largest <= len, "{st:?}");
        assert!(
            st.peak as usize <= 2 * (fed - HEADER_LEN),
            "{st:?} after {fed} bytes"
        );
    }
    assert_eq!(out, payload);
}

/// Regression (review of the first decoder): `out.reserve(len)` on a reused `out` grows
/// it to twice its old capacity when that is larger than `len`, which could pass the
/// maximum (a 4000-byte frame, then a 6000-byte one, with a maximum of 7000, allocated
/// 8000 bytes). No single allocation may pass the maximum.
#[test]
fn no_allocation_over_the_maximum_when_out_is_reused() {
    let w = stream(&[4000, 6000, 6999]);
    for chunk in [w.len(), 1000, 1] {
        let mut dec = Decoder::new(7000);
        let mut out = Vec::new();
        alloc_reset();
        let mut n = 0;
        feed(&mut dec, &w, chunk, &mut out, |_| n += 1);
        let st = alloc_stats();
        assert_eq!(n, 3);
        assert!(st.largest <= 7000, "chunk {chunk}: {st:?}");
    }
}
