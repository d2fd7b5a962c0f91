//! Bulk import of another system's history (WeChat's, through
//! `kefu-wechat`), in two steps that each commit in batches:
//!
//! 1. **Stage**: contacts are upserted by their identities. A batch of
//!    messages is checked against every key staged before (`import_keys`),
//!    sorted into placing order (customer, account, time) and written once
//!    as a run file in the import's work directory (`runs`); the run is
//!    recorded together with how far the input file has been read. A re-run
//!    stages nothing twice; a killed run resumes at the last recorded run.
//! 2. **Place**: the runs of a pass are merged in placing order and become
//!    messages of conversations. A customer's next message continues the
//!    conversation in `import_tails` unless that one ended or the gap is too
//!    long. Placing follows a cursor (`import_placing`, the last row placed)
//!    that commits with each batch, so placing also resumes exactly; runs
//!    staged once a pass is being placed go to the next pass.
//!
//! Nothing here knows WeChat: the caller decides keys, texts and metadata.
//!
//! Each step's transaction has one implementation per backend: `sqlite`
//! (on SQLite's writer thread) and `postgres`. What they decide is made
//! once, in `plan` (placing) and `upsert` (contacts); the statement texts
//! are the constants here. `runs` holds the run files and their merge.

use crate::db::Db;
use crate::rows::Sql;
use crate::{Result, Store, StoreError};
use futures::TryStreamExt;
use kefu_core::time::{now, to_millis};
use kefu_core::{Direction, Identity, NewContact};
use runs::Row;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use uuid::Uuid;

mod plan;
mod runs;
mod sqlite;
mod upsert;

pub use runs::ImportWork;

/// A contact as a source knows it. Fields already set on a matching contact
/// are kept (agents may have edited them); attributes are merged.
#[derive(Debug, Clone, Default)]
pub struct ImportContact {
    /// Strongest first: the first one that matches picks the contact.
    pub identities: Vec<Identity>,
    /// Phone numbers and emails (as identity keys): they find the contact
    /// when no identity above does, unless the contact found holds another
    /// id of a kind above (two WeChat ids are two people, even sharing a
    /// number: see [`ContactConflict`]). An identity already someone's
    /// stays theirs.
    pub weak_identities: Vec<Identity>,
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

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct StageCounts {
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub messages_staged: u64,
    pub messages_already_staged: u64,
    /// Contacts found by a phone number or email only (a source's record
    /// joined to another source's contact).
    pub merges: Vec<ContactMerge>,
    /// Records that shared a phone number or email with a contact holding
    /// another WeChat id, and were kept apart.
    pub conflicts: Vec<ContactConflict>,
}

/// A record joined to an existing contact by a phone number or email.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContactMerge {
    pub contact_id: Uuid,
    /// The phone or email identity both had.
    pub by: Identity,
    /// The record's own ids (WeChat ids; empty for a spreadsheet row
    /// without any), now also the contact's.
    pub record: Vec<Identity>,
}

/// A record kept apart from the contact that has its phone number or
/// email, because both carry different ids of one kind (two WeCom
/// external_userids sharing a mobile: a family, a shop).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContactConflict {
    /// The phone or email identity both had; it stays `existing`'s.
    pub shared: Identity,
    pub existing: Uuid,
    /// `existing`'s ids of the kinds the record also has.
    pub existing_ids: Vec<Identity>,
    /// The contact the record became.
    pub created: Uuid,
    pub record: Vec<Identity>,
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
    /// Tags of every imported conversation; the source of its runs (see
    /// [`Store::import_stage`]) is added.
    pub tags: Vec<String>,
    /// Start placing a pass only if all its runs are of this source: a
    /// source's placing step leaves passes of sources still being staged
    /// (a resumed run) to theirs. `None`: any pass.
    pub source: Option<String>,
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

/// A cursor as stored: (identity kind, identity value, account, sent_at,
/// key), all NULL before its pass begins.
type CursorColumns<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<&'a str>,
);

impl Cursor {
    /// New rows join the pass being placed only while its placing has not
    /// begun: none may sort behind the cursor.
    fn staging_pass(&self) -> i64 {
        self.pass + i64::from(self.after.is_some())
    }

    /// The cursor once `rows` (a batch, in placing order) are placed.
    fn past(&self, rows: &[Row]) -> Cursor {
        Cursor {
            pass: self.pass,
            after: rows.last().map(after_of).or_else(|| self.after.clone()),
        }
    }

