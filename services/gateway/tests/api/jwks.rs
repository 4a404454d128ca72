//! The gateway's key set: requests that arrive while it is being fetched wait for that
//! one fetch instead of being refused, and a key withdrawn from it stops vouching for
//! the tokens every worker remembers; tokens naming kids it does not hold fetch it again
//! at most once per cooldown.

use crate::common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use gateway::auth::Verifier;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use service_client::{Client, ClientSettings, PeerConfig};
use service_kit::config::Secret;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The public key of `signing` as a JWK named `kid`.
fn jwk(signing: &SigningKey, kid: &str) -> serde_json::Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes()),
    })
}

fn verifier_of(user_service: &MockServer) -> Verifier {
    let peer = PeerConfig::new(
        "user",
        user_service.uri(),
        Secret::new("test-user-service-key"),
        &ClientSettings::default(),
    );
    Verifier::new(
        Client::new("gateway", peer).unwrap(),
        "switchyard",
        "switchyard-api",
    )
}

/// A user service whose JWKS answers the key `signing` as `k1` (the first `times`
/// fetches, or every one), a verifier that has fetched it, and what signs tokens for
/// it.
async fn serving_k1(
    signing: &SigningKey,
    times: Option<u64>,
) -> (MockServer, Verifier, EncodingKey, Header) {
    let user_service = MockServer::start().await;
    let mock = Mock::given(method("GET"))
        .and(path("/auth/jwks"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "keys": [jwk(signing, "k1")] })),
        );
    match times {
        Some(times) => mock.up_to_n_times(times).mount(&user_service).await,
        None => mock.mount(&user_service).await,
    }
    let verifier = verifier_of(&user_service);
    verifier.refresh().await.unwrap();
    let key = EncodingKey::from_ed_der(signing.to_pkcs8_der().unwrap().as_bytes());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    (user_service, verifier, key, header)
}

#[tokio::test]
async fn a_withdrawn_key_stops_vouching_for_tokens_a_worker_remembers() {
    let signing = SigningKey::from_bytes(&[9; 32]);
    let (user_service, verifier, key, header) = serving_k1(&signing, Some(1)).await;
    let worker = verifier.for_worker();
    let token = common::encode_claims(&header, &key, json!({}));
    assert!(worker.verify(&token).await.is_ok());
    assert!(worker.verify(&token).await.is_ok(), "remembered");

    // The key set is fetched again (the periodic refresh, on the shared verifier) and
    // no longer holds k1.
    Mock::given(method("GET"))
        .and(path("/auth/jwks"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "keys": [jwk(&signing, "k2")] })),
        )
        .mount(&user_service)
        .await;
    verifier.refresh().await.unwrap();
    assert!(
        worker.verify(&token).await.is_err(),
        "the worker's memory of the token lapsed with the key set"
    );
}

#[tokio::test]
async fn a_refused_token_repeated_is_refused_without_another_signature_check() {
    let signing = SigningKey::from_bytes(&[11; 32]);
    let (_user_service, verifier, key, header) = serving_k1(&signing, None).await;
    let worker = verifier.for_worker();
    let expired = common::encode_claims(&header, &key, json!({"exp": 1_000_000_000}));

    for _ in 0..3 {
        assert!(worker.verify(&expired).await.is_err());
    }
    assert_eq!(
        verifier.signature_checks(),
        1,
        "refused once, then from memory"
    );

    let valid = common::encode_claims(&header, &key, json!({}));
    assert!(
        worker.verify(&valid).await.is_ok(),
        "other tokens are checked as ever"
    );
    assert_eq!(verifier.signature_checks(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_racing_the_first_key_fetch_all_pass_on_one_fetch() {
    let signing = SigningKey::from_bytes(&[7; 32]);
    let jwk = jwk(&signing, "k1");
    let user_service = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/auth/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "keys": [jwk] }))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&user_service)
        .await;
    let verifier = verifier_of(&user_service);
    let key = EncodingKey::from_ed_der(signing.to_pkcs8_der().unwrap().as_bytes());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());

    // Distinct tokens, so each one is really verified rather than remembered.
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let token = common::encode_claims(&header, &key, json!({}));
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for racer in racers {
        let verdict = racer.await.unwrap();
        assert!(
            verdict.is_ok(),
            "refused while the keys were on their way: {verdict:?}"
        );
    }
    let fetches = user_service.received_requests().await.unwrap().len();
    assert_eq!(
        fetches, 1,
        "one fetch serves every request that waited for it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_does_not_fetch_the_key_set_again_within_the_cooldown() {
    let signing = SigningKey::from_bytes(&[13; 32]);
    let (user_service, verifier, key, k1) = serving_k1(&signing, None).await;
    let forged = |kid: String| {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        common::encode_claims(&header, &key, json!({}))
    };

    // Racing, then one after another: each names a kid the key set does not hold.
    let racers: Vec<_> = (0..20)
        .map(|n| {
            let (verifier, token) = (verifier.for_worker(), forged(format!("racing-{n}")));
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for racer in racers {
        assert!(racer.await.unwrap().is_err());
    }
    for n in 0..20 {
        assert!(
            verifier
                .verify(&forged(format!("in-turn-{n}")))
                .await
                .is_err()
        );
    }
    assert_eq!(
        user_service.received_requests().await.unwrap().len(),
        1,
        "only the first fetch: the cooldown ({:?}) has not passed",
        gateway::auth::REFRESH_COOLDOWN
    );
    let valid = common::encode_claims(&k1, &key, json!({}));
    assert!(
        verifier.verify(&valid).await.is_ok(),
        "the held key still vouches"
    );
}
