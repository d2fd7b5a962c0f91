//! Staging and placing on PostgreSQL, through sqlx. Every statement is a
//! network round trip, so keys, messages, conversation tags and tails go
//! in multi-row statements of [`CHUNK`] rows. SQLite's are in `sqlite.rs`;
//! the statement texts (`super`), the placing plan (`plan`) and the
//! contact decisions (`upsert`) are the same for both.

use super::plan::{self, Known, Plan, Tail};
use super::runs::Row;
use super::upsert::{COMPLETE_CONTACT, CONTACT_ATTRIBUTES, IDS_OF_KIND, Upsert};
use super::{
    CHUNK, Cursor, CursorRow, FINISH_CONVERSATION, FileProgress, INSERT_IMPORTED_CONVERSATION_PG,
    INSERT_KEYS, INSERT_RUN, ImportContact, ImportWork, LINK_IMPORTED, ON_KEY_CONFLICT,
    ON_TAIL_CONFLICT, PLACING, PlaceCounts, PlaceOptions, RECALL_FIND, RECALL_SET, RunBatch,
    SAVE_CURSOR, SAVE_PROGRESS, StageCounts, TAIL, UPSERT_TAILS, cursor_of, progress_columns,
};
use crate::contacts::{
    CONTACT_BY_IDENTITY, INSERT_CONTACT, INSERT_CONTACT_TAG, INSERT_IDENTITY, add_identities_pg,
    contact_by_identities_pg,
};
use crate::conversations::INSERT_CONVERSATION_TAGS;
use crate::messages::INSERT_MESSAGES;
use crate::rows::{Arg, Sql};
use crate::{Result, StoreError};
use kefu_core::{Identity, NewContact};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::HashSet;
use uuid::Uuid;

/// Upserts `contacts`, records a batch's keys and run (already written in
/// `work`) and the file's progress, in one transaction.
pub(super) async fn stage(
    pool: &PgPool,
    work: &ImportWork,
    source: &str,
    contacts: &[ImportContact],
    batch: &RunBatch,
    progress: &FileProgress,
    at: i64,
) -> Result<StageCounts> {
    let mut counts = StageCounts::default();
    let mut tx = pool.begin().await?;
    for c in contacts {
        upsert_contact(&mut tx, c, at, &mut counts).await?;
    }
    let pass = cursor_sqlx!(tx).staging_pass();
    let mut old: HashSet<&str> = HashSet::new();
    for chunk in batch.keys.chunks(CHUNK) {
        let mut sql = Sql::new(INSERT_KEYS);
        for (i, k) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Arg::Text(k.clone())).push(")");
        }
        sql.push(ON_KEY_CONFLICT).push(" RETURNING key");
        let new: HashSet<String> = bind_args!(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.text.as_str())),
            sql.args
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        old.extend(
            chunk
                .iter()
                .filter(|k| !new.contains(*k))
                .map(String::as_str),
        );
    }
    if let Some((n, refs)) = batch.finish(work, &old)? {
        sqlx::query(INSERT_RUN)
            .bind(batch.run)
            .bind(pass)
            .bind(source)
            .bind(n)
            .bind(&refs)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    let counts = batch.counts(old.len(), counts);
    let (offset, line) = progress_columns(progress);
    sqlx::query(SAVE_PROGRESS)
        .bind(&progress.fingerprint)
        .bind(&progress.path)
        .bind(&progress.format)
        .bind(offset)
        .bind(line)
        .bind(progress.done)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(counts)
}

/// Finds or inserts the contact of record `c` (see `upsert`).
async fn upsert_contact(
    tx: &mut PgConnection,
    c: &ImportContact,
    at: i64,
    counts: &mut StageCounts,
) -> Result<()> {
    let mut u = Upsert::new(c);
    let found = match contact_by_identities_pg(tx, &c.identities).await? {
        Some(id) => Some(id),
        None => by_weak_identities(tx, &mut u, counts).await?,
    };
    match found {
        None => {
            let new = u.new_contact();
            let id = insert_contact!(tx, &new, at);
            add_identities_pg(tx, id, &c.weak_identities, at).await?;
            u.inserted(id, counts);
        }
        Some(id) => {
            let old: Value = sqlx::query_scalar(CONTACT_ATTRIBUTES)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(COMPLETE_CONTACT)
                .bind(id)
                .bind(&c.name)
                .bind(&c.phone)
                .bind(&c.email)
                .bind(&c.avatar_url)
                .bind(u.attributes(old))
                .bind(at)
                .execute(&mut *tx)
                .await?;
            add_identities_pg(tx, id, u.identities(), at).await?;
            for tag in ensure_tags!(tx, &c.tags, at) {
                sqlx::query(INSERT_CONTACT_TAG)
                    .bind(id)
                    .bind(tag)
                    .execute(&mut *tx)
                    .await?;
            }
            u.updated(counts);
        }
    }
    Ok(())
}

/// The contact a weak identity of the record finds and may join
/// ([`Upsert::weak_hit`]).
async fn by_weak_identities(
    tx: &mut PgConnection,
    u: &mut Upsert<'_>,
    counts: &mut StageCounts,
) -> Result<Option<Uuid>> {
    let c = u.c;
    for w in &c.weak_identities {
        let hit: Option<Uuid> = sqlx::query_scalar(CONTACT_BY_IDENTITY)
            .bind(&w.kind)
            .bind(&w.value)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(hit) = hit else { continue };
        let mut clash = Vec::new();
        for kind in u.kinds() {
            let values: Vec<String> = sqlx::query_scalar(IDS_OF_KIND)
                .bind(hit)
                .bind(kind)
                .fetch_all(&mut *tx)
                .await?;
            clash.extend(values.into_iter().map(|value| Identity {
                kind: kind.to_string(),
                value,
            }));
        }
        if u.weak_hit(w, hit, clash, counts) {
            return Ok(Some(hit));
        }
    }
    Ok(None)
}

