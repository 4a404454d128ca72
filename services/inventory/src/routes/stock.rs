//! `POST /products/{id}/stock {delta}` (admin) → 200 Product; 409 if it would take
//! `available` below zero.

use anyhow::Context;
use axum::extract::{Path, State};
use serde::Deserialize;
use service_kit::internal_auth::Caller;
use service_kit::problem::FieldError;
use service_kit::{Json, Problem};

use super::shared::{not_found, product_id, require_admin};
use crate::products::{self, AdjustError, Product};
use crate::state::AppState;

/// Largest single adjustment: keeps `available` far from integer overflow.
const MAX_DELTA: i64 = 1_000_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockInput {
    #[serde(default, deserialize_with = "service_kit::json::integer")]
    delta: Option<i64>,
}

pub async fn adjust(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<StockInput>,
) -> Result<Json<Product>, Problem> {
    require_admin(&caller)?;
    let id = product_id(&id)?;
    let delta = match body.delta {
        None => {
            return Err(Problem::validation(vec![FieldError::new(
                "delta",
                "is required",
            )]));
        }
        Some(delta) if delta.abs() > MAX_DELTA => {
            return Err(Problem::validation(vec![FieldError::new(
                "delta",
                format!("must be within ±{MAX_DELTA}"),
            )]));
        }
        Some(delta) => delta,
    };
    match products::adjust_stock(&state.pool, id, delta)
        .await
        .with_context(|| format!("adjusting the stock of product {id}"))?
    {
        Ok(product) => Ok(Json(product)),
        Err(AdjustError::NotFound) => Err(not_found()),
        Err(AdjustError::WouldGoNegative) => Err(Problem::conflict(
            "Not enough stock: available would go below zero.",
        )),
    }
}
