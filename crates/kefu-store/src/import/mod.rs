//! Bulk import of another system's history (WeChat's, through
//! `kefu-wechat`), in two steps that each commit in batches:
//!
//! 1. **Stage**: contacts are upserted by their identities, and messages are
//!    stored as staged rows keyed by their source id, together with how far
//!    the input file has been read. A re-run stages nothing twice; a killed
//!    run resumes at the last committed offset.
//! 2. **Place**: staged rows are taken in order of customer, account and
//!    time, and become messages of conversations. A customer's next message
//!    continues the conversation in `import_tails` unless that one ended or
//!    the gap is too long. Placing walks one pass of staged rows with a
//!    cursor (`import_placing`, the last row placed) that commits with each
//!    batch, so placing also resumes exactly; rows staged once a pass is
//!    being placed go to the next pass.
//!
//! Nothing here knows WeChat: the caller decides keys, texts and metadata.

use crate::rows::{Arg, Sql};
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{Direction, Identity, NewContact};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

mod plan;
mod sqlite;

/// A contact as a source knows it. Fields already set on a matching contact
/// are kept (agents may have edited them); attributes are merged.
#[derive(Debug, Clone, Default)]
pub struct ImportContact {
    /// Strongest first: the first one that matches picks the contact.
    pub identities: Vec<Identity>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub avatar_url: Option<String>,
    pub attributes: serde_json::Map<String, Value>,
    pub tags: Vec<String>,
}

/// One message waiting to be placed.
#[derive(Debug, Clone)]
pub struct StagedMessage {
    /// Unique across the source, e.g. `wechat_kf:<msgid>`; becomes the
    /// message's `external_id`.
    pub key: String,
    pub customer: Identity,
    /// Groups conversations: the service account the customer wrote to.
    pub account: String,
    /// Milliseconds since the epoch.
    pub sent_at: i64,
    pub agent_ref: Option<String>,
    pub body: StagedBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StagedBody {
    pub direction: Direction,
    pub text: String,
    #[serde(default)]
    pub metadata: Value,
    /// The key of the message this one recalls: that one is marked
    /// `recalled`, never deleted.
    #[serde(default)]
    pub recall_of: Option<String>,
    /// The session ended with this message (WeChat's "session ended").
    #[serde(default)]
    pub ends_session: bool,
    #[serde(default)]
    pub attachment_ids: Vec<Uuid>,
}

/// How far an input file has been read and committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProgress {
    /// Identifies the file's content, whatever its path.
    pub fingerprint: String,
    pub path: String,
    pub format: String,
    pub byte_offset: u64,
    pub line: u64,
    pub done: bool,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct StageCounts {
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub messages_staged: u64,
    pub messages_already_staged: u64,
}

/// Where placed conversations go and who sent what.
#[derive(Debug, Clone)]
pub struct PlaceOptions {
    /// The inbox of each account; others go to `default_inbox`.
    pub inboxes: HashMap<String, Uuid>,
    pub default_inbox: Uuid,
    /// Agents by the source's agent reference.
    pub agents: HashMap<String, Uuid>,
    /// A longer silence starts a new conversation.
    pub gap_ms: i64,
    /// Tags of every imported conversation.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PlaceCounts {
    pub conversations: u64,
    pub messages: u64,
    pub contacts_created: u64,
    pub recalls_marked: u64,
    pub recalls_missing: u64,
}

/// The last row placed: (customer kind, customer value, account, sent at,
/// key), the placing order.
type After = (String, String, String, i64, String);

/// The pass being placed, and the last row placed in it (`None` while the
/// pass is not begun).
#[derive(Debug, Clone)]
pub(super) struct Cursor {
    pass: i64,
    after: Option<After>,
}

impl Cursor {
    /// New rows join the pass being placed only while its placing has not
    /// begun: none may sort behind the cursor.
    fn staging_pass(&self) -> i64 {
        self.pass + i64::from(self.after.is_some())
    }

    /// The cursor once `rows` (a batch, in placing order) are placed.
    fn past(&self, rows: &[PendingRow]) -> Cursor {
        Cursor {
            pass: self.pass,
            after: rows.last().map(|r| {
                (
                    r.customer_kind.clone(),
                    r.customer_value.clone(),
                    r.account.clone(),
                    r.sent_at,
                    r.key.clone(),
                )
            }),
        }
    }

