//! Parsing of received mail into a [`ParsedEmail`]: never fails, never panics.
//!
//! The caller stores the raw bytes *before* calling [`parse`], so a message this module
//! cannot make sense of is never lost; parsing only decides how much of it kefu can show.
//! Everything that went wrong is listed in [`ParsedEmail::problems`] instead of being an
//! error, the way mail-parser itself flags a broken part and carries on.
//!
//! No Tokio here: this is a pure function of the bytes, tested with tables of messages.

use std::fmt;

use chrono::{DateTime, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use serde::Serialize;

use crate::classify::{self, MailKind};
use crate::{charset, html_text, quote, transfer};

/// Inline images referenced as `cid:ID` in HTML are rewritten to the relative URL
/// `cid/ID` before sanitising. ammonia drops URLs with unknown schemes such as `cid:`, but
/// passes relative URLs through, so this keeps the reference alive; the server resolves
/// `cid/ID` against [`Attachment::content_id`] (e.g. by serving the HTML from
/// `/messages/{id}/` and answering `cid/{content_id}` there).
pub const CID_URL_PREFIX: &str = "cid/";

/// A mailbox as written in From/To/Cc/Reply-To.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    /// Lower-cased, trimmed address (`wang@example.com`).
    pub address: String,
    /// Display name, decoded from RFC 2047 if needed.
    pub name: Option<String>,
}

/// An attachment or inline image.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// Decoded filename (RFC 2047/2231), if the sender gave one.
    pub filename: Option<String>,
    /// `type/subtype`, lower case; `application/octet-stream` when missing.
    pub content_type: String,
    /// Decoded content (transfer encoding removed).
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Content-ID without angle brackets, for `cid:` references.
    pub content_id: Option<String>,
    /// True for parts meant to be shown in the body (inline images).
    pub inline: bool,
}

impl fmt::Debug for Attachment {
    // Bytes left out: a 30 MB attachment in a log line helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .field("content_id", &self.content_id)
            .field("inline", &self.inline)
            .finish()
    }
}

/// Something that went wrong while parsing; the rest of the message is still usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// Zero bytes.
    Empty,
    /// mail-parser found no message at all.
    NotAMessage,
    /// A header that every sane message has is missing (`From`, `Message-ID`, `Date`).
    MissingHeader { name: String },
    /// A header is present but could not be read (e.g. an unparsable Date).
    BadHeader { name: String },
    /// A part's base64 body was broken; what decoded before the break is kept (as body
    /// text or as the attachment's bytes).
    BadTransferEncoding { part: usize },
    /// A charset label nothing knows (in a header's encoded word or a part's `charset`);
    /// the text was decoded as `used`, a guess (see `charset`).
    UnknownCharset { label: String, used: String },
    /// Header `name` held raw 8-bit bytes that are not UTF-8; decoded as `used`, a guess.
    EightBitHeader { name: String, used: String },
    /// Text not valid in its `declared` charset (`(none)` when it declared none) — body
    /// part `part`, or an encoded word in a header when `part` is `None`; it was decoded
    /// as `used`, a guess.
    WrongCharset {
        part: Option<usize>,
        declared: String,
        used: String,
    },
    /// The HTML body could not be kept (too large to sanitise); `text` still has it.
    HtmlDropped { reason: String },
    /// The parser panicked; nothing but `size` is filled in.
    Panicked,
}

