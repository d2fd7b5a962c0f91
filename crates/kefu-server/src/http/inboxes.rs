//! Inboxes: agents see those they are members of; admins see and manage all.

use super::audit;
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
    Ok(axum::Json(state.store.list_inboxes(member).await?))
}

#[utoipa::path(post, path = "/api/v1/inboxes", tag = "inboxes", request_body = NewInbox, responses((status = 201, body = Inbox), (status = 422)))]
async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(mut body): Json<NewInbox>,
) -> ApiResult<(StatusCode, axum::Json<Inbox>)> {
    body.validate()?;
    let inbox = state.store.create_inbox(&body).await?;
    audit(
        &state,
        Some(&who),
        "inbox.created",
        Some(inbox.id.to_string()),
        json!({ "name": inbox.name, "kind": inbox.kind }),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(inbox)))
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
    Ok(axum::Json(state.store.inbox(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/inboxes/{id}", tag = "inboxes", params(("id" = Uuid, Path)), request_body = InboxPatch, responses((status = 200, body = Inbox), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
    Json(mut patch): Json<InboxPatch>,
) -> ApiResult<axum::Json<Inbox>> {
    patch.validate()?;
    let inbox = state.store.update_inbox(id, &patch).await?;
    audit(
        &state,
        Some(&who),
        "inbox.updated",
        Some(id.to_string()),
        json!({ "name": patch.name, "member_ids": patch.member_ids }),
    )
    .await;
    Ok(axum::Json(inbox))
}
