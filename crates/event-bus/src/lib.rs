//! The event bus on Redis Streams.
//!
//! A service never loses an event it committed to, and never applies one twice:
//!
//! - **Publishing** goes through an outbox: [`Tx::enqueue`] writes the event in the
//!   same Postgres transaction as the state change that caused it, and the
//!   [`relay`] publishes the committed events to their stream (`XADD`, approximate
//!   `MAXLEN`), handed over in memory by the commit, and marks them. Redis being down delays events; it never
//!   loses them.
//! - **Consuming** is a [`consumer`] per process in one consumer group per service. An
//!   entry is acknowledged only after its handler succeeded; a handler that writes to
//!   Postgres records the event id in the [`inbox`] in the same transaction, so a
//!   redelivery changes nothing. Entries a dead consumer left pending are reclaimed
//!   (`XAUTOCLAIM`); one delivered too often goes to a dead-letter stream.
//!
//! # Layout
//!
//! - [`config`]: stream prefix and cap, shared by every service's settings.
//! - [`envelope`]: the event envelope every stream entry carries.
//! - [`stream`]: a domain's stream and its partitions (one by default; several to
//!   spread a stream over a Redis Cluster's masters).
//! - [`schema`]: the `outbox` and `inbox` tables, installed into a service's database.
//! - [`publisher`]: `XADD` to a stream, pipelined for batches.
//! - [`outbox`] and [`relay`]: transactional publishing ([`Tx`]), the committed events
//!   handed to the relay in process ([`Wake`]).
//! - [`consumer`]: the consumer-group worker (reader, lanes, batched effects,
//!   acknowledgements, and reclaim with dead letters on a timer of its own); [`error`]:
//!   how a handler says it did not apply an event ([`OrRetry`] to say what it was
//!   doing).
//! - [`inbox`]: exactly-once effects for handlers that write to Postgres ([`Effect`]).
//! - [`saga`]: the moves every service's part of a saga makes (emitting onto its
//!   stream, remembering a cancellation that came early).
//! - [`dead_letters`]: list, replay and discard what consumers gave up on.
//! - [`ops`]: what an operator asks: group lag and pending, outbox backlog, the events
//!   about one key, events per minute (in the shapes of `contracts::ops`, which the
//!   gateway reads without this crate).
//!
//! This root only declares and re-exports: the modules import from each other, never
//! from here, so no module imports one that imports it back.

pub mod config;
pub mod consumer;
pub mod dead_letters;
pub mod envelope;
pub mod error;
pub mod inbox;
pub mod ops;
pub mod outbox;
pub mod publisher;
pub mod relay;
mod reply;
pub mod saga;
pub mod schema;
pub mod stream;

pub use config::EventsConfig;
pub use consumer::{Consumer, ConsumerConfig};
pub use dead_letters::dead_letter_stream;
pub use envelope::{ENVELOPE_FIELD, Envelope};
pub use error::{HandlerError, OrRetry, PublishError, RelayError};
pub use inbox::{Answers, Effect};
pub use outbox::{Tx, Wake};
pub use publisher::Publisher;
pub use relay::{Relay, RelayConfig};
pub use stream::Stream;
