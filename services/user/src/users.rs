//! The user model and its storage.

use sqlx::PgPool;
use uuid::Uuid;

/// A user as the API shows it (never with a password hash): the contract's own type,
/// read straight from its row.
pub use contracts::users::User;

/// A validated registration.
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub roles: Vec<String>,
}

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("the email address is already registered")]
    EmailTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Inserts a user; `EmailTaken` when the email exists in any case (also when a
/// concurrent registration of it won the race: the unique index decides).
pub async fn insert(db: impl sqlx::PgExecutor<'_>, user: NewUser) -> Result<User, InsertError> {
    insert_if_absent(db, user)
        .await?
        .ok_or(InsertError::EmailTaken)
}

/// Inserts a user unless the email exists; `None` if it did.
pub async fn insert_if_absent(
    db: impl sqlx::PgExecutor<'_>,
    user: NewUser,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "INSERT INTO users (id, email, name, password_hash, roles)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT ((lower(email))) DO NOTHING
         RETURNING id, email, name, roles, created_at",
        Uuid::now_v7(),
        &user.email,
        &user.name,
        &user.password_hash,
        &user.roles,
    )
    .fetch_optional(db)
    .await
}

/// The user with this email (any case) and their password hash.
pub async fn find_with_hash(pool: &PgPool, email: &str) -> sqlx::Result<Option<(User, String)>> {
    let row = sqlx::query!(
        "SELECT id, email, name, roles, created_at, password_hash
         FROM users WHERE lower(email) = lower($1)",
        email.trim(),
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| {
        let user = User {
            id: row.id,
            email: row.email,
            name: row.name,
            roles: row.roles,
            created_at: row.created_at,
        };
        (user, row.password_hash)
    }))
}

/// The user with this id.
pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, email, name, roles, created_at FROM users WHERE id = $1",
        id
    )
    .fetch_optional(pool)
    .await
}

/// The users among `ids` that exist, newest first.
pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<User>> {
    sqlx::query_as!(
        User,
        "SELECT id, email, name, roles, created_at FROM users
         WHERE id = ANY($1) ORDER BY created_at DESC, id DESC",
        ids,
    )
    .fetch_all(pool)
    .await
}

/// Renames a user; `None` if there is no such user.
pub async fn rename(pool: &PgPool, id: Uuid, name: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as!(
        User,
        "UPDATE users SET name = $2, updated_at = now() WHERE id = $1
         RETURNING id, email, name, roles, created_at",
        id,
        name,
    )
    .fetch_optional(pool)
    .await
}
