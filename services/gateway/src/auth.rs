//! Verifying access tokens against the user service's JWKS.
//!
//! One file: the key set and the verification that reads it are one cache and its
//! one reader.
//!
//! The key set is fetched once, kept, and fetched again when a token names a `kid` it
//! does not hold (a rotation), at most once per [`REFRESH_COOLDOWN`], so a flood of
//! made-up `kid`s cannot hammer the user service. Only `EdDSA` is accepted, whatever
//! the token's header says; `iss`, `aud`, `exp` and `nbf` are checked with 30 s leeway.
//!
//! A token that passed is remembered until it expires ([`TokenCache`]), so a client's
//! second request costs a map lookup rather than an Ed25519 signature check. Each HTTP
//! worker remembers on its own ([`Verifier::for_worker`]), so a lookup never contends
//! with another thread. What was remembered under one key set is forgotten when the
//! key set is fetched again, so a key withdrawn from the JWKS stops vouching for its
//! tokens at the next refresh, as it would without the memory. A token refused after
//! its signature check (expired, forged, for another audience) is refused from a
//! second memory for [`REFUSAL_MEMORY_SECONDS`], so a client repeating it costs no
//! Ed25519 check each time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use service_kit::Problem;
use service_kit::internal_auth::{Caller, Role};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;
use uuid::Uuid;

/// Least time between two fetches of the key set prompted by unknown `kid`s.
pub const REFRESH_COOLDOWN: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;
/// How long a token refused after its signature check is refused from memory. Short,
/// because a token refused for an `nbf` just ahead may pass soon.
pub const REFUSAL_MEMORY_SECONDS: u64 = 10;

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

/// A caller whose token passed, with what the gateway says on its behalf made once
/// per token rather than on every request.
#[derive(Debug)]
pub struct Identity {
    pub caller: Caller,
    /// `X-User-Id`: the user id, hyphenated.
    pub user_id: HeaderValue,
    /// `X-User-Roles`: the roles, comma-separated.
    pub roles: HeaderValue,
    /// The rate-limit key, `user:<id>`.
    pub rate_key: String,
}

impl Identity {
    pub fn new(caller: Caller) -> Self {
        let id = caller.user_id.hyphenated().to_string();
        let roles: Vec<&str> = caller.roles.iter().map(|r| r.as_str()).collect();
        // A UUID and role names: always valid header values.
        let value =
            |text: &str| HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static(""));
        Self {
            user_id: value(&id),
            roles: value(&roles.join(",")),
            rate_key: format!("user:{id}"),
            caller,
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Uuid,
    exp: u64,
    #[serde(default)]
    roles: Vec<String>,
}

/// The verifier: the key set and how to fetch it, and the tokens remembered.
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    /// Counts the fetches of the key set: a token remembered under an older one no
    /// longer counts.
    generation: Arc<AtomicU64>,
    last_fetch: Arc<Mutex<Option<Instant>>>,
    client: service_client::Client,
    validation: Arc<Validation>,
    verified: Arc<std::sync::Mutex<TokenCache<Arc<Identity>>>>,
    /// Tokens refused after a signature check, for [`REFUSAL_MEMORY_SECONDS`]: a
    /// client repeating an expired or forged token costs a lookup, not an Ed25519
    /// check, each time.
    refused: Arc<std::sync::Mutex<TokenCache<Invalid>>>,
    /// Signature checks made, by every worker (for tests and curiosity).
    signature_checks: Arc<AtomicU64>,
}

/// Tokens seen before, with what they stood for (a caller's identity, or why they
/// were refused), until that lapses or the key set they were checked against is
/// replaced.
///
/// Keyed by the whole token, hashed with foldhash: hashing a 400-byte token with
/// SipHash cost more than the rest of the lookup. Neither memory lets a client grow
/// it past [`TokenCache::CAPACITY`], and a flood of made-up tokens fills only the
/// memory of refusals, never pushing out the tokens that passed.
pub struct TokenCache<T> {
    entries: HashMap<String, Remembered<T>, foldhash::fast::RandomState>,
}

struct Remembered<T> {
    value: T,
    /// Unix seconds.
    until: u64,
    /// The key set's generation it was checked against.
    generation: u64,
}

impl<T> Default for TokenCache<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::default(),
        }
    }
}

