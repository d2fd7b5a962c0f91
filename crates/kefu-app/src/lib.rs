//! kefu's application layer: the operations of the domain, each with who may
//! do it, its validation and idempotency rules, in one place. Every
//! transport — HTTP handlers, the two WebSockets, the form channel, mail
//! ingest, the CLI — turns its input into an [`Actor`] and a request, calls
//! one operation on [`App`], and encodes the answer; none of them writes to
//! the store itself or decides who may do what.
//!
//! - [`messages`]: `post_message`, the one path of every message into a
//!   conversation (REST, agent socket, widget socket, form status page,
//!   mail), and the typing and read signals.
//! - [`conversations`]: open, update (assign, status, priority), tag, merge,
//!   rate, and the visibility check every read uses.
//! - [`contacts`]: create and edit contacts and their identities.
//! - [`tokens`]: API tokens and console sessions; [`setup`]: the first
//!   admin; [`admin`]: agents, teams, tags, canned responses and one's own
//!   password; [`inboxes`]: inboxes and widget keys.
//! - [`files`]: uploads and the snooze alarm; [`links`]: one-time proofs,
//!   form status-link generations, the sweep of unsent uploads.
//! - [`visitor`] and [`continuity`]: the signed tokens of widget visitors
//!   and continuity links, and the visitor key they are signed with.
//! - [`actor`]: who is acting; [`error`]: `AppError`, which each transport
//!   maps once; [`secrets`]: random secrets, CSRF, argon2 password hashes.
//!
//! Events: the store publishes each change after its transaction commits
//! (only it knows when that happens), so the operations here never publish
//! a change twice or before it is durable; live-only signals (typing, read
//! markers) are published here, through the hub.

pub mod actor;
pub mod admin;
pub mod contacts;
pub mod continuity;
pub mod conversations;
pub mod error;
pub mod files;
pub mod inboxes;
pub mod links;
pub mod messages;
pub mod secrets;
pub mod setup;
pub mod tokens;
pub mod visitor;

pub use actor::{Actor, AgentActor, Channel, Credential};
pub use error::{AppError, AppResult};
pub use messages::{Posted, Target};

use kefu_hub::Hub;
use kefu_store::Store;
use std::sync::Arc;

/// The application: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    store: Store,
    /// Live signals (typing, read markers) go out through it; the CLI has
    /// none, and its operations send none.
    hub: Option<Arc<Hub>>,
    /// Signs visitor tokens and continuity links; made once per
    /// organisation and kept in the database so every node and every
    /// restart agrees on it.
    visitor_key: tokio::sync::OnceCell<Vec<u8>>,
    /// Who the audit log names for what an operator does at the command
    /// line (`Credential::Console`), e.g. `cli:root`.
    operator: String,
}

impl App {
    /// Without live signals: for the CLI and tools.
    pub fn new(store: Store) -> App {
        App::build(store, None, "cli")
    }

    /// With the hub that carries typing and read signals to sockets.
    pub fn with_hub(store: Store, hub: Arc<Hub>) -> App {
        App::build(store, Some(hub), "cli")
    }

    /// For the command line: what an operator does is audited under
    /// `operator` (e.g. `cli:root`).
    pub fn for_operator(store: Store, operator: &str) -> App {
        App::build(store, None, operator)
    }

    fn build(store: Store, hub: Option<Arc<Hub>>, operator: &str) -> App {
        App(Arc::new(Inner {
            store,
            hub,
            visitor_key: tokio::sync::OnceCell::new(),
            operator: operator.to_string(),
        }))
    }

    pub(crate) fn operator(&self) -> &str {
        &self.0.operator
    }

    /// For reads; writes go through the operations.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn hub(&self) -> Option<&Arc<Hub>> {
        self.0.hub.as_ref()
    }

    pub async fn visitor_key(&self) -> AppResult<Vec<u8>> {
        let key = self
            .0
            .visitor_key
            .get_or_try_init(|| visitor::stored_key(&self.0.store))
            .await?;
        Ok(key.clone())
    }
}
