//! Who is calling: a browser session (cookie, CSRF-checked on writes) or an
//! API token (Bearer, limited by its scope). Secrets are random 256-bit
//! values; only their SHA-256 is stored. Passwords are argon2id, hashed off
//! the async runtime.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum_extra::extract::CookieJar;
use kefu_app::{Actor, AgentActor, Credential};
use kefu_core::{Agent, Role, TokenScope};
use kefu_store::{StoreError, Visibility};
use std::net::{IpAddr, SocketAddr};
use uuid::Uuid;

pub const SESSION_COOKIE: &str = "kefu_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
pub use kefu_app::secrets::{
    TOKEN_PREFIX, constant_time_eq, csrf_for, hash_password, new_secret, sha256, verify_password,
};

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
        kefu_app::actor::visibility_of(&self.agent)
    }

    pub fn is_admin(&self) -> bool {
        self.agent.role == Role::Admin && self.allows(TokenScope::Admin)
    }

    /// Whether this credential may act at `needed` scope (the rule is the
    /// application layer's, [`Credential::allows`]). The HTTP extractor
    /// asks it per request; the operations ask it again for every write.
    pub fn allows(&self, needed: TokenScope) -> bool {
        self.credential().allows(needed)
    }

    fn credential(&self) -> Credential {
        match self.via {
            Via::Session { id } => Credential::Session { id },
            Via::Token { id, scope } => Credential::Token { id, scope },
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

    /// This agent as the application layer's actor.
    pub fn actor(&self) -> Actor {
        Actor::Agent(self.agent_actor())
    }

    pub fn agent_actor(&self) -> AgentActor {
        AgentActor {
            agent: self.agent.clone(),
            credential: self.credential(),
            ip: self.ip,
        }
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
