//! Building outgoing mail with lettre's `Message` builder.
//!
//! [`build`] returns the final bytes together with the envelope and the Message-ID, so the
//! caller can store all three in the durable outbox *before* the first send attempt: a
//! retry then sends the very same bytes (same Message-ID, same DKIM signature), and a
//! later bounce or reply finds the message by that id.
//!
//! Every reply carries `Reply-To: inbox+TOKEN@domain` (see [`crate::thread`]) and
//! `In-Reply-To`/`References`, so threading works with whichever one the customer's
//! client keeps.

use std::time::{SystemTime, UNIX_EPOCH};

use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox as LMailbox, MultiPart, SinglePart};

use crate::parse::{Mailbox, ParsedEmail};
use crate::thread::{ReplyToken, reply_address};

/// How many References ids to keep: the first (thread root) and the newest ones.
/// Long threads would otherwise grow the header without bound.
const MAX_REFERENCES: usize = 20;

/// An attachment to send. With `content_id` set it is an inline part that the HTML
/// references as `cid:ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingAttachment {
    pub filename: String,
    /// `type/subtype`; `application/octet-stream` when unknown.
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub content_id: Option<String>,
}

/// A message to send from an inbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The inbox address and its display name (e.g. "某某客服").
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// UTF-8; lettre encodes it per RFC 2047.
    pub subject: String,
    pub text: String,
    /// HTML alternative; sent as multipart/alternative with `text`.
    pub html: Option<String>,
    pub attachments: Vec<OutgoingAttachment>,
    /// Message-ID being answered, without angle brackets.
    pub in_reply_to: Option<String>,
    /// Thread ids, oldest first, without angle brackets.
    pub references: Vec<String>,
    /// Puts `Reply-To: inbox+TOKEN@domain` on the message.
    pub reply_token: Option<ReplyToken>,
    /// Set for automatic mail (acknowledgements): `Auto-Submitted: auto-replied` (RFC 3834)
    /// tells other robots not to answer, which breaks mail loops.
    pub auto_submitted: bool,
}

/// A message ready for the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct BuiltEmail {
    /// Without angle brackets; generated on the inbox's domain.
    pub message_id: String,
    /// SMTP MAIL FROM (the inbox address).
    pub envelope_from: String,
    /// SMTP RCPT TO: every To and Cc address.
    pub recipients: Vec<String>,
    /// The complete RFC 5322 message, DKIM-signed if a signer was given.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for BuiltEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltEmail")
            .field("message_id", &self.message_id)
            .field("envelope_from", &self.envelope_from)
            .field("recipients", &self.recipients)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("invalid address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("invalid content type {0:?}")]
    ContentType(String),
    #[error("no recipients")]
    NoRecipients,
    #[error("bad DKIM key: {0}")]
    Dkim(String),
    /// The selector or the domain is not a DNS name; `field` says which.
    #[error("bad DKIM key: bad {field} {value:?}")]
    DkimName { field: &'static str, value: String },
    #[error("cannot build message: {0}")]
    Build(String),
}

/// DKIM signing with a key from configuration.
pub struct DkimSigner {
    config: DkimConfig,
}

impl std::fmt::Debug for DkimSigner {
    // The config holds the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DkimSigner { .. }")
    }
}

/// Which DKIM key type the configured key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// `private_key`: PEM, PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`, `openssl genrsa
    /// -traditional`) or PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what `openssl genrsa` and
    /// `genpkey` write); at least 1024 bits (RFC 8301), 2048 recommended.
    Rsa,
    /// `private_key`: base64 of the 32-byte seed, or PKCS#8 PEM (`openssl genpkey
    /// -algorithm ed25519`).
    Ed25519,
}

