//! Internal routes are called only by other Switchyard services and the gateway, each
//! presenting the callee's service key as `Authorization: Bearer <key>`.
//!
//! The caller's end-user identity (`X-User-Id`, `X-User-Roles`) is set by the gateway
//! after it verified a token. A client could send those headers too, so the [`Caller`]
//! extractor trusts them only on a request that passed the key check: a request that
//! reached us without the key never gets an identity.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::config::Secret;
use crate::problem::Problem;

/// The end user's id, as forwarded by the gateway.
pub const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-user-id");
/// The end user's roles, comma-separated, as forwarded by the gateway.
pub const USER_ROLES_HEADER: HeaderName = HeaderName::from_static("x-user-roles");
/// The calling service's name, for logs.
pub const SERVICE_NAME_HEADER: HeaderName = HeaderName::from_static("x-service-name");

/// The key this service accepts, kept as a digest so the comparison takes the same time
/// whatever the presented key's length.
#[derive(Clone)]
pub struct ServiceKey(Arc<[u8; 32]>);

impl ServiceKey {
    pub fn new(secret: &Secret) -> Self {
        Self(Arc::new(Sha256::digest(secret.expose().as_bytes()).into()))
    }

    fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest.ct_eq(self.0.as_ref()).into()
    }
}

/// Marks a request that presented the right service key.
#[derive(Debug, Clone, Copy)]
struct KeyChecked;

/// Middleware for internal routes: 401 problem unless the request carries this service's
/// key.
pub async fn require_service_key(
    State(key): State<ServiceKey>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(presented) if key.accepts(presented) => {
            request.extensions_mut().insert(KeyChecked);
            next.run(request).await
        }
        _ => Problem::unauthorized("A valid service key is required.").into_response(),
    }
}

/// A role a user may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The end user on whose behalf a service is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Uuid,
    pub roles: Vec<Role>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// May this caller act on `owner`'s resources? Their own, or anyone's for an admin.
    pub fn may_access(&self, owner: Uuid) -> bool {
        self.user_id == owner || self.is_admin()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<KeyChecked>().is_none() {
            return Err(Problem::unauthorized("A valid service key is required."));
        }
        let user_id = parts
            .headers
            .get(&USER_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| Problem::unauthorized("No signed-in user."))?;
        let roles = parts
            .headers
            .get(&USER_ROLES_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(',')
            .filter_map(|role| Role::parse(role.trim()))
            .collect();
        Ok(Caller { user_id, roles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_secret;

    #[test]
    fn only_the_exact_key_is_accepted() {
        let key = ServiceKey::new(&parse_secret("user-service-key-0001").expect("secret"));
        assert!(key.accepts("user-service-key-0001"));
        assert!(!key.accepts("user-service-key-0002"));
        assert!(!key.accepts("user-service-key-000"));
        assert!(!key.accepts(""));
    }

    #[test]
    fn an_admin_may_access_anyone_and_a_user_only_themselves() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        let user = Caller {
            user_id: me,
            roles: vec![Role::User],
        };
        let admin = Caller {
            user_id: me,
            roles: vec![Role::User, Role::Admin],
        };
        assert!(user.may_access(me));
        assert!(!user.may_access(other));
        assert!(admin.may_access(other));
    }
}
