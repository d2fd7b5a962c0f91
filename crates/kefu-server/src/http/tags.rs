//! Tags: anyone may list and create them; admins rename and delete.

use crate::auth::{Admin, Principal};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{NewTag, Tag, TagPatch};
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
    who: Principal,
    Json(body): Json<NewTag>,
) -> ApiResult<(StatusCode, axum::Json<Tag>)> {
    Ok((
        StatusCode::CREATED,
        axum::Json(state.app.create_tag(&who.agent_actor(), body).await?),
    ))
}

#[utoipa::path(patch, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)), request_body = TagPatch, responses((status = 200, body = Tag), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
    Json(patch): Json<TagPatch>,
) -> ApiResult<axum::Json<Tag>> {
    Ok(axum::Json(
        state.app.update_tag(&who.agent_actor(), id, patch).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/tags/{id}", tag = "tags", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn delete(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.app.delete_tag(&who.agent_actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
