//! Messages: appended to a conversation under the next sequence number, in
//! the same transaction that bumps the conversation's `last_seq`, so numbers
//! are gap-free; deduplicated by `external_id`, so a channel or client may
//! resend safely.

use crate::attachments::{AttachmentRow, COLUMNS as ATTACHMENT_COLUMNS};
use crate::rows::{Sql, parse_enum, ts};
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{Attachment, Conversation, Direction, Event, Message, NewMessage, SenderKind};
use serde_json::Value;
use uuid::Uuid;

/// What appending gave: the message, and whether it is new (false when an
/// earlier message with the same `external_id` was returned instead).
#[derive(Debug, Clone)]
pub struct Appended {
    pub message: Message,
    pub created: bool,
    pub conversation: Conversation,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    conversation_id: Uuid,
    seq: i64,
    direction: String,
    sender_kind: String,
    sender_id: Option<Uuid>,
    text: String,
    html: Option<String>,
    external_id: Option<String>,
    metadata: Value,
    created_at: i64,
}

const COLUMNS: &str = "id, conversation_id, seq, direction, sender_kind, sender_id, text, html, external_id, metadata, created_at";

/// Who sent a message handed in through the API: the contact for incoming
/// ones, otherwise the acting agent (or the system when there is none).
pub(crate) fn sender_of(
    m: &NewMessage,
    contact: Uuid,
    agent: Option<Uuid>,
) -> (SenderKind, Option<Uuid>) {
    if let Some(kind) = m.sender_kind {
        return (kind, m.sender_id);
    }
    match (m.direction, agent) {
        (Direction::Incoming, _) => (SenderKind::Contact, Some(contact)),
        (Direction::System, _) | (_, None) => (SenderKind::System, None),
        (_, Some(a)) => (SenderKind::Agent, Some(a)),
    }
}

/// The message as `insert_message!` stores it, for answering without
/// reading it back (only when it has no attachments to load).
pub(crate) fn built(
    id: Uuid,
    conversation_id: Uuid,
    seq: i64,
    m: &NewMessage,
    kind: SenderKind,
    sender: Option<Uuid>,
    at: i64,
) -> Message {
    Message {
        id,
        conversation_id,
        seq,
        direction: m.direction,
        sender_kind: kind,
        sender_id: sender,
        text: m.text.clone(),
        html: m.html.clone(),
        external_id: m.external_id.clone(),
        metadata: m.metadata.clone(),
        attachments: Vec::new(),
        created_at: ts(m.created_at.map(to_millis).unwrap_or(at)),
    }
}

pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages (id, conversation_id, seq, direction, sender_kind, sender_id, text, html, external_id, metadata, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
/// Bumps `last_seq` first: in PostgreSQL that takes the row lock, so a
/// concurrent resend of the same external id waits for the first one.
pub(crate) const BUMP_SEQ: &str = "UPDATE conversations SET
       last_seq = last_seq + 1,
       last_activity_at = $2,
       updated_at = $2,
       first_response_at = CASE WHEN $3 AND first_response_at IS NULL THEN $2 ELSE first_response_at END,
       status = CASE WHEN $4 AND merged_into_id IS NULL AND status <> 'open' THEN 'open' ELSE status END,
       snoozed_until = CASE WHEN $4 AND merged_into_id IS NULL THEN NULL ELSE snoozed_until END,
       resolved_at = CASE WHEN $4 AND merged_into_id IS NULL THEN NULL ELSE resolved_at END
     WHERE id = $1
     RETURNING last_seq, contact_id, merged_into_id";
pub(crate) const STATUS_OF: &str = "SELECT status FROM conversations WHERE id = $1";
pub(crate) const BY_EXTERNAL_ID: &str =
    "SELECT id FROM messages WHERE conversation_id = $1 AND external_id = $2";

/// Links pending uploads to message `$1`, but only those the writer may
/// attach (see [`attach_as`]); the caller appends `= $4` or an `IN` list.
pub(crate) const LINK_ATTACHMENTS: &str = "UPDATE attachments SET message_id = $1
     WHERE message_id IS NULL AND (uploaded_by = $2 OR (uploaded_by IS NULL AND $3 = 1)) AND id ";
pub(crate) const NOT_ATTACHABLE: &str =
    "attachment_ids: unknown, already sent, or uploaded by someone else";

/// Whose pending uploads a message may carry: `(uploader, server_files)`.
/// An acting agent attaches only what that agent uploaded (not even an
/// admin takes another agent's or a customer's file by its id). Without an
/// agent the writer is the conversation's contact (widget, form, mail):
/// their own uploads, or files the server stored itself for this message
/// (no uploader). Every path that writes a message goes through here, so
/// no transport needs a check of its own.
pub(crate) fn attach_as(agent: Option<Uuid>, contact: Uuid) -> (Uuid, i64) {
    match agent {
        Some(a) => (a, 0),
        None => (contact, 1),
    }
}

/// Inside a transaction: inserts a message row and links its attachments,
/// which must exist, not belong to another message yet, and be the
/// writer's to attach (`$attach_as`, from [`attach_as`]).
macro_rules! insert_message {
    ($tx:expr, $id:expr, $conversation:expr, $seq:expr, $m:expr, $kind:expr, $sender:expr, $at:expr, $attach_as:expr) => {{
        let m: &kefu_core::NewMessage = $m;
        let created_at = m.created_at.map(kefu_core::time::to_millis).unwrap_or($at);
        sqlx::query($crate::messages::INSERT_MESSAGE)
            .bind($id)
            .bind($conversation)
            .bind($seq)
            .bind(m.direction.as_str())
            .bind($kind.as_str())
            .bind($sender)
            .bind(&m.text)
            .bind(&m.html)
            .bind(&m.external_id)
            .bind(&m.metadata)
            .bind(created_at)
            .execute(&mut *$tx)
            .await?;
        if !m.attachment_ids.is_empty() {
            let (uploader, server_files): (uuid::Uuid, i64) = $attach_as;
            let mut sql = $crate::rows::Sql::new($crate::messages::LINK_ATTACHMENTS);
            sql.args.push($crate::rows::Arg::Uuid($id));
            sql.args.push($crate::rows::Arg::Uuid(uploader));
            sql.args.push($crate::rows::Arg::I64(server_files));
            sql.push("IN ").bind_list(&m.attachment_ids);
            let linked = bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(sql.text.as_str())),
                sql.args
            )
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if linked as usize != m.attachment_ids.len() {
                return Err($crate::StoreError::Invalid(
                    $crate::messages::NOT_ATTACHABLE.into(),
                ));
            }
        }
    }};
}

impl Store {
    /// Appends a message. An incoming message reopens a resolved, pending or
    /// snoozed conversation; the first outgoing reply stamps the first
    /// response time.
    pub async fn append_message(
        &self,
        conversation_id: Uuid,
        m: &NewMessage,
        agent: Option<Uuid>,
    ) -> Result<Appended> {
        let at = to_millis(now());
        let id = Uuid::now_v7();
        // SQLite's writer answers with the conversation after the append.
        let mut known: Option<Conversation> = None;
        let outcome = match self.db.fast_writer() {
            Some(writer) => {
                let m = m.clone();
                let done = writer
                    .write(move |c| {
                        crate::sqlite_hot::append_message(c, conversation_id, id, &m, agent, at)
                    })
                    .await;
                done.map(|done| match done {
                    crate::sqlite_hot::Appended::Created {
                        reopened,
                        conversation,
                    } => {
                        known = Some(*conversation);
                        (true, id, reopened)
                    }
                    crate::sqlite_hot::Appended::Duplicate(prev) => (false, prev, false),
                })
            }
            None => {
                self.append_message_sqlx(conversation_id, id, m, agent, at)
                    .await
            }
        };
        let (created, message_id, reopened) = match outcome {
            Ok(v) => v,
            Err(e) if e.is_conflict_on("messages_conversation_external_key") => {
                // Lost a race with an identical resend (SQLite cannot get here).
                let x = m.external_id.as_deref().unwrap_or_default();
                (
                    false,
                    self.message_by_external_id(conversation_id, x).await?.id,
                    false,
                )
            }
            Err(e) => return Err(e),
        };
        let (message, conversation) = match known {
            // Read in the writer's transaction: the new message is the
            // conversation's last, and without files it is known whole.
            Some(c) if m.attachment_ids.is_empty() => {
                let (kind, sender) = sender_of(m, c.contact_id, agent);
                (
                    built(message_id, conversation_id, c.last_seq, m, kind, sender, at),
                    c,
                )
            }
            Some(c) => (self.message(message_id).await?, c),
            None => (
                self.message(message_id).await?,
                self.conversation(conversation_id).await?,
            ),
        };
        if created {
            self.publish(Event::MessageCreated {
                inbox_id: conversation.inbox_id,
                contact_id: conversation.contact_id,
                message: message.clone(),
            });
            // The message itself tells subscribers of the new activity; the
            // conversation is sent again only when its status changed (one
            // event per message instead of two to every agent socket).
            if reopened {
                self.publish(Event::ConversationUpdated {
                    conversation: conversation.clone(),
                });
            }
        }
        Ok(Appended {
            message,
            created,
            conversation,
        })
    }

