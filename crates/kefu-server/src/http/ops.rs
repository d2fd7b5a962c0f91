//! Health, readiness, metrics and the OpenAPI document: the routes that
//! operators and their tools call.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;

pub fn router(spec_json: Arc<String>) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(main_metrics))
        .route(
            "/api/openapi.json",
            get(move || {
                let spec = spec_json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        spec.as_str().to_owned(),
                    )
                }
            }),
        )
}

/// Ready when the database answers.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.store.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}

/// `/metrics` on the main listener. With `server.metrics_listen` it lives
/// there instead (404 here). With `server.metrics_token`, the token is
/// required. With neither, only clients on this host may read it: a request
/// from another address, or one a reverse proxy forwarded (it carries a
/// forwarding header), is refused — request counts per route, socket counts
/// and latencies are the operator's, not the internet's.
async fn main_metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if state.config.metrics_listen.is_some() {
        return ApiError::NotFound.into_response();
    }
    match metrics_allowed(state.config.metrics_token.as_deref(), peer, &headers, false) {
        Ok(()) => metrics(&state).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The router of the metrics listener (`server.metrics_listen`): `/metrics`
/// only, the token checked when one is set.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State(state): State<AppState>,
                 ConnectInfo(peer): ConnectInfo<SocketAddr>,
                 headers: HeaderMap| async move {
                    match metrics_allowed(
                        state.config.metrics_token.as_deref(),
                        peer,
                        &headers,
                        true,
                    ) {
                        Ok(()) => metrics(&state).into_response(),
                        Err(e) => e.into_response(),
                    }
                },
            ),
        )
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Who may read the metrics: the bearer of the token when one is set;
/// otherwise anyone on the operator's own listener, and on the main one
/// only direct clients from loopback.
pub fn metrics_allowed(
    token: Option<&str>,
    peer: SocketAddr,
    headers: &HeaderMap,
    own_listener: bool,
) -> Result<(), ApiError> {
    if let Some(token) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or_default();
        let same = crate::auth::sha256(given) == crate::auth::sha256(token);
        return if same {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        };
    }
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    if own_listener || (peer.ip().is_loopback() && !forwarded) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "metrics are served to this host only: set server.metrics_token or server.metrics_listen",
        ))
    }
}

fn metrics(state: &AppState) -> impl IntoResponse + use<> {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_read_the_metrics() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "203.0.113.7:5000".parse().unwrap();
        let none = HeaderMap::new();
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        let mut bearer = HeaderMap::new();
        bearer.insert(
            "authorization",
            "Bearer s3cret-metrics-token".parse().unwrap(),
        );
        let mut wrong = HeaderMap::new();
        wrong.insert(
            "authorization",
            "Bearer s3cret-metrics-tokem".parse().unwrap(),
        );
        // No token: direct loopback clients on the main listener; anyone on
        // the metrics listener.
        assert!(metrics_allowed(None, local, &none, false).is_ok());
        assert!(metrics_allowed(None, local6, &none, false).is_ok());
        assert!(metrics_allowed(None, remote, &none, false).is_err());
        assert!(metrics_allowed(None, local, &proxied, false).is_err());
        assert!(metrics_allowed(None, remote, &none, true).is_ok());
        // A token: required everywhere, loopback included.
        let t = Some("s3cret-metrics-token");
        for own in [false, true] {
            assert!(metrics_allowed(t, remote, &bearer, own).is_ok());
            assert!(metrics_allowed(t, local, &none, own).is_err());
            assert!(metrics_allowed(t, local, &wrong, own).is_err());
        }
    }
}
