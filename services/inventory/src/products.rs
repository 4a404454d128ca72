//! Products: their shape, their validation and their storage.

use service_kit::problem::FieldError;
use sqlx::PgPool;
use uuid::Uuid;

/// A product as the API shows it: the contract's own type, read straight from its row.
pub use contracts::inventory::Product;

/// A validated new product.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    pub stock: i64,
}

/// Longest SKU and name accepted.
const MAX_TEXT: usize = 200;

/// Highest price and stock accepted: far beyond any real product, and far enough below
/// `bigint`'s limit that no restock can overflow it.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

impl NewProduct {
    /// Checks every field at once (API.md: 422 for `price_cents < 1`, `stock < 0`, an
    /// empty `sku` or `name`).
    pub fn parse(
        sku: Option<String>,
        name: Option<String>,
        price_cents: Option<i64>,
        stock: Option<i64>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let text = |field: &str, value: Option<String>, errors: &mut Vec<FieldError>| {
            let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
            if value.is_empty() {
                errors.push(FieldError::new(field, "must not be empty"));
            } else if value.chars().count() > MAX_TEXT {
                errors.push(FieldError::new(
                    field,
                    format!("must be at most {MAX_TEXT} characters"),
                ));
            } else if value.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    field,
                    "must not contain control characters",
                ));
            }
            value
        };
        let sku = text("sku", sku, &mut errors);
        let name = text("name", name, &mut errors);
        match price_cents {
            None => errors.push(FieldError::new("price_cents", "is required")),
            Some(p) if p < 1 => errors.push(FieldError::new("price_cents", "must be at least 1")),
            Some(p) if p > MAX_AMOUNT => errors.push(FieldError::new(
                "price_cents",
                format!("must be at most {MAX_AMOUNT}"),
            )),
            _ => {}
        }
        match stock {
            None => errors.push(FieldError::new("stock", "is required")),
            Some(s) if s < 0 => errors.push(FieldError::new("stock", "must not be negative")),
            Some(s) if s > MAX_AMOUNT => errors.push(FieldError::new(
                "stock",
                format!("must be at most {MAX_AMOUNT}"),
            )),
            _ => {}
        }
        if errors.is_empty() {
            Ok(Self {
                sku,
                name,
                price_cents: price_cents.unwrap_or_default(),
                stock: stock.unwrap_or_default(),
            })
        } else {
            Err(errors)
        }
    }
}

/// Inserts a product; `None` when the SKU is taken.
pub async fn insert(pool: &PgPool, product: &NewProduct) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        "INSERT INTO products (id, sku, name, price_cents, available)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sku) DO NOTHING
         RETURNING id, sku, name, price_cents, currency, available",
        Uuid::now_v7(),
        &product.sku,
        &product.name,
        product.price_cents,
        product.stock
    )
    .fetch_optional(pool)
    .await
}

/// Every product, newest first.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as!(
        Product,
        "SELECT id, sku, name, price_cents, currency, available FROM products
         ORDER BY created_at DESC, id DESC"
    )
    .fetch_all(pool)
    .await
}

/// The product `id`.
pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        "SELECT id, sku, name, price_cents, currency, available FROM products
         WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// The products among `ids` that exist.
pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as!(
        Product,
        "SELECT id, sku, name, price_cents, currency, available FROM products
         WHERE id = ANY($1) ORDER BY created_at DESC, id DESC",
        ids
    )
    .fetch_all(pool)
    .await
}

/// Why a stock adjustment was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum AdjustError {
    NotFound,
    /// It would take `available` below zero.
    WouldGoNegative,
}

/// Adds `delta` (possibly negative) to the product's available stock, atomically: the
/// condition and the update are one statement, so concurrent adjustments and
/// reservations cannot take it below zero.
pub async fn adjust_stock(
    pool: &PgPool,
    id: Uuid,
    delta: i64,
) -> sqlx::Result<Result<Product, AdjustError>> {
    let updated: Option<Product> = sqlx::query_as!(
        Product,
        "UPDATE products SET available = available + $2, updated_at = now()
         WHERE id = $1 AND available + $2 >= 0
         RETURNING id, sku, name, price_cents, currency, available",
        id,
        delta
    )
    .fetch_optional(pool)
    .await?;
    match updated {
        Some(product) => Ok(Ok(product)),
        None if find(pool, id).await?.is_some() => Ok(Err(AdjustError::WouldGoNegative)),
        None => Ok(Err(AdjustError::NotFound)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = NewProduct::parse(Some(" ".into()), None, Some(0), Some(-1)).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["sku", "name", "price_cents", "stock"]);
    }

    #[test]
    fn a_valid_product_is_trimmed() {
        let product = NewProduct::parse(
            Some(" SKU-1 ".into()),
            Some("Widget".into()),
            Some(1),
            Some(0),
        )
        .unwrap();
        assert_eq!(product.sku, "SKU-1");
        assert_eq!(product.stock, 0);
    }
}