    /// The cursor's columns as stored: all NULL before the pass begins.
    fn columns(
        &self,
    ) -> (
        Option<&str>,
        Option<&str>,
        Option<&str>,
        Option<i64>,
        Option<&str>,
    ) {
        match &self.after {
            Some((k, v, a, t, key)) => (Some(k), Some(v), Some(a), Some(*t), Some(key)),
            None => (None, None, None, None, None),
        }
    }

    fn next_pass(&self) -> Cursor {
        Cursor {
            pass: self.pass + 1,
            after: None,
        }
    }
}

type CursorRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

fn cursor_of(r: CursorRow) -> Cursor {
    let (pass, kind, value, account, sent_at, key) = r;
    let after = match (kind, value, account, sent_at, key) {
        (Some(k), Some(v), Some(a), Some(t), Some(key)) => Some((k, v, a, t, key)),
        _ => None,
    };
    Cursor { pass, after }
}

#[derive(sqlx::FromRow)]
pub(super) struct PendingRow {
    key: String,
    customer_kind: String,
    customer_value: String,
    account: String,
    sent_at: i64,
    agent_ref: Option<String>,
    body: String,
}

/// Rows per multi-row INSERT: few round trips, far below every dialect's
/// parameter limit.
const CHUNK: usize = 100;

/// Where placing stands.
const PLACING: &str = "SELECT pass, customer_kind, customer_value, account, sent_at, key FROM import_placing WHERE id = 1";
/// The first rows of a pass, in placing order.
const PENDING_FIRST: &str =
    "SELECT key, customer_kind, customer_value, account, sent_at, agent_ref, body
     FROM import_staged WHERE pass = $1
     ORDER BY pass, customer_kind, customer_value, account, sent_at, key LIMIT $2";
/// The rows of a pass after the cursor, in placing order. (`pass` is not
/// in the row value: SQLite then uses only `pass = $1` of the index.)
const PENDING_AFTER: &str =
    "SELECT key, customer_kind, customer_value, account, sent_at, agent_ref, body
     FROM import_staged WHERE pass = $1
       AND (customer_kind, customer_value, account, sent_at, key) > ($2, $3, $4, $5, $6)
     ORDER BY pass, customer_kind, customer_value, account, sent_at, key LIMIT $7";
const SAVE_CURSOR: &str =
    "UPDATE import_placing SET pass = $1, customer_kind = $2, customer_value = $3,
       account = $4, sent_at = $5, key = $6 WHERE id = 1";
const LATER_PASS: &str = "SELECT EXISTS (SELECT 1 FROM import_staged WHERE pass > $1)";
const STAGE_ROW: &str = "INSERT INTO import_staged (pass, key, customer_kind, customer_value, account, sent_at, agent_ref, body)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (key) DO NOTHING";
const SAVE_PROGRESS: &str =
    "INSERT INTO import_files (fingerprint, path, format, byte_offset, line, done, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (fingerprint) DO UPDATE SET path = $2, format = $3, byte_offset = $4,
       line = $5, done = $6, updated_at = $7";
const TAIL: &str =
    "SELECT t.conversation_id, t.last_sent_at, t.ended, c.last_seq FROM import_tails t
     JOIN conversations c ON c.id = t.conversation_id
     WHERE t.customer_kind = $1 AND t.customer_value = $2 AND t.account = $3";
const UPSERT_TAIL: &str = "INSERT INTO import_tails (customer_kind, customer_value, account, conversation_id, last_sent_at, ended)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (customer_kind, customer_value, account)
     DO UPDATE SET conversation_id = $4, last_sent_at = $5, ended = $6";
/// Closes the books of a conversation continued from an earlier batch.
const FINISH_CONVERSATION: &str =
    "UPDATE conversations SET last_seq = $2, last_activity_at = $3, resolved_at = $3,
       first_response_at = COALESCE(first_response_at, $4), updated_at = $5 WHERE id = $1";
/// A message placed earlier, by its contact and key (its `external_id`).
const RECALL_FIND: &str = "SELECT m.id, m.metadata FROM messages m
     JOIN conversations c ON c.id = m.conversation_id
     WHERE c.contact_id = $1 AND m.external_id = $2";
const RECALL_SET: &str = "UPDATE messages SET metadata = $2 WHERE id = $1";

/// An imported conversation, inserted once as it ends up: resolved at its
/// last message, created at its first. Numbers as in
/// `conversations::insert_conversation_sql`.
fn insert_imported_conversation(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Sqlite => {
            "INSERT INTO conversations (id, number, inbox_id, contact_id, status, priority, last_seq,
               last_activity_at, first_response_at, resolved_at, created_at, updated_at)
             VALUES ($1, (SELECT COALESCE(MAX(number), 1000) + 1 FROM conversations), $2, $3,
               'resolved', 'medium', $4, $5, $6, $5, $7, $8)"
        }
        crate::Backend::Postgres => {
            "INSERT INTO conversations (id, number, inbox_id, contact_id, status, priority, last_seq,
               last_activity_at, first_response_at, resolved_at, created_at, updated_at)
             VALUES ($1, nextval('conversation_number_seq'), $2, $3,
               'resolved', 'medium', $4, $5, $6, $5, $7, $8)"
        }
    }
}

