//! A small key–value table for organisation-wide state, such as the hash of
//! the one-time setup token.

use crate::{Result, Store};

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(on_db!(self.db.reader(), p =>
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key).fetch_optional(p).await?))
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key).bind(value).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Deletes the key if it still holds `value`; true when it did. Used to
    /// spend a one-time token exactly once, even with two racing requests.
    pub async fn take_setting(&self, key: &str, value: &str) -> Result<bool> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM settings WHERE key = $1 AND value = $2")
                .bind(key).bind(value).execute(p).await?.rows_affected());
        Ok(done == 1)
    }
}
