//! The self-hosted challenge in front of every submission; no third-party
//! captcha (unreachable from mainland China, and it would report our
//! customers to someone else).
//!
//! Each form page carries a signed token naming a small sum and an expiry.
//! It is answered either by a person, with the sum (works without
//! JavaScript), or by the page's script, with a proof of work: a nonce such
//! that SHA-256(token ":" nonce) starts with [`POW_BITS`] zero bits. One
//! verifier takes both. A token is spent when its submission is stored
//! (a row in the spent-nonce table shared by every node), so it cannot be
//! replayed. A bot that reads the page can still do the sum; what the
//! challenge buys is that every submission costs a fresh page load and
//! signature, which the per-IP limit then counts.

use crate::visitor;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const PREFIX: &str = "fc1.";
/// Long enough to fill in a long form on a phone.
pub const LIFETIME_SECS: i64 = 30 * 60;
/// About 16,000 hashes: well under a second in a phone's browser.
pub const POW_BITS: u32 = 14;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Spent once.
    pub n: Uuid,
    pub a: u8,
    pub b: u8,
    /// Expiry, seconds since the epoch.
    pub e: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeError {
    Missing,
    /// Not signed by us, or the answer is wrong.
    Wrong,
    Expired,
    /// Its submission was stored already.
    Replayed,
}

/// A challenge as the page and the JSON API show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Challenge {
    /// Send back as `challenge_token`.
    pub token: String,
    /// `3 + 4`: its sum is one accepted `challenge_answer`.
    pub question: String,
    /// `pow:NONCE` is the other: SHA-256(token ":" NONCE) must start with
    /// this many zero bits.
    pub pow_bits: u32,
    pub expires_at: i64,
}

/// Derived from the visitor key, so a challenge is never a valid token of
/// another kind (visitor, continuity link, status link).
pub fn key(visitor_key: &[u8]) -> Vec<u8> {
    visitor::mac(visitor_key, b"kefu form challenge")
}

pub fn issue(key: &[u8], now_secs: i64) -> Challenge {
    let mut rng = rand::rng();
    let claims = Claims {
        n: Uuid::new_v4(),
        a: rng.random_range(1..=9),
        b: rng.random_range(1..=9),
        e: now_secs + LIFETIME_SECS,
    };
    shown(&visitor::sign_as(PREFIX, key, &claims), &claims)
}

/// A challenge as shown, from its token and claims (also to show one
/// again that was answered rightly).
pub fn shown(token: &str, claims: &Claims) -> Challenge {
    Challenge {
        token: token.trim().to_string(),
        question: format!("{} + {}", claims.a, claims.b),
        pow_bits: POW_BITS,
        expires_at: claims.e,
    }
}

/// The claims of a token we signed, unexpired, answered rightly. Spending
/// it is the caller's (it needs the store).
pub fn verify(
    key: &[u8],
    token: &str,
    answer: &str,
    now_secs: i64,
) -> Result<Claims, ChallengeError> {
    let (token, answer) = (token.trim(), answer.trim());
    if token.is_empty() || answer.is_empty() {
        return Err(ChallengeError::Missing);
    }
    let claims: Claims = visitor::verify_as(PREFIX, key, token).ok_or(ChallengeError::Wrong)?;
    if claims.e <= now_secs {
        return Err(ChallengeError::Expired);
    }
    let right = match answer.strip_prefix("pow:") {
        Some(nonce) => leading_zero_bits(token, nonce) >= POW_BITS,
        None => parse_number(answer) == Some(u32::from(claims.a) + u32::from(claims.b)),
    };
    if right {
        Ok(claims)
    } else {
        Err(ChallengeError::Wrong)
    }
}

/// The key under which a spent challenge is remembered until it expires.
pub fn spent_key(claims: &Claims) -> String {
    format!("form-challenge:{}", claims.n)
}

/// Full-width digits (from Chinese keyboards) count as digits.
fn parse_number(s: &str) -> Option<u32> {
    let ascii: String = s
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            c => c,
        })
        .collect();
    ascii.parse().ok()
}

fn leading_zero_bits(token: &str, nonce: &str) -> u32 {
    if nonce.len() > 64 {
        return 0;
    }
    let digest = Sha256::digest(format!("{token}:{nonce}").as_bytes());
    let mut bits = 0;
    for byte in digest {
        if byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn solve(token: &str) -> String {
        (0u64..)
            .map(|n| n.to_string())
            .find(|n| leading_zero_bits(token, n) >= POW_BITS)
            .unwrap()
    }

    #[test]
    fn sums_and_work_are_both_accepted_until_expiry() {
        let c = issue(KEY, 1_000);
        let claims: Claims = visitor::verify_as(PREFIX, KEY, &c.token).unwrap();
        let sum = (claims.a + claims.b).to_string();
        assert_eq!(verify(KEY, &c.token, &sum, 1_001), Ok(claims.clone()));
        let wide: String = sum
            .chars()
            .map(|d| char::from_u32(d as u32 - '0' as u32 + '０' as u32).unwrap())
            .collect();
        assert!(
            verify(KEY, &c.token, &wide, 1_001).is_ok(),
            "full-width digits"
        );
        let pow = format!("pow:{}", solve(&c.token));
        assert_eq!(verify(KEY, &c.token, &pow, 1_001), Ok(claims));
        assert_eq!(
            verify(KEY, &c.token, &sum, 1_000 + LIFETIME_SECS),
            Err(ChallengeError::Expired)
        );
    }

    #[test]
    fn wrong_forged_and_missing_answers_are_refused() {
        let c = issue(KEY, 1_000);
        let claims: Claims = visitor::verify_as(PREFIX, KEY, &c.token).unwrap();
        let wrong = (claims.a + claims.b + 1).to_string();
        assert_eq!(
            verify(KEY, &c.token, &wrong, 1_001),
            Err(ChallengeError::Wrong)
        );
        if leading_zero_bits(&c.token, "0") < POW_BITS {
            assert_eq!(
                verify(KEY, &c.token, "pow:0", 1_001),
                Err(ChallengeError::Wrong)
            );
        }
        let other = issue(b"another key, also thirty-two b..", 1_000);
        assert_eq!(
            verify(KEY, &other.token, "18", 1_001),
            Err(ChallengeError::Wrong)
        );
        assert_eq!(verify(KEY, "", "3", 1_001), Err(ChallengeError::Missing));
        assert_eq!(
            verify(KEY, &c.token, " ", 1_001),
            Err(ChallengeError::Missing)
        );
        assert_eq!(
            verify(KEY, "fc1.x.y", "3", 1_001),
            Err(ChallengeError::Wrong)
        );
        let long = format!("pow:{}", "9".repeat(100));
        assert_eq!(
            verify(KEY, &c.token, &long, 1_001),
            Err(ChallengeError::Wrong)
        );
    }
}
