//! Canned responses: everyone lists and searches them; admins manage them.

use crate::auth::{Admin, Principal};
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{CannedResponse, CannedResponsePatch, NewCannedResponse};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

#[derive(Deserialize, IntoParams)]
struct Search {
    /// Part of the shortcut or text.
    q: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/canned-responses", tag = "canned_responses", params(Search), responses((status = 200, body = Vec<CannedResponse>)))]
async fn list(
    State(state): State<AppState>,
    _who: Principal,
    Query(s): Query<Search>,
) -> ApiResult<axum::Json<Vec<CannedResponse>>> {
    let q = s.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    Ok(axum::Json(state.store.list_canned(q).await?))
}

#[utoipa::path(post, path = "/api/v1/canned-responses", tag = "canned_responses", request_body = NewCannedResponse, responses((status = 201, body = CannedResponse), (status = 409)))]
async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(body): Json<NewCannedResponse>,
) -> ApiResult<(StatusCode, axum::Json<CannedResponse>)> {
    let c = state.app.create_canned(&who.agent_actor(), body).await?;
    Ok((StatusCode::CREATED, axum::Json(c)))
}

#[utoipa::path(get, path = "/api/v1/canned-responses/{id}", tag = "canned_responses", params(("id" = Uuid, Path)), responses((status = 200, body = CannedResponse), (status = 404)))]
async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<CannedResponse>> {
    Ok(axum::Json(state.store.canned(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/canned-responses/{id}", tag = "canned_responses", params(("id" = Uuid, Path)), request_body = CannedResponsePatch, responses((status = 200, body = CannedResponse), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
    Json(patch): Json<CannedResponsePatch>,
) -> ApiResult<axum::Json<CannedResponse>> {
    Ok(axum::Json(
        state
            .app
            .update_canned(&who.agent_actor(), id, patch)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/canned-responses/{id}", tag = "canned_responses", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn delete(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.app.delete_canned(&who.agent_actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
