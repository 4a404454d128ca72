//! `POST /auth/register {email, password, name}` → 201 User.

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use service_kit::{Json, Problem};

use contracts::events::{UserRegistered, types};
use event_bus::Envelope;

use crate::state::AppState;
use crate::users::{self, InsertError, NewUser, User};
use crate::validation::{self, Errors};

#[derive(Deserialize)]
pub struct Registration {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
}

pub async fn register(
    State(state): State<AppState>,
    Json(body): Json<Registration>,
) -> Result<(StatusCode, Json<User>), Problem> {
    let mut errors = Errors::default();
    let email = errors
        .required("email", body.email)
        .and_then(|email| errors.check("email", validation::email(&email)));
    let password = errors
        .required("password", body.password)
        .and_then(|password| {
            let valid = validation::password(&password);
            errors.check("password", valid).map(|()| password)
        });
    let name = errors
        .required("name", body.name)
        .and_then(|name| errors.check("name", validation::name(&name)));
    errors.finish()?;
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Err(Problem::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };

    let password_hash = state.passwords.hash(password).await?;
    // The account and its `user.registered` event commit together.
    let mut tx = event_bus::Tx::begin(&state.pool)
        .await
        .context("opening the transaction of a registration")?;
    let user = users::insert(
        &mut **tx,
        NewUser {
            email,
            name,
            password_hash,
            roles: vec!["user".to_owned()],
        },
    )
    .await
    .map_err(|error| match error {
        InsertError::EmailTaken => Problem::conflict("This email address is already registered."),
        InsertError::Database(error) => Problem::internal(error),
    })?;
    let registered = UserRegistered {
        user_id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
    };
    let mut event = Envelope::new(types::USER_REGISTERED, crate::state::SERVICE, &registered)
        .map_err(Problem::internal)?
        .keyed(user.id.to_string());
    if let Some(request_id) = service_kit::request_id::current() {
        event = event.correlated(request_id);
    }
    tx.enqueue(&state.user_events, &event)
        .context("enqueueing a registration's event")?;
    state
        .wake
        .commit(tx)
        .await
        .context("committing a registration")?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((StatusCode::CREATED, Json(user)))
}
