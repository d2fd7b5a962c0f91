//! Helpers shared by the entity modules: building SQL with a variable number
//! of parameters, and turning stored text back into enums.

use crate::StoreError;
use kefu_core::time::{Timestamp, from_millis};
use uuid::Uuid;

/// A parameter of dynamically built SQL.
pub(crate) enum Arg {
    Uuid(Uuid),
    I64(i64),
    Text(String),
    OptUuid(Option<Uuid>),
    /// JSONB in PostgreSQL, text in SQLite.
    Json(serde_json::Value),
}

/// SQL text plus its parameters, numbered `$1…` in the order they are bound.
#[derive(Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `arg` and returns self for chaining.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    /// `(a, b, c)` of placeholders for an `IN` list. An empty list yields
    /// `(NULL)`, which matches nothing in either dialect.
    pub fn bind_list(&mut self, ids: &[Uuid]) -> &mut Self {
        if ids.is_empty() {
            return self.push("(NULL)");
        }
        self.push("(");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(Arg::Uuid(*id));
        }
        self.push(")")
    }
}

/// Binds every argument of an [`Sql`] to a query built from its text.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                $crate::rows::Arg::Uuid(v) => q.bind(v),
                $crate::rows::Arg::I64(v) => q.bind(v),
                $crate::rows::Arg::Text(v) => q.bind(v),
                $crate::rows::Arg::OptUuid(v) => q.bind(v),
                $crate::rows::Arg::Json(v) => q.bind(v),
            };
        }
        q
    }};
}

pub(crate) const INSERT_TAG: &str =
    "INSERT INTO tags (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
pub(crate) const TAG_ID: &str = "SELECT id FROM tags WHERE name = $1";

/// Inside a sqlx transaction `$tx`: the ids of the named tags, creating
/// missing ones (at time `$at`). SQLite's writer has its own,
/// `sqlite_hot::ensure_tags`, for the transactions it runs; the two share
/// [`INSERT_TAG`] and [`TAG_ID`].
macro_rules! ensure_tags {
    ($tx:expr, $names:expr, $at:expr) => {{
        let mut ids: Vec<uuid::Uuid> = Vec::new();
        for name in $names {
            sqlx::query($crate::rows::INSERT_TAG)
                .bind(uuid::Uuid::now_v7())
                .bind(name)
                .bind($at)
                .execute(&mut *$tx)
                .await?;
            let id: uuid::Uuid = sqlx::query_scalar($crate::rows::TAG_ID)
                .bind(name)
                .fetch_one(&mut *$tx)
                .await?;
            ids.push(id);
        }
        ids
    }};
}

pub(crate) fn parse_enum<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Invalid(format!("stored value {s:?} is not recognised")))
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    from_millis(ms)
}

pub(crate) fn opt_ts(ms: Option<i64>) -> Option<Timestamp> {
    ms.map(from_millis)
}

/// `%text%` for LIKE, with the wildcards in `text` taken literally (the
/// queries say `ESCAPE '\'`) and lower-cased to match `LOWER(column)`.
pub(crate) fn like_pattern(text: &str) -> String {
    format!("%{}%", like_escape(&text.to_lowercase()))
}

/// `text` with LIKE's wildcards and the escape character escaped by `\`.
pub(crate) fn like_escape(text: &str) -> String {
    let mut p = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p
}