/// DER prefix of a PKCS#8 Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The key in the form lettre takes: PKCS#1 PEM for RSA, the base64 seed for Ed25519.
/// lettre reads only those; operators mostly have PKCS#8 files.
fn lettre_key(private_key: &str, algorithm: DkimAlgorithm) -> Result<String, ComposeError> {
    use base64::Engine as _;
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::traits::PublicKeyParts;
    let key = private_key.trim();
    let bad = |why: &str| ComposeError::Dkim(why.to_string());
    match algorithm {
        DkimAlgorithm::Rsa => {
            let rsa = if key.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
                rsa::RsaPrivateKey::from_pkcs1_pem(key)
                    .map_err(|e| bad(&format!("not a PKCS#1 RSA key: {e}")))?
            } else if key.starts_with("-----BEGIN PRIVATE KEY-----") {
                rsa::RsaPrivateKey::from_pkcs8_pem(key)
                    .map_err(|e| bad(&format!("not a PKCS#8 RSA key: {e}")))?
            } else {
                return Err(bad(
                    "an RSA key must be PEM (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)",
                ));
            };
            if rsa.size() * 8 < 1024 {
                return Err(bad("an RSA key must have at least 1024 bits (RFC 8301)"));
            }
            let pem = rsa
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .map_err(|e| bad(&e.to_string()))?;
            Ok(pem.to_string())
        }
        DkimAlgorithm::Ed25519 => {
            let b64 = base64::engine::general_purpose::STANDARD;
            if key.starts_with("-----BEGIN PRIVATE KEY-----") {
                // The same PEM reader as the RSA keys above; zeroed when dropped.
                let (_, der) = rsa::pkcs8::SecretDocument::from_pem(key)
                    .map_err(|e| bad(&format!("not a PEM private key: {e}")))?;
                match der.as_bytes().strip_prefix(&ED25519_PKCS8_PREFIX[..]) {
                    Some(seed) if seed.len() == 32 => Ok(b64.encode(seed)),
                    _ => Err(bad("not a PKCS#8 Ed25519 key")),
                }
            } else {
                let seed = b64.decode(key).map_err(|_| {
                    bad("an Ed25519 key must be base64 of its 32-byte seed or PKCS#8 PEM")
                })?;
                if seed.len() != 32 {
                    return Err(bad("an Ed25519 seed must be 32 bytes"));
                }
                Ok(key.to_string())
            }
        }
    }
}

impl DkimSigner {
    /// Signs as `d=domain; s=selector` over the headers that threading depends on, with
    /// relaxed canonicalisation (survives relays that re-fold headers).
    ///
    /// Not `Content-Type`: lettre 0.11 hashes the message's own headers, and a multipart
    /// message's top-level `Content-Type` belongs to its body part there, so listing it
    /// in `h=` produced signatures that no verifier accepted (dkimpy said so). The body
    /// hash still covers every part with its headers and boundaries.
    pub fn new(
        selector: &str,
        domain: &str,
        private_key: &str,
        algorithm: DkimAlgorithm,
    ) -> Result<Self, ComposeError> {
        let alg = match algorithm {
            DkimAlgorithm::Rsa => DkimSigningAlgorithm::Rsa,
            DkimAlgorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
        };
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        };
        let bad_name = |field, value: &str| ComposeError::DkimName {
            field,
            value: value.into(),
        };
        if !valid_name(selector) {
            return Err(bad_name("selector", selector));
        }
        if !valid_name(domain) || !domain.contains('.') {
            return Err(bad_name("domain", domain));
        }
        let private_key = lettre_key(private_key, algorithm)?;
        let key = DkimSigningKey::new(&private_key, alg)
            .map_err(|e| ComposeError::Dkim(e.to_string()))?;
        let headers = [
            "From",
            "To",
            "Cc",
            "Subject",
            "Date",
            "Message-ID",
            "In-Reply-To",
            "References",
            "Reply-To",
            "MIME-Version",
        ]
        .into_iter()
        .map(HeaderName::new_from_ascii_str)
        .collect();
        let relaxed = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        Ok(DkimSigner {
            config: DkimConfig::new(selector.into(), domain.into(), key, headers, relaxed),
        })
    }
}

