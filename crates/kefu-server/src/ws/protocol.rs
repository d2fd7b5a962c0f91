//! The WebSocket frames, as serde enums: one variant per kind, tagged by
//! `type`. Parsing has no I/O and never panics; every frame kind and its
//! fields are documented in docs/websocket-protocol.md.

use kefu_core::{Attachment, Conversation, ConversationStatus, Direction, Message, SenderKind};
use kefu_hub::Party;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Inbound {
    /// First frame of a widget socket (with its visitor token); optional on
    /// agent sockets. `resume` maps conversation ids to the last sequence
    /// number the client holds: everything after it is replayed. On widget
    /// sockets, `recent` (at most 10) more conversations that `resume` does
    /// not name, the most recently active, are replayed from the start: a
    /// new device gets its history in one connection.
    Hello {
        token: Option<String>,
        #[serde(default)]
        resume: BTreeMap<Uuid, i64>,
        #[serde(default)]
        recent: u8,
    },
    /// A message. `client_id` makes resending safe: the same id is
    /// acknowledged again without a second message.
    Send {
        client_id: String,
        conversation_id: Option<Uuid>,
        #[serde(default)]
        text: String,
        #[serde(default)]
        attachment_ids: Vec<Uuid>,
        /// Agents only: an internal note instead of a reply.
        #[serde(default)]
        note: bool,
    },
    Typing {
        conversation_id: Uuid,
        on: bool,
    },
    Read {
        conversation_id: Uuid,
        seq: i64,
    },
    /// Widget only: the customer's rating of a resolved conversation.
    Rate {
        conversation_id: Uuid,
        score: i64,
        comment: Option<String>,
    },
    /// A struct variant (not a unit one), so unknown fields are refused here too.
    Ping {},
}

impl Inbound {
    /// Parses a text frame; the error is a message for the client.
    pub fn parse(text: &str) -> Result<Inbound, String> {
        serde_json::from_str(text).map_err(|e| format!("bad frame: {e}"))
    }
}

/// What the widget shows of a message: never notes, never internal ids of
/// metadata; the agent by name.
#[derive(Debug, Clone, Serialize)]
pub struct WidgetMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub direction: Direction,
    pub sender_kind: SenderKind,
    pub sender_name: Option<String>,
    pub sender_avatar_url: Option<String>,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// What the widget shows of a conversation.
#[derive(Debug, Clone, Serialize)]
pub struct WidgetConversation {
    pub id: Uuid,
    pub number: i64,
    pub status: ConversationStatus,
    pub last_seq: i64,
    pub csat_score: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// History brought over from another system: shown, never rated.
    pub imported: bool,
}

impl From<&Conversation> for WidgetConversation {
    fn from(c: &Conversation) -> Self {
        WidgetConversation {
            id: c.id,
            number: c.number,
            status: c.status,
            last_seq: c.last_seq,
            csat_score: c.csat_score,
            created_at: c.created_at,
            imported: c.tags.iter().any(|t| t == "imported"),
        }
    }
}

/// Frames the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    WidgetWelcome {
        contact_id: Uuid,
        conversations: Vec<WidgetConversation>,
        agents_online: bool,
    },
    AgentWelcome {
        agent_id: Uuid,
        inbox_ids: Vec<Uuid>,
    },
    /// Sent only after the message is committed.
    Ack {
        client_id: String,
        conversation_id: Uuid,
        message_id: Uuid,
        seq: i64,
        duplicate: bool,
    },
    WidgetMessage {
        message: WidgetMessage,
    },
    Message {
        inbox_id: Uuid,
        message: Message,
    },
    /// A message already sent in a `message` frame changed (an email
    /// reply's delivery state in `metadata.email`).
    MessageUpdated {
        inbox_id: Uuid,
        message: Message,
    },
    WidgetConversation {
        conversation: WidgetConversation,
    },
    Conversation {
        conversation: Conversation,
    },
    Typing {
        conversation_id: Uuid,
        from: Party,
        on: bool,
    },
    Read {
        conversation_id: Uuid,
        from: Party,
        seq: i64,
    },
    Presence {
        agent_id: Uuid,
        online: bool,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Pong,
    /// Events may have been missed: fetch what is newer than what you hold.
    Resync,
}

impl Outbound {
    pub fn error(code: &'static str, message: impl Into<String>) -> Outbound {
        Outbound::Error {
            code,
            message: message.into(),
            client_id: None,
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"unserialisable frame"}"#.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_or_explain() {
        let id = Uuid::now_v7();
        let send =
            format!(r#"{{"type":"send","client_id":"c1","conversation_id":"{id}","text":"你好"}}"#);
        assert_eq!(
            Inbound::parse(&send),
            Ok(Inbound::Send {
                client_id: "c1".into(),
                conversation_id: Some(id),
                text: "你好".into(),
                attachment_ids: vec![],
                note: false
            })
        );
        assert_eq!(Inbound::parse(r#"{"type":"ping"}"#), Ok(Inbound::Ping {}));
        let hello = format!(r#"{{"type":"hello","resume":{{"{id}":7}}}}"#);
        match Inbound::parse(&hello) {
            Ok(Inbound::Hello {
                token: None,
                resume,
                recent: 0,
            }) => assert_eq!(resume.get(&id), Some(&7)),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"type":"nope"}"#,
            r#"{"type":"send"}"#,
            r#"{"type":"ping","x":1}"#,
            r#"{"type":"read","conversation_id":"x","seq":1}"#,
        ] {
            let err = Inbound::parse(bad).unwrap_err();
            assert!(err.starts_with("bad frame"), "{bad}: {err}");
        }
    }

    #[test]
    fn outbound_is_tagged() {
        let text = Outbound::error("rate_limited", "slow down").to_text();
        assert_eq!(
            text,
            r#"{"type":"error","code":"rate_limited","message":"slow down"}"#
        );
        assert_eq!(Outbound::Pong.to_text(), r#"{"type":"pong"}"#);
    }
}
