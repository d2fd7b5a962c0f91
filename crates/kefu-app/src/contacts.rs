//! Contacts: agents create and edit them; a contact is visible to an agent
//! who can see one of its conversations (admins see all).

use crate::App;
use crate::actor::{Actor, AgentActor};
use crate::error::{AppError, AppResult};
use kefu_core::{Contact, ContactPatch, Identity, NewContact, TokenScope, validate};
use uuid::Uuid;

impl App {
    pub async fn create_contact(&self, actor: &Actor, mut new: NewContact) -> AppResult<Contact> {
        writing_agent(actor)?;
        new.validate()?;
        Ok(self.store().create_contact(&new).await?)
    }

    /// `NotFound` unless the agent may see the contact.
    pub async fn contact(&self, actor: &Actor, id: Uuid) -> AppResult<Contact> {
        let a = actor.agent().ok_or(AppError::NotFound)?;
        Ok(self.store().visible_contact(id, a.visibility()).await?)
    }

    async fn check_contact_visible(&self, a: &AgentActor, id: Uuid) -> AppResult<()> {
        if self.store().contact_visible(id, a.visibility()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound)
        }
    }

    pub async fn update_contact(
        &self,
        actor: &Actor,
        id: Uuid,
        mut patch: ContactPatch,
    ) -> AppResult<Contact> {
        let a = writing_agent(actor)?;
        self.check_contact_visible(a, id).await?;
        patch.validate()?;
        Ok(self.store().update_contact(id, &patch).await?)
    }

    /// Adds an external identity; `Conflict` when another contact holds it.
    pub async fn add_identity(
        &self,
        actor: &Actor,
        id: Uuid,
        mut identity: Identity,
    ) -> AppResult<Contact> {
        let a = writing_agent(actor)?;
        self.check_contact_visible(a, id).await?;
        validate::identity(&mut identity)?;
        Ok(self.store().add_identity(id, &identity).await?)
    }

    pub async fn remove_identity(
        &self,
        actor: &Actor,
        id: Uuid,
        kind: &str,
        value: &str,
    ) -> AppResult<Contact> {
        let a = writing_agent(actor)?;
        self.check_contact_visible(a, id).await?;
        Ok(self.store().remove_identity(id, kind, value).await?)
    }
}

fn writing_agent(actor: &Actor) -> AppResult<&AgentActor> {
    let a = actor
        .agent()
        .ok_or(AppError::Forbidden("only agents edit contacts"))?;
    a.require(TokenScope::Write)?;
    Ok(a)
}
