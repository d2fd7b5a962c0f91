//! The audit log: who did what to whom, from where. Append-only.

use crate::cursor::{self, Page};
use crate::rows::ts;
use crate::{Result, Store};
use kefu_core::AuditEntry;
use kefu_core::time::{now, to_millis};
use serde_json::Value;
use uuid::Uuid;

pub struct NewAudit<'a> {
    pub actor_id: Option<Uuid>,
    pub actor_label: &'a str,
    pub action: &'a str,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub details: Value,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: Uuid,
    actor_id: Option<Uuid>,
    actor_label: String,
    action: String,
    target: Option<String>,
    ip: Option<String>,
    details: Value,
    created_at: i64,
}

impl Store {
    pub async fn audit(&self, e: NewAudit<'_>) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO audit_log (id, actor_id, actor_label, action, target, ip, details, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(Uuid::now_v7()).bind(e.actor_id).bind(e.actor_label).bind(e.action)
            .bind(e.target).bind(e.ip).bind(&e.details).bind(to_millis(now()))
            .execute(p).await?.rows_affected());
        Ok(())
    }

    /// Newest first; `action` filters by exact action name.
    pub async fn list_audit(
        &self,
        action: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<AuditEntry>> {
        let (c_at, c_id) = match cursor {
            Some(c) => {
                let (a, i) = cursor::decode(c)?;
                (Some(a), Some(i))
            }
            None => (None, None),
        };
        let rows: Vec<AuditRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(
                "SELECT id, actor_id, actor_label, action, target, ip, details, created_at FROM audit_log
                 WHERE ($1 IS NULL OR action = $1)
                   AND ($2 IS NULL OR (created_at, id) < ($2, $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4",
            )
            .bind(action).bind(c_at).bind(c_id).bind(limit as i64 + 1)
            .fetch_all(p).await?);
        let items = rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                actor_id: r.actor_id,
                actor_label: r.actor_label,
                action: r.action,
                target: r.target,
                ip: r.ip,
                details: r.details,
                created_at: ts(r.created_at),
            })
            .collect();
        Ok(cursor::page(items, limit, |e| {
            (e.created_at.timestamp_millis(), e.id)
        }))
    }
}
