//! The user API over real HTTP against a real database.
//!
//! One file: the user API's routes, one test group a route, over one harness.

use crate::common;

use crate::common::{SERVICE_KEY, assert_problem, spawn_app, verify};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_registered_user_logs_in_and_the_token_verifies_against_the_jwks_with_every_claim() {
    let app = spawn_app().await;
    let response = app
        .register("ada@example.com", "correct horse", "Ada")
        .await;
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.unwrap();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada");
    assert_eq!(user["roles"], json!(["user"]));
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        !user.to_string().contains("argon2") && user.get("password_hash").is_none(),
        "the hash leaked: {user}"
    );

    let response = app.login("ada@example.com", "correct horse").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let claims = verify(token, &app.jwks().await).expect("the token verifies");
    assert_eq!(claims["iss"], "switchyard");
    assert_eq!(claims["aud"], "switchyard-api");
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["roles"], json!(["user"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 900);
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn the_token_lifetime_issuer_and_audience_follow_the_configuration() {
    let app = common::spawn_app_with(|config| {
        config.jwt_ttl_seconds = 120;
        config.jwt_issuer = "other-issuer".to_owned();
        config.jwt_audience = "other-audience".to_owned();
    })
    .await;
    let user = app.new_user().await;
    let token = app.token(&user.email, &user.password).await;
    // The default verifier expects the default issuer: a token from elsewhere fails.
    assert!(verify(&token, &app.jwks().await).is_err());
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "other-issuer");
    assert_eq!(claims["aud"], "other-audience");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        120
    );
}

#[tokio::test]
async fn an_email_registered_again_in_another_case_is_a_conflict() {
    let app = spawn_app().await;
    assert_eq!(
        app.register("Grace@Example.com", "password1", "Grace")
            .await
            .status(),
        201
    );
    let response = app
        .register("  grace@EXAMPLE.com ", "password2", "Other")
        .await;
    let problem = assert_problem(response, 409).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already registered")
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_user() {
    let app = spawn_app().await;
    let attempts = (0..8).map(|i| {
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        app.register(email, "password123", "Racer")
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_malformed_email_a_short_password_and_an_empty_name_are_422_problems() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": "password1", "name": "A"}),
            "email",
        ),
        (
            json!({"email": "a@example.com", "password": "short", "name": "A"}),
            "password",
        ),
        (
            json!({"email": "a@example.com", "password": "password1", "name": "  "}),
            "name",
        ),
        (json!({"password": "password1", "name": "A"}), "email"),
    ];
    for (body, field) in cases {
        let response = app.post_json("/auth/register", &body).await;
        let problem = assert_problem(response, 422).await;
        let errors = problem["errors"].as_array().expect("field errors");
        assert_eq!(errors.len(), 1, "{problem}");
        assert_eq!(errors[0]["field"], field, "{problem}");
    }
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = spawn_app().await;
    let response = app
        .post_json("/auth/register", &json!({"email": "x", "password": "y"}))
        .await;
    let problem = assert_problem(response, 422).await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "name"]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_identical_401_bodies() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let attempt = |email: String, password: &'static str| {
        app.request(Method::POST, "/auth/login")
            .header("x-request-id", "login-attempt")
            .json(&json!({ "email": email, "password": password }))
            .send()
    };
    let wrong_password = attempt(user.email.clone(), "not the password")
        .await
        .unwrap();
    let unknown_email = attempt("nobody@example.com".into(), "not the password")
        .await
        .unwrap();
    assert_eq!(wrong_password.status(), 401);
    assert_eq!(unknown_email.status(), 401);
    let wrong_password = wrong_password.text().await.unwrap();
    let unknown_email = unknown_email.text().await.unwrap();
    assert_eq!(wrong_password, unknown_email);
    assert!(wrong_password.contains("Invalid email or password"));
}

