//! `AppError`: what an operation answers when it does not happen. Each
//! transport maps it once — HTTP to a status and the API's JSON body, the
//! sockets to an error frame, the form to a page, mail to a log line — so a
//! refusal means the same thing whichever way the request came.

use kefu_core::ValidationError;
use kefu_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The thing does not exist, or this actor may not see it (the two are
    /// one answer, so ids cannot be probed).
    #[error("not found")]
    NotFound,
    /// A credential (visitor token, link, identifier hash) is wrong,
    /// expired or spent.
    #[error("authentication required")]
    Unauthorized,
    /// The actor is known but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A field of the input is wrong.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// Well-formed, but not possible now (a merged conversation, a file
    /// already sent, a rating before the conversation is resolved).
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many requests; retry in {retry_after_secs} s")]
    Limited { retry_after_secs: u64 },
    /// Logged in full by the transport, answered generically.
    #[error("internal error")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid(ValidationError::new(field, message))
    }
}

/// Constraint names from the migrations, told in words.
fn conflict_message(constraint: &str) -> String {
    match constraint {
        "agents_email_key" => "an agent with this email exists already".into(),
        "teams_name_key" => "a team with this name exists already".into(),
        "tags_name_key" => "a tag with this name exists already".into(),
        "canned_responses_shortcut_key" => {
            "a canned response with this shortcut exists already".into()
        }
        "contact_identities_kind_value_key" => "this identity belongs to another contact".into(),
        "inboxes_public_token" => "this form address (slug) is taken by another inbox".into(),
        "foreign_key" => "a referenced record does not exist".into(),
        other => format!("conflict ({other})"),
    }
}

/// The one reading of the store's errors.
impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict { constraint } if constraint == "foreign_key" => {
                AppError::Rejected(conflict_message(&constraint))
            }
            StoreError::Conflict { constraint } => {
                AppError::Conflict(conflict_message(&constraint))
            }
            StoreError::Invalid(m) => AppError::Rejected(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}
