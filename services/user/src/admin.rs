//! The first admin account, from `ADMIN_EMAIL` / `ADMIN_PASSWORD`.
//!
//! Created only if no account has that email. Replicas starting together race on the
//! unique email index, so exactly one row is inserted. An existing account is never
//! promoted: whoever registered the address first would otherwise become admin.

use sqlx::PgPool;

use crate::config::AdminAccount;
use crate::passwords::Passwords;
use crate::users::{self, NewUser};

/// Creates the admin account unless its email is taken.
pub async fn ensure_admin(
    pool: &PgPool,
    passwords: &Passwords,
    admin: AdminAccount,
) -> anyhow::Result<()> {
    if let Some((existing, _)) = users::find_with_hash(pool, &admin.email).await? {
        if !existing.roles.iter().any(|r| r == "admin") {
            tracing::warn!(
                user_id = %existing.id,
                "ADMIN_EMAIL belongs to an account without the admin role; it is left as it is"
            );
        }
        return Ok(());
    }
    let password_hash = passwords.hash(admin.password.expose().to_owned()).await?;
    let created = users::insert_if_absent(
        pool,
        NewUser {
            email: admin.email,
            name: "Administrator".to_owned(),
            password_hash,
            roles: vec!["user".to_owned(), "admin".to_owned()],
        },
    )
    .await?;
    if let Some(admin) = created {
        tracing::info!(user_id = %admin.id, "created the admin account");
    }
    Ok(())
}
