//! Events the store publishes after a transaction commits. Subscribers (the
//! WebSocket hub, the mail sender, the AI responder, webhooks) never see a
//! change that could still roll back.

use crate::model::{Contact, Conversation, Message};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    ConversationCreated {
        conversation: Conversation,
    },
    ConversationUpdated {
        conversation: Conversation,
    },
    MessageCreated {
        inbox_id: Uuid,
        contact_id: Uuid,
        message: Message,
    },
    /// A message changed after it was created; today only its
    /// `metadata` (an email reply's delivery state: queued, sent, failed).
    MessageUpdated {
        inbox_id: Uuid,
        contact_id: Uuid,
        message: Message,
    },
    ContactUpdated {
        contact: Contact,
    },
}

impl Event {
    /// The inbox whose members may see this event; `None` for organisation-wide ones.
    pub fn inbox_id(&self) -> Option<Uuid> {
        match self {
            Event::ConversationCreated { conversation }
            | Event::ConversationUpdated { conversation } => Some(conversation.inbox_id),
            Event::MessageCreated { inbox_id, .. } | Event::MessageUpdated { inbox_id, .. } => {
                Some(*inbox_id)
            }
            Event::ContactUpdated { .. } => None,
        }
    }
}
