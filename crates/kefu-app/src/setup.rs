//! First start: with no active admin, kefu makes a one-time setup token and
//! prints a link with it; whoever opens the link first sets the first admin's
//! password. The token is stored hashed, replaced at every start that still
//! has no admin, and spent by the first successful setup.

use crate::App;
use crate::error::{AppError, AppResult};
use crate::secrets::{new_secret, sha256};
use kefu_core::{Agent, NewAgent, Role};
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

impl App {
    /// Creates the first admin with the setup token: refused when the token
    /// is not the current one or an admin exists. A failed create puts the
    /// token back, so the link stays usable.
    pub async fn first_admin(&self, token: &str, mut new: NewAgent) -> AppResult<Agent> {
        new.role = Role::Admin;
        new.validate()?;
        let store = self.store();
        if store.count_admins().await? > 0 || !spend(store, token).await? {
            return Err(AppError::Forbidden(
                "setup link is not valid (already used, replaced, or an admin exists)",
            ));
        }
        let hash = crate::secrets::hash_password(new.password.clone().unwrap_or_default()).await?;
        match store.create_agent(&new, Some(&hash)).await {
            Ok(a) => Ok(a),
            Err(e) => {
                restore(store, token).await?;
                Err(e.into())
            }
        }
    }

    /// Records a failed login (unknown address or wrong password).
    pub async fn login_failed(&self, email: &str, ip: std::net::IpAddr) {
        let record = kefu_store::NewAudit {
            actor_id: None,
            actor_label: email,
            action: "auth.login_failed",
            target: None,
            ip: Some(ip.to_string()),
            details: serde_json::json!({ "email": email }),
        };
        if let Err(e) = self.store().audit(record).await {
            tracing::error!(error = %e, "writing the audit log failed");
        }
    }
}
