//! The domain of kefu, free of I/O: what an inbox, contact, conversation and
//! message are, the rules their fields follow, and the events that announce
//! changes.
//!
//! - [`model`]: the entities as the rest of the system sees them.
//! - [`enums`]: closed sets (status, priority, role, scope…) with their text form,
//!   which is also how they are stored.
//! - [`validate`]: checks on user input, turning raw requests into values the
//!   store may trust.
//! - [`event`]: what the store announces after a commit.
//! - [`time`]: the one clock type and its millisecond storage form.
//! - [`keys`]: the identity form of phone numbers and email addresses.
//! - [`redact`]: secrets hidden from URLs before they are printed.
//!
//! Start with `model::Conversation` and `model::Message`: every channel turns
//! what arrives into those.

pub mod enums;
pub mod event;
pub mod keys;
pub mod model;
pub mod redact;
pub mod time;
pub mod validate;

pub use enums::*;
pub use event::Event;
pub use model::*;
pub use validate::ValidationError;
