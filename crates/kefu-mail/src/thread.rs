//! Threading: which conversation does a received message continue?
//!
//! [`thread_hints`] lists the evidence, strongest first; the store tries each in turn:
//! 1. the reply token in a plus address (`support+TOKEN@host`) — kefu put it in Reply-To,
//!    so it survives clients that drop In-Reply-To and subjects that were rewritten;
//! 2. In-Reply-To and References ids — matched against Message-IDs kefu stored;
//! 3. a `[#1024]` ticket number in the subject — weakest, since anyone can type it.
//!
//! Tokens are opaque to this crate. [`ReplyToken::generate`] suggests a format (base32 of
//! 10 random bytes, 16 lower-case characters) and [`ReplyToken::parse`] validates any
//! token on the way in, so a crafted local part cannot smuggle odd characters into a
//! store lookup.

use std::fmt;

use rand::RngCore;
use serde::Serialize;

use crate::parse::ParsedEmail;

/// An opaque reply token: 8–64 characters of `[a-z0-9]`. Compared in lower case, since
/// some MTAs lower-case local parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ReplyToken(String);

/// Why a token or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("reply token must be 8 to 64 characters of a-z and 0-9")]
    BadToken,
    #[error("inbox address must be local@domain without a '+' tag")]
    BadAddress,
}

impl ReplyToken {
    /// 10 random bytes in RFC 4648 base32, lower case, no padding: 80 bits, 16 characters.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 10];
        rand::rng().fill_bytes(&mut bytes);
        ReplyToken(base32_lower(&bytes))
    }

    /// Validates a token from the store or from a received address.
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let s = s.trim().to_ascii_lowercase();
        let ok = (8..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(ReplyToken(s))
        } else {
            Err(TokenError::BadToken)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buf >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// `support@example.com` + token → `support+TOKEN@example.com`.
pub fn reply_address(inbox_address: &str, token: &ReplyToken) -> Result<String, TokenError> {
    let (local, domain) = split_inbox(inbox_address)?;
    Ok(format!("{local}+{token}@{domain}"))
}

fn split_inbox(inbox_address: &str) -> Result<(String, String), TokenError> {
    let addr = inbox_address.trim().to_lowercase();
    match addr.rsplit_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && !l.contains('+') && !d.contains('@') => {
            Ok((l.to_string(), d.to_string()))
        }
        _ => Err(TokenError::BadAddress),
    }
}

/// The evidence for threading a received message; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreadHints {
    /// From a plus address at the inbox among To, Cc, Delivered-To, X-Original-To.
    pub token: Option<ReplyToken>,
    /// In-Reply-To first, then References newest first, without duplicates.
    pub message_ids: Vec<String>,
    /// From `[#1024]` in the subject.
    pub ticket_number: Option<u64>,
}

/// Collects threading hints for `email` received at `inbox_address`.
pub fn thread_hints(email: &ParsedEmail, inbox_address: &str) -> ThreadHints {
    let token = split_inbox(inbox_address).ok().and_then(|(local, domain)| {
        let candidates = email
            .to
            .iter()
            .chain(&email.cc)
            .map(|m| m.address.as_str())
            .chain(email.delivered_to.iter().map(String::as_str));
        candidates
            .filter_map(|a| token_in(a, &local, &domain))
            .next()
    });
    let mut message_ids: Vec<String> = Vec::new();
    for id in email
        .in_reply_to
        .iter()
        .chain(email.references.iter().rev())
    {
        if !message_ids.contains(id) {
            message_ids.push(id.clone());
        }
    }
    ThreadHints {
        token,
        message_ids,
        ticket_number: email.subject.as_deref().and_then(ticket_number),
    }
}

/// `local+TOKEN@domain` → TOKEN, if it is a valid token for this inbox.
fn token_in(address: &str, local: &str, domain: &str) -> Option<ReplyToken> {
    let (l, d) = address.rsplit_once('@')?;
    if !d.eq_ignore_ascii_case(domain) {
        return None;
    }
    let (base, tag) = l.split_once('+')?;
    if !base.eq_ignore_ascii_case(local) {
        return None;
    }
    ReplyToken::parse(tag).ok()
}

/// The first `[#N]` in a subject (N up to 18 digits).
pub fn ticket_number(subject: &str) -> Option<u64> {
    let mut rest = subject;
    while let Some(start) = rest.find("[#") {
        let after = &rest[start + 2..];
        let digits: &str = &after[..after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len())];
        if !digits.is_empty() && digits.len() <= 18 && after[digits.len()..].starts_with(']') {
            return digits.parse().ok();
        }
        rest = after;
    }
    None
}

/// Puts `[#N]` into a subject once: `退款` → `[#1024] 退款`; leaves it if already there.
pub fn subject_with_ticket(subject: &str, number: u64) -> String {
    let tag = format!("[#{number}]");
    if subject.contains(&tag) {
        subject.to_string()
    } else if subject.trim().is_empty() {
        tag
    } else {
        format!("{tag} {}", subject.trim())
    }
}

/// `Re: ` prefixed once, recognising `Re:`, `RE:`, `Re：`, `回复:`/`回复：` and `答复:`.
pub fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    let lower = s.to_lowercase();
    let already = ["re:", "re：", "回复:", "回复：", "答复:", "答复："]
        .iter()
        .any(|p| lower.starts_with(p));
    if already {
        s.to_string()
    } else {
        format!("Re: {s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = ReplyToken::generate();
        assert_eq!(t.as_str().len(), 16);
        assert_eq!(ReplyToken::parse(t.as_str()).as_ref(), Ok(&t));
        let cases = [
            ("abcdefgh", true),
            ("ABCDEFGH", true),
            ("abc", false),
            ("abcdefg!", false),
            ("abcd+efgh", false),
            ("", false),
        ];
        for (input, ok) in cases {
            assert_eq!(ReplyToken::parse(input).is_ok(), ok, "{input}");
        }
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn reply_addresses() -> Result<(), TokenError> {
        let t = ReplyToken::parse("abcdefgh")?;
        assert_eq!(
            reply_address("Support@Example.com", &t)?,
            "support+abcdefgh@example.com"
        );
        assert_eq!(reply_address("a+b@x.cn", &t), Err(TokenError::BadAddress));
        assert_eq!(reply_address("nope", &t), Err(TokenError::BadAddress));
        assert_eq!(
            token_in("support+abcdefgh@example.com", "support", "example.com"),
            Some(t.clone())
        );
        assert_eq!(
            token_in("other+abcdefgh@example.com", "support", "example.com"),
            None
        );
        assert_eq!(
            token_in("support+abcdefgh@evil.com", "support", "example.com"),
            None
        );
        assert_eq!(
            token_in("support+x@example.com", "support", "example.com"),
            None
        );
        Ok(())
    }

    #[test]
    fn subjects() {
        let cases = [
            ("Re: [#1024] 退款", Some(1024)),
            ("[#7]", Some(7)),
            ("[# 7]", None),
            ("[#abc] [#42] x", Some(42)),
            ("[#99999999999999999999]", None),
            ("no number", None),
            ("[#", None),
        ];
        for (s, want) in cases {
            assert_eq!(ticket_number(s), want, "{s}");
        }
        assert_eq!(subject_with_ticket("退款", 3), "[#3] 退款");
        assert_eq!(subject_with_ticket("Re: [#3] 退款", 3), "Re: [#3] 退款");
        assert_eq!(reply_subject("回复：退款"), "回复：退款");
        assert_eq!(reply_subject("退款"), "Re: 退款");
    }
}