/// Builds the message; see the module docs.
pub fn build(email: &OutgoingEmail, dkim: Option<&DkimSigner>) -> Result<BuiltEmail, ComposeError> {
    let domain = domain_of(&email.from.address)?;
    let message_id = generate_message_id(&domain);
    let mut builder = Message::builder()
        .from(lmailbox(&email.from)?)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{message_id}>")));
    if email.to.is_empty() && email.cc.is_empty() {
        return Err(ComposeError::NoRecipients);
    }
    for m in &email.to {
        builder = builder.to(lmailbox(m)?);
    }
    for m in &email.cc {
        builder = builder.cc(lmailbox(m)?);
    }
    if let Some(token) = &email.reply_token {
        let address =
            reply_address(&email.from.address, token).map_err(|e| ComposeError::Address {
                address: email.from.address.clone(),
                reason: e.to_string(),
            })?;
        builder = builder.reply_to(lmailbox(&Mailbox {
            address,
            name: email.from.name.clone(),
        })?);
    }
    if let Some(id) = &email.in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    let refs = trimmed_references(&email.references);
    if !refs.is_empty() {
        let joined: Vec<String> = refs.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(joined.join(" "));
    }
    let mut message = builder
        .multipart(body(email)?)
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    if email.auto_submitted {
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".into(),
        ));
    }
    if let Some(signer) = dkim {
        message.sign(&signer.config);
    }
    let envelope = message.envelope();
    Ok(BuiltEmail {
        message_id,
        envelope_from: envelope.from().map(ToString::to_string).unwrap_or_default(),
        recipients: envelope.to().iter().map(ToString::to_string).collect(),
        bytes: message.formatted(),
    })
}

/// `mixed[ related[ alternative[text, html], inline… ], attachment… ]`, leaving out the
/// layers that would be empty. Always a multipart so the builder has one code path.
fn body(email: &OutgoingEmail) -> Result<MultiPart, ComposeError> {
    let text = SinglePart::plain(email.text.clone());
    let mut content = match &email.html {
        Some(html) => MultiPart::alternative()
            .singlepart(text)
            .singlepart(SinglePart::html(html.clone())),
        None => MultiPart::mixed().singlepart(text),
    };
    let (inline, attached): (Vec<_>, Vec<_>) = email
        .attachments
        .iter()
        .partition(|a| a.content_id.is_some());
    if !inline.is_empty() {
        let mut related = MultiPart::related().multipart(content);
        for a in inline {
            let cid = a.content_id.clone().unwrap_or_default();
            related = related.singlepart(
                Attachment::new_inline_with_name(cid, a.filename.clone())
                    .body(a.bytes.clone(), content_type(&a.content_type)?),
            );
        }
        content = related;
    }
    if attached.is_empty() {
        return Ok(content);
    }
    let mut mixed = MultiPart::mixed().multipart(content);
    for a in attached {
        mixed = mixed.singlepart(
            Attachment::new(a.filename.clone())
                .body(a.bytes.clone(), content_type(&a.content_type)?),
        );
    }
    Ok(mixed)
}

fn content_type(s: &str) -> Result<ContentType, ComposeError> {
    let s = if s.trim().is_empty() {
        "application/octet-stream"
    } else {
        s
    };
    ContentType::parse(s).map_err(|_| ComposeError::ContentType(s.to_string()))
}

fn lmailbox(m: &Mailbox) -> Result<LMailbox, ComposeError> {
    let address = m
        .address
        .trim()
        .parse()
        .map_err(|e: lettre::address::AddressError| ComposeError::Address {
            address: m.address.clone(),
            reason: e.to_string(),
        })?;
    Ok(LMailbox::new(m.name.clone(), address))
}

fn domain_of(address: &str) -> Result<String, ComposeError> {
    match address.trim().rsplit_once('@') {
        Some((_, d)) if !d.is_empty() => Ok(d.to_lowercase()),
        _ => Err(ComposeError::Address {
            address: address.into(),
            reason: "no domain".into(),
        }),
    }
}

/// `<millis-base36>.<random>@domain`, without angle brackets. The time part keeps ids
/// roughly sortable in logs; the random part (80 bits) makes them unique.
pub fn generate_message_id(domain: &str) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}.{}@{}", base36(millis), ReplyToken::generate(), domain)
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn trimmed_references(refs: &[String]) -> Vec<String> {
    if refs.len() <= MAX_REFERENCES {
        return refs.to_vec();
    }
    let mut out = vec![refs[0].clone()];
    out.extend_from_slice(&refs[refs.len() - (MAX_REFERENCES - 1)..]);
    out
}

