//! Import runs (`kefu import wechat`), readable by admins: who imported
//! what, when, and the report. Imports run from the shell, not over HTTP.

use super::page_limit;
use crate::auth::Admin;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
struct ImportsQuery {
    /// At most this many runs (25 by default, at most 100).
    limit: Option<usize>,
}

/// One import run.
#[derive(Serialize, ToSchema)]
pub struct ImportRun {
    pub id: Uuid,
    /// e.g. `wechat`.
    pub source: String,
    /// Who ran it (`--actor`, or the OS user).
    pub actor: String,
    /// `running`, `finished`, `finished_with_rejections` or `failed`.
    pub status: String,
    pub dry_run: bool,
    /// The input paths.
    #[schema(value_type = Vec<String>)]
    pub files: serde_json::Value,
    /// The importer's report (counts, rejected lines, PII summary).
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<kefu_store::ImportRun> for ImportRun {
    fn from(r: kefu_store::ImportRun) -> Self {
        ImportRun {
            id: r.id,
            source: r.source,
            actor: r.actor,
            status: r.status,
            dry_run: r.dry_run,
            files: r.files,
            report: r.report,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct ImportRuns {
    items: Vec<ImportRun>,
}

/// Newest first.
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports", params(ImportsQuery), responses((status = 200, body = ImportRuns), (status = 403)))]
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    Admin(_who): Admin,
    Query(q): Query<ImportsQuery>,
) -> ApiResult<axum::Json<ImportRuns>> {
    let runs = state.store.list_import_runs(page_limit(q.limit)).await?;
    Ok(axum::Json(ImportRuns {
        items: runs.into_iter().map(ImportRun::from).collect(),
    }))
}
