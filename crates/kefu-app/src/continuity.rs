//! Continuity links: `/c/TOKEN` opens the widget already identified as one
//! contact, with their history — what a company sends its WeChat customers
//! while it moves them over. The token is signed (a key derived from the
//! visitor key, so a link and a visitor token can never stand for each
//! other) and names a row in `continuity_links`, which makes it revocable;
//! it also carries its expiry, so an expired link is refused without a read.

use crate::App;
use crate::error::{AppError, AppResult};
use crate::visitor;
use kefu_store::{ContinuityLink, StoreError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    /// The link's row.
    l: Uuid,
    /// Expiry, seconds since the epoch.
    e: i64,
}

const PREFIX: &str = "c1.";

fn link_key(visitor_key: &[u8]) -> Vec<u8> {
    visitor::mac(visitor_key, b"kefu continuity link")
}

fn sign(key: &[u8], claims: &Claims) -> String {
    visitor::sign_as(PREFIX, key, claims)
}

fn verify(key: &[u8], token: &str, now_secs: i64) -> Option<Claims> {
    visitor::verify_as::<Claims>(PREFIX, key, token).filter(|c| c.e > now_secs)
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("writing the CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing the CSV: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for LinkError {
    fn from(e: StoreError) -> Self {
        LinkError::App(e.into())
    }
}

impl App {
    /// Makes a link for each contact into `inbox_id` (a widget inbox), valid
    /// until `expires_at` (seconds); the URLs start with `base_url`.
    pub async fn issue_links(
        &self,
        inbox_id: Uuid,
        contacts: &[Uuid],
        expires_at: i64,
        base_url: &str,
    ) -> AppResult<Vec<String>> {
        let key = link_key(&self.visitor_key().await?);
        let ids = self
            .store()
            .create_continuity_links(inbox_id, contacts, expires_at.saturating_mul(1000))
            .await?;
        let base = base_url.trim_end_matches('/');
        Ok(ids
            .into_iter()
            .map(|l| {
                let token = sign(&key, &Claims { l, e: expires_at });
                format!("{base}/c/{token}")
            })
            .collect())
    }

    /// Writes a CSV of one new link per contact holding a WeChat identity
    /// (`contact_id,name,identities,url,expires_at`), 500 contacts per
    /// transaction; returns how many.
    pub async fn write_links_csv(
        &self,
        inbox_id: Uuid,
        expires_at: i64,
        base_url: &str,
        out: impl std::io::Write,
    ) -> Result<u64, LinkError> {
        let mut csv = csv::Writer::from_writer(out);
        csv.write_record(["contact_id", "name", "identities", "url", "expires_at"])?;
        let expiry = chrono::DateTime::from_timestamp(expires_at, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let (mut after, mut written) = (None, 0);
        loop {
            let page = self
                .store()
                .contacts_with_identity("wechat_", after, 500)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.contact_id);
            let ids: Vec<Uuid> = page.iter().map(|t| t.contact_id).collect();
            let urls = self
                .issue_links(inbox_id, &ids, expires_at, base_url)
                .await?;
            for (t, url) in page.iter().zip(urls) {
                let identities: Vec<String> = t
                    .identities
                    .iter()
                    .map(|i| format!("{}:{}", i.kind, i.value))
                    .collect();
                let id = t.contact_id.to_string();
                let name = t.name.as_deref().unwrap_or("");
                csv.write_record([id.as_str(), name, &identities.join(" "), &url, &expiry])?;
                written += 1;
            }
        }
        csv.flush()?;
        Ok(written)
    }

    /// Revokes every continuity link, or those of one contact; returns how
    /// many.
    pub async fn revoke_links(&self, contact_id: Option<Uuid>) -> AppResult<u64> {
        Ok(self.store().revoke_continuity_links(contact_id).await?)
    }

    /// The live link a token names: signed by us, unexpired, unrevoked. Its
    /// use is recorded.
    pub async fn redeem_link(
        &self,
        token: &str,
        now_secs: i64,
    ) -> AppResult<Option<ContinuityLink>> {
        let key = link_key(&self.visitor_key().await?);
        let Some(claims) = verify(&key, token, now_secs) else {
            return Ok(None);
        };
        match self.store().use_continuity_link(claims.l).await {
            Ok(link) if !link.revoked && link.expires_at > now_secs * 1000 => Ok(Some(link)),
            Ok(_) | Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_tokens_are_not_visitor_tokens() {
        let visitor_key = b"0123456789abcdef0123456789abcdef";
        let key = link_key(visitor_key);
        let claims = Claims {
            l: Uuid::now_v7(),
            e: 2_000,
        };
        let token = sign(&key, &claims);
        assert_eq!(verify(&key, &token, 1_000), Some(claims));
        assert_eq!(verify(&key, &token, 2_000), None, "expired");
        assert_eq!(verify(visitor_key, &token, 1_000), None, "another key");
        let as_visitor = token.replacen(PREFIX, "v1.", 1);
        assert!(visitor::verify(visitor_key, &as_visitor, 1_000).is_none());
        for junk in ["", "c1.", "c1.a.b", "c1..", "测试"] {
            assert_eq!(verify(&key, junk, 1_000), None, "{junk}");
        }
    }
}
