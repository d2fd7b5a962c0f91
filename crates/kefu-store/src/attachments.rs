//! Attachment records. Bytes live in [`crate::blobs`]; a record is created on
//! upload and linked to a message when the message is sent; one never sent
//! expires ([`Store::sweep_pending_uploads`]).

use crate::blobs::Blobs;
use crate::rows::ts;
use crate::{Result, Store, StoreError};
use kefu_core::Attachment;
use kefu_core::time::{Timestamp, now, to_millis};
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

/// What one sweep of expired uploads removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Attachment records never sent and now expired.
    pub uploads: u64,
    /// Blob files no record or email needed any more.
    pub files: u64,
}

/// Expired records are deleted this many at a time, so a sweep after a
/// flood never holds the write lock for long.
const SWEEP_BATCH: i64 = 500;

impl Store {
    /// How many uploads of `uploader` are not sent yet, and their bytes:
    /// what the per-contact quota counts.
    pub async fn pending_uploads(&self, uploader: Uuid) -> Result<(i64, i64)> {
        // SUM of a BIGINT is NUMERIC in PostgreSQL: cast back.
        let row: (i64, i64) = on_db!(self.db.reader(), p =>
            sqlx::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments
                 WHERE message_id IS NULL AND uploaded_by = $1",
            )
            .bind(uploader).fetch_one(p).await?);
        Ok(row)
    }

    /// Deletes the uploads never sent in a message that are older than
    /// `max_age` at `now`, and their blob files unless something else
    /// still names the same bytes. Only uploads by someone (a customer or
    /// an agent): files the server stores itself have no uploader and are
    /// linked by the same flow, except an import's, which wait — staged,
    /// perhaps across a restart the next day — until their messages are
    /// placed, and must not be swept from under it. A sent attachment is never touched: the
    /// delete and the link in a message both require `message_id IS NULL`,
    /// so whichever commits first wins and the other finds nothing.
    /// Several nodes may sweep at once: each record is deleted by one.
    pub async fn sweep_pending_uploads(
        &self,
        blobs: &Blobs,
        now: Timestamp,
        max_age: std::time::Duration,
    ) -> Result<Swept> {
        let age = chrono::Duration::from_std(max_age)
            .map_err(|_| StoreError::Invalid("max_age: too long".into()))?;
        let cutoff = now - age;
        let mut swept = Swept::default();
        loop {
            let hashes: Vec<String> = on_db!(self.db.writer(), p =>
                sqlx::query_scalar(
                    "DELETE FROM attachments WHERE id IN (
                        SELECT id FROM attachments
                        WHERE message_id IS NULL AND uploaded_by IS NOT NULL AND created_at < $1
                        LIMIT $2)
                     RETURNING sha256",
                )
                .bind(to_millis(cutoff)).bind(SWEEP_BATCH).fetch_all(p).await?);
            swept.uploads += hashes.len() as u64;
            let mut unique = hashes.clone();
            unique.sort_unstable();
            unique.dedup();
            for sha256 in &unique {
                if self.remove_blob_if_unused(blobs, sha256, cutoff).await? {
                    swept.files += 1;
                }
            }
            if (hashes.len() as i64) < SWEEP_BATCH {
                break;
            }
        }
        if let Err(e) = blobs.remove_stale_spools(cutoff.into()).await {
            tracing::warn!(error = %e, "removing stale upload spools failed");
        }
        Ok(swept)
    }

    /// Deletes the blob when no attachment or email names it and nobody
    /// stored its bytes since `cutoff` (see [`crate::blobs`] on the race
    /// with a new upload of the same bytes). True when it was deleted.
    async fn remove_blob_if_unused(
        &self,
        blobs: &Blobs,
        sha256: &str,
        cutoff: Timestamp,
    ) -> Result<bool> {
        if self.blob_in_use(sha256).await? {
            return Ok(false);
        }
        let Some(retired) = blobs.retire(sha256).await? else {
            return Ok(false);
        };
        let fresh = chrono::DateTime::<chrono::Utc>::from(retired.modified) >= cutoff;
        if fresh || self.blob_in_use(sha256).await? {
            retired.restore().await?;
            return Ok(false);
        }
        retired.delete().await?;
        Ok(true)
    }

    async fn blob_in_use(&self, sha256: &str) -> Result<bool> {
        let used: bool = on_db!(self.db.reader(), p =>
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM attachments WHERE sha256 = $1)
                     OR EXISTS (SELECT 1 FROM email_inbound WHERE sha256 = $1)
                     OR EXISTS (SELECT 1 FROM email_outbox WHERE sha256 = $1)",
            )
            .bind(sha256).fetch_one(p).await?);
        Ok(used)
    }
}
