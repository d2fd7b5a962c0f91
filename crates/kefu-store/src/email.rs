//! The email channel's records: received mail (kept raw, filed once),
//! Message-IDs for threading, each conversation's reply token, and the
//! outbox of mail to send. The channel's logic is in `kefu-mail`.

use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use serde_json::Value;
use uuid::Uuid;

/// A received message, as first recorded.
#[derive(Debug, Clone)]
pub struct NewInbound<'a> {
    pub inbox_id: Uuid,
    pub sha256: &'a str,
    pub size: i64,
    pub header_id: Option<&'a str>,
    pub sender: Option<&'a str>,
    pub status: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EmailThread {
    pub conversation_id: Uuid,
    pub token: String,
    pub customer_email: String,
    pub subject: String,
}

/// Mail to send.
#[derive(Debug, Clone)]
pub struct NewOutboxEmail<'a> {
    pub inbox_id: Uuid,
    pub conversation_id: Uuid,
    pub message_id: Option<Uuid>,
    pub header_id: &'a str,
    pub envelope_from: &'a str,
    pub recipients: &'a [String],
    pub sha256: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxEmail {
    pub id: Uuid,
    pub inbox_id: Uuid,
    pub conversation_id: Uuid,
    pub message_id: Option<Uuid>,
    pub header_id: String,
    pub envelope_from: String,
    /// JSON array of addresses.
    pub recipients: String,
    pub sha256: String,
    pub status: String,
    pub attempts: i64,
    /// The claim this node holds on the row while it sends it (see
    /// [`Store::claim_due_email`]); the outcome is recorded only under it.
    pub claim: Option<Uuid>,
}

const OUTBOX_COLUMNS: &str = "id, inbox_id, conversation_id, message_id, header_id, envelope_from, recipients, sha256, status, attempts, claim";

impl Store {
    /// Records a received message; `None` when the same Message-ID from the
    /// same sender was received before (a duplicate delivery).
    pub async fn record_inbound_email(&self, new: NewInbound<'_>) -> Result<Option<Uuid>> {
        let id = Uuid::now_v7();
        let n = on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO email_inbound (id, inbox_id, sha256, size, header_id, sender, status, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(id).bind(new.inbox_id).bind(new.sha256).bind(new.size).bind(new.header_id)
            .bind(new.sender).bind(new.status).bind(to_millis(now()))
            .execute(p).await?.rows_affected());
        Ok((n == 1).then_some(id))
    }

