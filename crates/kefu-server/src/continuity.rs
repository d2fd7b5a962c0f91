//! Continuity links: `/c/TOKEN` opens the widget already identified as one
//! contact. The links themselves (signing, issuing, the CSV, redeeming) are
//! the application layer's, `kefu_app::continuity`; this is the page.

use crate::state::AppState;
use axum::Router;
use axum::routing::get;

/// `/c/TOKEN` is a page that loads the widget with the link (web/continue.*);
/// the page asks `GET /api/widget/v1/link` whether the link still holds.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/c/{token}",
        get(|| async { crate::web::page("continue.html") }),
    )
}
