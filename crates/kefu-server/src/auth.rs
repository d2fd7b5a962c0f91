//! Who is calling: a browser session (cookie, CSRF-checked on writes) or an
//! API token (Bearer, limited by its scope). Secrets are random 256-bit
//! values; only their SHA-256 is stored. Passwords are argon2id, hashed off
//! the async runtime.

use crate::error::ApiError;
use crate::state::AppState;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum_extra::extract::CookieJar;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kefu_core::{Agent, Role, TokenScope};
use kefu_store::{StoreError, Visibility};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use uuid::Uuid;

pub const SESSION_COOKIE: &str = "kefu_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
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

#[derive(Debug, Clone, Copy)]
pub enum Via {
    Session { id: Uuid },
    Token { id: Uuid, scope: TokenScope },
}

/// An authenticated agent. Extracting it checks, before the handler runs:
/// the credential, the token scope against the method (reads need `read`,
/// writes `write`), and the CSRF header on cookie-authenticated writes.
#[derive(Debug, Clone)]
pub struct Principal {
    pub agent: Agent,
    pub via: Via,
    pub ip: Option<IpAddr>,
}

impl Principal {
    pub fn visibility(&self) -> Visibility {
        if self.agent.role.is_admin() {
            Visibility::All
        } else {
            Visibility::MemberOf(self.agent.id)
        }
    }

    pub fn is_admin(&self) -> bool {
        self.agent.role == Role::Admin && self.allows(TokenScope::Admin)
    }

    /// Whether this credential may act at `needed` scope. A session acts
    /// with the agent's full role; a token only within its scope. Every
    /// transport asks this before a write — the HTTP extractor per request,
    /// the agent socket per frame (its upgrade is a GET, so a read token
    /// opens it).
    pub fn allows(&self, needed: TokenScope) -> bool {
        match self.via {
            Via::Session { .. } => true,
            Via::Token { scope, .. } => scope.allows(needed),
        }
    }

    /// [`Principal::allows`] as an error, for `?`.
    pub fn require(&self, needed: TokenScope) -> Result<(), ApiError> {
        if self.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this token's scope does not allow this request",
            ))
        }
    }

    pub fn ip_string(&self) -> Option<String> {
        self.ip.map(|i| i.to_string())
    }
}

/// The address a request came from. Behind a reverse proxy this is the
/// proxy's; honouring X-Forwarded-For is left to a later, opt-in setting,
/// since trusting it by default would let anyone pick their rate-limit key.
pub fn client_ip_of(addr: SocketAddr) -> IpAddr {
    addr.ip()
}

pub fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip())
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()
        // The scheme is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim())
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        let reading = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        // A malformed or unknown credential is refused, never treated as
        // anonymous (realworld's reasoning: the client clearly meant to log in).
        if let Some(token) = bearer(parts) {
            let (t, agent) = state
                .store
                .api_token_by_hash(&sha256(token))
                .await
                .map_err(unauthorized)?;
            let who = Principal {
                agent,
                via: Via::Token {
                    id: t.id,
                    scope: t.scope,
                },
                ip,
            };
            who.require(if reading {
                TokenScope::Read
            } else {
                TokenScope::Write
            })?;
            return Ok(who);
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let secret = jar
            .get(SESSION_COOKIE)
            .map(|c| c.value().to_string())
            .ok_or(ApiError::Unauthorized)?;
        let (session, agent) = state
            .store
            .session_by_token(&sha256(&secret))
            .await
            .map_err(unauthorized)?;
        if !reading {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !constant_time_eq(sent, csrf_for(&secret).as_bytes()) {
                return Err(ApiError::Forbidden("missing or wrong X-CSRF-Token header"));
            }
        }
        Ok(Principal {
            agent,
            via: Via::Session { id: session.id },
            ip,
        })
    }
}

fn unauthorized(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::Unauthorized,
        other => other.into(),
    }
}

/// A principal with the admin role (and, for tokens, the admin scope).
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = Principal::from_request_parts(parts, state).await?;
        if !p.is_admin() {
            return Err(ApiError::Forbidden("admin role required"));
        }
        Ok(Admin(p))
    }
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