    /// The cursor's columns as stored: all NULL before the pass begins.
    fn columns(&self) -> CursorColumns<'_> {
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

/// The cursor's position once `r` is placed.
fn after_of(r: &Row) -> After {
    (
        r.customer_kind.clone(),
        r.customer_value.clone(),
        r.account.clone(),
        r.sent_at,
        r.key.clone(),
    )
}

fn cursor_of(r: CursorRow) -> Cursor {
    let (pass, kind, value, account, sent_at, key) = r;
    let after = match (kind, value, account, sent_at, key) {
        (Some(k), Some(v), Some(a), Some(t), Some(key)) => Some((k, v, a, t, key)),
        _ => None,
    };
    Cursor { pass, after }
}

/// Runs merged at once at most: each holds an open file and a read buffer,
/// so a pass with more (an import of several million messages) first has
/// groups of them merged into one.
const FAN_IN: usize = 64;

/// Rows per multi-row INSERT: few round trips, far below every dialect's
/// parameter limit.
const CHUNK: usize = 100;

/// Where placing stands.
const PLACING: &str = "SELECT pass, customer_kind, customer_value, account, sent_at, key FROM import_placing WHERE id = 1";
const SAVE_CURSOR: &str =
    "UPDATE import_placing SET pass = $1, customer_kind = $2, customer_value = $3,
       account = $4, sent_at = $5, key = $6 WHERE id = 1";
/// Whether runs of a later pass wait.
const LATER_RUNS: &str = "SELECT EXISTS (SELECT 1 FROM import_sort_runs WHERE pass > $1)";
const RUNS_OF_PASS: &str = "SELECT id, source FROM import_sort_runs WHERE pass = $1 ORDER BY id";
/// Staged rows an earlier version left, in placing order by bytes.
const ADOPT_ORDER_SQLITE: &str =
    "SELECT pass, key, customer_kind, customer_value, account, sent_at, agent_ref, body
     FROM import_staged ORDER BY pass, customer_kind, customer_value, account, sent_at, key";
const ADOPT_ORDER_POSTGRES: &str =
    "SELECT pass, key, customer_kind, customer_value, account, sent_at, agent_ref, body
     FROM import_staged ORDER BY pass, customer_kind COLLATE \"C\", customer_value COLLATE \"C\",
       account COLLATE \"C\", sent_at, key COLLATE \"C\"";
/// Staged rows an earlier version placed before it stopped (at or behind
/// its cursor).
const ADOPT_PLACED: &str = "DELETE FROM import_staged WHERE pass = $1
     AND (customer_kind, customer_value, account, sent_at, key) <= ($2, $3, $4, $5, $6)";
/// Runs of the cursor's pass and earlier ones (none once a pass is done).
const RUNS_UP_TO: &str = "SELECT id FROM import_sort_runs WHERE pass <= $1";
const DELETE_RUNS_UP_TO: &str = "DELETE FROM import_sort_runs WHERE pass <= $1";
const INSERT_RUN: &str =
    "INSERT INTO import_sort_runs (id, pass, source, row_count, agent_refs, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)";
/// Staged keys: one ([`INSERT_KEY`]) or many in one statement
/// ([`INSERT_KEYS`], then rows and [`ON_KEY_CONFLICT`]).
macro_rules! insert_keys {
    () => {
        "INSERT INTO import_keys (key) VALUES "
    };
}
macro_rules! on_key_conflict {
    () => {
        " ON CONFLICT DO NOTHING"
    };
}
const INSERT_KEY: &str = concat!(insert_keys!(), "($1)", on_key_conflict!());
const INSERT_KEYS: &str = insert_keys!();
const ON_KEY_CONFLICT: &str = on_key_conflict!();
const SAVE_PROGRESS: &str =
    "INSERT INTO import_files (fingerprint, path, format, byte_offset, line, done, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (fingerprint) DO UPDATE SET path = $2, format = $3, byte_offset = $4,
       line = $5, done = $6, updated_at = $7";
const TAIL: &str =
    "SELECT t.conversation_id, t.last_sent_at, t.ended, c.last_seq FROM import_tails t
     JOIN conversations c ON c.id = t.conversation_id
     WHERE t.customer_kind = $1 AND t.customer_value = $2 AND t.account = $3";
/// Where a customer's history in an account stands after a batch: one
/// row ([`UPSERT_TAIL`]) or many in one statement ([`UPSERT_TAILS`], then
/// rows and [`ON_TAIL_CONFLICT`]).
macro_rules! upsert_tails {
    () => {
        "INSERT INTO import_tails (customer_kind, customer_value, account, conversation_id, last_sent_at, ended)
     VALUES "
    };
}
macro_rules! on_tail_conflict {
    () => {
        " ON CONFLICT (customer_kind, customer_value, account) DO UPDATE SET
       conversation_id = EXCLUDED.conversation_id, last_sent_at = EXCLUDED.last_sent_at,
       ended = EXCLUDED.ended"
    };
}
const UPSERT_TAIL: &str = concat!(
    upsert_tails!(),
    "($1, $2, $3, $4, $5, $6)",
    on_tail_conflict!()
);
const UPSERT_TAILS: &str = upsert_tails!();
const ON_TAIL_CONFLICT: &str = on_tail_conflict!();
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
/// last message, created at its first. Numbered as the conversations
/// module numbers (`next_number!`).
macro_rules! insert_imported_conversation {
    ($dialect:ident) => {
        concat!(
            "INSERT INTO conversations (id, number, inbox_id, contact_id, status, priority, last_seq,
               last_activity_at, first_response_at, resolved_at, created_at, updated_at)
             VALUES ($1, ",
            next_number!($dialect),
            ", $2, $3,
               'resolved', 'medium', $4, $5, $6, $5, $7, $8)"
        )
    };
}
const INSERT_IMPORTED_CONVERSATION_SQLITE: &str = insert_imported_conversation!(sqlite);
const INSERT_IMPORTED_CONVERSATION_PG: &str = insert_imported_conversation!(postgres);

