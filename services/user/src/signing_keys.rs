//! Ed25519 keys that sign access tokens, kept in the user database so they survive
//! restarts and are the same for every replica.
//!
//! The newest key that is not retired signs. Rotation adds a key and retires the
//! previous one; a retired key stays in the JWKS for one token lifetime (plus a minute of
//! clock skew), so tokens it signed keep verifying until they expire anyway.
//!
//! The key is read from the database for each token issued rather than cached, so a
//! rotation takes effect on every replica at once and no replica keeps signing with a
//! key the JWKS is about to drop. One indexed query is nothing beside the Argon2 check a
//! login already pays.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::EncodingKey;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};

/// Held while creating or rotating keys, so replicas starting together create one key.
const KEY_LOCK: i64 = 0x5357_4b45_5953; // "SWKEYS"

/// Clock skew allowed between replicas and verifiers, added to how long a retired key
/// stays published.
pub const SKEW_SECONDS: i64 = 60;

/// The key that signs new tokens.
pub struct ActiveKey {
    pub kid: String,
    pub encoding: EncodingKey,
}

/// A public key as a JWK (RFC 8037 OKP).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub kid: String,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// A JWK set.
#[derive(Debug, Clone, Serialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The RFC 7638 thumbprint of an Ed25519 public key: a stable, content-derived `kid`.
fn thumbprint(public_key: &[u8; 32]) -> String {
    let x = URL_SAFE_NO_PAD.encode(public_key);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

async fn lock(tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", KEY_LOCK)
        .execute(&mut **tx)
        .await
        .map(drop)
}

async fn insert_new(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let kid = thumbprint(&public);
    sqlx::query!(
        "INSERT INTO signing_keys (kid, seed, public_key) VALUES ($1, $2, $3)",
        &kid,
        &seed[..],
        &public[..]
    )
    .execute(&mut **tx)
    .await
    .context("failed to store a new signing key")?;
    Ok(kid)
}

/// Creates the first signing key unless one is live.
pub async fn ensure_one(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    lock(&mut tx).await?;
    let live: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "live!" FROM signing_keys WHERE retired_at IS NULL"#
    )
    .fetch_one(&mut *tx)
    .await?;
    if live == 0 {
        let kid = insert_new(&mut tx).await?;
        tracing::info!(kid, "created the first signing key");
    }
    tx.commit().await?;
    Ok(())
}

/// Adds a new signing key and retires every other live one. Returns the new `kid`.
pub async fn rotate(pool: &PgPool) -> anyhow::Result<String> {
    let mut tx = pool.begin().await?;
    lock(&mut tx).await?;
    sqlx::query!("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        .execute(&mut *tx)
        .await?;
    let kid = insert_new(&mut tx).await?;
    tx.commit().await?;
    Ok(kid)
}

/// The key that signs new tokens: the newest live one.
pub async fn active(pool: &PgPool) -> anyhow::Result<ActiveKey> {
    let key = sqlx::query!(
        "SELECT kid, seed FROM signing_keys WHERE retired_at IS NULL
         ORDER BY created_at DESC LIMIT 1"
    )
    .fetch_optional(pool)
    .await?
    .context("no live signing key")?;
    let kid = key.kid;
    let seed: [u8; 32] = key
        .seed
        .try_into()
        .map_err(|_| anyhow::anyhow!("signing key {kid} has a malformed seed"))?;
    let der = ed25519_dalek::SigningKey::from_bytes(&seed)
        .to_pkcs8_der()
        .context("failed to encode the signing key")?;
    Ok(ActiveKey {
        kid,
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
    })
}

/// Every key that may still verify a live token: the live ones, and those retired less
/// than one token lifetime (plus skew) ago.
pub async fn jwks(pool: &PgPool, token_ttl_seconds: i64) -> anyhow::Result<Jwks> {
    let rows = sqlx::query!(
        "SELECT kid, public_key FROM signing_keys
         WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)
         ORDER BY created_at DESC",
        (token_ttl_seconds + SKEW_SECONDS) as f64
    )
    .fetch_all(pool)
    .await?;
    let keys = rows
        .into_iter()
        .map(|row| Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(row.public_key),
            kid: row.kid,
            alg: "EdDSA",
            use_: "sig",
        })
        .collect();
    Ok(Jwks { keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_matches_rfc_8037_appendix_a3() {
        // RFC 8037 A.3: the thumbprint of the RFC's example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64");
        let x: [u8; 32] = x.try_into().expect("32 bytes");
        assert_eq!(
            thumbprint(&x),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