    /// `append_message` through sqlx (PostgreSQL).
    async fn append_message_sqlx(
        &self,
        conversation_id: Uuid,
        id: Uuid,
        m: &NewMessage,
        agent: Option<Uuid>,
        at: i64,
    ) -> Result<(bool, Uuid, bool)> {
        let incoming = m.direction == Direction::Incoming;
        let outgoing = m.direction == Direction::Outgoing;
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            // Only tells whether to announce a status change; a race with a
            // concurrent status change costs at most one event.
            let before: Option<String> = sqlx::query_scalar(STATUS_OF)
                .bind(conversation_id).fetch_optional(&mut *tx).await?;
            let reopened = incoming && before.is_some_and(|s| s != "open");
            // The UPDATE comes first: it takes the row lock in PostgreSQL, so a
            // concurrent resend of the same external id waits here and then
            // finds the first one below.
            let row: Option<(i64, Uuid, Option<Uuid>)> = sqlx::query_as(BUMP_SEQ)
            .bind(conversation_id).bind(at).bind(outgoing).bind(incoming)
            .fetch_optional(&mut *tx).await?;
            let (seq, contact, merged_into) = row.ok_or(StoreError::NotFound)?;
            if let Some(target) = merged_into {
                // Dropping `tx` rolls the bump back; the writer goes on in the target.
                return Err(StoreError::Invalid(format!("the conversation was merged into {target}; write there")));
            }
            let existing: Option<Uuid> = match &m.external_id {
                Some(x) => sqlx::query_scalar(BY_EXTERNAL_ID)
                    .bind(conversation_id).bind(x).fetch_optional(&mut *tx).await?,
                None => None,
            };
            match existing {
                // Dropping `tx` rolls the seq bump back.
                Some(prev) => Ok((false, prev, false)),
                None => {
                    let (kind, sender) = sender_of(m, contact, agent);
                    insert_message!(tx, id, conversation_id, seq, m, kind, sender, at, attach_as(agent, contact));
                    tx.commit().await?;
                    Ok((true, id, reopened))
                }
            }
        })
    }

    pub async fn message(&self, id: Uuid) -> Result<Message> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1");
        let row: MessageRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(self.load_messages(vec![row]).await?.remove(0))
    }

    pub async fn message_by_external_id(
        &self,
        conversation_id: Uuid,
        external_id: &str,
    ) -> Result<Message> {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 AND external_id = $2"
        );
        let row: MessageRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(conversation_id).bind(external_id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(self.load_messages(vec![row]).await?.remove(0))
    }

    /// Messages with `seq > after`, oldest first, at most `limit`. Notes are
    /// left out unless `with_notes` (customers never see them).
    pub async fn list_messages(
        &self,
        conversation_id: Uuid,
        after: i64,
        limit: usize,
        with_notes: bool,
    ) -> Result<Vec<Message>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2
               AND ($3 OR direction <> 'note') ORDER BY seq LIMIT $4"
        );
        let rows: Vec<MessageRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(conversation_id).bind(after).bind(with_notes).bind(limit as i64)
                .fetch_all(p).await?);
        self.load_messages(rows).await
    }

    async fn load_messages(&self, rows: Vec<MessageRow>) -> Result<Vec<Message>> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut sql = Sql::new(&format!(
            "SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE message_id IN "
        ));
        sql.bind_list(&ids).push(" ORDER BY id");
        let files: Vec<AttachmentRow> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        let mut files: Vec<(Option<Uuid>, Attachment)> = files
            .into_iter()
            .map(|f| (f.message_id, f.into()))
            .collect();
        rows.into_iter()
            .map(|r| {
                let mut mine = Vec::new();
                files.retain(|(m, a)| {
                    if *m == Some(r.id) {
                        mine.push(a.clone());
                        false
                    } else {
                        true
                    }
                });
                Ok(Message {
                    id: r.id,
                    conversation_id: r.conversation_id,
                    seq: r.seq,
                    direction: parse_enum(&r.direction)?,
                    sender_kind: parse_enum(&r.sender_kind)?,
                    sender_id: r.sender_id,
                    text: r.text,
                    html: r.html,
                    external_id: r.external_id,
                    metadata: r.metadata,
                    attachments: mine,
                    created_at: ts(r.created_at),
                })
            })
            .collect()
    }
}
