//! Cross-node signalling through PostgreSQL LISTEN/NOTIFY. On SQLite there is
//! one node, so `notify` does nothing and `listen` gives `None`.

use crate::db::Db;
use crate::{Result, Store};
use sqlx::postgres::{PgListener, PgPoolOptions};

/// A LISTEN on one channel. `recv` gives `Ok(None)` after the connection was
/// lost and re-established: notifications may have been missed in between,
/// and the caller should tell its clients to resync from the database.
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    pub async fn recv(&mut self) -> Result<Option<String>> {
        Ok(self
            .inner
            .try_recv()
            .await?
            .map(|n| n.payload().to_string()))
    }
}

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
pub const MAX_NOTIFY_BYTES: usize = 7900;

impl Store {
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<()> {
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>> {
        match &self.db {
            Db::Postgres(pool) => {
                // Its own connection, outside the shared pool: a LISTEN keeps
                // its connection for as long as it lives, and `Store::close`
                // waits for every pooled connection to come back (it hung
                // `kefu serve` on SIGTERM).
                let own = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_lazy_with((*pool.connect_options()).clone());
                let mut inner = PgListener::connect_with(&own).await?;
                inner.listen(channel).await?;
                Ok(Some(Listener { inner }))
            }
            Db::Sqlite { .. } => Ok(None),
        }
    }
}
