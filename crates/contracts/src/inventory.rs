//! The inventory service's shapes and client.
//!
//! The inventory service's internal routes, which this client defines:
//! `GET /products/{id}` → Product, and `POST /internal/products/batch {ids}` →
//! `{data: [Product]}` with the products among `ids` that exist.

use serde::{Deserialize, Serialize};
use service_client::{Client, Error};
use uuid::Uuid;

use crate::{List, none_if_not_found};

/// A product as the inventory service returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub available: i64,
}

/// Calls the inventory service.
#[derive(Debug, Clone)]
pub struct InventoryClient {
    client: Client,
}

impl InventoryClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The product `id`, `None` if there is none.
    pub async fn get_product(&self, id: Uuid) -> Result<Option<Product>, Error> {
        none_if_not_found(
            self.client
                .get(&format!("/products/{id}"))
                .send_json()
                .await,
        )
    }

    /// The products among `ids` that exist, in one call (how the order service prices
    /// an order's lines).
    pub async fn get_products_by_ids(&self, ids: &[Uuid]) -> Result<Vec<Product>, Error> {
        let list: List<Product> = self
            .client
            .post("/internal/products/batch")
            .with_idempotency_key()
            .json(&serde_json::json!({ "ids": ids }))
            .send_json()
            .await?;
        Ok(list.data)
    }
}
