//! The widget's public endpoints, called from customers' browsers on other
//! sites (CORS open, no cookies): the inbox's look and feel, and a visitor
//! session — anonymous, resumed from a stored token, or verified with the
//! site's identifier hash. Rate-limited per IP.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::state::AppState;
use crate::visitor::{self, Claims};
use axum::extract::{ConnectInfo, State};
use kefu_core::InboxKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::SocketAddr;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    // The upload enforces its own size limit; the router-wide JSON limit
    // applies to the rest.
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .routes(routes!(config))
        .routes(routes!(session))
        .routes(routes!(link))
        .routes(routes!(download))
}

#[derive(Deserialize, IntoParams)]
struct ConfigQuery {
    /// The inbox's public widget token (`data-inbox` of the script tag).
    inbox: String,
}

#[derive(Serialize, ToSchema)]
struct WidgetConfig {
    inbox_name: String,
    /// The inbox's `settings.widget`: colours, greeting, position, pre-chat
    /// form, business hours.
    settings: Value,
    agents_online: bool,
    /// Whether agents' replies also reach a customer who left an email
    /// address by mail (the inbox is linked to an email inbox that can
    /// send); the widget offers to take an address only then.
    email_follow_up: bool,
}

async fn widget_inbox(
    state: &AppState,
    token: &str,
) -> ApiResult<(kefu_core::Inbox, Option<String>)> {
    let (inbox, secret) = state.store.inbox_by_public_token(token).await?;
    if inbox.kind != InboxKind::Widget {
        return Err(ApiError::NotFound);
    }
    Ok((inbox, secret))
}

#[utoipa::path(get, path = "/api/widget/v1/config", tag = "widget", params(ConfigQuery), responses((status = 200, body = WidgetConfig), (status = 404)))]
async fn config(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<axum::Json<WidgetConfig>> {
    state.widget_per_ip.check(&addr.ip())?;
    let (inbox, _) = widget_inbox(&state, &q.inbox).await?;
    let mut settings = inbox
        .settings
        .get("widget")
        .cloned()
        .unwrap_or_else(kefu_core::empty_object);
    // Which inbox sends the mail is the server's business, not the page's.
    if let Some(map) = settings.as_object_mut() {
        map.remove("reply_email_inbox");
    }
    let email_follow_up = crate::reply_inbox::email_follow_up(&state, &inbox).await;
    Ok(axum::Json(WidgetConfig {
        agents_online: crate::ws::widget::agents_online(&state, inbox.id).await,
        inbox_name: inbox.name,
        settings,
        email_follow_up,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    /// The inbox's public widget token.
    inbox: String,
    /// A visitor token from an earlier session, to carry on.
    token: Option<String>,
    /// A continuity link's token (`/c/TOKEN`): start as its contact.
    link: Option<String>,
    /// The site's own id of its user (`kind:value` names an identity kind,
    /// e.g. `wechat_unionid:o6_…`; a plain value is a `site_user`).
    identifier: Option<String>,
    /// Seconds since the epoch when the site signed the identifier.
    timestamp: Option<i64>,
    /// hex HMAC-SHA256(inbox identity secret, identifier + timestamp).
    identifier_hash: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct WidgetSession {
    /// Send as `hello.token` on /ws/widget; keep it to resume.
    token: String,
    contact_id: Uuid,
    verified: bool,
    expires_at: i64,
}

/// Starts or resumes a visitor session.
#[utoipa::path(post, path = "/api/widget/v1/session", tag = "widget", request_body = SessionRequest,
    responses((status = 200, body = WidgetSession), (status = 401, description = "token or identifier hash wrong, stale or replayed"), (status = 404), (status = 429)))]
async fn session(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(req): Json<SessionRequest>,
) -> ApiResult<axum::Json<WidgetSession>> {
    state.widget_per_ip.check(&addr.ip())?;
    let (inbox, secret) = widget_inbox(&state, &req.inbox).await?;
    let request = visitor::SessionRequest {
        link: req.link,
        identifier: req.identifier,
        timestamp: req.timestamp,
        identifier_hash: req.identifier_hash,
        token: req.token,
        name: req.name,
        email: req.email,
        phone: req.phone,
    };
    let s = state
        .app
        .visitor_session(inbox.id, secret.as_deref(), &request)
        .await?;
    Ok(axum::Json(WidgetSession {
        token: s.token,
        contact_id: s.contact_id,
        verified: s.verified,
        expires_at: s.expires_at,
    }))
}

#[derive(Deserialize, IntoParams)]
struct LinkQuery {
    /// The token of a continuity link (the part after `/c/`).
    token: String,
}

#[derive(Serialize, ToSchema)]
struct LinkTarget {
    /// The widget inbox's public token, for `data-inbox`.
    inbox: String,
}

/// Whether a continuity link still holds, and the widget it opens.
#[utoipa::path(get, path = "/api/widget/v1/link", tag = "widget", params(LinkQuery),
    responses((status = 200, body = LinkTarget), (status = 404, description = "unknown, expired or revoked"), (status = 429)))]
async fn link(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Query(q): Query<LinkQuery>,
) -> ApiResult<axum::Json<LinkTarget>> {
    state.widget_per_ip.check(&addr.ip())?;
    let now = kefu_core::time::now().timestamp();
    let link = state
        .app
        .redeem_link(&q.token, now)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (public, _) = state.store.widget_keys(link.inbox_id).await?;
    Ok(axum::Json(LinkTarget {
        inbox: public.ok_or(ApiError::NotFound)?,
    }))
}

// ------------------------------------------------------------ attachments

/// What customers may upload: pictures, PDFs, text and office documents.
pub(crate) const VISITOR_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
];

