//! `post_message`: the one way a message enters a conversation, whoever
//! writes it — an agent through the API or the console socket, a widget
//! visitor, a form customer on their status page, a mail that arrived, later
//! a bot or the WeChat channel. Each caller names an [`Actor`] and a
//! [`Target`]; the rules of who may write what where, the validation and
//! the idempotency key are here, once. Typing and read signals, which are
//! not stored, are checked here too.

use crate::App;
use crate::actor::{Actor, Channel};
use crate::conversations::agent_writing;
use crate::error::{AppError, AppResult};
use kefu_core::{
    Conversation, ConversationStatus, Direction, Message, NewConversation, NewMessage, Priority,
    TokenScope,
};
use kefu_hub::{Party, Signal};
use uuid::Uuid;

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// This conversation, which the actor must be able to see.
    Conversation(Uuid),
    /// A customer's chat (widget): the named conversation if it is theirs,
    /// in their inbox and still going; else their latest such one; else a
    /// new conversation is opened with the message.
    Chat { named: Option<Uuid> },
}

/// What posting gave.
#[derive(Debug, Clone)]
pub struct Posted {
    pub message: Message,
    /// False when an earlier message with the same idempotency key was
    /// returned instead (a resend).
    pub created: bool,
}

/// The idempotency key of a message a client numbers itself (`client_id`,
/// 1 to 100 characters): per agent for agents, per conversation for
/// customers, so a resend after a lost answer is stored once.
pub fn client_key(actor: &Actor, client_id: &str) -> AppResult<String> {
    if client_id.is_empty() || client_id.len() > 100 {
        return Err(AppError::Rejected("client_id: 1 to 100 characters".into()));
    }
    Ok(match actor {
        Actor::Agent(a) => format!("a:{}:{client_id}", a.agent.id.simple()),
        _ => format!("w:{client_id}"),
    })
}

/// Which directions an actor may write: agents replies, notes and (for
/// API inboxes) incoming messages on a customer's behalf; customers and
/// channels incoming messages; system lines only kefu itself.
pub(crate) fn check_direction(actor: &Actor, direction: Direction) -> AppResult<()> {
    match (actor, direction) {
        (Actor::System, _) => Ok(()),
        (Actor::Agent(_), Direction::System) => Err(AppError::invalid(
            "direction",
            "system messages are written by kefu only",
        )),
        (Actor::Agent(_), _) => Ok(()),
        (_, Direction::Incoming) => Ok(()),
        (Actor::Contact { .. }, Direction::Note) => {
            Err(AppError::Rejected("customers cannot write notes".into()))
        }
        (_, _) => Err(AppError::invalid(
            "direction",
            "only incoming messages come from customers",
        )),
    }
}

impl App {
    /// Adds a message. Checks, in order: the actor's right to write, the
    /// direction it may write, the message itself, the conversation (which
    /// the actor must see; a merged one refuses), then appends in one
    /// transaction; the store publishes it after the commit. Resending the
    /// same `external_id` returns the first message (`created: false`).
    pub async fn post_message(
        &self,
        actor: &Actor,
        target: Target,
        mut m: NewMessage,
    ) -> AppResult<Posted> {
        if let Actor::Agent(a) = actor {
            a.require(TokenScope::Write)?;
        }
        check_direction(actor, m.direction)?;
        m.validate()?;
        let id = match target {
            Target::Conversation(id) => self.conversation(actor, id).await?.id,
            Target::Chat { named } => match self.chat_of(actor, named).await? {
                Some(c) => c.id,
                None => return self.open_chat(actor, m).await,
            },
        };
        let a = self
            .store()
            .append_message(id, &m, actor.agent_id())
            .await?;
        Ok(Posted {
            message: a.message,
            created: a.created,
        })
    }

    /// Where a customer's chat message goes (see [`Target::Chat`]); `None`
    /// opens a new conversation.
    async fn chat_of(&self, actor: &Actor, named: Option<Uuid>) -> AppResult<Option<Conversation>> {
        let (contact_id, inbox_id) = chatting(actor)?;
        let going = |c: &Conversation| {
            c.inbox_id == inbox_id
                && c.merged_into_id.is_none()
                && !matches!(
                    c.status,
                    ConversationStatus::Resolved | ConversationStatus::Closed
                )
        };
        if let Some(id) = named
            && let Ok(c) = self.conversation(actor, id).await
            && going(&c)
        {
            return Ok(Some(c));
        }
        let all = self.store().contact_conversations(contact_id).await?;
        Ok(all.into_iter().rev().find(going))
    }

    async fn open_chat(&self, actor: &Actor, m: NewMessage) -> AppResult<Posted> {
        let (contact_id, inbox_id) = chatting(actor)?;
        let new = NewConversation {
            inbox_id,
            contact_id: Some(contact_id),
            contact: None,
            subject: None,
            priority: Priority::Medium,
            assignee_id: None,
            team_id: None,
            tags: vec![],
            message: Some(m),
        };
        let (_, message) = self.open_conversation(actor, new).await?;
        Ok(Posted {
            message: message.ok_or_else(|| AppError::internal("the first message is missing"))?,
            created: true,
        })
    }

    /// Tells the other side that the actor is typing (or stopped). An agent
    /// needs a write credential; a conversation the actor may not see is
    /// `NotFound` and nothing is sent.
    pub async fn typing(&self, actor: &Actor, id: Uuid, on: bool) -> AppResult<()> {
        if actor.agent().is_some() {
            agent_writing(actor)?;
        }
        let c = self.conversation(actor, id).await?;
        let Some(from) = party(actor) else {
            return Err(AppError::Forbidden("only people type"));
        };
        self.emit(Signal::Typing {
            conversation_id: id,
            inbox_id: c.inbox_id,
            contact_id: c.contact_id,
            from,
            on,
        })
        .await;
        Ok(())
    }

    pub(crate) async fn signal_read(&self, actor: &Actor, c: &Conversation, seq: i64) {
        if let Some(from) = party(actor) {
            self.emit(Signal::Read {
                conversation_id: c.id,
                inbox_id: c.inbox_id,
                contact_id: c.contact_id,
                from,
                seq,
            })
            .await;
        }
    }

    async fn emit(&self, s: Signal) {
        if let Some(hub) = self.hub() {
            hub.signal(s).await;
        }
    }
}

/// The contact and inbox of a customer's chat; only customers chat
/// without naming the conversation.
fn chatting(actor: &Actor) -> AppResult<(Uuid, Uuid)> {
    match actor {
        Actor::Contact {
            contact_id,
            inbox_id,
            ..
        } => Ok((*contact_id, *inbox_id)),
        _ => Err(AppError::Rejected("conversation_id is required".into())),
    }
}

/// Who a signal is from, as sockets show it.
fn party(actor: &Actor) -> Option<Party> {
    match actor {
        Actor::Agent(a) => Some(Party::Agent {
            id: a.agent.id,
            name: a.agent.name.clone(),
        }),
        Actor::Contact {
            channel: Channel::Widget | Channel::Form,
            ..
        } => Some(Party::Contact),
        _ => None,
    }
}
