//! Conversations (tickets): creation with a first message, the filtered list
//! every inbox view is made of, status and assignment changes, tags, merging
//! and the snooze alarm clock.
//!
//! Every write here follows one pattern: one transaction, commit, then
//! publish the events, so no subscriber ever sees a change that rolled back.

use crate::contacts::{CONTACT_EXISTS, ContactWay, add_identities_pg, contact_by_identities_pg};
use crate::cursor::{self, Page};
use crate::db::Db;
use crate::messages::MessageInsert;
use crate::rows::{Arg, Sql, like_pattern, opt_ts, parse_enum, ts};
use crate::{Result, Store, StoreError};
use kefu_core::time::{Timestamp, now, to_millis};
use kefu_core::{
    Conversation, ConversationPatch, ConversationStatus, Event, Message, NewConversation, Priority,
    SenderKind,
};
use sqlx::PgPool;
use uuid::Uuid;

/// Which conversations a caller may see.
#[derive(Debug, Clone, Copy)]
pub enum Visibility {
    All,
    /// Only those of inboxes this agent is a member of.
    MemberOf(Uuid),
}

#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    /// `Some(None)` lists unassigned conversations.
    pub assignee: Option<Option<Uuid>>,
    pub inbox_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub contact_id: Option<Uuid>,
    pub tag: Option<String>,
    /// Matches the subject or any message text, case-insensitively.
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// Conversation counts by status, assignee and inbox, and by status and tag.
#[derive(Debug, Clone, Default)]
pub struct ConversationCounts {
    pub groups: Vec<CountGroup>,
    pub tags: Vec<TagCount>,
}

#[derive(Debug, Clone)]
pub struct CountGroup {
    pub status: ConversationStatus,
    pub assignee_id: Option<Uuid>,
    pub inbox_id: Uuid,
    pub count: i64,
}

