//! One-time proofs and the form channel's status links: what is spent once
//! (a form challenge, like a visitor's identity hash) and the generation
//! that revokes every status link of a conversation at once.

use crate::App;
use crate::actor::Actor;
use crate::conversations::agent_writing;
use crate::error::{AppError, AppResult};
use kefu_core::time::Timestamp;
use kefu_core::{Conversation, Inbox, InboxKind};
use serde_json::json;
use uuid::Uuid;

fn generation_key(conversation: Uuid) -> String {
    format!("status_link_generation:{conversation}")
}

impl App {
    /// Records `key` as spent until `until`; false when it was spent
    /// already (a replay). Shared by every node through the database.
    pub async fn spend_once(&self, key: &str, until: Timestamp) -> AppResult<bool> {
        Ok(self.store().spend_nonce(key, until).await?)
    }

    /// A conversation's current status-link generation (0 until first
    /// revoked). It lives in the settings table rather than a column:
    /// few conversations ever have one, and the check is one keyed read.
    pub async fn status_link_generation(&self, conversation: Uuid) -> AppResult<i64> {
        Ok(self
            .store()
            .setting(&generation_key(conversation))
            .await?
            .and_then(|g| g.parse().ok())
            .unwrap_or(0))
    }

    /// Revokes every status link of a form conversation by moving to the
    /// next generation, which a new link carries. Audited. Returns the
    /// conversation, its inbox and the new generation.
    pub async fn revoke_status_links(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> AppResult<(Conversation, Inbox, i64)> {
        let a = agent_writing(actor)?;
        let c = self.conversation(actor, id).await?;
        let inbox = self.store().inbox(c.inbox_id).await?;
        if inbox.kind != InboxKind::Form {
            return Err(AppError::Rejected(
                "only form conversations have status links".into(),
            ));
        }
        let next = self.status_link_generation(id).await? + 1;
        self.store()
            .set_setting(&generation_key(id), &next.to_string())
            .await?;
        self.audit(
            Some(a),
            "conversation.status_link_revoked",
            Some(id.to_string()),
            json!({ "generation": next }),
        )
        .await;
        Ok((c, inbox, next))
    }

    /// Deletes the uploads never sent that are older than `age`, and the
    /// files nothing else names; returns what went. Every node runs it; the
    /// store deletes each upload once.
    pub async fn sweep_uploads(
        &self,
        blobs: &kefu_store::blobs::Blobs,
        age: std::time::Duration,
    ) -> AppResult<kefu_store::Swept> {
        Ok(self
            .store()
            .sweep_pending_uploads(blobs, kefu_core::time::now(), age)
            .await?)
    }
}
