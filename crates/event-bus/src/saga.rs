//! The moves every service's part of a saga makes: its effects emit onto its own stream
//! ([`Emitter`], [`Participant`]), and a cancellation that arrives before the event it
//! cancels is remembered, so that event, when it comes, does nothing ([`remember_cancelled`],
//! [`was_cancelled`]).

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::HandlerError;
use crate::inbox::Effect;
use crate::outbox;
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
    pub async fn emit(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        cause: &Envelope,
        event_type: &str,
        payload: &impl Serialize,
    ) -> Result<(), HandlerError> {
        outbox::enqueue_caused_by(tx, &self.stream, cause, self.source, event_type, payload).await
    }
}

/// One event's effect, written in `tx`, emitting through the service's [`Emitter`].
type Apply = dyn for<'a> Fn(
        &'a mut Transaction<'static, Postgres>,
        &'a Envelope,
        &'a Emitter,
    ) -> BoxFuture<'a, Result<(), HandlerError>>
    + Send
    + Sync;

/// A service's part of a saga as an [`Effect`]: `apply` writes one event's effect in
/// the consumer's transaction and emits through the service's [`Emitter`].
pub struct Participant {
    emitter: Emitter,
    apply: Box<Apply>,
}

impl Participant {
    pub fn new<F>(emitter: Emitter, apply: F) -> Self
    where
        F: for<'a> Fn(
                &'a mut Transaction<'static, Postgres>,
                &'a Envelope,
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
        tx: &'a mut Transaction<'static, Postgres>,
        event: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        (self.apply)(tx, event, &self.emitter)
    }
}

/// Remembers, in the service's `cancelled_orders` table, that the saga `id` was
/// cancelled: the events of it still to come (a reservation, a charge) then do nothing.
pub async fn remember_cancelled(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<(), HandlerError> {
    sqlx::query("INSERT INTO cancelled_orders (order_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(HandlerError::retry)
}

/// Whether the saga `id` was cancelled ([`remember_cancelled`]).
pub async fn was_cancelled(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
) -> Result<bool, HandlerError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM cancelled_orders WHERE order_id = $1)")
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(HandlerError::retry)
}
