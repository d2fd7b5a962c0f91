//! Unsent uploads: the per-customer quota checked before a widget upload's
//! body is read, and the sweeper that deletes uploads never sent (with
//! their files) once they are `server.uploads.pending_hours` old. `serve`
//! runs the sweeper on every node; the store deletes each upload once.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use std::time::Duration;
use uuid::Uuid;

/// How often the sweeper looks. An upload lives at most this much longer
/// than its configured age.
const SWEEP_EVERY: Duration = Duration::from_secs(10 * 60);

/// The bytes `contact` may still upload before sending what they have, or
/// `upload_quota` when they may upload nothing more.
pub(crate) async fn room_for(state: &AppState, contact: Uuid) -> ApiResult<u64> {
    let limits = &state.config.uploads;
    let (files, bytes) = state.store.pending_uploads(contact).await?;
    let bytes = u64::try_from(bytes).unwrap_or(0);
    if files >= i64::from(limits.pending_files_per_contact)
        || bytes >= limits.pending_bytes_per_contact
    {
        return Err(quota_error(state));
    }
    Ok(limits.pending_bytes_per_contact - bytes)
}

pub(crate) fn quota_error(state: &AppState) -> ApiError {
    let limits = &state.config.uploads;
    ApiError::UploadQuota(format!(
        "too many files waiting to be sent (at most {} files, {} MiB): send or wait for them \
         to expire ({} h) before uploading more",
        limits.pending_files_per_contact,
        limits.pending_bytes_per_contact / (1024 * 1024),
        limits.pending_hours,
    ))
}

/// Sweeps now and then for as long as the server runs.
pub(crate) async fn sweep_forever(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        sweep(&state).await;
    }
}

async fn sweep(state: &AppState) {
    let age = state.config.uploads.pending_for();
    match state.app.sweep_uploads(&state.blobs, age).await {
        Ok(s) if s.uploads > 0 => {
            tracing::info!(
                uploads = s.uploads,
                files = s.files,
                "expired unsent uploads"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "sweeping unsent uploads failed"),
    }
}
