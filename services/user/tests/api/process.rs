//! The `user-service` binary as an operator runs it: `--help`, start-up errors,
//! SIGTERM, JSON logs.

use std::collections::HashMap;
use std::time::Duration;

use test_support::{ServiceProcess, TestDatabase};

const BINARY: &str = env!("CARGO_BIN_EXE_user-service");

fn env_for(database_url: &str) -> HashMap<String, String> {
    HashMap::from([
        ("DATABASE_URL".to_owned(), database_url.to_owned()),
        ("REDIS_URL".to_owned(), test_support::redis_url()),
        (
            "USER_SERVICE_KEY".to_owned(),
            "process-test-service-key".to_owned(),
        ),
        ("LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
    ])
}

async fn run_to_exit(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(BINARY)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("run user-service")
}

#[tokio::test]
async fn help_lists_every_variable_with_its_default() {
    let output = run_to_exit(&[], &["--help"]).await;
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for variable in [
        "PORT",
        "LISTEN_ADDR",
        "REQUEST_TIMEOUT_SECONDS",
        "SHUTDOWN_TIMEOUT_SECONDS",
        "DATABASE_URL",
        "DATABASE_MAX_CONNECTIONS",
        "DATABASE_CONNECT_TIMEOUT_SECONDS",
        "REDIS_URL",
        "REDIS_CONNECT_TIMEOUT_SECONDS",
        "RUST_LOG",
        "LOG_FORMAT",
        "USER_SERVICE_KEY",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_TTL_SECONDS",
        "ADMIN_EMAIL",
        "ADMIN_PASSWORD",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable} missing from:\n{help}"
        );
    }
    for default in [
        "[default: 900]",
        "[default: switchyard]",
        "[default: switchyard-api]",
        "[default: 10]",
    ] {
        assert!(help.contains(default), "{default} missing from:\n{help}");
    }
    assert!(help.contains("rotate-signing-key"));
}

#[tokio::test]
async fn a_missing_database_url_stops_start_up_with_one_line_naming_it() {
    let output = run_to_exit(&[("USER_SERVICE_KEY", "process-test-service-key")], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[tokio::test]
async fn a_malformed_database_url_stops_start_up_with_one_line_naming_it_and_not_its_value() {
    let output = run_to_exit(
        &[
            ("USER_SERVICE_KEY", "process-test-service-key"),
            ("DATABASE_URL", "mysql://root:s3cret-pw@db/users"),
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL is invalid"), "{stderr}");
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password was echoed: {stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_database_fails_start_up_after_the_connect_timeout() {
    // Port 1 on loopback: nothing listens there.
    let output = run_to_exit(
        &[
            ("USER_SERVICE_KEY", "process-test-service-key"),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/users"),
            ("DATABASE_CONNECT_TIMEOUT_SECONDS", "1"),
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("could not connect to PostgreSQL (DATABASE_URL) within 1s"),
        "{stderr}"
    );
}

/// A request body whose second half the test sends when it chooses.
fn trickled_body() -> (tokio::sync::mpsc::Sender<&'static str>, reqwest::Body) {
    let (sender, receiver) = tokio::sync::mpsc::channel::<&'static str>(4);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), receiver))
    });
    (sender, reqwest::Body::wrap_stream(stream))
}

#[tokio::test]
async fn sigterm_during_a_slow_request_lets_it_finish_and_exits_zero() {
    let db = TestDatabase::create().await;
    let keys = test_support::StreamKeys::new();
    let mut env = env_for(db.url());
    env.insert("SHUTDOWN_TIMEOUT_SECONDS".into(), "5".into());
    env.insert("EVENT_STREAM_PREFIX".into(), keys.prefix().to_owned());
    let mut process = ServiceProcess::start(BINARY, &env);
    let url = process.wait_until_listening(Duration::from_secs(20)).await;

    let (body_half, body) = trickled_body();
    let request = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{url}/auth/register"))
            .bearer_auth("process-test-service-key")
            .header("content-type", "application/json")
            .body(body)
            .send(),
    );
    body_half
        .send(r#"{"email": "slow@example.com", "#)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    process.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        process.wait_for_exit(Duration::ZERO).await.is_none(),
        "the process exited with a request in flight"
    );
    body_half
        .send(r#""password": "password123", "name": "Slow"}"#)
        .await
        .unwrap();
    drop(body_half);

    let response = request
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(response.status(), 201);
    let status = process
        .wait_for_exit(Duration::from_secs(5))
        .await
        .expect("the process exits within the drain timeout");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn the_request_id_is_in_that_requests_json_log_line() {
    let db = TestDatabase::create().await;
    let mut process = ServiceProcess::start(BINARY, &env_for(db.url()));
    let url = process.wait_until_listening(Duration::from_secs(20)).await;

    let response = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .header("x-request-id", "log-me-0042")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "log-me-0042");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let line = loop {
        let found = process
            .log_lines()
            .into_iter()
            .find(|line| line["request_id"] == "log-me-0042");
        if let Some(line) = found {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line: {:?}",
            process.raw_lines()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["service"], "user");
    assert_eq!(line["message"], "request completed");
    assert_eq!(line["status"], 200);
    assert_eq!(line["level"], "INFO");
    assert!(line["timestamp"].is_string());
    let all = process.raw_lines().join("\n");
    assert!(
        !all.contains("process-test-service-key"),
        "a key reached the logs"
    );
}
