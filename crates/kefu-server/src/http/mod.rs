//! The REST API, one module per resource. Each exports `router()` with its
//! routes and their OpenAPI paths; `api_router` merges them.

mod agents;
pub(crate) mod attachments;
mod audit;
mod auth;
mod canned;
mod contacts;
mod conversations;
mod imports;
mod inboxes;
pub mod ops;
mod reports;
mod tags;
mod teams;
pub mod tokens;
pub(crate) mod widget;

use crate::state::AppState;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(title = "kefu", description = "Self-hosted omnichannel customer support. Authenticate with a session cookie (plus X-CSRF-Token on writes) or `Authorization: Bearer <API token>`."),
    modifiers(&Security),
    tags(
        (name = "auth"), (name = "agents"), (name = "tokens"), (name = "teams"), (name = "inboxes"),
        (name = "contacts"), (name = "conversations"), (name = "attachments"), (name = "tags"),
        (name = "canned_responses"), (name = "audit"), (name = "widget"), (name = "reports"),
        (name = "imports"), (name = "forms"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                crate::auth::SESSION_COOKIE,
            ))),
        );
    }
}

pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(tokens::router())
        .merge(agents::router())
        .merge(teams::router())
        .merge(inboxes::router())
        .merge(contacts::router())
        .merge(conversations::router())
        .merge(attachments::router())
        .merge(tags::router())
        .merge(canned::router())
        .merge(audit::router())
        .merge(imports::router())
        .merge(reports::router())
        .merge(widget::router().layer(widget_cors()))
        .merge(crate::form::api::router())
}

/// The widget's endpoints are called from customers' sites: any origin, no
/// credentials (the visitor token travels in the body, never in a cookie).
fn widget_cors() -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::HeaderName::from_static(widget::VISITOR_TOKEN_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(3600))
}

/// One page of a list; pass `next_cursor` back as `cursor` for the next.
#[derive(Serialize, ToSchema)]
pub struct Paged<T: ToSchema> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> From<kefu_store::Page<T>> for Paged<T> {
    fn from(p: kefu_store::Page<T>) -> Self {
        Paged {
            items: p.items,
            next_cursor: p.next_cursor,
        }
    }
}

/// `limit` from a query string: 25 by default, at most 100.
pub fn page_limit(limit: Option<usize>) -> usize {
    limit.unwrap_or(25).clamp(1, 100)
}

/// Records an admin action or a security event in the audit log, through
/// the application layer's one writer of it (a failure is logged there and
/// does not undo the action, which is committed).
pub async fn audit(
    state: &AppState,
    who: Option<&crate::auth::Principal>,
    action: &str,
    target: Option<String>,
    details: serde_json::Value,
) {
    let actor = who.map(crate::auth::Principal::agent_actor);
    state
        .app
        .audit(actor.as_ref(), action, target, details)
        .await;
}
