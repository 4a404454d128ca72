//! Webhook subscriptions, their deliveries and the log of every attempt.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use event_bus::Envelope;
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The events a webhook may subscribe to.
pub const EVENTS: &[&str] = &[
    contracts::events::types::ORDER_CREATED,
    contracts::events::types::ORDER_CONFIRMED,
    contracts::events::types::ORDER_CANCELLED,
    contracts::events::types::PAYMENT_SUCCEEDED,
    contracts::events::types::PAYMENT_DECLINED,
    contracts::events::types::PAYMENT_REFUNDED,
];

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
}

/// One attempt of one delivery, as the deliveries log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub event_id: Uuid,
    pub event: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// When the receiver accepted it; `null` for a failed attempt.
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempted_at: DateTime<Utc>,
}

pub async fn insert(
    pool: &PgPool,
    url: &str,
    events: &[String],
    secret: &str,
) -> sqlx::Result<Webhook> {
    sqlx::query_as!(
        Webhook,
        "INSERT INTO webhooks (id, url, events, secret) VALUES ($1, $2, $3, $4)
         RETURNING id, url, events, active",
        Uuid::now_v7(),
        url,
        events,
        secret
    )
    .fetch_one(pool)
    .await
}

pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Webhook>> {
    sqlx::query_as!(
        Webhook,
        "SELECT id, url, events, active FROM webhooks ORDER BY created_at DESC, id DESC"
    )
    .fetch_all(pool)
    .await
}

/// Deletes the webhook and its pending deliveries; false if there was none.
pub async fn delete(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query!("DELETE FROM webhooks WHERE id = $1", id)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

pub async fn exists(pool: &PgPool, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1) AS "exists!""#,
        id
    )
    .fetch_one(pool)
    .await
}

/// Every attempt at delivering to webhook `id`, newest first.
pub async fn attempts(pool: &PgPool, id: Uuid, limit: i64) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as!(
        Attempt,
        "SELECT d.event_id, d.event_type AS event, a.attempt, a.status_code, a.error,
                CASE WHEN a.status_code BETWEEN 200 AND 299 THEN a.attempted_at END AS delivered_at,
                a.attempted_at
         FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
         WHERE d.webhook_id = $1
         ORDER BY a.attempted_at DESC, a.attempt DESC LIMIT $2",
        id,
        limit
    )
    .fetch_all(pool)
    .await
}

/// The event types some active webhook is subscribed to: an event of another type that
/// tells no user needs no transaction at all.
pub async fn subscribed(pool: &PgPool) -> sqlx::Result<HashSet<String>> {
    let types: Vec<String> = sqlx::query_scalar!(
        r#"SELECT DISTINCT unnest(events) AS "event_type!" FROM webhooks WHERE active"#
    )
    .fetch_all(pool)
    .await?;
    Ok(types.into_iter().collect())
}

/// Queues each event (with its envelope as the body) for every active webhook
/// subscribed to its type, once per webhook and event, in one statement.
pub async fn enqueue_all(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&Envelope, String)],
) -> sqlx::Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    sqlx::query!(
        "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event_type, body)
         SELECT gen_random_uuid(), w.id, e.event_id, e.event_type, e.body
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS e(event_id, event_type, body)
         JOIN webhooks w ON w.active AND e.event_type = ANY(w.events)
         ON CONFLICT (webhook_id, event_id) DO NOTHING",
        &events.iter().map(|(e, _)| e.id).collect::<Vec<_>>(),
        &events
            .iter()
            .map(|(e, _)| e.event_type.as_str())
            .collect::<Vec<_>>() as &[&str],
        &events
            .iter()
            .map(|(_, body)| body.as_str())
            .collect::<Vec<_>>() as &[&str],
    )
    .execute(&mut **tx)
    .await
    .map(|done| done.rows_affected())
}
