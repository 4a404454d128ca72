//! `GET /api/dashboard`: the caller's profile, orders, payments and notifications,
//! asked of four services at once.
//!
//! Each backend has its own timeout (`DASHBOARD_TIMEOUT_MS`); one that fails, is slow
//! or has its breaker open gives its fallback (`null` profile, empty list) and its name
//! in `degraded`, so the answer arrives within that timeout plus a margin and always
//! has the same shape. `stats` are computed from what did arrive. Only when every
//! backend fails is the answer 503.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use service_client::Client;
use service_kit::Problem;
use service_kit::internal_auth::Caller;

/// The dashboard's clients, one per backend.
#[derive(Clone)]
pub struct Backends {
    pub user: Client,
    pub order: Client,
    pub payment: Client,
    pub notification: Client,
    pub timeout: Duration,
}

async fn fetch<T: DeserializeOwned>(
    client: &Client,
    path: &str,
    caller: &Caller,
    timeout: Duration,
) -> Option<T> {
    let call = client
        .get(path)
        .on_behalf_of(caller)
        .timeout(timeout)
        .deadline(timeout)
        .send_json::<T>();
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "dashboard backend failed");
            None
        }
        Err(_) => {
            tracing::warn!(path, "dashboard backend timed out");
            None
        }
    }
}

fn list(value: Option<Value>) -> Option<Vec<Value>> {
    value.and_then(|v| v.get("data").and_then(Value::as_array).cloned())
}

pub async fn dashboard(b: &Backends, caller: &Caller) -> Response {
    let profile_path = format!("/users/{}", caller.user_id);
    let (profile, orders, payments, notifications) = tokio::join!(
        fetch::<Value>(&b.user, &profile_path, caller, b.timeout),
        fetch::<Value>(&b.order, "/orders", caller, b.timeout),
        fetch::<Value>(&b.payment, "/payments", caller, b.timeout),
        fetch::<Value>(&b.notification, "/notifications", caller, b.timeout),
    );
    let (orders, payments, notifications) = (list(orders), list(payments), list(notifications));
    let mut degraded = Vec::new();
    for (name, up) in [
        ("profile", profile.is_some()),
        ("orders", orders.is_some()),
        ("payments", payments.is_some()),
        ("notifications", notifications.is_some()),
    ] {
        if !up {
            degraded.push(name);
        }
    }
    if degraded.len() == 4 {
        return Problem::unavailable("No backend of the dashboard answered.").into_response();
    }
    let orders = orders.unwrap_or_default();
    let total_spent_cents: i64 = orders
        .iter()
        .filter(|o| o["status"] == "confirmed")
        .filter_map(|o| o["total_cents"].as_i64())
        .sum();
    Json(json!({
        "profile": profile,
        "stats": {"orders_count": orders.len(), "total_spent_cents": total_spent_cents},
        "orders": orders,
        "payments": payments.unwrap_or_default(),
        "notifications": notifications.unwrap_or_default(),
        "degraded": degraded,
    }))
    .into_response()
}
