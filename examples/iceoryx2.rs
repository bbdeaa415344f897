//! Audits iceoryx2 (0.10.0, default features off but `std`) publish-subscribe, with the
//! peer in another process: `cargo run --release --example iceoryx2 [-- --cases 16]`.
//!
//! iceoryx2 is zero-copy publish-subscribe over shared memory, not a byte channel: the
//! adapter maps one link to one service (`publish_subscribe::<[u8]>()`) plus an event
//! service of the same name. The local end is a `Subscriber` and a `Listener`; the peer is
//! a `Publisher` (`loan_slice_uninit`, `write_from_slice`, `send`) and a `Notifier` that it
//! notifies after each sample, which is how iceoryx2's examples wait for data
//! ("event_based_communication"): `Subscriber::receive` itself never waits.
//!
//! The service is made lossless (`enable_safe_overflow(false)`, backpressure
//! `RetryUntilDelivered`). iceoryx2 has no send timeout; the publisher's
//! `set_backpressure_handler` (the crate's own hook) gives up with `DiscardDataAndFail`
//! once the timeout set on the endpoint has passed (at once when nonblocking), and that
//! send returns `SendError::UnableToDeliver`, mapped to a timeout (or would-block).
//!
//! Every link has its own root directory (`Config::global.set_root_path`, under
//! `Config::dir`) and its own shared-memory prefix (`global.prefix`, with pid and counter),
//! so that the audit's links never meet and the guard removes what the link made. Nodes
//! are made with `SignalHandlingMode::Disabled`: the audit owns the process's signals.
//! `ipc_threadsafe::Service` because an `Endpoint` must be `Send`.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use iceoryx2::port::BackpressureAction;
use iceoryx2::port::LoanError;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::builder::event::EventOpenError;
use iceoryx2::service::builder::publish_subscribe::PublishSubscribeOpenError;
use ipc_audit::transport::{
    Access, Boundaries, Config as AuditConfig, Endpoint, Guarantees, Link, Ordering, PeerEnd,
    Rendezvous, Transport,
};
use ipc_audit::{Error, Result};

const NAME: &str = "iceoryx2";
/// The publisher's `initial_max_slice_len`: larger loans fail with `ExceedsMaxLoanSize`.
const MAX: usize = 1 << 20;
/// Samples a subscriber's buffer holds before the publisher must wait.
const BUFFER: usize = 8;
/// Publishers a service admits at once (the audit's `senders` runs up to 8).
const PUBLISHERS: usize = 8;
/// `u64::MAX`: wait forever.
const FOREVER: u64 = u64::MAX;

type Svc = ipc_threadsafe::Service;
type PubSubFactory = iceoryx2::service::port_factory::publish_subscribe::PortFactory<Svc, [u8], ()>;
type EventFactory = iceoryx2::service::port_factory::event::PortFactory<Svc>;

struct Iceoryx2;

fn fail(op: &str, e: impl std::fmt::Debug) -> Error {
    Error::Protocol(format!("{NAME}: {op}: {e:?}"))
}

/// What both sides need to meet: the root directory, the prefix, the service's name.
struct Meet {
    root: String,
    prefix: String,
    service: String,
    max: usize,
}

impl Meet {
    fn info(&self) -> String {
        format!(
            "{} {} {} {}",
            self.max, self.prefix, self.service, self.root
        )
    }

    fn parse(info: &str) -> Result<Meet> {
        let bad = || Error::Protocol(format!("{NAME}: bad peer info {info:?}"));
        let mut it = info.splitn(4, ' ');
        let max = it.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        let prefix = it.next().ok_or_else(bad)?.to_string();
        let service = it.next().ok_or_else(bad)?.to_string();
        let root = it.next().ok_or_else(bad)?.to_string();
        Ok(Meet {
            root,
            prefix,
            service,
            max,
        })
    }

    fn node(&self) -> Result<Node<Svc>> {
        let mut config = Config::default();
        let root = Path::new(self.root.as_bytes()).map_err(|e| fail("root path", e))?;
        config.global.set_root_path(&root);
        config.global.prefix =
            FileName::new(self.prefix.as_bytes()).map_err(|e| fail("prefix", e))?;
        NodeBuilder::new()
            .config(&config)
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .map_err(|e| match e {
                iceoryx2::node::NodeCreationFailure::InsufficientPermissions => {
                    denied("create a node")
                }
                e => fail("create a node", e),
            })
    }

    fn service_name(&self) -> Result<ServiceName> {
        ServiceName::new(&self.service).map_err(|e| fail("service name", e))
    }
}

