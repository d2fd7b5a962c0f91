//! The hottest writes on SQLite, as closures for the writer thread
//! (`sqlite_writer`): creating a conversation and appending a message.
//!
//! They run the same statements as the sqlx versions in `conversations` and
//! `messages` (the SQL constants are shared; only `$n` becomes `?n`), bound
//! the way sqlx binds them: UUIDs as 16-byte blobs, JSON as text, booleans as
//! integers, times as milliseconds. Any change to those transactions is made
//! in both places, and the store tests run each on its backend.

use crate::StoreError;
use crate::contacts::{
    ADD_IDENTITY, CONTACT_BY_IDENTITY, INSERT_CONTACT, INSERT_CONTACT_TAG, INSERT_IDENTITY,
};
use crate::conversations::{
    COLUMNS, ConversationRow, CreatePlan, INBOX_SLA, INSERT_CONVERSATION_TAG, Written, due,
    first_message_effects, insert_conversation_sql,
};
use crate::messages::{
    BUMP_SEQ, BY_EXTERNAL_ID, INSERT_MESSAGE, LINK_ATTACHMENTS, NOT_ATTACHABLE, STATUS_OF,
    attach_as, sender_of,
};
use crate::rows::{INSERT_TAG, TAG_ID};
use kefu_core::time::to_millis;
use kefu_core::{Conversation, Direction, NewContact, NewConversation, NewMessage, SenderKind};
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

fn json(v: &serde_json::Value) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("metadata: {e}")))
}

