//! Notifications: what a user is told about their orders, and the email that carries it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A notification as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Notification {
    pub id: Uuid,
    /// The event that caused it, e.g. `order.confirmed`.
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub channel: String,
    pub created_at: DateTime<Utc>,
}

/// A notification to store, with its email.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub order_id: Uuid,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Where the email goes; `None` stores the notification without one.
    pub recipient: Option<String>,
    /// The email's `Message-ID`.
    pub message_id: String,
}

/// The channel notifications are sent on.
pub const EMAIL: &str = "email";

/// Stores the notifications and queues their emails, each unless its user, kind and
/// order already have one, in one statement.
pub async fn insert_all(
    tx: &mut Transaction<'_, Postgres>,
    notifications: &[NewNotification],
) -> sqlx::Result<()> {
    if notifications.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&NewNotification) -> &str| notifications.iter().map(f).collect::<Vec<_>>();
    sqlx::query!(
        "WITH given AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::text[])
                 AS g(id, user_id, kind, order_id, subject, body, html, recipient, message_id)
         ), stored AS (
             INSERT INTO notifications (id, user_id, kind, order_id, subject, body, channel)
             SELECT id, user_id, kind, order_id, subject, body, $10 FROM given
             ON CONFLICT (user_id, kind, order_id) DO NOTHING
             RETURNING id
         )
         INSERT INTO emails (notification_id, recipient, subject, text_body, html_body, message_id)
         SELECT g.id, g.recipient, g.subject, g.body, g.html, g.message_id
         FROM given g JOIN stored s ON s.id = g.id
         WHERE g.recipient IS NOT NULL",
        &notifications.iter().map(|n| n.id).collect::<Vec<_>>(),
        &notifications.iter().map(|n| n.user_id).collect::<Vec<_>>(),
        &text(|n| &n.kind) as &[&str],
        &notifications.iter().map(|n| n.order_id).collect::<Vec<_>>(),
        &text(|n| &n.subject) as &[&str],
        &text(|n| &n.text) as &[&str],
        &text(|n| &n.html) as &[&str],
        &notifications
            .iter()
            .map(|n| n.recipient.as_deref())
            .collect::<Vec<_>>() as &[Option<&str>],
        &text(|n| &n.message_id) as &[&str],
        EMAIL,
    )
    .execute(&mut **tx)
    .await
    .map(drop)
}

/// The newest `limit` notifications of `user_id`.
pub async fn list(pool: &PgPool, user_id: Uuid, limit: i64) -> sqlx::Result<Vec<Notification>> {
    sqlx::query_as!(
        Notification,
        "SELECT id, kind, subject, body, channel, created_at FROM notifications
         WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        user_id,
        limit
    )
    .fetch_all(pool)
    .await
}
