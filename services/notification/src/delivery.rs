//! Sending webhook deliveries: signed, retried with backoff from a durable queue, every
//! attempt logged.
//!
//! Each attempt POSTs the stored envelope with `X-Event-Name`, `X-Event-Id`,
//! `X-Timestamp` (unix seconds) and `X-Signature: sha256=<hex HMAC-SHA256(secret,
//! timestamp + "." + body)>`. A 2xx answer delivers it; anything else (another status,
//! a timeout, a refused connection) is retried until the attempts run out. A target
//! that now resolves to an internal address is refused and not retried.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::queue::{self, Backoff};
use crate::targets::TargetPolicy;

/// The signature over `timestamp + "." + body` with `secret`, as sent in `X-Signature`.
pub fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// What the webhook worker needs.
#[derive(Clone)]
pub struct Sender {
    pub pool: PgPool,
    pub client: reqwest::Client,
    pub policy: TargetPolicy,
    pub timeout: Duration,
    pub backoff: Backoff,
    /// Woken when this process queued deliveries.
    pub wake: Arc<Notify>,
}

struct Due {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    body: String,
    attempts: i32,
    url: String,
    secret: String,
}

/// How one attempt went.
enum Outcome {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
    Refused(String),
}

impl Sender {
    /// Sends due deliveries until `cancel`.
    pub async fn run(self, cancel: tokio_util::sync::CancellationToken) {
        queue::run("webhooks", self.backoff.poll, &self.wake, cancel, || {
            self.send_due()
        })
        .await;
    }

    async fn send_due(&self) -> anyhow::Result<usize> {
        let due: Vec<Due> = sqlx::query_as!(
            Due,
            "UPDATE webhook_deliveries d
             SET attempts = d.attempts + 1, next_attempt_at = now() + $1
             FROM webhooks w
             WHERE w.id = d.webhook_id AND d.id IN (
                 SELECT id FROM webhook_deliveries
                 WHERE status = 'pending' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT 16 FOR UPDATE SKIP LOCKED)
             RETURNING d.id, d.event_id, d.event_type, d.body, d.attempts, w.url, w.secret",
            queue::lease(self.timeout) as _
        )
        .fetch_all(&self.pool)
        .await?;
        let outcomes = futures::future::join_all(due.iter().map(|d| self.attempt(d))).await;
        for (delivery, outcome) in due.iter().zip(outcomes) {
            self.record(delivery, outcome).await?;
        }
        Ok(due.len())
    }

    async fn attempt(&self, delivery: &Due) -> Outcome {
        if let Err(refused) = self.policy.check(&delivery.url).await {
            return Outcome::Refused(format!("target refused: {refused}"));
        }
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let response = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("x-event-name", &delivery.event_type)
            .header("x-event-id", delivery.event_id.to_string())
            .header(
                "x-signature",
                signature(&delivery.secret, &timestamp, &delivery.body),
            )
            .header("x-timestamp", timestamp)
            .body(delivery.body.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                Outcome::Delivered(response.status().as_u16())
            }
            Ok(response) => Outcome::Failed {
                status: Some(response.status().as_u16()),
                error: format!("answered {}", response.status()),
            },
            Err(error) if error.is_timeout() => Outcome::Failed {
                status: None,
                error: format!("no answer within {:?}", self.timeout),
            },
            Err(error) => Outcome::Failed {
                status: None,
                error: format!("could not be reached: {}", root_cause(&error)),
            },
        }
    }

    async fn record(&self, delivery: &Due, outcome: Outcome) -> sqlx::Result<()> {
        let (status_code, error, state) = match &outcome {
            Outcome::Delivered(code) => (Some(i32::from(*code)), None, "delivered"),
            Outcome::Failed { status, error } => {
                let state = if self.backoff.exhausted(delivery.attempts) {
                    "failed"
                } else {
                    "pending"
                };
                (status.map(i32::from), Some(error.clone()), state)
            }
            Outcome::Refused(error) => (None, Some(error.clone()), "failed"),
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query!(
            "INSERT INTO webhook_attempts (delivery_id, attempt, status_code, error)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            delivery.id,
            delivery.attempts,
            status_code,
            error.as_deref()
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE webhook_deliveries SET status = $2, next_attempt_at = now() + $3 WHERE id = $1",
            delivery.id,
            state,
            self.backoff.after(delivery.attempts) as _
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match state {
            "delivered" => {
                tracing::info!(event_id = %delivery.event_id, attempt = delivery.attempts, "webhook delivered")
            }
            _ => {
                tracing::warn!(event_id = %delivery.event_id, attempt = delivery.attempts, state, error = error.unwrap_or_default(), "webhook not delivered")
            }
        }
        Ok(())
    }
}

/// The innermost error's message: reqwest's outer ones only say "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_of_timestamp_dot_body() {
        // printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature("secret", "1700000000", "{}"),
            "sha256=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