#[derive(Debug, Clone)]
pub struct TagCount {
    pub status: ConversationStatus,
    pub tag: String,
    pub count: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConversationRow {
    id: Uuid,
    number: i64,
    inbox_id: Uuid,
    contact_id: Uuid,
    subject: Option<String>,
    status: String,
    snoozed_until: Option<i64>,
    priority: String,
    assignee_id: Option<Uuid>,
    team_id: Option<Uuid>,
    merged_into_id: Option<Uuid>,
    last_seq: i64,
    last_activity_at: i64,
    first_response_due_at: Option<i64>,
    first_response_at: Option<i64>,
    resolution_due_at: Option<i64>,
    resolved_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    csat_score: Option<i64>,
    csat_comment: Option<String>,
}

macro_rules! conversation_columns {
    () => {
        "c.id, c.number, c.inbox_id, c.contact_id, c.subject, c.status, c.snoozed_until, \
    c.priority, c.assignee_id, c.team_id, c.merged_into_id, c.last_seq, c.last_activity_at, \
    c.first_response_due_at, c.first_response_at, c.resolution_due_at, c.resolved_at, c.created_at, c.updated_at, \
    c.csat_score, c.csat_comment"
    };
}
pub(crate) const COLUMNS: &str = conversation_columns!();
/// One conversation by id: read by [`Store::conversation`] and, inside an
/// append, by SQLite's writer (a constant: nothing to format there).
pub(crate) const CONVERSATION_BY_ID: &str = concat!(
    "SELECT ",
    conversation_columns!(),
    " FROM conversations c WHERE c.id = $1"
);

impl ConversationRow {
    /// The same row read by the SQLite writer thread (`sqlite_hot`).
    pub(crate) fn from_rusqlite(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationRow> {
        Ok(ConversationRow {
            id: r.get("id")?,
            number: r.get("number")?,
            inbox_id: r.get("inbox_id")?,
            contact_id: r.get("contact_id")?,
            subject: r.get("subject")?,
            status: r.get("status")?,
            snoozed_until: r.get("snoozed_until")?,
            priority: r.get("priority")?,
            assignee_id: r.get("assignee_id")?,
            team_id: r.get("team_id")?,
            merged_into_id: r.get("merged_into_id")?,
            last_seq: r.get("last_seq")?,
            last_activity_at: r.get("last_activity_at")?,
            first_response_due_at: r.get("first_response_due_at")?,
            first_response_at: r.get("first_response_at")?,
            resolution_due_at: r.get("resolution_due_at")?,
            resolved_at: r.get("resolved_at")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            csat_score: r.get("csat_score")?,
            csat_comment: r.get("csat_comment")?,
        })
    }

    pub(crate) fn into_conversation(self, tags: Vec<String>) -> Result<Conversation> {
        Ok(Conversation {
            id: self.id,
            number: self.number,
            inbox_id: self.inbox_id,
            contact_id: self.contact_id,
            subject: self.subject,
            status: parse_enum(&self.status)?,
            snoozed_until: opt_ts(self.snoozed_until),
            priority: parse_enum::<Priority>(&self.priority)?,
            assignee_id: self.assignee_id,
            team_id: self.team_id,
            tags,
            merged_into_id: self.merged_into_id,
            last_seq: self.last_seq,
            last_activity_at: ts(self.last_activity_at),
            first_response_due_at: opt_ts(self.first_response_due_at),
            first_response_at: opt_ts(self.first_response_at),
            resolution_due_at: opt_ts(self.resolution_due_at),
            resolved_at: opt_ts(self.resolved_at),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            csat_score: self.csat_score,
            csat_comment: self.csat_comment,
        })
    }
}

/// Tags of conversations: one row ([`INSERT_CONVERSATION_TAG`]) or many
/// ([`INSERT_CONVERSATION_TAGS`], the rows and `ON CONFLICT DO NOTHING`).
macro_rules! insert_conversation_tags {
    () => {
        "INSERT INTO conversation_tags (conversation_id, tag_id) VALUES "
    };
}
pub(crate) const INSERT_CONVERSATION_TAGS: &str = insert_conversation_tags!();
pub(crate) const INSERT_CONVERSATION_TAG: &str = concat!(
    insert_conversation_tags!(),
    "($1, $2) ON CONFLICT DO NOTHING"
);
pub(crate) const INBOX_SLA: &str =
    "SELECT sla_first_response_minutes, sla_resolution_minutes FROM inboxes WHERE id = $1";

/// The next ticket number, as each dialect draws it: with SQLite's single
/// writer it is read inside the insert; PostgreSQL draws from a sequence,
/// which takes no row lock (a counter row serialised every create behind
/// it). `import` numbers the conversations it inserts the same way.
macro_rules! next_number {
    (sqlite) => {
        "(SELECT COALESCE(MAX(number), 1000) + 1 FROM conversations)"
    };
    (postgres) => {
        "nextval('conversation_number_seq')"
    };
}

/// The insert of a new conversation, binding a [`ConversationInsert`]:
/// one text, with the dialect's [`next_number!`].
macro_rules! insert_conversation {
    ($dialect:ident) => {
        concat!(
            "INSERT INTO conversations (id, number, inbox_id, contact_id, subject, status, priority,
               assignee_id, team_id, last_seq, last_activity_at, first_response_due_at,
               first_response_at, resolution_due_at, created_at, updated_at)
             VALUES ($1, ",
            next_number!($dialect),
            ", $2, $3, $4, 'open', $5,
               $6, $7, $8, $9, $10, $12, $11, $9, $9)
             RETURNING number"
        )
    };
}
pub(crate) const INSERT_CONVERSATION_SQLITE: &str = insert_conversation!(sqlite);
pub(crate) const INSERT_CONVERSATION_PG: &str = insert_conversation!(postgres);

/// Inside a sqlx transaction: adds tags (by name) to a conversation.
macro_rules! tag_conversation {
    ($tx:expr, $id:expr, $names:expr, $at:expr) => {{
        for tag in ensure_tags!($tx, $names, $at) {
            sqlx::query($crate::conversations::INSERT_CONVERSATION_TAG)
                .bind($id)
                .bind(tag)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

pub(crate) fn due(start: i64, minutes: Option<i64>) -> Option<i64> {
    minutes.map(|m| start + m * 60_000)
}

/// An inbox's SLA minutes: first response, resolution.
pub(crate) type Sla = (Option<i64>, Option<i64>);

/// The inbox's SLA as [`INBOX_SLA`] found it; no row, no inbox.
pub(crate) fn inbox_sla(row: Option<Sla>) -> Result<Sla> {
    row.ok_or_else(|| StoreError::Invalid("inbox_id: no such inbox".into()))
}

/// What a create decides, made once for both backends: its time, ids and
/// actor, and from them (with the inbox's SLA and the contact, once the
/// transaction has found them) every value it writes.
/// `sqlite_hot::create_conversation` and [`create_conversation_pg`] run
/// only the statements.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CreatePlan {
    pub at: i64,
    pub id: Uuid,
    pub message_id: Uuid,
    /// The agent acting, who sends an outgoing first message.
    pub agent: Option<Uuid>,
}

/// The values of a new conversation's row, `$1…$12` of
/// [`INSERT_CONVERSATION_SQLITE`] and [`INSERT_CONVERSATION_PG`] in order.
pub(crate) struct ConversationInsert<'n> {
    pub id: Uuid,
    pub inbox_id: Uuid,
    pub contact_id: Uuid,
    pub subject: Option<&'n str>,
    pub priority: Priority,
    pub assignee_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub last_seq: i64,
    /// Created, updated and last active.
    pub at: i64,
    pub first_response_due_at: Option<i64>,
    pub resolution_due_at: Option<i64>,
    pub first_response_at: Option<i64>,
}

impl CreatePlan {
    pub fn new(agent: Option<Uuid>) -> CreatePlan {
        CreatePlan {
            at: to_millis(now()),
            id: Uuid::now_v7(),
            message_id: Uuid::now_v7(),
            agent,
        }
    }

    /// The conversation's row. A first message makes `last_seq` 1, and an
    /// outgoing one is the first response; the SLA sets the due times.
    pub fn row<'n>(
        &self,
        new: &'n NewConversation,
        contact_id: Uuid,
        sla: Sla,
    ) -> ConversationInsert<'n> {
        let outgoing = new
            .message
            .as_ref()
            .is_some_and(|m| m.direction == kefu_core::Direction::Outgoing);
        ConversationInsert {
            id: self.id,
            inbox_id: new.inbox_id,
            contact_id,
            subject: new.subject.as_deref(),
            priority: new.priority,
            assignee_id: new.assignee_id,
            team_id: new.team_id,
            last_seq: i64::from(new.message.is_some()),
            at: self.at,
            first_response_due_at: due(self.at, sla.0),
            resolution_due_at: due(self.at, sla.1),
            first_response_at: outgoing.then_some(self.at),
        }
    }

    /// The first message's row, if there is one: message 1, sent by the
    /// contact or by the agent acting.
    pub fn first_message<'n>(
        &self,
        new: &'n NewConversation,
        contact_id: Uuid,
    ) -> Option<MessageInsert<'n>> {
        let m = new.message.as_ref()?;
        Some(MessageInsert::new(
            self.message_id,
            self.id,
            1,
            m,
            contact_id,
            self.agent,
            self.at,
        ))
    }
}

