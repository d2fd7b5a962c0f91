//! Messages: appended to a conversation under the next sequence number, in
//! the same transaction that bumps the conversation's `last_seq`, so numbers
//! are gap-free; deduplicated by `external_id`, so a channel or client may
//! resend safely.

use crate::attachments::{AttachmentRow, COLUMNS as ATTACHMENT_COLUMNS};
use crate::db::Db;
use crate::rows::{Sql, parse_enum, ts};
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{Attachment, Conversation, Direction, Event, Message, NewMessage, SenderKind};
use serde_json::Value;
use sqlx::PgPool;
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

/// A message row: one ([`INSERT_MESSAGE`]) or many in one statement
/// ([`INSERT_MESSAGES`] and the rows, as the importer writes them on
/// PostgreSQL).
macro_rules! insert_messages {
    () => {
        "INSERT INTO messages (id, conversation_id, seq, direction, sender_kind, sender_id, text, html, external_id, metadata, created_at)
     VALUES "
    };
}
pub(crate) const INSERT_MESSAGES: &str = insert_messages!();
pub(crate) const INSERT_MESSAGE: &str = concat!(
    insert_messages!(),
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
/// Bumps `last_seq` first: in PostgreSQL that takes the row lock, so a
/// concurrent resend of the same external id waits for the first one.
/// `$3`, `$4`: [`AppendPlan::outgoing`], [`AppendPlan::incoming`].
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
/// attach (see [`attach_as`]); followed by `= $4` ([`LINK_ATTACHMENT`]) or
/// an `IN` list.
macro_rules! link_attachments {
    () => {
        "UPDATE attachments SET message_id = $1
     WHERE message_id IS NULL AND (uploaded_by = $2 OR (uploaded_by IS NULL AND $3 = 1)) AND id "
    };
}
pub(crate) const LINK_ATTACHMENTS: &str = link_attachments!();
/// [`LINK_ATTACHMENTS`] for one upload, `$4`: a statement SQLite's writer
/// prepares once.
pub(crate) const LINK_ATTACHMENT: &str = concat!(link_attachments!(), "= $4");
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

/// A message row as it is written, every value decided: its sender, the
/// uploads it may carry, its time. Each backend binds these values as they
/// are ([`INSERT_MESSAGE`], then [`LINK_ATTACHMENTS`] for its files), and
/// [`MessageInsert::built`] answers with the same ones, so what is written
/// and what is answered cannot drift apart. It borrows the request: making
/// one allocates nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageInsert<'m> {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub message: &'m NewMessage,
    pub sender: (SenderKind, Option<Uuid>),
    /// `(uploader, server_files)`, from [`attach_as`].
    pub attach_as: (Uuid, i64),
    /// An importer's original time, else the transaction's.
    pub created_at: i64,
}

impl<'m> MessageInsert<'m> {
    /// A message handed in through the API, written as `seq` into a
    /// conversation of `contact`; `agent` is the agent acting, if any.
    pub fn new(
        id: Uuid,
        conversation_id: Uuid,
        seq: i64,
        message: &'m NewMessage,
        contact: Uuid,
        agent: Option<Uuid>,
        at: i64,
    ) -> MessageInsert<'m> {
        MessageInsert {
            id,
            conversation_id,
            seq,
            message,
            sender: sender_of(message, contact, agent),
            attach_as: attach_as(agent, contact),
            created_at: message.created_at.map(to_millis).unwrap_or(at),
        }
    }

    /// The message as written, for answering without reading it back
    /// (only when it has no attachments to load).
    pub fn built(&self) -> Message {
        let m = self.message;
        Message {
            id: self.id,
            conversation_id: self.conversation_id,
            seq: self.seq,
            direction: m.direction,
            sender_kind: self.sender.0,
            sender_id: self.sender.1,
            text: m.text.clone(),
            html: m.html.clone(),
            external_id: m.external_id.clone(),
            metadata: m.metadata.clone(),
            attachments: Vec::new(),
            created_at: ts(self.created_at),
        }
    }
}

