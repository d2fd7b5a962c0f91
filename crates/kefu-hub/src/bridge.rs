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
        /// A change to a message that exists (`MessageUpdated`); absent in
        /// wires from nodes that predate it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        updated: bool,
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

/// One NOTIFY: several wires from one node, packed up to the payload limit.
#[derive(Serialize, Deserialize)]
struct Envelope {
    node: Uuid,
    wires: Vec<Wire>,
}

fn wire_of(event: &Event) -> Wire {
    match event {
        Event::MessageCreated { message, .. } => Wire::Message {
            message_id: message.id,
            updated: false,
        },
        Event::MessageUpdated { message, .. } => Wire::Message {
            message_id: message.id,
            updated: true,
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

/// Queues a wire for the other nodes without waiting: local delivery never
/// waits for PostgreSQL. A full queue drops the wire (other nodes' clients
/// catch up at their next resync) rather than holding memory.
pub(crate) fn announce(hub: &Hub, wire: Wire) {
    if let Some(tx) = &hub.outbox
        && tx.try_send(wire).is_err()
    {
        tracing::warn!("hub outbox full; a notification to other nodes was dropped");
    }
}

/// Sends queued wires as few NOTIFYs as fit: under load one NOTIFY carries
/// dozens of events, so the notifier keeps up with the store.
pub(crate) async fn pump_outbox(
    hub: std::sync::Weak<Hub>,
    mut rx: tokio::sync::mpsc::Receiver<Wire>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let Some(hub) = hub.upgrade() else { return };
        for payload in pack(hub.node, std::mem::take(&mut batch)) {
            if let Err(e) = hub.store.notify(CHANNEL, &payload).await {
                tracing::warn!(error = %e, "NOTIFY failed");
            }
        }
    }
}

/// Splits wires into JSON payloads under PostgreSQL's NOTIFY limit.
fn pack(node: Uuid, wires: Vec<Wire>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current: Vec<Wire> = Vec::new();
    let mut size = 0;
    for w in wires {
        let len = serde_json::to_string(&w).map(|s| s.len()).unwrap_or(0) + 1;
        if len + 100 > kefu_store::notify::MAX_NOTIFY_BYTES {
            tracing::warn!(bytes = len, "hub notification too large; dropped");
            continue;
        }
        if size + len + 100 > kefu_store::notify::MAX_NOTIFY_BYTES {
            payloads.extend(
                serde_json::to_string(&Envelope {
                    node,
                    wires: std::mem::take(&mut current),
                })
                .ok(),
            );
            size = 0;
        }
        size += len;
        current.push(w);
    }
    if !current.is_empty() {
        payloads.extend(
            serde_json::to_string(&Envelope {
                node,
                wires: current,
            })
            .ok(),
        );
    }
    payloads
}

pub(crate) async fn pump_local(hub: Arc<Hub>, mut events: broadcast::Receiver<Event>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                let wire = wire_of(&event);
                hub.deliver(&HubMsg::Event(event));
                announce(&hub, wire);
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
            Err(e) if e.is_pool_closed() => return,
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
                    for wire in env.wires {
                        if let Some(msg) = materialize(&hub, wire).await {
                            if let HubMsg::Signal(Signal::Presence { agent_id, online }) = &msg {
                                hub.remote_presence(*agent_id, *online);
                            }
                            hub.deliver(&msg);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unreadable hub notification"),
            },
            Ok(None) => {
                tracing::warn!("LISTEN connection was lost and restored; clients resync");
                hub.resync_all();
            }
            Err(e) if e.is_pool_closed() => return,
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
        Wire::Message {
            message_id,
            updated,
        } => {
            let message = store.message(message_id).await.ok()?;
            let c = store.conversation(message.conversation_id).await.ok()?;
            if updated {
                Event::MessageUpdated {
                    inbox_id: c.inbox_id,
                    contact_id: c.contact_id,
                    message,
                }
            } else {
                Event::MessageCreated {
                    inbox_id: c.inbox_id,
                    contact_id: c.contact_id,
                    message,
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wires_pack_under_the_notify_limit_and_round_trip() {
        let node = Uuid::now_v7();
        let wires: Vec<Wire> = (0..500)
            .map(|_| Wire::Message {
                message_id: Uuid::now_v7(),
                updated: false,
            })
            .collect();
        let payloads = pack(node, wires);
        assert!(payloads.len() > 1, "500 wires need several payloads");
        let mut seen = 0;
        for p in &payloads {
            assert!(
                p.len() < kefu_store::notify::MAX_NOTIFY_BYTES,
                "{} bytes",
                p.len()
            );
            let env: Envelope = serde_json::from_str(p).unwrap();
            assert_eq!(env.node, node);
            seen += env.wires.len();
        }
        assert_eq!(seen, 500, "no wire lost");
        assert!(pack(node, vec![]).is_empty());
    }
}
