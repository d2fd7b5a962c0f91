//! The audit log, readable by admins.

use super::{Paged, page_limit};
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use kefu_core::AuditEntry;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
struct AuditQuery {
    /// Exact action, e.g. `auth.login_failed`, `agent.updated`.
    action: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Newest first.
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit", params(AuditQuery), responses((status = 200, body = Paged<AuditEntry>), (status = 403)))]
async fn list(
    State(state): State<AppState>,
    Admin(_who): Admin,
    Query(q): Query<AuditQuery>,
) -> ApiResult<axum::Json<Paged<AuditEntry>>> {
    let page = state
        .store
        .list_audit(
            q.action.as_deref(),
            q.cursor.as_deref(),
            page_limit(q.limit),
        )
        .await?;
    Ok(axum::Json(page.into()))
}
