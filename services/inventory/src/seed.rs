//! Demo products created at start-up unless their SKU exists (`SEED_PRODUCTS_FILE`):
//! the same products whether the stack runs under `scripts/run` or `docker compose up`
//! (both point at `deploy/demo/products.json`), none added twice on a restart, and a
//! product sold down or restocked left as it is.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sqlx::PgPool;

use crate::products::{self, NewProduct};

/// One product as `POST /products` takes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    sku: Option<String>,
    name: Option<String>,
    price_cents: Option<i64>,
    stock: Option<i64>,
}

/// Why the seed file could not be used; the service does not start with a broken one.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("cannot read the seed products file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the seed products file {path} is not a JSON list of products")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the seed products file {path}, product {index}: {reasons}")]
    Invalid {
        path: PathBuf,
        index: usize,
        reasons: String,
    },
}

/// Reads and validates every product in `path` (each as `POST /products` would).
pub fn read(path: &Path) -> Result<Vec<NewProduct>, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: path.to_owned(),
        source,
    })?;
    let entries: Vec<Entry> = serde_json::from_str(&text).map_err(|source| SeedError::Parse {
        path: path.to_owned(),
        source,
    })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            NewProduct::parse(entry.sku, entry.name, entry.price_cents, entry.stock).map_err(
                |errors| SeedError::Invalid {
                    path: path.to_owned(),
                    index,
                    reasons: errors
                        .iter()
                        .map(|error| format!("{} {}", error.field, error.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                },
            )
        })
        .collect()
}

/// Creates each product whose SKU is free; returns how many it created. Replicas
/// starting at once race safely: the SKU is unique, and a taken one is skipped.
pub async fn plant(pool: &PgPool, products: &[NewProduct]) -> sqlx::Result<usize> {
    let mut created = 0;
    for product in products {
        if products::insert(pool, product).await?.is_some() {
            created += 1;
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn the_demo_file_holds_the_three_products_the_readme_shows() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/demo/products.json");
        let skus: Vec<String> = read(&demo).unwrap().into_iter().map(|p| p.sku).collect();
        assert_eq!(skus, ["MUG-1", "TEE-1", "CAP-1"]);
    }

    #[test]
    fn an_invalid_product_names_its_place_and_every_reason() {
        let seed = file(
            r#"[{"sku":"A","name":"a","price_cents":1,"stock":0},
                            {"sku":"","name":"b","price_cents":0,"stock":1}]"#,
        );
        let message = read(seed.path()).unwrap_err().to_string();
        assert!(message.contains("product 1"), "{message}");
        assert!(message.contains("sku must not be empty"), "{message}");
        assert!(
            message.contains("price_cents must be at least 1"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_field_or_a_file_that_is_not_a_list_is_refused() {
        let unknown = file(r#"[{"sku":"A","name":"a","price_cents":1,"stock":0,"colour":"red"}]"#);
        assert!(matches!(read(unknown.path()), Err(SeedError::Parse { .. })));
        let object = file(r#"{"sku":"A"}"#);
        assert!(matches!(read(object.path()), Err(SeedError::Parse { .. })));
        let missing = Path::new("/nonexistent/products.json");
        assert!(matches!(read(missing), Err(SeedError::Read { .. })));
    }
}
