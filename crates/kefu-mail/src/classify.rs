//! Classifying received mail: normal, auto-reply, bulk/list mail, or bounce.
//!
//! This decides whether kefu may answer automatically (never to an auto-reply or a
//! bounce: two robots acknowledging each other is a mail loop) and whether a bounce marks
//! an outgoing message as failed. Signals, strongest first:
//! - a DSN (RFC 3464 `multipart/report; report-type=delivery-status`) → [`MailKind::Bounce`];
//! - `Auto-Submitted` other than `no` (RFC 3834), `X-Autoreply`, `X-Autorespond`,
//!   `Precedence: auto_reply` → [`MailKind::AutoReply`];
//! - `Precedence: bulk/junk/list`, `List-Id`, `List-Unsubscribe` → [`MailKind::Bulk`].

use mail_parser::{Message, MimeHeaders, PartType};
use serde::Serialize;

use crate::parse::{ParsedEmail, clean_id};

/// What kind of mail this is; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailKind {
    #[default]
    Normal,
    /// Out-of-office and other automatic answers. `reason` names the header that said so.
    AutoReply { reason: String },
    /// Newsletters and mailing lists.
    Bulk { reason: String },
    /// A delivery status notification about mail we sent.
    Bounce(Bounce),
}

impl MailKind {
    /// True when kefu must not send an automatic answer (acknowledgement) to this mail.
    pub fn is_automated(&self) -> bool {
        !matches!(self, MailKind::Normal)
    }
}

/// A parsed delivery status notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Bounce {
    pub recipients: Vec<BounceRecipient>,
    /// Message-ID of the message that bounced (from the returned message or headers), so
    /// the outbox can find which of its messages failed.
    pub original_message_id: Option<String>,
}

impl Bounce {
    /// True when some recipient failed for good (`Action: failed`).
    pub fn is_permanent_failure(&self) -> bool {
        self.recipients.iter().any(|r| r.action == "failed")
    }
}

/// One per-recipient block of a DSN.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BounceRecipient {
    /// Address from Final-Recipient (the `rfc822;` prefix removed), lower case.
    pub final_recipient: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`, lower case.
    pub action: String,
    /// Enhanced status code, e.g. `5.1.1`.
    pub status: String,
    pub diagnostic: Option<String>,
}

pub(crate) fn classify(msg: &Message<'_>, parsed: &ParsedEmail) -> MailKind {
    if let Some(bounce) = delivery_report(msg) {
        return MailKind::Bounce(bounce);
    }
    if let Some(reason) = auto_reply_reason(parsed) {
        return MailKind::AutoReply { reason };
    }
    if let Some(reason) = bulk_reason(parsed) {
        return MailKind::Bulk { reason };
    }
    MailKind::Normal
}

fn auto_reply_reason(p: &ParsedEmail) -> Option<String> {
    if let Some(v) = p.header("Auto-Submitted") {
        // RFC 3834: the value may carry parameters ("auto-replied; owner=…").
        let token = v
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !token.is_empty() && token != "no" {
            return Some(format!("Auto-Submitted: {token}"));
        }
    }
    // Not X-Auto-Response-Suppress: Exchange sends it on ordinary mail too.
    for name in ["X-Autoreply", "X-Autorespond"] {
        if let Some(v) = p.header(name) {
            let v = v.trim().to_ascii_lowercase();
            if !v.is_empty() && v != "no" && v != "false" {
                return Some(format!("{name}: {v}"));
            }
        }
    }
    match precedence(p).as_deref() {
        Some("auto_reply") => Some("Precedence: auto_reply".into()),
        _ => None,
    }
}

fn bulk_reason(p: &ParsedEmail) -> Option<String> {
    if let Some(prec @ ("bulk" | "junk" | "list")) = precedence(p).as_deref() {
        return Some(format!("Precedence: {prec}"));
    }
    ["List-Id", "List-Unsubscribe"]
        .into_iter()
        .find(|h| p.header(h).is_some())
        .map(|h| format!("{h} present"))
}

fn precedence(p: &ParsedEmail) -> Option<String> {
    p.header("Precedence")
        .map(|v| v.trim().to_ascii_lowercase().replace('-', "_"))
}

/// Finds a `multipart/report; report-type=delivery-status` anywhere in the message.
fn delivery_report(msg: &Message<'_>) -> Option<Bounce> {
    let root = msg.parts.first()?;
    let is_report = root.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    });
    if !is_report {
        return None;
    }
    let mut bounce = Bounce::default();
    for part in &msg.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
        match (ct.ctype().to_ascii_lowercase().as_str(), sub.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                bounce.recipients = parse_delivery_status(part.contents());
            }
            ("message", "rfc822" | "global") => {
                if let PartType::Message(inner) = &part.body {
                    bounce.original_message_id = inner.message_id().and_then(clean_id);
                } else {
                    bounce.original_message_id = header_in_block(part.contents(), "message-id");
                }
            }
            ("text", "rfc822-headers") | ("message", "global-headers") => {
                bounce.original_message_id = header_in_block(part.contents(), "message-id");
            }
            _ => {}
        }
    }
    Some(bounce)
}

/// Parses the body of a `message/delivery-status` part: one per-message block, then one
/// block per recipient, blocks separated by blank lines, each a list of header fields.
pub fn parse_delivery_status(body: &[u8]) -> Vec<BounceRecipient> {
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for block in blocks(&text) {
        let field = |name: &str| {
            block
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let Some(recipient) = field("Final-Recipient").or_else(|| field("Original-Recipient"))
        else {
            continue;
        };
        // "rfc822; user@example.com" → "user@example.com"
        let address = recipient
            .split_once(';')
            .map_or(recipient.as_str(), |(_, a)| a)
            .trim()
            .to_lowercase();
        out.push(BounceRecipient {
            final_recipient: address,
            action: field("Action").unwrap_or_default().trim().to_lowercase(),
            status: field("Status")
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string(),
            diagnostic: field("Diagnostic-Code"),
        });
    }
    out
}

/// Splits text into blank-line-separated blocks of unfolded `Name: value` fields.
fn blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks = vec![Vec::new()];
    for line in text.lines() {
        let Some(current) = blocks.last_mut() else {
            break;
        };
        let current: &mut Vec<(String, String)> = current;
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(Vec::new());
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = current.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            current.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    blocks
}

/// Finds one header in a block of raw headers (`text/rfc822-headers`), unfolded.
fn header_in_block(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    blocks(&text)
        .into_iter()
        .next()?
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| clean_id(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_status_blocks() {
        let body = b"Reporting-MTA: dns; mx.example.com\r\n\r\n\
Final-Recipient: rfc822; Gone@Example.com\r\nAction: failed\r\nStatus: 5.1.1 (bad mailbox)\r\n\
Diagnostic-Code: smtp; 550 5.1.1 user\r\n  unknown\r\n\r\n\
Final-Recipient: rfc822;later@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n";
        let r = parse_delivery_status(body);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].final_recipient, "gone@example.com");
        assert_eq!(r[0].action, "failed");
        assert_eq!(r[0].status, "5.1.1");
        assert_eq!(
            r[0].diagnostic.as_deref(),
            Some("smtp; 550 5.1.1 user unknown")
        );
        assert_eq!(r[1].action, "delayed");
        assert!(parse_delivery_status(b"").is_empty());
        assert!(parse_delivery_status(b"\xff\xfe: garbage\n\n\n:").is_empty());
    }
}
