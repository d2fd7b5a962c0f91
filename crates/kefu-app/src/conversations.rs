//! Conversations: who may see one, opening one (with its contact and first
//! message), changing status, priority, assignee or team, tags, merging,
//! the read position and the customer's rating.

use crate::App;
use crate::actor::{Actor, AgentActor, Credential};
use crate::error::{AppError, AppResult};
use crate::messages::check_direction;
use kefu_core::{
    Conversation, ConversationPatch, ConversationStatus, Message, NewConversation, TokenScope,
    validate,
};
use serde_json::json;
use uuid::Uuid;

impl App {
    /// The conversation, if `actor` may see it: an agent one of their
    /// inboxes' (all for admins), a customer their own, a channel one of its
    /// inbox. Anything else is `NotFound`, never `Forbidden`, so ids cannot
    /// be probed.
    pub async fn conversation(&self, actor: &Actor, id: Uuid) -> AppResult<Conversation> {
        let store = self.store();
        let c = match actor {
            Actor::Agent(a) => store.visible_conversation(id, a.visibility()).await?,
            Actor::Contact { contact_id, .. } => Some(store.conversation(id).await?)
                .filter(|c| c.contact_id == *contact_id)
                .ok_or(AppError::NotFound)?,
            Actor::Inbound { inbox_id, .. } => Some(store.conversation(id).await?)
                .filter(|c| c.inbox_id == *inbox_id)
                .ok_or(AppError::NotFound)?,
            Actor::System => store.conversation(id).await?,
        };
        Ok(c)
    }

    /// Opens a conversation, with an existing or a new contact and an
    /// optional first message. An agent must be a member of the inbox; a
    /// customer or a channel opens one only in its own inbox.
    pub async fn open_conversation(
        &self,
        actor: &Actor,
        mut new: NewConversation,
    ) -> AppResult<(Conversation, Option<Message>)> {
        match actor {
            Actor::Agent(a) => {
                a.require(TokenScope::Write)?;
                new.validate()?;
                self.check_agent_open(a, &new).await?;
            }
            Actor::Contact {
                contact_id,
                inbox_id,
                ..
            } => {
                new.inbox_id = *inbox_id;
                new.contact_id = Some(*contact_id);
                new.contact = None;
                new.validate()?;
            }
            Actor::Inbound { inbox_id, .. } => {
                if new.inbox_id != *inbox_id {
                    return Err(AppError::invalid("inbox_id", "no such inbox"));
                }
                new.validate()?;
            }
            Actor::System => new.validate()?,
        }
        if let Some(m) = &new.message {
            check_direction(actor, m.direction)?;
        }
        Ok(self
            .store()
            .create_conversation(&new, actor.agent_id())
            .await?)
    }

    async fn check_agent_open(&self, a: &AgentActor, new: &NewConversation) -> AppResult<()> {
        let store = self.store();
        if !a.is_admin() && !store.is_inbox_member(new.inbox_id, a.agent.id).await? {
            return Err(AppError::invalid("inbox_id", "no such inbox"));
        }
        // A contact the agent can see, or one in no conversation yet (just
        // created through POST /contacts): naming any other contact's id
        // would make it visible to them.
        if let Some(contact_id) = new.contact_id
            && !store.contact_visible(contact_id, a.visibility()).await?
            && !store.contact_without_conversations(contact_id).await?
        {
            return Err(AppError::invalid("contact_id", "no such contact"));
        }
        if let Some(agent) = new.assignee_id {
            self.check_assignee(new.inbox_id, agent).await?;
        }
        Ok(())
    }

    /// An assignee must be an active agent who can see the inbox.
    async fn check_assignee(&self, inbox_id: Uuid, agent_id: Uuid) -> AppResult<()> {
        let store = self.store();
        let agent = store
            .agent(agent_id)
            .await
            .map_err(|_| AppError::invalid("assignee_id", "no such agent"))?;
        if !agent.active {
            return Err(AppError::invalid("assignee_id", "the agent is deactivated"));
        }
        if !agent.role.is_admin() && !store.is_inbox_member(inbox_id, agent_id).await? {
            return Err(AppError::invalid(
                "assignee_id",
                "the agent is not a member of this inbox",
            ));
        }
        Ok(())
    }

    /// Changes subject, status (with `snoozed_until` for snoozed),
    /// priority, assignee or team.
    pub async fn update_conversation(
        &self,
        actor: &Actor,
        id: Uuid,
        mut patch: ConversationPatch,
    ) -> AppResult<Conversation> {
        agent_writing(actor)?;
        patch.validate(kefu_core::time::now())?;
        let current = self.conversation(actor, id).await?;
        if let Some(Some(agent)) = patch.assignee_id {
            self.check_assignee(current.inbox_id, agent).await?;
        }
        if let Some(Some(team)) = patch.team_id {
            self.store()
                .team(team)
                .await
                .map_err(|_| AppError::invalid("team_id", "no such team"))?;
        }
        Ok(self.store().update_conversation(id, &patch).await?)
    }