/// Inside a transaction: finds the contact by the first identity that
/// matches and completes it, or inserts it. Evaluates to true when inserted.
macro_rules! upsert_contact {
    ($tx:expr, $c:expr, $at:expr) => {{
        let c: &$crate::import::ImportContact = $c;
        let new = $crate::import::as_new_contact(c);
        match contact_by_identities!($tx, &c.identities) {
            None => {
                insert_contact!($tx, &new, $at);
                true
            }
            Some(id) => {
                let old: (Value,) = sqlx::query_as("SELECT attributes FROM contacts WHERE id = $1")
                    .bind(id).fetch_one(&mut *$tx).await?;
                let mut attributes = old.0;
                if let Value::Object(map) = &mut attributes {
                    for (k, v) in &c.attributes {
                        map.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                sqlx::query(
                    "UPDATE contacts SET name = COALESCE(name, $2), phone = COALESCE(phone, $3),
                       email = COALESCE(email, $4), avatar_url = COALESCE(avatar_url, $5),
                       attributes = $6, updated_at = $7 WHERE id = $1",
                )
                .bind(id).bind(&c.name).bind(&c.phone).bind(&c.email).bind(&c.avatar_url)
                .bind(&attributes).bind($at)
                .execute(&mut *$tx).await?;
                for i in &c.identities {
                    sqlx::query(
                        "INSERT INTO contact_identities (kind, value, contact_id, created_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (kind, value) DO NOTHING",
                    )
                    .bind(&i.kind).bind(&i.value).bind(id).bind($at)
                    .execute(&mut *$tx).await?;
                }
                for tag in ensure_tags!($tx, &c.tags) {
                    sqlx::query($crate::contacts::INSERT_CONTACT_TAG).bind(id).bind(tag).execute(&mut *$tx).await?;
                }
                false
            }
        }
    }};
}

/// Inside a transaction: where placing stands.
macro_rules! cursor_sqlx {
    ($tx:expr) => {{
        let row: CursorRow = sqlx::query_as(PLACING).fetch_one(&mut *$tx).await?;
        cursor_of(row)
    }};
}

/// Inside a transaction: records where placing stands.
macro_rules! save_cursor_sqlx {
    ($tx:expr, $cursor:expr) => {{
        let c: &Cursor = $cursor;
        let (kind, value, account, sent_at, key) = c.columns();
        sqlx::query(SAVE_CURSOR)
            .bind(c.pass)
            .bind(kind)
            .bind(value)
            .bind(account)
            .bind(sent_at)
            .bind(key)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Up to `limit` rows of the cursor's pass after it, in placing order.
macro_rules! pending_sqlx {
    ($conn:expr, $cursor:expr, $limit:expr) => {{
        let c: &Cursor = $cursor;
        let limit = $limit as i64;
        let rows: Vec<PendingRow> = match &c.after {
            None => {
                sqlx::query_as(PENDING_FIRST)
                    .bind(c.pass)
                    .bind(limit)
                    .fetch_all(&mut *$conn)
                    .await?
            }
            Some((kind, value, account, sent_at, key)) => {
                sqlx::query_as(PENDING_AFTER)
                    .bind(c.pass)
                    .bind(kind)
                    .bind(value)
                    .bind(account)
                    .bind(sent_at)
                    .bind(key)
                    .bind(limit)
                    .fetch_all(&mut *$conn)
                    .await?
            }
        };
        rows
    }};
}

/// Inside a transaction: runs a statement built by `Sql`.
macro_rules! run_sql {
    ($tx:expr, $sql:expr) => {{
        let sql: Sql = $sql;
        bind_args!(
            sqlx::query(sqlx::AssertSqlSafe(sql.text.as_str())),
            sql.args
        )
        .execute(&mut *$tx)
        .await?
    }};
}

/// Inside a transaction: what the database knows of the batch's customers.
macro_rules! known_sqlx {
    ($tx:expr, $rows:expr) => {{
        let rows: &[PendingRow] = $rows;
        let mut k = plan::Known::default();
        for group in plan::groups(rows) {
            let first = &group[0];
            let who = plan::customer(first);
            if !k.contacts.contains_key(&who) {
                let id: Option<Uuid> = sqlx::query_scalar(crate::contacts::CONTACT_BY_IDENTITY)
                    .bind(who.0)
                    .bind(who.1)
                    .fetch_optional(&mut *$tx)
                    .await?;
                if let Some(id) = id {
                    k.contacts.insert(who, id);
                }
            }
            let t: Option<(Uuid, i64, bool, i64)> = sqlx::query_as(TAIL)
                .bind(who.0)
                .bind(who.1)
                .bind(&first.account)
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some((conversation, last_sent_at, ended, last_seq)) = t {
                k.tails.insert(
                    (who, first.account.as_str()),
                    plan::Tail {
                        conversation,
                        last_sent_at,
                        ended,
                        last_seq,
                    },
                );
            }
        }
        k
    }};
}

/// Inside a transaction: writes a plan in multi-row statements (the
/// PostgreSQL path: each statement is a network round trip).
macro_rules! write_plan_sqlx {
    ($tx:expr, $backend:expr, $opts:expr, $plan:expr, $at:expr) => {{
        let p: plan::Plan<'_> = $plan;
        let mut counts = p.counts;
        for (id, (kind, value)) in &p.contacts {
            let new = NewContact {
                identities: vec![Identity { kind: kind.to_string(), value: value.to_string() }],
                ..Default::default()
            };
            sqlx::query(crate::contacts::INSERT_CONTACT)
                .bind(id).bind(&new.name).bind(&new.email).bind(&new.phone)
                .bind(&new.avatar_url).bind(&new.language).bind(&new.attributes).bind($at)
                .execute(&mut *$tx).await?;
            sqlx::query(crate::contacts::INSERT_IDENTITY)
                .bind(*kind).bind(*value).bind(id).bind($at)
                .execute(&mut *$tx).await?;
        }
        let tags = ensure_tags!($tx, &$opts.tags);
        for c in &p.new_conversations {
            sqlx::query(insert_imported_conversation($backend))
                .bind(c.id).bind(c.inbox).bind(c.contact).bind(c.last_seq).bind(c.last)
                .bind(c.first_response).bind(c.created_at).bind($at)
                .execute(&mut *$tx).await?;
        }
        for chunk in p.new_conversations.chunks(CHUNK) {
            if tags.is_empty() {
                break;
            }
            let mut sql = Sql::new("INSERT INTO conversation_tags (conversation_id, tag_id) VALUES ");
            for (i, c) in chunk.iter().enumerate() {
                for (j, t) in tags.iter().enumerate() {
                    sql.push(if i + j == 0 { "(" } else { ", (" });
                    sql.bind(Arg::Uuid(c.id)).push(", ").bind(Arg::Uuid(*t)).push(")");
                }
            }
            sql.push(" ON CONFLICT DO NOTHING");
            run_sql!($tx, sql);
        }
        for c in &p.continued {
            sqlx::query(FINISH_CONVERSATION)
                .bind(c.id).bind(c.last_seq).bind(c.last).bind(c.first_response).bind($at)
                .execute(&mut *$tx).await?;
        }
        for chunk in p.messages.chunks(CHUNK) {
            run_sql!($tx, message_sql(chunk)?);
        }
        for m in p.messages.iter().filter(|m| !m.attachments.is_empty()) {
            let mut sql = Sql::new("UPDATE attachments SET message_id = $1 WHERE message_id IS NULL AND id IN ");
            sql.args.push(Arg::Uuid(m.id));
            sql.bind_list(&m.attachments);
            run_sql!($tx, sql);
        }
        for (key, contact) in &p.recall_in_db {
            let found: Option<(Uuid, Value)> = sqlx::query_as(RECALL_FIND)
                .bind(contact).bind(key).fetch_optional(&mut *$tx).await?;
            match found {
                Some((id, mut metadata)) => {
                    if let Value::Object(map) = &mut metadata {
                        map.insert("recalled".into(), Value::Bool(true));
                    }
                    sqlx::query(RECALL_SET).bind(id).bind(&metadata).execute(&mut *$tx).await?;
                    counts.recalls_marked += 1;
                }
                None => counts.recalls_missing += 1,
            }
        }
        for chunk in p.tails.chunks(CHUNK) {
            let mut sql = Sql::new(
                "INSERT INTO import_tails (customer_kind, customer_value, account, conversation_id, last_sent_at, ended) VALUES ",
            );
            for (i, t) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Text(t.customer.0.into())).push(", ");
                sql.bind(Arg::Text(t.customer.1.into())).push(", ");
                sql.bind(Arg::Text(t.account.into())).push(", ");
                sql.bind(Arg::Uuid(t.conversation)).push(", ");
                sql.bind(Arg::I64(t.last_sent_at)).push(", ");
                sql.push(if t.ended { "TRUE)" } else { "FALSE)" });
            }
            sql.push(
                " ON CONFLICT (customer_kind, customer_value, account) DO UPDATE SET
                  conversation_id = EXCLUDED.conversation_id, last_sent_at = EXCLUDED.last_sent_at,
                  ended = EXCLUDED.ended",
            );
            run_sql!($tx, sql);
        }
        counts
    }};
}

/// A chunk of planned messages as one multi-row INSERT.
fn message_sql(chunk: &[plan::Msg<'_>]) -> Result<Sql> {
    let mut m = Sql::new(
        "INSERT INTO messages (id, conversation_id, seq, direction, sender_kind, sender_id, text, html, external_id, metadata, created_at) VALUES ",
    );
    for (i, msg) in chunk.iter().enumerate() {
        let sep = if i == 0 { "(" } else { ", (" };
        let metadata: Value = serde_json::from_str(&msg.metadata)
            .map_err(|e| StoreError::Invalid(format!("metadata of {}: {e}", msg.key)))?;
        m.push(sep)
            .bind(Arg::Uuid(msg.id))
            .push(", ")
            .bind(Arg::Uuid(msg.conversation))
            .push(", ")
            .bind(Arg::I64(msg.seq))
            .push(", ")
            .bind(Arg::Text(msg.direction.as_str().into()))
            .push(", ")
            .bind(Arg::Text(msg.sender.0.as_str().into()))
            .push(", ")
            .bind(Arg::OptUuid(msg.sender.1))
            .push(", ")
            .bind(Arg::Text(msg.text.to_string()))
            .push(", NULL, ")
            .bind(Arg::Text(msg.key.into()))
            .push(", ")
            .bind(Arg::Json(metadata))
            .push(", ")
            .bind(Arg::I64(msg.sent_at))
            .push(")");
    }
    Ok(m)
}

impl Store {
    /// The recorded progress of a file, if it was seen before.
    pub async fn import_progress(&self, fingerprint: &str) -> Result<Option<FileProgress>> {
        let row: Option<(String, String, String, i64, i64, bool)> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT fingerprint, path, format, byte_offset, line, done FROM import_files WHERE fingerprint = $1")
                .bind(fingerprint).fetch_optional(p).await?);
        Ok(row.map(
            |(fingerprint, path, format, off, line, done)| FileProgress {
                fingerprint,
                path,
                format,
                byte_offset: u64::try_from(off).unwrap_or(0),
                line: u64::try_from(line).unwrap_or(0),
                done,
            },
        ))
    }

    /// Upserts contacts, stages messages and records `progress`, in one
    /// transaction.
    pub async fn import_stage(
        &self,
        contacts: &[ImportContact],
        messages: &[StagedMessage],
        progress: &FileProgress,
    ) -> Result<StageCounts> {
        let at = to_millis(now());
        let bodies = messages
            .iter()
            .map(|m| serde_json::to_string(&m.body).map_err(|e| StoreError::Invalid(e.to_string())))
            .collect::<Result<Vec<String>>>()?;
        // Batches of messages (nearly all of an import) go to SQLite's
        // writer thread; contact files are small and keep the sqlx path,
        // which upserts contacts.
        if let (Some(writer), true) = (self.db.fast_writer(), contacts.is_empty()) {
            let rows: Vec<sqlite::StageRow> = messages
                .iter()
                .zip(bodies)
                .map(|(m, body)| sqlite::StageRow {
                    key: m.key.clone(),
                    customer_kind: m.customer.kind.clone(),
                    customer_value: m.customer.value.clone(),
                    account: m.account.clone(),
                    sent_at: m.sent_at,
                    agent_ref: m.agent_ref.clone(),
                    body,
                })
                .collect();
            let p = sqlite::ProgressRow {
                fingerprint: progress.fingerprint.clone(),
                path: progress.path.clone(),
                format: progress.format.clone(),
                byte_offset: i64::try_from(progress.byte_offset).unwrap_or(i64::MAX),
                line: i64::try_from(progress.line).unwrap_or(i64::MAX),
                done: progress.done,
            };
            return writer
                .write_alone(move |conn| sqlite::stage(conn, &rows, &p, at))
                .await;
        }
        let mut counts = StageCounts::default();
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            for c in contacts {
                match upsert_contact!(tx, c, at) {
                    true => counts.contacts_created += 1,
                    false => counts.contacts_updated += 1,
                }
            }
            let pass = cursor_sqlx!(tx).staging_pass();
            for (chunk, bodies) in messages.chunks(CHUNK).zip(bodies.chunks(CHUNK)) {
                let sql = stage_sql(pass, chunk, bodies);
                let n = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args)
                    .execute(&mut *tx).await?.rows_affected();
                counts.messages_staged += n;
                counts.messages_already_staged += chunk.len() as u64 - n;
            }
            sqlx::query(SAVE_PROGRESS)
                .bind(&progress.fingerprint).bind(&progress.path).bind(&progress.format)
                .bind(i64::try_from(progress.byte_offset).unwrap_or(i64::MAX))
                .bind(i64::try_from(progress.line).unwrap_or(i64::MAX))
                .bind(progress.done).bind(at)
                .execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(counts)
    }

    /// Places up to `limit` staged messages, oldest first per customer and
    /// account, in one transaction. `Ok(None)` when nothing was waiting.
    pub async fn import_place(
        &self,
        opts: &PlaceOptions,
        limit: usize,
    ) -> Result<Option<PlaceCounts>> {
        let at = to_millis(now());
        if let Some(writer) = self.db.fast_writer() {
            let opts = opts.clone();
            return writer
                .write_alone(move |conn| sqlite::place(conn, &opts, limit, at))
                .await;
        }
        let backend = self.db.backend();
        let counts = on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let mut cursor = cursor_sqlx!(tx);
            let mut rows: Vec<PendingRow>;
            loop {
                rows = pending_sqlx!(tx, &cursor, limit);
                let later: bool = match rows.is_empty() {
                    true => sqlx::query_scalar(LATER_PASS)
                        .bind(cursor.pass).fetch_one(&mut *tx).await?,
                    false => false,
                };
                if !later {
                    break;
                }
                cursor = cursor.next_pass();
                save_cursor_sqlx!(tx, &cursor);
            }
            let counts = if rows.is_empty() {
                None
            } else {
                let known = known_sqlx!(tx, &rows);
                let plan = plan::plan(opts, &rows, &known)?;
                let counts = write_plan_sqlx!(tx, backend, opts, plan, at);
                save_cursor_sqlx!(tx, &cursor.past(&rows));
                Some(counts)
            };
            tx.commit().await?;
            counts
        });
        Ok(counts)
    }
}