impl ConversationInsert<'_> {
    /// The conversation as written, given the number the database drew and
    /// the tags asked for: the answer, without reading it back.
    fn conversation(&self, number: i64, tags: &[String]) -> Conversation {
        let mut tags = tags.to_vec();
        tags.sort();
        tags.dedup();
        Conversation {
            id: self.id,
            number,
            inbox_id: self.inbox_id,
            contact_id: self.contact_id,
            subject: self.subject.map(str::to_string),
            status: ConversationStatus::Open,
            snoozed_until: None,
            priority: self.priority,
            assignee_id: self.assignee_id,
            team_id: self.team_id,
            tags,
            merged_into_id: None,
            last_seq: self.last_seq,
            last_activity_at: ts(self.at),
            first_response_due_at: opt_ts(self.first_response_due_at),
            first_response_at: opt_ts(self.first_response_at),
            resolution_due_at: opt_ts(self.resolution_due_at),
            resolved_at: None,
            created_at: ts(self.at),
            updated_at: ts(self.at),
            csat_score: None,
            csat_comment: None,
        }
    }
}

/// What the database decided during a create; with the request and the
/// plan it is the whole answer, so nothing is read back.
pub(crate) struct Written {
    pub contact_id: Uuid,
    pub number: i64,
    pub sla: Sla,
}

