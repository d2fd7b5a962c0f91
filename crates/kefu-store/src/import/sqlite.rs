//! Staging and placing on SQLite, each batch one closure on the writer
//! thread (`sqlite_writer`) with cached prepared statements: a batch used
//! to be a few thousand sqlx round trips between a Tokio task and sqlx's
//! worker thread, and those hops, not SQLite, took most of the time.
//!
//! This is SQLite's only staging and placing; PostgreSQL's is in
//! `postgres.rs`. The statement texts (`super`), the placing plan (`plan`)
//! and the contact decisions (`upsert`) are the same for both; only `$n`
//! becomes `?n` (`sqlite_hot::prepare`). Values are bound the way sqlx
//! binds them: UUIDs as 16-byte blobs, JSON as text, booleans as integers.

use super::plan::{self, Known, Plan, Tail};
use super::runs::Row;
use super::upsert::{COMPLETE_CONTACT, CONTACT_ATTRIBUTES, IDS_OF_KIND, Upsert};
use super::{
    Cursor, CursorRow, FINISH_CONVERSATION, FileProgress, INSERT_IMPORTED_CONVERSATION_SQLITE,
    INSERT_KEY, INSERT_RUN, ImportContact, ImportWork, LINK_IMPORTED_ATTACHMENT, PLACING,
    PlaceCounts, PlaceOptions, RECALL_FIND, RECALL_SET, RunBatch, SAVE_CURSOR, SAVE_PROGRESS,
    StageCounts, TAIL, UPSERT_TAIL, cursor_of, progress_columns,
};
use crate::contacts::{CONTACT_BY_IDENTITY, INSERT_CONTACT, INSERT_CONTACT_TAG, INSERT_IDENTITY};
use crate::conversations::INSERT_CONVERSATION_TAG;
use crate::messages::INSERT_MESSAGE;
use crate::sqlite_hot::{
    add_identities, contact_by_identities, ensure_tags, insert_contact, json, prepare,
};
use crate::{Result, StoreError};
use kefu_core::Identity;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::collections::HashSet;
use uuid::Uuid;

/// Upserts `contacts`, records a batch's keys and run (already written in
/// `work`) and the file's progress (one transaction: the writer's).
pub(super) fn stage(
    conn: &Connection,
    work: &ImportWork,
    source: &str,
    contacts: &[ImportContact],
    batch: &RunBatch,
    progress: &FileProgress,
    at: i64,
) -> Result<StageCounts> {
    let mut counts = StageCounts::default();
    for c in contacts {
        upsert_contact(conn, c, at, &mut counts)?;
    }
    let pass = cursor(conn)?.staging_pass();
    let mut insert = prepare(conn, INSERT_KEY)?;
    let mut old = HashSet::new();
    for key in &batch.keys {
        if insert.execute(params![key])? == 0 {
            old.insert(key.as_str());
        }
    }
    if let Some((n, refs)) = batch.finish(work, &old)? {
        prepare(conn, INSERT_RUN)?.execute(params![
            batch.run,
            pass,
            source,
            n,
            refs.to_string(),
            at
        ])?;
    }
    let (offset, line) = progress_columns(progress);
    prepare(conn, SAVE_PROGRESS)?.execute(params![
        progress.fingerprint,
        progress.path,
        progress.format,
        offset,
        line,
        progress.done,
        at
    ])?;
    Ok(batch.counts(old.len(), counts))
}

/// Finds or inserts the contact of record `c` (see `upsert`).
fn upsert_contact(
    conn: &Connection,
    c: &ImportContact,
    at: i64,
    counts: &mut StageCounts,
) -> Result<()> {
    let mut u = Upsert::new(c);
    let found = match contact_by_identities(conn, &c.identities)? {
        Some(id) => Some(id),
        None => by_weak_identities(conn, &mut u, counts)?,
    };
    match found {
        None => {
            let id = insert_contact(conn, &u.new_contact(), at)?;
            add_identities(conn, id, &c.weak_identities, at)?;
            u.inserted(id, counts);
        }
        Some(id) => {
            let old: String =
                prepare(conn, CONTACT_ATTRIBUTES)?.query_row(params![id], |r| r.get(0))?;
            let old: Value = serde_json::from_str(&old)
                .map_err(|e| StoreError::Invalid(format!("attributes of {id}: {e}")))?;
            prepare(conn, COMPLETE_CONTACT)?.execute(params![
                id,
                c.name,
                c.phone,
                c.email,
                c.avatar_url,
                json(&u.attributes(old))?,
                at
            ])?;
            add_identities(conn, id, u.identities(), at)?;
            for tag in ensure_tags(conn, &c.tags, at)? {
                prepare(conn, INSERT_CONTACT_TAG)?.execute(params![id, tag])?;
            }
            u.updated(counts);
        }
    }
    Ok(())
}

