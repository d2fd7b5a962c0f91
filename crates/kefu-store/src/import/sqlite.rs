//! Staging and placing on SQLite, each batch one closure on the writer
//! thread (`sqlite_writer`) with cached prepared statements: a batch used
//! to be a few thousand sqlx round trips between a Tokio task and sqlx's
//! worker thread, and those hops, not SQLite, took most of the time.
//!
//! The SQL is the one the sqlx (PostgreSQL) path runs, from `super`; only
//! `$n` becomes `?n` (`sqlite_hot::prepare`). Values are bound the way sqlx binds them: UUIDs as
//! 16-byte blobs, JSON as text, booleans as integers.

use super::plan::{self, Known, Plan, Tail};
use super::{
    FINISH_CONVERSATION, PENDING, PendingRow, PlaceCounts, PlaceOptions, RECALL_FIND, RECALL_SET,
    SAVE_PROGRESS, STAGE_ROW, StageCounts, TAIL, UPSERT_TAIL, insert_imported_conversation,
};
use crate::contacts::{CONTACT_BY_IDENTITY, INSERT_CONTACT, INSERT_IDENTITY};
use crate::conversations::INSERT_CONVERSATION_TAG;
use crate::messages::INSERT_MESSAGE;
use crate::sqlite_hot::{ensure_tags, prepare};
use crate::{Backend, Result, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

/// A staged message as written: the body already serialised.
pub(super) struct StageRow {
    pub key: String,
    pub customer_kind: String,
    pub customer_value: String,
    pub account: String,
    pub sent_at: i64,
    pub agent_ref: Option<String>,
    pub body: String,
}

/// The file's progress as written.
pub(super) struct ProgressRow {
    pub fingerprint: String,
    pub path: String,
    pub format: String,
    pub byte_offset: i64,
    pub line: i64,
    pub done: bool,
}

/// Stages `rows` and records the file's progress (one transaction: the
/// writer's).
pub(super) fn stage(
    conn: &Connection,
    rows: &[StageRow],
    progress: &ProgressRow,
    at: i64,
) -> Result<StageCounts> {
    let mut counts = StageCounts::default();
    let mut insert = prepare(conn, STAGE_ROW)?;
    for r in rows {
        let n = insert.execute(params![
            r.key,
            r.customer_kind,
            r.customer_value,
            r.account,
            r.sent_at,
            r.agent_ref,
            r.body
        ])?;
        counts.messages_staged += n as u64;
        counts.messages_already_staged += 1 - n as u64;
    }
    prepare(conn, SAVE_PROGRESS)?.execute(params![
        progress.fingerprint,
        progress.path,
        progress.format,
        progress.byte_offset,
        progress.line,
        progress.done,
        at
    ])?;
    Ok(counts)
}

/// Places up to `limit` staged rows; `None` when none were waiting.
pub(super) fn place(
    conn: &Connection,
    opts: &PlaceOptions,
    limit: usize,
    at: i64,
) -> Result<Option<PlaceCounts>> {
    let (rowids, rows) = pending(conn, limit)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let known = known(conn, &rows)?;
    let plan = plan::plan(opts, &rows, &known)?;
    let counts = write(conn, opts, plan, &rowids, at)?;
    Ok(Some(counts))
}

/// The rows to place, and where each is stored: marking a row placed by
/// its rowid skips a search of the key index for every message.
fn pending(conn: &Connection, limit: usize) -> Result<(Vec<i64>, Vec<PendingRow>)> {
    let sql = PENDING.replacen("SELECT key", "SELECT rowid, key", 1);
    let mut stmt = prepare(conn, &sql)?;
    let rows = stmt.query_map(params![limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            PendingRow {
                key: r.get(1)?,
                customer_kind: r.get(2)?,
                customer_value: r.get(3)?,
                account: r.get(4)?,
                sent_at: r.get(5)?,
                agent_ref: r.get(6)?,
                body: r.get(7)?,
            },
        ))
    })?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .unzip())
}

