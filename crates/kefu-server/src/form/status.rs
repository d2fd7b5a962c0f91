//! The customer's status link, `/s/TOKEN`: one ticket's public messages
//! (never internal notes), its status, and a reply box that works without
//! JavaScript. The token is signed with a key derived from the visitor key
//! (so it is no other kind of token) and names the conversation and its
//! contact; it is checked on every request, and a conversation that moved
//! to another contact (merged contacts) refuses the old link.

use super::FormError;
use super::page::{self, Lang};
use crate::error::ApiError;
use crate::extract::Path;
use crate::state::AppState;
use crate::visitor;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use kefu_core::{Conversation, Direction, NewMessage};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
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
}

pub fn key(visitor_key: &[u8]) -> Vec<u8> {
    visitor::mac(visitor_key, b"kefu form status link")
}

pub fn path(key: &[u8], conversation: Uuid, contact: Uuid) -> String {
    format!(
        "/s/{}",
        visitor::sign_as(
            PREFIX,
            key,
            &Claims {
                v: conversation,
                c: contact
            }
        )
    )
}

/// The conversation a token names, if the token is ours and still fits.
async fn conversation(state: &AppState, token: &str) -> Result<Conversation, FormError> {
    let key = key(&state.visitor_key().await?);
    let claims: Claims = visitor::verify_as(PREFIX, &key, token).ok_or(FormError::BadLink)?;
    match state.store.conversation(claims.v).await {
        Ok(c) if c.contact_id == claims.c => Ok(c),
        Ok(_) | Err(kefu_store::StoreError::NotFound) => Err(FormError::BadLink),
        Err(e) => Err(e.into()),
    }
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
    m.validate().map_err(ApiError::from)?;
    state.store.append_message(c.id, &m, None).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_tokens_are_their_own_kind() {
        let visitor_key = b"0123456789abcdef0123456789abcdef";
        let k = key(visitor_key);
        let (v, c) = (Uuid::now_v7(), Uuid::now_v7());
        let p = path(&k, v, c);
        let token = p.strip_prefix("/s/").unwrap();
        assert_eq!(
            visitor::verify_as::<Claims>(PREFIX, &k, token),
            Some(Claims { v, c })
        );
        assert_eq!(
            visitor::verify_as::<Claims>(PREFIX, visitor_key, token),
            None
        );
        let as_visitor = token.replacen(PREFIX, "v1.", 1);
        assert!(visitor::verify(visitor_key, &as_visitor, 0).is_none());
    }
}
