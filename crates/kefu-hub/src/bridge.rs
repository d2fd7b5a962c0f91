//! The pumps that feed the hub: this node's committed store events, and —
//! with PostgreSQL — other nodes' events and signals over LISTEN/NOTIFY.
//!
//! A NOTIFY payload is capped at 8000 bytes, so events cross nodes as ids
//! only; the receiving node loads the row it names. Signals are small and
//! cross whole.

use crate::{Hub, HubMsg, Signal};
use kefu_core::Event;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

pub const CHANNEL: &str = "kefu_hub";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "w", rename_all = "snake_case")]
pub(crate) enum Wire {
    Message {
        message_id: Uuid,
    },
    Conversation {
        conversation_id: Uuid,
        created: bool,
    },
    Contact {
        contact_id: Uuid,
    },
    Signal(Signal),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    node: Uuid,
    #[serde(flatten)]
    wire: Wire,
}

fn wire_of(event: &Event) -> Wire {
    match event {
        Event::MessageCreated { message, .. } => Wire::Message {
            message_id: message.id,
        },
        Event::ConversationCreated { conversation } => Wire::Conversation {
            conversation_id: conversation.id,
            created: true,
        },
        Event::ConversationUpdated { conversation } => Wire::Conversation {
            conversation_id: conversation.id,
            created: false,
        },
        Event::ContactUpdated { contact } => Wire::Contact {
            contact_id: contact.id,
        },
    }
}

/// NOTIFYs the other nodes; a failure is logged, and their clients catch up
/// at their next resync.
pub(crate) async fn announce(hub: &Hub, wire: Wire) {
    if hub.store.backend() != kefu_store::Backend::Postgres {
        return;
    }
    let Ok(payload) = serde_json::to_string(&Envelope {
        node: hub.node,
        wire,
    }) else {
        return;
    };
    if payload.len() > kefu_store::notify::MAX_NOTIFY_BYTES {
        tracing::warn!(bytes = payload.len(), "hub notification too large; dropped");
        return;
    }
    if let Err(e) = hub.store.notify(CHANNEL, &payload).await {
        tracing::warn!(error = %e, "NOTIFY failed");
    }
}

pub(crate) async fn pump_local(hub: Arc<Hub>, mut events: broadcast::Receiver<Event>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let wire = wire_of(&event);
                hub.deliver(&HubMsg::Event(event));
                announce(&hub, wire).await;
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "hub fell behind the store; clients resync");
                hub.resync_all();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

pub(crate) async fn pump_remote(hub: Arc<Hub>) {
    let mut listener = loop {
        match hub.store.listen(CHANNEL).await {
            Ok(Some(l)) => break l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    hub.listening.send_replace(true);
    loop {
        match listener.recv().await {
            Ok(Some(payload)) => match serde_json::from_str::<Envelope>(&payload) {
                Ok(env) if env.node == hub.node => {}
                Ok(env) => {
                    if let Some(msg) = materialize(&hub, env.wire).await {
                        if let HubMsg::Signal(Signal::Presence { agent_id, online }) = &msg {
                            hub.remote_presence(*agent_id, *online);
                        }
                        hub.deliver(&msg);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unreadable hub notification"),
            },
            Ok(None) => {
                tracing::warn!("LISTEN connection was lost and restored; clients resync");
                hub.resync_all();
            }
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Rebuilds the event another node announced, from this node's database.
async fn materialize(hub: &Hub, wire: Wire) -> Option<HubMsg> {
    let store = &hub.store;
    let event = match wire {
        Wire::Signal(s) => return Some(HubMsg::Signal(s)),
        Wire::Message { message_id } => {
            let message = store.message(message_id).await.ok()?;
            let c = store.conversation(message.conversation_id).await.ok()?;
            Event::MessageCreated {
                inbox_id: c.inbox_id,
                contact_id: c.contact_id,
                message,
            }
        }
        Wire::Conversation {
            conversation_id,
            created,
        } => {
            let conversation = store.conversation(conversation_id).await.ok()?;
            if created {
                Event::ConversationCreated { conversation }
            } else {
                Event::ConversationUpdated { conversation }
            }
        }
        Wire::Contact { contact_id } => Event::ContactUpdated {
            contact: store.contact(contact_id).await.ok()?,
        },
    };
    Some(HubMsg::Event(event))
}
