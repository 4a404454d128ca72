//! Webhook subscriptions (admin only): create, list, delete, and the log of deliveries.
//!
//! A webhook's `url` must be http(s) and resolve to public addresses only (unless
//! `WEBHOOK_ALLOW_PRIVATE`; never link-local or metadata ones); a name that does not
//! resolve yet is accepted and checked at each delivery; its `events` are some of [`crate::webhooks::EVENTS`]; its
//! `secret` (16–512 characters) signs every delivery and is never shown again.

use anyhow::Context;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use contracts::List;
use serde::Deserialize;
use service_kit::internal_auth::Caller;
use service_kit::limit::Limit;
use service_kit::problem::FieldError;
use service_kit::{Json, Problem};
use uuid::Uuid;

use crate::state::AppState;
use crate::webhooks::{self, Attempt, EVENTS, Webhook};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    url: Option<String>,
    events: Option<Vec<String>>,
    secret: Option<String>,
}

fn require_admin(caller: &Caller) -> Result<(), Problem> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Problem::forbidden("Only an admin may manage webhooks."))
    }
}

fn webhook_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found("No such webhook."))
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<WebhookInput>,
) -> Result<(StatusCode, Json<Webhook>), Problem> {
    require_admin(&caller)?;
    let mut errors = Vec::new();
    let url = match body.url.as_deref().map(str::trim) {
        None | Some("") => {
            errors.push(FieldError::new("url", "is required"));
            None
        }
        Some(url) if url.len() > 2048 => {
            errors.push(FieldError::new("url", "must be at most 2048 characters"));
            None
        }
        Some(url) => match state.policy.check_new(url).await {
            Ok(url) => Some(url.to_string()),
            Err(refused) => {
                errors.push(FieldError::new("url", refused.to_string()));
                None
            }
        },
    };
    let mut events = body.events.unwrap_or_default();
    events.sort();
    events.dedup();
    if events.is_empty() {
        errors.push(FieldError::new("events", "must name at least one event"));
    } else if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        errors.push(FieldError::new(
            "events",
            format!("`{unknown}` is not one of {}", EVENTS.join(", ")),
        ));
    }
    let secret = body.secret.unwrap_or_default();
    if !(16..=512).contains(&secret.chars().count()) {
        errors.push(FieldError::new("secret", "must be 16 to 512 characters"));
    } else if secret.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "secret",
            "must not contain control characters",
        ));
    }
    let Some(url) = url.filter(|_| errors.is_empty()) else {
        return Err(Problem::validation(errors));
    };
    let webhook = webhooks::insert(&state.pool, &url, &events, &secret)
        .await
        .context("storing a new webhook")?;
    tracing::info!(webhook_id = %webhook.id, "webhook created");
    Ok((StatusCode::CREATED, Json(webhook)))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<Webhook>>, Problem> {
    require_admin(&caller)?;
    Ok(Json(List {
        data: webhooks::list(&state.pool)
            .await
            .context("listing webhooks")?,
    }))
}

pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    require_admin(&caller)?;
    if webhooks::delete(&state.pool, webhook_id(&id)?)
        .await
        .context("deleting a webhook")?
    {
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("No such webhook."))
    }
}

pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Limit(limit): Limit,
) -> Result<Json<List<Attempt>>, Problem> {
    require_admin(&caller)?;
    let id = webhook_id(&id)?;
    if !webhooks::exists(&state.pool, id)
        .await
        .with_context(|| format!("finding webhook {id}"))?
    {
        return Err(Problem::not_found("No such webhook."));
    }
    Ok(Json(List {
        data: webhooks::attempts(&state.pool, id, limit)
            .await
            .with_context(|| format!("listing the deliveries of webhook {id}"))?,
    }))
}
