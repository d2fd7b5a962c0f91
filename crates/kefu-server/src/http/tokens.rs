//! Personal API tokens: shown once at creation, stored hashed, scoped
//! read/write/admin, revocable.

use super::audit;
use crate::auth::{Principal, TOKEN_PREFIX, new_secret, sha256};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use kefu_core::{ApiToken, TokenScope, validate};
use kefu_store::{NewApiToken, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
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

/// Mints a token for `agent_id`. Shared by the API and `kefu admin token create`.
pub async fn mint(
    store: &Store,
    agent_id: Uuid,
    name: &str,
    scope: TokenScope,
) -> Result<CreatedToken, StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", new_secret());
    let prefix: String = token.chars().take(12).collect();
    let info = store
        .create_api_token(NewApiToken {
            agent_id,
            name,
            scope,
            token_hash: &sha256(&token),
            prefix: &prefix,
        })
        .await?;
    Ok(CreatedToken { info, token })
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
    let name = validate::text("name", &body.name, 1, 100)?;
    if body.scope == TokenScope::Admin && !who.is_admin() {
        return Err(ApiError::Forbidden(
            "only admins may create admin-scoped tokens",
        ));
    }
    if let crate::auth::Via::Token { scope, .. } = who.via
        && !scope.allows(body.scope)
    {
        return Err(ApiError::Forbidden(
            "a token cannot create a token of wider scope",
        ));
    }
    let created = mint(&state.store, who.agent.id, &name, body.scope).await?;
    audit(
        &state,
        Some(&who),
        "token.created",
        Some(created.info.id.to_string()),
        json!({ "scope": body.scope, "name": name }),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revokes a token of the caller's; admins may revoke anyone's.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = Uuid, Path)), responses((status = 204), (status = 404)))]
async fn revoke(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let owner = if who.is_admin() {
        None
    } else {
        Some(who.agent.id)
    };
    state.store.delete_api_token(id, owner).await?;
    audit(
        &state,
        Some(&who),
        "token.revoked",
        Some(id.to_string()),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
