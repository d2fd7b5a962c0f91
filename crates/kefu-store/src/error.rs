use thiserror::Error;

/// What can go wrong in the store, in the terms the API needs to answer.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique or foreign-key constraint refused the write; `constraint` is
    /// the constraint's name from the migrations.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// The request is well-formed but refers to something that cannot be used
    /// (an attachment of someone else, a merge into itself…).
    #[error("{0}")]
    Invalid(String),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Database(sqlx::Error),
    /// From the SQLite writer thread (`sqlite_writer`).
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    /// The store is closing: the write was not made.
    #[error("the store is closed")]
    Closed,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_foreign_key_violation() =>
            {
                StoreError::Conflict {
                    constraint: constraint_name(
                        db.is_foreign_key_violation(),
                        db.constraint(),
                        db.message(),
                    ),
                }
            }
            _ => StoreError::Database(e),
        }
    }
}

/// PostgreSQL names the constraint; SQLite only says which columns, so the
/// columns are mapped back to the names the migrations give.
fn constraint_name(foreign_key: bool, constraint: Option<&str>, msg: &str) -> String {
    // Every foreign-key violation is one kind of error ("a referenced record
    // does not exist"), whatever PostgreSQL names the constraint; SQLite
    // names none. Checked first so both backends answer alike.
    if foreign_key {
        return "foreign_key".into();
    }
    if let Some(c) = constraint {
        return c.to_string();
    }
    let cols = msg.rsplit(": ").next().unwrap_or(msg);
    let known = [
        ("agents.email", "agents_email_key"),
        ("teams.name", "teams_name_key"),
        ("tags.name", "tags_name_key"),
        ("inboxes.public_token", "inboxes_public_token"),
        (
            "contact_identities.kind, contact_identities.value",
            "contact_identities_kind_value_key",
        ),
        (
            "messages.conversation_id, messages.external_id",
            "messages_conversation_external_key",
        ),
        (
            "messages.conversation_id, messages.seq",
            "messages_conversation_seq_key",
        ),
        ("canned_responses.shortcut", "canned_responses_shortcut_key"),
    ];
    known
        .iter()
        .find(|(c, _)| *c == cols)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| cols.to_string())
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi;
        match &e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
            rusqlite::Error::SqliteFailure(f, msg)
                if f.code == ffi::ErrorCode::ConstraintViolation =>
            {
                let fk = f.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY;
                let unique = matches!(
                    f.extended_code,
                    ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                );
                if fk || unique {
                    StoreError::Conflict {
                        constraint: constraint_name(fk, None, msg.as_deref().unwrap_or("")),
                    }
                } else {
                    StoreError::Sqlite(e)
                }
            }
            _ => StoreError::Sqlite(e),
        }
    }
}

impl StoreError {
    /// The store was closed (the server is shutting down).
    pub fn is_pool_closed(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::PoolClosed) | StoreError::Closed
        )
    }

    pub fn is_conflict_on(&self, name: &str) -> bool {
        matches!(self, StoreError::Conflict { constraint } if constraint == name)
    }
}
