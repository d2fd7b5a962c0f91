//! Agents: listing (everyone, for assignment), creation and changes (admins),
//! revoking an agent's access, and handing the admin role over.

use super::audit;
use crate::auth::{self, Admin, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{Agent, AgentPatch, NewAgent, Session};
use serde::Serialize;
use serde_json::json;
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
    Json(mut body): Json<NewAgent>,
) -> ApiResult<(StatusCode, axum::Json<Agent>)> {
    body.validate()?;
    let hash = match body.password.clone() {
        Some(p) => Some(auth::hash_password(p).await?),
        None => None,
    };
    let agent = state.store.create_agent(&body, hash.as_deref()).await?;
    audit(
        &state,
        Some(&who),
        "agent.created",
        Some(agent.id.to_string()),
        json!({ "email": agent.email, "role": agent.role }),
    )
    .await;
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
    Json(mut patch): Json<AgentPatch>,
) -> ApiResult<axum::Json<Agent>> {
    patch.validate()?;
    let own_profile_only = id == who.agent.id && patch.email.is_none() && patch.active.is_none();
    if !who.is_admin() && !own_profile_only {
        return Err(ApiError::Forbidden("admin role required"));
    }
    if patch.active == Some(false) {
        if id == who.agent.id {
            return Err(ApiError::Unprocessable(
                "you cannot deactivate yourself; transfer the admin role first".into(),
            ));
        }
        let target = state.store.agent(id).await?;
        if target.role.is_admin() && state.store.count_admins().await? <= 1 {
            return Err(ApiError::Unprocessable(
                "cannot deactivate the last admin".into(),
            ));
        }
    }
    let agent = state.store.update_agent(id, &patch).await?;
    if who.is_admin() && id != who.agent.id {
        audit(
            &state,
            Some(&who),
            "agent.updated",
            Some(id.to_string()),
            json!({ "active": patch.active, "email": patch.email, "name": patch.name }),
        )
        .await;
    }
    Ok(axum::Json(agent))
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
    state.store.agent(id).await?;
    let sessions = state.store.delete_sessions(id, None).await?;
    let tokens = state.store.delete_api_tokens(id).await?;
    audit(
        &state,
        Some(&who),
        "agent.access_revoked",
        Some(id.to_string()),
        json!({ "sessions": sessions, "tokens": tokens }),
    )
    .await;
    Ok(axum::Json(AccessRevoked { sessions, tokens }))
}

/// Makes this agent an admin and the caller an agent (admin).
#[utoipa::path(post, path = "/api/v1/agents/{id}/transfer-admin", tag = "agents", params(("id" = Uuid, Path)), responses((status = 200, body = Agent), (status = 422)))]
async fn transfer_admin(
    State(state): State<AppState>,
    Admin(who): Admin,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Agent>> {
    state.store.agent(id).await?;
    state.store.transfer_admin(who.agent.id, id).await?;
    audit(
        &state,
        Some(&who),
        "agent.admin_transferred",
        Some(id.to_string()),
        json!({ "from": who.agent.id }),
    )
    .await;
    Ok(axum::Json(state.store.agent(id).await?))
}
