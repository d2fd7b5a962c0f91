//! Filing a received message. The raw bytes go to the blob store first, so
//! nothing is lost whatever happens next; then the message is recorded once
//! (Message-ID + sender), parsed, and filed into a conversation.

use super::ChannelError;
use super::outbound;
use super::settings::{EmailSettings, reply_email_inbox};
use crate::classify::MailKind;
use crate::parse::{ParsedEmail, parse};
use crate::thread::{ReplyToken, thread_hints};
use kefu_app::{Actor, App, Channel, Target};
use kefu_core::time::{now, to_millis};
use kefu_core::{
    Conversation, Direction, Identity, Inbox, MAX_MESSAGE_CHARS, NewContact, NewConversation,
    NewMessage, Priority,
};
use kefu_store::blobs::Blobs;
use kefu_store::{EmailThread, NewAttachment, NewInbound, Store};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// Above this many messages from one sender in [`FLOOD_WINDOW_MS`], more
/// are held (stored, not filed) until the sweep files them later.
pub const FLOOD_LIMIT: i64 = 30;
pub const FLOOD_WINDOW_MS: i64 = 10 * 60_000;

/// What became of a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filed {
    /// Filed into this conversation as this message.
    Message {
        inbound_id: Uuid,
        conversation_id: Uuid,
        message_id: Uuid,
        new_conversation: bool,
    },
    /// The same Message-ID from the same sender was received before.
    Duplicate,
    /// A delivery report for mail we sent: that mail is marked failed.
    Bounce { inbound_id: Uuid },
    /// The sender is flooding: stored, to be filed later.
    Held { inbound_id: Uuid },
}

/// Stores and files one message received for `inbox`.
pub async fn ingest(
    app: &App,
    blobs: &Blobs,
    inbox: &Inbox,
    settings: &EmailSettings,
    raw: Arc<Vec<u8>>,
) -> Result<Filed, ChannelError> {
    let store = app.store();
    let sha256 = blobs.put(&raw).await?;
    let size = raw.len() as i64;
    // Shared, not copied: a big message stays in memory once.
    let parsed = tokio::task::spawn_blocking(move || parse(&raw))
        .await
        .map_err(|e| ChannelError::Invalid(format!("parser stopped: {e}")))?;
    let sender = parsed.from.as_ref().map(|m| m.address.clone());
    let recorded = store
        .record_inbound_email(NewInbound {
            inbox_id: inbox.id,
            sha256: &sha256,
            size,
            header_id: parsed.message_id.as_deref(),
            sender: sender.as_deref(),
            status: "received",
        })
        .await?;
    let Some(inbound_id) = recorded else {
        return Ok(Filed::Duplicate);
    };
    if let Some(s) = &sender {
        let since = to_millis(now()) - FLOOD_WINDOW_MS;
        if store.inbound_emails_since(inbox.id, s, since).await? > FLOOD_LIMIT {
            store
                .finish_inbound_email(inbound_id, "held", Some("sender over the rate limit"), None)
                .await?;
            return Ok(Filed::Held { inbound_id });
        }
    }
    file(app, blobs, inbox, settings, inbound_id, &sha256, &parsed).await
}