/// The crate's "insufficient permissions" errors carry the refusal as EACCES.
fn denied(op: &str) -> Error {
    Error::sys(
        format!("{NAME}: {op}: insufficient permissions"),
        nix::errno::Errno::EACCES,
    )
}

/// The subscribing end.
struct Local {
    subscriber: Subscriber<Svc, [u8], ()>,
    listener: Listener<Svc>,
    timeout: Option<Duration>,
    nonblocking: bool,
    // Dropped after the ports: the services, then the node.
    _services: (PubSubFactory, EventFactory),
    _node: Node<Svc>,
}

impl Endpoint for Local {
    fn send(&mut self, _msg: &[u8]) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{NAME}: this end only receives"
        )))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            // Notifications already here: taken without waiting, so that they do not pile up.
            self.listener
                .try_wait(|_| {})
                .map_err(|e| fail("listener try_wait", e))?;
            if let Some(sample) = self.subscriber.receive().map_err(|e| fail("receive", e))? {
                buf.clear();
                buf.extend_from_slice(sample.payload());
                return Ok(buf.len());
            }
            if self.nonblocking {
                return Err(Error::WouldBlock {
                    op: format!("{NAME}: recv"),
                });
            }
            match deadline {
                None => {
                    self.listener
                        .blocking_wait(|_| {})
                        .map_err(|e| fail("listener wait", e))?;
                }
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout {
                            op: format!("{NAME}: recv"),
                            after: self.timeout.unwrap_or_default(),
                        });
                    }
                    self.listener
                        .timed_wait(|_| {}, left)
                        .map_err(|e| fail("listener timed_wait", e))?;
                }
            }
        }
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        Ok(())
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.nonblocking = on;
        Ok(())
    }
}

/// The publishing end, in the peer.
struct Peer {
    publisher: Publisher<Svc, [u8], ()>,
    notifier: Notifier<Svc>,
    max: usize,
    timeout: Option<Duration>,
    nonblocking: bool,
    /// Nanoseconds the backpressure handler retries for (`FOREVER`, 0 when nonblocking).
    patience: Arc<AtomicU64>,
    _services: (PubSubFactory, EventFactory),
    _node: Node<Svc>,
}

impl Endpoint for Peer {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let sample = self
            .publisher
            .loan_slice_uninit(msg.len())
            .map_err(|e| match e {
                LoanError::ExceedsMaxLoanSize => Error::TooLarge {
                    len: msg.len(),
                    max: self.max,
                },
                e => fail("loan", e),
            })?;
        let sample = sample.write_from_slice(msg);
        match sample.send() {
            Ok(_) => {}
            Err(iceoryx2::port::SendError::UnableToDeliver) if self.nonblocking => {
                return Err(Error::WouldBlock {
                    op: format!("{NAME}: send"),
                });
            }
            Err(iceoryx2::port::SendError::UnableToDeliver) => {
                return Err(Error::Timeout {
                    op: format!("{NAME}: send"),
                    after: self.timeout.unwrap_or_default(),
                });
            }
            Err(e) => return Err(fail("send", e)),
        }
        self.notifier.notify().map_err(|e| fail("notify", e))?;
        Ok(())
    }

    fn recv(&mut self, _buf: &mut Vec<u8>) -> Result<usize> {
        Err(Error::Unsupported(format!("{NAME}: this end only sends")))
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> Result<()> {
        self.timeout = t;
        self.store_patience();
        Ok(())
    }

    fn set_nonblocking(&mut self, on: bool) -> Result<()> {
        self.nonblocking = on;
        self.store_patience();
        Ok(())
    }
}

impl Peer {
    fn store_patience(&self) {
        let ns = match (self.nonblocking, self.timeout) {
            (true, _) => 0,
            (false, None) => FOREVER,
            (false, Some(t)) => u64::try_from(t.as_nanos()).unwrap_or(FOREVER),
        };
        self.patience.store(ns, AtomicOrdering::Relaxed);
    }
}

/// Removes the link's root directory and whatever its prefix left in /dev/shm (a killed
/// peer's segments); iceoryx2's own cleanup runs first.
struct Guard {
    dir: Option<tempfile::TempDir>,
    prefix: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir("/dev/shm") {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&self.prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        drop(self.dir.take());
    }
}

