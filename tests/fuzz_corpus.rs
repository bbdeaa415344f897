//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same
//! checks the fuzz targets run (`ipc_audit::fuzzing`), on stable, with the counting
//! allocator installed as in the fuzz binaries. Also checks that every target has its
//! fuzz binary, `[[bin]]` entry, corpus and dictionary.
//!
//! `cargo test --test fuzz_corpus -- --ignored write_seeds` rewrites the generated seeds
//! (`seed-*` files) and the dictionaries.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ipc_audit::frame::{HEADER_LEN, LIMIT_MAX_FRAME, MAGIC, VERSION, encode};
use ipc_audit::fuzzing::{CountingAlloc, TARGETS, alloc_counting, frame_decode_against_reference};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn names_in(dir: &Path, suffix: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(suffix).map(str::to_owned))
        .collect()
}

#[test]
fn every_target_is_complete() {
    let fuzz = fuzz_dir();
    let registered: BTreeSet<String> = TARGETS.iter().map(|t| t.name.to_owned()).collect();
    let manifest = fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    for name in &registered {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
    }
    assert_eq!(
        names_in(&fuzz.join("fuzz_targets"), ".rs"),
        registered,
        "fuzz/fuzz_targets/*.rs vs fuzzing::TARGETS"
    );
    assert_eq!(
        names_in(&fuzz.join("corpus"), ""),
        registered,
        "fuzz/corpus/* vs fuzzing::TARGETS"
    );
    assert_eq!(
        names_in(&fuzz.join("dict"), ".dict"),
        registered,
        "fuzz/dict/*.dict vs fuzzing::TARGETS"
    );
}

