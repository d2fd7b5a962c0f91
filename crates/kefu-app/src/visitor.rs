//! Widget visitors. A visitor holds a token the server signed, naming their
//! contact and inbox; the widget keeps it in localStorage so a reload keeps
//! the conversation. A site that knows its user proves it with
//! `identifier_hash = HMAC-SHA256(inbox identity secret, identifier + timestamp)`:
//! the hash must be right, fresh (±10 minutes) and unused, and the token it
//! earns is marked verified. Every frame of a socket acts as the token's
//! contact and nobody else, so no frame can speak for another visitor.

use crate::error::{AppError, AppResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use kefu_core::{Identity, NewContact, validate};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// How far an identifier's timestamp may be from the server's clock.
pub const IDENTITY_MAX_SKEW_SECS: i64 = 600;
/// Anonymous visitors keep their conversation for a year of reloads.
pub const ANONYMOUS_TOKEN_DAYS: i64 = 365;
/// A verified token is re-earned with a fresh hash after a day.
pub const VERIFIED_TOKEN_HOURS: i64 = 24;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The contact.
    pub c: Uuid,
    /// The inbox.
    pub i: Uuid,
    /// Verified by the site's identifier hash.
    pub v: bool,
    /// Expiry, seconds since the epoch.
    pub e: i64,
}

pub fn sign(key: &[u8], claims: &Claims) -> String {
    sign_as("v1.", key, claims)
}

/// The claims of a token this server signed that has not expired.
pub fn verify(key: &[u8], token: &str, now_secs: i64) -> Option<Claims> {
    verify_as::<Claims>("v1.", key, token).filter(|c| c.e > now_secs)
}

/// `PREFIX` + base64url(JSON claims) + `.` + base64url(HMAC-SHA256 of the
/// encoded claims): the token format of visitors and continuity links.
pub fn sign_as(prefix: &str, key: &[u8], claims: &impl Serialize) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let sig = URL_SAFE_NO_PAD.encode(mac(key, body.as_bytes()));
    format!("{prefix}{body}.{sig}")
}

/// The claims of an untampered token of this format (expiry is the caller's).
pub fn verify_as<T: serde::de::DeserializeOwned>(
    prefix: &str,
    key: &[u8],
    token: &str,
) -> Option<T> {
    let (body, sig) = token.strip_prefix(prefix)?.split_once('.')?;
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(body.as_bytes());
    m.verify_slice(&URL_SAFE_NO_PAD.decode(sig).ok()?).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// The key visitor tokens are signed with, made once and kept in the
/// database so that every node and restart shares it.
pub async fn stored_key(store: &kefu_store::Store) -> Result<Vec<u8>, kefu_store::StoreError> {
    let fresh = crate::secrets::new_secret();
    Ok(store
        .setting_or_insert("visitor_signing_key", &fresh)
        .await?
        .into_bytes())
}

pub fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityError {
    Wrong,
    Stale,
}

/// Checks a site's identifier hash: exactly the hex of the HMAC (either
/// case), nothing around it. Returns the MAC's bytes, which is what the
/// caller records as spent: every spelling of one hash (upper or lower
/// case) is then one record. Replays are the caller's to refuse (it records
/// spent hashes in the database, shared by every node).
///
/// Whitespace is refused rather than trimmed: trimming here while the
/// caller recorded the text as given let `hash + " "` earn a second session.
pub fn check_identity(
    secret: &str,
    identifier: &str,
    timestamp: i64,
    hash_hex: &str,
    now_secs: i64,
) -> Result<Vec<u8>, IdentityError> {
    // hex::decode refuses any non-hex character, whitespace included.
    let given = hex::decode(hash_hex).map_err(|_| IdentityError::Wrong)?;
    let mut m = HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| IdentityError::Wrong)?;
    m.update(format!("{identifier}{timestamp}").as_bytes());
    m.verify_slice(&given).map_err(|_| IdentityError::Wrong)?;
    // Checked: a timestamp near i64::MIN or MAX must not overflow.
    let skew = now_secs
        .checked_sub(timestamp)
        .map_or(u64::MAX, i64::unsigned_abs);
    if skew > IDENTITY_MAX_SKEW_SECS.unsigned_abs() {
        return Err(IdentityError::Stale);
    }
    Ok(given)
}

/// The key under which a verified hash is remembered as spent: its bytes,
/// in lower-case hex (what the records held before, for clean input).
pub fn spent_identity_key(mac: &[u8]) -> String {
    hex::encode(mac)
}

/// What a site computes (for tests and docs).
pub fn identity_hash(secret: &str, identifier: &str, timestamp: i64) -> String {
    hex::encode(mac(
        secret.as_bytes(),
        format!("{identifier}{timestamp}").as_bytes(),
    ))
}

/// What a widget asks to start or resume a visitor session with: a
/// continuity link, a site's signed identifier, or a token it holds; with
/// none, a new anonymous visitor. What the visitor typed about themselves
/// rides along.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    pub link: Option<String>,
    pub identifier: Option<String>,
    pub timestamp: Option<i64>,
    pub identifier_hash: Option<String>,
    pub token: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A visitor session: the token to send as `hello.token`.
