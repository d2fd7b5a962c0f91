//! What admins manage — agents, teams, tags, canned responses — and an
//! agent's own profile and password. Every change an admin makes is
//! audited here, so no transport can forget to.

use crate::App;
use crate::actor::{AgentActor, Credential};
use crate::error::{AppError, AppResult};
use crate::secrets::hash_password;
use kefu_core::{
    Agent, AgentPatch, CannedResponse, CannedResponsePatch, NewAgent, NewCannedResponse, NewTag,
    NewTeam, Tag, TagPatch, Team, TeamPatch, TokenScope,
};
use serde_json::json;
use uuid::Uuid;

/// The admin role, acting with admin rights (a token needs the admin scope).
pub fn require_admin(who: &AgentActor) -> AppResult<()> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(AppError::Forbidden("admin role required"))
    }
}

/// How many sessions and API tokens a revocation ended.
#[derive(Debug, Clone, Copy)]
pub struct AccessRevoked {
    pub sessions: u64,
    pub tokens: u64,
}

impl App {
    /// Creates an agent (admins; the operator at the command line).
    pub async fn create_agent(&self, who: &AgentActor, mut new: NewAgent) -> AppResult<Agent> {
        if who.credential != Credential::Console {
            require_admin(who)?;
        }
        new.validate()?;
        let hash = match new.password.clone() {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let agent = self.store().create_agent(&new, hash.as_deref()).await?;
        self.audit(
            Some(who),
            "agent.created",
            Some(agent.id.to_string()),
            json!({ "email": agent.email, "role": agent.role }),
        )
        .await;
        Ok(agent)
    }

    /// Changes an agent. Agents may change their own name and avatar;
    /// everything else, and other agents, is for admins. Deactivating signs
    /// the agent out everywhere and revokes their tokens at once.
    pub async fn update_agent(
        &self,
        who: &AgentActor,
        id: Uuid,
        mut patch: AgentPatch,
    ) -> AppResult<Agent> {
        who.require(TokenScope::Write)?;
        patch.validate()?;
        let own_profile_only =
            id == who.agent.id && patch.email.is_none() && patch.active.is_none();
        if !who.is_admin() && !own_profile_only {
            return Err(AppError::Forbidden("admin role required"));
        }
        if patch.active == Some(false) {
            if id == who.agent.id {
                return Err(AppError::Rejected(
                    "you cannot deactivate yourself; transfer the admin role first".into(),
                ));
            }
            let target = self.store().agent(id).await?;
            if target.role.is_admin() && self.store().count_admins().await? <= 1 {
                return Err(AppError::Rejected(
                    "cannot deactivate the last admin".into(),
                ));
            }
        }
        let agent = self.store().update_agent(id, &patch).await?;
        if who.is_admin() && id != who.agent.id {
            self.audit(
                Some(who),
                "agent.updated",
                Some(id.to_string()),
                json!({ "active": patch.active, "email": patch.email, "name": patch.name }),
            )
            .await;
        }
        Ok(agent)
    }

    /// Signs an agent out everywhere and revokes all their API tokens.
    pub async fn revoke_access(&self, who: &AgentActor, id: Uuid) -> AppResult<AccessRevoked> {
        require_admin(who)?;
        self.store().agent(id).await?;
        let sessions = self.store().delete_sessions(id, None).await?;
        let tokens = self.store().delete_api_tokens(id).await?;
        self.audit(
            Some(who),
            "agent.access_revoked",
            Some(id.to_string()),
            json!({ "sessions": sessions, "tokens": tokens }),
        )
        .await;
        Ok(AccessRevoked { sessions, tokens })
    }

    /// Makes agent `id` an admin and the acting admin an agent.
    pub async fn transfer_admin(&self, who: &AgentActor, id: Uuid) -> AppResult<Agent> {
        require_admin(who)?;
        self.store().agent(id).await?;
        self.store().transfer_admin(who.agent.id, id).await?;
        self.audit(
            Some(who),
            "agent.admin_transferred",
            Some(id.to_string()),
            json!({ "from": who.agent.id }),
        )
        .await;
        Ok(self.store().agent(id).await?)
    }

    /// Sets the agent's new password (the old one checked by the caller,
    /// who also slows guessing down) and signs out every other session.
    pub async fn set_own_password(&self, who: &AgentActor, new_password: String) -> AppResult<()> {
        kefu_core::validate::password(&new_password)?;
        let hash = hash_password(new_password).await?;
        self.store().set_password(who.agent.id, &hash).await?;
        let keep = match who.credential {
            Credential::Session { id } => Some(id),
            _ => None,
        };
        self.store().delete_sessions(who.agent.id, keep).await?;
        self.audit(
            Some(who),
            "auth.password_changed",
            Some(who.agent.id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }

    pub async fn create_team(&self, who: &AgentActor, mut new: NewTeam) -> AppResult<Team> {
        require_admin(who)?;
        new.validate()?;
        let team = self.store().create_team(&new).await?;
        self.audit(
            Some(who),
            "team.created",
            Some(team.id.to_string()),
            json!({ "name": team.name }),
        )
        .await;
        Ok(team)
    }

    pub async fn update_team(
        &self,
        who: &AgentActor,
        id: Uuid,
        mut patch: TeamPatch,
    ) -> AppResult<Team> {
        require_admin(who)?;
        patch.validate()?;
        let team = self.store().update_team(id, &patch).await?;
        self.audit(
            Some(who),
            "team.updated",
            Some(id.to_string()),
            json!({ "name": patch.name, "member_ids": patch.member_ids }),
        )
        .await;
        Ok(team)
    }

    pub async fn delete_team(&self, who: &AgentActor, id: Uuid) -> AppResult<()> {
        require_admin(who)?;
        self.store().delete_team(id).await?;
        self.audit(Some(who), "team.deleted", Some(id.to_string()), json!({}))
            .await;
        Ok(())
    }

    /// Any agent may make a tag (they tag conversations with new ones too);
    /// renaming and deleting are for admins.
    pub async fn create_tag(&self, who: &AgentActor, mut new: NewTag) -> AppResult<Tag> {
        who.require(TokenScope::Write)?;
        new.validate()?;
        Ok(self.store().create_tag(&new).await?)
    }

    pub async fn update_tag(
        &self,
        who: &AgentActor,
        id: Uuid,
        mut patch: TagPatch,
    ) -> AppResult<Tag> {
        require_admin(who)?;
        patch.validate()?;
        let tag = self.store().update_tag(id, &patch).await?;
        self.audit(
            Some(who),
            "tag.updated",
            Some(id.to_string()),
            json!({ "name": patch.name }),
        )
        .await;
        Ok(tag)
    }

    pub async fn delete_tag(&self, who: &AgentActor, id: Uuid) -> AppResult<()> {
        require_admin(who)?;
        self.store().delete_tag(id).await?;
        self.audit(Some(who), "tag.deleted", Some(id.to_string()), json!({}))
            .await;
        Ok(())
    }

    pub async fn create_canned(
        &self,
        who: &AgentActor,
        mut new: NewCannedResponse,
    ) -> AppResult<CannedResponse> {
        require_admin(who)?;
        new.validate()?;
        let c = self.store().create_canned(&new, who.agent.id).await?;
        self.audit(
            Some(who),
            "canned_response.created",
            Some(c.id.to_string()),
            json!({ "shortcut": c.shortcut }),
        )
        .await;
        Ok(c)
    }

    pub async fn update_canned(
        &self,
        who: &AgentActor,
        id: Uuid,
        mut patch: CannedResponsePatch,
    ) -> AppResult<CannedResponse> {
        require_admin(who)?;
        patch.validate()?;
        let c = self.store().update_canned(id, &patch).await?;
        self.audit(
            Some(who),
            "canned_response.updated",
            Some(id.to_string()),
            json!({ "shortcut": c.shortcut }),
        )
        .await;
        Ok(c)
    }

    pub async fn delete_canned(&self, who: &AgentActor, id: Uuid) -> AppResult<()> {
        require_admin(who)?;
        self.store().delete_canned(id).await?;
        self.audit(
            Some(who),
            "canned_response.deleted",
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }
}
