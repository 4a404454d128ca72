//! `GET /products` → `{data: [Product]}` newest first; `GET /products/{id}` → Product.
//!
//! Reads need the service key only: the gateway has already required a signed-in user,
//! and other services (the order service) read products on no user's behalf.

use anyhow::Context;
use axum::extract::{Path, State};
use contracts::List;
use service_kit::{Json, Problem};

use super::shared::{not_found, product_id};
use crate::products::{self, Product};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>) -> Result<Json<List<Product>>, Problem> {
    Ok(Json(List {
        data: products::list(&state.pool)
            .await
            .context("listing products")?,
    }))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Product>, Problem> {
    let id = product_id(&id)?;
    products::find(&state.pool, id)
        .await
        .with_context(|| format!("reading product {id}"))?
        .map(Json)
        .ok_or_else(not_found)
}
