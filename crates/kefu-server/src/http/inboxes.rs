//! Inboxes: agents see those they are members of; admins see and manage all.

use crate::auth::{Admin, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{Inbox, InboxPatch, NewInbox};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(widget_keys, rotate_widget_keys))
        .routes(routes!(list, create))
        .routes(routes!(get_one, update))
}

#[utoipa::path(get, path = "/api/v1/inboxes", tag = "inboxes", responses((status = 200, body = Vec<Inbox>)))]
async fn list(State(state): State<AppState>, who: Principal) -> ApiResult<axum::Json<Vec<Inbox>>> {
    let member = if who.is_admin() {
        None
    } else {
        Some(who.agent.id)
    };
    let inboxes = state.store.list_inboxes(member).await?;
    Ok(axum::Json(inboxes.into_iter().map(masked).collect()))
}

/// Creates an inbox. A form inbox's `settings.form` is checked (and given a
/// slug and the default fields when missing); see docs/forms.md.
#[utoipa::path(post, path = "/api/v1/inboxes", tag = "inboxes", request_body = NewInbox, responses((status = 201, body = Inbox), (status = 422)))]
async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(mut body): Json<NewInbox>,
) -> ApiResult<(StatusCode, axum::Json<Inbox>)> {
    body.validate()?;
    keep_stored_passwords(&mut body.settings, &serde_json::Value::Null)?;
    state.check_inbox_settings(body.kind, &body.settings)?;
    crate::reply_inbox::prepare_widget(&state, body.kind, &body.settings).await?;
    let slug = crate::form::prepare_inbox(&state, body.kind, &mut body.settings, None).await?;
    let inbox = state
        .app
        .create_inbox(&who.agent_actor(), body, slug)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(masked(inbox))))
}

#[utoipa::path(get, path = "/api/v1/inboxes/{id}", tag = "inboxes", params(("id" = Uuid, Path)), responses((status = 200, body = Inbox), (status = 404)))]
async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Inbox>> {
    if !who.is_admin() && !state.store.is_inbox_member(id, who.agent.id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(axum::Json(masked(state.store.inbox(id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/inboxes/{id}", tag = "inboxes", params(("id" = Uuid, Path)), request_body = InboxPatch, responses((status = 200, body = Inbox), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
    Json(mut patch): Json<InboxPatch>,
) -> ApiResult<axum::Json<Inbox>> {
    patch.validate()?;
    let mut slug = None;
    if let Some(settings) = &mut patch.settings {
        let stored = state.store.inbox(id).await?;
        keep_stored_passwords(settings, &stored.settings)?;
        state.check_inbox_settings(stored.kind, settings)?;
        crate::reply_inbox::prepare_widget(&state, stored.kind, settings).await?;
        slug = crate::form::prepare_inbox(&state, stored.kind, settings, Some(id)).await?;
    }
    let inbox = state
        .app
        .update_inbox(&who.agent_actor(), id, patch, slug)
        .await?;
    Ok(axum::Json(masked(inbox)))
}

/// What the API shows instead of a stored mail password or DKIM private
/// key. Sent back in a PATCH (the console sends back the settings it was
/// shown), it keeps the stored secret; any other value replaces it. Secrets
/// are never shown again once saved: the API is read by every member of an
/// inbox and by read-scope tokens, and a secret is for the server only.
pub const PASSWORD_MASK: &str = "********";
const PASSWORDS: [&str; 3] = [
    "/email/imap/password",
    "/email/smtp/password",
    "/email/dkim/private_key",
];

fn masked(mut inbox: Inbox) -> Inbox {
    for path in PASSWORDS {
        if let Some(p) = inbox.settings.pointer_mut(path)
            && !p.is_null()
        {
            *p = json!(PASSWORD_MASK);
        }
    }
    inbox
}

/// Puts the stored password where the new settings carry the mask.
fn keep_stored_passwords(new: &mut serde_json::Value, stored: &serde_json::Value) -> ApiResult<()> {
    for path in PASSWORDS {
        let Some(p) = new.pointer_mut(path) else {
            continue;
        };
        if p.as_str() != Some(PASSWORD_MASK) {
            continue;
        }
        match stored.pointer(path).filter(|v| !v.is_null()) {
            Some(old) => *p = old.clone(),
            None => {
                return Err(kefu_core::ValidationError::new(
                    format!("settings{}", path.replace('/', ".")),
                    format!("{PASSWORD_MASK} stands for the stored secret, and none is stored"),
                )
                .into());
            }
        }
    }
    Ok(())
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct WidgetKeys {
    /// Public: goes into the script tag.
    public_token: String,
    /// Secret: the site signs its users' identifiers with it, server-side.
    identity_secret: String,
    /// The tag to paste into the site's pages.
    snippet: String,
}

async fn keys_of(state: &AppState, who: &Principal, id: Uuid) -> ApiResult<WidgetKeys> {
    let (public_token, identity_secret) = state.app.widget_keys(&who.agent_actor(), id).await?;
    let base = state.config.public_url.clone().unwrap_or_default();
    let snippet =
        format!(r#"<script src="{base}/widget.js" data-inbox="{public_token}" async></script>"#);
    Ok(WidgetKeys {
        public_token,
        identity_secret,
        snippet,
    })
}

/// The widget's public token, identity secret and embed snippet (admin).
#[utoipa::path(get, path = "/api/v1/inboxes/{id}/widget", tag = "inboxes", params(("id" = Uuid, Path)), responses((status = 200, body = WidgetKeys), (status = 422)))]
async fn widget_keys(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<WidgetKeys>> {
    Ok(axum::Json(keys_of(&state, &who, id).await?))
}

/// New widget token and identity secret; the old ones stop working (admin).
#[utoipa::path(post, path = "/api/v1/inboxes/{id}/widget", tag = "inboxes", params(("id" = Uuid, Path)), responses((status = 200, body = WidgetKeys)))]
async fn rotate_widget_keys(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<WidgetKeys>> {
    state.app.rotate_widget_keys(&who.agent_actor(), id).await?;
    Ok(axum::Json(keys_of(&state, &who, id).await?))
}
