//! What the live-chat widget needs from the store: inboxes by their public
//! token, spent identity hashes, the visitor's conversations, and ratings.

use crate::conversations::{COLUMNS, ConversationRow};
use crate::{Result, Store, StoreError};
use kefu_core::time::{Timestamp, now, to_millis};
use kefu_core::{Conversation, Event, Inbox};
use uuid::Uuid;

impl Store {
    /// Sets the widget's public token and identity secret (on creation, or to
    /// rotate them).
    pub async fn set_widget_keys(
        &self,
        inbox_id: Uuid,
        public_token: &str,
        identity_secret: &str,
    ) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE inboxes SET public_token = $2, identity_secret = $3, updated_at = $4 WHERE id = $1")
                .bind(inbox_id).bind(public_token).bind(identity_secret).bind(to_millis(now()))
                .execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Sets the public name of a form inbox (its slug, `/f/{slug}`). Widget
    /// tokens and form slugs share the column, so one unique index keeps
    /// every public address distinct.
    pub async fn set_public_token(&self, inbox_id: Uuid, public_token: &str) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE inboxes SET public_token = $2, updated_at = $3 WHERE id = $1")
                .bind(inbox_id).bind(public_token).bind(to_millis(now()))
                .execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// The inbox a widget token names, with its identity secret.
    pub async fn inbox_by_public_token(
        &self,
        public_token: &str,
    ) -> Result<(Inbox, Option<String>)> {
        let row: Option<(Uuid, Option<String>)> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, identity_secret FROM inboxes WHERE public_token = $1")
                .bind(public_token).fetch_optional(p).await?);
        let (id, secret) = row.ok_or(StoreError::NotFound)?;
        Ok((self.inbox(id).await?, secret))
    }

    pub async fn widget_keys(&self, inbox_id: Uuid) -> Result<(Option<String>, Option<String>)> {
        let row: Option<(Option<String>, Option<String>)> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT public_token, identity_secret FROM inboxes WHERE id = $1")
                .bind(inbox_id).fetch_optional(p).await?);
        row.ok_or(StoreError::NotFound)
    }

    /// Records an identity hash as spent until `expires_at`; false when it
    /// was spent already (a replay). Expired ones are swept on the way.
    pub async fn spend_nonce(&self, hash: &str, expires_at: Timestamp) -> Result<bool> {
        let at = to_millis(now());
        let inserted = on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM widget_nonces WHERE expires_at < $1").bind(at).execute(&mut *tx).await?;
            let n = sqlx::query("INSERT INTO widget_nonces (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING")
                .bind(hash).bind(to_millis(expires_at)).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        Ok(inserted == 1)
    }

    /// A contact's newest 200 conversations, oldest first: what the customer
    /// sees as their history, imported ones included.
    pub async fn contact_conversations(&self, contact_id: Uuid) -> Result<Vec<Conversation>> {
        // The newest 200, oldest first: an imported customer may have years
        // of sessions, and the ones they come back about are the latest.
        let sql = format!(
            "SELECT {COLUMNS} FROM conversations c WHERE c.contact_id = $1 ORDER BY c.created_at DESC, c.id DESC LIMIT 200"
        );
        let mut rows: Vec<ConversationRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(contact_id).fetch_all(p).await?);
        rows.reverse();
        self.load_conversations(rows).await
    }

    /// Stores the customer's rating (1–5) of a conversation.
    pub async fn rate_conversation(
        &self,
        id: Uuid,
        score: i64,
        comment: Option<&str>,
    ) -> Result<Conversation> {
        let at = to_millis(now());
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE conversations SET csat_score = $2, csat_comment = $3, csat_at = $4, updated_at = $4 WHERE id = $1")
                .bind(id).bind(score).bind(comment).bind(at).execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        let conversation = self.conversation(id).await?;
        self.publish(Event::ConversationUpdated {
            conversation: conversation.clone(),
        });
        Ok(conversation)
    }
}

impl Store {
    /// For long-lived sockets: the agent, if still active and still holding
    /// the session or token the socket was opened with.
    pub async fn credential_alive(
        &self,
        agent_id: Uuid,
        session: Option<Uuid>,
        token: Option<Uuid>,
    ) -> Result<Option<kefu_core::Agent>> {
        let at = to_millis(now());
        let n: i64 = on_db!(self.db.reader(), p =>
            sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM sessions WHERE id = $1 AND agent_id = $3 AND expires_at > $4)
                      + (SELECT COUNT(*) FROM api_tokens WHERE id = $2 AND agent_id = $3)",
            )
            .bind(session).bind(token).bind(agent_id).bind(at).fetch_one(p).await?);
        if n == 0 {
            return Ok(None);
        }
        let agent = self.agent(agent_id).await?;
        Ok(agent.active.then_some(agent))
    }
}

impl Store {
    /// Sets what a widget visitor typed about themselves (pre-chat form,
    /// offline email) without making it an identity: an unverified email
    /// must never lead to another contact's history.
    pub async fn set_visitor_details(
        &self,
        id: Uuid,
        name: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "UPDATE contacts SET name = COALESCE($2, name), email = COALESCE($3, email),
                   phone = COALESCE($4, phone), updated_at = $5 WHERE id = $1",
            )
            .bind(id).bind(name).bind(email).bind(phone).bind(to_millis(now()))
            .execute(p).await?.rows_affected());
        Ok(())
    }
}

impl Store {
    /// The setting's value, storing `value` first if there is none. Two nodes
    /// racing both end up with the one value that was stored first.
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        on_db!(self.db.writer(), p =>
            sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key).bind(value).execute(p).await?.rows_affected());
        self.setting(key).await?.ok_or(StoreError::NotFound)
    }
}
