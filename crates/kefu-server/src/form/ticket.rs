//! A checked submission becomes a ticket: the contact (matched by email or
//! phone within the organisation, so agents see the customer's history),
//! the files, and a conversation whose first incoming message lists the
//! answers under their labels and keeps the raw values in
//! `metadata.form`. It goes through `App::open_conversation`, the path
//! every channel uses, so the console hears of it at once.

use super::page::Lang;
use super::settings::{FieldKind, FormSettings};
use super::status;
use super::submit::Valid;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use kefu_app::files::KeptFile;
use kefu_app::{Actor, Channel};
use kefu_core::{Direction, Identity, Inbox, NewContact, NewConversation, NewMessage, Priority};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// What the customer is shown after submitting.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub number: i64,
    /// `/s/TOKEN`: the customer's private view of this one ticket.
    pub status_path: String,
}

pub async fn create(
    state: &AppState,
    inbox: &Inbox,
    settings: &FormSettings,
    valid: &Valid,
    lang: Lang,
) -> ApiResult<Ticket> {
    let attachment_ids = store_files(state, valid).await?;
    let mut message = NewMessage::text(Direction::Incoming, readable(valid, lang));
    message.metadata = json!({ "form": metadata(settings, valid, lang) });
    message.attachment_ids = attachment_ids;
    let new = NewConversation {
        inbox_id: inbox.id,
        contact_id: None,
        contact: Some(contact(valid, lang)),
        subject: Some(subject(settings, valid)),
        priority: Priority::Medium,
        assignee_id: None,
        team_id: None,
        tags: Vec::new(),
        message: Some(message),
    };
    let form = Actor::Inbound {
        inbox_id: inbox.id,
        channel: Channel::Form,
    };
    let (conversation, _) = state.app.open_conversation(&form, new).await?;
    // Generation 0: a conversation made just now has never had its links revoked.
    let key = status::key(&state.visitor_key().await?);
    let (status_path, _) = status::link(&key, &conversation, settings.status_link_days, 0);
    Ok(Ticket {
        number: conversation.number,
        status_path,
    })
}

/// Files become blobs only now, after every check passed: a refused
/// submission's spooled files are removed when it is dropped.
async fn store_files(state: &AppState, valid: &Valid) -> ApiResult<Vec<Uuid>> {
    let mut ids = Vec::new();
    for u in &valid.uploads {
        let sha256 = state
            .blobs
            .keep(&u.data)
            .await
            .map_err(ApiError::internal)?;
        let file = KeptFile {
            sha256: &sha256,
            filename: &u.filename,
            content_type: u.content_type,
            size: u.data.size as i64,
        };
        let a = state.app.record_upload(None, file).await?;
        ids.push(a.id);
    }
    Ok(ids)
}

/// The contact as given. Email and phone are identities, so the next
/// submission (or email) from the same address finds the same contact.
fn contact(valid: &Valid, lang: Lang) -> NewContact {
    let name = valid
        .answers
        .iter()
        .find(|a| a.field.name == "name" && !a.value.is_empty())
        .map(|a| a.value.clone());
    let phone = valid.first(FieldKind::Phone).map(str::to_string);
    let mut identities = Vec::new();
    if let Some(key) = phone.as_deref().and_then(kefu_core::keys::phone_key) {
        identities.push(Identity {
            kind: "phone".into(),
            value: key,
        });
    }
    NewContact {
        name,
        email: valid.first(FieldKind::Email).map(str::to_string),
        phone,
        language: Some(lang.code().into()),
        identities,
        ..NewContact::default()
    }
}

/// `label：value` lines; long answers start on their own line.
pub fn readable(valid: &Valid, lang: Lang) -> String {
    let mut out = Vec::new();
    for a in valid.answers.iter().filter(|a| !a.value.is_empty()) {
        let label = lang.label(&a.field);
        if a.field.kind == FieldKind::Textarea {
            out.push(format!("{label}{}\n{}", lang.colon(), a.value));
        } else {
            out.push(format!("{label}{}{}", lang.colon(), a.value));
        }
    }
    for u in &valid.uploads {
        out.push(format!(
            "{}{}{}",
            lang.file_word(),
            lang.colon(),
            u.filename
        ));
    }
    out.join("\n")
}

fn metadata(settings: &FormSettings, valid: &Valid, lang: Lang) -> Value {
    let fields: Map<String, Value> = valid
        .answers
        .iter()
        .map(|a| (a.field.name.clone(), Value::String(a.value.clone())))
        .collect();
    json!({ "slug": settings.slug, "lang": lang.code(), "fields": fields })
}

/// The first long answer's start, else the form's title.
fn subject(settings: &FormSettings, valid: &Valid) -> String {
    let text = valid
        .answers
        .iter()
        .find(|a| a.field.kind == FieldKind::Textarea && !a.value.is_empty())
        .map(|a| a.value.lines().next().unwrap_or_default().to_string());
    let s = text
        .or_else(|| settings.title.clone())
        .unwrap_or_else(|| settings.slug.clone());
    s.chars().take(80).collect()
}
