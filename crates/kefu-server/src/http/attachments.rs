//! Attachments: upload first (multipart), then reference the returned id in
//! a message. Downloads check that the caller may see the conversation.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kefu_app::files::KeptFile;
use kefu_core::Attachment;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    // The upload limit is set per request from the configuration, below; the
    // router-wide JSON limit must not cut uploads short first.
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(download))
}

/// Types a browser may show inline; everything else is downloaded, so an
/// uploaded HTML or SVG file can never run script on kefu's origin.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
];

/// Uploads one file in the multipart field `file`.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "attachments", request_body(content_type = "multipart/form-data", description = "field `file`"),
    responses((status = 201, body = Attachment), (status = 413)))]
async fn upload(
    State(state): State<AppState>,
    who: Principal,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<Attachment>)> {
    let max = state.config.max_upload_bytes as u64;
    let attachment = receive(&state, form, max, Some(who.agent.id), |_, _| Ok(())).await?;
    Ok((StatusCode::CREATED, axum::Json(attachment)))
}

/// Reads the multipart field `file` (at most `max` bytes), lets `check`
/// refuse it by name and type, stores the bytes and records the attachment
/// as uploaded by `by` (an agent, or a widget visitor's contact). The file
/// goes to disk as it arrives: a request holds one chunk, not the file.
pub(crate) async fn receive(
    state: &AppState,
    form: Result<Multipart, MultipartRejection>,
    max: u64,
    by: Option<uuid::Uuid>,
    check: impl Fn(&str, &str) -> ApiResult<()>,
) -> ApiResult<Attachment> {
    // A body that is not multipart gets the API's error format too.
    let mut form = form.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    while let Some(mut field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let filename = clean_filename(field.file_name().unwrap_or("file"));
        let content_type = field.content_type().map(str::to_string).unwrap_or_else(|| {
            mime_guess::from_path(&filename)
                .first_or_octet_stream()
                .to_string()
        });
        check(&filename, &content_type)?;
        let mut spool = state.blobs.spool().await.map_err(ApiError::internal)?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?
        {
            if spool.size() + chunk.len() as u64 > max {
                return Err(ApiError::PayloadTooLarge);
            }
            spool.write(&chunk).await.map_err(ApiError::internal)?;
        }
        let spooled = spool.finish().await.map_err(ApiError::internal)?;
        let size = spooled.size as i64;
        let sha256 = state
            .blobs
            .keep(&spooled)
            .await
            .map_err(ApiError::internal)?;
        let file = KeptFile {
            sha256: &sha256,
            filename: &filename,
            content_type: &content_type,
            size,
        };
        return Ok(state.app.record_upload(by, file).await?);
    }
    Err(ApiError::BadRequest(
        "multipart field `file` is missing".into(),
    ))
}

/// The last path segment, without control characters, at most 200 characters.
pub(crate) fn clean_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if clean.trim().is_empty() || clean == "." || clean == ".." {
        "file".into()
    } else {
        clean
    }
}

#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "attachments", params(("id" = Uuid, Path)), responses((status = 200, description = "the file"), (status = 404)))]
async fn download(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (a, conversation, uploaded_by) = state.store.attachment(id).await?;
    match conversation {
        Some(c) => {
            state
                .store
                .visible_conversation(c, who.visibility())
                .await?;
        }
        None if uploaded_by == Some(who.agent.id) || who.is_admin() => {}
        None => return Err(ApiError::NotFound),
    }
    send_file(&state, &a).await
}

/// The attachment's bytes, streamed, with headers that keep any active
/// content from running on kefu's origin.
pub(crate) async fn send_file(state: &AppState, a: &Attachment) -> ApiResult<Response> {
    let path = state.blobs.path(&a.sha256).ok_or(ApiError::NotFound)?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| ApiError::NotFound)?;
    let inline = INLINE_TYPES.contains(&a.content_type.as_str());
    let content_type = if inline {
        a.content_type.as_str()
    } else {
        "application/octet-stream"
    };
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encode(&a.filename)
    );
    let body = Body::from_stream(tokio_util_stream(file));
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
            (header::CONTENT_LENGTH, a.size.to_string()),
        ],
        body,
    )
        .into_response())
}

/// RFC 5987 encoding for `filename*`, so Chinese names survive.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Streams a file in 64 KiB chunks, so a large download holds no more memory.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    futures::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_cleaned_and_encoded() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\Users\\王\\发票.pdf"), "发票.pdf");
        assert_eq!(clean_filename(".."), "file");
        assert_eq!(percent_encode("发票 1.pdf"), "%E5%8F%91%E7%A5%A8%201.pdf");
    }
}
