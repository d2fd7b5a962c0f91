//! Who is acting. Every transport turns its credential into an [`Actor`]
//! before it calls an operation; the operation alone decides what that
//! actor may do.

use crate::error::{AppError, AppResult};
use kefu_core::{Agent, Role, TokenScope};
use kefu_store::Visibility;
use std::net::IpAddr;
use uuid::Uuid;

/// How an agent proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A browser session: the agent's whole role.
    Session { id: Uuid },
    /// An API token: no more than its scope.
    Token { id: Uuid, scope: TokenScope },
    /// The operator at the command line (`kefu admin …`).
    Console,
}

impl Credential {
    /// Whether this credential may act at `needed` scope. A session acts with
    /// the agent's full role; a token only within its scope.
    pub fn allows(self, needed: TokenScope) -> bool {
        match self {
            Credential::Session { .. } | Credential::Console => true,
            Credential::Token { scope, .. } => scope.allows(needed),
        }
    }
}

/// Which conversations and contacts an agent sees: an admin all, an agent
/// those of the inboxes they are a member of.
pub fn visibility_of(agent: &Agent) -> Visibility {
    if agent.role.is_admin() {
        Visibility::All
    } else {
        Visibility::MemberOf(agent.id)
    }
}

/// An agent and the credential they act through.
#[derive(Debug, Clone)]
pub struct AgentActor {
    pub agent: Agent,
    pub credential: Credential,
    /// Where the request came from, for the audit log.
    pub ip: Option<IpAddr>,
}

impl AgentActor {
    /// Whether this credential may act at `needed` scope. A session acts with
    /// the agent's full role; a token only within its scope.
    pub fn allows(&self, needed: TokenScope) -> bool {
        self.credential.allows(needed)
    }

    /// [`AgentActor::allows`] as an error, for `?`.
    pub fn require(&self, needed: TokenScope) -> AppResult<()> {
        if self.allows(needed) {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "this token's scope does not allow this request",
            ))
        }
    }

    /// An admin acting with admin rights (a token needs the admin scope).
    pub fn is_admin(&self) -> bool {
        self.agent.role == Role::Admin && self.allows(TokenScope::Admin)
    }

    /// Which conversations and contacts this agent sees: an admin all, an
    /// agent those of the inboxes they are a member of.
    pub fn visibility(&self) -> Visibility {
        visibility_of(&self.agent)
    }
}

/// The channel a customer or an automatic writer acts through; recorded
/// nowhere, used for the rules and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Widget,
    Form,
    Email,
    Api,
}

#[derive(Debug, Clone)]
pub enum Actor {
    /// An agent in the console or an integration with their token.
    Agent(AgentActor),
    /// A customer who proved to be one contact, in one inbox: a widget
    /// visitor (signed visitor token) or a form customer (status link).
    /// They read and write only that contact's conversations.
    Contact {
        contact_id: Uuid,
        inbox_id: Uuid,
        channel: Channel,
    },
    /// A channel filing what arrived in its own inbox for a sender it
    /// identified itself (mail ingest, a form submission): it opens
    /// conversations and adds incoming messages in that inbox only.
    Inbound { inbox_id: Uuid, channel: Channel },
    /// kefu itself (system lines, maintenance).
    System,
}

impl Actor {
    pub fn agent(&self) -> Option<&AgentActor> {
        match self {
            Actor::Agent(a) => Some(a),
            _ => None,
        }
    }

    /// The acting agent's id: the sender of what they write, and whose
    /// uploads a message may carry.
    pub fn agent_id(&self) -> Option<Uuid> {
        self.agent().map(|a| a.agent.id)
    }
}
