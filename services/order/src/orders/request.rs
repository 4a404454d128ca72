//! A new order as its client asks for it: the body read, every field checked, the lines
//! priced by the inventory service's answer.

use std::collections::HashSet;

use contracts::inventory::Product;
use serde::{Deserialize, Serialize};
use service_kit::problem::FieldError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The payment methods of the simulated card provider.
pub const PAYMENT_METHODS: &[&str] = &["tok_visa", "tok_declined"];
/// Most lines an order may have.
pub const MAX_LINES: usize = 50;
/// Most units of one product an order line may ask for.
pub const MAX_QUANTITY: i64 = 1000;

/// One line of an order, priced when the order was taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Item {
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// A line as the client sent it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    pub product_id: Option<String>,
    #[serde(default, deserialize_with = "service_kit::json::integer")]
    pub quantity: Option<i64>,
}

/// `POST /orders`'s body as the client sent it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub items: Option<Vec<LineInput>>,
    pub payment_method: Option<String>,
}

/// A checked order request: lines in the client's order, each product once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    pub lines: Vec<(Uuid, i64)>,
    pub payment_method: String,
}

impl OrderRequest {
    /// Checks every field at once (API.md's 422 cases but the unknown product, which
    /// needs the inventory service).
    pub fn parse(input: OrderInput) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        match input.items {
            None => errors.push(FieldError::new("items", "is required")),
            Some(items) if items.is_empty() => {
                errors.push(FieldError::new("items", "must hold at least one line"));
            }
            Some(items) if items.len() > MAX_LINES => errors.push(FieldError::new(
                "items",
                format!("must hold at most {MAX_LINES} lines"),
            )),
            Some(items) => {
                let mut seen = HashSet::new();
                for (i, line) in items.into_iter().enumerate() {
                    let product_id = line.product_id.as_deref().and_then(|id| id.parse().ok());
                    match product_id {
                        None => errors.push(FieldError::new(
                            format!("items[{i}].product_id"),
                            "must be a product id",
                        )),
                        Some(id) if !seen.insert(id) => errors.push(FieldError::new(
                            format!("items[{i}].product_id"),
                            "repeats an earlier line's product",
                        )),
                        Some(_) => {}
                    }
                    let quantity = line.quantity.filter(|q| (1..=MAX_QUANTITY).contains(q));
                    if quantity.is_none() {
                        errors.push(FieldError::new(
                            format!("items[{i}].quantity"),
                            format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                        ));
                    }
                    if let (Some(id), Some(quantity)) = (product_id, quantity) {
                        lines.push((id, quantity));
                    }
                }
            }
        }
        let payment_method = input.payment_method.unwrap_or_default();
        if payment_method.is_empty() {
            errors.push(FieldError::new("payment_method", "is required"));
        } else if !PAYMENT_METHODS.contains(&payment_method.as_str()) {
            errors.push(FieldError::new(
                "payment_method",
                format!("must be one of {}", PAYMENT_METHODS.join(", ")),
            ));
        }
        if errors.is_empty() {
            Ok(Self {
                lines,
                payment_method,
            })
        } else {
            Err(errors)
        }
    }

    /// The product ids, for pricing.
    pub fn product_ids(&self) -> Vec<Uuid> {
        self.lines.iter().map(|(id, _)| *id).collect()
    }

    /// A digest of the request: two requests under one idempotency key must have the
    /// same one.
    pub fn digest(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        for (product_id, quantity) in &self.lines {
            hash.update(product_id.as_bytes());
            hash.update(quantity.to_be_bytes());
        }
        hash.update(self.payment_method.as_bytes());
        hash.finalize().to_vec()
    }

    /// Prices every line from `products` (the inventory service's answer). Lines whose
    /// product does not exist are field errors.
    pub fn price(&self, products: &[Product]) -> Result<Priced, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut items = Vec::with_capacity(self.lines.len());
        let mut currency: Option<&str> = None;
        let mut total: Option<i64> = Some(0);
        for (i, (product_id, quantity)) in self.lines.iter().enumerate() {
            let Some(product) = products.iter().find(|p| p.id == *product_id) else {
                errors.push(FieldError::new(
                    format!("items[{i}].product_id"),
                    "no such product",
                ));
                continue;
            };
            if *currency.get_or_insert(&product.currency) != product.currency {
                errors.push(FieldError::new(
                    format!("items[{i}].product_id"),
                    "is priced in another currency than the order's other lines",
                ));
            }
            total = total.and_then(|t| t.checked_add(product.price_cents.checked_mul(*quantity)?));
            items.push(Item {
                product_id: *product_id,
                quantity: *quantity,
                unit_price_cents: product.price_cents,
            });
        }
        let Some(total_cents) = total else {
            return Err(vec![FieldError::new("items", "the total is too large")]);
        };
        if errors.is_empty() {
            Ok(Priced {
                items,
                total_cents,
                currency: currency.unwrap_or("USD").to_owned(),
                payment_method: self.payment_method.clone(),
            })
        } else {
            Err(errors)
        }
    }
}

/// An order request priced by the inventory service, ready to store.
#[derive(Debug, Clone)]
pub struct Priced {
    pub items: Vec<Item>,
    pub total_cents: i64,
    pub currency: String,
    pub payment_method: String,
}
