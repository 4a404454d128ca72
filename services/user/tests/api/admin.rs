//! The first admin, from ADMIN_EMAIL / ADMIN_PASSWORD.

use crate::common;

use crate::common::start;
use service_kit::config::Secret;
use test_support::TestDatabase;
use user_service::config::Config;

/// The settings of a deployment with a first admin.
fn with_admin(config: &mut Config) {
    config.admin_email = Some("root@example.com".to_owned());
    config.admin_password = Some(Secret::new("admin-password"));
}

#[tokio::test]
async fn replicas_started_together_create_exactly_one_admin() {
    let db = TestDatabase::create().await;
    let replicas = futures::future::join_all((0..4).map(|_| start(db.url(), with_admin))).await;

    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let admins: Vec<(String, Vec<String>)> =
        sqlx::query!("SELECT email, roles FROM users WHERE lower(email) = 'root@example.com'")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.email, row.roles))
            .collect();
    assert_eq!(admins.len(), 1, "{admins:?}");
    assert_eq!(admins[0].1, ["user", "admin"]);

    let login = reqwest::Client::new()
        .post(format!("{}/auth/login", replicas[0].url()))
        .bearer_auth(common::SERVICE_KEY)
        .json(&serde_json::json!({"email": "root@example.com", "password": "admin-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token: serde_json::Value = login.json().await.unwrap();
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(
        token["access_token"].as_str().unwrap(),
    )
    .unwrap()
    .claims;
    assert_eq!(claims["roles"], serde_json::json!(["user", "admin"]));
}

#[tokio::test]
async fn an_account_registered_with_the_admin_email_is_not_promoted() {
    let db = TestDatabase::create().await;
    let first = start(db.url(), |_| {}).await;
    let response = reqwest::Client::new()
        .post(format!("{}/auth/register", first.url()))
        .bearer_auth(common::SERVICE_KEY)
        .json(&serde_json::json!({"email": "ROOT@example.com", "password": "squatter-pw", "name": "S"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    first.stop().await.unwrap();

    let _second = start(db.url(), with_admin).await;
    let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
    let roles: Vec<Vec<String>> =
        sqlx::query_scalar!("SELECT roles FROM users WHERE lower(email) = 'root@example.com'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(roles, [vec!["user".to_owned()]]);
}
