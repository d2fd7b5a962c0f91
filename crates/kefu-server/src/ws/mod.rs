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

/// A `send` frame of either socket: the message keyed by its `client_id`,
/// posted through the one operation, acknowledged with its place. Which
/// direction and target a frame means is the socket's; everything else
/// (scope, rights, validation, the resend key) is the operation's.
pub(crate) async fn send(
    app: &kefu_app::App,
    actor: &kefu_app::Actor,
    target: kefu_app::Target,
    client_id: &str,
    direction: kefu_core::Direction,
    text: String,
    attachment_ids: Vec<uuid::Uuid>,
) -> Result<protocol::Outbound, kefu_app::AppError> {
    let mut m = kefu_core::NewMessage::text(direction, text);
    m.attachment_ids = attachment_ids;
    m.external_id = Some(kefu_app::messages::client_key(actor, client_id)?);
    let posted = app.post_message(actor, target, m).await?;
    Ok(protocol::Outbound::Ack {
        client_id: client_id.to_string(),
        conversation_id: posted.message.conversation_id,
        message_id: posted.message.id,
        seq: posted.message.seq,
        duplicate: !posted.created,
    })
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
