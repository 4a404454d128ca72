//! The notification service: tells users about their orders (a stored notification
//! and an email over SMTP) and tells subscribers about events (signed webhooks), each
//! exactly once per event, through outages of the mail server and the receivers.
//!
//! # Layout
//!
//! - [`config`]: every setting, from the environment.
//! - [`Application`]: wires the database, Redis, the event consumer and the two
//!   delivery workers into a [`service_kit::server::Server`].
//! - [`routes`]: `/notifications` and `/webhooks`.
//! - [`events`]: what each consumed event stores and queues.
//! - [`notifications`], [`webhooks`]: the models and their storage.
//! - [`email`]: composing and sending email; [`delivery`]: signing and sending webhooks.
//! - [`queue`]: the backoff and worker loop both queues share.
//! - [`targets`]: which webhook URLs may be called (no internal addresses).

pub mod config;
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
use contracts::ops::OpsApi;
use contracts::users::UserClient;
use event_bus::{Foundation, Subscription};
use service_kit::server::Server;

use crate::config::Config;
use crate::delivery::Sender;
use crate::email::Mailer;
pub use crate::state::{AppState, SERVICE};
use crate::targets::TargetPolicy;

/// The notification database's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/notification");

/// The port the notification service listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8003;

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
        let base = Foundation::connect(&config.service, &config.events, &MIGRATOR).await?;
        let subscription = Subscription {
            group: SERVICE,
            streams: &[streams::ORDER, streams::PAYMENT],
            event_types: events::HANDLED,
            order_key: None,
        };
        let ops = OpsApi::of(
            SERVICE,
            env!("CARGO_PKG_VERSION"),
            &base,
            Some(&subscription),
        )
        .with_milestones(email::milestones(base.pool.clone()));
        let service = Server::build(
            &config.service.http,
            DEFAULT_PORT,
            routes::router()
                .with_state(AppState {
                    pool: base.pool.clone(),
                    policy,
                })
                .merge(contracts::ops::router(ops)),
            &config.notification_service_key,
            base.readiness(),
        )
        .await?;

        let wakes = events::Wakes::default();
        base.start_effects(
            &service,
            subscription,
            events::Notifier::new(base.pool.clone(), users, wakes.clone()),
        );
        let backoff = config.backoff();
        let pool = base.pool.clone();
        service.spawn_task("email sender", move |cancel| {
            email::run(pool, mailer, backoff, wakes.emails, cancel)
        });
        let sender = Sender {
            pool: base.pool.clone(),
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