/// The create on PostgreSQL (SQLite's is `sqlite_hot::create_conversation`).
pub(crate) async fn create_conversation_pg(
    pool: &PgPool,
    new: &NewConversation,
    plan: CreatePlan,
) -> Result<Written> {
    let at = plan.at;
    // Read before the write transaction: every statement inside it holds
    // locks longer.
    let sla = inbox_sla(
        sqlx::query_as(INBOX_SLA)
            .bind(new.inbox_id)
            .fetch_optional(pool)
            .await?,
    )?;
    let way = ContactWay::of(new)?;
    let mut tx = pool.begin().await?;
    let contact_id = match way {
        ContactWay::Id(id) => {
            let n: i64 = sqlx::query_scalar(CONTACT_EXISTS)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if n == 0 {
                return Err(ContactWay::no_such_contact());
            }
            id
        }
        ContactWay::Identities(c) => {
            match contact_by_identities_pg(&mut tx, &c.identities).await? {
                Some(found) => {
                    add_identities_pg(&mut tx, found, &c.identities, at).await?;
                    found
                }
                None => insert_contact!(tx, c, at),
            }
        }
    };
    let r = plan.row(new, contact_id, sla);
    let number: i64 = sqlx::query_scalar(INSERT_CONVERSATION_PG)
        .bind(r.id)
        .bind(r.inbox_id)
        .bind(r.contact_id)
        .bind(r.subject)
        .bind(r.priority.as_str())
        .bind(r.assignee_id)
        .bind(r.team_id)
        .bind(r.last_seq)
        .bind(r.at)
        .bind(r.first_response_due_at)
        .bind(r.resolution_due_at)
        .bind(r.first_response_at)
        .fetch_one(&mut *tx)
        .await?;
    tag_conversation!(tx, plan.id, &new.tags, at);
    if let Some(m) = plan.first_message(new, contact_id) {
        insert_message!(tx, &m);
    }
    tx.commit().await?;
    Ok(Written {
        contact_id,
        number,
        sla,
    })
}

impl Store {
    /// Creates a conversation, its contact when new, and its first message.
    /// `agent` is the agent acting, who becomes the sender of an outgoing
    /// first message.
    pub async fn create_conversation(
        &self,
        new: &NewConversation,
        agent: Option<Uuid>,
    ) -> Result<(Conversation, Option<Message>)> {
        let plan = CreatePlan::new(agent);
        let written = match &self.db {
            Db::Sqlite { fast, .. } => {
                let new = new.clone();
                fast.write(move |c| crate::sqlite_hot::create_conversation(c, &new, plan))
                    .await?
            }
            Db::Postgres(pool) => create_conversation_pg(pool, new, plan).await?,
        };
        let conversation = plan
            .row(new, written.contact_id, written.sla)
            .conversation(written.number, &new.tags);
        self.publish(Event::ConversationCreated {
            conversation: conversation.clone(),
        });
        let message = match plan.first_message(new, written.contact_id) {
            Some(m) if m.message.attachment_ids.is_empty() => Some(m.built()),
            Some(m) => Some(self.message(m.id).await?),
            None => None,
        };
        if let Some(m) = &message {
            self.publish(Event::MessageCreated {
                inbox_id: conversation.inbox_id,
                contact_id: conversation.contact_id,
                message: m.clone(),
            });
        }
        Ok((conversation, message))
    }

