//! Loom models of the shared-memory ring (`src/shm/ring.rs`) and its hand-off.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom`
//! (`.ci/loom-miri.sh` does, in its own target directory). Without `--cfg loom` this file
//! is empty.
//!
//! The ring's payload bytes are loom cells, so a missing Release/Acquire shows up as a
//! causality violation; a missing Release/Acquire on the `waiting` swaps of the hand-off
//! as a deadlock (a lost wake-up); a missing Release/Acquire on close as a lost message. Each model names the
//! orderings it guards; the list of which weakening each one catches is in
//! `.ci/loom-weaken.sh`.

#![cfg(loom)]

use std::sync::Arc;

use ipc_audit::shm::ring::{PopError, PushError, Ring, Wait};
use ipc_audit::shm::sem::{CondvarFutex, Futex};
use ipc_audit::sync::spin_hint;
use loom::thread;

/// Message `i` of a model: `len` bytes, each `i * 16 + j`, so that a message read while
/// being written (torn) or from the wrong lap is detected.
fn msg(i: u8, len: usize) -> Vec<u8> {
    (0..len as u8).map(|j| i * 16 + j).collect()
}

fn futex() -> Arc<dyn Futex> {
    Arc::new(CondvarFutex::new())
}

/// Polling producer and consumer over a 32-byte ring; 3 messages of 24 bytes: each must
/// wait for the one before to be released (which the consumer publishes when it finds
/// the ring empty: under loom it releases in batches of the whole lane), and its payload
/// wraps over the bytes of that one's payload (the second takes 24..48, that is 24..32 and 0..16, over the first's
/// 0..24); the third reuses the first's lane slot (a lane of 2 under loom). So every
/// reuse of space and of a slot depends on the tail published by the pop just before it.
///
/// Guards: lane slot Release/Acquire (payload published), tail Release/Acquire (space
/// and slot reused).
#[test]
fn spsc_wrap_around() {
    loom::model(|| {
        let (mut p, mut c) = Ring::heap(32, 24, futex()).unwrap().split();
        let t = thread::spawn(move || {
            for i in 0..3u8 {
                while !p.try_push(&msg(i, 24)).unwrap() {
                    spin_hint();
                }
            }
        });
        let mut out = Vec::new();
        for i in 0..3u8 {
            let n = loop {
                if let Some(n) = c.try_pop(&mut out).unwrap() {
                    break n;
                }
                spin_hint();
            };
            assert_eq!(n, 24);
            assert_eq!(out, msg(i, 24), "message {i} torn or out of order");
        }
        t.join().unwrap();
    });
}

/// Blocking producer and consumer over a 32-byte ring that holds two records of 12 bytes
/// (16 each): the producer sleeps on full and the consumer on empty, through the
/// Mutex/Condvar model of the futex. The third record wraps and reuses the first's slot.
///
/// Guards: the `waiting` swaps, Release in `wake` and Acquire in `prepare_sleep`, and a
/// side lowering its own flag with a swap rather than a store (a lost wake-up is a
/// deadlock); the consumer's release when it finds the ring empty; and the lane slot
/// and tail Release/Acquire pairs again.
#[test]
fn blocking_hand_off() {
    loom::model(|| {
        let (mut p, mut c) = Ring::heap(32, 16, futex()).unwrap().split();
        let t = thread::spawn(move || {
            for i in 0..3u8 {
                p.push(&msg(i, 12), &Wait::blocking()).unwrap();
            }
            // Keep the producer alive until the consumer has everything, so that the
            // close path (its own wake-up) does not wake a lost sleeper.
            p
        });
        let mut out = Vec::new();
        for i in 0..3u8 {
            let n = c.pop(&mut out, &Wait::blocking()).unwrap();
            assert_eq!(n, 12);
            assert_eq!(out, msg(i, 12), "message {i} torn or out of order");
        }
        drop(t.join().unwrap());
    });
}

/// The producer sends 2 messages (both fit a 64-byte ring) and goes away; the consumer,
/// blocking, gets both, in order, and then `Closed`.
///
/// Guards: `closed` fetch_or Release / load Acquire (no message lost on close).
#[test]
fn close_after_messages() {
    loom::model(|| {
        let (mut p, mut c) = Ring::heap(64, 4, futex()).unwrap().split();
        let t = thread::spawn(move || {
            for i in 0..2u8 {
                while !p.try_push(&msg(i, 1)).unwrap() {
                    spin_hint();
                }
            }
            drop(p);
        });
        let mut out = Vec::new();
        let mut got = 0u8;
        loop {
            match c.pop(&mut out, &Wait::blocking()) {
                Ok(n) => {
                    assert_eq!(n, 1);
                    assert_eq!(out, msg(got, 1), "message {got}");
                    got += 1;
                }
                Err(PopError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, 2, "messages lost on close");
        t.join().unwrap();
    });
}

/// The consumer goes away while the producer sleeps on a full ring (a 32-byte ring
/// holds one 24-byte message): the producer must wake and get `Closed`, not sleep
/// forever.
///
/// Guards: the consumer's close wake-up, and the full hand-off's swaps.
#[test]
fn consumer_close_wakes_producer() {
    loom::model(|| {
        let (mut p, c) = Ring::heap(32, 24, futex()).unwrap().split();
        let t = thread::spawn(move || drop(c));
        let r = match p.try_push(&msg(0, 24)) {
            Ok(true) => p.push(&msg(1, 24), &Wait::blocking()),
            Ok(false) => panic!("an empty ring refused a message"),
            Err(e) => Err(e),
        };
        assert!(
            matches!(r, Err(PushError::Closed)),
            "expected Closed, got {r:?}"
        );
        t.join().unwrap();
    });
}