/// A received message, as much of it as could be read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ParsedEmail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// In-Reply-To ids, without angle brackets.
    pub in_reply_to: Vec<String>,
    /// References ids, oldest first, without angle brackets.
    pub references: Vec<String>,
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    /// Addresses from Delivered-To and X-Original-To, which forwarding MTAs add and
    /// which still carry the plus token when To shows a list or an alias.
    pub delivered_to: Vec<String>,
    pub subject: Option<String>,
    pub date: Option<DateTime<Utc>>,
    /// Plain text body; derived from the HTML when there is no text part.
    pub text: String,
    /// Sanitised HTML body (see [`CID_URL_PREFIX`]), if the message had one.
    pub html: Option<String>,
    /// `text` with the quoted history below the reply folded away.
    pub visible_text: String,
    pub attachments: Vec<Attachment>,
    /// Size of the raw message in bytes.
    pub size: usize,
    /// Top-level header fields, raw values unfolded (not RFC 2047-decoded), in order.
    pub headers: Vec<(String, String)>,
    /// Normal mail, auto-reply, bulk mail or bounce.
    pub kind: MailKind,
    pub problems: Vec<Problem>,
    /// True when nothing recognisable as an email was found; show the raw bytes instead.
    pub unparsable: bool,
}

impl ParsedEmail {
    /// The first value of a top-level header, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a top-level header, case-insensitive, in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a raw RFC 5322 message. Never fails and never panics; see the module docs.
pub fn parse(raw: &[u8]) -> ParsedEmail {
    if raw.is_empty() {
        return ParsedEmail {
            problems: vec![Problem::Empty],
            unparsable: true,
            ..ParsedEmail::default()
        };
    }
    // mail-parser is fuzzed and flags bad input rather than panicking, and so is our own
    // code; the guard is for the bug nobody has found yet, because a panic here would take
    // the SMTP connection or IMAP poll down with it and retry the same message forever.
    match std::panic::catch_unwind(|| parse_inner(raw)) {
        Ok(parsed) => parsed,
        Err(_) => ParsedEmail {
            size: raw.len(),
            problems: vec![Problem::Panicked],
            unparsable: true,
            ..ParsedEmail::default()
        },
    }
}

fn parse_inner(raw: &[u8]) -> ParsedEmail {
    let mut out = ParsedEmail {
        size: raw.len(),
        ..ParsedEmail::default()
    };
    let Some(msg) = MessageParser::default().parse(raw) else {
        out.problems.push(Problem::NotAMessage);
        out.unparsable = true;
        out.text = String::from_utf8_lossy(raw).into_owned();
        out.visible_text = out.text.clone();
        return out;
    };
    out.headers = msg
        .headers_raw()
        .map(|(n, v)| (n.to_string(), unfold(v)))
        .collect();
    read_envelope_headers(&msg, &mut out);
    let salvaged = read_bodies(&msg, &mut out);
    out.attachments = msg
        .attachments
        .iter()
        .filter(|&&id| Some(id) != salvaged)
        .filter_map(|&id| msg.parts.get(id as usize))
        .map(|part| attachment(&msg, part, &mut out.problems))
        .collect();
    for (i, part) in msg.parts.iter().enumerate() {
        if part.is_encoding_problem {
            out.problems.push(Problem::BadTransferEncoding { part: i });
        }
    }
    out.kind = classify::classify(&msg, &out);
    out.unparsable = out.headers.is_empty() && out.text.trim().is_empty();
    out
}

fn read_envelope_headers(msg: &mail_parser::Message<'_>, out: &mut ParsedEmail) {
    out.message_id = msg.message_id().and_then(clean_id);
    out.in_reply_to = ids(msg.in_reply_to());
    out.references = ids(msg.references());
    out.from = msg.from().and_then(|a| mailboxes(a).into_iter().next());
    out.to = msg.to().map(mailboxes).unwrap_or_default();
    out.cc = msg.cc().map(mailboxes).unwrap_or_default();
    out.reply_to = msg.reply_to().map(mailboxes).unwrap_or_default();
    out.subject = msg.subject().map(|s| s.trim().to_string());
    redecode_headers(msg, out);
    out.delivered_to = out
        .headers
        .iter()
        .filter(|(n, _)| {
            n.eq_ignore_ascii_case("Delivered-To") || n.eq_ignore_ascii_case("X-Original-To")
        })
        .filter_map(|(_, v)| bare_address(v))
        .collect();
    out.date = date(msg, out);
    for (name, present) in [
        ("From", out.from.is_some()),
        ("Message-ID", out.message_id.is_some()),
        ("Date", msg.header_raw("Date").is_some()),
    ] {
        if !present {
            out.problems
                .push(Problem::MissingHeader { name: name.into() });
        }
    }
}

fn date(msg: &mail_parser::Message<'_>, out: &mut ParsedEmail) -> Option<DateTime<Utc>> {
    msg.header_raw("Date")?;
    let parsed = msg
        .date()
        .filter(|d| d.is_valid())
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    if parsed.is_none() {
        out.problems.push(Problem::BadHeader {
            name: "Date".into(),
        });
    }
    parsed
}

fn read_bodies(msg: &mail_parser::Message<'_>, out: &mut ParsedEmail) -> Option<u32> {
    let mut body_ids: Vec<u32> = msg.text_body.clone();
    let mut salvaged = None;
    if body_ids.is_empty() && msg.html_body.is_empty() {
        // mail-parser files a text part it could not close (missing end boundary) as an
        // attachment; without this the only words of a truncated message would vanish.
        salvaged = msg.attachments.iter().copied().find(|&id| {
            msg.parts.get(id as usize).is_some_and(|p| {
                matches!(p.body, PartType::Text(_) | PartType::Html(_))
                    && p.attachment_name().is_none()
            })
        });
        body_ids.extend(salvaged);
    }
    // Join every text part, so a message split around an inline image keeps all its
    // words. HTML-only parts go through our own converter (see `html_text`).
    let texts: Vec<String> = body_ids
        .iter()
        .filter_map(|&id| {
            let part = msg.parts.get(id as usize)?;
            let text = part_text(msg, id as usize, &mut out.problems)?;
            match &part.body {
                PartType::Html(_) => Some(html_text::html_to_text(&text)),
                _ => Some(text),
            }
        })
        .collect();
    out.text = texts.join("\n").trim_end().to_string();
    out.visible_text = quote::visible_text(&out.text);

    // body_html() would also turn plain text into HTML; only keep real HTML parts.
    let html: Vec<String> = msg
        .html_body
        .iter()
        .filter(|&&id| {
            msg.parts
                .get(id as usize)
                .is_some_and(|p| matches!(p.body, PartType::Html(_)))
        })
        .filter_map(|&id| part_text(msg, id as usize, &mut out.problems))
        .collect();
    if !html.is_empty() {
        let joined = rewrite_cid_urls(&html.join("\n"));
        match kefu_core::validate::html("html", &joined) {
            Ok(clean) => out.html = Some(clean),
            Err(e) => out.problems.push(Problem::HtmlDropped {
                reason: e.to_string(),
            }),
        }
    }
    salvaged
}

/// The text of a text or HTML part, decoded here from the raw bytes rather than taken
/// from mail-parser, which reads an unknown charset as lossy UTF-8, keeps replacement
/// characters where the declared charset is wrong, and keeps a broken base64 body
/// undecoded (see `charset` and `transfer`). `None` for a part that is not text.
/// Problems found are recorded, each once (the text and HTML body may share a part).
fn part_text(
    msg: &mail_parser::Message<'_>,
    id: usize,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let part = msg.parts.get(id)?;
    let theirs = match &part.body {
        PartType::Text(t) | PartType::Html(t) => t,
        _ => return None,
    };
    let Some((bytes, _)) = raw_body(msg, part) else {
        return Some(theirs.to_string());
    };
    let label = part.content_type().and_then(|ct| ct.attribute("charset"));
    let (text, outcome) = charset::decode(&bytes, label);
    charset::record(problems, outcome.problem(Some(id)));
    Some(text)
}

/// A part's body with its transfer encoding removed (leniently: a broken base64 body
/// gives what decoded before the break), and whether it was broken. `None` for an
/// encoding left to mail-parser or offsets that do not fit.
fn raw_body(msg: &mail_parser::Message<'_>, part: &MessagePart<'_>) -> Option<(Vec<u8>, bool)> {
    let body = msg
        .raw_message
        .get(part.raw_body_offset() as usize..part.raw_end_offset() as usize)?;
    transfer::decode(body, part.content_transfer_encoding())
}

/// Redoes the charset step of encoded words that mail-parser read as lossy UTF-8
/// because it did not know their label: the subject and the display names.
fn redecode_headers(msg: &mail_parser::Message<'_>, out: &mut ParsedEmail) {
    reread_eight_bit_headers(msg, out);
    let mut problems = std::mem::take(&mut out.problems);
    if let (Some(raw), Some(subject)) = (msg.header_raw("Subject"), out.subject.as_mut()) {
        charset::redecode_words(raw, &mut [subject], &mut problems);
        *subject = subject.trim().to_string();
    }
    let lists: [(&str, Vec<&mut Mailbox>); 4] = [
        ("From", out.from.iter_mut().collect()),
        ("To", out.to.iter_mut().collect()),
        ("Cc", out.cc.iter_mut().collect()),
        ("Reply-To", out.reply_to.iter_mut().collect()),
    ];
    for (name, mailboxes) in lists {
        let Some(raw) = msg.header_raw(name) else {
            continue;
        };
        let mut names: Vec<&mut String> = mailboxes
            .into_iter()
            .filter_map(|m| m.name.as_mut())
            .collect();
        charset::redecode_words(raw, &mut names, &mut problems);
    }
    out.problems = problems;
}

/// Headers carrying raw 8-bit bytes that are not UTF-8 (old clients write the subject
/// or the sender's name in GBK without RFC 2047; RFC 5322 allows only ASCII, RFC 6532
/// UTF-8). mail-parser reads them as lossy UTF-8. Here the raw value is decoded by the
/// same guess as an unlabelled body (`charset`), parsed again as a UTF-8 header by
/// mail-parser, and flagged.
fn reread_eight_bit_headers(msg: &mail_parser::Message<'_>, out: &mut ParsedEmail) {
    use mail_parser::HeaderName as H;
    let Some(top) = msg.parts.first() else {
        return;
    };
    for name in [H::Subject, H::From, H::To, H::Cc, H::ReplyTo] {
        let Some(raw) = top.headers.iter().find(|h| h.name == name).and_then(|h| {
            msg.raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
        }) else {
            continue;
        };
        if std::str::from_utf8(raw).is_ok() {
            continue;
        }
        let (text, outcome) = charset::decode(raw, None);
        let charset::Outcome::Wrong { used, .. } = outcome else {
            continue;
        };
        let unfolded = unfold(&text);
        let line = format!("{}: {unfolded}\r\n\r\n", name.as_str());
        let Some(again) = MessageParser::default().parse_headers(line.as_bytes()) else {
            continue;
        };
        match name {
            H::Subject => out.subject = again.subject().map(|s| s.trim().to_string()),
            H::From => out.from = again.from().and_then(|a| mailboxes(a).into_iter().next()),
            H::To => out.to = again.to().map(mailboxes).unwrap_or_default(),
            H::Cc => out.cc = again.cc().map(mailboxes).unwrap_or_default(),
            _ => out.reply_to = again.reply_to().map(mailboxes).unwrap_or_default(),
        }
        let problem = Problem::EightBitHeader {
            name: name.as_str().to_string(),
            used,
        };
        charset::record(&mut out.problems, Some(problem));
    }
}

/// The attachment's file name, with encoded words in labels mail-parser does not know
/// decoded here (see [`redecode_headers`]).
fn attachment_name(
    msg: &mail_parser::Message<'_>,
    part: &MessagePart<'_>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let mut name = part.attachment_name()?.to_string();
    // The name comes from Content-Disposition's filename, else Content-Type's name.
    let from_disposition = part
        .content_disposition()
        .is_some_and(|cd| cd.attribute("filename").is_some());
    let header = if from_disposition {
        mail_parser::HeaderName::ContentDisposition
    } else {
        mail_parser::HeaderName::ContentType
    };
    let raw = part
        .headers
        .iter()
        .find(|h| h.name == header)
        .and_then(|h| {
            msg.raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
        })
        .and_then(|raw| std::str::from_utf8(raw).ok());
    if let Some(raw) = raw {
        charset::redecode_words(raw, &mut [&mut name], problems);
    }
    Some(name)
}

fn attachment(
    msg: &mail_parser::Message<'_>,
    part: &MessagePart<'_>,
    problems: &mut Vec<Problem>,
) -> Attachment {
    let content_type = part
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase();
    let content_id = part.content_id().and_then(clean_id);
    let inline = match part.content_disposition() {
        Some(cd) => cd.ctype().eq_ignore_ascii_case("inline"),
        // No disposition but a Content-ID: it exists to be referenced from the HTML.
        None => content_id.is_some(),
    };
    // mail-parser keeps a broken base64 body as its encoded text; keep what decoded.
    let bytes = match part
        .is_encoding_problem
        .then(|| raw_body(msg, part))
        .flatten()
    {
        Some((bytes, _)) => bytes,
        None => part.contents().to_vec(),
    };
    Attachment {
        filename: attachment_name(msg, part, problems),
        content_type,
        bytes,
        content_id,
        inline,
    }
}

fn mailboxes(addr: &Address<'_>) -> Vec<Mailbox> {
    addr.iter()
        .filter_map(|a| {
            let address = a.address()?.trim().to_lowercase();
            if address.is_empty() {
                return None;
            }
            let name = a
                .name()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty());
            Some(Mailbox { address, name })
        })
        .collect()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => clean_id(t).into_iter().collect(),
        HeaderValue::TextList(list) => list.iter().filter_map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    }
}