    /// How many messages this sender sent to the inbox since `since_ms`.
    pub async fn inbound_emails_since(
        &self,
        inbox_id: Uuid,
        sender: &str,
        since_ms: i64,
    ) -> Result<i64> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT COUNT(*) FROM email_inbound WHERE inbox_id = $1 AND sender = $2 AND received_at >= $3")
                .bind(inbox_id).bind(sender).bind(since_ms).fetch_one(p).await?))
    }

    /// Where a received message ended up.
    pub async fn finish_inbound_email(
        &self,
        id: Uuid,
        status: &str,
        problem: Option<&str>,
        filed: Option<(Uuid, Uuid)>,
    ) -> Result<()> {
        let (conversation, message) = filed.unzip();
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "UPDATE email_inbound SET status = $2, problem = $3, conversation_id = $4, message_id = $5, filed_at = $6
                 WHERE id = $1",
            )
            .bind(id).bind(status).bind(problem).bind(conversation).bind(message).bind(to_millis(now()))
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// The status of a received message (for tests and the admin view).
    pub async fn inbound_email_status(
        &self,
        id: Uuid,
    ) -> Result<(String, Option<String>, Option<Uuid>)> {
        on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT status, problem, conversation_id FROM email_inbound WHERE id = $1")
                .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)
    }

    /// Messages held since before `before_ms`, oldest first: (id, inbox,
    /// sha256). Also those a node began to file before `stale_ms` and did
    /// not finish (it died): they are filed again.
    pub async fn held_inbound_emails(
        &self,
        before_ms: i64,
        stale_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Uuid, Uuid, String)>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, inbox_id, sha256 FROM email_inbound
                            WHERE (status = 'held' OR (status = 'filing' AND filed_at <= $2)) AND received_at < $1
                            ORDER BY received_at LIMIT $3")
                .bind(before_ms).bind(stale_ms).bind(limit as i64).fetch_all(p).await?))
    }

    /// Takes a held message (or one whose filing went stale before
    /// `stale_ms`) for filing by this node: `false` when another node took
    /// it first. Every node sweeps held mail; without this, two could file
    /// the same message twice.
    pub async fn claim_held_inbound_email(
        &self,
        id: Uuid,
        now_ms: i64,
        stale_ms: i64,
    ) -> Result<bool> {
        let n = on_db!(self.db.writer(), p =>
            sqlx::query(
                "UPDATE email_inbound SET status = 'filing', filed_at = $2
                 WHERE id = $1 AND (status = 'held' OR (status = 'filing' AND filed_at <= $3))",
            )
            .bind(id).bind(now_ms).bind(stale_ms)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    pub async fn email_thread(&self, conversation_id: Uuid) -> Result<Option<EmailThread>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT conversation_id, token, customer_email, subject FROM email_threads WHERE conversation_id = $1")
                .bind(conversation_id).fetch_optional(p).await?))
    }

    pub async fn email_thread_by_token(&self, token: &str) -> Result<Option<EmailThread>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT conversation_id, token, customer_email, subject FROM email_threads WHERE token = $1")
                .bind(token).fetch_optional(p).await?))
    }

    pub async fn create_email_thread(&self, t: &EmailThread) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query("INSERT INTO email_threads (conversation_id, token, customer_email, subject) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (conversation_id) DO NOTHING")
                .bind(t.conversation_id).bind(&t.token).bind(&t.customer_email).bind(&t.subject)
                .execute(p).await?.rows_affected());
        Ok(())
    }

    /// The conversation of the first of these Message-IDs that kefu knows.
    pub async fn conversation_by_header_ids(
        &self,
        inbox_id: Uuid,
        ids: &[String],
    ) -> Result<Option<Uuid>> {
        let ids = &ids[..ids.len().min(50)];
        if ids.is_empty() {
            return Ok(None);
        }
        let mut sql = crate::rows::Sql::new(
            "SELECT header_id, conversation_id FROM email_message_ids WHERE inbox_id = ",
        );
        sql.bind(crate::rows::Arg::Uuid(inbox_id))
            .push(" AND header_id IN (");
        for (n, id) in ids.iter().enumerate() {
            sql.push(if n == 0 { "" } else { ", " })
                .bind(crate::rows::Arg::Text(id.clone()));
        }
        sql.push(")");
        let hits: Vec<(String, Uuid)> = on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?);
        Ok(ids
            .iter()
            .find_map(|id| hits.iter().find(|(h, _)| h == id).map(|(_, c)| *c)))
    }

    pub async fn record_header_id(
        &self,
        inbox_id: Uuid,
        header_id: &str,
        conversation_id: Uuid,
        message_id: Option<Uuid>,
        outgoing: bool,
    ) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO email_message_ids (inbox_id, header_id, conversation_id, message_id, outgoing, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (inbox_id, header_id) DO NOTHING",
            )
            .bind(inbox_id).bind(header_id).bind(conversation_id).bind(message_id).bind(outgoing)
            .bind(to_millis(now())).execute(p).await?.rows_affected());
        Ok(())
    }

    /// The conversation's Message-IDs, oldest first, for References.
    pub async fn conversation_header_ids(
        &self,
        conversation_id: Uuid,
    ) -> Result<Vec<(String, bool)>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT header_id, outgoing FROM email_message_ids WHERE conversation_id = $1 ORDER BY created_at, header_id")
                .bind(conversation_id).fetch_all(p).await?))
    }

    /// Queues mail to send now. `None` when mail for the same message is
    /// queued already: two nodes may build the same reply at once, and only
    /// the first one's mail is kept (the other's bytes stay unused in the
    /// blob store).
    pub async fn enqueue_email(&self, new: NewOutboxEmail<'_>) -> Result<Option<Uuid>> {
        let id = Uuid::now_v7();
        let at = to_millis(now());
        let recipients = serde_json::to_string(new.recipients)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let n = on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO email_outbox (id, inbox_id, conversation_id, message_id, header_id, envelope_from,
                   recipients, sha256, status, next_attempt_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $9)
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(id).bind(new.inbox_id).bind(new.conversation_id).bind(new.message_id).bind(new.header_id)
            .bind(new.envelope_from).bind(&recipients).bind(new.sha256).bind(at)
            .execute(p).await?.rows_affected());
        Ok((n == 1).then_some(id))
    }

    /// Records that an agent's reply cannot go out by mail at all (no
    /// address to send it to): a failed outbox row without a message, so
    /// the outbox never picks the reply up again. Once per message.
    pub async fn record_unsendable_email(
        &self,
        inbox_id: Uuid,
        conversation_id: Uuid,
        message_id: Uuid,
        reason: &str,
    ) -> Result<()> {
        let at = to_millis(now());
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO email_outbox (id, inbox_id, conversation_id, message_id, header_id, envelope_from,
                   recipients, sha256, status, next_attempt_at, last_error, created_at)
                 VALUES ($1, $2, $3, $4, '', '', '[]', '', 'failed', $5, $6, $5)
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(Uuid::now_v7()).bind(inbox_id).bind(conversation_id).bind(message_id).bind(at).bind(reason)
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Claims the oldest queued mail of these inboxes whose time has come
    /// and that no node holds, for `lease_ms` from `now_ms`: the node that
    /// gets it sends it, every other node passes it over until the lease
    /// runs out. A node that dies mid-send thus delays the mail by the
    /// lease, never strands it. `now_ms` is a parameter so that tests can
    /// move the clock past a lease.
    pub async fn claim_due_email(
        &self,
        inbox_ids: &[Uuid],
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<OutboxEmail>> {
        if inbox_ids.is_empty() {
            return Ok(None);
        }
        // PostgreSQL: SKIP LOCKED lets a second claimer pass over the row a
        // first one is taking instead of queueing behind it; the outer
        // condition is checked again on the row as the first left it, so
        // the two never both win. SQLite has one writer: the statement is
        // atomic as it is.
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let free = |sql: &mut crate::rows::Sql| {
            sql.push(" AND status = 'queued' AND (claimed_until IS NULL OR claimed_until <= ")
                .bind(crate::rows::Arg::I64(now_ms))
                .push(")");
        };
        let mut sql = crate::rows::Sql::new("UPDATE email_outbox SET claim = ");
        sql.bind(crate::rows::Arg::Uuid(Uuid::now_v7()))
            .push(", claimed_until = ")
            .bind(crate::rows::Arg::I64(now_ms + lease_ms))
            .push(" WHERE id = (SELECT id FROM email_outbox WHERE next_attempt_at <= ")
            .bind(crate::rows::Arg::I64(now_ms));
        free(&mut sql);
        sql.push(" AND inbox_id IN ")
            .bind_list(inbox_ids)
            .push(" ORDER BY next_attempt_at LIMIT 1")
            .push(lock)
            .push(")");
        free(&mut sql);
        sql.push(" RETURNING ").push(OUTBOX_COLUMNS);
        Ok(on_db!(self.db.writer(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_optional(p).await?))
    }

    /// The mail sent with this Message-ID (bounces name it).
    pub async fn outbox_email_by_header(&self, header_id: &str) -> Result<Option<OutboxEmail>> {
        // Rows of replies that could not be sent have no Message-ID.
        if header_id.is_empty() {
            return Ok(None);
        }
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM email_outbox WHERE header_id = $1");
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(header_id).fetch_optional(p).await?))
    }

    /// After an attempt under `claim`: `sent`, `failed`, or back to
    /// `queued` at `retry_at`; the claim is released. `false` (nothing
    /// recorded) when the claim is no longer held: its lease ran out and
    /// another node took the mail over, whose outcome counts.
    pub async fn record_email_attempt(
        &self,
        id: Uuid,
        claim: Uuid,
        status: &str,
        error: Option<&str>,
        retry_at: Option<i64>,
    ) -> Result<bool> {
        let at = to_millis(now());
        let n = on_db!(self.db.writer(), p =>
            sqlx::query(
                "UPDATE email_outbox SET status = $2, last_error = $3, attempts = attempts + 1,
                   next_attempt_at = COALESCE($4, next_attempt_at),
                   sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END,
                   claim = NULL, claimed_until = NULL
                 WHERE id = $1 AND claim = $6",
            )
            .bind(id).bind(status).bind(error).bind(retry_at).bind(at).bind(claim)
            .execute(p).await?.rows_affected());
        Ok(n == 1)
    }

    /// Marks mail failed after it was sent (a bounce came back).
    pub async fn mark_email_bounced(&self, id: Uuid, reason: &str) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE email_outbox SET status = 'failed', last_error = $2 WHERE id = $1")
                .bind(id).bind(reason).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Agents' replies (not notes) since `since_ms` in these inboxes that
    /// have no mail queued yet: (message, conversation, inbox). Catches up
    /// after a restart. The inboxes are the email inboxes and the form and
    /// widget inboxes that answer by mail; in those only conversations whose
    /// contact has an email address count (there is no one to mail
    /// otherwise), and in a widget inbox only replies since `chat_since_ms`:
    /// a chat's older lines are not mailed all at once when its customer
    /// leaves an address later or the inbox is linked to an email inbox.
    pub async fn unqueued_email_replies(
        &self,
        inbox_ids: &[Uuid],
        since_ms: i64,
        chat_since_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Uuid, Uuid, Uuid)>> {
        if inbox_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = crate::rows::Sql::new(
            "SELECT m.id, c.id, c.inbox_id FROM messages m
             JOIN conversations c ON c.id = m.conversation_id
             JOIN inboxes i ON i.id = c.inbox_id
             JOIN contacts ct ON ct.id = c.contact_id
             WHERE m.direction = 'outgoing' AND m.sender_kind = 'agent'
               AND (i.kind = 'email' OR ct.email IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM email_outbox o WHERE o.message_id = m.id)
               AND m.created_at >= ",
        );
        sql.bind(crate::rows::Arg::I64(since_ms))
            .push(" AND (i.kind <> 'widget' OR m.created_at >= ")
            .bind(crate::rows::Arg::I64(chat_since_ms))
            .push(") AND c.inbox_id IN ")
            .bind_list(inbox_ids)
            .push(" ORDER BY m.created_at LIMIT ")
            .bind(crate::rows::Arg::I64(limit as i64));
        Ok(on_db!(self.db.reader(), p =>
            bind_args!(sqlx::query_as(sqlx::AssertSqlSafe(sql.text.as_str())), sql.args).fetch_all(p).await?))
    }

    /// The conversation with this ticket number.
    pub async fn conversation_by_number(
        &self,
        number: i64,
    ) -> Result<Option<kefu_core::Conversation>> {
        let id: Option<Uuid> = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT id FROM conversations WHERE number = $1").bind(number).fetch_optional(p).await?);
        match id {
            Some(id) => Ok(Some(self.conversation(id).await?)),
            None => Ok(None),
        }
    }

    /// Sets one key of a message's metadata (e.g. its email delivery state).
    pub async fn set_message_metadata(
        &self,
        message_id: Uuid,
        key: &str,
        value: Value,
    ) -> Result<()> {
        // The message as it will be announced, changed in place.
        let mut message = self.message(message_id).await?;
        if !message.metadata.is_object() {
            message.metadata = Value::Object(Default::default());
        }
        if let Value::Object(map) = &mut message.metadata {
            map.insert(key.into(), value);
        }
        on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE messages SET metadata = $2 WHERE id = $1")
                .bind(message_id).bind(&message.metadata).execute(p).await?.rows_affected());
        // Consoles show an email reply's delivery state from the metadata:
        // announce the change instead of making them poll.
        let conversation = self.conversation(message.conversation_id).await?;
        self.publish(kefu_core::Event::MessageUpdated {
            inbox_id: conversation.inbox_id,
            contact_id: conversation.contact_id,
            message,
        });
        Ok(())
    }
}
