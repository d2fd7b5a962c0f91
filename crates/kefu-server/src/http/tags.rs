//! Tags: anyone may list and create them; admins rename and delete.

use super::audit;
use crate::auth::{Admin, Principal};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{NewTag, Tag, TagPatch};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, delete))
}

#[utoipa::path(get, path = "/api/v1/tags", tag = "tags", responses((status = 200, body = Vec<Tag>)))]
async fn list(State(state): State<AppState>, _who: Principal) -> ApiResult<axum::Json<Vec<Tag>>> {
    Ok(axum::Json(state.store.list_tags().await?))
}

#[utoipa::path(post, path = "/api/v1/tags", tag = "tags", request_body = NewTag, responses((status = 201, body = Tag), (status = 409)))]
async fn create(
    State(state): State<AppState>,
    _who: Principal,
    Json(mut body): Json<NewTag>,
) -> ApiResult<(StatusCode, axum::Json<Tag>)> {
    body.validate()?;
    Ok((
        StatusCode::CREATED,
        axum::Json(state.store.create_tag(&body).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)), request_body = TagPatch, responses((status = 200, body = Tag), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
    Json(mut patch): Json<TagPatch>,
) -> ApiResult<axum::Json<Tag>> {
    patch.validate()?;
    let tag = state.store.update_tag(id, &patch).await?;
    audit(
        &state,
        Some(&who),
        "tag.updated",
        Some(id.to_string()),
        json!({ "name": patch.name }),
    )
    .await;
    Ok(axum::Json(tag))
}

#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn delete(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.store.delete_tag(id).await?;
    audit(
        &state,
        Some(&who),
        "tag.deleted",
        Some(id.to_string()),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