    pub async fn conversation(&self, id: Uuid) -> Result<Conversation> {
        let row: ConversationRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(CONVERSATION_BY_ID).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(self.load_conversations(vec![row]).await?.remove(0))
    }

    /// Whether `visibility` allows seeing the conversation; a conversation
    /// the caller may not see is reported as not found, never as forbidden,
    /// so ids cannot be probed.
    pub async fn visible_conversation(
        &self,
        id: Uuid,
        visibility: Visibility,
    ) -> Result<Conversation> {
        let c = self.conversation(id).await?;
        match visibility {
            Visibility::All => Ok(c),
            Visibility::MemberOf(agent) if self.is_inbox_member(c.inbox_id, agent).await? => Ok(c),
            Visibility::MemberOf(_) => Err(StoreError::NotFound),
        }
    }

    pub(crate) async fn load_conversations(
        &self,
        rows: Vec<ConversationRow>,
    ) -> Result<Vec<Conversation>> {
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut sql = Sql::new(
            "SELECT ct.conversation_id, t.name FROM conversation_tags ct JOIN tags t ON t.id = ct.tag_id
             WHERE ct.conversation_id IN ",
        );
        sql.bind_list(&ids).push(" ORDER BY t.name");
        let tags: Vec<(Uuid, String)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        rows.into_iter()
            .map(|r| {
                let t = tags
                    .iter()
                    .filter(|(c, _)| *c == r.id)
                    .map(|(_, n)| n.clone())
                    .collect();
                r.into_conversation(t)
            })
            .collect()
    }

