//! A service built by the host, as a service's `lib.rs` builds it: against a fresh
//! database and Redis keys of its own, its routes behind its key beside the ops API, its
//! relay publishing what it commits and its consumer applying what it reads.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use clap::Parser;
use event_bus::{Effect, Envelope, EventsConfig, HandlerError, Publisher, Tx, Wake};
use futures::future::BoxFuture;
use service_host::{Host, Spec};
use service_kit::config::{Secret, ServiceConfig};
use service_kit::server::RunningServer;
use sqlx::PgPool;
use test_support::{StreamKeys, TestDatabase};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("tests/migrations");

const KEY: &str = "test-host-service-key";

/// Consumes `thing.asked` from `asks`, publishes `thing.done` to `dones`.
const CONSUMER: Spec = Spec::new("things", "1.2.3", 0, &MIGRATOR)
    .publishes(&["dones"])
    .consumes(&["asks"], &["thing.asked"]);

/// Publishes `thing.done` from its one route, consumes nothing.
const PUBLISHER: Spec = Spec {
    name: "publisher",
    consumes: None,
    ..CONSUMER
};

#[derive(Parser)]
struct Config {
    #[command(flatten)]
    service: ServiceConfig,
    #[command(flatten)]
    events: EventsConfig,
}

struct Setup {
    db: TestDatabase,
    keys: StreamKeys,
    config: Config,
}

async fn setup() -> Setup {
    let db = TestDatabase::create().await;
    let keys = StreamKeys::new();
    let config: Config = test_support::service_settings("things", db.url(), &keys, &[]);
    Setup { db, keys, config }
}

fn key() -> Secret {
    service_kit::config::parse_secret(KEY).unwrap()
}

/// Records each event it applies and answers each with `thing.done`.
struct Recorder {
    dones: event_bus::Stream,
}

impl Effect for Recorder {
    fn apply<'a>(
        &'a self,
        tx: &'a mut Tx,
        events: &'a [Envelope],
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            for event in events {
                sqlx::query("INSERT INTO applied (event_id, event_type) VALUES ($1, $2)")
                    .bind(event.id)
                    .bind(&event.event_type)
                    .execute(&mut ***tx)
                    .await
                    .map_err(HandlerError::retry)?;
                event_bus::outbox::enqueue_caused_by(
                    tx,
                    &self.dones,
                    event,
                    "things",
                    "thing.done",
                    &(),
                )?;
            }
            Ok(())
        })
    }
}

#[derive(Clone)]
struct Routes {
    pool: PgPool,
    dones: event_bus::Stream,
    wake: Wake,
}

/// `POST /things`: commits a `thing.done` through the outbox.
async fn make_thing(State(routes): State<Routes>) -> axum::http::StatusCode {
    let mut tx = Tx::begin(&routes.pool).await.unwrap();
    let event = Envelope::new("thing.done", "publisher", &()).unwrap();
    tx.enqueue(&routes.dones, &event).unwrap();
    routes.wake.commit(tx).await.unwrap();
    axum::http::StatusCode::CREATED
}

fn routes(host: &Host) -> Router {
    Router::new()
        .route("/things", post(make_thing))
        .with_state(Routes {
            pool: host.pool.clone(),
            dones: host.stream("dones"),
            wake: host.wake(),
        })
}

async fn dones(setup: &Setup) -> Vec<serde_json::Value> {
    test_support::streams::envelopes(&format!("{}dones", setup.keys.prefix())).await
}

/// `service`'s `/ops/report`, asked as an admin.
async fn report_for_an_admin(service: &RunningServer) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/ops/report", service.url()))
        .bearer_auth(KEY)
        .header("x-user-id", uuid::Uuid::new_v4().to_string())
        .header("x-user-roles", "admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn start(spec: &'static Spec, setup: &Setup) -> RunningServer {
    let host = Host::connect(spec, &setup.config.service, &setup.config.events)
        .await
        .unwrap();
    let dones = host.stream("dones");
    let routes = routes(&host);
    let launch = host.serve(routes, &key());
    let launch = match spec.consumes {
        Some(_) => launch.consuming(Recorder { dones }),
        None => launch,
    };
    launch.start().await.unwrap().spawn()
}

