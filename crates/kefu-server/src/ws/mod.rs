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
