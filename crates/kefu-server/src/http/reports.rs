//! Reports for admins: customer ratings per agent and per inbox.

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(csat))
}

#[derive(Deserialize, IntoParams)]
struct CsatQuery {
    /// `agent` (the assignee, default) or `inbox`.
    by: Option<String>,
    /// Start of the period (default: 30 days ago).
    from: Option<DateTime<Utc>>,
    /// End of the period, exclusive (default: now, this millisecond included).
    to: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
struct CsatLine {
    /// The agent or inbox; null for ratings of unassigned conversations.
    id: Option<Uuid>,
    ratings: i64,
    average: f64,
    /// Counts of scores 1 to 5.
    distribution: [i64; 5],
}

#[derive(Serialize, ToSchema)]
struct CsatReport {
    by: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lines: Vec<CsatLine>,
}

/// Customer satisfaction (1–5 ratings after resolution), per agent or inbox.
#[utoipa::path(get, path = "/api/v1/reports/csat", tag = "reports", params(CsatQuery), responses((status = 200, body = CsatReport), (status = 403)))]
async fn csat(
    State(state): State<AppState>,
    Admin(_who): Admin,
    Query(q): Query<CsatQuery>,
) -> ApiResult<axum::Json<CsatReport>> {
    let by = q.by.unwrap_or_else(|| "agent".into());
    let by_inbox = match by.as_str() {
        "agent" => false,
        "inbox" => true,
        _ => return Err(ApiError::BadRequest("by: `agent` or `inbox`".into())),
    };
    // Without `to`, everything rated so far: the window ends after this
    // millisecond (times are stored in whole milliseconds, the end is
    // exclusive), so a rating given in the same millisecond counts.
    // The default `from` is computed from a given `to`, which may be at
    // the edge of what chrono represents: checked, never panicking.
    let to =
        q.to.unwrap_or_else(|| Utc::now() + Duration::milliseconds(1));
    let from = match q.from {
        Some(from) => from,
        None => to.checked_sub_signed(Duration::days(30)).ok_or_else(|| {
            ApiError::BadRequest("to: out of range (give from, or a later to)".into())
        })?,
    };
    let rows = state.store.csat_report(by_inbox, from, to).await?;
    let lines = rows
        .into_iter()
        .map(|r| CsatLine {
            id: r.id,
            ratings: r.ratings,
            average: r.average,
            distribution: r.distribution,
        })
        .collect();
    Ok(axum::Json(CsatReport {
        by,
        from,
        to,
        lines,
    }))
}
