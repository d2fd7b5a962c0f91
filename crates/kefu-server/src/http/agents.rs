//! Agents: listing (everyone, for assignment), creation and changes (admins),
//! revoking an agent's access, and handing the admin role over.

use crate::auth::{Admin, Principal};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{Agent, AgentPatch, NewAgent, Session};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update))
        .routes(routes!(sessions, revoke_access))
        .routes(routes!(transfer_admin))
}

/// All agents.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", responses((status = 200, body = Vec<Agent>)))]
async fn list(State(state): State<AppState>, _who: Principal) -> ApiResult<axum::Json<Vec<Agent>>> {
    Ok(axum::Json(state.store.list_agents().await?))
}

/// Creates an agent (admin).
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = NewAgent, responses((status = 201, body = Agent), (status = 409), (status = 422)))]
async fn create(
    State(state): State<AppState>,
    Admin(who): Admin,
    Json(body): Json<NewAgent>,
) -> ApiResult<(StatusCode, axum::Json<Agent>)> {
    let agent = state.app.create_agent(&who.agent_actor(), body).await?;
    Ok((StatusCode::CREATED, axum::Json(agent)))
}

#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)), responses((status = 200, body = Agent), (status = 404)))]
async fn get_one(
    State(state): State<AppState>,
    _who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Agent>> {
    Ok(axum::Json(state.store.agent(id).await?))
}

/// Changes an agent. Agents may change their own name and avatar; everything
/// else, and other agents, is for admins. Deactivating signs the agent out
/// everywhere and revokes their tokens at once.
#[utoipa::path(patch, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = Uuid, Path)), request_body = AgentPatch, responses((status = 200, body = Agent), (status = 403), (status = 404)))]
async fn update(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
    Json(patch): Json<AgentPatch>,
) -> ApiResult<axum::Json<Agent>> {
    Ok(axum::Json(
        state
            .app
            .update_agent(&who.agent_actor(), id, patch)
            .await?,
    ))
}

/// An agent's sessions (admin).
#[utoipa::path(get, path = "/api/v1/agents/{id}/sessions", tag = "agents", params(("id" = Uuid, Path)), responses((status = 200, body = Vec<Session>)))]
async fn sessions(
    State(state): State<AppState>,
    Admin(_who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Vec<Session>>> {
    state.store.agent(id).await?;
    Ok(axum::Json(state.store.list_sessions(id).await?))
}

#[derive(Serialize, ToSchema)]
struct AccessRevoked {
    sessions: u64,
    tokens: u64,
}

/// Signs an agent out everywhere and revokes all their API tokens (admin).
#[utoipa::path(delete, path = "/api/v1/agents/{id}/sessions", tag = "agents", params(("id" = Uuid, Path)), responses((status = 200, body = AccessRevoked)))]
async fn revoke_access(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<AccessRevoked>> {
    let r = state.app.revoke_access(&who.agent_actor(), id).await?;
    Ok(axum::Json(AccessRevoked {
        sessions: r.sessions,
        tokens: r.tokens,
    }))
}

/// Makes this agent an admin and the caller an agent (admin).
#[utoipa::path(post, path = "/api/v1/agents/{id}/transfer-admin", tag = "agents", params(("id" = Uuid, Path)), responses((status = 200, body = Agent), (status = 422)))]
async fn transfer_admin(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Agent>> {
    Ok(axum::Json(
        state.app.transfer_admin(&who.agent_actor(), id).await?,
    ))
}
