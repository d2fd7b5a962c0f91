//! Tags, shared by contacts and conversations. Callers name tags; a tag that
//! does not exist yet is created on first use.

use crate::rows::ts;
use crate::{Result, Store, StoreError};
use kefu_core::time::{now, to_millis};
use kefu_core::{NewTag, Tag, TagPatch};
use uuid::Uuid;

#[derive(sqlx::FromRow)]
struct TagRow {
    id: Uuid,
    name: String,
    color: Option<String>,
    created_at: i64,
}

impl From<TagRow> for Tag {
    fn from(r: TagRow) -> Tag {
        Tag {
            id: r.id,
            name: r.name,
            color: r.color,
            created_at: ts(r.created_at),
        }
    }
}

impl Store {
    pub async fn create_tag(&self, new: &NewTag) -> Result<Tag> {
        let id = Uuid::now_v7();
        on_db!(self.db.writer(), p =>
            sqlx::query("INSERT INTO tags (id, name, color, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id).bind(&new.name).bind(&new.color).bind(to_millis(now()))
                .execute(p).await?.rows_affected());
        self.tag(id).await
    }

    /// Creates the named tags that do not exist yet, in one transaction
    /// (an import's tag list); returns how many were created.
    pub async fn ensure_tags(&self, names: &[String]) -> Result<u64> {
        let at = to_millis(now());
        let created = on_db!(self.db.writer(), p => {
            let mut tx = p.begin().await?;
            let mut created = 0;
            for name in names {
                created += sqlx::query(crate::rows::INSERT_TAG)
                    .bind(Uuid::now_v7()).bind(name).bind(at)
                    .execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            created
        });
        Ok(created)
    }

    pub async fn tag(&self, id: Uuid) -> Result<Tag> {
        let row: TagRow = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, name, color, created_at FROM tags WHERE id = $1")
                .bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        Ok(row.into())
    }

    pub async fn list_tags(&self) -> Result<Vec<Tag>> {
        let rows: Vec<TagRow> = on_db!(self.db.reader(), p =>
            sqlx::query_as("SELECT id, name, color, created_at FROM tags ORDER BY name").fetch_all(p).await?);
        Ok(rows.into_iter().map(Tag::from).collect())
    }

    pub async fn update_tag(&self, id: Uuid, patch: &TagPatch) -> Result<Tag> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("UPDATE tags SET name = COALESCE($2, name), color = CASE WHEN $3 THEN $4 ELSE color END WHERE id = $1")
                .bind(id).bind(&patch.name)
                .bind(patch.color.is_some()).bind(patch.color.clone().flatten())
                .execute(p).await?.rows_affected());
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        self.tag(id).await
    }

    /// Deleting a tag removes it from every contact and conversation.
    pub async fn delete_tag(&self, id: Uuid) -> Result<()> {
        let done = on_db!(self.db.writer(), p =>
            sqlx::query("DELETE FROM tags WHERE id = $1").bind(id).execute(p).await?.rows_affected());
        if done == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}
