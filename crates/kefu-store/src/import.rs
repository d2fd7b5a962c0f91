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
//!    the gap is too long. Marking a row placed commits with its message, so
//!    placing also resumes exactly.
//!
//! Nothing here knows WeChat: the caller decides keys, texts and metadata.

use crate::rows::{Arg, Sql};
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{Direction, Identity, NewContact, SenderKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

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

#[derive(sqlx::FromRow)]
struct PendingRow {
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

/// A conversation being filled by `place_group!`.
struct Open {
    id: Uuid,
    seq: i64,
    last: i64,
    ended: bool,
    first_response: Option<i64>,
}

/// Message rows and staged-row marks waiting for one multi-row statement each.
#[derive(Default)]
struct Pending {
    messages: Sql,
    marks: Sql,
    rows: usize,
}

impl Pending {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        id: Uuid,
        conversation: Uuid,
        seq: i64,
        key: &str,
        body: StagedBody,
        sender: (SenderKind, Option<Uuid>),
        sent_at: i64,
    ) {
        let (m, k) = (&mut self.messages, &mut self.marks);
        if self.rows == 0 {
            m.push("INSERT INTO messages (id, conversation_id, seq, direction, sender_kind, sender_id, text, html, external_id, metadata, created_at) VALUES ");
            k.push("WITH v (key, mid) AS (VALUES ");
        } else {
            m.push(", ");
            k.push(", ");
        }
        m.push("(")
            .bind(Arg::Uuid(id))
            .push(", ")
            .bind(Arg::Uuid(conversation))
            .push(", ")
            .bind(Arg::I64(seq))
            .push(", ")
            .bind(Arg::Text(body.direction.as_str().into()))
            .push(", ")
            .bind(Arg::Text(sender.0.as_str().into()))
            .push(", ")
            .bind(Arg::OptUuid(sender.1))
            .push(", ")
            .bind(Arg::Text(body.text))
            .push(", NULL, ")
            .bind(Arg::Text(key.into()))
            .push(", ")
            .bind(Arg::Json(body.metadata))
            .push(", ")
            .bind(Arg::I64(sent_at))
            .push(")");
        k.push("(")
            .bind(Arg::Text(key.into()))
            .push(", ")
            .bind(Arg::Uuid(id))
            .push(")");
        self.rows += 1;
    }

    /// The two statements, and a fresh buffer; `None` when empty.
    fn take(&mut self) -> Option<(Sql, Sql)> {
        if self.rows == 0 {
            return None;
        }
        let mut done = std::mem::take(self);
        // A CTE rather than UPDATE … FROM: SQLite names no VALUES columns.
        done.marks.push(
            ") UPDATE import_staged SET message_id = (SELECT v.mid FROM v WHERE v.key = import_staged.key)
             WHERE key IN (SELECT v.key FROM v)",
        );
        Some((done.messages, done.marks))
    }
}

/// Inside a transaction: writes what `Pending` holds.
macro_rules! flush_pending {
    ($tx:expr, $pending:expr) => {{
        if let Some((messages, marks)) = $pending.take() {
            bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(messages.text.as_str())),
                messages.args
            )
            .execute(&mut *$tx)
            .await?;
            bind_args!(
                sqlx::query(sqlx::AssertSqlSafe(marks.text.as_str())),
                marks.args
            )
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// Inside a transaction: marks the message staged as `key` recalled.
/// Evaluates to whether it was found.
macro_rules! mark_recalled {
    ($tx:expr, $key:expr) => {{
        let found: Option<(Uuid, Value)> = sqlx::query_as(
            "SELECT m.id, m.metadata FROM import_staged s JOIN messages m ON m.id = s.message_id WHERE s.key = $1",
        )
        .bind($key).fetch_optional(&mut *$tx).await?;
        match found {
            Some((id, mut metadata)) => {
                if let Value::Object(map) = &mut metadata {
                    map.insert("recalled".into(), Value::Bool(true));
                }
                sqlx::query("UPDATE messages SET metadata = $2 WHERE id = $1")
                    .bind(id).bind(&metadata).execute(&mut *$tx).await?;
                true
            }
            None => false,
        }
    }};
}

/// Inside a transaction: closes the books of a filled conversation.
macro_rules! finish_open {
    ($tx:expr, $c:expr, $at:expr) => {{
        let c: &Open = $c;
        sqlx::query(
            "UPDATE conversations SET last_seq = $2, last_activity_at = $3, resolved_at = $3,
               first_response_at = COALESCE(first_response_at, $4), updated_at = $5 WHERE id = $1",
        )
        .bind(c.id)
        .bind(c.seq)
        .bind(c.last)
        .bind(c.first_response)
        .bind($at)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Inside a transaction: places the rows of one customer and account.
macro_rules! place_group {
    ($tx:expr, $backend:expr, $opts:expr, $group:expr, $at:expr, $counts:expr) => {{
        let opts: &PlaceOptions = $opts;
        let group: &[PendingRow] = $group;
        let first = &group[0];
        let customer = Identity { kind: first.customer_kind.clone(), value: first.customer_value.clone() };
        let contact_id = match contact_by_identities!($tx, std::slice::from_ref(&customer)) {
            Some(id) => id,
            None => {
                $counts.contacts_created += 1;
                let new = NewContact { identities: vec![customer.clone()], ..Default::default() };
                insert_contact!($tx, &new, $at)
            }
        };
        let inbox = opts.inboxes.get(&first.account).copied().unwrap_or(opts.default_inbox);
        let tail: Option<(Uuid, i64, bool, i64)> = sqlx::query_as(
            "SELECT t.conversation_id, t.last_sent_at, t.ended, c.last_seq FROM import_tails t
             JOIN conversations c ON c.id = t.conversation_id
             WHERE t.customer_kind = $1 AND t.customer_value = $2 AND t.account = $3",
        )
        .bind(&customer.kind).bind(&customer.value).bind(&first.account)
        .fetch_optional(&mut *$tx).await?;
        let mut open = tail.map(|(id, last, ended, seq)| Open { id, seq, last, ended, first_response: None });
        let mut pending = Pending::default();
        let insert = crate::conversations::insert_conversation_sql($backend);
        for row in group {
            let body: StagedBody = serde_json::from_str(&row.body)
                .map_err(|e| StoreError::Invalid(format!("staged {}: {e}", row.key)))?;
            let new_conversation = open.as_ref().is_none_or(|c| c.ended || row.sent_at - c.last > opts.gap_ms);
            if new_conversation {
                flush_pending!($tx, pending);
                if let Some(c) = open.take() {
                    finish_open!($tx, &c, $at);
                }
                let id = Uuid::now_v7();
                sqlx::query_scalar::<_, i64>(insert)
                    .bind(id).bind(inbox).bind(contact_id).bind(Option::<String>::None)
                    .bind("medium").bind(Option::<Uuid>::None).bind(Option::<Uuid>::None).bind(0_i64)
                    .bind(row.sent_at).bind(Option::<i64>::None).bind(Option::<i64>::None).bind(Option::<i64>::None)
                    .fetch_one(&mut *$tx).await?;
                sqlx::query("UPDATE conversations SET status = 'resolved', created_at = $2 WHERE id = $1")
                    .bind(id).bind(row.sent_at).execute(&mut *$tx).await?;
                for tag in ensure_tags!($tx, &opts.tags) {
                    sqlx::query(crate::conversations::INSERT_CONVERSATION_TAG).bind(id).bind(tag).execute(&mut *$tx).await?;
                }
                $counts.conversations += 1;
                open = Some(Open { id, seq: 0, last: row.sent_at, ended: false, first_response: None });
            }
            let Some(c) = open.as_mut() else { unreachable!("a conversation is open") };
            c.seq += 1;
            c.last = c.last.max(row.sent_at);
            c.ended = body.ends_session;
            let sender = match body.direction {
                Direction::Incoming => (SenderKind::Contact, Some(contact_id)),
                Direction::Outgoing => {
                    c.first_response.get_or_insert(row.sent_at);
                    match row.agent_ref.as_ref().and_then(|a| opts.agents.get(a)) {
                        Some(agent) => (SenderKind::Agent, Some(*agent)),
                        None => (SenderKind::System, None),
                    }
                }
                _ => (SenderKind::System, None),
            };
            let recall = body.recall_of.clone();
            let attachments = body.attachment_ids.clone();
            let id = Uuid::now_v7();
            pending.add(id, c.id, c.seq, &row.key, body, sender, row.sent_at);
            $counts.messages += 1;
            if !attachments.is_empty() || recall.is_some() || pending.rows >= CHUNK {
                flush_pending!($tx, pending);
            }
            if !attachments.is_empty() {
                let mut sql = Sql::new("UPDATE attachments SET message_id = $1 WHERE message_id IS NULL AND id IN ");
                sql.args.push(Arg::Uuid(id));
                sql.bind_list(&attachments);
                bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).execute(&mut *$tx).await?;
            }
            if let Some(key) = recall {
                match mark_recalled!($tx, &key) {
                    true => $counts.recalls_marked += 1,
                    false => $counts.recalls_missing += 1,
                }
            }
        }
        flush_pending!($tx, pending);
        if let Some(c) = open {
            finish_open!($tx, &c, $at);
            sqlx::query(
                "INSERT INTO import_tails (customer_kind, customer_value, account, conversation_id, last_sent_at, ended)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (customer_kind, customer_value, account)
                 DO UPDATE SET conversation_id = $4, last_sent_at = $5, ended = $6",
            )
            .bind(&customer.kind).bind(&customer.value).bind(&first.account)
            .bind(c.id).bind(c.last).bind(c.ended)
            .execute(&mut *$tx).await?;
        }
    }};
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
        let mut counts = StageCounts::default();
        let bodies = messages
            .iter()
            .map(|m| serde_json::to_string(&m.body).map_err(|e| StoreError::Invalid(e.to_string())))
            .collect::<Result<Vec<String>>>()?;
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            for c in contacts {
                match upsert_contact!(tx, c, at) {
                    true => counts.contacts_created += 1,
                    false => counts.contacts_updated += 1,
                }
            }
            for (chunk, bodies) in messages.chunks(CHUNK).zip(bodies.chunks(CHUNK)) {
                let sql = stage_sql(chunk, bodies);
                let n = bind_args!(sqlx::query(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args)
                    .execute(&mut *tx).await?.rows_affected();
                counts.messages_staged += n;
                counts.messages_already_staged += chunk.len() as u64 - n;
            }
            sqlx::query(
                "INSERT INTO import_files (fingerprint, path, format, byte_offset, line, done, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (fingerprint) DO UPDATE SET path = $2, format = $3, byte_offset = $4,
                   line = $5, done = $6, updated_at = $7",
            )
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
        let rows: Vec<PendingRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(
                "SELECT key, customer_kind, customer_value, account, sent_at, agent_ref, body
                 FROM import_staged WHERE message_id IS NULL
                 ORDER BY customer_kind, customer_value, account, sent_at, key LIMIT $1",
            )
            .bind(limit as i64).fetch_all(p).await?);
        if rows.is_empty() {
            return Ok(None);
        }
        let mut counts = PlaceCounts::default();
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let mut rest = rows.as_slice();
            while let Some(first) = rest.first() {
                let n = rest.iter().take_while(|r| same_group(r, first)).count();
                let (group, tail) = rest.split_at(n);
                rest = tail;
                place_group!(tx, self.db.backend(), opts, group, at, counts);
            }
            tx.commit().await?;
        });
        Ok(Some(counts))
    }
}

fn same_group(a: &PendingRow, b: &PendingRow) -> bool {
    a.customer_kind == b.customer_kind
        && a.customer_value == b.customer_value
        && a.account == b.account
}

fn stage_sql(chunk: &[StagedMessage], bodies: &[String]) -> Sql {
    let mut sql = Sql::new(
        "INSERT INTO import_staged (key, customer_kind, customer_value, account, sent_at, agent_ref, body) VALUES ",
    );
    for (i, (m, body)) in chunk.iter().zip(bodies).enumerate() {
        sql.push(if i == 0 { "(" } else { ", (" });
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

    /// The agent references of staged rows not placed yet: the importer maps
    /// them to agents before placing, even when a resumed run staged nothing.
    pub async fn import_pending_agent_refs(&self) -> Result<Vec<String>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar(
                "SELECT DISTINCT agent_ref FROM import_staged
                 WHERE message_id IS NULL AND agent_ref IS NOT NULL ORDER BY agent_ref",
            )
            .fetch_all(p).await?))
    }
}
