//! Placing decided in memory: a batch of staged rows (in order of customer,
//! account, time) plus what the database knows of their customers and
//! tails becomes a [`Plan`] of rows to write. Both backends write the same
//! plan — SQLite statement by statement on its writer thread, PostgreSQL in
//! multi-row statements — so the rules live here once.
//!
//! A conversation is inserted once, with its final counters and status,
//! instead of inserted open and then updated; only a conversation continued
//! from an earlier batch (its tail) is updated.

use super::runs::Row;
use super::{PlaceCounts, PlaceOptions};
use crate::{Result, StoreError};
use kefu_core::{Direction, SenderKind};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A customer as staged rows name it: identity kind and value.
pub(super) type Customer<'r> = (&'r str, &'r str);

/// Where a customer's history in an account stood before this batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tail {
    pub conversation: Uuid,
    pub last_sent_at: i64,
    pub ended: bool,
    pub last_seq: i64,
}

/// What the database knows before placing a batch.
#[derive(Default)]
pub(super) struct Known<'r> {
    pub contacts: HashMap<Customer<'r>, Uuid>,
    pub tails: HashMap<(Customer<'r>, &'r str), Tail>,
}

/// A conversation as the batch leaves it. New ones are inserted with these
/// values (resolved, created at their first message); continued ones get
/// them as an update.
#[derive(Debug, Clone)]
pub(super) struct Conv {
    pub id: Uuid,
    pub contact: Uuid,
    pub inbox: Uuid,
    pub created_at: i64,
    pub last_seq: i64,
    pub last: i64,
    pub first_response: Option<i64>,
    ended: bool,
}

#[derive(Debug)]
pub(super) struct Msg<'r> {
    pub id: Uuid,
    pub conversation: Uuid,
    pub seq: i64,
    pub key: &'r str,
    pub direction: Direction,
    pub sender: (SenderKind, Option<Uuid>),
    pub text: Cow<'r, str>,
    /// The metadata as staged (JSON text), written as it is.
    pub metadata: Cow<'r, str>,
    pub sent_at: i64,
    pub attachments: Vec<Uuid>,
}

/// Where a customer's history in an account stands after the batch.
pub(super) struct TailRow<'r> {
    pub customer: Customer<'r>,
    pub account: &'r str,
    pub conversation: Uuid,
    pub last_sent_at: i64,
    pub ended: bool,
}

#[derive(Default)]
pub(super) struct Plan<'r> {
    /// Contacts to create, each with its one identity.
    pub contacts: Vec<(Uuid, Customer<'r>)>,
    pub new_conversations: Vec<Conv>,
    pub continued: Vec<Conv>,
    pub messages: Vec<Msg<'r>>,
    /// Recalls of messages placed by earlier batches, by key and contact:
    /// marked in the database (and counted) by the writer.
    pub recall_in_db: Vec<(String, Uuid)>,
    pub tails: Vec<TailRow<'r>>,
    pub counts: PlaceCounts,
}

/// A staged body read without copying its metadata.
#[derive(Deserialize)]
struct BodyRef<'a> {
    direction: Direction,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(default)]
    recall_of: Option<String>,
    #[serde(default)]
    ends_session: bool,
    #[serde(default)]
    attachment_ids: Vec<Uuid>,
}

/// The groups of a batch: rows of one customer and account, in order.
pub(super) fn groups(rows: &[Row]) -> impl Iterator<Item = &[Row]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let n = rest
            .iter()
            .take_while(|r| {
                r.customer_kind == first.customer_kind
                    && r.customer_value == first.customer_value
                    && r.account == first.account
            })
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        Some(group)
    })
}

pub(super) fn customer(r: &Row) -> Customer<'_> {
    (&r.customer_kind, &r.customer_value)
}