pub(crate) fn create_conversation(
    conn: &Connection,
    new: &NewConversation,
    plan: CreatePlan,
) -> Result<Written> {
    let at = plan.at;
    let sla: (Option<i64>, Option<i64>) = prepare(conn, INBOX_SLA)?
        .query_row(params![new.inbox_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| StoreError::Invalid("inbox_id: no such inbox".into()))?;
    let contact_id = match (&new.contact_id, &new.contact) {
        (Some(cid), _) => {
            let n: i64 = prepare(conn, "SELECT COUNT(*) FROM contacts WHERE id = $1")?
                .query_row(params![cid], |r| r.get(0))?;
            if n == 0 {
                return Err(StoreError::Invalid("contact_id: no such contact".into()));
            }
            *cid
        }
        (None, Some(c)) => match contact_by_identities(conn, c)? {
            Some(found) => {
                for i in &c.identities {
                    prepare(conn, ADD_IDENTITY)?.execute(params![i.kind, i.value, found, at])?;
                }
                found
            }
            None => insert_contact(conn, c, at)?,
        },
        (None, None) => return Err(StoreError::Invalid("contact_id: required".into())),
    };
    let (last_seq, first_response_at) = first_message_effects(new, at);
    let number: i64 = prepare(conn, insert_conversation_sql(crate::Backend::Sqlite))?.query_row(
        params![
            plan.id,
            new.inbox_id,
            contact_id,
            new.subject,
            new.priority.as_str(),
            new.assignee_id,
            new.team_id,
            last_seq,
            at,
            due(at, sla.0),
            due(at, sla.1),
            first_response_at,
        ],
        |r| r.get(0),
    )?;
    for tag in ensure_tags(conn, &new.tags, at)? {
        prepare(conn, INSERT_CONVERSATION_TAG)?.execute(params![plan.id, tag])?;
    }
    let mut sender = (SenderKind::System, None);
    if let Some(m) = &new.message {
        sender = sender_of(m, contact_id, plan.agent);
        let attach = attach_as(plan.agent, contact_id);
        insert_message(conn, plan.message_id, plan.id, 1, m, sender, attach, at)?;
    }
    Ok(Written {
        contact_id,
        number,
        sla,
        sender,
    })
}

/// What an append decided.
pub(crate) enum Appended {
    /// `reopened`: an incoming message opened a conversation that was not
    /// open. The conversation as it is after the append, read in the same
    /// transaction (no second trip for the answer).
    Created {
        reopened: bool,
        conversation: Box<Conversation>,
    },
    /// A message with the same external id was already there.
    Duplicate(Uuid),
}

/// Appends `m` to a conversation as message `id`. With one writer there is
/// no race to lose, so a resend is found before anything is written.
pub(crate) fn append_message(
    conn: &Connection,
    conversation_id: Uuid,
    id: Uuid,
    m: &NewMessage,
    agent: Option<Uuid>,
    at: i64,
) -> Result<Appended> {
    if let Some(x) = &m.external_id {
        let prev: Option<Uuid> = prepare(conn, BY_EXTERNAL_ID)?
            .query_row(params![conversation_id, x], |r| r.get(0))
            .optional()?;
        if let Some(prev) = prev {
            return Ok(Appended::Duplicate(prev));
        }
    }
    let outgoing = m.direction == Direction::Outgoing;
    let incoming = m.direction == Direction::Incoming;
    let before: Option<String> = prepare(conn, STATUS_OF)?
        .query_row(params![conversation_id], |r| r.get(0))
        .optional()?;
    let row: Option<(i64, Uuid, Option<Uuid>)> = prepare(conn, BUMP_SEQ)?
        .query_row(params![conversation_id, at, outgoing, incoming], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let (seq, contact, merged_into) = row.ok_or(StoreError::NotFound)?;
    if let Some(target) = merged_into {
        // The writer rolls the bump back with this error.
        return Err(StoreError::Invalid(format!(
            "the conversation was merged into {target}; write there"
        )));
    }
    let sender = sender_of(m, contact, agent);
    insert_message(
        conn,
        id,
        conversation_id,
        seq,
        m,
        sender,
        attach_as(agent, contact),
        at,
    )?;
    Ok(Appended::Created {
        reopened: incoming && before.is_some_and(|s| s != "open"),
        conversation: Box::new(read_conversation(conn, conversation_id)?),
    })
}

fn read_conversation(conn: &Connection, id: Uuid) -> Result<Conversation> {
    let sql = format!("SELECT {COLUMNS} FROM conversations c WHERE c.id = $1");
    let row = prepare(conn, &sql)?.query_row(params![id], ConversationRow::from_rusqlite)?;
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

// The statement's own values, one by one, as `insert_message!` takes them.
#[allow(clippy::too_many_arguments)]
fn insert_message(
    conn: &Connection,
    id: Uuid,
    conversation_id: Uuid,
    seq: i64,
    m: &NewMessage,
    (kind, sender): (SenderKind, Option<Uuid>),
    (uploader, server_files): (Uuid, i64),
    at: i64,
) -> Result<()> {
    let created_at = m.created_at.map(to_millis).unwrap_or(at);
    prepare(conn, INSERT_MESSAGE)?.execute(params![
        id,
        conversation_id,
        seq,
        m.direction.as_str(),
        kind.as_str(),
        sender,
        m.text,
        m.html,
        m.external_id,
        json(&m.metadata)?,
        created_at,
    ])?;
    for attachment in &m.attachment_ids {
        let linked = prepare(conn, &format!("{LINK_ATTACHMENTS}= $4"))?.execute(params![
            id,
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

fn contact_by_identities(conn: &Connection, c: &NewContact) -> Result<Option<Uuid>> {
    let mut find = prepare(conn, CONTACT_BY_IDENTITY)?;
    for i in &c.identities {
        let hit: Option<Uuid> = find
            .query_row(params![i.kind, i.value], |r| r.get(0))
            .optional()?;
        if hit.is_some() {
            return Ok(hit);
        }
    }
    Ok(None)
}

fn insert_contact(conn: &Connection, new: &NewContact, at: i64) -> Result<Uuid> {
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

pub(crate) fn ensure_tags(conn: &Connection, names: &[String], at: i64) -> Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        prepare(conn, INSERT_TAG)?.execute(params![Uuid::now_v7(), name, at])?;
        ids.push(prepare(conn, TAG_ID)?.query_row(params![name], |r| r.get(0))?);
    }
    Ok(ids)
}
