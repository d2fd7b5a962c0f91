//! Teams: everyone may list them; admins manage them.

use crate::auth::{Admin, Principal};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{NewTeam, Team, TeamPatch};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", responses((status = 200, body = Vec<Team>)))]
async fn list(State(state): State<AppState>, _who: Principal) -> ApiResult<axum::Json<Vec<Team>>> {
    Ok(axum::Json(state.store.list_teams().await?))
}

#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = NewTeam, responses((status = 201, body = Team), (status = 409)))]
async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(body): Json<NewTeam>,
) -> ApiResult<(StatusCode, axum::Json<Team>)> {
    let team = state.app.create_team(&who.agent_actor(), body).await?;
    Ok((StatusCode::CREATED, axum::Json(team)))
}

#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = Uuid, Path)), responses((status = 200, body = Team), (status = 404)))]
async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Team>> {
    Ok(axum::Json(state.store.team(id).await?))
}

#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = Uuid, Path)), request_body = TeamPatch, responses((status = 200, body = Team), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
    Json(patch): Json<TeamPatch>,
) -> ApiResult<axum::Json<Team>> {
    let team = state.app.update_team(&who.agent_actor(), id, patch).await?;
    Ok(axum::Json(team))
}

#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn delete(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.app.delete_team(&who.agent_actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
