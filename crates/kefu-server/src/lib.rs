//! The HTTP side of kefu: REST API under `/api/v1` (with its OpenAPI spec at
//! `/api/openapi.json`), the WebSockets, health and metrics, and the
//! embedded web pages. Every handler decodes its input, calls one operation
//! of the application layer (`kefu_app::App`, in `AppState::app`) and
//! encodes the answer; who may do what is decided there, not here. Reads go
//! to the store directly.
//!
//! - [`serve`] (this file) runs the server on a listener until a shutdown
//!   signal, letting in-flight requests finish; tests call it on
//!   `127.0.0.1:0`.
//! - [`router`] builds the whole route tree and its layers, once.
//! - `http/`: one module per resource, each exporting `router()`.
//! - [`auth`]: the `Principal` and `Admin` extractors (a `Principal` becomes
//!   the app's `Actor`). [`error`]: `ApiError`, with one `From<AppError>`. [`extract`]: JSON/path/query
//!   extractors that answer bad input in the API's error format.
//! - `ws/`: `/ws/widget` and `/ws/agent`, one task per socket.
//! - [`form`]: the H5 form channel (`/f/{slug}`, its JSON API, `/s/{token}`).
//! - `reply_inbox`: the email inbox a form or widget inbox also answers by
//!   mail through (`reply_email_inbox` in its settings), checked on save.
//! - [`state`], [`config`], [`limits`], [`metrics`], `web`: the plumbing;
//!   `uploads`: the quota and expiry of uploads never sent.

pub mod auth;
pub mod config;
pub mod continuity;
pub mod error;
pub mod extract;
pub mod form;
pub(crate) mod http;
pub use http::tokens as http_tokens;
pub mod limits;
pub mod metrics;
mod reply_inbox;
pub use kefu_app::setup;
pub mod state;
mod uploads;
pub use kefu_app::visitor;
mod web;
pub mod ws;

pub use config::ServerConfig;
pub use state::AppState;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The OpenAPI document of the whole API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::api_router().split_for_parts().1
}

pub fn router(state: AppState) -> Router {
    let (api, spec) = http::api_router().split_for_parts();
    let spec_json = std::sync::Arc::new(spec.to_pretty_json().unwrap_or_default());
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    Router::new()
        .merge(api)
        .merge(http::ops::router(spec_json))
        .merge(web::router())
        .merge(continuity::router())
        .merge(form::router())
        .merge(ws::router())
        // Unknown paths get the API's error body, not an empty 404.
        .fallback(|| async { error::ApiError::NotFound })
        .layer(DefaultBodyLimit::max(state.config.max_json_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), limit_per_ip))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            error::ApiError::internal("handler panicked").into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn limit_per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(e) = state.per_ip.check(&addr.ip())
    {
        return e.into_response();
    }
    next.run(req).await
}

/// Serves until `shutdown` completes, then stops accepting and waits for
/// in-flight requests to finish. Also runs the maintenance loop (snoozed
/// conversations, limiter pruning) and the sweeper of unsent uploads for as
/// long as it serves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = tokio::spawn(maintain(state.clone()));
    let sweeper = tokio::spawn(uploads::sweep_forever(state.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY a socket that streams small frames (an agent's
    // console during a busy hour) waits for the peer's delayed ACK before
    // each write: tens of milliseconds per message.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    maintenance.abort();
    sweeper.abort();
    result
}

/// Serves `/metrics` alone on its own listener (`server.metrics_listen`)
/// until `shutdown` completes.
pub async fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = http::ops::metrics_router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn maintain(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tick.tick().await;
        if let Err(e) = state.app.wake_snoozed().await {
            tracing::warn!(error = %e, "waking snoozed conversations failed");
        }
        state.prune_limiters();
    }
}
