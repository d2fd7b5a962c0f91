//! Agents: the people who answer. Password hashes are stored but never leave
//! this module except through `password_hash_by_email`, for the login check.

use crate::rows::{parse_enum, ts};
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{Agent, AgentPatch, NewAgent, Role};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Uuid,
    email: String,
    name: String,
    role: String,
    active: bool,
    avatar_url: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;
    fn try_from(r: AgentRow) -> Result<Agent> {
        Ok(Agent {
            id: r.id,
            email: r.email,
            name: r.name,
            role: parse_enum(&r.role)?,
            active: r.active,
            avatar_url: r.avatar_url,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        })
    }
}

const COLUMNS: &str = "id, email, name, role, active, avatar_url, created_at, updated_at";

impl Store {
    /// `password_hash` is the finished argon2 PHC string (hashing is the
    /// caller's, off the async runtime).
    pub async fn create_agent(&self, new: &NewAgent, password_hash: Option<&str>) -> Result<Agent> {
        let id = Uuid::now_v7();
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            sqlx::query(
                "INSERT INTO agents (id, email, name, role, active, password_hash, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, TRUE, $5, $6, $6)",
            )
            .bind(id).bind(&new.email).bind(&new.name).bind(new.role.as_str())
            .bind(password_hash).bind(at)
            .execute(p).await?;
        });
        self.agent(id).await
    }

    pub async fn agent(&self, id: Uuid) -> Result<Agent> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE id = $1");
        let row: AgentRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    pub async fn agent_by_email(&self, email: &str) -> Result<Agent> {
        let sql = format!("SELECT {COLUMNS} FROM agents WHERE email = $1");
        let row: AgentRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(email).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// The agent and their password hash, for the login check.
    pub async fn agent_with_password(&self, email: &str) -> Result<(Agent, Option<String>)> {
        let agent = self.agent_by_email(email).await?;
        let hash: Option<String> = on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT password_hash FROM agents WHERE id = $1")
                .bind(agent.id).fetch_one(p).await?);
        Ok((agent, hash))
    }

    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        let sql = format!("SELECT {COLUMNS} FROM agents ORDER BY name, id");
        let rows: Vec<AgentRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).fetch_all(p).await?);
        rows.into_iter().map(Agent::try_from).collect()
    }

    pub async fn count_admins(&self) -> Result<i64> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE role = 'admin' AND active")
                .fetch_one(p).await?))
    }

    /// Applies a patch. Deactivation also deletes every session and token of
    /// the agent in the same transaction, so no request authenticated by them
    /// succeeds after this returns.
    pub async fn update_agent(&self, id: Uuid, patch: &AgentPatch) -> Result<Agent> {
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let done = sqlx::query(
                "UPDATE agents SET name = COALESCE($2, name), email = COALESCE($3, email),
                   avatar_url = CASE WHEN $4 THEN $5 ELSE avatar_url END, active = COALESCE($6, active),
                   updated_at = $7 WHERE id = $1",
            )
            .bind(id).bind(&patch.name).bind(&patch.email)
            .bind(patch.avatar_url.is_some()).bind(patch.avatar_url.clone().flatten())
            .bind(patch.active).bind(at)
            .execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            if patch.active == Some(false) {
                sqlx::query("DELETE FROM sessions WHERE agent_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM api_tokens WHERE agent_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        self.agent(id).await
    }

    pub async fn set_password(&self, id: Uuid, password_hash: &str) -> Result<()> {
        let at = to_millis(now());
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE agents SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id).bind(password_hash).bind(at).execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Makes `to` an admin and `from` an agent, in one transaction so the
    /// organisation is never without an admin.
    pub async fn transfer_admin(&self, from: Uuid, to: Uuid) -> Result<()> {
        if from == to {
            return Err(StoreError::Invalid(
                "cannot transfer the admin role to oneself".into(),
            ));
        }
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let up = sqlx::query("UPDATE agents SET role = 'admin', updated_at = $2 WHERE id = $1 AND active")
                .bind(to).bind(at).execute(&mut *tx).await?;
            if up.rows_affected() == 0 {
                return Err(StoreError::Invalid("the new admin must be an active agent".into()));
            }
            sqlx::query("UPDATE agents SET role = 'agent', updated_at = $2 WHERE id = $1")
                .bind(from).bind(at).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn set_role(&self, id: Uuid, role: Role) -> Result<Agent> {
        let at = to_millis(now());
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE agents SET role = $2, updated_at = $3 WHERE id = $1")
                .bind(id).bind(role.as_str()).bind(at).execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.agent(id).await
    }
}
