//! The moves every service's part of a saga makes: its effects emit onto its own stream
//! ([`Emitter`], [`Participant`]), and a cancellation that arrives before the event it
//! cancels is remembered, so that event, when it comes, does nothing ([`remember_cancelled`];
//! each service reads its `cancelled_orders` in the statements that decide).

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::inbox::Effect;
use crate::outbox::{self, Tx};
use crate::stream::Stream;

/// Where a service's effects emit: its stream, with the service's name as the source.
#[derive(Debug, Clone)]
pub struct Emitter {
    source: &'static str,
    stream: Stream,
}

impl Emitter {
    pub fn new(source: &'static str, stream: Stream) -> Self {
        Self { source, stream }
    }

    /// Enqueues `payload` as `event_type`, caused by `cause`, in `tx` (so it exists
    /// exactly when the effect that emits it does).
    pub fn emit(
        &self,
        tx: &mut Tx,
        cause: &Envelope,
        event_type: &str,
        payload: &impl Serialize,
    ) -> Result<(), HandlerError> {
        outbox::enqueue_caused_by(tx, &self.stream, cause, self.source, event_type, payload)
    }
}

/// The effect of events ready together, written in `tx`, emitting through the
/// service's [`Emitter`].
type Apply = dyn for<'a> Fn(&'a mut Tx, &'a [Envelope], &'a Emitter) -> BoxFuture<'a, Result<(), HandlerError>>
    + Send
    + Sync;

/// A service's part of a saga as an [`Effect`]: `apply` writes the effects of the events
/// ready together in the consumer's transaction and emits through the service's
/// [`Emitter`].
pub struct Participant {
    emitter: Emitter,
    apply: Box<Apply>,
}

impl Participant {
    pub fn new<F>(emitter: Emitter, apply: F) -> Self
    where
        F: for<'a> Fn(
                &'a mut Tx,
                &'a [Envelope],
                &'a Emitter,
            ) -> BoxFuture<'a, Result<(), HandlerError>>
            + Send
            + Sync
            + 'static,
    {
        Self {
            emitter,
            apply: Box::new(apply),
        }
    }
}

impl Effect for Participant {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        (self.apply)(tx, events, &self.emitter)
    }
}

/// Remembers, in the service's `cancelled_orders` table, that the sagas `ids` were
/// cancelled: the events of them still to come (a reservation, a charge) then do
/// nothing. One statement for any number.
pub async fn remember_cancelled(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<(), HandlerError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO cancelled_orders (order_id) SELECT unnest($1::uuid[])
         ON CONFLICT DO NOTHING",
        ids,
    )
    .execute(&mut **tx)
    .await
    .map(drop)
    .map_err(HandlerError::retry)
}
