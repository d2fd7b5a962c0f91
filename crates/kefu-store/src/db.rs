//! The two backends behind one enum, and `on_db!`, which expands a block of
//! portable SQL once per backend so that each is checked by the compiler with
//! its own concrete types. Generic code over `sqlx::Database` would need a
//! bound for every type bound in every query; a macro needs none.

use crate::Result;
use crate::error::StoreError;
use crate::sqlite_writer::Writer;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub(crate) enum Db {
    /// SQLite admits one writer at a time. A single-connection write pool
    /// queues writers in Rust instead of letting them spin on SQLITE_BUSY, and
    /// readers in WAL mode never wait for it.
    /// The hottest writes (creating a conversation, appending a message)
    /// and import batches skip sqlx and run on `fast`, a thread owning a
    /// third connection. Those transactions have one implementation per
    /// backend: rusqlite on `fast` here, sqlx on the pool on PostgreSQL
    /// (callers match on `Db` to pick it).
    Sqlite {
        read: SqlitePool,
        write: SqlitePool,
        fast: Writer,
    },
    Postgres(PgPool),
}

pub(crate) enum Pool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

/// `on_db!(self.db.writer(), p => { …sqlx::query(…).execute(p)… })`
macro_rules! on_db {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($p) => $body,
            $crate::db::Pool::Postgres($p) => $body,
        }
    };
}

impl Db {
    pub(crate) async fn connect(url: &str) -> Result<Db> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Self::connect_sqlite(path).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(
                kefu_core::redact::mask_url_secrets(url),
            ))
        }
    }

    async fn connect_sqlite(path: &str) -> Result<Db> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-32000");
        // Connections are local files: checking them before each use costs a
        // round trip to the worker thread and finds nothing.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(8)
            .connect_with(opts.create_if_missing(false).pragma("query_only", "1"))
            .await?;
        let file = path.split('?').next().unwrap_or(path);
        let fast = Writer::open(file)?;
        Ok(Db::Sqlite { read, write, fast })
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite { write, .. } => {
                sqlx::migrate!("../../migrations/sqlite").run(write).await?
            }
            Db::Postgres(pool) => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(pool)
                    .await?
            }
        }
        Ok(())
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) fn reader(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { read, .. } => Pool::Sqlite(read),
            Db::Postgres(p) => Pool::Postgres(p),
        }
    }

    pub(crate) fn writer(&self) -> Pool<'_> {
        match self {
            Db::Sqlite { write, .. } => Pool::Sqlite(write),
            Db::Postgres(p) => Pool::Postgres(p),
        }
    }

    pub(crate) async fn ping(&self) -> bool {
        on_db!(self.reader(), p => sqlx::query("SELECT 1").execute(p).await.is_ok())
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite { read, write, fast } => {
                fast.close().await;
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}