/// Places `rows`, the next ones in placing order, and saves the cursor
/// `next` (past them), in one transaction.
pub(super) async fn place(
    pool: &PgPool,
    opts: &PlaceOptions,
    rows: &[Row],
    next: &Cursor,
    at: i64,
) -> Result<PlaceCounts> {
    let mut tx = pool.begin().await?;
    let known = known(&mut tx, rows).await?;
    let plan = plan::plan(opts, rows, &known)?;
    let counts = write(&mut tx, opts, plan, at).await?;
    save_cursor_sqlx!(tx, next);
    tx.commit().await?;
    Ok(counts)
}

/// What the database knows of the batch's customers.
// map_entry: as in `sqlite::known`, a customer is inserted only when the
// database knows them.
#[allow(clippy::map_entry)]
async fn known<'r>(tx: &mut PgConnection, rows: &'r [Row]) -> Result<Known<'r>> {
    let mut k = Known::default();
    for group in plan::groups(rows) {
        let first = &group[0];
        let who = plan::customer(first);
        if !k.contacts.contains_key(&who) {
            let id: Option<Uuid> = sqlx::query_scalar(CONTACT_BY_IDENTITY)
                .bind(who.0)
                .bind(who.1)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = id {
                k.contacts.insert(who, id);
            }
        }
        let t: Option<(Uuid, i64, bool, i64)> = sqlx::query_as(TAIL)
            .bind(who.0)
            .bind(who.1)
            .bind(&first.account)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((conversation, last_sent_at, ended, last_seq)) = t {
            k.tails.insert(
                (who, first.account.as_str()),
                Tail {
                    conversation,
                    last_sent_at,
                    ended,
                    last_seq,
                },
            );
        }
    }
    Ok(k)
}

/// Writes a plan, in multi-row statements where rows are many.
async fn write(
    tx: &mut PgConnection,
    opts: &PlaceOptions,
    p: Plan<'_>,
    at: i64,
) -> Result<PlaceCounts> {
    let mut counts = p.counts;
    let empty = NewContact::default().attributes;
    for (id, (kind, value)) in &p.contacts {
        let none: Option<&str> = None;
        sqlx::query(INSERT_CONTACT)
            .bind(id)
            .bind(none)
            .bind(none)
            .bind(none)
            .bind(none)
            .bind(none)
            .bind(&empty)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(INSERT_IDENTITY)
            .bind(*kind)
            .bind(*value)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    let tags = ensure_tags!(tx, &opts.tags, at);
    for c in &p.new_conversations {
        sqlx::query(INSERT_IMPORTED_CONVERSATION_PG)
            .bind(c.id)
            .bind(c.inbox)
            .bind(c.contact)
            .bind(c.last_seq)
            .bind(c.last)
            .bind(c.first_response)
            .bind(c.created_at)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    for chunk in p.new_conversations.chunks(CHUNK) {
        if tags.is_empty() {
            break;
        }
        let mut sql = Sql::new(INSERT_CONVERSATION_TAGS);
        for (i, c) in chunk.iter().enumerate() {
            for (j, t) in tags.iter().enumerate() {
                sql.push(if i + j == 0 { "(" } else { ", (" });
                sql.bind(Arg::Uuid(c.id))
                    .push(", ")
                    .bind(Arg::Uuid(*t))
                    .push(")");
            }
        }
        sql.push(" ON CONFLICT DO NOTHING");
        run_sql!(tx, sql);
    }
    for c in &p.continued {
        sqlx::query(FINISH_CONVERSATION)
            .bind(c.id)
            .bind(c.last_seq)
            .bind(c.last)
            .bind(c.first_response)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    for chunk in p.messages.chunks(CHUNK) {
        run_sql!(tx, message_sql(chunk)?);
    }
    for m in p.messages.iter().filter(|m| !m.attachments.is_empty()) {
        let mut sql = Sql::new(LINK_IMPORTED);
        sql.args.push(Arg::Uuid(m.id));
        sql.push("IN ").bind_list(&m.attachments);
        run_sql!(tx, sql);
    }
    for (key, contact) in &p.recall_in_db {
        let found: Option<(Uuid, Value)> = sqlx::query_as(RECALL_FIND)
            .bind(contact)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        match found {
            Some((id, mut metadata)) => {
                plan::mark_recalled_in(&mut metadata);
                sqlx::query(RECALL_SET)
                    .bind(id)
                    .bind(&metadata)
                    .execute(&mut *tx)
                    .await?;
                counts.recalls_marked += 1;
            }
            None => counts.recalls_missing += 1,
        }
    }
    for chunk in p.tails.chunks(CHUNK) {
        let mut sql = Sql::new(UPSERT_TAILS);
        for (i, t) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.bind(Arg::Text(t.customer.0.into())).push(", ");
            sql.bind(Arg::Text(t.customer.1.into())).push(", ");
            sql.bind(Arg::Text(t.account.into())).push(", ");
            sql.bind(Arg::Uuid(t.conversation)).push(", ");
            sql.bind(Arg::I64(t.last_sent_at)).push(", ");
            sql.push(if t.ended { "TRUE)" } else { "FALSE)" });
        }
        sql.push(ON_TAIL_CONFLICT);
        run_sql!(tx, sql);
    }
    Ok(counts)
}

/// A chunk of planned messages as one multi-row INSERT.
fn message_sql(chunk: &[plan::Msg<'_>]) -> Result<Sql> {
    let mut m = Sql::new(INSERT_MESSAGES);
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