fn known<'r>(conn: &Connection, rows: &'r [PendingRow]) -> Result<Known<'r>> {
    let mut k = Known::default();
    let mut contact = prepare(conn, CONTACT_BY_IDENTITY)?;
    let mut tail = prepare(conn, TAIL)?;
    for group in plan::groups(rows) {
        let first = &group[0];
        let who = plan::customer(first);
        if !k.contacts.contains_key(&who) {
            let id: Option<Uuid> = contact
                .query_row(params![who.0, who.1], |r| r.get(0))
                .optional()?;
            if let Some(id) = id {
                k.contacts.insert(who, id);
            }
        }
        let t = tail
            .query_row(params![who.0, who.1, first.account], |r| {
                Ok(Tail {
                    conversation: r.get(0)?,
                    last_sent_at: r.get(1)?,
                    ended: r.get(2)?,
                    last_seq: r.get(3)?,
                })
            })
            .optional()?;
        if let Some(t) = t {
            k.tails.insert((who, first.account.as_str()), t);
        }
    }
    Ok(k)
}

/// `rowids[i]` is where the row of `p.messages[i]` is staged: the plan
/// places every row, in order.
fn write(
    conn: &Connection,
    opts: &PlaceOptions,
    p: Plan<'_>,
    rowids: &[i64],
    at: i64,
) -> Result<PlaceCounts> {
    if rowids.len() != p.messages.len() {
        return Err(StoreError::Invalid("a staged row was not placed".into()));
    }
    let mut counts = p.counts;
    let empty = serde_json::to_string(&kefu_core::NewContact::default().attributes)
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    for (id, (kind, value)) in &p.contacts {
        let none: Option<&str> = None;
        prepare(conn, INSERT_CONTACT)?
            .execute(params![id, none, none, none, none, none, empty, at])?;
        prepare(conn, INSERT_IDENTITY)?.execute(params![kind, value, id, at])?;
    }
    let tags = ensure_tags(conn, &opts.tags, at)?;
    {
        let mut insert = prepare(conn, insert_imported_conversation(Backend::Sqlite))?;
        let mut tag = prepare(conn, INSERT_CONVERSATION_TAG)?;
        for c in &p.new_conversations {
            insert.execute(params![
                c.id,
                c.inbox,
                c.contact,
                c.last_seq,
                c.last,
                c.first_response,
                c.created_at,
                at
            ])?;
            for t in &tags {
                tag.execute(params![c.id, t])?;
            }
        }
    }
    for c in &p.continued {
        prepare(conn, FINISH_CONVERSATION)?.execute(params![
            c.id,
            c.last_seq,
            c.last,
            c.first_response,
            at
        ])?;
    }
    {
        let mut insert = prepare(conn, INSERT_MESSAGE)?;
        let mut mark = prepare(
            conn,
            "UPDATE import_staged SET message_id = $2 WHERE rowid = $1",
        )?;
        let none: Option<&str> = None;
        for (m, rowid) in p.messages.iter().zip(rowids) {
            insert.execute(params![
                m.id,
                m.conversation,
                m.seq,
                m.direction.as_str(),
                m.sender.0.as_str(),
                m.sender.1,
                m.text,
                none,
                m.key,
                m.metadata,
                m.sent_at
            ])?;
            mark.execute(params![rowid, m.id])?;
        }
    }
    for m in p.messages.iter().filter(|m| !m.attachments.is_empty()) {
        let mut link = prepare(
            conn,
            "UPDATE attachments SET message_id = $1 WHERE message_id IS NULL AND id = $2",
        )?;
        for a in &m.attachments {
            link.execute(params![m.id, a])?;
        }
    }
    for key in &p.recall_in_db {
        let found: Option<(Uuid, String)> = prepare(conn, RECALL_FIND)?
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match found {
            Some((id, metadata)) => {
                let marked = plan::mark_recalled(&metadata)?;
                prepare(conn, RECALL_SET)?.execute(params![id, marked])?;
                counts.recalls_marked += 1;
            }
            None => counts.recalls_missing += 1,
        }
    }
    let mut tail = prepare(conn, UPSERT_TAIL)?;
    for t in &p.tails {
        tail.execute(params![
            t.customer.0,
            t.customer.1,
            t.account,
            t.conversation,
            t.last_sent_at,
            t.ended
        ])?;
    }
    Ok(counts)
}
