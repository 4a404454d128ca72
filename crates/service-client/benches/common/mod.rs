//! What both benchmarks call: a local server answering `GET /ok`, and clients for it.
#![allow(dead_code)] // each benchmark uses its own part

use axum::Router;
use axum::routing::get;
use service_client::{Client, ClientSettings, PeerConfig};
use service_kit::config::Secret;

pub const KEY: &str = "bench-key-0123456789";

/// Starts the server on `runtime`; returns its base URL.
pub fn start_server(runtime: &tokio::runtime::Runtime) -> String {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new().route("/ok", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    })
}

/// Plain reqwest, as the baseline.
pub fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .expect("reqwest")
}

/// The service client with default settings.
pub fn client(runtime: &tokio::runtime::Runtime, url: &str) -> Client {
    let _guard = runtime.enter();
    Client::new(
        "bench",
        PeerConfig::new("bench", url, Secret::new(KEY), &ClientSettings::default()),
    )
    .expect("client")
}
