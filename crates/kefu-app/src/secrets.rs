//! Secrets and passwords: random 256-bit secrets of which only the SHA-256
//! is stored, CSRF tokens derived from a session's secret, and argon2id
//! password hashes made off the async runtime.

use crate::error::{AppError, AppResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every API token starts with (so a leaked one is recognisable).
pub const TOKEN_PREFIX: &str = "kefu_";

/// 32 random bytes, base64url.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The CSRF token of a session, derived from its secret so nothing more needs
/// storing; a page on another origin can read neither.
pub fn csrf_for(session_secret: &str) -> String {
    hex::encode(&Sha256::digest(format!("kefu-csrf:{session_secret}").as_bytes())[..16])
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)
}

/// Checks `password` against `hash`. Without a hash (unknown account, or one
/// that never set a password) the password is hashed anyway, so that a wrong
/// email takes as long as a wrong password and reveals nothing.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => Argon2::default()
            .verify_password(password.as_bytes(), h.as_str())
            .is_ok(),
        None => {
            let _ = Argon2::default().hash_password(password.as_bytes());
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_and_unknown_accounts_fail() {
        let hash = hash_password("正确的密码 correct".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("正确的密码 correct".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
    }

    #[test]
    fn secrets_are_distinct_and_csrf_is_derived() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(csrf_for(&a), csrf_for(&a));
        assert_ne!(csrf_for(&a), csrf_for(&b));
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