impl Transport for Iceoryx2 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            carries_data: true,
            // A sample is one value: `publish_subscribe::<[u8]>()`, `loan_slice_uninit(len)`.
            boundaries: Boundaries::Native,
            // `enable_safe_overflow`: "the Publisher will replace the oldest Sample with the
            // newest one": a subscriber's buffer is a queue, oldest first.
            ordering: Ordering::Fifo,
            // `BackpressureStrategy::RetryUntilDelivered`: "Retries until the receiver has
            // consumed some data from the full buffer and there is space again", with
            // `enable_safe_overflow(false)`.
            reliable: true,
            // `LoanError::ExceedsMaxLoanSize`: "The provided slice size exceeds the
            // configured max slice size."
            max_message: MAX,
            duplex: false,
            // Feature `dev_permissions`: "The permissions of all resources will be set to
            // read, write, execute for everyone. This shall not be used in production": without
            // it (as here), the owner's.
            access: Access::SameUid,
            // "Services are uniquely identified by name and MessagingPattern"
            rendezvous: Rendezvous::Named,
            platforms: common::platforms(&["Linux", "FreeBSD", "macOS", "Windows", "QNX"]),
            // `max_publishers`: "how many Publisher shall be supported at most"; each sample
            // is whole.
            many_senders: Some(MAX),
        }
    }

    fn open(&self, cfg: &AuditConfig) -> Result<Link> {
        let max = cfg.max_message.unwrap_or(MAX);
        let dir = common::private_dir("ipc-audit-iceoryx2", cfg.dir.as_deref())?;
        let tag = common::unique("iox2audit").replace('-', "_");
        let meet = Meet {
            root: format!("{}/", dir.path().display()),
            prefix: format!("{tag}_"),
            service: format!("ipc-audit/{tag}"),
            max,
        };
        let guard = Guard {
            dir: Some(dir),
            prefix: meet.prefix.clone(),
        };
        let node = meet.node()?;
        let name = meet.service_name()?;
        let pubsub = node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(BUFFER)
            .max_publishers(PUBLISHERS)
            .max_subscribers(1)
            .history_size(0)
            .create()
            .map_err(|e| fail("create the publish-subscribe service", e))?;
        let event = node
            .service_builder(&name)
            .event()
            .max_notifiers(PUBLISHERS)
            .create()
            .map_err(|e| fail("create the event service", e))?;
        let subscriber = pubsub
            .subscriber_builder()
            .buffer_size(BUFFER)
            .create()
            .map_err(|e| fail("create the subscriber", e))?;
        let listener = event
            .listener_builder()
            .create()
            .map_err(|e| fail("create the listener", e))?;
        Ok(Link {
            local: Box::new(Local {
                subscriber,
                listener,
                timeout: None,
                nonblocking: false,
                _services: (pubsub, event),
                _node: node,
            }),
            peer: PeerEnd {
                fds: Vec::new(),
                info: meet.info(),
            },
            guard: Some(Box::new(guard)),
            path: None,
        })
    }

    fn attach(&self, peer: PeerEnd) -> Result<Box<dyn Endpoint>> {
        let meet = Meet::parse(&peer.info)?;
        let node = meet.node()?;
        let name = meet.service_name()?;
        let pubsub = node
            .service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .open()
            .map_err(|e| match e {
                PublishSubscribeOpenError::InsufficientPermissions => denied("open the service"),
                e => fail("open the publish-subscribe service", e),
            })?;
        let event = node
            .service_builder(&name)
            .event()
            .open()
            .map_err(|e| match e {
                EventOpenError::InsufficientPermissions => denied("open the event service"),
                e => fail("open the event service", e),
            })?;
        let patience = Arc::new(AtomicU64::new(FOREVER));
        let p = Arc::clone(&patience);
        let publisher = pubsub
            .publisher_builder()
            .initial_max_slice_len(meet.max)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .set_backpressure_handler(move |info: &iceoryx2::port::BackpressureInfo| {
                let ns = p.load(AtomicOrdering::Relaxed);
                if ns == FOREVER || info.elapsed_time.as_nanos() < u128::from(ns) {
                    BackpressureAction::Retry
                } else {
                    BackpressureAction::DiscardDataAndFail
                }
            })
            .create()
            .map_err(|e| fail("create the publisher", e))?;
        let notifier = event
            .notifier_builder()
            .create()
            .map_err(|e| fail("create the notifier", e))?;
        Ok(Box::new(Peer {
            publisher,
            notifier,
            max: meet.max,
            timeout: None,
            nonblocking: false,
            patience,
            _services: (pubsub, event),
            _node: node,
        }))
    }
}

fn main() -> ExitCode {
    set_log_level(LogLevel::Error);
    ipc_audit::cli::audit_main(&[&Iceoryx2])
}
