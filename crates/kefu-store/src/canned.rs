//! Canned responses: text an agent inserts by typing `/shortcut`.

use crate::rows::ts;
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{CannedResponse, CannedResponsePatch, NewCannedResponse};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct CannedRow {
    id: Uuid,
    shortcut: String,
    text: String,
    created_at: i64,
    updated_at: i64,
}

impl From<CannedRow> for CannedResponse {
    fn from(r: CannedRow) -> Self {
        CannedResponse {
            id: r.id,
            shortcut: r.shortcut,
            text: r.text,
            created_at: ts(r.created_at),
            updated_at: ts(r.updated_at),
        }
    }
}

impl Store {
    pub async fn create_canned(&self, new: &NewCannedResponse, by: Uuid) -> Result<CannedResponse> {
        let id = Uuid::now_v7();
        on_db!(self.db.writer(), p =>
            sqlx::query("INSERT INTO canned_responses (id, shortcut, text, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)")
                .bind(id).bind(&new.shortcut).bind(&new.text).bind(by).bind(to_millis(now()))
                .execute(p).await?.rows_affected());
        self.canned(id).await
    }

    pub async fn canned(&self, id: Uuid) -> Result<CannedResponse> {
        let row: CannedRow = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, shortcut, text, created_at, updated_at FROM canned_responses WHERE id = $1")
                .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(row.into())
    }

    /// All responses, or those whose shortcut or text contains `q`.
    pub async fn list_canned(&self, q: Option<&str>) -> Result<Vec<CannedResponse>> {
        let pattern = q.map(crate::rows::like_pattern);
        let rows: Vec<CannedRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as(
                "SELECT id, shortcut, text, created_at, updated_at FROM canned_responses
                 WHERE $1 IS NULL OR LOWER(shortcut) LIKE $1 ESCAPE '\\' OR LOWER(text) LIKE $1 ESCAPE '\\'
                 ORDER BY shortcut",
            )
            .bind(pattern).fetch_all(p).await?);
        Ok(rows.into_iter().map(CannedResponse::from).collect())
    }

    pub async fn update_canned(
        &self,
        id: Uuid,
        patch: &CannedResponsePatch,
    ) -> Result<CannedResponse> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE canned_responses SET shortcut = COALESCE($2, shortcut), text = COALESCE($3, text), updated_at = $4 WHERE id = $1")
                .bind(id).bind(&patch.shortcut).bind(&patch.text).bind(to_millis(now()))
                .execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.canned(id).await
    }

    pub async fn delete_canned(&self, id: Uuid) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM canned_responses WHERE id = $1").bind(id).execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}
