//! Bodies pass through the gateway as streams: a 50 MiB answer does not make the
//! gateway process hold 50 MiB.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::RawQuery;
use axum::routing::get;
use futures::StreamExt;
use test_support::ServiceProcess;

const CHUNK: usize = 64 * 1024;
const TOTAL: usize = 50 * 1024 * 1024;

/// A stand-in user service: a tiny JWKS normally, 50 MiB when asked with `?big`.
async fn stand_in() -> String {
    let app = Router::new().route(
        "/auth/jwks",
        get(|RawQuery(query): RawQuery| async move {
            if query.as_deref() == Some("big") {
                let chunks = futures::stream::iter(0..TOTAL / CHUNK)
                    .map(|_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK]));
                Body::from_stream(chunks)
            } else {
                Body::from(r#"{"keys":[]}"#)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_50_mib_answer_streams_through_without_the_gateway_holding_it() {
    let upstream = stand_in().await;
    let key = "test-streaming-service-key".to_owned();
    let env: HashMap<String, String> = [
        ("LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("REDIS_URL", test_support::redis_url()),
        (
            "RATE_LIMIT_KEY_PREFIX",
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        ),
        ("USER_SERVICE_URL", upstream.clone()),
        ("USER_SERVICE_KEY", key.clone()),
        ("INVENTORY_SERVICE_KEY", key.clone()),
        ("ORDER_SERVICE_KEY", key.clone()),
        ("PAYMENT_SERVICE_KEY", key.clone()),
        ("NOTIFICATION_SERVICE_KEY", key),
        ("RUST_LOG", "warn,gateway=info,service_kit=info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut gateway = ServiceProcess::start(env!("CARGO_BIN_EXE_gateway"), &env);
    let url = gateway.wait_until_listening(Duration::from_secs(30)).await;
    // Warm up: connections, buffers and the allocator's arenas exist before measuring.
    let small = reqwest::get(format!("{url}/api/auth/jwks")).await.unwrap();
    assert_eq!(small.status(), 200);
    let before = gateway.memory_kib("VmHWM").unwrap();

    let response = reqwest::get(format!("{url}/api/auth/jwks?big"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len();
    }
    assert_eq!(received, TOTAL);
    let after = gateway.memory_kib("VmHWM").unwrap();
    let grown_mib = (after.saturating_sub(before)) as f64 / 1024.0;
    eprintln!(
        "gateway peak RSS {before} KiB -> {after} KiB (+{grown_mib:.1} MiB) for a 50 MiB body"
    );
    assert!(grown_mib < 20.0, "peak RSS grew by {grown_mib:.1} MiB");
}
