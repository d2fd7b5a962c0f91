//! Inboxes: admins create and change them; a widget inbox gets its public
//! token and identity secret when made, and new ones on rotation; a form
//! inbox's public token is its slug. What each channel checks in an inbox's
//! settings is the transport's to run before (it knows the channel crates).

use crate::App;
use crate::actor::AgentActor;
use crate::admin::require_admin;
use crate::error::{AppError, AppResult};
use crate::secrets::new_secret;
use kefu_core::{Inbox, InboxKind, InboxPatch, NewInbox};
use serde_json::json;
use uuid::Uuid;

/// A public widget token: short enough for a script tag, random enough that
/// inboxes cannot be enumerated.
fn widget_token() -> String {
    new_secret()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect()
}

impl App {
    /// Creates an inbox with its settings already checked by the channel;
    /// `slug` is a form inbox's public address.
    pub async fn create_inbox(
        &self,
        who: &AgentActor,
        mut new: NewInbox,
        slug: Option<String>,
    ) -> AppResult<Inbox> {
        require_admin(who)?;
        new.validate()?;
        let store = self.store();
        let inbox = store.create_inbox(&new).await?;
        if let Some(slug) = slug {
            store.set_public_token(inbox.id, &slug).await?;
        }
        if inbox.kind == InboxKind::Widget {
            store
                .set_widget_keys(inbox.id, &widget_token(), &new_secret())
                .await?;
        }
        self.audit(
            Some(who),
            "inbox.created",
            Some(inbox.id.to_string()),
            json!({ "name": inbox.name, "kind": inbox.kind }),
        )
        .await;
        Ok(inbox)
    }

    pub async fn update_inbox(
        &self,
        who: &AgentActor,
        id: Uuid,
        mut patch: InboxPatch,
        slug: Option<String>,
    ) -> AppResult<Inbox> {
        require_admin(who)?;
        patch.validate()?;
        let inbox = self.store().update_inbox(id, &patch).await?;
        if let Some(slug) = slug {
            self.store().set_public_token(id, &slug).await?;
        }
        self.audit(
            Some(who),
            "inbox.updated",
            Some(id.to_string()),
            json!({ "name": patch.name, "member_ids": patch.member_ids }),
        )
        .await;
        Ok(inbox)
    }

    /// A widget inbox's public token and identity secret, made when it has
    /// none (inboxes from before keys existed).
    pub async fn widget_keys(&self, who: &AgentActor, id: Uuid) -> AppResult<(String, String)> {
        require_admin(who)?;
        self.widget_inbox(id).await?;
        let (token, secret) = self.store().widget_keys(id).await?;
        Ok(match (token, secret) {
            (Some(t), Some(s)) => (t, s),
            _ => {
                let (t, s) = (widget_token(), new_secret());
                self.store().set_widget_keys(id, &t, &s).await?;
                (t, s)
            }
        })
    }

    /// New widget token and identity secret; the old ones stop working. A
    /// form inbox's public token is its slug: rotating would take its page
    /// down, so only widget inboxes rotate.
    pub async fn rotate_widget_keys(&self, who: &AgentActor, id: Uuid) -> AppResult<()> {
        require_admin(who)?;
        self.widget_inbox(id).await?;
        self.store()
            .set_widget_keys(id, &widget_token(), &new_secret())
            .await?;
        self.audit(
            Some(who),
            "inbox.widget_keys_rotated",
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }

    async fn widget_inbox(&self, id: Uuid) -> AppResult<Inbox> {
        let inbox = self.store().inbox(id).await?;
        if inbox.kind != InboxKind::Widget {
            return Err(AppError::Rejected("not a widget inbox".into()));
        }
        Ok(inbox)
    }
}
