//! `POST /orders {items: [{product_id, quantity}], payment_method}` with an optional
//! `Idempotency-Key` → 202 Order (`pending`).
//!
//! The body is checked first (422 naming every bad field), then the user (user
//! service) and the prices (inventory service, one batch call) are fetched at once;
//! prices come from the inventory service, never from the client. The order and its
//! `order.created` commit in one transaction, so the saga starts exactly when the
//! order exists. A peer that is down makes this a 503 (502/504) and stores nothing.
//!
//! With an `Idempotency-Key` (1–255 visible ASCII characters), the first request with
//! that key and this user stores the order; any later one with the same body gets that
//! order back (with `Idempotent-Replayed: true`), one with another body gets 422.
//! Keys are kept with their orders, so they never expire.

use anyhow::Context;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use contracts::events::{OrderCreated, OrderLine, types};
use service_kit::internal_auth::Caller;
use service_kit::problem::FieldError;
use service_kit::{Json, Problem};

use crate::orders::{self, IdempotencyKey, Inserted, KeyUse, Order, OrderInput, OrderRequest};
use crate::state::AppState;

/// The request header that makes a POST safe to retry.
pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer that returns an order made by an earlier request with the same key.
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

type Accepted = (StatusCode, HeaderMap, Json<Order>);

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<OrderInput>,
) -> Result<Accepted, Problem> {
    let key = idempotency_key(&headers);
    let request = OrderRequest::parse(body);
    let (key, request) = match (key, request) {
        (Ok(key), Ok(request)) => (key, request),
        (key, request) => {
            let mut errors = key.err().into_iter().collect::<Vec<_>>();
            errors.extend(request.err().unwrap_or_default());
            return Err(Problem::validation(errors));
        }
    };
    let key = key.map(|key| IdempotencyKey {
        key,
        digest: request.digest(),
    });
    if let Some(key) = &key
        && let Some(used) = orders::find_key(&state.pool, caller.user_id, key)
            .await
            .context("looking up an idempotency key")?
    {
        return replay(&state, used).await;
    }

    let product_ids = request.product_ids();
    let (user, products) = tokio::join!(
        state.users.get_user(caller.user_id, &caller),
        state.inventory.get_products_by_ids(&product_ids),
    );
    if user?.is_none() {
        return Err(Problem::unauthorized("This account no longer exists."));
    }
    let priced = request.price(&products?).map_err(Problem::validation)?;

    let mut tx = event_bus::Tx::begin(&state.pool)
        .await
        .context("opening the transaction of a new order")?;
    let order = match orders::insert(&mut tx, caller.user_id, &priced, key.as_ref())
        .await
        .context("storing a new order")?
    {
        Inserted::New(order) => order,
        Inserted::Existing(used) => {
            tx.rollback()
                .await
                .context("rolling back a repeated order")?;
            return replay(&state, used).await;
        }
    };
    let created = OrderCreated {
        order_id: order.id,
        user_id: order.user_id,
        items: order
            .items
            .iter()
            .map(|item| OrderLine {
                product_id: item.product_id,
                quantity: item.quantity,
                unit_price_cents: item.unit_price_cents,
            })
            .collect(),
        total_cents: order.total_cents,
        currency: order.currency.clone(),
        payment_method: order.payment_method.clone(),
    };
    super::shared::commit_with_event(&state, tx, order.id, types::ORDER_CREATED, &created).await?;
    tracing::info!(order_id = %order.id, total_cents = order.total_cents, "order accepted");
    Ok((StatusCode::ACCEPTED, HeaderMap::new(), Json(order)))
}

/// The `Idempotency-Key` header, if sent; a field error if it is not 1–255 visible
/// ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, FieldError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if (1..=255).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic()) {
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    } else {
        Err(FieldError::new(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ))
    }
}

/// The answer to a request whose key was used before.
async fn replay(state: &AppState, used: KeyUse) -> Result<Accepted, Problem> {
    if !used.same_request {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This Idempotency-Key was already used with a different request.",
        ));
    }
    let order = orders::find(&state.pool, used.order_id)
        .await
        .with_context(|| {
            format!(
                "reading order {}, taken earlier with the same key",
                used.order_id
            )
        })?
        .ok_or_else(|| {
            Problem::internal(anyhow::anyhow!("an idempotency key names a missing order"))
        })?;
    let mut headers = HeaderMap::new();
    headers.insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    Ok((StatusCode::ACCEPTED, headers, Json(order)))
}