    /// Adds tags (made when new).
    pub async fn tag_conversation(
        &self,
        actor: &Actor,
        id: Uuid,
        names: &[String],
    ) -> AppResult<Conversation> {
        agent_writing(actor)?;
        let tags = validate::tags(names)?;
        self.conversation(actor, id).await?;
        Ok(self.store().tag_conversation(id, &tags).await?)
    }

    pub async fn untag_conversation(
        &self,
        actor: &Actor,
        id: Uuid,
        name: &str,
    ) -> AppResult<Conversation> {
        agent_writing(actor)?;
        self.conversation(actor, id).await?;
        Ok(self.store().untag_conversation(id, name).await?)
    }

    /// Merges `id` into `into`: its messages move there and it is closed
    /// pointing at the target. Both must be visible to the agent. Audited.
    pub async fn merge_conversations(
        &self,
        actor: &Actor,
        id: Uuid,
        into: Uuid,
    ) -> AppResult<(Conversation, Conversation)> {
        let a = agent_writing(actor)?;
        self.conversation(actor, id).await?;
        self.conversation(actor, into).await?;
        let merged = self
            .store()
            .merge_conversations(id, into, Some(a.agent.id))
            .await?;
        self.audit(
            Some(a),
            "conversation.merged",
            Some(id.to_string()),
            json!({ "into": into }),
        )
        .await;
        Ok(merged)
    }

    /// Records how far the reader has read the conversation and tells the
    /// other side: an agent's position (at most the last message) is
    /// stored for their unread counts; a customer's is only signalled.
    /// Returns the position.
    pub async fn mark_read(&self, actor: &Actor, id: Uuid, seq: i64) -> AppResult<i64> {
        let (c, seq) = match actor {
            Actor::Agent(_) => {
                let a = agent_writing(actor)?;
                let c = self.conversation(actor, id).await?;
                let seq = seq.clamp(0, c.last_seq);
                self.store().mark_read(a.agent.id, id, seq).await?;
                (c, seq)
            }
            Actor::Contact { .. } => (self.conversation(actor, id).await?, seq),
            _ => return Err(AppError::Forbidden("only people read conversations")),
        };
        self.signal_read(actor, &c, seq).await;
        Ok(seq)
    }

    /// A customer rates their resolved conversation, 1 to 5, with an
    /// optional comment (trimmed, at most 1,000 characters).
    pub async fn rate_conversation(
        &self,
        actor: &Actor,
        id: Uuid,
        score: i64,
        comment: Option<String>,
    ) -> AppResult<()> {
        if !matches!(actor, Actor::Contact { .. }) {
            return Err(AppError::Rejected(
                "only customers rate conversations".into(),
            ));
        }
        let c = self
            .conversation(actor, id)
            .await
            .map_err(|_| AppError::Rejected("no such conversation".into()))?;
        if !matches!(
            c.status,
            ConversationStatus::Resolved | ConversationStatus::Closed
        ) {
            return Err(AppError::Rejected(
                "a conversation is rated after it is resolved".into(),
            ));
        }
        if !(1..=5).contains(&score) {
            return Err(AppError::Rejected("score: 1 to 5".into()));
        }
        let comment = comment
            .map(|s| s.trim().chars().take(1000).collect::<String>())
            .filter(|s| !s.is_empty());
        self.store()
            .rate_conversation(id, score, comment.as_deref())
            .await?;
        Ok(())
    }

    /// Records an admin action or a security event in the audit log. A
    /// failure to write it is logged but does not undo the action, which is
    /// committed.
    pub async fn audit(
        &self,
        who: Option<&AgentActor>,
        action: &str,
        target: Option<String>,
        mut details: serde_json::Value,
    ) {
        let (actor_id, actor_label) = match who {
            Some(a) if a.credential == Credential::Console => {
                if let Some(map) = details.as_object_mut() {
                    map.insert("via".into(), json!("kefu admin"));
                }
                (None, self.operator())
            }
            Some(a) => (Some(a.agent.id), a.agent.email.as_str()),
            None => (None, "system"),
        };
        let entry = kefu_store::NewAudit {
            actor_id,
            actor_label,
            action,
            target,
            ip: who.and_then(|p| p.ip.map(|i| i.to_string())),
            details,
        };
        if let Err(e) = self.store().audit(entry).await {
            tracing::error!(error = %e, action, "writing the audit log failed");
        }
    }
}

/// The agent behind an actor that changes a conversation (with a write
/// credential); customers and channels only post messages.
pub(crate) fn agent_writing(actor: &Actor) -> AppResult<&AgentActor> {
    let a = actor
        .agent()
        .ok_or(AppError::Forbidden("only agents change conversations"))?;
    a.require(TokenScope::Write)?;
    Ok(a)
}
