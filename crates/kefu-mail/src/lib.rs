//! kefu-mail: the email channel of kefu.
//!
//! Received mail flows `raw bytes → parse → classify → thread hints`; the caller stores the
//! raw bytes first, then uses these to file the message in a conversation. Outgoing mail
//! flows `compose → (store in the outbox) → send`. Where to start reading:
//!
//! - [`parse`]: [`parse::parse`] turns bytes into a [`ParsedEmail`]; never fails, no Tokio.
//!   [`quote`] folds quoted history away for `visible_text`; `html_text` turns HTML-only
//!   mail into text; `charset` resolves charset labels (WHATWG plus the aliases mail
//!   software writes) and guesses when a label is unknown or wrong; `transfer` removes
//!   base64 and quoted-printable, keeping what decoded before a break.
//! - [`classify`]: normal mail, auto-reply, bulk mail or bounce (DSN), computed by `parse`
//!   into [`ParsedEmail::kind`].
//! - [`thread`]: reply tokens in plus addresses, [`thread::thread_hints`],
//!   `[#1024]` ticket numbers in subjects.
//! - [`compose`]: outgoing mail (lettre builder): Message-ID, threading headers, Reply-To
//!   token address, attachments, DKIM, the auto-acknowledgement template.
//! - [`send`]: [`send::SmtpSender`] over a relay; errors say permanent or transient.
//! - [`imap`]: [`imap::ImapSession::poll`] fetches new mail by UID with `BODY.PEEK[]`,
//!   marks or moves it only after the caller's [`imap::ImapHandler`] stored it.
//! - [`smtp`]: the inbound SMTP listener; [`smtp::serve`] answers 250 only after the
//!   caller's [`smtp::InboundHandler`] stored the message.
//! - [`MaybeTls`]: plain TCP or TLS as one stream type, under both `imap` and `smtp`.
//!
//! - [`channel`]: the channel inside kefu, with the store: filing received mail into
//!   conversations, the outbox, and the tasks `kefu serve` runs.
//!
//! Wire formats are kept apart from I/O: `parse`, `quote`, `classify` and `thread` do no
//! I/O and are tested with tables.

pub mod channel;
mod charset;
pub mod classify;
pub mod compose;
mod html_text;
pub mod imap;
mod maybe_tls;
pub mod parse;
pub mod quote;
pub mod send;
pub mod smtp;
pub mod thread;
mod transfer;

pub use classify::{Bounce, BounceRecipient, MailKind};
pub use compose::{BuiltEmail, OutgoingAttachment, OutgoingEmail, build};
pub use maybe_tls::MaybeTls;
pub use parse::{Attachment, Mailbox, ParsedEmail, Problem, parse};
pub use thread::{ReplyToken, ThreadHints, reply_address, thread_hints};