/// Files a recorded message (also used by the sweep of held mail).
pub async fn file(
    app: &App,
    blobs: &Blobs,
    inbox: &Inbox,
    settings: &EmailSettings,
    inbound_id: Uuid,
    sha256: &str,
    parsed: &ParsedEmail,
) -> Result<Filed, ChannelError> {
    let store = app.store();
    if let MailKind::Bounce(bounce) = &parsed.kind {
        let reason = bounce
            .recipients
            .iter()
            .map(|r| format!("{} {} {}", r.final_recipient, r.action, r.status))
            .collect::<Vec<_>>()
            .join("; ");
        if let Some(original) = &bounce.original_message_id {
            outbound::record_bounce(store, original, &reason).await?;
        }
        store
            .finish_inbound_email(inbound_id, "bounce", Some(&reason), None)
            .await?;
        return Ok(Filed::Bounce { inbound_id });
    }
    let sender = parsed
        .from
        .clone()
        .ok_or_else(|| ChannelError::Invalid("no sender".into()));
    let existing = match &sender {
        Ok(s) => find_conversation(store, inbox, settings, parsed, &s.address).await?,
        Err(_) => None,
    };
    let message = message_of(store, blobs, sha256, parsed).await?;
    let (conversation_id, message_id, new_conversation) = match existing {
        Some(c) => {
            // The thread matched the conversation's own customer: the mail
            // is theirs, written on that conversation.
            let customer = Actor::Contact {
                contact_id: c.contact_id,
                inbox_id: c.inbox_id,
                channel: Channel::Email,
            };
            let posted = app
                .post_message(&customer, Target::Conversation(c.id), message)
                .await?;
            (c.id, posted.message.id, false)
        }
        None => {
            let (c, m) = create(app, inbox, parsed, sender.as_ref().ok(), message).await?;
            (c, m, true)
        }
    };
    if let Some(header) = &parsed.message_id {
        store
            .record_header_id(inbox.id, header, conversation_id, Some(message_id), false)
            .await?;
    }
    if let Ok(s) = &sender {
        ensure_thread(store, conversation_id, &s.address, parsed).await?;
        let automated = parsed.kind.is_automated() || s.address == settings.address;
        if new_conversation && !automated && settings.auto_ack.is_some() {
            outbound::queue_auto_ack(store, blobs, inbox, settings, conversation_id).await?;
        }
    }
    let status = if parsed.unparsable {
        "unparsable"
    } else {
        "filed"
    };
    let problems: Vec<String> = parsed.problems.iter().map(|p| format!("{p:?}")).collect();
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    store
        .finish_inbound_email(
            inbound_id,
            status,
            problem.as_deref(),
            Some((conversation_id, message_id)),
        )
        .await?;
    Ok(Filed::Message {
        inbound_id,
        conversation_id,
        message_id,
        new_conversation,
    })
}

/// The conversation a message continues, strongest evidence first: the
/// reply token; a Message-ID we know, from the conversation's customer; a
/// `[#1024]` in the subject, from the conversation's customer. Mass mail
/// that many people answer never folds together: each answer comes from
/// another sender.
async fn find_conversation(
    store: &Store,
    inbox: &Inbox,
    settings: &EmailSettings,
    parsed: &ParsedEmail,
    sender: &str,
) -> Result<Option<Conversation>, ChannelError> {
    let hints = thread_hints(parsed, &settings.address);
    if let Some(token) = &hints.token
        && let Some(t) = store.email_thread_by_token(token.as_str()).await?
    {
        return live(store, inbox, t.conversation_id).await;
    }
    if let Some(c) = store
        .conversation_by_header_ids(inbox.id, &hints.message_ids)
        .await?
        && customer_is(store, c, sender).await?
    {
        return live(store, inbox, c).await;
    }
    if let Some(n) = hints.ticket_number
        && let Some(c) = store.conversation_by_number(n as i64).await?
        && customer_is(store, c.id, sender).await?
    {
        return live(store, inbox, c.id).await;
    }
    Ok(None)
}

async fn customer_is(
    store: &Store,
    conversation: Uuid,
    sender: &str,
) -> Result<bool, ChannelError> {
    Ok(store
        .email_thread(conversation)
        .await?
        .is_some_and(|t| t.customer_email.eq_ignore_ascii_case(sender)))
}

/// The conversation, or the one it was merged into, if it lives in this
/// inbox or in a form or widget inbox that answers its customers through
/// this one.
async fn live(
    store: &Store,
    inbox: &Inbox,
    id: Uuid,
) -> Result<Option<Conversation>, ChannelError> {
    let c = store.conversation(id).await?;
    let c = match c.merged_into_id {
        Some(target) => store.conversation(target).await?,
        None => c,
    };
    if c.inbox_id == inbox.id {
        return Ok(Some(c));
    }
    let home = store.inbox(c.inbox_id).await?;
    Ok((reply_email_inbox(&home) == Some(inbox.id)).then_some(c))
}

