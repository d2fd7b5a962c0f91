//! The customer's status link, `/s/TOKEN`: one ticket's public messages
//! (never internal notes), its status, and a reply box that works without
//! JavaScript. The token is signed with a key derived from the visitor key
//! (so it is no other kind of token) and names the conversation and its
//! contact; it is checked on every request, and a conversation that moved
//! to another contact (merged contacts) refuses the old link.
//!
//! A link also carries its expiry (`settings.form.status_link_days` after it
//! was made, 180 by default) and the conversation's link generation. An
//! agent revokes a conversation's links by bumping the generation
//! (`POST /api/v1/conversations/{id}/status-link`, which answers a new link);
//! it lives in the settings table (`status_link_generation:{id}`) rather than
//! a column, since few conversations ever have one and the check is one
//! keyed read. Links made before expiry existed carry neither and keep
//! working until revoked.

use super::FormError;
use super::page::{self, Lang};
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;
use crate::visitor;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use kefu_app::{Actor, Channel, Target};
use kefu_core::{Conversation, Direction, NewMessage};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use utoipa::ToSchema;
use uuid::Uuid;

const PREFIX: &str = "s1.";
/// A reply typed on the status page.
pub const MAX_REPLY_CHARS: usize = 5_000;
/// The newest messages shown.
const SHOWN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    /// The conversation.
    v: Uuid,
    /// Its contact when the link was made.
    c: Uuid,
    /// Expires at, Unix seconds (absent in links made before expiry existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<i64>,
    /// The conversation's link generation when the link was made.
    #[serde(default, skip_serializing_if = "is_zero")]
    g: i64,
}

fn is_zero(g: &i64) -> bool {
    *g == 0
}

