//! What the service does with the events it consumes.
//!
//! | on | does |
//! |---|---|
//! | `order.confirmed`, `order.cancelled` | stores the user's notification and queues its email |
//! | every subscribable event (see [`crate::webhooks::EVENTS`]) | queues a delivery for each webhook subscribed to it |
//!
//! The events ready together are one batch ([`event_bus::Effect`]). First, outside any
//! transaction: one read of the event types webhooks subscribe to (an event that tells
//! no user and that no webhook wants needs nothing, not even an inbox mark) and one
//! call to the user service for the users of the batch's notifications. Then one
//! transaction stores the notifications with their emails and queues the webhook
//! deliveries, one statement for each, with the inbox marks: a redelivered event stores
//! and queues nothing more; the notification's unique key (user, kind, order) keeps it
//! to one per order and kind even if two events said the same thing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use contracts::events::{OrderCancelled, OrderConfirmed, types};
use contracts::users::{User, UserClient};
use event_bus::{Answers, Effect, Envelope, HandlerError, OrRetry, Tx};
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::notifications::{self, NewNotification};
use crate::webhooks;

/// The event types this service consumes.
pub const HANDLED: &[&str] = webhooks::EVENTS;

/// What the service does with events: notifications and webhook deliveries.
pub struct Notifier {
    pool: PgPool,
    users: UserClient,
    /// The user each notification goes to (`None`: no such user), read before the
    /// transaction, by the id of the event telling it.
    recipients: Answers<Option<User>>,
    /// The email and webhook workers, woken when a transaction gave them work.
    wakes: Wakes,
}

/// The queue workers a committed notification wakes.
#[derive(Debug, Clone, Default)]
pub struct Wakes {
    pub emails: Arc<Notify>,
    pub deliveries: Arc<Notify>,
}

/// What `event` tells its user, if anything.
pub(crate) fn message(event: &Envelope) -> Result<Option<Message>, HandlerError> {
    Ok(match event.event_type.as_str() {
        types::ORDER_CONFIRMED => Some(Message::confirmed(
            &event.decode().map_err(HandlerError::poison)?,
        )),
        types::ORDER_CANCELLED => Some(Message::cancelled(
            &event.decode().map_err(HandlerError::poison)?,
        )),
        _ => None,
    })
}

impl Notifier {
    pub fn new(pool: PgPool, users: UserClient, wakes: Wakes) -> Self {
        Self {
            pool,
            users,
            recipients: Answers::default(),
            wakes,
        }
    }

    /// Reads, outside any transaction, what the events' transaction needs: who each
    /// notification goes to. Returns the events that need nothing.
    async fn prepare(&self, events: &[&Envelope]) -> Result<HashSet<Uuid>, HandlerError> {
        let mut told = Vec::new();
        let mut untold = Vec::new();
        for event in events {
            match message(event)? {
                Some(message) => told.push((event.id, message.user_id)),
                None => untold.push(*event),
            }
        }
        let mut idle = HashSet::new();
        if !untold.is_empty() {
            let subscribed = webhooks::subscribed(&self.pool)
                .await
                .or_retry(|| "reading the webhooks subscribed")?;
            idle.extend(
                untold
                    .iter()
                    .filter(|e| !subscribed.contains(&e.event_type))
                    .map(|e| e.id),
            );
        }
        if !told.is_empty() {
            let mut ids: Vec<Uuid> = told.iter().map(|(_, user)| *user).collect();
            ids.sort_unstable();
            ids.dedup();
            let users: HashMap<Uuid, User> = self
                .users
                .get_users_by_ids(&ids)
                .await
                .or_retry(|| format!("reading {} users", ids.len()))?
                .into_iter()
                .map(|user| (user.id, user))
                .collect();
            self.recipients.keep(
                told.into_iter()
                    .map(|(event, user)| (event, users.get(&user).cloned())),
            );
        }
        Ok(idle)
    }

