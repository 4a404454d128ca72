//! `POST /internal/products/batch {ids}` → `{data: [Product]}`: the products among `ids`
//! that exist, for the order service to price an order in one call.

use anyhow::Context;
use axum::extract::State;
use contracts::List;
use serde::Deserialize;
use service_kit::problem::FieldError;
use service_kit::{Json, Problem};
use uuid::Uuid;

use crate::products::{self, Product};
use crate::state::AppState;

/// Most ids one call may ask for (an order has at most 50 lines).
const MAX_IDS: usize = 100;

#[derive(Deserialize)]
pub struct BatchRequest {
    ids: Vec<Uuid>,
}

pub async fn batch(
    State(state): State<AppState>,
    Json(body): Json<BatchRequest>,
) -> Result<Json<List<Product>>, Problem> {
    if body.ids.len() > MAX_IDS {
        return Err(Problem::validation(vec![FieldError::new(
            "ids",
            format!("must list at most {MAX_IDS} ids"),
        )]));
    }
    Ok(Json(List {
        data: products::find_many(&state.pool, &body.ids)
            .await
            .context("reading a batch of products")?,
    }))
}