/// What a status link says about itself, for [`path`].
#[derive(Debug, Clone, Copy)]
pub struct LinkSpec {
    pub conversation: Uuid,
    pub contact: Uuid,
    pub generation: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

pub fn key(visitor_key: &[u8]) -> Vec<u8> {
    visitor::mac(visitor_key, b"kefu form status link")
}

pub fn path(key: &[u8], spec: LinkSpec) -> String {
    format!(
        "/s/{}",
        visitor::sign_as(
            PREFIX,
            key,
            &Claims {
                v: spec.conversation,
                c: spec.contact,
                e: Some(spec.expires_at),
                g: spec.generation,
            }
        )
    )
}

/// The conversation's current link generation (0 until first revoked).
async fn generation(state: &AppState, conversation: Uuid) -> Result<i64, ApiError> {
    Ok(state.app.status_link_generation(conversation).await?)
}

/// A fresh link to `c` at link generation `generation`, valid for `days`
/// from now: its path and when it expires (Unix seconds). `key` is the
/// status-link key ([`key`] of the visitor key). No I/O: both callers already hold the
/// inbox's settings and know the generation, so reading them here again
/// would be a second round trip for the same answer.
pub fn link(key: &[u8], c: &Conversation, days: u32, generation: i64) -> (String, i64) {
    let expires_at = chrono::Utc::now().timestamp() + i64::from(days) * 86_400;
    let spec = LinkSpec {
        conversation: c.id,
        contact: c.contact_id,
        generation,
        expires_at,
    };
    (path(key, spec), expires_at)
}

/// The conversation a token names, if the token is ours and still fits.
async fn conversation(state: &AppState, token: &str) -> Result<Conversation, FormError> {
    let key = key(&state.visitor_key().await?);
    let claims: Claims = visitor::verify_as(PREFIX, &key, token).ok_or(FormError::BadLink)?;
    let c = match state.store.conversation(claims.v).await {
        Ok(c) if c.contact_id == claims.c => c,
        Ok(_) | Err(kefu_store::StoreError::NotFound) => return Err(FormError::BadLink),
        Err(e) => return Err(e.into()),
    };
    if claims.g != generation(state, c.id).await? {
        return Err(FormError::RevokedLink);
    }
    if claims
        .e
        .is_some_and(|e| e <= chrono::Utc::now().timestamp())
    {
        return Err(FormError::ExpiredLink);
    }
    Ok(c)
}

#[derive(Serialize, ToSchema)]
pub struct NewStatusLink {
    /// The customer's new private link to the ticket.
    status_url: String,
    /// When it stops working (RFC 3339).
    expires_at: String,
}

/// Revokes every status link of a form conversation (pages open on them
/// stop working at their next request) and answers a new one to give the
/// customer instead.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/status-link", tag = "conversations", params(("id" = Uuid, Path)), responses((status = 200, body = NewStatusLink), (status = 404), (status = 422)))]
#[tracing::instrument(skip_all, fields(conversation = %id))]
pub async fn new_link(
    State(state): State<AppState>,
    who: crate::auth::Principal,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<axum::Json<NewStatusLink>, ApiError> {
    let (c, inbox, next) = state.app.revoke_status_links(&who.actor(), id).await?;
    let days = super::settings::FormSettings::of(&inbox.settings)
        .map_or(super::settings::DEFAULT_STATUS_LINK_DAYS, |f| {
            f.status_link_days
        });
    let key = key(&state.visitor_key().await?);
    let (path, expires_at) = link(&key, &c, days, next);
    Ok(axum::Json(NewStatusLink {
        status_url: format!("{}{path}", super::base_url(&state, &headers)),
        expires_at: chrono::DateTime::from_timestamp(expires_at, 0)
            .unwrap_or_default()
            .to_rfc3339(),
    }))
}

async fn show(
    state: &AppState,
    token: &str,
    lang: Lang,
    draft: &str,
    problem: Option<super::submit::Problem>,
) -> Result<Response, FormError> {
    let c = conversation(state, token).await?;
    let inbox = state.store.inbox(c.inbox_id).await?;
    let mut messages = state.store.list_messages(c.id, 0, 10_000, false).await?;
    if messages.len() > SHOWN {
        messages.drain(..messages.len() - SHOWN);
    }
    let status = if problem.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let view = page::StatusView {
        token,
        inbox: &inbox,
        conversation: &c,
        messages: &messages,
        draft,
        problem,
    };
    Ok(page::html(status, page::status_page(lang, &view)))
}

pub async fn get(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    show(&state, &token, lang, "", None)
        .await
        .unwrap_or_else(|e| e.page(lang))
}

#[derive(Deserialize)]
pub struct Reply {
    #[serde(default)]
    text: String,
}

/// Appends the customer's reply as an incoming message, then shows the
/// page again by redirect (a reload does not send it twice).
pub async fn reply(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let result = async {
        state
            .form_per_ip
            .check(&addr.ip())
            .map_err(FormError::from)?;
        let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
            .await
            .map_err(|_| FormError::TooLarge)?;
        let Reply { text } = serde_urlencoded::from_bytes(&body)
            .map_err(|e| FormError::BadRequest(format!("malformed form body: {e}")))?;
        append(&state, &token, &text, lang).await
    }
    .await;
    result.unwrap_or_else(|e| e.page(lang))
}

async fn append(
    state: &AppState,
    token: &str,
    text: &str,
    lang: Lang,
) -> Result<Response, FormError> {
    let c = conversation(state, token).await?;
    let problem = match text.trim().chars().count() {
        0 => Some(super::submit::Problem::Required),
        n if n > MAX_REPLY_CHARS => Some(super::submit::Problem::TooLong(MAX_REPLY_CHARS)),
        _ => None,
    };
    if problem.is_some() {
        return show(state, token, lang, text, problem).await;
    }
    let mut m = NewMessage::text(Direction::Incoming, text.trim().replace("\r\n", "\n"));
    m.metadata = serde_json::json!({ "form": { "via": "status_page" } });
    // The link names the conversation and its contact: the customer acts as
    // that contact, on that conversation only.
    let customer = Actor::Contact {
        contact_id: c.contact_id,
        inbox_id: c.inbox_id,
        channel: Channel::Form,
    };
    state
        .app
        .post_message(&customer, Target::Conversation(c.id), m)
        .await?;
    Ok(Redirect::to(&format!("/s/{token}#latest")).into_response())
}

/// A file of the ticket's public messages.
pub async fn file(
    State(state): State<AppState>,
    Path((token, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let result = async {
        let c = conversation(&state, &token).await?;
        let (a, in_conversation, _) = state.store.attachment(id).await?;
        if in_conversation != Some(c.id) || !public_file(&state, c.id, id).await? {
            return Err(FormError::NotFound);
        }
        Ok(crate::http::attachments::send_file(&state, &a).await?)
    }
    .await;
    result.unwrap_or_else(|e| e.page(lang))
}

/// False for a file attached to an internal note.
async fn public_file(state: &AppState, conversation: Uuid, id: Uuid) -> Result<bool, FormError> {
    let messages = state
        .store
        .list_messages(conversation, 0, 10_000, false)
        .await?;
    Ok(messages
        .iter()
        .any(|m| m.attachments.iter().any(|a| a.id == id)))
}

/// Beijing time, the no-JavaScript rendering for Chinese readers: the
/// customers of a company leaving WeChat service are mostly in China, and a
/// time in UTC reads eight hours wrong to them.
const CHINA: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => unreachable!(),
};

/// A message's time on the status page: `<time class="local">` with the
/// instant in UTC in `datetime`, which form.js rewrites in the reader's own
/// time zone. Without JavaScript the text says the zone it is in: Beijing
/// time with its offset for Chinese, UTC for English.
pub(super) fn message_time(lang: Lang, at: chrono::DateTime<chrono::Utc>) -> maud::Markup {
    let text = match lang {
        Lang::Zh => format!(
            "{} (UTC+8)",
            at.with_timezone(&CHINA).format("%Y-%m-%d %H:%M")
        ),
        Lang::En => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    };
    maud::html! {
        time.local datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (text) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tokens_are_their_own_kind() {
        let visitor_key = b"0123456789abcdef0123456789abcdef";
        let k = key(visitor_key);
        let (v, c) = (Uuid::now_v7(), Uuid::now_v7());
        let spec = LinkSpec {
            conversation: v,
            contact: c,
            generation: 2,
            expires_at: 1_800_000_000,
        };
        let p = path(&k, spec);
        let token = p.strip_prefix("/s/").unwrap();
        assert_eq!(
            visitor::verify_as::<Claims>(PREFIX, &k, token),
            Some(Claims {
                v,
                c,
                e: Some(1_800_000_000),
                g: 2
            })
        );
        assert_eq!(
            visitor::verify_as::<Claims>(PREFIX, visitor_key, token),
            None
        );
        let as_visitor = token.replacen(PREFIX, "v1.", 1);
        assert!(visitor::verify(visitor_key, &as_visitor, 0).is_none());
    }

    #[test]
    fn message_times_say_their_zone_without_javascript() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-07T20:24:59Z")
            .expect("an RFC 3339 time")
            .with_timezone(&chrono::Utc);
        let zh = message_time(Lang::Zh, at).into_string();
        assert_eq!(
            zh,
            r#"<time class="local" datetime="2026-12-07T20:24:59Z">2026-12-08 04:24 (UTC+8)</time>"#
        );
        let en = message_time(Lang::En, at).into_string();
        assert_eq!(
            en,
            r#"<time class="local" datetime="2026-12-07T20:24:59Z">2026-12-07 20:24 UTC</time>"#
        );
    }
}