/// The contact a weak identity of the record finds and may join
/// ([`Upsert::weak_hit`]).
fn by_weak_identities(
    conn: &Connection,
    u: &mut Upsert<'_>,
    counts: &mut StageCounts,
) -> Result<Option<Uuid>> {
    let c = u.c;
    for w in &c.weak_identities {
        let hit: Option<Uuid> = prepare(conn, CONTACT_BY_IDENTITY)?
            .query_row(params![w.kind, w.value], |r| r.get(0))
            .optional()?;
        let Some(hit) = hit else { continue };
        let mut clash = Vec::new();
        let mut ids = prepare(conn, IDS_OF_KIND)?;
        for kind in u.kinds() {
            for value in ids.query_map(params![hit, kind], |r| r.get::<_, String>(0))? {
                clash.push(Identity {
                    kind: kind.to_string(),
                    value: value?,
                });
            }
        }
        if u.weak_hit(w, hit, clash, counts) {
            return Ok(Some(hit));
        }
    }
    Ok(None)
}

/// Places `rows`, the next ones in placing order, and saves the cursor
/// `next` (past them).
pub(super) fn place(
    conn: &Connection,
    opts: &PlaceOptions,
    rows: &[Row],
    next: &Cursor,
    at: i64,
) -> Result<PlaceCounts> {
    // Twice the writer's usual cache: four conversation indexes take rows
    // in random order. It stays for the (importing) process's later writes.
    conn.pragma_update(None, "cache_size", -65_536)?;
    let known = known(conn, rows)?;
    let plan = plan::plan(opts, rows, &known)?;
    let counts = write(conn, opts, plan, at)?;
    save_cursor(conn, next)?;
    Ok(counts)
}

fn cursor(conn: &Connection) -> Result<Cursor> {
    let row: CursorRow = prepare(conn, PLACING)?.query_row([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })?;
    Ok(cursor_of(row))
}

fn save_cursor(conn: &Connection, c: &Cursor) -> Result<()> {
    let (kind, value, account, sent_at, key) = c.columns();
    prepare(conn, SAVE_CURSOR)?.execute(params![c.pass, kind, value, account, sent_at, key])?;
    Ok(())
}

// map_entry: a customer is inserted only when the database knows them, so
// the entry API's vacant slot would often stay unfilled.
#[allow(clippy::map_entry)]
fn known<'r>(conn: &Connection, rows: &'r [Row]) -> Result<Known<'r>> {
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

fn write(conn: &Connection, opts: &PlaceOptions, p: Plan<'_>, at: i64) -> Result<PlaceCounts> {
    let mut counts = p.counts;
    let empty = json(&kefu_core::NewContact::default().attributes)?;
    for (id, (kind, value)) in &p.contacts {
        let none: Option<&str> = None;
        prepare(conn, INSERT_CONTACT)?
            .execute(params![id, none, none, none, none, none, empty, at])?;
        prepare(conn, INSERT_IDENTITY)?.execute(params![kind, value, id, at])?;
    }
    let tags = ensure_tags(conn, &opts.tags, at)?;
    {
        let mut insert = prepare(conn, INSERT_IMPORTED_CONVERSATION_SQLITE)?;
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
        let none: Option<&str> = None;
        for m in &p.messages {
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
        }
    }
    for m in p.messages.iter().filter(|m| !m.attachments.is_empty()) {
        let mut link = prepare(conn, LINK_IMPORTED_ATTACHMENT)?;
        for a in &m.attachments {
            link.execute(params![m.id, a])?;
        }
    }
    for (key, contact) in &p.recall_in_db {
        let found: Option<(Uuid, String)> = prepare(conn, RECALL_FIND)?
            .query_row(params![contact, key], |r| Ok((r.get(0)?, r.get(1)?)))
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
