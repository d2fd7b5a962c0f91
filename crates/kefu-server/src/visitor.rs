//! Widget visitors. A visitor holds a token the server signed, naming their
//! contact and inbox; the widget keeps it in localStorage so a reload keeps
//! the conversation. A site that knows its user proves it with
//! `identifier_hash = HMAC-SHA256(inbox identity secret, identifier + timestamp)`:
//! the hash must be right, fresh (±10 minutes) and unused, and the token it
//! earns is marked verified. Every frame of a socket acts as the token's
//! contact and nobody else, so no frame can speak for another visitor.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
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
pub(crate) fn sign_as(prefix: &str, key: &[u8], claims: &impl Serialize) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let sig = URL_SAFE_NO_PAD.encode(mac(key, body.as_bytes()));
    format!("{prefix}{body}.{sig}")
}

/// The claims of an untampered token of this format (expiry is the caller's).
pub(crate) fn verify_as<T: serde::de::DeserializeOwned>(
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
    let fresh = crate::auth::new_secret();
    Ok(store
        .setting_or_insert("visitor_signing_key", &fresh)
        .await?
        .into_bytes())
}

pub(crate) fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