fn stage_sql(pass: i64, chunk: &[StagedMessage], bodies: &[String]) -> Sql {
    let mut sql = Sql::new(
        "INSERT INTO import_staged (pass, key, customer_kind, customer_value, account, sent_at, agent_ref, body) VALUES ",
    );
    for (i, (m, body)) in chunk.iter().zip(bodies).enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
        sql.bind(Arg::I64(pass)).push(", ");
        sql.bind(Arg::Text(m.key.clone())).push(", ");
        sql.bind(Arg::Text(m.customer.kind.clone())).push(", ");
        sql.bind(Arg::Text(m.customer.value.clone())).push(", ");
        sql.bind(Arg::Text(m.account.clone())).push(", ");
        sql.bind(Arg::I64(m.sent_at)).push(", ");
        sql.bind(Arg::OptText(m.agent_ref.clone())).push(", ");
        sql.bind(Arg::Text(body.clone())).push(")");
    }
    sql.push(" ON CONFLICT (key) DO NOTHING");
    sql
}

/// The contact fields an import fills in where the contact has none.
pub(crate) fn as_new_contact(c: &ImportContact) -> NewContact {
    NewContact {
        name: c.name.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        avatar_url: c.avatar_url.clone(),
        language: None,
        attributes: Value::Object(c.attributes.clone()),
        tags: c.tags.clone(),
        identities: c.identities.clone(),
    }
}

