//! Mail out. An agent's reply in an email conversation is built into a
//! complete message once (Message-ID, In-Reply-To, References, the reply
//! token as Reply-To) and kept in the outbox with its bytes in the blob
//! store, so every retry sends exactly the same mail. The message's
//! `metadata.email` shows `queued`, `sent` or `failed` with the reason.

use super::ChannelError;
use super::settings::EmailSettings;
use crate::compose::{Lang, OutgoingAttachment, OutgoingEmail, auto_ack, build};
use crate::parse::Mailbox;
use crate::send::{SendError, SendErrorKind, SmtpSender};
use crate::thread::{ReplyToken, reply_subject, subject_with_ticket};
use kefu_core::time::{now, to_millis};
use kefu_core::{Conversation, Inbox, Message};
use kefu_store::blobs::Blobs;
use kefu_store::{EmailThread, NewOutboxEmail, OutboxEmail, Store};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// Waits before the next attempt after 1, 2, … failures; then it fails.
const BACKOFF_SECS: [i64; 6] = [60, 300, 900, 3_600, 4 * 3_600, 12 * 3_600];

/// How long a node holds queued mail it is sending before another node may
/// take it over (when the first died mid-send). A send is cut off at half
/// of it, so a slow relay cannot outlast the claim and get the mail sent
/// twice.
pub const SEND_LEASE: Duration = Duration::from_secs(10 * 60);

/// Queues an agent's reply (message `message_id`) as mail to the customer.
pub async fn queue_reply(
    store: &Store,
    blobs: &Blobs,
    inbox: &Inbox,
    settings: &EmailSettings,
    message: &Message,
) -> Result<(), ChannelError> {
    let conversation = store.conversation(message.conversation_id).await?;
    let Some(thread) = thread_of(store, &conversation).await? else {
        // Nothing to retry: say so once and keep the outbox from picking
        // the reply up again on every round (it used to, for a week).
        let reason = "the customer has no email address";
        store
            .record_unsendable_email(inbox.id, conversation.id, message.id, reason)
            .await?;
        store
            .set_message_metadata(
                message.id,
                "email",
                json!({ "status": "failed", "error": reason }),
            )
            .await?;
        return Ok(());
    };
    let mut attachments = Vec::new();
    for a in &message.attachments {
        let path = blobs
            .path(&a.sha256)
            .ok_or_else(|| ChannelError::Invalid("bad attachment hash".into()))?;
        attachments.push(OutgoingAttachment {
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            bytes: tokio::fs::read(path).await?,
            content_id: None,
        });
    }
    let email = OutgoingEmail {
        text: message.text.clone(),
        html: message.html.clone(),
        attachments,
        ..envelope(store, settings, &conversation, &thread).await?
    };
    enqueue(
        store,
        blobs,
        inbox,
        settings,
        &conversation,
        Some(message.id),
        &email,
    )
    .await
}

/// Queues the acknowledgement of a new ticket, in the inbox's language.
pub async fn queue_auto_ack(
    store: &Store,
    blobs: &Blobs,
    inbox: &Inbox,
    settings: &EmailSettings,
    conversation_id: Uuid,
) -> Result<(), ChannelError> {
    let conversation = store.conversation(conversation_id).await?;
    let Some(thread) = thread_of(store, &conversation).await? else {
        return Ok(());
    };
    let lang = match settings.auto_ack.as_deref() {
        Some("en") => Lang::En,
        _ => Lang::ZhCn,
    };
    let team = settings.name.clone().unwrap_or_else(|| inbox.name.clone());
    let ack = auto_ack(lang, conversation.number as u64, &thread.subject, &team);
    let email = OutgoingEmail {
        subject: ack.subject,
        text: ack.text,
        html: Some(ack.html),
        auto_submitted: true,
        ..envelope(store, settings, &conversation, &thread).await?
    };
    enqueue(store, blobs, inbox, settings, &conversation, None, &email).await
}

/// The thread of an email conversation; one is made, from the contact's
/// email address, for a conversation an agent started and for a form or
/// widget conversation's first reply by mail.
async fn thread_of(store: &Store, c: &Conversation) -> Result<Option<EmailThread>, ChannelError> {
    if let Some(t) = store.email_thread(c.id).await? {
        return Ok(Some(t));
    }
    let Some(address) = store.contact(c.contact_id).await?.email else {
        return Ok(None);
    };
    // A chat (widget) has no subject: its mail is titled after its inbox.
    let subject = match &c.subject {
        Some(s) => s.clone(),
        None => store.inbox(c.inbox_id).await?.name,
    };
    let thread = EmailThread {
        conversation_id: c.id,
        token: ReplyToken::generate().as_str().to_string(),
        customer_email: address,
        subject,
    };
    store.create_email_thread(&thread).await?;
    Ok(store.email_thread(c.id).await?)
}

