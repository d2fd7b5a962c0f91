//! WebSockets: `/ws/widget` for customers, `/ws/agent` for the console.
//! One task per socket selects over the socket, its hub subscriptions and a
//! ping timer; the protocol is in docs/websocket-protocol.md.
//!
//! - [`protocol`]: the frames. [`conn`]: limits every socket shares (frame
//!   size, rate, idle timeout, write timeout). [`widget`], [`agent`]: what each
//!   side may do.

mod agent;
pub mod conn;
pub mod protocol;
pub(crate) mod widget;

use crate::state::AppState;
use axum::Router;
use axum::routing::get;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ws/widget", get(widget::upgrade))
        .route("/ws/agent", get(agent::upgrade))
}

/// Each refusal of the application layer as an error frame, for both
/// sockets. A failure inside is logged in full and told generically: the
/// client resends with the same `client_id`, which stores it once.
pub(crate) fn error_frame(e: kefu_app::AppError, client_id: Option<String>) -> protocol::Outbound {
    use kefu_app::AppError;
    let (code, message) = match e {
        AppError::NotFound => ("not_found", "no such conversation".to_string()),
        AppError::Unauthorized | AppError::Forbidden(_) => ("unauthorized", e.to_string()),
        AppError::Invalid(_) | AppError::Rejected(_) | AppError::Conflict(_) => {
            ("rejected", e.to_string())
        }
        AppError::Limited { .. } => ("rate_limited", e.to_string()),
        AppError::Internal(detail) => {
            tracing::error!(%detail, "socket frame failed");
            (
                "internal",
                "the message was not stored; resend it".to_string(),
            )
        }
    };
    protocol::Outbound::Error {
        code,
        message,
        client_id,
    }
}
