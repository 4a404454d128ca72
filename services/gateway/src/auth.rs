//! Verifying access tokens against the user service's JWKS.
//!
//! The key set is fetched once, kept, and fetched again when a token names a `kid` it
//! does not hold (a rotation), at most once per [`REFRESH_COOLDOWN`], so a flood of
//! made-up `kid`s cannot hammer the user service. Only `EdDSA` is accepted, whatever
//! the token's header says; `iss`, `aud`, `exp` and `nbf` are checked with 30 s leeway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use service_kit::internal_auth::{Caller, Role};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use uuid::Uuid;

/// Least time between two fetches of the key set prompted by unknown `kid`s.
pub const REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;

/// Why a token was refused; all of them answer the same 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("{0}")]
    Rejected(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: Uuid,
    #[serde(default)]
    roles: Vec<String>,
}

/// The verifier: the key set and how to fetch it.
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    last_fetch: Arc<Mutex<Option<Instant>>>,
    client: service_client::Client,
    validation: Arc<Validation>,
}

impl Verifier {
    /// A verifier fetching keys through `client` (the user service) and requiring
    /// `issuer` and `audience`.
    pub fn new(client: service_client::Client, issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        Self {
            keys: Arc::default(),
            last_fetch: Arc::default(),
            client,
            validation: Arc::new(validation),
        }
    }

    /// Fetches the key set now. Errors leave the keys held so far in place.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        *self.last_fetch.lock().await = Some(Instant::now());
        let set: JwkSet = self.client.get("/auth/jwks").send_json().await?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
            })
            .collect();
        let count = keys.len();
        *self.keys.write().await = keys;
        Ok(count)
    }

    /// Whether any key is held (for readiness).
    pub async fn has_keys(&self) -> bool {
        !self.keys.read().await.is_empty()
    }

    /// Refreshes unless one happened within the cooldown.
    async fn refresh_for_unknown_kid(&self) {
        let recent = self
            .last_fetch
            .lock()
            .await
            .is_some_and(|at| at.elapsed() < REFRESH_COOLDOWN);
        if !recent && let Err(error) = self.refresh().await {
            tracing::warn!(error = format!("{error:#}"), "could not fetch the JWKS");
        }
    }

    /// The caller a bearer token stands for.
    pub async fn verify(&self, token: &str) -> Result<Caller, Invalid> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Invalid::Algorithm);
        }
        let kid = header.kid.ok_or(Invalid::UnknownKey)?;
        if !self.keys.read().await.contains_key(&kid) {
            self.refresh_for_unknown_kid().await;
        }
        let keys = self.keys.read().await;
        let key = keys.get(&kid).ok_or(Invalid::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| Invalid::Rejected(e.to_string()))?
            .claims;
        Ok(Caller {
            user_id: claims.sub,
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &http::HeaderMap) -> Result<&str, Invalid> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Invalid::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(Invalid::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Invalid::Missing);
    }
    Ok(token.trim())
}
