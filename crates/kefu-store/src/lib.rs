//! Storage of kefu on SQLite or PostgreSQL, chosen by the URL scheme.
//!
//! - [`Store`] (this file): opening, migrations, the event stream.
//! - `db`: the two connection pools and the [`on_db!`] macro that runs one
//!   block of portable SQL against either of them. SQL is written once, with
//!   `$1`-style parameters that both dialects accept.
//! - One module per entity (`agents`, `auth`, `inboxes`, `contacts`,
//!   `conversations`, `messages`, …) holding its queries and row types.
//! - `sqlite_writer`, `sqlite_hot`: on SQLite the hottest transactions
//!   (creating a conversation, appending a message, import batches) run on
//!   a thread owning its own rusqlite connection. Each such transaction has
//!   one implementation per backend: `sqlite_hot` (and `import/sqlite.rs`)
//!   on SQLite, the `*_pg` functions (and `import/postgres.rs`) on
//!   PostgreSQL. What they decide is made once, in plain types both call
//!   (`CreatePlan`, `AppendPlan`, `MessageInsert`, `ContactWay`, the
//!   importer's `plan` and `upsert`); the statement texts are shared
//!   constants.
//! - [`blobs`]: attachment bytes on disk, addressed by their SHA-256.
//! - [`error`]: [`StoreError`], the one error type of this layer.
//!
//! Events are published only after a transaction commits: read
//! `conversations::create` for the pattern every write follows.

#[macro_use]
mod db;
#[macro_use]
mod rows;
mod agents;
mod attachments;
mod audit;
mod auth;
pub mod blobs;
mod canned;
#[macro_use]
mod contacts;
#[macro_use]
mod messages;
mod continuity;
#[macro_use]
mod conversations;
mod cursor;
mod email;
pub mod error;
pub mod notify;
mod reads;
#[macro_use]
mod inboxes;
mod import;
mod settings;
mod sqlite_hot;
mod sqlite_writer;
mod tags;
mod teams;
mod widget;

pub use attachments::{NewAttachment, Swept};
pub use audit::NewAudit;
pub use auth::{NewApiToken, NewSession};
pub use continuity::{ContinuityLink, LinkTarget};
pub use conversations::{ConversationCounts, ConversationFilter, CountGroup, TagCount, Visibility};
pub use cursor::Page;
pub use db::Backend;
pub use email::{EmailThread, NewInbound, NewOutboxEmail, OutboxEmail};
pub use error::StoreError;
pub use import::{
    ContactConflict, ContactMerge, EncodedMessage, FileProgress, ImportContact, ImportRun,
    ImportWork, PlaceCounts, PlaceOptions, StageCounts, StagedBody, StagedMessage,
};
pub use messages::Appended;
pub use reads::CsatRow;

use db::Db;
use kefu_core::Event;
use tokio::sync::broadcast;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle every part of kefu shares. Cloning is cheap.
#[derive(Clone)]
pub struct Store {
    db: Db,
    events: broadcast::Sender<Event>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending
    /// migrations. `sqlite://path` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store> {
        let db = Db::connect(url).await?;
        db.migrate().await?;
        // Slow subscribers lag and resync from the database; 4096 events is a
        // few seconds of a busy organisation.
        let (events, _) = broadcast::channel(4096);
        Ok(Store { db, events })
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Called after a commit only. No subscriber is not an error.
    fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        self.db.ping().await
    }

    pub async fn close(&self) {
        self.db.close().await
    }
}
