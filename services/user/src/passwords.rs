//! Argon2id password hashes.
//!
//! Hashing is deliberately slow and memory-hungry (19 MiB, 2 passes: OWASP's minimum for
//! Argon2id), so it runs on the blocking pool, never on the async workers, and a
//! semaphore bounds how many run at once: a burst of logins queues instead of exhausting
//! memory.
//!
//! A login for an unknown email verifies against a dummy hash, so it costs the same as a
//! wrong password and response times do not reveal which emails have accounts. The
//! dummy is a constant with the same parameters (no password has it: its digest is
//! random bytes), not a hash made at start-up: each hash takes 19 MiB, and the C
//! allocator keeps the second such block resident for good (the idle memory this saves:
//! docs/bench-saga.md).

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

/// What a login for an unknown email is verified against: the parameters of
/// [`argon2`], a random salt and a random digest.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$lbj7wJrGt0PDMUVAwCQb+A$6eo+GpHfZziZ0jgCMuXmhecX0+Ct+6Ej4TbWTYdJOsk";

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

impl Passwords {
    /// Prepares the hasher.
    pub async fn new() -> anyhow::Result<Self> {
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        Ok(Self {
            permits: Arc::new(Semaphore::new(parallel)),
        })
    }

    /// A PHC-format Argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        tokio::task::spawn_blocking(move || {
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("{e}"))?;
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
        })
        .await
        .context("password hashing task failed")?
    }

    /// Whether `password` matches `hash`. With no hash (unknown account) it verifies
    /// against the dummy hash and answers `false`, taking the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await.context("hasher closed")?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .context("password verification task failed")?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let dummy = PasswordHash::new(DUMMY_HASH).expect("the dummy parses");
        let params = Params::try_from(&dummy).expect("its parameters");
        let ours = argon2();
        assert_eq!(params.m_cost(), ours.params().m_cost());
        assert_eq!(params.t_cost(), ours.params().t_cost());
        assert_eq!(params.p_cost(), ours.params().p_cost());
        assert_eq!(dummy.algorithm, argon2::ARGON2ID_IDENT);
        assert_eq!(dummy.version, Some(0x13));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = Passwords::new().await.expect("hasher");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct horse"));
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !passwords
                .verify("wrong horse".into(), Some(hash))
                .await
                .expect("verify")
        );
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let passwords = Passwords::new().await.expect("hasher");
        assert!(
            !passwords
                .verify("anything at all".into(), None)
                .await
                .expect("verify")
        );
    }
}