impl<T: Clone> TokenCache<T> {
    /// Most tokens remembered at once; past it, lapsed ones go, then all of them.
    pub const CAPACITY: usize = 10_000;

    /// What `token` stood for when checked against key set `generation`, if that has
    /// not lapsed at `now` (Unix seconds).
    pub fn get(&self, token: &str, now: u64, generation: u64) -> Option<T> {
        self.entries
            .get(token)
            .filter(|entry| now < entry.until && entry.generation == generation)
            .map(|entry| entry.value.clone())
    }

    /// Remembers what `token` stands for until `until` (Unix seconds), as checked
    /// against key set `generation`.
    pub fn insert(&mut self, token: &str, value: T, until: u64, now: u64, generation: u64) {
        if self.entries.len() >= Self::CAPACITY {
            self.entries
                .retain(|_, entry| now < entry.until && entry.generation == generation);
            if self.entries.len() >= Self::CAPACITY {
                self.entries.clear();
            }
        }
        let entry = Remembered {
            value,
            until,
            generation,
        };
        self.entries.insert(token.to_owned(), entry);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<T> TokenCache<T> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn remembered<T>(
    cache: &std::sync::Mutex<TokenCache<T>>,
) -> std::sync::MutexGuard<'_, TokenCache<T>> {
    // The cache holds no invariant a panic elsewhere could break.
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            generation: Arc::default(),
            last_fetch: Arc::default(),
            client,
            validation: Arc::new(validation),
            verified: Arc::default(),
            refused: Arc::default(),
            signature_checks: Arc::default(),
        }
    }

    /// The same verifier with a memory of its own, for one HTTP worker.
    #[must_use]
    pub fn for_worker(&self) -> Self {
        Self {
            verified: Arc::default(),
            refused: Arc::default(),
            ..self.clone()
        }
    }

    /// Signature checks made so far, by every worker's verifier.
    pub fn signature_checks(&self) -> u64 {
        self.signature_checks.load(Ordering::Relaxed)
    }

    /// Fetches the key set now. Errors leave the keys held so far in place.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let mut last_fetch = self.last_fetch.lock().await;
        self.fetch(&mut last_fetch).await
    }

    /// Fetches while holding the fetch lock, so fetches never overlap and whoever
    /// waited for the lock sees what the fetch before it brought.
    async fn fetch(&self, last_fetch: &mut Option<Instant>) -> anyhow::Result<usize> {
        *last_fetch = Some(Instant::now());
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
        // Every worker's memory of tokens checked against the old set lapses.
        self.generation.fetch_add(1, Ordering::AcqRel);
        remembered(&self.verified).clear();
        remembered(&self.refused).clear();
        Ok(count)
    }

    /// Whether any key is held (for readiness).
    pub async fn has_keys(&self) -> bool {
        !self.keys.read().await.is_empty()
    }

    /// Fetches the key set for a token naming `kid`, which is not held, unless a fetch
    /// happened within the cooldown. Requests that race here wait for the one fetch in
    /// flight and then use what it brought: none of them is refused for a key that is
    /// arriving, and the user service sees one fetch, not one per request.
    async fn refresh_for_unknown_kid(&self, kid: &str) {
        let mut last_fetch = self.last_fetch.lock().await;
        if self.keys.read().await.contains_key(kid) {
            return;
        }
        if last_fetch.is_some_and(|at| at.elapsed() < REFRESH_COOLDOWN) {
            return;
        }
        if let Err(error) = self.fetch(&mut last_fetch).await {
            tracing::warn!(error = format!("{error:#}"), "could not fetch the JWKS");
        }
    }

    /// The caller a bearer token stands for.
    pub async fn verify(&self, token: &str) -> Result<Arc<Identity>, Invalid> {
        let now = unix_now();
        // Read before the keys: if they are replaced meanwhile, what this check
        // remembers is already out of date.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(caller) = remembered(&self.verified).get(token, now, generation) {
            return Ok(caller);
        }
        if let Some(refusal) = remembered(&self.refused).get(token, now, generation) {
            return Err(refusal);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Invalid::Algorithm);
        }
        let kid = header.kid.ok_or(Invalid::UnknownKey)?;
        if !self.keys.read().await.contains_key(&kid) {
            // Boxed: the fetch is rare and its future large; unboxed it would size
            // (and be copied with) every request's.
            Box::pin(self.refresh_for_unknown_kid(&kid)).await;
        }
        let keys = self.keys.read().await;
        let key = keys.get(&kid).ok_or(Invalid::UnknownKey)?;
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        let claims = match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
            Ok(data) => data.claims,
            Err(error) => {
                let refusal = Invalid::Rejected(error.to_string());
                let until = now.saturating_add(REFUSAL_MEMORY_SECONDS);
                remembered(&self.refused).insert(token, refusal.clone(), until, now, generation);
                return Err(refusal);
            }
        };
        let caller = Arc::new(Identity::new(Caller {
            user_id: claims.sub,
            roles: claims.roles.iter().filter_map(|r| Role::parse(r)).collect(),
        }));
        // Remembered only as long as the check itself would still pass it.
        let until = claims.exp.saturating_add(LEEWAY_SECONDS);
        remembered(&self.verified).insert(token, caller.clone(), until, now, generation);
        Ok(caller)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &http::HeaderMap) -> Result<&str, Invalid> {
    // UTF-8 rather than `to_str`'s visible-ASCII check, which goes byte by byte over a
    // 400-byte token; anything but base64url and dots fails the token's own decoding.
    let value = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .ok_or(Invalid::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(Invalid::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Invalid::Missing);
    }
    Ok(token.trim())
}

