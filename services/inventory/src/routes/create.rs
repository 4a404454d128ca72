//! `POST /products {sku, name, price_cents, stock}` (admin) → 201 Product.

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use service_kit::internal_auth::Caller;
use service_kit::{Json, Problem};

use super::shared::require_admin;
use crate::products::{self, NewProduct, Product};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    sku: Option<String>,
    name: Option<String>,
    #[serde(default, deserialize_with = "service_kit::json::integer")]
    price_cents: Option<i64>,
    #[serde(default, deserialize_with = "service_kit::json::integer")]
    stock: Option<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<ProductInput>,
) -> Result<(StatusCode, Json<Product>), Problem> {
    require_admin(&caller)?;
    let product = NewProduct::parse(body.sku, body.name, body.price_cents, body.stock)
        .map_err(Problem::validation)?;
    let created = products::insert(&state.pool, &product)
        .await
        .context("storing a new product")?
        .ok_or_else(|| Problem::conflict("A product with this SKU already exists."))?;
    tracing::info!(product_id = %created.id, "product created");
    Ok((StatusCode::CREATED, Json(created)))
}
