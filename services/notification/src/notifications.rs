//! Notifications: what a user is told about their orders, and the email that carries it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A notification as the API shows it.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
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

/// Stores the notification and queues its email, unless this user, kind and order
/// already have one. Returns whether it was new.
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    notification: &NewNotification,
) -> sqlx::Result<bool> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO notifications (id, user_id, kind, order_id, subject, body, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (user_id, kind, order_id) DO NOTHING
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(notification.user_id)
    .bind(&notification.kind)
    .bind(notification.order_id)
    .bind(&notification.subject)
    .bind(&notification.text)
    .bind(EMAIL)
    .fetch_optional(&mut **tx)
    .await?;
    let (Some(id), Some(recipient)) = (id, &notification.recipient) else {
        return Ok(id.is_some());
    };
    sqlx::query(
        "INSERT INTO emails (notification_id, recipient, subject, text_body, html_body, message_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(recipient)
    .bind(&notification.subject)
    .bind(&notification.text)
    .bind(&notification.html)
    .bind(&notification.message_id)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// The newest `limit` notifications of `user_id`.
pub async fn list(pool: &PgPool, user_id: Uuid, limit: i64) -> sqlx::Result<Vec<Notification>> {
    sqlx::query_as(
        "SELECT id, kind, subject, body, channel, created_at FROM notifications
         WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
