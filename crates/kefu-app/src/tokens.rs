//! API tokens (shown once, stored hashed, scoped read/write/admin,
//! revocable) and console sessions (a cookie secret, stored hashed).

use crate::App;
use crate::actor::{AgentActor, Credential};
use crate::error::{AppError, AppResult};
use crate::secrets::{TOKEN_PREFIX, new_secret, sha256};
use kefu_core::time::Timestamp;
use kefu_core::{ApiToken, Session, TokenScope, validate};
use kefu_store::{NewApiToken, NewSession};
use serde_json::json;
use uuid::Uuid;

/// A new token: its record and the secret, which is shown this once.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub info: ApiToken,
    pub token: String,
}

/// A new console session and the secret for its cookie.
#[derive(Debug, Clone)]
pub struct StartedSession {
    pub session: Session,
    pub secret: String,
}

impl App {
    /// Mints a token for the acting agent. An `admin` scope needs the admin
    /// role; a token cannot mint a token of wider scope than its own.
    /// Audited.
    pub async fn mint_token(
        &self,
        who: &AgentActor,
        name: &str,
        scope: TokenScope,
    ) -> AppResult<MintedToken> {
        let name = validate::text("name", name, 1, 100)?;
        if scope == TokenScope::Admin && !who.is_admin() {
            return Err(AppError::Forbidden(
                "only admins may create admin-scoped tokens",
            ));
        }
        if let Credential::Token { scope: own, .. } = who.credential
            && !own.allows(scope)
        {
            return Err(AppError::Forbidden(
                "a token cannot create a token of wider scope",
            ));
        }
        let token = format!("{TOKEN_PREFIX}{}", new_secret());
        let prefix: String = token.chars().take(12).collect();
        let info = self
            .store()
            .create_api_token(NewApiToken {
                agent_id: who.agent.id,
                name: &name,
                scope,
                token_hash: &sha256(&token),
                prefix: &prefix,
            })
            .await?;
        self.audit(
            Some(who),
            "token.created",
            Some(info.id.to_string()),
            json!({ "scope": scope, "name": name }),
        )
        .await;
        Ok(MintedToken { info, token })
    }

    /// Revokes a token of the agent's own; admins may revoke anyone's.
    /// Audited.
    pub async fn revoke_token(&self, who: &AgentActor, id: Uuid) -> AppResult<()> {
        let owner = (!who.is_admin()).then_some(who.agent.id);
        self.store().delete_api_token(id, owner).await?;
        self.audit(Some(who), "token.revoked", Some(id.to_string()), json!({}))
            .await;
        Ok(())
    }

    /// Starts a console session for an agent whose password was checked.
    pub async fn start_session(
        &self,
        agent_id: Uuid,
        user_agent: Option<&str>,
        ip: Option<&str>,
        expires_at: Timestamp,
    ) -> AppResult<StartedSession> {
        let secret = new_secret();
        let session = self
            .store()
            .create_session(NewSession {
                agent_id,
                token_hash: &sha256(&secret),
                user_agent,
                ip,
                expires_at,
            })
            .await?;
        Ok(StartedSession { session, secret })
    }

    /// Ends one of the agent's sessions.
    pub async fn end_session(&self, who: &AgentActor, id: Uuid) -> AppResult<()> {
        Ok(self.store().delete_session(who.agent.id, id).await?)
    }

    /// Ends every session of the agent but the one they act through.
    /// Audited; returns how many.
    pub async fn end_other_sessions(&self, who: &AgentActor) -> AppResult<u64> {
        let keep = match who.credential {
            Credential::Session { id } => Some(id),
            _ => None,
        };
        let revoked = self.store().delete_sessions(who.agent.id, keep).await?;
        self.audit(
            Some(who),
            "auth.sessions_revoked",
            Some(who.agent.id.to_string()),
            json!({ "count": revoked }),
        )
        .await;
        Ok(revoked)
    }
}
