//! Sessions (browser logins) and API tokens. Both are looked up by the
//! SHA-256 of the secret the client holds; the secret itself is never stored,
//! so a copy of the database lets nobody in.

use crate::rows::{opt_ts, parse_enum, ts};
use crate::{Result, Store, StoreError};
use kefu_core::time::{Timestamp, now, to_millis};
use kefu_core::{Agent, ApiToken, Session, TokenScope};
use uuid::Uuid;

pub struct NewSession<'a> {
    pub agent_id: Uuid,
    pub token_hash: &'a [u8],
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub expires_at: Timestamp,
}

pub struct NewApiToken<'a> {
    pub agent_id: Uuid,
    pub name: &'a str,
    pub scope: TokenScope,
    pub token_hash: &'a [u8],
    pub prefix: &'a str,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    agent_id: Uuid,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Session {
        Session {
            id: r.id,
            agent_id: r.agent_id,
            user_agent: r.user_agent,
            ip: r.ip,
            created_at: ts(r.created_at),
            last_seen_at: ts(r.last_seen_at),
            expires_at: ts(r.expires_at),
        }
    }
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Uuid,
    agent_id: Uuid,
    name: String,
    scope: String,
    prefix: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<ApiToken> {
        Ok(ApiToken {
            id: r.id,
            agent_id: r.agent_id,
            name: r.name,
            scope: parse_enum(&r.scope)?,
            prefix: r.prefix,
            created_at: ts(r.created_at),
            last_used_at: opt_ts(r.last_used_at),
        })
    }
}

const SESSION_COLUMNS: &str = "id, agent_id, user_agent, ip, created_at, last_seen_at, expires_at";
const TOKEN_COLUMNS: &str = "id, agent_id, name, scope, prefix, created_at, last_used_at";

/// Last-seen times are written at most this often, so that authenticating a
/// request is a read, not a write.
const TOUCH_INTERVAL_MS: i64 = 60_000;

impl Store {
    pub async fn create_session(&self, new: NewSession<'_>) -> Result<Session> {
        let id = Uuid::now_v7();
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            sqlx::query(
                "INSERT INTO sessions (id, agent_id, token_hash, user_agent, ip, created_at, last_seen_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
            )
            .bind(id).bind(new.agent_id).bind(new.token_hash).bind(new.user_agent)
            .bind(new.ip).bind(at).bind(to_millis(new.expires_at))
            .execute(p).await?;
        });
        self.session(id).await
    }

    async fn session(&self, id: Uuid) -> Result<Session> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row: SessionRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(row.into())
    }

    /// The live session with this token hash and its active agent.
    pub async fn session_by_token(&self, token_hash: &[u8]) -> Result<(Session, Agent)> {
        let at = to_millis(now());
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1 AND expires_at > $2"
        );
        let row: SessionRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(token_hash).bind(at).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        let agent = self.agent(row.agent_id).await?;
        if !agent.active {
            return Err(StoreError::NotFound);
        }
        if at - row.last_seen_at > TOUCH_INTERVAL_MS {
            on_db!(self.db.writer(), p =>
                sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                    .bind(row.id).bind(at).execute(p).await?.rows_affected());
        }
        Ok((row.into(), agent))
    }

    pub async fn list_sessions(&self, agent_id: Uuid) -> Result<Vec<Session>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE agent_id = $1 AND expires_at > $2
             ORDER BY last_seen_at DESC"
        );
        let rows: Vec<SessionRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(agent_id).bind(to_millis(now())).fetch_all(p).await?);
        Ok(rows.into_iter().map(Session::from).collect())
    }

    pub async fn delete_session(&self, agent_id: Uuid, id: Uuid) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM sessions WHERE id = $1 AND agent_id = $2")
                .bind(id).bind(agent_id).execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// Deletes every session of the agent but `keep`; returns how many went.
    pub async fn delete_sessions(&self, agent_id: Uuid, keep: Option<Uuid>) -> Result<u64> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM sessions WHERE agent_id = $1 AND ($2 IS NULL OR id <> $2)")
                .bind(agent_id).bind(keep).execute(p).await?.rows_affected());
        Ok(done)
    }

    pub async fn create_api_token(&self, new: NewApiToken<'_>) -> Result<ApiToken> {
        let id = Uuid::now_v7();
        let at = to_millis(now());
        on_db!(self.db.writer(), p => {
            sqlx::query(
                "INSERT INTO api_tokens (id, agent_id, name, scope, token_hash, prefix, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id).bind(new.agent_id).bind(new.name).bind(new.scope.as_str())
            .bind(new.token_hash).bind(new.prefix).bind(at)
            .execute(p).await?;
        });
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
        let row: TokenRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_one(p).await?);
        row.try_into()
    }

    /// The token with this hash and its active agent; records the use.
    pub async fn api_token_by_hash(&self, token_hash: &[u8]) -> Result<(ApiToken, Agent)> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row: TokenRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(token_hash).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        let agent = self.agent(row.agent_id).await?;
        if !agent.active {
            return Err(StoreError::NotFound);
        }
        let at = to_millis(now());
        if row.last_used_at.is_none_or(|t| at - t > TOUCH_INTERVAL_MS) {
            on_db!(self.db.writer(), p =>
                sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(row.id).bind(at).execute(p).await?.rows_affected());
        }
        Ok((row.try_into()?, agent))
    }

    pub async fn list_api_tokens(&self, agent_id: Uuid) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE agent_id = $1 ORDER BY created_at DESC"
        );
        let rows: Vec<TokenRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(agent_id).fetch_all(p).await?);
        rows.into_iter().map(ApiToken::try_from).collect()
    }

    /// Deletes a token; with `agent_id` only if it belongs to that agent.
    pub async fn delete_api_token(&self, id: Uuid, agent_id: Option<Uuid>) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND ($2 IS NULL OR agent_id = $2)")
                .bind(id).bind(agent_id).execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    pub async fn delete_api_tokens(&self, agent_id: Uuid) -> Result<u64> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM api_tokens WHERE agent_id = $1").bind(agent_id).execute(p).await?.rows_affected());
        Ok(done)
    }
}
