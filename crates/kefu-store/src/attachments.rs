//! Attachment records. Bytes live in [`crate::blobs`]; a record is created on
//! upload and linked to a message when the message is sent.

use crate::rows::ts;
use crate::{Result, Store, StoreError};
use kefu_core::Attachment;
use kefu_core::time::{now, to_millis};
use uuid::Uuid;

pub struct NewAttachment<'a> {
    pub sha256: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub uploaded_by: Option<Uuid>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttachmentRow {
    pub id: Uuid,
    pub sha256: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub message_id: Option<Uuid>,
    pub uploaded_by: Option<Uuid>,
    pub created_at: i64,
}

impl From<AttachmentRow> for Attachment {
    fn from(r: AttachmentRow) -> Attachment {
        Attachment {
            id: r.id,
            sha256: r.sha256,
            filename: r.filename,
            content_type: r.content_type,
            size: r.size,
            created_at: ts(r.created_at),
        }
    }
}

pub(crate) const COLUMNS: &str =
    "id, sha256, filename, content_type, size, message_id, uploaded_by, created_at";

impl Store {
    pub async fn create_attachment(&self, new: NewAttachment<'_>) -> Result<Attachment> {
        let id = Uuid::now_v7();
        on_db!(self.db.writer(), p =>
            sqlx::query(
                "INSERT INTO attachments (id, sha256, filename, content_type, size, uploaded_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id).bind(new.sha256).bind(new.filename).bind(new.content_type)
            .bind(new.size).bind(new.uploaded_by).bind(to_millis(now()))
            .execute(p).await?.rows_affected());
        Ok(self.attachment(id).await?.0)
    }

    /// The attachment and the conversation its message belongs to (`None`
    /// while it is not sent yet), for the permission check before download.
    pub async fn attachment(&self, id: Uuid) -> Result<(Attachment, Option<Uuid>, Option<Uuid>)> {
        let sql = format!("SELECT {COLUMNS} FROM attachments WHERE id = $1");
        let row: AttachmentRow = on_db!(self.db.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?)
        .ok_or(StoreError::NotFound)?;
        let conversation: Option<Uuid> = match row.message_id {
            Some(m) => on_db!(self.db.reader(), p =>
                sqlx::query_scalar("SELECT conversation_id FROM messages WHERE id = $1")
                    .bind(m).fetch_optional(p).await?),
            None => None,
        };
        let uploaded_by = row.uploaded_by;
        Ok((row.into(), conversation, uploaded_by))
    }
}
