//! First start: with no active admin, kefu makes a one-time setup token and
//! prints a link with it; whoever opens the link first sets the first admin's
//! password. The token is stored hashed, replaced at every start that still
//! has no admin, and spent by the first successful setup.

use crate::auth::{new_secret, sha256};
use kefu_store::{Store, StoreError};

pub const SETUP_KEY: &str = "setup_token_sha256";

/// Returns the setup link when the organisation has no admin yet.
pub async fn prepare(store: &Store, base_url: &str) -> Result<Option<String>, StoreError> {
    if store.count_admins().await? > 0 {
        return Ok(None);
    }
    let token = new_secret();
    store
        .set_setting(SETUP_KEY, &hex::encode(sha256(&token)))
        .await?;
    Ok(Some(format!(
        "{}/setup?token={token}",
        base_url.trim_end_matches('/')
    )))
}

/// Spends the token if it is the current one; true when it was.
pub async fn spend(store: &Store, token: &str) -> Result<bool, StoreError> {
    store
        .take_setting(SETUP_KEY, &hex::encode(sha256(token)))
        .await
}

/// Makes `token` the current setup token again (after a failed setup).
pub async fn restore(store: &Store, token: &str) -> Result<(), StoreError> {
    store
        .set_setting(SETUP_KEY, &hex::encode(sha256(token)))
        .await
}