#[derive(Debug, Clone)]
pub struct VisitorSession {
    pub token: String,
    pub contact_id: Uuid,
    pub verified: bool,
    pub expires_at: i64,
}

impl crate::App {
    /// Resolves who a widget visitor is and signs their token. The inbox
    /// (a widget inbox) and its identity secret are the caller's to look up.
    pub async fn visitor_session(
        &self,
        inbox_id: Uuid,
        identity_secret: Option<&str>,
        req: &SessionRequest,
    ) -> AppResult<VisitorSession> {
        let details = Details::from(req)?;
        let now = kefu_core::time::now().timestamp();
        // A verified token keeps its expiry when resumed: only a fresh hash
        // from the site earns another day, so a stolen token cannot be kept
        // alive.
        let mut keep_expiry = None;
        let (contact_id, verified) = match (&req.link, &req.identifier, &req.token) {
            (Some(link), _, _) => {
                let link = self
                    .redeem_link(link, now)
                    .await?
                    .filter(|l| l.inbox_id == inbox_id)
                    .ok_or(AppError::Unauthorized)?;
                (link.contact_id, true)
            }
            (None, Some(identifier), _) => (
                self.verified_contact(identity_secret, identifier, req, now)
                    .await?,
                true,
            ),
            (None, None, Some(token)) => {
                let key = self.visitor_key().await?;
                let claims = verify(&key, token, now)
                    .filter(|c| c.i == inbox_id)
                    .ok_or(AppError::Unauthorized)?;
                if claims.v {
                    keep_expiry = Some(claims.e);
                }
                (claims.c, claims.v)
            }
            (None, None, None) => (
                self.store()
                    .create_contact(&NewContact::default())
                    .await?
                    .id,
                false,
            ),
        };
        if details.any() {
            self.store()
                .set_visitor_details(
                    contact_id,
                    details.name.as_deref(),
                    details.email.as_deref(),
                    details.phone.as_deref(),
                )
                .await?;
        }
        let lifetime = if verified {
            VERIFIED_TOKEN_HOURS * 3600
        } else {
            ANONYMOUS_TOKEN_DAYS * 86_400
        };
        let expires_at = keep_expiry.unwrap_or(now + lifetime);
        let key = self.visitor_key().await?;
        let token = sign(
            &key,
            &Claims {
                c: contact_id,
                i: inbox_id,
                v: verified,
                e: expires_at,
            },
        );
        Ok(VisitorSession {
            token,
            contact_id,
            verified,
            expires_at,
        })
    }

    /// The claims of a visitor token this server signed, unexpired.
    pub async fn visitor_claims(&self, token: &str) -> AppResult<Option<Claims>> {
        let key = self.visitor_key().await?;
        Ok(verify(&key, token, kefu_core::time::now().timestamp()))
    }

