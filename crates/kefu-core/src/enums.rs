//! Closed sets of values. Each has one text form used in JSON, in the
//! database and in query strings, so a value reads the same everywhere.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(crate::ValidationError::new(
                        stringify!($name),
                        format!("unknown value {s:?}; expected one of: {}",
                            [$($text),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What an agent may do: admins manage the organisation and see every inbox.
    Role { Admin = "admin", Agent = "agent" }
);

text_enum!(
    /// What an API token may do, on top of its owner's role.
    TokenScope { Read = "read", Write = "write", Admin = "admin" }
);

text_enum!(
    /// The channel an inbox receives from.
    InboxKind { Widget = "widget", Email = "email", Form = "form", Api = "api" }
);

text_enum!(
    /// The life of a ticket. `Snoozed` carries a wake-up time on the conversation.
    ConversationStatus {
        Open = "open",
        Pending = "pending",
        Snoozed = "snoozed",
        Resolved = "resolved",
        Closed = "closed",
    }
);

text_enum!(
    Priority { Low = "low", Medium = "medium", High = "high", Urgent = "urgent" }
);

text_enum!(
    /// Which way a message went. Notes are internal: customers never see them.
    Direction { Incoming = "incoming", Outgoing = "outgoing", Note = "note", System = "system" }
);

text_enum!(
    SenderKind { Contact = "contact", Agent = "agent", Bot = "bot", System = "system" }
);

impl Role {
    pub fn is_admin(self) -> bool {
        self == Role::Admin
    }
}

impl TokenScope {
    /// Scopes are ordered: read < write < admin.
    pub fn allows(self, needed: TokenScope) -> bool {
        self.rank() >= needed.rank()
    }

    fn rank(self) -> u8 {
        match self {
            TokenScope::Read => 0,
            TokenScope::Write => 1,
            TokenScope::Admin => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for s in ConversationStatus::ALL {
            assert_eq!(s.as_str().parse::<ConversationStatus>().ok(), Some(*s));
        }
        let err = "done".parse::<ConversationStatus>().unwrap_err();
        assert!(err.message.contains("open, pending"), "{}", err.message);
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(TokenScope::Admin.allows(TokenScope::Write));
        assert!(TokenScope::Write.allows(TokenScope::Read));
        assert!(!TokenScope::Read.allows(TokenScope::Write));
    }
}