/// 401, with the challenge that says why.
pub fn unauthorized(invalid: &Invalid) -> Response {
    tracing::debug!(reason = %invalid, "token refused");
    let mut response = Problem::unauthorized("A valid bearer token is required.").into_response();
    let challenge = match invalid {
        Invalid::Missing => "Bearer",
        _ => "Bearer error=\"invalid_token\"",
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// The caller the proxy's front door verified, as the gateway's own endpoints read it
/// (an extension of the request); a request without one is answered 401.
pub struct Signed(pub Caller);

impl<S: Sync> axum::extract::FromRequestParts<S> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Self)
            .ok_or_else(|| unauthorized(&Invalid::Missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Arc<Identity> {
        Arc::new(Identity::new(Caller {
            user_id: Uuid::new_v4(),
            roles: vec![Role::User],
        }))
    }

    #[test]
    fn an_identity_carries_its_headers_and_rate_limit_key() {
        let user_id = Uuid::new_v4();
        let identity = Identity::new(Caller {
            user_id,
            roles: vec![Role::User, Role::Admin],
        });
        assert_eq!(identity.user_id, user_id.to_string().as_str());
        assert_eq!(identity.roles, "user,admin");
        assert_eq!(identity.rate_key, format!("user:{user_id}"));
    }

    #[test]
    fn a_remembered_token_is_served_until_it_expires_and_not_after() {
        let mut cache = TokenCache::<Arc<Identity>>::default();
        let who = caller();
        cache.insert("t", who.clone(), 1_000, 900, 1);
        assert_eq!(
            cache.get("t", 999, 1).map(|c| c.caller.user_id),
            Some(who.caller.user_id)
        );
        assert!(cache.get("t", 1_000, 1).is_none());
        assert!(cache.get("other", 999, 1).is_none());
    }

    #[test]
    fn a_token_remembered_under_an_older_key_set_is_not_served() {
        let mut cache = TokenCache::<Arc<Identity>>::default();
        cache.insert("t", caller(), 1_000, 900, 1);
        assert!(cache.get("t", 950, 2).is_none());
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let mut cache = TokenCache::<Arc<Identity>>::default();
        for i in 0..TokenCache::<Arc<Identity>>::CAPACITY {
            // Half of them expired by the time the next one comes.
            let until = if i % 2 == 0 { 10 } else { 1_000 };
            cache.insert(&i.to_string(), caller(), until, 5, 0);
        }
        assert_eq!(cache.len(), TokenCache::<Arc<Identity>>::CAPACITY);
        cache.insert("next", caller(), 1_000, 20, 0);
        assert_eq!(
            cache.len(),
            TokenCache::<Arc<Identity>>::CAPACITY / 2 + 1,
            "expired ones went"
        );
        assert!(cache.get("1", 20, 0).is_some(), "live ones stayed");

        let mut full = TokenCache::<Arc<Identity>>::default();
        for i in 0..TokenCache::<Arc<Identity>>::CAPACITY {
            full.insert(&i.to_string(), caller(), 1_000, 5, 0);
        }
        full.insert("next", caller(), 1_000, 5, 0);
        assert_eq!(full.len(), 1);
    }
}