    /// Checks the site's hash (right, fresh, unused) and finds or creates
    /// the contact holding the identifier.
    async fn verified_contact(
        &self,
        secret: Option<&str>,
        identifier: &str,
        req: &SessionRequest,
        now: i64,
    ) -> AppResult<Uuid> {
        let secret = secret.ok_or(AppError::Forbidden("this inbox has no identity secret"))?;
        let (timestamp, hash) = match (req.timestamp, req.identifier_hash.as_deref()) {
            (Some(t), Some(h)) => (t, h),
            _ => {
                return Err(AppError::Rejected(
                    "identifier needs timestamp and identifier_hash".into(),
                ));
            }
        };
        let mac =
            check_identity(secret, identifier, timestamp, hash, now).map_err(|e| match e {
                IdentityError::Wrong => AppError::Unauthorized,
                IdentityError::Stale => {
                    AppError::Forbidden("identifier_hash is stale: sign a fresh timestamp")
                }
            })?;
        // check_identity refused timestamps more than the skew away, so this
        // cannot overflow; saturating all the same, as every sum on input.
        let expires = kefu_core::time::from_millis(
            timestamp
                .saturating_add(IDENTITY_MAX_SKEW_SECS + 60)
                .saturating_mul(1000),
        );
        if !self
            .store()
            .spend_nonce(&spent_identity_key(&mac), expires)
            .await?
        {
            return Err(AppError::Forbidden(
                "identifier_hash was used already: sign a fresh one",
            ));
        }
        let identity = identity_of(identifier)?;
        match self
            .store()
            .contact_by_identity(&identity.kind, &identity.value)
            .await
        {
            Ok(c) => Ok(c.id),
            Err(kefu_store::StoreError::NotFound) => {
                let new = NewContact {
                    identities: vec![identity],
                    ..Default::default()
                };
                Ok(self.store().create_contact(&new).await?.id)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `wechat_unionid:o6_x` → (wechat_unionid, o6_x); `12345` → (site_user, 12345).
fn identity_of(identifier: &str) -> AppResult<Identity> {
    let mut identity = match identifier.split_once(':') {
        Some((kind, value))
            if !kind.is_empty()
                && kind
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
        {
            Identity {
                kind: kind.into(),
                value: value.into(),
            }
        }
        _ => Identity {
            kind: "site_user".into(),
            value: identifier.into(),
        },
    };
    validate::identity(&mut identity)?;
    Ok(identity)
}

/// What a visitor typed about themselves, checked.
struct Details {
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

impl Details {
    fn from(req: &SessionRequest) -> AppResult<Details> {
        let mut name = req.name.clone().filter(|s| !s.trim().is_empty());
        validate::opt_text(&mut name, "name", 1, 200)?;
        let email = match req.email.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(e) => Some(validate::email("email", e)?),
            None => None,
        };
        let mut phone = req.phone.clone().filter(|s| !s.trim().is_empty());
        validate::opt_text(&mut phone, "phone", 1, 40)?;
        Ok(Details { name, email, phone })
    }

    fn any(&self) -> bool {
        self.name.is_some() || self.email.is_some() || self.phone.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_map_to_identities() {
        let i = identity_of("wechat_unionid:o6_abc").unwrap();
        assert_eq!(
            (i.kind.as_str(), i.value.as_str()),
            ("wechat_unionid", "o6_abc")
        );
        let i = identity_of("42").unwrap();
        assert_eq!((i.kind.as_str(), i.value.as_str()), ("site_user", "42"));
        let i = identity_of("User:7").unwrap();
        assert_eq!((i.kind.as_str(), i.value.as_str()), ("site_user", "User:7"));
        assert!(identity_of("").is_err());
    }

    #[test]
    fn tokens_verify_only_untampered_and_unexpired() {
        let key = b"0123456789abcdef0123456789abcdef";
        let claims = Claims {
            c: Uuid::now_v7(),
            i: Uuid::now_v7(),
            v: false,
            e: 2_000,
        };
        let token = sign(key, &claims);
        assert_eq!(verify(key, &token, 1_000), Some(claims.clone()));
        assert_eq!(verify(key, &token, 2_000), None, "expired");
        assert_eq!(
            verify(b"another key, also thirty-two b..", &token, 1_000),
            None
        );
        let forged = Claims { v: true, ..claims };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let sig = token.rsplit('.').next().unwrap();
        assert_eq!(
            verify(key, &format!("v1.{body}.{sig}"), 1_000),
            None,
            "claims cannot be edited"
        );
        for junk in ["", "v1.", "v1.a.b", "v2.x.y", "v1..", "🙂"] {
            assert_eq!(verify(key, junk, 1_000), None, "{junk}");
        }
    }

    #[test]
    fn identity_hashes_must_be_right_and_fresh() {
        let secret = "inbox-secret";
        let h = identity_hash(secret, "user-42", 1_700_000_000);
        let mac = check_identity(secret, "user-42", 1_700_000_000, &h, 1_700_000_100)
            .expect("the right hash");
        assert_eq!(spent_identity_key(&mac), h);
        assert_eq!(
            check_identity(secret, "user-43", 1_700_000_000, &h, 1_700_000_100),
            Err(IdentityError::Wrong)
        );
        assert_eq!(
            check_identity("other", "user-42", 1_700_000_000, &h, 1_700_000_100),
            Err(IdentityError::Wrong)
        );
        assert_eq!(
            check_identity(secret, "user-42", 1_700_000_000, &h, 1_700_003_600),
            Err(IdentityError::Stale)
        );
        assert_eq!(
            check_identity(secret, "user-42", 1_700_000_000, "zz", 1_700_000_000),
            Err(IdentityError::Wrong)
        );
        for t in [i64::MIN, i64::MIN + 1, -1, i64::MAX] {
            let h = identity_hash(secret, "user-42", t);
            assert_eq!(
                check_identity(secret, "user-42", t, &h, 1_700_000_100),
                Err(IdentityError::Stale),
                "{t}"
            );
        }
    }

    /// One hash has one spent key however it is spelled; anything around
    /// or inside the hex (the padding a replay would add) is refused.
    #[test]
    fn identity_hashes_are_spent_by_their_bytes() {
        let secret = "inbox-secret";
        let (t, now) = (1_700_000_000, 1_700_000_100);
        let h = identity_hash(secret, "user-42", t);
        let key = |given: &str| {
            check_identity(secret, "user-42", t, given, now).map(|mac| spent_identity_key(&mac))
        };
        // Java's printHexBinary and .NET's Convert.ToHexString write upper case.
        assert_eq!(key(&h), Ok(h.clone()));
        assert_eq!(key(&h.to_ascii_uppercase()), Ok(h.clone()));
        let mixed: String = h
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        assert_eq!(key(&mixed), Ok(h.clone()));
        for padded in [
            format!("{h} "),
            format!("\t{h}"),
            format!("{h}\n"),
            format!("{h}\r\n"),
            format!("{h}\u{3000}"),
            format!("\u{feff}{h}"),
            format!("{h}\u{a0}"),
            format!("0x{h}"),
            format!("{}-{}", &h[..32], &h[32..]),
            format!("{h}00"),
            h[..62].to_string(),
            String::new(),
        ] {
            assert_eq!(key(&padded), Err(IdentityError::Wrong), "{padded:?}");
        }
    }
}