/// From, To, subject with the ticket number, and the threading headers.
async fn envelope(
    store: &Store,
    settings: &EmailSettings,
    c: &Conversation,
    thread: &EmailThread,
) -> Result<OutgoingEmail, ChannelError> {
    let ids = store.conversation_header_ids(c.id).await?;
    let in_reply_to = ids
        .iter()
        .rev()
        .find(|(_, out)| !out)
        .map(|(id, _)| id.clone());
    let token =
        ReplyToken::parse(&thread.token).map_err(|e| ChannelError::Invalid(e.to_string()))?;
    Ok(OutgoingEmail {
        from: Mailbox {
            address: settings.address.clone(),
            name: settings.name.clone(),
        },
        to: vec![Mailbox {
            address: thread.customer_email.clone(),
            name: None,
        }],
        cc: vec![],
        subject: subject_with_ticket(&reply_subject(&thread.subject), c.number as u64),
        text: String::new(),
        html: None,
        attachments: vec![],
        in_reply_to,
        references: ids.into_iter().map(|(id, _)| id).collect(),
        reply_token: Some(token),
        auto_submitted: false,
    })
}

async fn enqueue(
    store: &Store,
    blobs: &Blobs,
    inbox: &Inbox,
    settings: &EmailSettings,
    c: &Conversation,
    message_id: Option<Uuid>,
    email: &OutgoingEmail,
) -> Result<(), ChannelError> {
    // Signed once, here: every retry sends these bytes, signature included.
    // A key that stopped working (the API refuses bad ones) sends unsigned
    // rather than not at all; the log says why.
    let signer = settings.dkim.as_ref().and_then(|d| match d.signer() {
        Ok(s) => Some(s),
        Err((field, why)) => {
            tracing::warn!(inbox = %inbox.id, "settings.email.dkim.{field}: {why}; sending unsigned");
            None
        }
    });
    let built = build(email, signer.as_ref())?;
    let sha256 = blobs.put(&built.bytes).await?;
    let queued = store
        .enqueue_email(NewOutboxEmail {
            inbox_id: inbox.id,
            conversation_id: c.id,
            message_id,
            header_id: &built.message_id,
            envelope_from: &built.envelope_from,
            recipients: &built.recipients,
            sha256: &sha256,
        })
        .await?;
    if queued.is_none() {
        // Another node queued this reply first; its mail is the one sent,
        // and its Message-ID the one threading knows.
        return Ok(());
    }
    store
        .record_header_id(inbox.id, &built.message_id, c.id, message_id, true)
        .await?;
    if let Some(m) = message_id {
        store
            .set_message_metadata(
                m,
                "email",
                json!({ "status": "queued", "message_id": built.message_id }),
            )
            .await?;
    }
    Ok(())
}

/// Sends one queued mail, claimed by this node, and records the outcome.
pub async fn send_one(
    store: &Store,
    blobs: &Blobs,
    sender: &SmtpSender,
    mail: &OutboxEmail,
) -> Result<(), ChannelError> {
    let path = blobs
        .path(&mail.sha256)
        .ok_or_else(|| ChannelError::Invalid("bad outbox hash".into()))?;
    let bytes = tokio::fs::read(path).await?;
    let recipients: Vec<String> = serde_json::from_str(&mail.recipients).unwrap_or_default();
    let limit = SEND_LEASE / 2;
    let outcome = tokio::time::timeout(
        limit,
        sender.send_raw(&mail.envelope_from, &recipients, &bytes),
    )
    .await
    .unwrap_or_else(|_| {
        Err(SendError {
            kind: SendErrorKind::Transient,
            code: None,
            message: format!("no answer from the relay within {} s", limit.as_secs()),
        })
    });
    record(store, mail, outcome).await
}

/// Records a send's outcome on the outbox row and the message, under the
/// row's claim.
pub async fn record(
    store: &Store,
    mail: &OutboxEmail,
    outcome: Result<(), SendError>,
) -> Result<(), ChannelError> {
    let claim = mail
        .claim
        .ok_or_else(|| ChannelError::Invalid("outbox mail sent without a claim".into()))?;
    let attempt = mail.attempts as usize;
    let (status, error, retry_at) = match &outcome {
        Ok(()) => ("sent", None, None),
        Err(e) if e.is_permanent() || attempt >= BACKOFF_SECS.len() => {
            ("failed", Some(e.to_string()), None)
        }
        Err(e) => (
            "queued",
            Some(e.to_string()),
            Some(to_millis(now()) + BACKOFF_SECS[attempt] * 1000),
        ),
    };
    let held = store
        .record_email_attempt(mail.id, claim, status, error.as_deref(), retry_at)
        .await?;
    if !held {
        tracing::warn!(outbox = %mail.id, status, "the mail's claim ran out during the send; another node has it");
        return Ok(());
    }
    if let Some(m) = mail.message_id {
        let mut state =
            json!({ "status": status, "message_id": mail.header_id, "attempts": attempt + 1 });
        if let Some(e) = &error {
            state["error"] = json!(e);
        }
        store.set_message_metadata(m, "email", state).await?;
    }
    Ok(())
}

/// A delivery report came back for mail we sent with this Message-ID.
pub async fn record_bounce(
    store: &Store,
    header_id: &str,
    reason: &str,
) -> Result<(), ChannelError> {
    let Some(mail) = store.outbox_email_by_header(header_id).await? else {
        return Ok(());
    };
    store.mark_email_bounced(mail.id, reason).await?;
    if let Some(m) = mail.message_id {
        store
            .set_message_metadata(
                m,
                "email",
                json!({ "status": "failed", "message_id": header_id, "error": format!("bounced: {reason}") }),
            )
            .await?;
    }
    Ok(())
}