    /// The newest activity first, one page at a time.
    pub async fn list_conversations(
        &self,
        visibility: Visibility,
        f: &ConversationFilter,
    ) -> Result<Page<Conversation>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLUMNS} FROM conversations c WHERE 1 = 1"
        ));
        if let Visibility::MemberOf(agent) = visibility {
            sql.push(
                " AND c.inbox_id IN (SELECT m.inbox_id FROM inbox_members m WHERE m.agent_id = ",
            )
            .bind(Arg::Uuid(agent))
            .push(")");
        }
        if let Some(s) = f.status {
            sql.push(" AND c.status = ")
                .bind(Arg::Text(s.as_str().into()));
        }
        match f.assignee {
            Some(Some(a)) => {
                sql.push(" AND c.assignee_id = ").bind(Arg::Uuid(a));
            }
            Some(None) => {
                sql.push(" AND c.assignee_id IS NULL");
            }
            None => {}
        }
        for (column, value) in [
            ("c.inbox_id", f.inbox_id),
            ("c.team_id", f.team_id),
            ("c.contact_id", f.contact_id),
        ] {
            if let Some(v) = value {
                sql.push(" AND ")
                    .push(column)
                    .push(" = ")
                    .bind(Arg::Uuid(v));
            }
        }
        if let Some(tag) = &f.tag {
            sql.push(" AND c.id IN (SELECT ct.conversation_id FROM conversation_tags ct JOIN tags t ON t.id = ct.tag_id WHERE t.name = ")
                .bind(Arg::Text(tag.clone())).push(")");
        }
        if let Some(q) = &f.q {
            let pat = like_pattern(q);
            sql.push(" AND (LOWER(COALESCE(c.subject, '')) LIKE ").bind(Arg::Text(pat.clone()))
                .push(" ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages msg WHERE msg.conversation_id = c.id AND LOWER(msg.text) LIKE ")
                .bind(Arg::Text(pat)).push(" ESCAPE '\\'))");
        }
        if let Some(c) = &f.cursor {
            let (at, id) = cursor::decode(c)?;
            sql.push(" AND (c.last_activity_at, c.id) < (")
                .bind(Arg::I64(at))
                .push(", ")
                .bind(Arg::Uuid(id))
                .push(")");
        }
        sql.push(" ORDER BY c.last_activity_at DESC, c.id DESC LIMIT ")
            .bind(Arg::I64(f.limit as i64 + 1));
        let rows: Vec<ConversationRow> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        let items = self.load_conversations(rows).await?;
        Ok(cursor::page(items, f.limit, |c| {
            (c.last_activity_at.timestamp_millis(), c.id)
        }))
    }

    /// How many conversations the caller may see, in groups of what the
    /// console's views filter on: the badges of its sidebar. Grouped counts
    /// rather than one count per view, because the views are the agent's
    /// inboxes and tags, and one grouped scan answers them all. Only the
    /// given statuses are counted (all when empty): the console asks for
    /// the waiting ones after every conversation event, and through the
    /// status index that reads the open work, not the whole history.
    /// Merged conversations are closed, so they count only under `closed`.
    pub async fn conversation_counts(
        &self,
        visibility: Visibility,
        statuses: &[ConversationStatus],
    ) -> Result<ConversationCounts> {
        let visible = |sql: &mut Sql| {
            if !statuses.is_empty() {
                sql.push(" AND c.status IN (");
                for (i, st) in statuses.iter().enumerate() {
                    if i > 0 {
                        sql.push(", ");
                    }
                    sql.bind(Arg::Text(st.as_str().into()));
                }
                sql.push(")");
            }
            if let Visibility::MemberOf(agent) = visibility {
                sql.push(" AND c.inbox_id IN (SELECT m.inbox_id FROM inbox_members m WHERE m.agent_id = ")
                    .bind(Arg::Uuid(agent))
                    .push(")");
            }
        };
        let mut groups = Sql::new(
            "SELECT c.status, c.assignee_id, c.inbox_id, COUNT(*) AS n FROM conversations c WHERE 1 = 1",
        );
        visible(&mut groups);
        groups.push(" GROUP BY c.status, c.assignee_id, c.inbox_id");
        let mut tags = Sql::new(
            "SELECT c.status, t.name, COUNT(*) AS n FROM conversation_tags ct
             JOIN tags t ON t.id = ct.tag_id JOIN conversations c ON c.id = ct.conversation_id WHERE 1 = 1",
        );
        visible(&mut tags);
        tags.push(" GROUP BY c.status, t.name");
        let rows: Vec<(String, Option<Uuid>, Uuid, i64)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(groups.text.as_str())), groups.args).fetch_all(p).await?);
        let tag_rows: Vec<(String, String, i64)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(tags.text.as_str())), tags.args).fetch_all(p).await?);
        Ok(ConversationCounts {
            groups: rows
                .into_iter()
                .map(|(status, assignee_id, inbox_id, count)| {
                    Ok(CountGroup {
                        status: parse_enum(&status)?,
                        assignee_id,
                        inbox_id,
                        count,
                    })
                })
                .collect::<Result<_>>()?,
            tags: tag_rows
                .into_iter()
                .map(|(status, tag, count)| {
                    Ok(TagCount {
                        status: parse_enum(&status)?,
                        tag,
                        count,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Applies status, priority, assignment and subject changes. Resolving
    /// stamps `resolved_at`; any other status clears it; leaving `snoozed`
    /// clears the wake-up time.
    pub async fn update_conversation(
        &self,
        id: Uuid,
        patch: &ConversationPatch,
    ) -> Result<Conversation> {
        let at = to_millis(now());
        let status = patch.status.map(|s| s.as_str());
        let resolved = patch.status.map(|s| s == ConversationStatus::Resolved);
        let (set_assignee, assignee) = (patch.assignee_id.is_some(), patch.assignee_id.flatten());
        let (set_team, team) = (patch.team_id.is_some(), patch.team_id.flatten());
        if let Some(a) = assignee {
            let agent = self
                .agent(a)
                .await
                .map_err(|_| StoreError::Invalid("assignee_id: no such agent".into()))?;
            if !agent.active {
                return Err(StoreError::Invalid(
                    "assignee_id: the agent is deactivated".into(),
                ));
            }
        }
        let done = on_db!(self.db.writer(), p =>
            sqlx::query(
                "UPDATE conversations SET
                   subject = COALESCE($2, subject),
                   status = COALESCE($3, status),
                   snoozed_until = CASE WHEN $3 IS NULL THEN snoozed_until WHEN $3 = 'snoozed' THEN $4 ELSE NULL END,
                   resolved_at = CASE WHEN $5 IS NULL THEN resolved_at WHEN $5 THEN $10 ELSE NULL END,
                   priority = COALESCE($6, priority),
                   assignee_id = CASE WHEN $7 THEN $8 ELSE assignee_id END,
                   team_id = CASE WHEN $9 THEN $11 ELSE team_id END,
                   updated_at = $10
                 WHERE id = $1",
            )
            .bind(id).bind(&patch.subject).bind(status).bind(patch.snoozed_until.map(to_millis))
            .bind(resolved).bind(patch.priority.map(|p| p.as_str()))
            .bind(set_assignee).bind(assignee).bind(set_team).bind(at).bind(team)
            .execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        let conversation = self.conversation(id).await?;
        self.publish(Event::ConversationUpdated {
            conversation: conversation.clone(),
        });
        Ok(conversation)
    }

    pub async fn tag_conversation(&self, id: Uuid, tags: &[String]) -> Result<Conversation> {
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query("UPDATE conversations SET updated_at = $2 WHERE id = $1")
                .bind(id).bind(at).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            tag_conversation!(tx, id, tags, at);
            tx.commit().await?;
        });
        let conversation = self.conversation(id).await?;
        self.publish(Event::ConversationUpdated {
            conversation: conversation.clone(),
        });
        Ok(conversation)
    }

    pub async fn untag_conversation(&self, id: Uuid, tag: &str) -> Result<Conversation> {
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "DELETE FROM conversation_tags WHERE conversation_id = $1
                   AND tag_id IN (SELECT id FROM tags WHERE name = $2)",
            )
            .bind(id).bind(tag).execute(p).await?.rows_affected());
        let conversation = self.conversation(id).await?;
        self.publish(Event::ConversationUpdated {
            conversation: conversation.clone(),
        });
        Ok(conversation)
    }

    /// Moves every message of `source` to the end of `target` (renumbered so
    /// that `target` stays gap-free), adds the source's tags to the target,
    /// notes the merge in the target, and closes `source` with a pointer.
    pub async fn merge_conversations(
        &self,
        source: Uuid,
        target: Uuid,
        agent: Option<Uuid>,
    ) -> Result<(Conversation, Conversation)> {
        if source == target {
            return Err(StoreError::Invalid(
                "cannot merge a conversation into itself".into(),
            ));
        }
        let at = to_millis(now());
        let note_id = Uuid::now_v7();
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            // Lock the target first (PostgreSQL row lock; SQLite has one writer).
            let target_row: Option<(i64, Option<Uuid>, i64)> = sqlx::query_as(
                "UPDATE conversations SET updated_at = $2 WHERE id = $1 RETURNING last_seq, merged_into_id, number",
            )
            .bind(target).bind(at).fetch_optional(&mut *tx).await?;
            let (target_seq, target_merged, _) = target_row.ok_or(StoreError::NotFound)?;
            if target_merged.is_some() {
                return Err(StoreError::Invalid("the target was itself merged away".into()));
            }
            let source_row: Option<(i64, Option<Uuid>, i64)> = sqlx::query_as(
                "SELECT last_seq, merged_into_id, number FROM conversations WHERE id = $1",
            )
            .bind(source).fetch_optional(&mut *tx).await?;
            let (_, source_merged, source_number) = source_row.ok_or(StoreError::NotFound)?;
            if source_merged.is_some() {
                return Err(StoreError::Invalid("the conversation was already merged".into()));
            }
            // A client id seen in both keeps the target's message only.
            sqlx::query(
                "UPDATE messages SET external_id = NULL WHERE conversation_id = $1 AND external_id IN
                   (SELECT external_id FROM messages WHERE conversation_id = $2 AND external_id IS NOT NULL)",
            )
            .bind(source).bind(target).execute(&mut *tx).await?;
            let moved = sqlx::query("UPDATE messages SET conversation_id = $2, seq = seq + $3 WHERE conversation_id = $1")
                .bind(source).bind(target).bind(target_seq).execute(&mut *tx).await?
                .rows_affected() as i64;
            // Sequence numbers of the source may have gaps only if rows were
            // deleted by hand; renumber from the real count to stay gap-free.
            let max_seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM messages WHERE conversation_id = $1")
                .bind(target).fetch_one(&mut *tx).await?;
            let mut last = max_seq.unwrap_or(0).max(target_seq);
            if last != target_seq + moved {
                return Err(StoreError::Invalid("message sequence of the source has gaps; cannot merge".into()));
            }
            last += 1;
            let text = format!("Conversation #{source_number} was merged into this one ({moved} messages).");
            let note = kefu_core::NewMessage::text(kefu_core::Direction::System, text);
            // The note carries no files: nobody may attach any.
            insert_message!(tx, &MessageInsert {
                id: note_id,
                conversation_id: target,
                seq: last,
                message: &note,
                sender: (SenderKind::System, agent),
                attach_as: (Uuid::nil(), 0),
                created_at: at,
            });
            sqlx::query(
                "INSERT INTO conversation_tags (conversation_id, tag_id)
                 SELECT $2, tag_id FROM conversation_tags WHERE conversation_id = $1 ON CONFLICT DO NOTHING",
            )
            .bind(source).bind(target).execute(&mut *tx).await?;
            sqlx::query("UPDATE conversations SET last_seq = $2, last_activity_at = $3, updated_at = $3 WHERE id = $1")
                .bind(target).bind(last).bind(at).execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE conversations SET status = 'closed', merged_into_id = $2, snoozed_until = NULL,
                   updated_at = $3 WHERE id = $1",
            )
            .bind(source).bind(target).bind(at).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        let (s, t) = (
            self.conversation(source).await?,
            self.conversation(target).await?,
        );
        self.publish(Event::ConversationUpdated {
            conversation: s.clone(),
        });
        self.publish(Event::ConversationUpdated {
            conversation: t.clone(),
        });
        let note = self.message(note_id).await?;
        self.publish(Event::MessageCreated {
            inbox_id: t.inbox_id,
            contact_id: t.contact_id,
            message: note,
        });
        Ok((s, t))
    }

    /// Reopens snoozed conversations whose time has come; returns how many.
    pub async fn wake_snoozed(&self, at: Timestamp) -> Result<usize> {
        let ms = to_millis(at);
        let ids: Vec<Uuid> = on_db!(self.db.writer(), p =>
            sqlx::query_scalar(
                "UPDATE conversations SET status = 'open', snoozed_until = NULL, updated_at = $1
                 WHERE status = 'snoozed' AND snoozed_until <= $1 RETURNING id",
            )
            .bind(ms).fetch_all(p).await?);
        for id in &ids {
            let conversation = self.conversation(*id).await?;
            self.publish(Event::ConversationUpdated { conversation });
        }
        Ok(ids.len())
    }
}