/// Inside a sqlx transaction: writes a [`MessageInsert`] and links its
/// attachments, which must exist, not belong to another message yet, and
/// be the writer's to attach. (SQLite's writer thread has its own,
/// `sqlite_hot::insert_message`, with the same statements.)
macro_rules! insert_message {
    ($tx:expr, $row:expr) => {{
        let row: &$crate::messages::MessageInsert<'_> = $row;
        let m = row.message;
        sqlx::query($crate::messages::INSERT_MESSAGE)
            .bind(row.id)
            .bind(row.conversation_id)
            .bind(row.seq)
            .bind(m.direction.as_str())
            .bind(row.sender.0.as_str())
            .bind(row.sender.1)
            .bind(&m.text)
            .bind(&m.html)
            .bind(&m.external_id)
            .bind(&m.metadata)
            .bind(row.created_at)
            .execute(&mut *$tx)
            .await?;
        if !m.attachment_ids.is_empty() {
            let (uploader, server_files) = row.attach_as;
            let mut sql = $crate::rows::Sql::new($crate::messages::LINK_ATTACHMENTS);
            sql.args.push($crate::rows::Arg::Uuid(row.id));
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

/// What an append decides, made once for both backends: its id and time,
/// the effects it asks of [`BUMP_SEQ`], what the bump's answer means, and
/// the row it writes. `sqlite_hot::append_message` and
/// [`append_message_pg`] run only the statements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendPlan {
    pub conversation_id: Uuid,
    /// The new message's id.
    pub id: Uuid,
    /// The agent acting, if any.
    pub agent: Option<Uuid>,
    pub at: i64,
    /// An incoming message reopens a conversation that is not open.
    pub incoming: bool,
    /// An outgoing one is the first response if none was yet.
    pub outgoing: bool,
}

impl AppendPlan {
    pub fn new(conversation_id: Uuid, m: &NewMessage, agent: Option<Uuid>) -> AppendPlan {
        AppendPlan {
            conversation_id,
            id: Uuid::now_v7(),
            agent,
            at: to_millis(now()),
            incoming: m.direction == Direction::Incoming,
            outgoing: m.direction == Direction::Outgoing,
        }
    }

    /// The external id that makes `m` a resend: when the conversation
    /// already holds a message with it, that message is the answer and
    /// nothing is written ([`Outcome::Duplicate`], found by
    /// [`BY_EXTERNAL_ID`]).
    pub fn resend_key(m: &NewMessage) -> Option<&str> {
        m.external_id.as_deref()
    }

    /// Whether the append reopens the conversation, given its status read
    /// ([`STATUS_OF`]) before the bump: then its change is announced.
    pub fn reopens(&self, before: Option<&str>) -> bool {
        self.incoming && before.is_some_and(|s| s != "open")
    }

    /// What [`BUMP_SEQ`] answered: the new message's sequence number and the
    /// conversation's contact. No row: no such conversation. A conversation
    /// merged away refuses the message (the caller's transaction rolls the
    /// bump back); the writer goes on in the target.
    pub fn bumped(row: Option<(i64, Uuid, Option<Uuid>)>) -> Result<(i64, Uuid)> {
        match row {
            None => Err(StoreError::NotFound),
            Some((_, _, Some(target))) => Err(StoreError::Invalid(format!(
                "the conversation was merged into {target}; write there"
            ))),
            Some((seq, contact, None)) => Ok((seq, contact)),
        }
    }

    /// The row of message `m`, written as `seq` into a conversation of
    /// `contact`.
    pub fn message<'m>(&self, m: &'m NewMessage, seq: i64, contact: Uuid) -> MessageInsert<'m> {
        MessageInsert::new(
            self.id,
            self.conversation_id,
            seq,
            m,
            contact,
            self.agent,
            self.at,
        )
    }
}

/// What an append wrote.
pub(crate) enum Outcome {
    /// The message, as [`AppendPlan::id`]. `reopened`: see
    /// [`AppendPlan::reopens`]. `conversation`: as it is after the append,
    /// when the backend read it in the same transaction (SQLite's writer,
    /// where that costs no trip); otherwise it is read after the commit.
    Created {
        reopened: bool,
        conversation: Option<Box<Conversation>>,
    },
    /// A resend: the message already there (see [`AppendPlan::resend_key`]).
    Duplicate(Uuid),
}

/// The append on PostgreSQL (SQLite's is `sqlite_hot::append_message`).
pub(crate) async fn append_message_pg(
    pool: &PgPool,
    plan: AppendPlan,
    m: &NewMessage,
) -> Result<Outcome> {
    match append_pg(pool, plan, m).await {
        Err(e) if e.is_conflict_on("messages_conversation_external_key") => {
            // Lost a race with an identical resend: the other one is the answer.
            let key = AppendPlan::resend_key(m).unwrap_or_default();
            let prev: Option<Uuid> = sqlx::query_scalar(BY_EXTERNAL_ID)
                .bind(plan.conversation_id)
                .bind(key)
                .fetch_optional(pool)
                .await?;
            prev.map(Outcome::Duplicate).ok_or(StoreError::NotFound)
        }
        done => done,
    }
}

async fn append_pg(pool: &PgPool, plan: AppendPlan, m: &NewMessage) -> Result<Outcome> {
    let mut tx = pool.begin().await?;
    // Only tells whether to announce a status change; a race with a
    // concurrent status change costs at most one event.
    let before: Option<String> = sqlx::query_scalar(STATUS_OF)
        .bind(plan.conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
    // The UPDATE comes first: it takes the row lock, so a concurrent resend
    // of the same external id waits here and then finds the first one below.
    // Returning early drops `tx`, which rolls the bump back.
    let row: Option<(i64, Uuid, Option<Uuid>)> = sqlx::query_as(BUMP_SEQ)
        .bind(plan.conversation_id)
        .bind(plan.at)
        .bind(plan.outgoing)
        .bind(plan.incoming)
        .fetch_optional(&mut *tx)
        .await?;
    let (seq, contact) = AppendPlan::bumped(row)?;
    if let Some(key) = AppendPlan::resend_key(m) {
        let prev: Option<Uuid> = sqlx::query_scalar(BY_EXTERNAL_ID)
            .bind(plan.conversation_id)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(prev) = prev {
            return Ok(Outcome::Duplicate(prev));
        }
    }
    insert_message!(tx, &plan.message(m, seq, contact));
    tx.commit().await?;
    Ok(Outcome::Created {
        reopened: plan.reopens(before.as_deref()),
        conversation: None,
    })
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
        let plan = AppendPlan::new(conversation_id, m, agent);
        let outcome = match &self.db {
            Db::Sqlite { fast, .. } => {
                let m = m.clone();
                fast.write(move |c| crate::sqlite_hot::append_message(c, plan, &m))
                    .await?
            }
            Db::Postgres(pool) => append_message_pg(pool, plan, m).await?,
        };
        let (reopened, conversation) = match outcome {
            Outcome::Created {
                reopened,
                conversation,
            } => (reopened, conversation),
            Outcome::Duplicate(prev) => {
                return Ok(Appended {
                    message: self.message(prev).await?,
                    created: false,
                    conversation: self.conversation(conversation_id).await?,
                });
            }
        };
        let (message, conversation) = match conversation {
            // Read in the writer's transaction: the new message is the
            // conversation's last, and without files it is known whole.
            Some(c) if m.attachment_ids.is_empty() => {
                (plan.message(m, c.last_seq, c.contact_id).built(), *c)
            }
            Some(c) => (self.message(plan.id).await?, *c),
            None => (
                self.message(plan.id).await?,
                self.conversation(conversation_id).await?,
            ),
        };
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
        Ok(Appended {
            message,
            created: true,
            conversation,
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
