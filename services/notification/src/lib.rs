//! The notification service: tells users about their orders (a stored notification
//! and an email over SMTP) and tells subscribers about events (signed webhooks), each
//! exactly once per event, through outages of the mail server and the receivers.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - `contract` (its tests): what it reads of each event it consumes and of each peer
//!   answer it decodes, checked against the pact file.
//! - [`Application`]: wires the database, Redis, the event consumer and the two
//!   delivery workers into a [`service_kit::server::Server`].
//! - [`routes`]: `/notifications` and `/webhooks`.
//! - [`events`]: what each consumed event stores and queues.
//! - [`notifications`], [`webhooks`]: the models and their storage.
//! - [`email`]: composing and sending email; [`delivery`]: signing and sending webhooks.
//! - [`queue`]: the backoff and worker loop both queues share.
//! - [`targets`]: which webhook URLs may be called (no internal addresses).

pub mod config;
#[cfg(test)]
mod contract;
pub mod delivery;
pub mod email;
pub mod events;
pub mod notifications;
pub mod queue;
pub mod routes;
pub mod state;
pub mod targets;
pub mod webhooks;

use std::time::Duration;

use contracts::events::streams;
use contracts::users::UserClient;
use service_host::{Host, Spec};
use service_kit::server::Server;

use crate::config::Config;
use crate::delivery::Sender;
use crate::email::Mailer;
pub use crate::state::{AppState, SERVICE};
use crate::targets::TargetPolicy;

/// The notification database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/notification");

/// The notification service: it tells users and webhook subscribers about orders, in any
/// order the events come (each notification stands alone). It listens on 8003 unless told
/// otherwise.
pub const SPEC: Spec = Spec::new(SERVICE, env!("CARGO_PKG_VERSION"), 8003, &MIGRATOR)
    .consumes_in_any_order(&[streams::ORDER, streams::PAYMENT], events::HANDLED);

/// Builds the notification service.
pub struct Application;

impl Application {
    /// Connects (waiting for the database and Redis), migrates, and starts the event
    /// consumer and the email and webhook workers beside the HTTP server.
    pub async fn build(config: Config) -> anyhow::Result<Server> {
        let users = UserClient::new(config.user_service.client(SERVICE, &config.client)?);
        let mailer = Mailer::new(&config.smtp_url, &config.mail_from)?;
        let policy = TargetPolicy {
            allow_private: config.webhook_allow_private,
        };
        let timeout = Duration::from_millis(config.webhook_timeout_ms);
        let webhook_client = targets::client(policy, timeout)?;
        let host = Host::connect(&SPEC, &config.service, &config.events).await?;
        let pool = host.pool.clone();
        let wakes = events::Wakes::default();
        let notifier = events::Notifier::new(pool.clone(), users, wakes.clone());
        let state = AppState {
            pool: pool.clone(),
            policy,
        };
        let service = host
            .serve(
                routes::router().with_state(state),
                &config.notification_service_key,
            )
            .consuming(notifier)
            .with_milestones(email::milestones(pool.clone()))
            .start()
            .await?;

        let backoff = config.backoff();
        let emails = pool.clone();
        service.spawn_task("email sender", move |cancel| {
            email::run(emails, mailer, backoff, wakes.emails, cancel)
        });
        let sender = Sender {
            pool,
            client: webhook_client,
            policy,
            timeout,
            backoff,
            wake: wakes.deliveries,
        };
        service.spawn_task("webhook sender", move |cancel| sender.run(cancel));
        Ok(service)
    }
}
