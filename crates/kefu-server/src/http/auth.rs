//! Logging in and out, the first-admin setup, one's own sessions and password.

use super::audit;
use crate::auth::{self, Principal, SESSION_COOKIE, Via, client_ip_of, csrf_for};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Duration;
use kefu_core::{Agent, NewAgent, Role, Session, validate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(setup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_sessions, revoke_other_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetupRequest {
    token: String,
    email: String,
    name: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: String,
}

/// The logged-in agent and the CSRF token to send as `X-CSRF-Token` on writes.
#[derive(Serialize, ToSchema)]
struct SessionInfo {
    agent: Agent,
    csrf_token: Option<String>,
    session_id: Option<Uuid>,
}

/// Starts a session: stores it and sets the cookie.
async fn start_session(
    state: &AppState,
    jar: CookieJar,
    agent: Agent,
    headers: &HeaderMap,
    ip: Option<String>,
) -> ApiResult<(CookieJar, SessionInfo)> {
    // session_days is checked at start (at most ten years); checked here too
    // rather than trusting that every caller validated the config.
    let expires = kefu_core::time::now()
        .checked_add_signed(Duration::days(i64::from(state.config.session_days)))
        .ok_or_else(|| ApiError::internal("server.session_days is out of range"))?;
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(300).collect::<String>());
    let started = state
        .app
        .start_session(agent.id, user_agent.as_deref(), ip.as_deref(), expires)
        .await?;
    let (secret, session) = (started.secret, started.session);
    let cookie = Cookie::build((SESSION_COOKIE, secret.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .max_age(time_duration(state.config.session_days))
        .build();
    Ok((
        jar.add(cookie),
        SessionInfo {
            agent,
            csrf_token: Some(csrf_for(&secret)),
            session_id: Some(session.id),
        },
    ))
}

fn time_duration(days: u32) -> time::Duration {
    time::Duration::days(i64::from(days))
}

/// Creates the first admin with the one-time token printed at first start.
#[utoipa::path(post, path = "/api/v1/setup", tag = "auth", request_body = SetupRequest,
    responses((status = 201, body = SessionInfo), (status = 403, description = "token wrong, spent, or an admin exists")))]
async fn setup(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<SetupRequest>,
) -> ApiResult<impl IntoResponse> {
    state.login_per_ip.check(&addr.ip())?;
    let new = NewAgent {
        email: body.email,
        name: body.name,
        role: Role::Admin,
        password: Some(body.password),
    };
    let agent = state.app.first_admin(&body.token, new).await?;
    let ip = Some(addr.ip().to_string());
    let (jar, info) = start_session(&state, jar, agent.clone(), &headers, ip.clone()).await?;
    let who = Principal {
        agent,
        via: Via::Session {
            id: info.session_id.unwrap_or_default(),
        },
        ip: Some(addr.ip()),
    };
    audit(
        &state,
        Some(&who),
        "setup.first_admin",
        Some(who.agent.id.to_string()),
        json!({}),
    )
    .await;
    Ok((StatusCode::CREATED, jar, axum::Json(info)))
}

/// Logs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = SessionInfo), (status = 401), (status = 429)))]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginRequest>,
) -> ApiResult<impl IntoResponse> {
    let email = validate::email("email", &body.email).map_err(|_| ApiError::Unauthorized)?;
    let ip = client_ip_of(addr);
    state.login_per_ip.check(&ip)?;
    let hold = state
        .login_guard
        .admit(&email, ip, tokio::time::Instant::now())?;
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let found = state.store.agent_with_password(&email).await;
    let (agent, hash) = match found {
        Ok((a, h)) if a.active => (Some(a), h),
        Ok(_) | Err(kefu_store::StoreError::NotFound) => (None, None),
        Err(e) => return Err(e.into()),
    };
    let ok = auth::verify_password(body.password, hash).await;
    let Some(agent) = agent.filter(|_| ok) else {
        state.app.login_failed(&email, ip).await;
        state
            .login_guard
            .failed(&email, ip, tokio::time::Instant::now());
        return Err(ApiError::Unauthorized);
    };
    state.login_guard.succeeded(&email, ip);
    let (jar, info) = start_session(&state, jar, agent, &headers, Some(ip.to_string())).await?;
    Ok((jar, axum::Json(info)))
}

/// Ends the current session (cookie) and clears the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
async fn logout(
    State(state): State<AppState>,
    who: Principal,
    jar: CookieJar,
) -> ApiResult<impl IntoResponse> {
    if let Via::Session { id } = who.via {
        state.app.end_session(&who.agent_actor(), id).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
    ))
}

/// Who is logged in; for a session also its CSRF token.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = SessionInfo), (status = 401)))]
async fn me(who: Principal, jar: CookieJar) -> axum::Json<SessionInfo> {
    let (csrf_token, session_id) = match who.via {
        Via::Session { id } => (
            jar.get(SESSION_COOKIE).map(|c| csrf_for(c.value())),
            Some(id),
        ),
        Via::Token { .. } => (None, None),
    };
    axum::Json(SessionInfo {
        agent: who.agent,
        csrf_token,
        session_id,
    })
}

#[derive(Serialize, ToSchema)]
struct SessionView {
    #[serde(flatten)]
    session: Session,
    /// True for the session making this request.
    current: bool,
}

/// The caller's own sessions, with device, IP and last use.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", responses((status = 200, body = Vec<SessionView>)))]
async fn list_sessions(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<axum::Json<Vec<SessionView>>> {
    let current = match who.via {
        Via::Session { id } => Some(id),
        Via::Token { .. } => None,
    };
    let list = state.store.list_sessions(who.agent.id).await?;
    Ok(axum::Json(
        list.into_iter()
            .map(|s| SessionView {
                current: Some(s.id) == current,
                session: s,
            })
            .collect(),
    ))
}

#[derive(Serialize, ToSchema)]
struct Revoked {
    revoked: u64,
}

/// Signs out every other device: all sessions but the current one.
#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = "auth", responses((status = 200, body = Revoked)))]
async fn revoke_other_sessions(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<axum::Json<Revoked>> {
    let revoked = state.app.end_other_sessions(&who.agent_actor()).await?;
    Ok(axum::Json(Revoked { revoked }))
}

/// Signs out one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn revoke_session(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.app.end_session(&who.agent_actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes one's password; every other session is signed out.
#[utoipa::path(put, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange, responses((status = 204), (status = 403), (status = 422)))]
async fn change_password(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    validate::password(&body.new_password)?;
    // A stolen session or token must not make guessing the password easy:
    // the same delays as logging in, from this address.
    let ip = who.ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let email = who.agent.email.clone();
    let hold = state
        .login_guard
        .admit(&email, ip, tokio::time::Instant::now())?;
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let (_, hash) = state.store.agent_with_password(&email).await?;
    if !auth::verify_password(body.current_password, hash).await {
        state
            .login_guard
            .failed(&email, ip, tokio::time::Instant::now());
        return Err(ApiError::Forbidden("current password is wrong"));
    }
    state.login_guard.succeeded(&email, ip);
    state
        .app
        .set_own_password(&who.agent_actor(), body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
