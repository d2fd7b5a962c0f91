//! Personal API tokens: shown once at creation, stored hashed, scoped
//! read/write/admin, revocable.

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{ApiToken, TokenScope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scope: TokenScope,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: ApiToken,
    /// The secret, shown this once: only its hash is kept.
    pub token: String,
}

/// The caller's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiToken>)))]
async fn list(
    State(state): State<AppState>,
    who: Principal,
) -> ApiResult<axum::Json<Vec<ApiToken>>> {
    Ok(axum::Json(state.store.list_api_tokens(who.agent.id).await?))
}

/// Creates a token for the caller. An `admin` scope needs the admin role.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken, responses((status = 201, body = CreatedToken), (status = 403)))]
async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<NewToken>,
) -> ApiResult<(StatusCode, axum::Json<CreatedToken>)> {
    let minted = state
        .app
        .mint_token(&who.agent_actor(), &body.name, body.scope)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            info: minted.info,
            token: minted.token,
        }),
    ))
}

/// Revokes a token of the caller's; admins may revoke anyone's.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    state.app.revoke_token(&who.agent_actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