/// Customers' files are smaller than agents' (10 MiB or the server limit).
const VISITOR_MAX_BYTES: usize = 10 * 1024 * 1024;

pub const VISITOR_TOKEN_HEADER: &str = "x-visitor-token";

async fn visitor_claims(state: &AppState, token: &str) -> ApiResult<Claims> {
    state
        .app
        .visitor_claims(token)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// Uploads a customer's file (multipart field `file`, header X-Visitor-Token);
/// send its id in the `attachment_ids` of a widget `send`.
#[utoipa::path(post, path = "/api/widget/v1/attachments", tag = "widget", request_body(content_type = "multipart/form-data", description = "field `file`"),
    responses((status = 201, body = kefu_core::Attachment), (status = 401), (status = 413), (status = 422),
        (status = 429, description = "`rate_limited`, or `upload_quota`: too many unsent files (send them, or wait for them to expire)")))]
async fn upload(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(axum::http::StatusCode, axum::Json<kefu_core::Attachment>)> {
    state.widget_per_ip.check(&addr.ip())?;
    let token = headers
        .get(VISITOR_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    let claims = visitor_claims(&state, token).await?;
    // The quota first: a customer holding too many unsent files is
    // answered before a byte of this one is read.
    let room = crate::uploads::room_for(&state, claims.c).await?;
    let file_max = VISITOR_MAX_BYTES.min(state.config.max_upload_bytes) as u64;
    let allowed = |_: &str, content_type: &str| {
        if VISITOR_TYPES.contains(&content_type) {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(format!(
                "files of type {content_type} are not accepted"
            )))
        }
    };
    let a = super::attachments::receive(&state, form, file_max.min(room), Some(claims.c), allowed)
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge if room < file_max => crate::uploads::quota_error(&state),
            e => e,
        })?;
    Ok((axum::http::StatusCode::CREATED, axum::Json(a)))
}

#[derive(Deserialize, IntoParams)]
struct FileQuery {
    /// The visitor token (a query parameter, so `<img src>` works).
    token: String,
}

/// A file of one of the visitor's conversations (or one they uploaded).
#[utoipa::path(get, path = "/api/widget/v1/attachments/{id}", tag = "widget", params(("id" = Uuid, Path), FileQuery), responses((status = 200, description = "the file"), (status = 404)))]
async fn download(
    State(state): State<AppState>,
    crate::extract::Path(id): crate::extract::Path<Uuid>,
    Query(q): Query<FileQuery>,
) -> ApiResult<axum::response::Response> {
    let claims = visitor_claims(&state, &q.token).await?;
    let (a, conversation, uploaded_by) = state.store.attachment(id).await?;
    let mine = match conversation {
        Some(c) => state.store.conversation(c).await?.contact_id == claims.c,
        None => uploaded_by == Some(claims.c),
    };
    if !mine {
        return Err(ApiError::NotFound);
    }
    super::attachments::send_file(&state, &a).await
}