/// Strips angle brackets and whitespace; `None` for an empty id.
pub(crate) fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// `"Name" <a@b>` or `a@b` → `a@b`, lower case.
fn bare_address(value: &str) -> Option<String> {
    let v = value.trim();
    let inner = match (v.rfind('<'), v.rfind('>')) {
        (Some(s), Some(e)) if s < e => &v[s + 1..e],
        _ => v,
    };
    let inner = inner.trim();
    inner.contains('@').then(|| inner.to_lowercase())
}

/// Joins folded header lines into one.
fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i == 0 {
            out.push_str(line.trim());
        } else if !line.trim().is_empty() {
            out.push(' ');
            out.push_str(line.trim());
        }
    }
    out
}

/// Rewrites `src="cid:X"` to `src="cid/X"`; see [`CID_URL_PREFIX`].
fn rewrite_cid_urls(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(pos) = lower[from..].find("cid:") {
        let at = from + pos;
        from = at + 4;
        let before = lower[..at].trim_end_matches(['"', '\'']).trim_end();
        if before.ends_with("src=") || before.ends_with("background=") {
            out.push_str(&html[last..at]);
            out.push_str(CID_URL_PREFIX);
            last = at + 4;
        }
    }
    out.push_str(&html[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_rewrite() {
        let cases = [
            (r#"<img src="cid:a@b">"#, r#"<img src="cid/a@b">"#),
            (r#"<img SRC='CID:x'>"#, r#"<img SRC='cid/x'>"#),
            ("<p>cid: not a url</p>", "<p>cid: not a url</p>"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(rewrite_cid_urls(input), want, "{input}");
        }
    }

    #[test]
    fn ids_and_addresses() {
        assert_eq!(clean_id(" <a@b> ").as_deref(), Some("a@b"));
        assert_eq!(clean_id("<>"), None);
        assert_eq!(
            bare_address("Support <Support+X@Example.com>").as_deref(),
            Some("support+x@example.com")
        );
        assert_eq!(bare_address("garbage"), None);
        assert_eq!(unfold("a\r\n b\r\n\tc"), "a b c");
    }
}