/// Places `rows` (one batch, in placing order) given what is `known`.
pub(super) fn plan<'r>(
    opts: &PlaceOptions,
    rows: &'r [Row],
    known: &Known<'r>,
) -> Result<Plan<'r>> {
    let mut p = Plan::default();
    let mut new_contacts: HashMap<Customer<'r>, Uuid> = HashMap::new();
    // Keys placed so far in this batch → index in `p.messages`.
    let mut placed: HashMap<&'r str, usize> = HashMap::new();
    let in_batch: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let mut recalled: Vec<usize> = Vec::new();
    for group in groups(rows) {
        let first = &group[0];
        let who = customer(first);
        let contact = match known.contacts.get(&who).or_else(|| new_contacts.get(&who)) {
            Some(id) => *id,
            None => {
                let id = Uuid::now_v7();
                new_contacts.insert(who, id);
                p.contacts.push((id, who));
                p.counts.contacts_created += 1;
                id
            }
        };
        let inbox = opts
            .inboxes
            .get(&first.account)
            .copied()
            .unwrap_or(opts.default_inbox);
        let mut open = known
            .tails
            .get(&(who, first.account.as_str()))
            .map(|t| Conv {
                id: t.conversation,
                contact,
                inbox,
                created_at: t.last_sent_at,
                last_seq: t.last_seq,
                last: t.last_sent_at,
                first_response: None,
                ended: t.ended,
            });
        // Whether `open` came from an earlier batch (then it is updated).
        let mut continued = open.is_some();
        for row in group {
            let body: BodyRef<'r> = serde_json::from_str(row.body.0.get())
                .map_err(|e| StoreError::Invalid(format!("staged {}: {e}", row.key)))?;
            let starts = open
                .as_ref()
                .is_none_or(|c| c.ended || row.sent_at.saturating_sub(c.last) > opts.gap_ms);
            if starts {
                if let Some(c) = open.take() {
                    close(&mut p, c, continued);
                }
                continued = false;
                p.counts.conversations += 1;
                open = Some(Conv {
                    id: Uuid::now_v7(),
                    contact,
                    inbox,
                    created_at: row.sent_at,
                    last_seq: 0,
                    last: row.sent_at,
                    first_response: None,
                    ended: false,
                });
            }
            let Some(c) = open.as_mut() else {
                unreachable!("a conversation is open")
            };
            c.last_seq += 1;
            c.last = c.last.max(row.sent_at);
            c.ended = body.ends_session;
            let sender = match body.direction {
                Direction::Incoming => (SenderKind::Contact, Some(contact)),
                Direction::Outgoing => {
                    c.first_response.get_or_insert(row.sent_at);
                    match row.agent_ref.as_ref().and_then(|a| opts.agents.get(a)) {
                        Some(agent) => (SenderKind::Agent, Some(*agent)),
                        None => (SenderKind::System, None),
                    }
                }
                _ => (SenderKind::System, None),
            };
            // A recall marks a message placed before it: earlier in this
            // batch (in memory), or by an earlier batch (in the database).
            // One later in this batch is not placed yet: missing, as it is
            // when placing goes row by row.
            if let Some(key) = body.recall_of {
                match placed.get(key.as_str()) {
                    Some(&i) => {
                        recalled.push(i);
                        p.counts.recalls_marked += 1;
                    }
                    None if in_batch.contains(key.as_str()) => p.counts.recalls_missing += 1,
                    None => p.recall_in_db.push((key, contact)),
                }
            }
            placed.insert(&row.key, p.messages.len());
            p.messages.push(Msg {
                id: Uuid::now_v7(),
                conversation: c.id,
                seq: c.last_seq,
                key: &row.key,
                direction: body.direction,
                sender,
                text: body.text,
                metadata: Cow::Borrowed(body.metadata.map_or("null", RawValue::get)),
                sent_at: row.sent_at,
                attachments: body.attachment_ids,
            });
            p.counts.messages += 1;
        }
        if let Some(c) = open {
            p.tails.push(TailRow {
                customer: who,
                account: &first.account,
                conversation: c.id,
                last_sent_at: c.last,
                ended: c.ended,
            });
            close(&mut p, c, continued);
        }
    }
    for i in recalled {
        let m = &mut p.messages[i];
        m.metadata = Cow::Owned(mark_recalled(&m.metadata)?);
    }
    Ok(p)
}

fn close(p: &mut Plan<'_>, c: Conv, continued: bool) {
    match continued {
        true => p.continued.push(c),
        false => p.new_conversations.push(c),
    }
}

/// Marks recalled message metadata: `"recalled": true` in an object;
/// anything else is kept as it is.
pub(super) fn mark_recalled_in(metadata: &mut serde_json::Value) {
    if let serde_json::Value::Object(map) = metadata {
        map.insert("recalled".into(), serde_json::Value::Bool(true));
    }
}

/// [`mark_recalled_in`] on metadata as JSON text.
pub(super) fn mark_recalled(metadata: &str) -> Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(metadata)
        .map_err(|e| StoreError::Invalid(format!("metadata: {e}")))?;
    mark_recalled_in(&mut v);
    serde_json::to_string(&v).map_err(|e| StoreError::Invalid(format!("metadata: {e}")))
}
