//! A peer client aimed at a wiremock server, with settings made for fast tests.

use service_client::{Client, ClientSettings, PeerConfig};
use service_kit::config::Secret;

pub const PEER_KEY: &str = "peer-service-key-for-tests";

pub fn settings() -> ClientSettings {
    ClientSettings {
        http_client_attempt_timeout_ms: 500,
        http_client_deadline_ms: 2_000,
        http_client_backoff_base_ms: 1,
        http_client_backoff_max_ms: 5,
        http_client_breaker_consecutive_failures: 1_000,
        http_client_breaker_minimum_calls: 1_000,
        http_client_breaker_window: 1_000,
        http_client_breaker_slow_call_rate: 1.0,
        ..ClientSettings::default()
    }
}

pub fn peer(url: &str, settings: &ClientSettings) -> PeerConfig {
    PeerConfig::new("peer", url, Secret::new(PEER_KEY), settings)
}

pub fn client(url: &str) -> Client {
    Client::new("tester", peer(url, &settings())).unwrap()
}

pub fn client_with(url: &str, adjust: impl FnOnce(&mut PeerConfig)) -> Client {
    let mut peer = peer(url, &settings());
    adjust(&mut peer);
    Client::new("tester", peer).unwrap()
}
