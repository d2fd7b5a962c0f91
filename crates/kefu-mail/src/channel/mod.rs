//! The email channel inside kefu: where the parsing and transport pieces of
//! this crate meet the store.
//!
//! - [`settings`]: an email inbox's `settings.email` (address, IMAP, SMTP
//!   relay, auto-acknowledgement).
//! - [`ingest`]: a received message is stored raw, recorded once, then filed
//!   into a conversation (reply token, then In-Reply-To/References from the
//!   same sender, then `[#1024]` from the same sender, else a new one).
//! - [`outbound`]: agents' replies become mail in the durable outbox; the
//!   sender sends it with retries and backoff and records the outcome on the
//!   message (`metadata.email.status`: queued, sent, failed).
//! - [`service`]: the tasks `kefu serve` runs: the SMTP listener, one IMAP
//!   poller per inbox, the outbox sender, the sweep of held mail.

pub mod ingest;
pub mod outbound;
pub mod service;
pub mod settings;

pub use ingest::{Filed, ingest};
pub use service::{MailService, MailServiceConfig};
pub use settings::{EmailSettings, check_inbox_settings};

/// What can go wrong filing or sending mail.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Store(#[from] kefu_store::StoreError),
    /// The application layer refused to file it.
    #[error(transparent)]
    App(#[from] kefu_app::AppError),
    #[error("blob store: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Compose(#[from] crate::compose::ComposeError),
}