/// The message an email becomes: the reply without its quoted history,
/// sanitised HTML, attachments, and headers in the metadata. Text beyond
/// the message limit is cut, and then the original (.eml) is attached.
async fn message_of(
    store: &Store,
    blobs: &Blobs,
    sha256: &str,
    parsed: &ParsedEmail,
) -> Result<NewMessage, ChannelError> {
    let mut text = if parsed.visible_text.trim().is_empty() {
        parsed.text.clone()
    } else {
        parsed.visible_text.clone()
    };
    let cut = text.chars().count() > MAX_MESSAGE_CHARS;
    if cut {
        text = text.chars().take(MAX_MESSAGE_CHARS - 200).collect();
        text.push_str("\n\n[…] 全文见附件 original.eml / the full message is attached");
    }
    if parsed.unparsable && text.trim().is_empty() {
        text = "[无法解析的邮件 / unparsable email: see original.eml]".into();
    }
    let html = parsed.html.clone().filter(|h| h.len() <= 200_000);
    let mut attachment_ids = Vec::new();
    for a in &parsed.attachments {
        let sha = blobs.put(&a.bytes).await?;
        let name = a.filename.clone().unwrap_or_else(|| "attachment".into());
        let made = store
            .create_attachment(NewAttachment {
                sha256: &sha,
                filename: &name,
                content_type: &a.content_type,
                size: a.bytes.len() as i64,
                uploaded_by: None,
            })
            .await?;
        attachment_ids.push(made.id);
    }
    if cut || parsed.unparsable {
        let made = store
            .create_attachment(NewAttachment {
                sha256,
                filename: "original.eml",
                content_type: "message/rfc822",
                size: parsed.size as i64,
                uploaded_by: None,
            })
            .await?;
        attachment_ids.push(made.id);
    }
    if text.trim().is_empty() && attachment_ids.is_empty() {
        text = "(无正文 / no text)".into();
    }
    let mailbox = |m: &crate::parse::Mailbox| json!({ "address": m.address, "name": m.name });
    // Message-IDs are usually short, but nothing bounds them.
    let external_id = match &parsed.message_id {
        Some(id) if id.len() <= 280 => format!("email:{id}"),
        _ => format!("email-sha256:{sha256}"),
    };
    let mut message = NewMessage {
        direction: Direction::Incoming,
        text,
        html,
        external_id: Some(external_id),
        metadata: json!({ "email": {
            "message_id": parsed.message_id,
            "from": parsed.from.as_ref().map(mailbox),
            "to": parsed.to.iter().map(mailbox).collect::<Vec<_>>(),
            "cc": parsed.cc.iter().map(mailbox).collect::<Vec<_>>(),
            "subject": parsed.subject,
            "raw_sha256": sha256,
            "automated": parsed.kind.is_automated(),
        }}),
        attachment_ids,
        sender_kind: None,
        sender_id: None,
        created_at: None,
    };
    message
        .validate()
        .map_err(|e| ChannelError::Invalid(e.to_string()))?;
    Ok(message)
}

async fn create(
    app: &App,
    inbox: &Inbox,
    parsed: &ParsedEmail,
    sender: Option<&crate::parse::Mailbox>,
    message: NewMessage,
) -> Result<(Uuid, Uuid), ChannelError> {
    let contact = match sender {
        Some(s) => NewContact {
            name: s.name.clone().filter(|n| !n.trim().is_empty()),
            email: Some(s.address.clone()),
            identities: vec![Identity {
                kind: "email".into(),
                value: s.address.clone(),
            }],
            ..Default::default()
        },
        None => NewContact::default(),
    };
    let subject: String = parsed
        .subject
        .clone()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let new = NewConversation {
        inbox_id: inbox.id,
        contact_id: None,
        contact: Some(contact),
        subject: (!subject.trim().is_empty()).then_some(subject),
        priority: Priority::Medium,
        assignee_id: None,
        team_id: None,
        tags: vec![],
        message: Some(message),
    };
    let channel = Actor::Inbound {
        inbox_id: inbox.id,
        channel: Channel::Email,
    };
    let (c, m) = app.open_conversation(&channel, new).await?;
    let m = m.ok_or_else(|| ChannelError::Invalid("no first message".into()))?;
    Ok((c.id, m.id))
}

/// Gives the conversation its reply token and customer address, once.
async fn ensure_thread(
    store: &Store,
    conversation_id: Uuid,
    customer: &str,
    parsed: &ParsedEmail,
) -> Result<(), ChannelError> {
    if store.email_thread(conversation_id).await?.is_some() {
        return Ok(());
    }
    store
        .create_email_thread(&EmailThread {
            conversation_id,
            token: ReplyToken::generate().as_str().to_string(),
            customer_email: customer.to_string(),
            subject: parsed.subject.clone().unwrap_or_default(),
        })
        .await?;
    Ok(())
}
