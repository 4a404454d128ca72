//! Email over SMTP: composing a notification's message and the worker that sends the
//! queued ones.
//!
//! An email is a row of `emails` written in the same transaction as its notification.
//! The worker claims due rows (moving their next attempt past a lease, so a second
//! worker leaves them alone), sends, and marks each sent, or schedules its next attempt
//! with backoff, or gives up after the last. A worker that dies between sending and
//! marking leaves the row to be sent again after the lease; the `Message-ID`, derived
//! from the event, is the same both times, so mail systems recognise the duplicate.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::queue::{self, Backoff};

/// How long one SMTP conversation may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends email through one SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// A mailer for `smtp_url`, sending from `from`.
    pub fn new(smtp_url: &str, from: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|_| anyhow::anyhow!("SMTP_URL is not a valid smtp:// or smtps:// URL"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        let from = from
            .parse()
            .map_err(|_| anyhow::anyhow!("MAIL_FROM is not a valid mailbox"))?;
        Ok(Self { transport, from })
    }

    async fn send(&self, email: &QueuedEmail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(email.recipient.parse()?)
            .subject(&email.subject)
            .message_id(Some(email.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                email.text_body.clone(),
                email.html_body.clone(),
            ))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

struct QueuedEmail {
    notification_id: Uuid,
    recipient: String,
    subject: String,
    text_body: String,
    html_body: String,
    message_id: String,
    attempts: i32,
}

/// Sends due emails until `cancel`.
pub async fn run(
    pool: PgPool,
    mailer: Mailer,
    backoff: Backoff,
    wake: Arc<Notify>,
    cancel: tokio_util::sync::CancellationToken,
) {
    queue::run("email", backoff.poll, &wake, cancel, || {
        send_due(&pool, &mailer, &backoff)
    })
    .await;
}

async fn send_due(pool: &PgPool, mailer: &Mailer, backoff: &Backoff) -> anyhow::Result<usize> {
    let due: Vec<QueuedEmail> = sqlx::query_as!(
        QueuedEmail,
        "UPDATE emails SET attempts = attempts + 1, next_attempt_at = now() + $1
         WHERE notification_id IN (
             SELECT notification_id FROM emails
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT 16 FOR UPDATE SKIP LOCKED)
         RETURNING notification_id, recipient, subject, text_body, html_body, message_id, attempts",
        queue::lease(SEND_TIMEOUT) as _
    )
    .fetch_all(pool)
    .await?;
    let results = futures::future::join_all(due.iter().map(|email| mailer.send(email))).await;
    for (email, result) in due.iter().zip(results) {
        match result {
            Ok(()) => {
                sqlx::query!(
                    "UPDATE emails SET status = 'sent', sent_at = now(), last_error = NULL
                     WHERE notification_id = $1",
                    email.notification_id
                )
                .execute(pool)
                .await?;
                tracing::info!(notification_id = %email.notification_id, attempt = email.attempts, "email sent");
            }
            Err(error) => {
                let error = format!("{error:#}");
                let gave_up = backoff.exhausted(email.attempts);
                sqlx::query!(
                    "UPDATE emails SET last_error = $2,
                            status = CASE WHEN $3 THEN 'failed' ELSE 'pending' END,
                            next_attempt_at = now() + $4
                     WHERE notification_id = $1",
                    email.notification_id,
                    &error,
                    gave_up,
                    backoff.after(email.attempts) as _
                )
                .execute(pool)
                .await?;
                tracing::warn!(notification_id = %email.notification_id, attempt = email.attempts, gave_up, error, "email not sent");
            }
        }
    }
    Ok(due.len())
}

/// The emails sent about an order, as steps of its journey in the ops console.
pub fn milestones(pool: PgPool) -> service_host::Milestones {
    use futures::FutureExt;
    std::sync::Arc::new(move |key, since| {
        let pool = pool.clone();
        async move {
            let Ok(order_id) = Uuid::parse_str(&key) else {
                return Ok(Vec::new());
            };
            // `sent_at >= $2` holds only where it is set.
            let sent = sqlx::query!(
                r#"SELECT n.kind, e.sent_at AS "sent_at!" FROM notifications n
                     JOIN emails e ON e.notification_id = n.id
                    WHERE n.order_id = $1 AND e.sent_at >= $2"#,
                order_id,
                since
            )
            .fetch_all(&pool)
            .await?;
            Ok(sent
                .into_iter()
                .map(|row| contracts::ops::JourneyStep {
                    step: format!("email.sent ({})", row.kind),
                    service: crate::state::SERVICE.to_owned(),
                    at: row.sent_at,
                    event_id: None,
                    traceparent: None,
                })
                .collect())
        }
        .boxed()
    })
}
