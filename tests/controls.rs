//! Negative controls: deliberately faulty transports, each caught by the audit with a
//! `fail` verdict on the property that guards what it breaks. The peer here is this test
//! binary, re-run for the `peer_entry` test: the same path a third-party transport takes.

use std::time::Duration;

use ipc_audit::Result;
use ipc_audit::audit::{Auditor, PeerLauncher, Verdict, run_if_peer};
use ipc_audit::transport::{self, Config, Endpoint, Guarantees, Link, PeerEnd, Transport};

/// How a [`Faulty`] transport breaks the messages its peer end sends.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Drops about one message in a thousand.
    Drop,
    /// Swaps the second and third messages.
    Swap,
    /// Sends the first two messages as one.
    Merge,
    /// Flips one bit of the first non-empty message.
    Flip,
}

/// A pipe whose sending end misbehaves.
struct Faulty(Fault, &'static str);

struct FaultyEnd {
    inner: Box<dyn Endpoint>,
    fault: Fault,
    sent: u64,
    held: Option<Vec<u8>>,
    rng: u64,
    flipped: bool,
}

impl Endpoint for FaultyEnd {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let n = self.sent;
        self.sent += 1;
        match self.fault {
            Fault::Drop => {
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                if self.rng.is_multiple_of(1000) {
                    return Ok(());
                }
                self.inner.send(msg)
            }
            Fault::Swap if n == 1 => {
                self.held = Some(msg.to_vec());
                Ok(())
            }
            Fault::Swap if n == 2 => {
                self.inner.send(msg)?;
                let held = self.held.take().unwrap_or_default();
                self.inner.send(&held)
            }
            Fault::Merge if n == 0 => {
                self.held = Some(msg.to_vec());
                Ok(())
            }
            Fault::Merge if n == 1 => {
                let mut both = self.held.take().unwrap_or_default();
                both.extend_from_slice(msg);
                self.inner.send(&both)
            }
            Fault::Flip if !self.flipped && !msg.is_empty() => {
                self.flipped = true;
                let mut m = msg.to_vec();
                let mid = m.len() / 2;
                m[mid] ^= 0x01;
                self.inner.send(&m)
            }
            _ => self.inner.send(msg),
        }
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        self.inner.recv(buf)
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.inner.set_timeout(t)
    }
}

impl Drop for FaultyEnd {
    fn drop(&mut self) {
        // A held message goes out at the end: the fault is the reordering or the merge,
        // not a loss.
        if let Some(m) = self.held.take() {
            let _ = self.inner.send(&m);
        }
    }
}

impl Transport for Faulty {
    fn name(&self) -> &'static str {
        self.1
    }

    fn guarantees(&self) -> Guarantees {
        // Declares exactly what a pipe declares: the faults break those promises.
        transport::pipe::Pipe.guarantees()
    }

    fn open(&self, cfg: &Config) -> Result<Link> {
        transport::pipe::Pipe.open(cfg)
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        Ok(Box::new(FaultyEnd {
            inner: transport::pipe::Pipe.attach(peer)?,
            fault: self.0,
            sent: 0,
            held: None,
            rng: u64::from(std::process::id()) | 1,
            flipped: false,
        }))
    }
}

fn resolve(name: &str) -> Option<Box<dyn Transport>> {
    let f = match name {
        "drops-one-in-1000" => Faulty(Fault::Drop, "drops-one-in-1000"),
        "swaps-two" => Faulty(Fault::Swap, "swaps-two"),
        "merges-two" => Faulty(Fault::Merge, "merges-two"),
        "flips-a-bit" => Faulty(Fault::Flip, "flips-a-bit"),
        _ => return transport::by_name(name),
    };
    Some(Box::new(f))
}

/// The peer role of this test binary; a no-op when run as a normal test.
#[test]
fn peer_entry() {
    run_if_peer(resolve);
}

/// Audits `name` on `property` and returns the verdict and the observed text.
fn audit(name: &str, property: &str) -> (Verdict, String) {
    let t = resolve(name).expect("known transport");
    let auditor = Auditor::new(PeerLauncher::test_binary("peer_entry").expect("own exe"))
        .cases(16)
        .only([property]);
    let r = auditor.audit(t.as_ref());
    let p = &r.properties[0];
    println!(
        "{name} / {}: {:?}: {} ({})",
        p.property, p.verdict, p.observed, p.detail
    );
    (p.verdict, p.observed.clone())
}

#[test]
fn a_sound_transport_passes_through_the_test_binary_peer() {
    for prop in ["ordering", "boundaries", "integrity"] {
        assert_eq!(audit("pipe", prop).0, Verdict::Pass, "{prop}");
    }
}

#[test]
fn dropping_one_in_a_thousand_fails_ordering() {
    let (v, observed) = audit("drops-one-in-1000", "ordering");
    assert_eq!(v, Verdict::Fail);
    assert!(observed.contains("never arrived"), "{observed}");
}

#[test]
fn swapping_two_fails_ordering() {
    let (v, observed) = audit("swaps-two", "ordering");
    assert_eq!(v, Verdict::Fail);
    assert!(observed.contains("arrived after"), "{observed}");
}

#[test]
fn merging_two_fails_boundaries() {
    let (v, observed) = audit("merges-two", "boundaries");
    assert_eq!(v, Verdict::Fail);
    // An empty message merged into the next is, on the wire, that message lost.
    assert!(
        observed.contains("merged") || observed.contains("never arrived"),
        "{observed}"
    );
}

#[test]
fn flipping_a_bit_fails_integrity() {
    let (v, observed) = audit("flips-a-bit", "integrity");
    assert_eq!(v, Verdict::Fail);
    assert!(observed.contains("differs"), "{observed}");
}
