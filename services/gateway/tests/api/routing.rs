//! Routing, canonical paths, tokens and header hygiene.
//!
//! One file: the route table and header hygiene, checked over one gateway harness.

use crate::common;

use crate::common::{ORDER_KEY, answer_everything, claims, raw_status, spawn, spawn_with};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use test_support::assert_problem;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn every_prefix_reaches_its_service_and_nothing_else_does() {
    let gw = spawn(1).await;
    let (id, token) = gw.signed_in_user().await;
    for server in [&gw.order, &gw.inventory, &gw.payment, &gw.notification] {
        answer_everything(server).await;
    }
    let bearer = format!("Bearer {token}");
    for (target, server, expected) in [
        ("/api/orders", &gw.order, "/orders"),
        ("/api/orders/abc?x=1", &gw.order, "/orders/abc"),
        ("/api/products", &gw.inventory, "/products"),
        ("/api/payments", &gw.payment, "/payments"),
        ("/api/notifications", &gw.notification, "/notifications"),
        ("/api/webhooks", &gw.notification, "/webhooks"),
    ] {
        let response = gw
            .client
            .get(gw.url(target))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{target}");
        let last = server.received_requests().await.unwrap().pop().unwrap();
        assert_eq!(last.url.path(), expected);
    }
    let me = gw
        .client
        .get(gw.url(&format!("/api/users/{id}")))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        200,
        "the real user service answers through the gateway"
    );

    let unknown = gw
        .client
        .get(gw.url("/api/nothing"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_problem(unknown, 404).await;
    let internal = gw
        .client
        .post(gw.url("/api/internal/users/batch"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_problem(internal, 404).await;
}

#[tokio::test]
async fn dot_segments_and_encoded_separators_never_reach_a_route_they_do_not_name() {
    let gw = spawn(1).await;
    let (_, token) = gw.signed_in_user().await;
    answer_everything(&gw.order).await;
    let base = gw.gateways[0].url();
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    // Canonically /api/orders: routed there, and only with a token.
    assert_eq!(
        raw_status(&base, "GET", "/api/users/../orders", &auth).await,
        200
    );
    assert_eq!(
        raw_status(&base, "GET", "/api/users/../orders", &[]).await,
        401
    );
    assert_eq!(raw_status(&base, "GET", "//api/orders", &auth).await, 200);
    assert_eq!(raw_status(&base, "GET", "//api/orders", &[]).await, 401);
    // Canonically outside /api: no route.
    assert_eq!(
        raw_status(&base, "GET", "/api/%2e%2e/orders", &auth).await,
        404
    );
    assert_eq!(
        raw_status(&base, "GET", "/api/orders/..%2f..%2fusers", &auth).await,
        404
    );
    assert_eq!(
        raw_status(&base, "GET", "/api/orders/%2e%2e/%2e%2e/%2e%2e/etc", &auth).await,
        400
    );
    let reached: Vec<String> = gw
        .order
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_owned())
        .collect();
    assert_eq!(reached, ["/orders", "/orders"]);
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_challenge_and_a_token_from_another_library_passes() {
    let gw = spawn(1).await;
    answer_everything(&gw.order).await;
    let (kid, der) = gw.signing_key().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let good = gw.mint(json!({})).await;
    let response = gw.get("/api/orders", Some(&good)).await;
    assert_eq!(
        response.status(),
        200,
        "minted by jsonwebtoken with the service's key"
    );

    let jwks: serde_json::Value = gw.get("/api/auth/jwks", None).await.json().await.unwrap();
    let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(kid.clone());
    let foreign = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let foreign_der = {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        foreign.to_pkcs8_der().unwrap().as_bytes().to_vec()
    };
    let mut eddsa = Header::new(Algorithm::EdDSA);
    eddsa.kid = Some(kid.clone());
    let unsigned = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = engine.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
        let body = engine.encode(claims(json!({})).to_string());
        format!("{header}.{body}.")
    };
    let bad_tokens = [
        ("alg none", unsigned),
        (
            "HS256 keyed with the public key",
            common::encode_claims(
                &hs256,
                &EncodingKey::from_secret(public_x.as_bytes()),
                json!({}),
            ),
        ),
        (
            "a foreign key",
            common::encode_claims(&eddsa, &EncodingKey::from_ed_der(&foreign_der), json!({})),
        ),
        (
            "expired",
            gw.mint(json!({"exp": now - 120, "iat": now - 1000, "nbf": now - 1000}))
                .await,
        ),
        ("not yet valid", gw.mint(json!({"nbf": now + 600})).await),
        (
            "wrong issuer",
            gw.mint(json!({"iss": "someone-else"})).await,
        ),
        (
            "wrong audience",
            gw.mint(json!({"aud": "another-api"})).await,
        ),
        ("garbage", "not.a.token".to_owned()),
        ("an unknown kid", {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some("no-such-kid".into());
            common::encode_claims(&header, &EncodingKey::from_ed_der(&der), json!({}))
        }),
    ];
    for (what, token) in bad_tokens {
        let response = gw.get("/api/orders", Some(&token)).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{what}"
        );
        assert_problem(response, 401).await;
    }
    for authorization in [None, Some("Basic dXNlcjpwdw=="), Some("Bearer ")] {
        let mut request = gw.client.get(gw.url("/api/orders"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        assert_problem(response, 401).await;
    }
    assert_eq!(
        gw.order.received_requests().await.unwrap().len(),
        1,
        "only the good token got through"
    );
}

#[tokio::test]
async fn services_see_the_gateways_identity_headers_never_the_clients() {
    let gw = spawn(1).await;
    let (id, token) = gw.signed_in_user().await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .and(header(
            "authorization",
            format!("Bearer {ORDER_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
        .mount(&gw.order)
        .await;
    let response = gw
        .client
        .get(gw.url("/api/orders"))
        .bearer_auth(&token)
        .header("x-user-id", "00000000-0000-0000-0000-000000000001")
        .header("x-user-roles", "user,admin")
        .header("x-service-name", "order")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "X-Request-ID, X-Forwarded-For, X-User-Id")
        .header("x-request-id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the service got its own key");
    let seen = gw.order.received_requests().await.unwrap().pop().unwrap();
    let get = |name: &str| {
        seen.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(get("x-user-id"), Some(id.to_string()));
    assert_eq!(get("x-user-roles").as_deref(), Some("user"));
    assert_eq!(get("x-service-name").as_deref(), Some("gateway"));
    assert_eq!(
        get("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "from the real peer"
    );
    assert!(
        get("x-request-id").is_some(),
        "Connection cannot strip what the gateway sets"
    );
    assert_eq!(
        response.headers()["x-request-id"],
        get("x-request-id").unwrap().as_str()
    );
}

#[tokio::test]
async fn a_services_connection_headers_never_reach_the_client() {
    let gw = spawn(1).await;
    let (_, token) = gw.signed_in_user().await;
    Mock::given(method("GET"))
        .and(path("/orders"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("keep-alive", "timeout=5")
                .insert_header("proxy-authenticate", "Basic")
                .insert_header("connection", "x-hop")
                .insert_header("x-hop", "this connection only")
                .append_header("x-kept", "yes")
                .append_header("x-kept", "twice")
                .set_body_json(json!({"data": []})),
        )
        .mount(&gw.order)
        .await;
    let response = gw.get("/api/orders", Some(&token)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    let kept: Vec<_> = headers.get_all("x-kept").iter().collect();
    assert_eq!(kept, ["yes", "twice"], "{headers:?}");
    assert!(headers.get("keep-alive").is_none(), "{headers:?}");
    assert!(headers.get("proxy-authenticate").is_none(), "{headers:?}");
    assert!(headers.get("x-hop").is_none(), "{headers:?}");
}

#[tokio::test]
async fn proxied_requests_are_counted_by_route_prefix_never_by_raw_path() {
    let gw = spawn(1).await;
    let (_, token) = gw.signed_in_user().await;
    answer_everything(&gw.order).await;
    let raw = "/api/orders/f00dcafe-metrics-label";
    let response = gw.get(raw, Some(&token)).await;
    assert_eq!(response.status(), 200);

    let metrics = gw.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"http_requests_total{method="GET",route="/api/orders",status="200"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains("f00dcafe"), "the raw path became a label");
}

/// A peer that accepts connections and closes them at once, counting them.
async fn hang_up_on_everyone() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn upstream_failures_are_problems_and_an_open_breaker_answers_503_without_calling() {
    use std::sync::atomic::Ordering;
    let (hang_up, accepted) = hang_up_on_everyone().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let gw = spawn_with(1, |config| {
        config.order_service.order_service_url = hang_up.clone();
        config.inventory_service.inventory_service_url = closed.clone();
    })
    .await;
    let (_, token) = gw.signed_in_user().await;
    let bearer = format!("Bearer {token}");
    let get = |path: &str| {
        gw.client
            .get(gw.url(path))
            .header("authorization", &bearer)
            .send()
    };

    let refused = get("/api/products").await.unwrap();
    assert_problem(refused, 503).await;

    // Five consecutive failures (the default) open the order service's breaker.
    for _ in 0..5 {
        assert_problem(get("/api/orders").await.unwrap(), 502).await;
    }
    let calls_before = accepted.load(Ordering::SeqCst);
    assert!(calls_before >= 5, "{calls_before} connections for 5 calls");
    let open = get("/api/orders").await.unwrap();
    let body = assert_problem(open, 503).await;
    assert!(body["detail"].as_str().unwrap().contains("order"), "{body}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        calls_before,
        "an open breaker answers without calling the service"
    );
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413_and_never_counts_against_the_service() {
    let gw = spawn(1).await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&gw.order)
        .await;
    let (_, token) = gw.signed_in_user().await;
    let big = vec![b'a'; 1024 * 1024 + 1];
    // A connection per request: after refusing a body the server closes its connection,
    // and a streamed body cannot be resent on another if a pooled one turns out closed.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let post = |body: reqwest::Body| {
        client
            .post(gw.url("/api/orders"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let declared = post(big.clone().into()).await.unwrap();
    assert_problem(declared, 413).await;

    // Without a declared length the limit is only found while streaming it upstream;
    // more times than it takes to open the service's breaker (5 failures in a row).
    for _ in 0..6 {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        let streamed = post(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .await
            .unwrap();
        assert_problem(streamed, 413).await;
    }
    let small = post(b"{}".to_vec().into()).await.unwrap();
    assert_eq!(
        small.status(),
        201,
        "the client's oversize bodies are not the service's failures"
    );
}

#[tokio::test]
async fn browsers_from_the_configured_origins_may_call_and_read_the_limits_others_may_not() {
    let gw = spawn_with(1, |config| {
        config.cors_origins = "https://app.example, http://localhost:3000".to_owned();
    })
    .await;
    let preflight = |origin: &'static str| {
        gw.client
            .request(reqwest::Method::OPTIONS, gw.url("/api/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };

    let allowed = preflight("https://app.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let asked = headers["access-control-allow-headers"].to_str().unwrap();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(asked.contains(name), "{asked}");
    }
    assert!(
        gw.order.received_requests().await.unwrap().is_empty(),
        "a preflight is the gateway's to answer"
    );

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let answer = gw
        .client
        .get(gw.url("/api/auth/jwks"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["ratelimit", "retry-after", "x-request-id"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test]
async fn the_gateways_own_endpoints_refuse_unknown_paths_and_methods_as_problems() {
    let gw = spawn(1).await;
    let user = gw.mint(json!({})).await;
    let admin = gw.mint(json!({"roles": ["user", "admin"]})).await;
    let call = |verb: reqwest::Method, path: &str, token: &str| {
        gw.client
            .request(verb, gw.url(path))
            .bearer_auth(token)
            .send()
    };
    // The ops API is for admins, its unknown paths too.
    for path in ["/api/ops/services", "/api/ops/no-such-thing", "/api/ops"] {
        let answer = call(reqwest::Method::GET, path, &user).await.unwrap();
        assert_problem(answer, 403).await;
    }
    for path in ["/api/ops/no-such-thing", "/api/ops", "/api/dashboard/more"] {
        let answer = call(reqwest::Method::GET, path, &admin).await.unwrap();
        assert_problem(answer, 404).await;
    }
    for (verb, path, allow) in [
        (reqwest::Method::DELETE, "/api/ops/services", "GET,HEAD"),
        (reqwest::Method::GET, "/api/ops/dead-letters/replay", "POST"),
        (reqwest::Method::POST, "/api/dashboard", "GET,HEAD"),
        (reqwest::Method::PUT, "/api/openapi.json", "GET,HEAD"),
    ] {
        let answer = call(verb.clone(), path, &admin).await.unwrap();
        assert_eq!(answer.headers()["allow"], allow, "{verb} {path}");
        assert_problem(answer, 405).await;
    }
}
