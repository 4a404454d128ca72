//! Signing keys: shared by replicas, kept across restarts, rotated without breaking
//! tokens already issued.

use crate::common;

use crate::common::{start, verify};
use reqwest::Client;
use sqlx::Connection;
use test_support::TestDatabase;

/// A client for one running service, with the service key.
async fn jwks(url: &str) -> jsonwebtoken::jwk::JwkSet {
    Client::new()
        .get(format!("{url}/auth/jwks"))
        .bearer_auth(common::SERVICE_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn register_and_login(url: &str, email: &str) -> String {
    let client = Client::new();
    let body = serde_json::json!({"email": email, "password": "password123", "name": "K"});
    let response = client
        .post(format!("{url}/auth/register"))
        .bearer_auth(common::SERVICE_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    login(url, email).await
}

async fn login(url: &str, email: &str) -> String {
    let body = serde_json::json!({"email": email, "password": "password123"});
    let response: serde_json::Value = Client::new()
        .post(format!("{url}/auth/login"))
        .bearer_auth(common::SERVICE_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["access_token"].as_str().unwrap().to_owned()
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn tokens_stay_valid_across_a_restart() {
    let db = TestDatabase::create().await;
    let first = start(db.url(), |_| {}).await;
    let token = register_and_login(&first.url(), "restart@example.com").await;
    first.stop().await.unwrap();

    let second = start(db.url(), |_| {}).await;
    verify(&token, &jwks(&second.url()).await).expect("the old token verifies after a restart");
    let new_token = login(&second.url(), "restart@example.com").await;
    assert_eq!(
        kid(&new_token),
        kid(&token),
        "the restart created a new key"
    );
}

#[tokio::test]
async fn replicas_started_together_on_one_database_share_one_key() {
    let db = TestDatabase::create().await;
    let (a, b) = tokio::join!(start(db.url(), |_| {}), start(db.url(), |_| {}));
    let token = register_and_login(&a.url(), "replica@example.com").await;
    verify(&token, &jwks(&b.url()).await)
        .expect("a token from one replica verifies with the other's JWKS");
    let from_b = login(&b.url(), "replica@example.com").await;
    assert_eq!(kid(&from_b), kid(&token));
    assert_eq!(jwks(&a.url()).await.keys.len(), 1);
}

#[tokio::test]
async fn after_rotation_old_tokens_verify_and_new_tokens_carry_the_new_kid() {
    let db = TestDatabase::create().await;
    let service = start(db.url(), |_| {}).await;
    let old_token = register_and_login(&service.url(), "rotate@example.com").await;

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_user-service"))
        .arg("rotate-signing-key")
        .env_clear()
        .env("DATABASE_URL", db.url())
        .env("USER_SERVICE_KEY", common::SERVICE_KEY)
        .env("REDIS_URL", test_support::redis_url())
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let keys = jwks(&service.url()).await;
    assert_eq!(
        keys.keys.len(),
        2,
        "the JWKS publishes the new and the previous key"
    );
    verify(&old_token, &keys).expect("a token signed before the rotation still verifies");
    let new_token = login(&service.url(), "rotate@example.com").await;
    assert_ne!(kid(&new_token), kid(&old_token));
    verify(&new_token, &keys).expect("the new token verifies");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains(&kid(&new_token)),
        "the command names the new key: {printed}"
    );
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_once_its_tokens_have_expired() {
    let db = TestDatabase::create().await;
    let service = start(db.url(), |_| {}).await;
    let old_token = register_and_login(&service.url(), "expire@example.com").await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    user_service::signing_keys::rotate(&pool).await.unwrap();

    // Retired longer ago than a token lifetime (900 s) plus the skew allowance.
    let mut connection = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query!(
        "UPDATE signing_keys SET retired_at = now() - interval '961 seconds' WHERE kid = $1",
        kid(&old_token),
    )
    .execute(&mut connection)
    .await
    .unwrap();
    let keys = jwks(&service.url()).await;
    assert_eq!(keys.keys.len(), 1);
    assert!(keys.find(&kid(&old_token)).is_none());

    sqlx::query!(
        "UPDATE signing_keys SET retired_at = now() - interval '900 seconds' WHERE kid = $1",
        kid(&old_token),
    )
    .execute(&mut connection)
    .await
    .unwrap();
    assert!(jwks(&service.url()).await.find(&kid(&old_token)).is_some());
}