/// Links an imported message's uploads: one (`= $2`,
/// [`LINK_IMPORTED_ATTACHMENT`]) or an `IN` list after [`LINK_IMPORTED`].
macro_rules! link_imported {
    () => {
        "UPDATE attachments SET message_id = $1 WHERE message_id IS NULL AND id "
    };
}
const LINK_IMPORTED: &str = link_imported!();
const LINK_IMPORTED_ATTACHMENT: &str = concat!(link_imported!(), "= $2");

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

/// Runs `$body` (with the transaction `$tx`) and commits so that the commit
/// is on disk when this returns, even under SQLite's synchronous=NORMAL:
/// the caller then deletes run files, and a commit lost to a power cut
/// would leave the database naming files that are gone.
macro_rules! durable_tx {
    ($store:expr, $tx:ident => $body:block) => {{
        let sqlite = $store.db.backend() == crate::Backend::Sqlite;
        on_db!($store.db.writer(), p => {
            let mut c = p.acquire().await?;
            if sqlite {
                sqlx::query("PRAGMA synchronous = FULL").execute(&mut *c).await?;
            }
            let done: Result<()> = async {
                let mut $tx = sqlx::Connection::begin(&mut *c).await?;
                $body
                $tx.commit().await?;
                Ok(())
            }
            .await;
            if sqlite {
                sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *c).await?;
            }
            done?;
        })
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

// After the macros above, which it uses.
mod postgres;

/// A staged message encoded for a run: a batch held in memory takes about
/// its encoded size, and the body is serialised once.
pub struct EncodedMessage(Row);

impl StagedMessage {
    pub fn encode(self) -> Result<EncodedMessage> {
        let body = serde_json::value::to_raw_value(&self.body)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", self.key)))?;
        Ok(EncodedMessage(Row {
            key: self.key,
            customer_kind: self.customer.kind,
            customer_value: self.customer.value,
            account: self.account,
            sent_at: self.sent_at,
            agent_ref: self.agent_ref,
            body: runs::Body(body),
        }))
    }
}

impl EncodedMessage {
    /// About what the message takes in memory, in bytes.
    pub fn size(&self) -> usize {
        self.0.size()
    }
}

/// A staging batch: each key once (the first copy), the rows in placing
/// order and the keys in key order, which is how they are looked up and
/// inserted (neighbouring keys share index pages). Its run file is written
/// before the transaction, so the transaction holds SQLite's write lock
/// only for the keys; it is rewritten inside it only when some keys turn
/// out to be staged before (a re-run over a grown file).
struct RunBatch {
    rows: Vec<Row>,
    keys: Vec<String>,
    received: u64,
    run: Uuid,
    /// The run file as written with every row: its rows and agent refs.
    written: Option<(i64, Value)>,
}

impl RunBatch {
    /// Sorts `messages` and writes them as run `run` (blocking I/O).
    fn new(work: &ImportWork, run: Uuid, messages: Vec<EncodedMessage>) -> Result<RunBatch> {
        let received = messages.len() as u64;
        let mut rows: Vec<Row> = messages.into_iter().map(|m| m.0).collect();
        // Stable: of two copies of a key, the first read stays.
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows.dedup_by(|later, first| later.key == first.key);
        let keys = rows.iter().map(|r| r.key.clone()).collect();
        rows.sort_unstable_by(|a, b| a.order().cmp(&b.order()));
        let mut batch = RunBatch {
            rows,
            keys,
            received,
            run,
            written: None,
        };
        batch.written = batch.write(work, &HashSet::new())?;
        Ok(batch)
    }

    /// The run once `old` (keys staged before) are known: its rows and
    /// agent refs, or `None` when every row was staged before.
    fn finish(&self, work: &ImportWork, old: &HashSet<&str>) -> Result<Option<(i64, Value)>> {
        if old.is_empty() {
            return Ok(self.written.clone());
        }
        let run = self.write(work, old)?;
        if run.is_none() {
            work.remove(&[self.run]);
        }
        Ok(run)
    }

    /// Writes the rows whose keys are not in `old` as the run file.
    fn write(&self, work: &ImportWork, old: &HashSet<&str>) -> Result<Option<(i64, Value)>> {
        if self.keys.len() == old.len() {
            return Ok(None);
        }
        let mut w = work.run_writer(self.run)?;
        for r in self.rows.iter().filter(|r| !old.contains(r.key.as_str())) {
            w.push(r)?;
        }
        let (_, n, refs) = w.finish()?;
        Ok(Some((n, refs)))
    }

    /// `contacts` (what the batch's contacts did) with its messages
    /// counted, `old` of its keys being staged before.
    fn counts(&self, old: usize, contacts: StageCounts) -> StageCounts {
        let staged = (self.keys.len() - old) as u64;
        StageCounts {
            messages_staged: staged,
            messages_already_staged: self.received - staged,
            ..contacts
        }
    }
}

/// The byte offset and line of a file's progress, as stored.
fn progress_columns(p: &FileProgress) -> (i64, i64) {
    (
        i64::try_from(p.byte_offset).unwrap_or(i64::MAX),
        i64::try_from(p.line).unwrap_or(i64::MAX),
    )
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

    /// Opens and locks the work directory of imports into this database,
    /// `dir/<database id>` (so two databases sharing a data directory never
    /// take each other's runs for leftovers): run files no transaction
    /// recorded are removed, and rows an earlier version staged in the
    /// database become runs.
    pub async fn import_work(&self, dir: &Path) -> Result<ImportWork> {
        let work = ImportWork::lock(&dir.join(self.import_work_id().await?))?;
        let runs: Vec<Uuid> = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT id FROM import_sort_runs").fetch_all(p).await?);
        work.tidy(&runs)?;
        self.adopt_staged(&work).await?;
        Ok(work)
    }

    /// This database's name for its import work directory, made once.
    async fn import_work_id(&self) -> Result<String> {
        self.setting_or_insert("import_work_id", &Uuid::now_v7().to_string())
            .await
    }

    /// Upserts contacts, stages messages (each key once, ever) as a run of
    /// `source` in `work` and records `progress`, in one transaction.
    pub async fn import_stage(
        &self,
        work: &ImportWork,
        source: &str,
        contacts: &[ImportContact],
        messages: Vec<EncodedMessage>,
        progress: &FileProgress,
    ) -> Result<StageCounts> {
        let at = to_millis(now());
        let run = Uuid::now_v7();
        let sorting = work.clone();
        let batch = tokio::task::spawn_blocking(move || RunBatch::new(&sorting, run, messages))
            .await
            .map_err(|e| StoreError::Invalid(format!("sorting a batch: {e}")))??;
        match &self.db {
            Db::Sqlite { fast, .. } => {
                let (work, progress) = (work.clone(), progress.clone());
                let (source, contacts) = (source.to_string(), contacts.to_vec());
                fast.write_alone(move |conn| {
                    sqlite::stage(conn, &work, &source, &contacts, &batch, &progress, at)
                })
                .await
            }
            Db::Postgres(pool) => {
                postgres::stage(pool, work, source, contacts, &batch, progress, at).await
            }
        }
    }

    /// Places up to `limit` staged messages, oldest first per customer and
    /// account, in one transaction. `Ok(None)` when nothing was waiting.
    pub async fn import_place(
        &self,
        work: &ImportWork,
        opts: &PlaceOptions,
        limit: usize,
    ) -> Result<Option<PlaceCounts>> {
        loop {
            let cursor = self.import_cursor().await?;
            if !work.merging_at(cursor.pass, cursor.after.as_ref()) {
                let runs: Vec<(Uuid, String)> = on_db!(self.db.reader(), p =>
                    sqlx::query_as(RUNS_OF_PASS).bind(cursor.pass).fetch_all(p).await?);
                let theirs = |want: &String| runs.iter().any(|(_, s)| s != want);
                if cursor.after.is_none() && opts.source.as_ref().is_some_and(theirs) {
                    return Ok(None);
                }
                let source = runs.first().map(|(_, s)| s.clone()).unwrap_or_default();
                let ids = runs.into_iter().map(|(id, _)| id).collect();
                let ids = self.import_fan_in(work, cursor.pass, &source, ids).await?;
                work.open_merge(cursor.pass, &ids, cursor.after.clone(), source)?;
            }
            let (rows, merged) = match work.take(limit.max(1)) {
                Ok(taken) => taken,
                Err(e) => {
                    work.reset();
                    return Err(e);
                }
            };
            if rows.is_empty() {
                work.reset();
                match self.import_next_pass(work, &cursor, &merged.runs).await? {
                    true => continue,
                    false => return Ok(None),
                }
            }
            let mut opts = opts.clone();
            if !merged.source.is_empty() {
                opts.tags.push(merged.source.to_string());
            }
            let placed = self.import_place_rows(&opts, rows, &cursor).await;
            if placed.is_err() {
                work.reset();
            }
            return placed.map(Some);
        }
    }

    /// Merges `runs` (of `pass`) a group at a time until at most
    /// [`FAN_IN`] are left; each merged group is swapped for its run in one
    /// transaction, so a kill leaves either the group or the run recorded.
    async fn import_fan_in(
        &self,
        work: &ImportWork,
        pass: i64,
        source: &str,
        mut runs: Vec<Uuid>,
    ) -> Result<Vec<Uuid>> {
        while runs.len() > FAN_IN {
            let group: Vec<Uuid> = runs.drain(..FAN_IN).collect();
            let id = Uuid::now_v7();
            let (n, refs) = work.merge_into(id, pass, &group)?;
            let at = to_millis(now());
            durable_tx!(self, tx => {
                sqlx::query(INSERT_RUN)
                    .bind(id).bind(pass).bind(source).bind(n).bind(&refs).bind(at)
                    .execute(&mut *tx).await?;
                let mut delete = Sql::new("DELETE FROM import_sort_runs WHERE id IN ");
                delete.bind_list(&group);
                run_sql!(tx, delete);
            });
            work.remove(&group);
            runs.push(id);
        }
        Ok(runs)
    }

    async fn import_cursor(&self) -> Result<Cursor> {
        Ok(on_db!(self.db.reader(), p => {
            let mut c = p.acquire().await?;
            cursor_sqlx!(c)
        }))
    }

    /// Places `rows` (the next ones after `cursor`) and moves the cursor
    /// past them, in one transaction.
    async fn import_place_rows(
        &self,
        opts: &PlaceOptions,
        rows: Vec<Row>,
        cursor: &Cursor,
    ) -> Result<PlaceCounts> {
        let at = to_millis(now());
        let next = cursor.past(&rows);
        match &self.db {
            Db::Sqlite { fast, .. } => {
                let opts = opts.clone();
                fast.write_alone(move |conn| sqlite::place(conn, &opts, &rows, &next, at))
                    .await
            }
            Db::Postgres(pool) => postgres::place(pool, opts, &rows, &next, at).await,
        }
    }

    /// Once the merge of the cursor's pass (of runs `merged`) is exhausted:
    /// forgets the pass's runs and moves the cursor to the start of the next
    /// pass. True when placing should look again: runs of a later pass
    /// wait, or runs joined this pass after its merge was opened.
    async fn import_next_pass(
        &self,
        work: &ImportWork,
        cursor: &Cursor,
        merged: &[Uuid],
    ) -> Result<bool> {
        let (done, later): (Vec<Uuid>, bool) = on_db!(self.db.reader(), p => (
            sqlx::query_scalar(RUNS_UP_TO).bind(cursor.pass).fetch_all(p).await?,
            sqlx::query_scalar(LATER_RUNS).bind(cursor.pass).fetch_one(p).await?,
        ));
        if done.iter().any(|r| !merged.contains(r)) {
            return Ok(true);
        }
        if done.is_empty() && !later && cursor.after.is_none() {
            return Ok(false);
        }
        durable_tx!(self, tx => {
            sqlx::query(DELETE_RUNS_UP_TO).bind(cursor.pass).execute(&mut *tx).await?;
            save_cursor_sqlx!(tx, &cursor.next_pass());
        });
        work.remove(&done);
        Ok(later)
    }

    /// Rows an earlier version staged in `import_staged` and did not place
    /// become one run per pass (their keys are in `import_keys` since
    /// migration 0009), in the order that version would have placed them.
    async fn adopt_staged(&self, work: &ImportWork) -> Result<()> {
        #[derive(sqlx::FromRow)]
        struct Staged {
            pass: i64,
            #[sqlx(flatten)]
            row: Row,
        }
        let at = to_millis(now());
        // Runs are in byte order (Rust's); PostgreSQL sorts text by the
        // database's collation unless told otherwise.
        let order = match self.db.backend() {
            crate::Backend::Sqlite => ADOPT_ORDER_SQLITE,
            crate::Backend::Postgres => ADOPT_ORDER_POSTGRES,
        };
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM import_staged)")
                .fetch_one(&mut *tx).await?;
            if !any {
                return Ok(());
            }
            // Rows behind the old cursor were placed. They are compared the
            // way that version compared them (the database's collation), and
            // the cursor then starts the pass afresh, in byte order.
            let cursor = cursor_sqlx!(tx);
            if let Some((kind, value, account, sent_at, key)) = &cursor.after {
                sqlx::query(ADOPT_PLACED)
                    .bind(cursor.pass).bind(kind).bind(value).bind(account).bind(sent_at).bind(key)
                    .execute(&mut *tx).await?;
                save_cursor_sqlx!(tx, &Cursor { pass: cursor.pass, after: None });
            }
            let mut runs: Vec<(Uuid, i64, i64, Value)> = Vec::new();
            {
                let mut rows = sqlx::query_as::<_, Staged>(sqlx::AssertSqlSafe(order))
                    .fetch(&mut *tx);
                let mut open: Option<(i64, runs::RunWriter)> = None;
                while let Some(s) = rows.try_next().await? {
                    if open.as_ref().is_none_or(|(pass, _)| *pass != s.pass) {
                        finish_adopted(open.take(), &mut runs)?;
                        open = Some((s.pass, work.run_writer(Uuid::now_v7())?));
                    }
                    if let Some((_, w)) = open.as_mut() {
                        w.push(&s.row)?;
                    }
                }
                finish_adopted(open, &mut runs)?;
            }
            if runs.is_empty() {
                return Ok(());
            }
            for (id, pass, n, refs) in &runs {
                sqlx::query(INSERT_RUN)
                    .bind(id).bind(pass).bind("").bind(n).bind(refs).bind(at)
                    .execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM import_staged").execute(&mut *tx).await?;
            tx.commit().await?;
            tracing::info!(runs = runs.len(), "staged rows of an earlier version became import runs");
        });
        Ok(())
    }
}

/// Syncs a run of adopted rows (of the pass it is paired with) and lists
/// it with its pass, number of rows and agent references.
fn finish_adopted(
    open: Option<(i64, runs::RunWriter)>,
    runs: &mut Vec<(Uuid, i64, i64, Value)>,
) -> Result<()> {
    if let Some((pass, w)) = open {
        let (id, n, refs) = w.finish()?;
        runs.push((id, pass, n, refs));
    }
    Ok(())
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
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM import_sort_runs)").fetch_one(p).await?))
    }

    /// The agent references of staged rows not placed yet (and of those of
    /// the pass being placed): the importer maps them to agents before
    /// placing, even when a resumed run staged nothing.
    pub async fn import_pending_agent_refs(&self) -> Result<Vec<String>> {
        let lists: Vec<Value> = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT agent_refs FROM import_sort_runs").fetch_all(p).await?);
        let mut refs = BTreeSet::new();
        for l in lists {
            let list: Vec<String> = serde_json::from_value(l)
                .map_err(|e| StoreError::Invalid(format!("import_sort_runs.agent_refs: {e}")))?;
            refs.extend(list);
        }
        Ok(refs.into_iter().collect())
    }
}
