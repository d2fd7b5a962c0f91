//! The hottest writes on SQLite, as closures for the writer thread
//! (`sqlite_writer`): creating a conversation and appending a message.
//!
//! Each backend has one implementation of each: these on SQLite,
//! `conversations::create_conversation_pg` and `messages::append_message_pg`
//! on PostgreSQL. What a transaction decides is made once, for both, by
//! [`CreatePlan`], [`AppendPlan`], [`MessageInsert`] and [`ContactWay`];
//! the statement texts are the same constants. What is left here is only
//! the statements, and what differs between the two: SQLite has one
//! writer, so a resend is found before anything is written and the
//! conversation is read back inside the transaction. Values are bound the
//! way sqlx binds them: UUIDs as 16-byte blobs, JSON as text, booleans as
//! integers, times as milliseconds. The store tests run each backend's.

use crate::StoreError;
use crate::contacts::{
    ADD_IDENTITY, CONTACT_BY_IDENTITY, CONTACT_EXISTS, ContactWay, INSERT_CONTACT,
    INSERT_CONTACT_TAG, INSERT_IDENTITY,
};
use crate::conversations::{
    CONVERSATION_BY_ID, ConversationRow, CreatePlan, INBOX_SLA, INSERT_CONVERSATION_SQLITE,
    INSERT_CONVERSATION_TAG, Written, inbox_sla,
};
use crate::messages::{
    AppendPlan, BUMP_SEQ, BY_EXTERNAL_ID, INSERT_MESSAGE, LINK_ATTACHMENT, MessageInsert,
    NOT_ATTACHABLE, Outcome, STATUS_OF,
};
use crate::rows::{INSERT_TAG, TAG_ID};
use kefu_core::{Conversation, Identity, NewContact, NewConversation, NewMessage};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

type Result<T> = std::result::Result<T, StoreError>;

/// `$1` → `?1`: SQLite reads `$1` as a *named* parameter, numbered by first
/// appearance, which would bind `$12` before `$11` wrongly; `?1` is numbered.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
) -> Result<rusqlite::CachedStatement<'c>> {
    Ok(conn.prepare_cached(&numbered(sql))?)
}

pub(crate) fn json(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("metadata: {e}")))
}

