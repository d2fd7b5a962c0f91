//! Uploaded files: a file whose bytes are kept becomes an attachment,
//! waiting for the message that carries it. Who uploaded it decides who may
//! send it (the store's linking rule, one for every path); a file the
//! server stored itself (a form's, a mail's) has no uploader.

use crate::App;
use crate::error::AppResult;
use kefu_core::Attachment;
use kefu_store::NewAttachment;
use uuid::Uuid;

/// A file whose bytes are in the blob store under `sha256`.
#[derive(Debug, Clone, Copy)]
pub struct KeptFile<'a> {
    pub sha256: &'a str,
    pub filename: &'a str,
    pub content_type: &'a str,
    pub size: i64,
}

impl App {
    /// Records an upload of `uploaded_by` (an agent or a contact; `None`
    /// for files the server stores for a message it files itself).
    pub async fn record_upload(
        &self,
        uploaded_by: Option<Uuid>,
        file: KeptFile<'_>,
    ) -> AppResult<Attachment> {
        Ok(self
            .store()
            .create_attachment(NewAttachment {
                sha256: file.sha256,
                filename: file.filename,
                content_type: file.content_type,
                size: file.size,
                uploaded_by,
            })
            .await?)
    }

    /// Opens the snoozed conversations whose time has come (the
    /// maintenance loop's work, as kefu itself).
    pub async fn wake_snoozed(&self) -> AppResult<()> {
        self.store().wake_snoozed(kefu_core::time::now()).await?;
        Ok(())
    }
}