    /// Stores the notifications and queues the webhook deliveries of `events`, in `tx`.
    async fn apply(&self, tx: &mut Tx, events: &[Envelope]) -> Result<(), HandlerError> {
        let mut recipients = self.recipients.take(events);
        let mut stored = Vec::new();
        for event in events {
            let Some(message) = message(event)? else {
                continue;
            };
            let Some(user) = recipients.remove(&event.id) else {
                return Err(HandlerError::Retry(anyhow::anyhow!(
                    "the user of event {} was not read",
                    event.id
                )));
            };
            if user.is_none() {
                tracing::warn!(user_id = %message.user_id, "no such user: notification stored without an email");
            }
            stored.push(message.to(user.as_ref(), event));
        }
        notifications::insert_all(tx, &stored)
            .await
            .or_retry(|| format!("storing {} notifications", stored.len()))?;
        if !stored.is_empty() {
            tx.wake_after_commit(&self.wakes.emails);
        }
        let deliveries = events
            .iter()
            .map(|event| Ok((event, serde_json::to_string(event)?)))
            .collect::<serde_json::Result<Vec<_>>>()
            .map_err(HandlerError::poison)?;
        let queued = webhooks::enqueue_all(tx, &deliveries)
            .await
            .or_retry(|| format!("queueing the webhook deliveries of {} events", events.len()))?;
        if queued > 0 {
            tx.wake_after_commit(&self.wakes.deliveries);
        }
        Ok(())
    }
}

impl Effect for Notifier {
    fn prepare<'a>(
        &'a self,
        events: &'a [&'a Envelope],
    ) -> BoxFuture<'a, Result<HashSet<Uuid>, HandlerError>> {
        Box::pin(Notifier::prepare(self, events))
    }

    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(Notifier::apply(self, tx, events))
    }
}

/// What an order event tells its user.
pub(crate) struct Message {
    user_id: Uuid,
    order_id: Uuid,
    subject: String,
    text: String,
}

impl Message {
    fn confirmed(order: &OrderConfirmed) -> Self {
        Self {
            user_id: order.user_id,
            order_id: order.order_id,
            subject: format!("Order {} confirmed", order.order_id),
            text: format!(
                "Your order {} is confirmed: {} was charged to your card.",
                order.order_id,
                money(order.total_cents, &order.currency)
            ),
        }
    }

    fn cancelled(order: &OrderCancelled) -> Self {
        let why = match order.reason.as_str() {
            "out_of_stock" => "some of its items are out of stock",
            "payment_declined" => "the payment was declined",
            "cancelled_by_user" => "you cancelled it; any charge is refunded",
            _ => "it could not be completed",
        };
        Self {
            user_id: order.user_id,
            order_id: order.order_id,
            subject: format!("Order {} cancelled", order.order_id),
            text: format!("Your order {} is cancelled: {why}.", order.order_id),
        }
    }
}

impl Message {
    /// The notification telling this to `user` (`None`: stored without an email), for
    /// `event`.
    fn to(&self, user: Option<&User>, event: &Envelope) -> NewNotification {
        let greeting = user.map_or("there", |u| u.name.as_str());
        NewNotification {
            id: Uuid::now_v7(),
            user_id: self.user_id,
            kind: event.event_type.clone(),
            order_id: self.order_id,
            subject: self.subject.clone(),
            text: format!("Hello {greeting},\n\n{}\n\n— Switchyard\n", self.text),
            html: format!(
                "<!doctype html><html><body><p>Hello {},</p><p>{}</p><p>— Switchyard</p></body></html>",
                escape_html(greeting),
                escape_html(&self.text)
            ),
            recipient: user.map(|u| u.email.clone()),
            message_id: format!("<{}@switchyard>", event.id),
        }
    }
}

/// `1234, "USD"` → `12.34 USD`.
fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", cents / 100, cents % 100)
}

/// Escapes text for HTML (user names are user input).
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_html_are_written_safely() {
        assert_eq!(money(1234, "USD"), "12.34 USD");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }
}
