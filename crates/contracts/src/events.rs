//! Event payloads of the order saga, and the streams they travel on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Streams, one per producing domain.
pub mod streams {
    pub const ORDER: &str = "events:order";
    pub const INVENTORY: &str = "events:inventory";
    pub const PAYMENT: &str = "events:payment";
    pub const USER: &str = "events:user";
}

/// Event type names.
pub mod types {
    pub const USER_REGISTERED: &str = "user.registered";
    pub const ORDER_CREATED: &str = "order.created";
    pub const ORDER_CONFIRMED: &str = "order.confirmed";
    pub const ORDER_CANCELLED: &str = "order.cancelled";
    pub const INVENTORY_RESERVED: &str = "inventory.reserved";
    pub const INVENTORY_REJECTED: &str = "inventory.rejected";
    pub const INVENTORY_RELEASED: &str = "inventory.released";
    pub const PAYMENT_SUCCEEDED: &str = "payment.succeeded";
    pub const PAYMENT_DECLINED: &str = "payment.declined";
    pub const PAYMENT_REFUNDED: &str = "payment.refunded";
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// `order.created`: an order was accepted and waits for stock and payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCreated {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub items: Vec<OrderLine>,
    pub total_cents: i64,
    pub currency: String,
    pub payment_method: String,
}

/// `inventory.reserved`: every line's stock is held for the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryReserved {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub total_cents: i64,
    pub currency: String,
    pub payment_method: String,
}

/// `inventory.rejected`: some line could not be reserved; nothing is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryRejected {
    pub order_id: Uuid,
    /// `out_of_stock`.
    pub reason: String,
}

/// `inventory.released`: the order's held stock is available again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InventoryReleased {
    pub order_id: Uuid,
}

/// Events that name only the order they are about (`payment.declined`,
/// `order.cancelled`, ...): the fields every saga step reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderRef {
    pub order_id: Uuid,
}

/// `user.registered`: a new account exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UserRegistered {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
}

/// `order.confirmed`: the order's stock is held and its payment captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderConfirmed {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub total_cents: i64,
    pub currency: String,
}

/// `order.cancelled`: the order will not be fulfilled; whatever it holds is given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// `out_of_stock`, `payment_declined` or `cancelled_by_user`.
    pub reason: String,
    pub total_cents: i64,
    pub currency: String,
}

/// `payment.succeeded`, `payment.declined`, `payment.refunded`: what became of an
/// order's payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PaymentOutcome {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub user_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
}
