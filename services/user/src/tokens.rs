//! Access tokens: compact JWS signed with the active Ed25519 key (API.md,
//! Authentication). The user service only issues them; the gateway verifies them against
//! the JWKS.

use anyhow::Context;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Config;
use crate::signing_keys;
use crate::users::User;

/// Who issues tokens, for whom, and for how long.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl_seconds: i64,
}

impl From<&Config> for TokenSettings {
    fn from(config: &Config) -> Self {
        Self {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            ttl_seconds: i64::try_from(config.jwt_ttl_seconds).unwrap_or(900),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub roles: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// The login response body.
#[derive(Debug, Serialize)]
pub struct AccessToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
}

/// Signs a fresh token for `user`.
pub async fn issue(
    pool: &PgPool,
    settings: &TokenSettings,
    user: &User,
) -> anyhow::Result<AccessToken> {
    let key = signing_keys::active(pool).await?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        sub: user.id,
        roles: user.roles.clone(),
        iat: now,
        nbf: now,
        exp: now + settings.ttl_seconds,
        jti: Uuid::new_v4(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid);
    let token =
        jsonwebtoken::encode(&header, &claims, &key.encoding).context("failed to sign a token")?;
    Ok(AccessToken {
        access_token: token,
        token_type: "Bearer",
        expires_in: settings.ttl_seconds,
    })
}