#[tokio::test]
async fn malformed_json_and_a_wrong_content_type_are_400_problems() {
    let app = spawn_app().await;
    let malformed = app
        .request(Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body(r#"{"email": "a@example.com", "#)
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;

    let form = app
        .request(Method::POST, "/auth/register")
        .header("content-type", "text/plain")
        .body(r#"{"email":"a@example.com","password":"password1","name":"A"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(form, 400).await;

    let wrong_type = app
        .post_json(
            "/auth/register",
            &json!({"email": 5, "password": "password1", "name": "A"}),
        )
        .await;
    assert_problem(wrong_type, 422).await;
}

#[tokio::test]
async fn a_missing_or_wrong_service_key_is_401() {
    let app = spawn_app().await;
    let body = json!({"email": "a@example.com", "password": "password1", "name": "A"});
    let missing = app
        .client
        .post(app.url("/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(missing, 401).await;
    let wrong = app
        .client
        .post(app.url("/auth/register"))
        .bearer_auth(format!("{SERVICE_KEY}x"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(wrong, 401).await;
    let not_bearer = app
        .client
        .get(app.url("/auth/jwks"))
        .header("authorization", SERVICE_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(not_bearer, 401).await;
}

#[tokio::test]
async fn identity_headers_without_the_service_key_are_not_trusted() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let forged = app
        .client
        .get(app.url("/users/me"))
        .header("x-user-id", user.id.to_string())
        .header("x-user-roles", "admin")
        .send()
        .await
        .unwrap();
    assert_problem(forged, 401).await;
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_with_or_without_a_declared_length() {
    let app = spawn_app().await;
    let big = format!(r#"{{"email":"{}@example.com"}}"#, "a".repeat(1024 * 1024));
    let declared = app
        .request(Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_problem(declared, 413).await;

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = app
        .request(Method::POST, "/auth/register")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_problem(streamed, 413).await;
}

#[tokio::test]
async fn a_user_reads_and_renames_themselves_but_not_another_user() {
    let app = spawn_app().await;
    let ada = app.new_user().await;
    let bob = app.new_user().await;

    let me: Value = app
        .as_user(&ada, Method::GET, "/users/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], ada.id.to_string());
    let own = app
        .as_user(&ada, Method::GET, &format!("/users/{}", ada.id))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let renamed = app
        .as_user(&ada, Method::PATCH, &format!("/users/{}", ada.id))
        .json(&json!({"name": "Ada Lovelace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(
        renamed.json::<Value>().await.unwrap()["name"],
        "Ada Lovelace"
    );

    let read_other = app
        .as_user(&ada, Method::GET, &format!("/users/{}", bob.id))
        .send()
        .await
        .unwrap();
    let missing = app
        .as_user(
            &ada,
            Method::GET,
            &format!("/users/{}", uuid::Uuid::new_v4()),
        )
        .send()
        .await
        .unwrap();
    let read_other = assert_problem(read_other, 404).await;
    let missing = assert_problem(missing, 404).await;
    assert_eq!(
        read_other["detail"], missing["detail"],
        "another user's existence leaks"
    );

    let patch_other = app
        .as_user(&ada, Method::PATCH, &format!("/users/{}", bob.id))
        .json(&json!({"name": "Mallory"}))
        .send()
        .await
        .unwrap();
    assert_problem(patch_other, 404).await;
    let bob_now: Value = app
        .as_user(&bob, Method::GET, "/users/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bob_now["name"], "Test User");
}

#[tokio::test]
async fn an_admin_reads_and_renames_any_user() {
    let app = spawn_app().await;
    let bob = app.new_user().await;
    let mut admin = app.new_user().await;
    admin.roles = vec!["user".into(), "admin".into()];

    let read = app
        .as_user(&admin, Method::GET, &format!("/users/{}", bob.id))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let renamed = app
        .as_user(&admin, Method::PATCH, &format!("/users/{}", bob.id))
        .json(&json!({"name": "Robert"}))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    assert_eq!(renamed.json::<Value>().await.unwrap()["name"], "Robert");
}

#[tokio::test]
async fn a_patch_may_not_change_roles_or_email_or_empty_the_name() {
    let app = spawn_app().await;
    let ada = app.new_user().await;
    let path = format!("/users/{}", ada.id);
    for body in [
        json!({"roles": ["admin"]}),
        json!({"email": "x@example.com"}),
        json!({"name": ""}),
    ] {
        let response = app
            .as_user(&ada, Method::PATCH, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 422).await;
    }
    let me: Value = app
        .as_user(&ada, Method::GET, "/users/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["user"]));
}

#[tokio::test]
async fn the_batch_lookup_returns_the_users_that_exist() {
    let app = spawn_app().await;
    let ada = app.new_user().await;
    let bob = app.new_user().await;
    let response = app
        .post_json(
            "/internal/users/batch",
            &json!({"ids": [ada.id, bob.id, uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let mut ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = [ada.id.to_string(), bob.id.to_string()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let too_many: Vec<uuid::Uuid> = (0..101).map(|_| uuid::Uuid::new_v4()).collect();
    let response = app
        .post_json("/internal/users/batch", &json!({"ids": too_many}))
        .await;
    assert_problem(response, 422).await;
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_are_problems() {
    let app = spawn_app().await;
    let missing = app
        .request(Method::GET, "/no/such/route")
        .send()
        .await
        .unwrap();
    assert_problem(missing, 404).await;
    let wrong_method = app
        .request(Method::DELETE, "/auth/login")
        .send()
        .await
        .unwrap();
    assert_problem(wrong_method, 405).await;
}

#[tokio::test]
async fn a_registration_publishes_user_registered_through_the_outbox() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/auth/register")
        .header("x-request-id", "register-7")
        .json(&json!({"email": "events@example.com", "password": "password1", "name": "Ev"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.unwrap();

    let stream = format!("{}events:user", app.prefix);
    let read = || test_support::streams::envelopes(&stream);
    let published = test_support::eventually(std::time::Duration::from_secs(5), || async {
        !read().await.is_empty()
    })
    .await;
    let events = read().await;
    assert!(published, "no user.registered on {stream}");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event["type"], "user.registered");
    assert_eq!(event["source"], "user");
    assert_eq!(event["correlationid"], "register-7");
    assert_eq!(event["data"]["user_id"], user["id"]);
    assert_eq!(event["data"]["email"], "events@example.com");
}

#[tokio::test]
async fn a_refused_registration_publishes_nothing() {
    let app = spawn_app().await;
    app.register("dup@example.com", "password1", "A").await;
    let second = app.register("DUP@example.com", "password1", "B").await;
    assert_eq!(second.status(), 409);
    let pool = sqlx::PgPool::connect(app.db.url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM outbox"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1, "the conflicting registration left an event");
}