/// One recorded run of an importer: who ran it, on what, and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct ImportRun {
    pub id: Uuid,
    pub source: String,
    pub actor: String,
    /// `running` until finished; then whatever the importer reports
    /// (`finished`, `finished_with_rejections`, `failed`).
    pub status: String,
    pub dry_run: bool,
    pub files: Value,
    pub report: Value,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(sqlx::FromRow)]
struct ImportRunRow {
    id: Uuid,
    source: String,
    actor: String,
    status: String,
    dry_run: bool,
    files: Value,
    report: Value,
    started_at: i64,
    finished_at: Option<i64>,
}

impl From<ImportRunRow> for ImportRun {
    fn from(r: ImportRunRow) -> ImportRun {
        ImportRun {
            id: r.id,
            source: r.source,
            actor: r.actor,
            status: r.status,
            dry_run: r.dry_run,
            files: r.files,
            report: r.report,
            started_at: crate::rows::ts(r.started_at),
            finished_at: r.finished_at.map(crate::rows::ts),
        }
    }
}

impl Store {
    /// Records the start of a run (status `running`); returns its id.
    pub async fn create_import_run(
        &self,
        source: &str,
        actor: &str,
        dry_run: bool,
        files: &Value,
    ) -> Result<Uuid> {
        let id = Uuid::now_v7();
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO import_runs (id, source, actor, status, dry_run, files, report, started_at)
                 VALUES ($1, $2, $3, 'running', $4, $5, $6, $7)",
            )
            .bind(id).bind(source).bind(actor).bind(dry_run).bind(files)
            .bind(Value::Object(Default::default())).bind(to_millis(now()))
            .execute(p).await?.rows_affected());
        Ok(id)
    }

    /// Records how a run ended and its report.
    pub async fn finish_import_run(&self, id: Uuid, status: &str, report: &Value) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE import_runs SET status = $2, report = $3, finished_at = $4 WHERE id = $1")
                .bind(id).bind(status).bind(report).bind(to_millis(now()))
                .execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The latest runs, newest first.
    pub async fn list_import_runs(&self, limit: usize) -> Result<Vec<ImportRun>> {
        let rows: Vec<ImportRunRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(
                "SELECT id, source, actor, status, dry_run, files, report, started_at, finished_at
                 FROM import_runs ORDER BY started_at DESC, id DESC LIMIT $1",
            )
            .bind(limit as i64).fetch_all(p).await?);
        Ok(rows.into_iter().map(ImportRun::from).collect())
    }

    /// Whether any staged row waits to be placed (an earlier run stopped
    /// before placing all it staged).
    pub async fn import_has_pending(&self) -> Result<bool> {
        Ok(on_db!(self.db.reader(), p => {
            let mut c = p.acquire().await?;
            let cursor = cursor_sqlx!(c);
            let next = pending_sqlx!(c, &cursor, 1);
            let later: bool = sqlx::query_scalar(LATER_PASS).bind(cursor.pass).fetch_one(&mut *c).await?;
            !next.is_empty() || later
        }))
    }

    /// The agent references of staged rows not placed yet (and of those of
    /// the pass being placed): the importer maps them to agents before
    /// placing, even when a resumed run staged nothing.
    pub async fn import_pending_agent_refs(&self) -> Result<Vec<String>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar(
                "SELECT DISTINCT agent_ref FROM import_staged
                 WHERE pass >= (SELECT pass FROM import_placing WHERE id = 1)
                   AND agent_ref IS NOT NULL ORDER BY agent_ref",
            )
            .fetch_all(p).await?))
    }
}