/// In-Reply-To and References for answering `parsed`: its Message-ID, appended to its
/// own References (or In-Reply-To when it has none), as RFC 5322 §3.6.4 describes.
pub fn reply_headers(parsed: &ParsedEmail) -> (Option<String>, Vec<String>) {
    let mut refs = if parsed.references.is_empty() {
        parsed.in_reply_to.clone()
    } else {
        parsed.references.clone()
    };
    if let Some(id) = &parsed.message_id
        && !refs.contains(id)
    {
        refs.push(id.clone());
    }
    (parsed.message_id.clone(), refs)
}

/// Language of automatic mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    ZhCn,
    En,
}

/// Subject and bodies of an automatic acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoAck {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The acknowledgement for a new ticket. The subject carries `[#N]`, so a reply that
/// loses every other hint still threads. Send it with `auto_submitted: true`, and never
/// in answer to mail whose [`crate::MailKind::is_automated`] is true.
pub fn auto_ack(lang: Lang, ticket: u64, original_subject: &str, team: &str) -> AutoAck {
    let original = original_subject.trim();
    let (subject, lines) = match lang {
        Lang::ZhCn => (
            format!("[#{ticket}] 我们已收到您的来信：{original}"),
            [
                "您好，".to_string(),
                format!("我们已收到您的邮件，工单编号为 #{ticket}。客服人员会尽快回复您。"),
                "如需补充信息，请直接回复本邮件，并保留主题中的工单编号。".to_string(),
                format!("—— {team}"),
            ],
        ),
        Lang::En => (
            format!("[#{ticket}] We received your message: {original}"),
            [
                "Hello,".to_string(),
                format!("We received your email and opened ticket #{ticket}. An agent will reply soon."),
                "To add details, just reply to this email and keep the ticket number in the subject.".to_string(),
                format!("— {team}"),
            ],
        ),
    };
    let html = lines
        .iter()
        .map(|l| format!("<p>{}</p>", escape_html(l)))
        .collect::<Vec<_>>()
        .join("\n");
    AutoAck {
        subject: subject.trim_end_matches(['：', ':', ' ']).to_string(),
        text: lines.join("\n\n"),
        html,
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_as_lettre_takes_them() {
        // The seed of 32 sevens, as base64 and inside PKCS#8: a test key, not a secret.
        let seed = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let pem = |body: &str| {
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
        };
        let ed25519 = pem("MC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH");
        // The same bytes under Ed448's OID.
        let ed448 = pem("MC4CAQAwBQYDK2VxBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH");
        let key = |k: &str| lettre_key(k, DkimAlgorithm::Ed25519).ok();
        assert_eq!(key(seed).as_deref(), Some(seed));
        assert_eq!(key(&ed25519).as_deref(), Some(seed));
        assert_eq!(key(&ed25519.replace('\n', "\r\n")).as_deref(), Some(seed));
        assert_eq!(key(&ed448), None);
        assert_eq!(key(&pem("AAAA")), None);
        assert_eq!(key(&pem("not base64!")), None);
    }

    #[test]
    fn references_are_capped() {
        let refs: Vec<String> = (0..50).map(|i| format!("r{i}@x")).collect();
        let t = trimmed_references(&refs);
        assert_eq!(t.len(), MAX_REFERENCES);
        assert_eq!(t[0], "r0@x");
        assert_eq!(t[MAX_REFERENCES - 1], "r49@x");
        assert_eq!(trimmed_references(&refs[..3]), refs[..3].to_vec());
    }

    #[test]
    fn message_ids() {
        let a = generate_message_id("kefu.example");
        let b = generate_message_id("kefu.example");
        assert_ne!(a, b);
        assert!(a.ends_with("@kefu.example"));
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36), "10");
    }

    #[test]
    fn acks() {
        let zh = auto_ack(Lang::ZhCn, 1024, "退款 <urgent>", "某某客服");
        assert_eq!(zh.subject, "[#1024] 我们已收到您的来信：退款 <urgent>");
        assert!(zh.text.contains("#1024"));
        let en = auto_ack(Lang::En, 7, "", "Acme <Support>");
        assert_eq!(en.subject, "[#7] We received your message");
        assert!(en.html.contains("Acme &lt;Support&gt;"));
    }
}