pub(crate) fn create_conversation(
    conn: &Connection,
    new: &NewConversation,
    plan: CreatePlan,
) -> Result<Written> {
    let at = plan.at;
    let sla = inbox_sla(
        prepare(conn, INBOX_SLA)?
            .query_row(params![new.inbox_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?,
    )?;
    let contact_id = match ContactWay::of(new)? {
        ContactWay::Id(id) => {
            let n: i64 = prepare(conn, CONTACT_EXISTS)?.query_row(params![id], |r| r.get(0))?;
            if n == 0 {
                return Err(ContactWay::no_such_contact());
            }
            id
        }
        ContactWay::Identities(c) => match contact_by_identities(conn, &c.identities)? {
            Some(found) => {
                add_identities(conn, found, &c.identities, at)?;
                found
            }
            None => insert_contact(conn, c, at)?,
        },
    };
    let r = plan.row(new, contact_id, sla);
    let number: i64 = prepare(conn, INSERT_CONVERSATION_SQLITE)?.query_row(
        params![
            r.id,
            r.inbox_id,
            r.contact_id,
            r.subject,
            r.priority.as_str(),
            r.assignee_id,
            r.team_id,
            r.last_seq,
            r.at,
            r.first_response_due_at,
            r.resolution_due_at,
            r.first_response_at,
        ],
        |r| r.get(0),
    )?;
    for tag in ensure_tags(conn, &new.tags, at)? {
        prepare(conn, INSERT_CONVERSATION_TAG)?.execute(params![plan.id, tag])?;
    }
    if let Some(m) = plan.first_message(new, contact_id) {
        insert_message(conn, &m)?;
    }
    Ok(Written {
        contact_id,
        number,
        sla,
    })
}

/// Appends `m` as `plan` says. With one writer there is no race to lose,
/// so a resend is found before anything is written; an error rolls back
/// what was written (the writer's savepoint).
pub(crate) fn append_message(
    conn: &Connection,
    plan: AppendPlan,
    m: &NewMessage,
) -> Result<Outcome> {
    if let Some(key) = AppendPlan::resend_key(m) {
        let prev: Option<Uuid> = prepare(conn, BY_EXTERNAL_ID)?
            .query_row(params![plan.conversation_id, key], |r| r.get(0))
            .optional()?;
        if let Some(prev) = prev {
            return Ok(Outcome::Duplicate(prev));
        }
    }
    let before: Option<String> = prepare(conn, STATUS_OF)?
        .query_row(params![plan.conversation_id], |r| r.get(0))
        .optional()?;
    let row: Option<(i64, Uuid, Option<Uuid>)> = prepare(conn, BUMP_SEQ)?
        .query_row(
            params![plan.conversation_id, plan.at, plan.outgoing, plan.incoming],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let (seq, contact) = AppendPlan::bumped(row)?;
    insert_message(conn, &plan.message(m, seq, contact))?;
    Ok(Outcome::Created {
        reopened: plan.reopens(before.as_deref()),
        conversation: Some(Box::new(read_conversation(conn, plan.conversation_id)?)),
    })
}

fn read_conversation(conn: &Connection, id: Uuid) -> Result<Conversation> {
    let row = prepare(conn, CONVERSATION_BY_ID)?
        .query_row(params![id], ConversationRow::from_rusqlite)?;
    let mut tags = Vec::new();
    let mut stmt = prepare(
        conn,
        "SELECT t.name FROM conversation_tags ct JOIN tags t ON t.id = ct.tag_id
         WHERE ct.conversation_id = $1 ORDER BY t.name",
    )?;
    for name in stmt.query_map(params![id], |r| r.get::<_, String>(0))? {
        tags.push(name?);
    }
    row.into_conversation(tags)
}

/// Writes a [`MessageInsert`] and links its attachments, one statement
/// each (`insert_message!` is the sqlx one, with an `IN` list).
fn insert_message(conn: &Connection, row: &MessageInsert<'_>) -> Result<()> {
    let m = row.message;
    prepare(conn, INSERT_MESSAGE)?.execute(params![
        row.id,
        row.conversation_id,
        row.seq,
        m.direction.as_str(),
        row.sender.0.as_str(),
        row.sender.1,
        m.text,
        m.html,
        m.external_id,
        json(&m.metadata)?,
        row.created_at,
    ])?;
    let (uploader, server_files) = row.attach_as;
    for attachment in &m.attachment_ids {
        let linked = prepare(conn, LINK_ATTACHMENT)?.execute(params![
            row.id,
            uploader,
            server_files,
            attachment
        ])?;
        if linked != 1 {
            return Err(StoreError::Invalid(NOT_ATTACHABLE.into()));
        }
    }
    Ok(())
}

/// The contact holding the first of `identities` that anyone holds (see
/// [`ContactWay::Identities`]).
pub(crate) fn contact_by_identities(
    conn: &Connection,
    identities: &[Identity],
) -> Result<Option<Uuid>> {
    let mut find = prepare(conn, CONTACT_BY_IDENTITY)?;
    for i in identities {
        let hit: Option<Uuid> = find
            .query_row(params![i.kind, i.value], |r| r.get(0))
            .optional()?;
        if hit.is_some() {
            return Ok(hit);
        }
    }
    Ok(None)
}

/// Gives contact `id` the identities it lacks ([`ADD_IDENTITY`]).
pub(crate) fn add_identities<'i>(
    conn: &Connection,
    id: Uuid,
    identities: impl IntoIterator<Item = &'i Identity>,
    at: i64,
) -> Result<()> {
    let mut add = prepare(conn, ADD_IDENTITY)?;
    for i in identities {
        add.execute(params![i.kind, i.value, id, at])?;
    }
    Ok(())
}

/// Inserts a validated contact with its identities and tags; its id.
pub(crate) fn insert_contact(conn: &Connection, new: &NewContact, at: i64) -> Result<Uuid> {
    let id = Uuid::now_v7();
    prepare(conn, INSERT_CONTACT)?.execute(params![
        id,
        new.name,
        new.email,
        new.phone,
        new.avatar_url,
        new.language,
        json(&new.attributes)?,
        at,
    ])?;
    for i in &new.identities {
        prepare(conn, INSERT_IDENTITY)?.execute(params![i.kind, i.value, id, at])?;
    }
    for tag in ensure_tags(conn, &new.tags, at)? {
        prepare(conn, INSERT_CONTACT_TAG)?.execute(params![id, tag])?;
    }
    Ok(id)
}

/// The ids of the named tags, creating missing ones.
pub(crate) fn ensure_tags(conn: &Connection, names: &[String], at: i64) -> Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        prepare(conn, INSERT_TAG)?.execute(params![Uuid::now_v7(), name, at])?;
        ids.push(prepare(conn, TAG_ID)?.query_row(params![name], |r| r.get(0))?);
    }
    Ok(ids)
}
