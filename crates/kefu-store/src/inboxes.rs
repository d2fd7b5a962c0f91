//! Inboxes (one per channel instance) and their members. Membership decides
//! which conversations an agent sees.

use crate::rows::{parse_enum, ts};
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{Inbox, InboxPatch, NewInbox, SlaPolicy};
use serde_json::Value;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct InboxRow {
    id: Uuid,
    kind: String,
    name: String,
    sla_first_response_minutes: Option<i64>,
    sla_resolution_minutes: Option<i64>,
    settings: Value,
    created_at: i64,
    updated_at: i64,
}

const COLUMNS: &str = "id, kind, name, sla_first_response_minutes, sla_resolution_minutes, settings, created_at, updated_at";

fn minutes(v: Option<i64>) -> Option<u32> {
    v.and_then(|m| u32::try_from(m).ok())
}

impl InboxRow {
    fn into_inbox(self, member_ids: Vec<Uuid>) -> Result<Inbox> {
        Ok(Inbox {
            id: self.id,
            kind: parse_enum(&self.kind)?,
            name: self.name,
            sla: SlaPolicy {
                first_response_minutes: minutes(self.sla_first_response_minutes),
                resolution_minutes: minutes(self.sla_resolution_minutes),
            },
            settings: self.settings,
            member_ids,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

/// Inside a transaction: replaces the member list of an inbox.
macro_rules! set_inbox_members {
    ($tx:expr, $inbox:expr, $members:expr) => {{
        sqlx::query("DELETE FROM inbox_members WHERE inbox_id = $1").bind($inbox).execute(&mut *$tx).await?;
        for agent in $members {
            sqlx::query("INSERT INTO inbox_members (inbox_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind($inbox).bind(agent).execute(&mut *$tx).await?;
        }
    }};
}

impl Store {
    pub async fn create_inbox(&self, new: &NewInbox) -> Result<Inbox> {
        let id = Uuid::now_v7();
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO inboxes (id, kind, name, sla_first_response_minutes, sla_resolution_minutes, settings, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(id).bind(new.kind.as_str()).bind(&new.name)
            .bind(new.sla.first_response_minutes.map(i64::from))
            .bind(new.sla.resolution_minutes.map(i64::from))
            .bind(&new.settings).bind(at)
            .execute(&mut *tx).await?;
            set_inbox_members!(tx, id, &new.member_ids);
            tx.commit().await?;
        });
        self.inbox(id).await
    }

    pub async fn inbox(&self, id: Uuid) -> Result<Inbox> {
        let sql = format!("SELECT {COLUMNS} FROM inboxes WHERE id = $1");
        let row: InboxRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        let members = self.inbox_members(id).await?;
        row.into_inbox(members)
    }

    pub async fn inbox_members(&self, id: Uuid) -> Result<Vec<Uuid>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT agent_id FROM inbox_members WHERE inbox_id = $1 ORDER BY agent_id")
                .bind(id).fetch_all(p).await?))
    }

    /// Who sees the inbox's conversations: its members and every active admin.
    pub async fn inbox_watchers(&self, id: Uuid) -> Result<Vec<Uuid>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar(
                "SELECT agent_id FROM inbox_members WHERE inbox_id = $1
                 UNION SELECT id FROM agents WHERE role = 'admin' AND active",
            )
            .bind(id).fetch_all(p).await?))
    }

    /// Inboxes the agent is a member of.
    pub async fn agent_inbox_ids(&self, agent_id: Uuid) -> Result<Vec<Uuid>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT inbox_id FROM inbox_members WHERE agent_id = $1")
                .bind(agent_id).fetch_all(p).await?))
    }

    pub async fn is_inbox_member(&self, inbox_id: Uuid, agent_id: Uuid) -> Result<bool> {
        let n: i64 = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT COUNT(*) FROM inbox_members WHERE inbox_id = $1 AND agent_id = $2")
                .bind(inbox_id).bind(agent_id).fetch_one(p).await?);
        Ok(n > 0)
    }

    /// All inboxes, or with `member` only those that agent belongs to.
    pub async fn list_inboxes(&self, member: Option<Uuid>) -> Result<Vec<Inbox>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM inboxes
             WHERE $1 IS NULL OR id IN (SELECT inbox_id FROM inbox_members WHERE agent_id = $1)
             ORDER BY name, id"
        );
        let rows: Vec<InboxRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(member).fetch_all(p).await?);
        let pairs: Vec<(Uuid, Uuid)> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT inbox_id, agent_id FROM inbox_members ORDER BY agent_id").fetch_all(p).await?);
        rows.into_iter()
            .map(|r| {
                let members = pairs
                    .iter()
                    .filter(|(i, _)| *i == r.id)
                    .map(|(_, a)| *a)
                    .collect();
                r.into_inbox(members)
            })
            .collect()
    }

    pub async fn update_inbox(&self, id: Uuid, patch: &InboxPatch) -> Result<Inbox> {
        let at = to_millis(now());
        let (set_sla, first, resolution) = match patch.sla {
            Some(s) => (
                true,
                s.first_response_minutes.map(i64::from),
                s.resolution_minutes.map(i64::from),
            ),
            None => (false, None, None),
        };
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE inboxes SET name = COALESCE($2, name), settings = COALESCE($3, settings),
                   sla_first_response_minutes = CASE WHEN $4 THEN $5 ELSE sla_first_response_minutes END,
                   sla_resolution_minutes = CASE WHEN $4 THEN $6 ELSE sla_resolution_minutes END,
                   updated_at = $7
                 WHERE id = $1",
            )
            .bind(id).bind(&patch.name).bind(&patch.settings).bind(set_sla).bind(first).bind(resolution).bind(at)
            .execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(members) = &patch.member_ids {
                set_inbox_members!(tx, id, members);
            }
            tx.commit().await?;
        });
        self.inbox(id).await
    }
}
