//! The entities. Output types (what the store returns and the API shows) come
//! first; input types (`New*`, `*Patch`) follow, each with a `validate` that
//! the API calls before anything reaches the store.

use crate::enums::*;
use crate::validate::{self as v, ValidationError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub active: bool,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Deadlines an inbox promises, in minutes from the conversation's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub first_response_minutes: Option<u32>,
    pub resolution_minutes: Option<u32>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Inbox {
    pub id: Uuid,
    pub kind: InboxKind,
    pub name: String,
    pub sla: SlaPolicy,
    /// Channel-specific settings (widget colours, mail server, form fields…).
    pub settings: Value,
    pub member_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// e.g. `email`, `wechat_external_userid`, `wechat_openid`, `wechat_unionid`.
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Contact {
    pub id: Uuid,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub language: Option<String>,
    pub attributes: Value,
    pub tags: Vec<String>,
    pub identities: Vec<Identity>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    /// Human-readable ticket number, unique in the organisation (#1024).
    pub number: i64,
    pub inbox_id: Uuid,
    pub contact_id: Uuid,
    pub subject: Option<String>,
    pub status: ConversationStatus,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub priority: Priority,
    pub assignee_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub tags: Vec<String>,
    /// Set when this conversation was merged into another one.
    pub merged_into_id: Option<Uuid>,
    /// Sequence number of the newest message; 0 when there is none.
    pub last_seq: i64,
    pub last_activity_at: DateTime<Utc>,
    pub first_response_due_at: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolution_due_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The customer's rating after resolution, 1–5.
    pub csat_score: Option<i64>,
    pub csat_comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attachment {
    pub id: Uuid,
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub created_at: DateTime<Utc>,
}

/// The start of a conversation's latest message, for lists.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessagePreview {
    pub seq: i64,
    pub direction: Direction,
    pub sender_id: Option<Uuid>,
    /// At most 140 characters.
    pub text: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// Gap-free per conversation, starting at 1: clients resume by it.
    pub seq: i64,
    pub direction: Direction,
    pub sender_kind: SenderKind,
    pub sender_id: Option<Uuid>,
    pub text: String,
    /// Sanitized HTML, when the channel gave HTML.
    pub html: Option<String>,
    /// Client message id or the channel's id (email Message-ID, WeChat msgid):
    /// a second message with the same key in the same conversation is not added.
    pub external_id: Option<String>,
    pub metadata: Value,
    pub attachments: Vec<Attachment>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub member_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tag {
    pub id: Uuid,
    pub name: String,
    pub color: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CannedResponse {
    pub id: Uuid,
    /// Typed after `/` in the reply box.
    pub shortcut: String,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    /// Who acted, readable even after the agent is gone (email, or "system").
    pub actor_label: String,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub details: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub name: String,
    pub scope: TokenScope,
    /// The first characters of the token, to tell tokens apart in lists.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------- inputs

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// Optional: an agent without a password cannot log in until one is set.
    pub password: Option<String>,
}

impl NewAgent {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.email = v::email("email", &self.email)?;
        self.name = v::text("name", &self.name, 1, 200)?;
        if let Some(p) = &self.password {
            v::password(p)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    /// Deactivating revokes every session and token of the agent at once.
    pub active: Option<bool>,
}

impl AgentPatch {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        v::opt_text(&mut self.name, "name", 1, 200)?;
        if let Some(e) = &self.email {
            self.email = Some(v::email("email", e)?);
        }
        if let Some(url) = &self.avatar_url {
            v::opt_url(url, "avatar_url")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInbox {
    pub kind: InboxKind,
    pub name: String,
    #[serde(default)]
    pub sla: SlaPolicy,
    #[serde(default = "empty_object")]
    pub settings: Value,
    #[serde(default)]
    pub member_ids: Vec<Uuid>,
}

impl NewInbox {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.name = v::text("name", &self.name, 1, 200)?;
        v::object("settings", &self.settings)
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboxPatch {
    pub name: Option<String>,
    pub sla: Option<SlaPolicy>,
    pub settings: Option<Value>,
    /// Replaces the member list when given.
    pub member_ids: Option<Vec<Uuid>>,
}

impl InboxPatch {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        v::opt_text(&mut self.name, "name", 1, 200)?;
        match &self.settings {
            Some(s) => v::object("settings", s),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub language: Option<String>,
    #[serde(default = "empty_object")]
    pub attributes: Value,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub identities: Vec<Identity>,
}

impl Default for NewContact {
    /// No fields, and an empty attributes object (not JSON null).
    fn default() -> Self {
        NewContact {
            name: None,
            email: None,
            phone: None,
            avatar_url: None,
            language: None,
            attributes: empty_object(),
            tags: Vec::new(),
            identities: Vec::new(),
        }
    }
}

impl NewContact {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        v::opt_text(&mut self.name, "name", 1, 200)?;
        if let Some(e) = &self.email {
            self.email = Some(v::email("email", e)?);
        }
        v::opt_text(&mut self.phone, "phone", 1, 40)?;
        v::opt_url(&self.avatar_url, "avatar_url")?;
        v::opt_text(&mut self.language, "language", 2, 20)?;
        v::object("attributes", &self.attributes)?;
        self.tags = v::tags(&self.tags)?;
        for i in &mut self.identities {
            v::identity(i)?;
        }
        // An email is also an identity, so channels find the contact by it.
        if let Some(e) = &self.email
            && !self.identities.iter().any(|i| i.kind == "email")
        {
            self.identities.push(Identity {
                kind: "email".into(),
                value: e.clone(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
/// A field sent as `null` is cleared; a field left out is kept.
pub struct ContactPatch {
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// Replaces the attributes object when given.
    pub attributes: Option<Value>,
    /// Replaces the tag list when given.
    pub tags: Option<Vec<String>>,
}

impl ContactPatch {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if let Some(name) = &mut self.name {
            v::opt_text(name, "name", 1, 200)?;
        }
        if let Some(Some(e)) = &self.email {
            self.email = Some(Some(v::email("email", e)?));
        }
        if let Some(phone) = &mut self.phone {
            v::opt_text(phone, "phone", 1, 40)?;
        }
        if let Some(url) = &self.avatar_url {
            v::opt_url(url, "avatar_url")?;
        }
        if let Some(language) = &mut self.language {
            v::opt_text(language, "language", 2, 20)?;
        }
        if let Some(a) = &self.attributes {
            v::object("attributes", a)?;
        }
        if let Some(t) = &self.tags {
            self.tags = Some(v::tags(t)?);
        }
        Ok(())
    }
}

/// A message as a channel or an agent hands it in.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub direction: Direction,
    #[serde(default)]
    pub text: String,
    pub html: Option<String>,
    pub external_id: Option<String>,
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Ids of attachments uploaded before the message.
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
    /// Filled in by the server from the caller, never from the request body.
    #[serde(skip)]
    pub sender_kind: Option<SenderKind>,
    #[serde(skip)]
    pub sender_id: Option<Uuid>,
    /// Set by importers that keep the original time; the API leaves it empty.
    #[serde(skip)]
    pub created_at: Option<DateTime<Utc>>,
}

pub const MAX_MESSAGE_CHARS: usize = 20_000;

impl NewMessage {
    pub fn text(direction: Direction, text: impl Into<String>) -> Self {
        NewMessage {
            direction,
            text: text.into(),
            html: None,
            external_id: None,
            metadata: empty_object(),
            attachment_ids: Vec::new(),
            sender_kind: None,
            sender_id: None,
            created_at: None,
        }
    }

    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if self.text.trim().is_empty() && self.attachment_ids.is_empty() {
            return Err(ValidationError::new(
                "text",
                "a message needs text or an attachment",
            ));
        }
        if self.text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ValidationError::new(
                "text",
                format!("longer than {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        v::opt_text(&mut self.external_id, "external_id", 1, 300)?;
        if let Some(h) = &self.html {
            self.html = Some(v::html("html", h)?);
        }
        v::object("metadata", &self.metadata)?;
        if self.attachment_ids.len() > 20 {
            return Err(ValidationError::new(
                "attachment_ids",
                "at most 20 attachments",
            ));
        }
        Ok(())
    }
}

/// A new conversation with its first message. The contact is either an
/// existing one (`contact_id`) or created/matched from `contact`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    pub inbox_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub contact: Option<NewContact>,
    pub subject: Option<String>,
    #[serde(default = "default_priority")]
    pub priority: Priority,
    pub assignee_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub message: Option<NewMessage>,
}

fn default_priority() -> Priority {
    Priority::Medium
}

impl NewConversation {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        match (&self.contact_id, &mut self.contact) {
            (Some(_), Some(_)) => {
                return Err(ValidationError::new(
                    "contact",
                    "give contact_id or contact, not both",
                ));
            }
            (None, None) => {
                return Err(ValidationError::new(
                    "contact_id",
                    "contact_id or contact is required",
                ));
            }
            (None, Some(c)) => c.validate()?,
            (Some(_), None) => {}
        }
        v::opt_text(&mut self.subject, "subject", 1, 500)?;
        self.tags = v::tags(&self.tags)?;
        if let Some(m) = &mut self.message {
            m.validate()?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    pub subject: Option<String>,
    pub status: Option<ConversationStatus>,
    /// Required with status `snoozed`.
    pub snoozed_until: Option<DateTime<Utc>>,
    pub priority: Option<Priority>,
    /// `null` unassigns: send the field to change it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub assignee_id: Option<Option<Uuid>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub team_id: Option<Option<Uuid>>,
}

impl ConversationPatch {
    pub fn validate(&mut self, now: DateTime<Utc>) -> Result<(), ValidationError> {
        v::opt_text(&mut self.subject, "subject", 1, 500)?;
        match (self.status, self.snoozed_until) {
            (Some(ConversationStatus::Snoozed), None) => Err(ValidationError::new(
                "snoozed_until",
                "required when status is snoozed",
            )),
            (Some(ConversationStatus::Snoozed), Some(t)) if t <= now => Err(ValidationError::new(
                "snoozed_until",
                "must be in the future",
            )),
            (s, Some(_)) if s != Some(ConversationStatus::Snoozed) => Err(ValidationError::new(
                "snoozed_until",
                "only allowed with status snoozed",
            )),
            _ => Ok(()),
        }
    }
}

/// Distinguishes "field absent" (None) from "field set to null" (Some(None)).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub member_ids: Vec<Uuid>,
}

impl NewTeam {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.name = v::text("name", &self.name, 1, 200)?;
        v::opt_text(&mut self.description, "description", 0, 2000)
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamPatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub member_ids: Option<Vec<Uuid>>,
}

impl TeamPatch {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        v::opt_text(&mut self.name, "name", 1, 200)?;
        match &mut self.description {
            Some(d) => v::opt_text(d, "description", 0, 2000),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTag {
    pub name: String,
    pub color: Option<String>,
}

impl NewTag {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.name = v::tag_name(&self.name)?;
        v::opt_color(&self.color)
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagPatch {
    pub name: Option<String>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub color: Option<Option<String>>,
}

impl TagPatch {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if let Some(n) = &self.name {
            self.name = Some(v::tag_name(n)?);
        }
        match &self.color {
            Some(c) => v::opt_color(c),
            None => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCannedResponse {
    pub shortcut: String,
    pub text: String,
}

impl NewCannedResponse {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.shortcut = v::shortcut(&self.shortcut)?;
        self.text = v::text("text", &self.text, 1, MAX_MESSAGE_CHARS)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CannedResponsePatch {
    pub shortcut: Option<String>,
    pub text: Option<String>,
}

impl CannedResponsePatch {
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        if let Some(s) = &self.shortcut {
            self.shortcut = Some(v::shortcut(s)?);
        }
        v::opt_text(&mut self.text, "text", 1, MAX_MESSAGE_CHARS)
    }
}

pub fn empty_object() -> Value {
    Value::Object(Default::default())
}