#[test]
fn replay_corpus() {
    let _ = std::hint::black_box(vec![0u8; 1]);
    assert!(alloc_counting(), "the counting allocator is not installed");
    let mut failures = Vec::new();
    let mut total = 0;
    for t in TARGETS {
        let dir = fuzz_dir().join("corpus").join(t.name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for f in files {
            let data = fs::read(&f).unwrap();
            total += 1;
            let check = |data: &[u8]| {
                (t.check)(data);
                // frame_decode's own check has no second decoder (speed): the replay
                // also compares its inputs with the reference.
                if t.name == "frame_decode" {
                    frame_decode_against_reference(data);
                }
            };
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", f.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
    eprintln!("replayed {total} corpus files");
}

// ---------------------------------------------------------------------------------------
// Seed generation

fn header(len: u32, crc: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..12].copy_from_slice(&crc.to_le_bytes());
    let c = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&c.to_le_bytes());
    h
}

fn frames(payloads: &[&[u8]]) -> Vec<u8> {
    let mut w = Vec::new();
    for p in payloads {
        encode(p, LIMIT_MAX_FRAME, &mut w).unwrap();
    }
    w
}

/// `frame_decode` input: maximum, chunking seed, stream.
fn decode_input(max: u16, seed: u8, stream: &[u8]) -> Vec<u8> {
    let mut v = max.to_le_bytes().to_vec();
    v.push(seed);
    v.extend_from_slice(stream);
    v
}

fn xorshift_bytes(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `signal_chunks` input: the maximum (`Unstructured::int_in_range(0..=300)` reads two
/// bytes, big-endian, mod 301), then per signal its 64-bit word (little-endian), its code
/// (4 bytes, little-endian: the low 24 bits under the mark, or all 32 when the next
/// flag is set), whether the code is taken as it is and whether it comes from the second
/// sender (each `ratio(1, 16)`: one byte, true when it is 0 mod 16).
#[cfg(target_os = "linux")]
fn signal_input(max: u16, chunks: &[((i32, u64), bool, bool)]) -> Vec<u8> {
    assert!(max <= 300);
    let mut v = max.to_be_bytes().to_vec();
    for &((code, word), raw, other) in chunks {
        v.extend_from_slice(&word.to_le_bytes());
        v.extend_from_slice(&code.to_le_bytes());
        v.push(if raw { 0 } else { 1 });
        v.push(if other { 0 } else { 1 });
    }
    v
}

/// The generated `signal_chunks` seeds: messages chunked as the transport sends them,
/// and each way a stream can break.
#[cfg(target_os = "linux")]
fn signal_seeds() -> Vec<(String, Vec<u8>)> {
    use ipc_audit::transport::signal::{Chunk, LEN_LIMIT, encode_chunk, encode_message};
    type Sig = ((i32, u64), bool, bool);
    let ok =
        |chunks: &[(i32, u64)]| -> Vec<Sig> { chunks.iter().map(|&c| (c, false, false)).collect() };
    let mut seq = 0;
    let hello = encode_message(b"hello, world", 100, &mut seq).unwrap();
    let msg64: Vec<u8> = (0..64).collect();
    let m64 = encode_message(&msg64, 100, &mut seq).unwrap();
    let mut three = hello.clone();
    three.extend(encode_message(b"", 100, &mut seq).unwrap());
    three.extend(encode_message(b"abcdefghi", 100, &mut seq).unwrap());
    let start = |len| {
        encode_chunk(Chunk::Start {
            seq: 0,
            len,
            bytes: *b"abcdefgh",
        })
    };
    let mut si_queue = ok(&hello);
    si_queue[1] = ((-1, hello[1].1), true, false);
    let mut other = ok(&hello);
    other[1].2 = true;
    let mut seeds = vec![
        ("hello", signal_input(100, &ok(&hello))),
        ("message_64", signal_input(100, &ok(&m64))),
        ("three_messages", signal_input(100, &ok(&three))),
        ("gap", signal_input(100, &ok(&[m64[0], m64[2]]))),
        ("data_first", signal_input(100, &ok(&hello[1..]))),
        (
            "cut_by_start",
            signal_input(100, &ok(&[m64[0], m64[1], hello[0]])),
        ),
        ("si_queue", signal_input(100, &si_queue)),
        ("other_sender", signal_input(100, &other)),
        ("over_max", signal_input(10, &ok(&hello))),
        ("len_limit", signal_input(300, &ok(&[start(LEN_LIMIT)]))),
        (
            "kinds_00_11",
            signal_input(
                100,
                &ok(&[(0xda00_0000_u32 as i32, 0), (-1, u64::MAX), hello[0]]),
            ),
        ),
        ("max_0", signal_input(0, &ok(&[start(0), start(1)]))),
    ]
    .into_iter()
    .map(|(n, d)| (n.to_owned(), d))
    .collect::<Vec<_>>();
    for (i, n) in [16usize, 50, 100, 300].iter().enumerate() {
        seeds.push((format!("random_{n}"), xorshift_bytes(i as u32 + 7, *n)));
    }
    seeds
}

/// The `signal_chunks` dictionary: chunk codes as the target reads them (4 bytes,
/// little-endian), and a message's first word.
#[cfg(target_os = "linux")]
fn signal_dict() -> String {
    use ipc_audit::transport::signal::{Chunk, LEN_LIMIT, encode_chunk};
    let mut dict = String::from(
        "# Chunks of the signal transport (src/transport/signal.rs): si_code as 4 bytes\n\
         # little-endian, kind in bits 23-22 (start 01, data 10, invalid 00 and 11),\n\
         # sequence in 21-16, a start's length in 15-0. Generated by\n\
         # tests/fuzz_corpus.rs (write_seeds).\n",
    );
    let bytes = *b"hello, w";
    let code = |c| encode_chunk(c).0.to_le_bytes();
    for (name, word) in [
        (
            "start_len5",
            code(Chunk::Start {
                seq: 0,
                len: 5,
                bytes,
            }),
        ),
        (
            "start_len64",
            code(Chunk::Start {
                seq: 0,
                len: 64,
                bytes,
            }),
        ),
        (
            "start_len_limit",
            code(Chunk::Start {
                seq: 0,
                len: LEN_LIMIT,
                bytes,
            }),
        ),
        ("data", code(Chunk::Data { seq: 1, bytes })),
        ("invalid_00", 0xda00_0000_u32.to_le_bytes()),
        ("invalid_11", 0xdac0_0000_u32.to_le_bytes()),
        ("si_queue", (-1i32).to_le_bytes()),
    ] {
        dict += &dict_line(name, &word);
    }
    dict += &dict_line("word", &u64::from_le_bytes(bytes).to_le_bytes());
    dict
}

/// The seeds are read as `signal_input` says: "hello" delivers its message.
#[cfg(target_os = "linux")]
#[test]
fn signal_seed_layout_matches_the_target() {
    use arbitrary::Unstructured;
    use ipc_audit::transport::signal::{CODE_MARK, Reassembler};
    let (_, data) = signal_seeds()
        .into_iter()
        .find(|(n, _)| n == "hello")
        .unwrap();
    let mut u = Unstructured::new(&data);
    let max = u.int_in_range(0..=300usize).unwrap();
    assert_eq!(max, 100);
    let mut r = Reassembler::new(max);
    let mut got = None;
    while !u.is_empty() {
        let value = u.arbitrary::<u64>().unwrap();
        let bits = u.arbitrary::<u32>().unwrap();
        assert!(!u.ratio(1u8, 16).unwrap(), "raw code flag");
        assert!(!u.ratio(1u8, 16).unwrap(), "sender flag");
        let code = ((CODE_MARK << 24) | (bits & 0x00ff_ffff)) as i32;
        got = r.push(code, value, 100, 0).unwrap();
    }
    assert_eq!(got.as_deref(), Some(&b"hello, world"[..]));
}

fn dict_line(name: &str, bytes: &[u8]) -> String {
    let esc: String = bytes.iter().map(|b| format!("\\x{b:02x}")).collect();
    format!("{name}=\"{esc}\"\n")
}

#[test]
#[ignore = "rewrites the generated seeds and dictionaries under fuzz/"]
fn write_seeds() {
    let fuzz = fuzz_dir();
    let hello = frames(&[b"hello"]);
    let mut bad_crc = frames(&[b"hello"]);
    bad_crc[HEADER_LEN] ^= 1;
    let bad = |i: usize, x: u8| {
        let mut f = frames(&[b"abc"]);
        f[i] ^= x;
        f
    };
    let (bad_magic, bad_version, bad_flags, bad_len, bad_hcrc) =
        (bad(0, 1), bad(2, 1), bad(3, 0x80), bad(4, 2), bad(13, 0x10));
    let big = vec![0x5a; 3000];
    let decode_seeds: Vec<(&str, Vec<u8>)> = vec![
        ("empty", decode_input(64, 0, b"")),
        ("empty_frame", decode_input(64, 0, &frames(&[b""]))),
        ("hello", decode_input(64, 0, &hello)),
        ("hello_bytewise", decode_input(64, 7, &hello)),
        (
            "three_frames",
            decode_input(64, 3, &frames(&[b"a", b"", b"0123456789"])),
        ),
        (
            "bad_crc_then_ok",
            decode_input(64, 0, &[&bad_crc[..], &hello[..]].concat()),
        ),
        ("bad_magic", decode_input(64, 0, &bad_magic)),
        ("bad_version", decode_input(64, 0, &bad_version)),
        ("bad_flags", decode_input(64, 0, &bad_flags)),
        ("bad_len", decode_input(64, 0, &bad_len)),
        ("bad_header_crc", decode_input(64, 0, &bad_hcrc)),
        ("too_large", decode_input(64, 0, &header(100_000, 0))),
        (
            "too_large_u32max",
            decode_input(8191, 0, &header(u32::MAX, 0)),
        ),
        ("truncated_header", decode_input(64, 0, &hello[..10])),
        ("truncated_payload", decode_input(64, 9, &hello[..18])),
        ("at_max", decode_input(5, 0, &hello)),
        ("over_max", decode_input(4, 0, &hello)),
        ("max0_empty_frame", decode_input(0, 0, &frames(&[b"", b""]))),
        ("big_3000", decode_input(4000, 200, &frames(&[&big]))),
        ("garbage", decode_input(64, 1, &xorshift_bytes(9, 64))),
    ];

    let mut structured: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, n) in [0usize, 1, 8, 17, 40, 100, 300, 1000].iter().enumerate() {
        structured.push((format!("random_{n}"), xorshift_bytes(i as u32 + 1, *n)));
    }
    structured.push(("zeros_64".into(), vec![0; 64]));
    structured.push(("ones_64".into(), vec![0xff; 64]));
    // Byte strings with valid frames inside, for the differential target's raw segments.
    structured.push((
        "with_frames".into(),
        [&[200u8, 0, 4][..], &hello, &bad_crc, &header(7, 1)].concat(),
    ));

    let write = |target: &str, seeds: &[(String, Vec<u8>)]| {
        let dir = fuzz.join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                fs::remove_file(p).unwrap();
            }
        }
        for (name, data) in seeds {
            fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    };
    let decode_seeds: Vec<(String, Vec<u8>)> = decode_seeds
        .into_iter()
        .map(|(n, d)| (n.to_owned(), d))
        .collect();
    write("frame_decode", &decode_seeds);
    write("frame_chunked_roundtrip", &structured);
    write("frame_differential", &structured);
    #[cfg(target_os = "linux")]
    write("signal_chunks", &signal_seeds());

    let mut dict = String::from(
        "# Tokens of the frame format (src/frame.rs): magic, version, flags, lengths,\n\
         # whole valid headers. Generated by tests/fuzz_corpus.rs (write_seeds).\n",
    );
    dict += &dict_line("magic", &MAGIC);
    dict += &dict_line("magic_version_flags", &[MAGIC[0], MAGIC[1], VERSION, 0]);
    for (name, v) in [
        ("len_0", 0u32),
        ("len_1", 1),
        ("len_64", 64),
        ("len_8191", 8191),
        ("len_8192", 8192),
        ("len_64k", 65536),
        ("len_max", u32::MAX),
    ] {
        dict += &dict_line(name, &v.to_le_bytes());
    }
    dict += &dict_line("header_empty_frame", &frames(&[b""]));
    dict += &dict_line("frame_hello", &hello);
    dict += &dict_line("header_len_100000", &header(100_000, 0));
    fs::create_dir_all(fuzz.join("dict")).unwrap();
    // The frame targets share one dictionary; the others have their own.
    for t in TARGETS.iter().filter(|t| t.name.starts_with("frame_")) {
        fs::write(fuzz.join("dict").join(format!("{}.dict", t.name)), &dict).unwrap();
    }
    #[cfg(target_os = "linux")]
    fs::write(fuzz.join("dict").join("signal_chunks.dict"), signal_dict()).unwrap();
}
