//! What the service does with each event it consumes.
//!
//! | on | does |
//! |---|---|
//! | `order.confirmed`, `order.cancelled` | stores the user's notification and queues its email |
//! | every subscribable event (see [`crate::webhooks::EVENTS`]) | queues a delivery for each webhook subscribed to it |
//!
//! All of it commits with the event's inbox mark, so a redelivered event stores and
//! queues nothing more; the notification's unique key (user, kind, order) keeps it to
//! one per order and kind even if two events said the same thing.

use std::sync::Arc;

use contracts::events::{OrderCancelled, OrderConfirmed, types};
use contracts::users::UserClient;
use event_bus::{Envelope, HandlerError, OrRetry, inbox};
use sqlx::PgPool;
use uuid::Uuid;

use crate::notifications::{self, NewNotification};
use crate::state::SERVICE;
use crate::webhooks;

/// The event types this service consumes.
pub const HANDLED: &[&str] = webhooks::EVENTS;

/// What the handler needs.
pub struct Context {
    pub pool: PgPool,
    pub users: UserClient,
}

/// Applies one event, exactly once.
pub async fn handle(context: Arc<Context>, event: Envelope) -> Result<(), HandlerError> {
    let tells_its_user = matches!(
        event.event_type.as_str(),
        types::ORDER_CONFIRMED | types::ORDER_CANCELLED
    );
    if !tells_its_user
        && !webhooks::subscribed(&context.pool, &event.event_type)
            .await
            .or_retry(|| "reading the webhooks subscribed")?
    {
        // Nothing to store and no one to deliver to: one read, no transaction.
        return Ok(());
    }
    let Some(mut tx) = inbox::open(&context.pool, SERVICE, &event).await? else {
        return Ok(());
    };
    let message = match event.event_type.as_str() {
        types::ORDER_CONFIRMED => {
            let order: OrderConfirmed = event.decode().map_err(HandlerError::poison)?;
            Some(Message::confirmed(&order))
        }
        types::ORDER_CANCELLED => {
            let order: OrderCancelled = event.decode().map_err(HandlerError::poison)?;
            Some(Message::cancelled(&order))
        }
        _ => None,
    };
    if let Some(message) = message {
        let user = context
            .users
            .get_users_by_ids(&[message.user_id])
            .await
            .or_retry(|| format!("reading user {}", message.user_id))?
            .into_iter()
            .next();
        if user.is_none() {
            tracing::warn!(user_id = %message.user_id, "no such user: notification stored without an email");
        }
        let greeting = user.as_ref().map_or("Hello", |u| u.name.as_str());
        let notification = NewNotification {
            user_id: message.user_id,
            kind: event.event_type.clone(),
            order_id: message.order_id,
            subject: message.subject.clone(),
            text: format!("Hello {greeting},\n\n{}\n\n— Switchyard\n", message.text),
            html: format!(
                "<!doctype html><html><body><p>Hello {},</p><p>{}</p><p>— Switchyard</p></body></html>",
                escape_html(greeting),
                escape_html(&message.text)
            ),
            recipient: user.map(|u| u.email),
            message_id: format!("<{}@switchyard>", event.id),
        };
        notifications::insert(&mut tx, &notification)
            .await
            .or_retry(|| format!("storing the notification of event {}", event.id))?;
    }
    let body = serde_json::to_string(&event).map_err(HandlerError::poison)?;
    webhooks::enqueue(&mut tx, event.id, &event.event_type, &body)
        .await
        .or_retry(|| format!("enqueueing the webhook deliveries of event {}", event.id))?;
    tx.commit()
        .await
        .or_retry(|| format!("committing the handling of event {}", event.id))
}

/// What an order event tells its user.
struct Message {
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