#[tokio::test]
async fn a_consuming_service_applies_each_event_once_and_publishes_its_answers() {
    let setup = setup().await;
    let service = start(&CONSUMER, &setup).await;
    let asks: Vec<Envelope> = (0..3)
        .map(|n| {
            Envelope::new("thing.asked", "asker", &serde_json::json!({ "n": n }))
                .unwrap()
                .keyed(format!("thing-{n}"))
        })
        .collect();
    let publisher = Publisher::new(test_support::redis().await, 10_000);
    let asks_stream = format!("{}asks", setup.keys.prefix());
    publisher.publish_batch(&asks_stream, &asks).await.unwrap();
    // Delivered twice: applied once.
    publisher
        .publish_batch(&asks_stream, &asks[..1])
        .await
        .unwrap();

    let pool = PgPool::connect(setup.db.url()).await.unwrap();
    let applied = test_support::eventually(Duration::from_secs(10), || async {
        dones(&setup).await.len() == 3
    })
    .await;
    assert!(
        applied,
        "three answers published: {:?}",
        dones(&setup).await
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM applied")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 3);
    for done in dones(&setup).await {
        assert_eq!(done["type"], "thing.done");
        assert!(
            done["partitionkey"].as_str().unwrap().starts_with("thing-"),
            "{done}"
        );
    }

    // The ops report names the service, and the partition its group reads.
    let report = report_for_an_admin(&service).await;
    assert_eq!(report["service"], "things");
    assert_eq!(report["version"], "1.2.3");
    assert_eq!(report["ready"], true);
    let streams = report["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{report}");
    assert_eq!(streams[0]["stream"], asks_stream.as_str());
    assert_eq!(streams[0]["group"], "things");
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_publishing_service_serves_its_routes_behind_its_key_and_relays_what_it_commits() {
    let setup = setup().await;
    let service = start(&PUBLISHER, &setup).await;
    let http = reqwest::Client::new();
    let things = format!("{}/things", service.url());

    let unkeyed = http.post(&things).send().await.unwrap();
    assert_eq!(unkeyed.status(), 401);
    let made = http.post(&things).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(made.status(), 201);
    let relayed = test_support::eventually(Duration::from_secs(10), || async {
        dones(&setup).await.len() == 1
    })
    .await;
    assert!(relayed, "the committed event reached its stream");

    // The ops API is the service's too, behind the same key, for admins only.
    let report = format!("{}/ops/report", service.url());
    assert_eq!(http.get(&report).send().await.unwrap().status(), 401);
    let as_user = http
        .get(&report)
        .bearer_auth(KEY)
        .header("x-user-id", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(as_user.status(), 403);
    let report = report_for_an_admin(&service).await;
    assert_eq!(report["service"], "publisher");
    assert_eq!(report["streams"], serde_json::json!([]));
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_spec_and_its_effect_must_agree_or_the_service_does_not_start() {
    let setup = setup().await;

    let host = Host::connect(&CONSUMER, &setup.config.service, &setup.config.events)
        .await
        .unwrap();
    let without_effect = host.serve(Router::new(), &key()).start().await;
    let error = without_effect.err().unwrap().to_string();
    assert!(
        error.contains("consumes events but was given no effect"),
        "{error}"
    );

    let host = Host::connect(&PUBLISHER, &setup.config.service, &setup.config.events)
        .await
        .unwrap();
    let dones = host.stream("dones");
    let with_effect = host
        .serve(Router::new(), &key())
        .consuming(Recorder { dones })
        .start()
        .await;
    let error = with_effect.err().unwrap().to_string();
    assert!(error.contains("its spec consumes nothing"), "{error}");
}
