//! A submission: read from the request (urlencoded, multipart or JSON, all
//! the same flat `name → value` shape), checked against the form's fields,
//! and problems collected per field so the page can show them all at once.
//! Nothing here touches the store; `ticket` does, once all of this passed.

use super::FormError;
use super::settings::{Field, FieldKind, FormSettings, HONEYPOT, RESERVED};
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use kefu_store::blobs::{Blobs, Spooled};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Text parts of a body (everything but files) may not exceed this, each
/// and together: with files on disk, it bounds what one request holds.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// What the customer sent, as sent.
#[derive(Debug, Default, Clone)]
pub struct Submitted {
    /// In the order given; a name given twice keeps its first value.
    pub values: BTreeMap<String, String>,
    pub files: Vec<RawFile>,
    /// Problems found while reading (a file too large is skipped, not
    /// kept in memory, and reported on its field).
    pub problems: Problems,
}

/// A file as received: on disk (spooled while it arrived), with its type
/// found from its bytes on the way.
#[derive(Debug, Clone)]
pub struct RawFile {
    pub field: String,
    pub filename: String,
    /// `None`: not a type we accept.
    pub sniffed: Option<&'static str>,
    pub data: Arc<Spooled>,
}

impl Submitted {
    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// A honeypot with anything in it: a bot filled every field it saw.
    pub fn trapped(&self) -> bool {
        !self.value(HONEYPOT).trim().is_empty()
    }
}

/// Why a field was refused; worded per language by the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Required,
    TooLong(usize),
    NotEmail,
    NotPhone,
    NotAnOption,
    EmailOrPhone,
    TooManyFiles(u8),
    FileTooLarge(usize),
    FileType,
    Unknown,
    NotText,
    Challenge(super::challenge::ChallengeError),
}

pub type Problems = BTreeMap<String, Problem>;

/// How much may be read: files and text.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_files: u8,
    pub max_file_bytes: usize,
}

impl Limits {
    /// The whole body: every file at its largest plus the text.
    fn body(&self) -> usize {
        usize::from(self.max_files) * self.max_file_bytes + MAX_TEXT_BYTES
    }
}

/// Reads a body of any of the three encodings; files go to `blobs`'
/// spool as they arrive.
pub async fn read(req: Request, limits: Limits, blobs: &Blobs) -> Result<Submitted, FormError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        read_multipart(req, limits, blobs).await
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let body = body_bytes(req).await?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|e| FormError::BadRequest(format!("malformed form body: {e}")))?;
        Ok(from_pairs(pairs))
    } else if content_type.starts_with("application/json") {
        read_json(&body_bytes(req).await?)
    } else {
        Err(FormError::BadRequest(
            "send application/x-www-form-urlencoded, multipart/form-data or application/json"
                .into(),
        ))
    }
}

async fn body_bytes(req: Request) -> Result<Bytes, FormError> {
    axum::body::to_bytes(req.into_body(), MAX_TEXT_BYTES)
        .await
        .map_err(|_| FormError::TooLarge)
}

fn from_pairs(pairs: Vec<(String, String)>) -> Submitted {
    let mut s = Submitted::default();
    for (k, v) in pairs {
        s.values.entry(k).or_insert(v);
    }
    s
}

fn read_json(body: &[u8]) -> Result<Submitted, FormError> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| FormError::BadRequest(format!("malformed JSON: {e}")))?;
    let mut s = Submitted::default();
    for (k, v) in map {
        match v {
            serde_json::Value::String(text) => {
                s.values.insert(k, text);
            }
            serde_json::Value::Null => {}
            _ => {
                s.problems.insert(k, Problem::NotText);
            }
        }
    }
    Ok(s)
}

async fn read_multipart(
    req: Request,
    limits: Limits,
    blobs: &Blobs,
) -> Result<Submitted, FormError> {
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| FormError::BadRequest(e.body_text()))?;
    let mut s = Submitted::default();
    let mut read = Read::default();
    let bad = |e: axum::extract::multipart::MultipartError| FormError::BadRequest(e.body_text());
    while let Some(mut part) = form.next_field().await.map_err(bad)? {
        let name = part.name().unwrap_or_default().to_string();
        let filename = part.file_name().map(str::to_string);
        match filename {
            Some(f) => {
                let file = read_file(&mut part, limits, blobs, &mut read).await?;
                match file {
                    // A file input left empty still sends a part with no name.
                    FilePart::Empty if f.is_empty() => {}
                    FilePart::TooLarge => {
                        s.problems
                            .insert(name, Problem::FileTooLarge(limits.max_file_bytes));
                    }
                    FilePart::Empty => {
                        s.problems.entry(name).or_insert(Problem::FileType);
                    }
                    FilePart::Kept(spooled, sniffed) => s.files.push(RawFile {
                        field: name,
                        filename: f,
                        sniffed,
                        data: Arc::new(spooled),
                    }),
                };
            }
            None => match read_text(&mut part, limits, &mut read).await? {
                Some(text) => {
                    s.values.entry(name).or_insert(text);
                }
                None => {
                    s.problems.insert(name, Problem::TooLong(MAX_TEXT_BYTES));
                }
            },
        }
    }
    Ok(s)
}

/// What a body has used so far, against [`Limits::body`] and the text limit.
#[derive(Default)]
struct Read {
    total: usize,
    text: usize,
}

impl Read {
    fn count(&mut self, n: usize, limits: Limits) -> Result<(), FormError> {
        self.total += n;
        if self.total > limits.body() {
            return Err(FormError::TooLarge);
        }
        Ok(())
    }
}

enum FilePart {
    Empty,
    TooLarge,
    Kept(Spooled, Option<&'static str>),
}

/// A file part, streamed to disk. Past its limit it is read to the end but
/// not kept, so the other fields still arrive and can be shown again.
async fn read_file(
    part: &mut axum::extract::multipart::Field<'_>,
    limits: Limits,
    blobs: &Blobs,
    read: &mut Read,
) -> Result<FilePart, FormError> {
    let bad = |e: axum::extract::multipart::MultipartError| FormError::BadRequest(e.body_text());
    let io = |e: std::io::Error| FormError::Api(crate::error::ApiError::internal(e));
    let mut spool = None;
    let mut sniffer = super::upload::Sniffer::default();
    let (mut size, mut over) = (0usize, limits.max_files == 0);
    while let Some(chunk) = part.chunk().await.map_err(bad)? {
        read.count(chunk.len(), limits)?;
        size += chunk.len();
        over |= size > limits.max_file_bytes;
        if over {
            spool = None;
            continue;
        }
        if spool.is_none() {
            spool = Some(blobs.spool().await.map_err(io)?);
        }
        if let Some(file) = spool.as_mut() {
            file.write(&chunk).await.map_err(io)?;
        }
        sniffer.feed(&chunk);
    }
    Ok(match (over, spool) {
        (true, _) if size > 0 => FilePart::TooLarge,
        (_, Some(file)) => FilePart::Kept(file.finish().await.map_err(io)?, sniffer.finish()),
        _ => FilePart::Empty,
    })
}

/// A text part, or `None` when it (or all text parts together) is too long.
async fn read_text(
    part: &mut axum::extract::multipart::Field<'_>,
    limits: Limits,
    read: &mut Read,
) -> Result<Option<String>, FormError> {
    let bad = |e: axum::extract::multipart::MultipartError| FormError::BadRequest(e.body_text());
    let mut bytes = Vec::new();
    let mut over = false;
    while let Some(chunk) = part.chunk().await.map_err(bad)? {
        read.count(chunk.len(), limits)?;
        read.text += chunk.len();
        over |= read.text > MAX_TEXT_BYTES;
        if !over {
            bytes.extend_from_slice(&chunk);
        }
    }
    Ok((!over).then(|| String::from_utf8(bytes).unwrap_or_default()))
}

/// A field's value as it will be stored, with the customer's label.
#[derive(Debug, Clone)]
pub struct Answer {
    pub field: Field,
    pub value: String,
}

/// A file that passed: its type found from its bytes, not its name.
#[derive(Debug, Clone)]
pub struct Upload {
    pub field: String,
    pub filename: String,
    pub content_type: &'static str,
    pub data: Arc<Spooled>,
}

/// A submission whose every field is right.
#[derive(Debug, Clone)]
pub struct Valid {
    pub answers: Vec<Answer>,
    pub uploads: Vec<Upload>,
}

impl Valid {
    /// The first answer of a kind (the contact's email, phone…).
    pub fn first(&self, kind: FieldKind) -> Option<&str> {
        self.answers
            .iter()
            .find(|a| a.field.kind == kind && !a.value.is_empty())
            .map(|a| a.value.as_str())
    }
}

/// Checks every field, collecting every problem.
pub fn check(settings: &FormSettings, s: &Submitted, limits: Limits) -> Result<Valid, Problems> {
    let mut problems = s.problems.clone();
    let fields = settings.fields();
    for name in s.values.keys() {
        let known = fields
            .iter()
            .any(|f| &f.name == name && f.kind != FieldKind::File);
        if !known && !RESERVED.contains(&name.as_str()) {
            problems.insert(name.clone(), Problem::Unknown);
        }
    }
    let mut answers = Vec::new();
    for f in fields.iter().filter(|f| f.kind != FieldKind::File) {
        match check_value(f, s.value(&f.name)) {
            Ok(value) => answers.push(Answer {
                field: f.clone(),
                value,
            }),
            Err(p) => {
                problems.entry(f.name.clone()).or_insert(p);
            }
        }
    }
    let uploads = check_files(&fields, s, limits, &mut problems);
    let valid = Valid { answers, uploads };
    if settings.require_email_or_phone && reachable_fields(&fields) && !reachable(&valid) {
        let first = fields
            .iter()
            .find(|f| matches!(f.kind, FieldKind::Email | FieldKind::Phone));
        if let Some(f) = first {
            problems
                .entry(f.name.clone())
                .or_insert(Problem::EmailOrPhone);
        }
    }
    if problems.is_empty() {
        Ok(valid)
    } else {
        Err(problems)
    }
}

fn reachable_fields(fields: &[Field]) -> bool {
    fields
        .iter()
        .any(|f| matches!(f.kind, FieldKind::Email | FieldKind::Phone))
}

fn reachable(v: &Valid) -> bool {
    v.first(FieldKind::Email).is_some() || v.first(FieldKind::Phone).is_some()
}

/// The cleaned value, or why it is refused. Empty optional fields are "".
fn check_value(f: &Field, raw: &str) -> Result<String, Problem> {
    let v = raw.trim();
    if v.is_empty() {
        return if f.required {
            Err(Problem::Required)
        } else {
            Ok(String::new())
        };
    }
    if v.chars().count() > f.max_len() {
        return Err(Problem::TooLong(f.max_len()));
    }
    if v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Problem::NotText);
    }
    match f.kind {
        FieldKind::Email => kefu_core::validate::email(&f.name, v).map_err(|_| Problem::NotEmail),
        FieldKind::Phone => phone(v).ok_or(Problem::NotPhone),
        FieldKind::Select if !f.options.iter().any(|o| o == v) => Err(Problem::NotAnOption),
        FieldKind::Text | FieldKind::Select => Ok(v.replace(['\r', '\n'], " ")),
        _ => Ok(v.replace("\r\n", "\n")),
    }
}

/// A phone number as dialled: `+`, digits and the usual separators, with 5
/// to 20 digits. Stored as typed (trimmed); its identity is
/// [`kefu_core::keys::phone_key`], the form the importer and every other
/// channel use, so an imported customer is found by the number they type.
pub fn phone(v: &str) -> Option<String> {
    let v = v.trim().replace('＋', "+");
    kefu_core::keys::phone_key(&v).map(|_| v)
}

fn check_files(
    fields: &[Field],
    s: &Submitted,
    limits: Limits,
    problems: &mut Problems,
) -> Vec<Upload> {
    let mut uploads = Vec::new();
    for f in fields.iter().filter(|f| f.kind == FieldKind::File) {
        let mine: Vec<&RawFile> = s.files.iter().filter(|r| r.field == f.name).collect();
        if mine.is_empty() && f.required && !problems.contains_key(&f.name) {
            problems.insert(f.name.clone(), Problem::Required);
        }
        for r in mine {
            match r.sniffed {
                Some(content_type) => uploads.push(Upload {
                    field: f.name.clone(),
                    filename: super::upload::clean_filename(&r.filename),
                    content_type,
                    data: r.data.clone(),
                }),
                None => {
                    problems.insert(f.name.clone(), Problem::FileType);
                }
            }
        }
    }
    for r in &s.files {
        if !fields
            .iter()
            .any(|f| f.kind == FieldKind::File && f.name == r.field)
        {
            problems.insert(r.field.clone(), Problem::Unknown);
        }
    }
    if s.files.len() > usize::from(limits.max_files) {
        let name = s.files.last().map(|r| r.field.clone()).unwrap_or_default();
        problems.insert(name, Problem::TooManyFiles(limits.max_files));
    }
    uploads
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(form: serde_json::Value) -> FormSettings {
        FormSettings::of(&json!({ "form": form })).unwrap()
    }

    fn submitted(pairs: &[(&str, &str)]) -> Submitted {
        from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const LIMITS: Limits = Limits {
        max_files: 2,
        max_file_bytes: 1024,
    };

    #[test]
    fn default_fields_need_a_name_a_message_and_a_way_back() {
        let s = settings(json!({ "slug": "help" }));
        let ok = check(
            &s,
            &submitted(&[
                ("name", " 王小明 "),
                ("phone", "138 0013 8000"),
                ("message", "订单没到\r\n请查一下"),
            ]),
            LIMITS,
        )
        .unwrap();
        assert_eq!(ok.answers[0].value, "王小明");
        assert_eq!(ok.first(FieldKind::Phone), Some("138 0013 8000"));
        assert_eq!(ok.answers[3].value, "订单没到\n请查一下");
        let p = check(&s, &submitted(&[("name", ""), ("message", "x")]), LIMITS).unwrap_err();
        assert_eq!(p.get("name"), Some(&Problem::Required));
        assert_eq!(p.get("email"), Some(&Problem::EmailOrPhone));
        let p = check(
            &s,
            &submitted(&[
                ("name", "a"),
                ("email", "not-mail"),
                ("phone", "12"),
                ("message", "x"),
            ]),
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(p.get("email"), Some(&Problem::NotEmail));
        assert_eq!(p.get("phone"), Some(&Problem::NotPhone));
    }

    #[test]
    fn selects_lengths_and_unknown_names() {
        let s = settings(
            json!({ "slug": "xy", "require_email_or_phone": false, "fields": [
                { "name": "kind", "type": "select", "options": ["退款", "换货"], "required": true },
                { "name": "order", "type": "text", "max_len": 5 },
            ]}),
        );
        assert!(
            check(
                &s,
                &submitted(&[("kind", "退款"), ("order", "12345")]),
                LIMITS
            )
            .is_ok()
        );
        let p = check(
            &s,
            &submitted(&[("kind", "别的"), ("order", "123456"), ("extra", "1")]),
            LIMITS,
        )
        .unwrap_err();
        assert_eq!(p.get("kind"), Some(&Problem::NotAnOption));
        assert_eq!(p.get("order"), Some(&Problem::TooLong(5)));
        assert_eq!(p.get("extra"), Some(&Problem::Unknown));
        assert!(
            check(
                &s,
                &submitted(&[("kind", "退款"), ("challenge_token", "t"), ("website", "")]),
                LIMITS
            )
            .is_ok()
        );
    }

    /// A file as `read_multipart` makes it: spooled, typed by its bytes.
    async fn file(blobs: &Blobs, name: &str, bytes: &[u8]) -> RawFile {
        let mut spool = blobs.spool().await.unwrap();
        spool.write(bytes).await.unwrap();
        RawFile {
            field: "photo".into(),
            filename: name.into(),
            sniffed: super::super::upload::sniff(bytes),
            data: Arc::new(spool.finish().await.unwrap()),
        }
    }

    #[tokio::test]
    async fn files_are_typed_by_their_bytes_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(dir.path());
        let s = settings(
            json!({ "slug": "xy", "require_email_or_phone": false, "fields": [{ "name": "photo", "type": "file", "required": true }]}),
        );
        let png: &[u8] =
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
        let mut sub = Submitted::default();
        assert_eq!(
            check(&s, &sub, LIMITS).unwrap_err().get("photo"),
            Some(&Problem::Required)
        );
        sub.files.push(file(&blobs, "截图.png", png).await);
        let ok = check(&s, &sub, LIMITS).unwrap();
        assert_eq!(
            (ok.uploads[0].content_type, ok.uploads[0].filename.as_str()),
            ("image/png", "截图.png")
        );
        sub.files
            .push(file(&blobs, "photo.png", b"MZ\x90\0 not a picture").await);
        assert_eq!(
            check(&s, &sub, LIMITS).unwrap_err().get("photo"),
            Some(&Problem::FileType)
        );
        let mut many = Submitted::default();
        for _ in 0..3 {
            many.files.push(file(&blobs, "a.png", png).await);
        }
        assert_eq!(
            check(&s, &many, LIMITS).unwrap_err().get("photo"),
            Some(&Problem::TooManyFiles(2))
        );
    }

    #[test]
    fn json_values_must_be_strings() {
        let s = read_json(r#"{"name": "王", "age": 3, "none": null}"#.as_bytes()).unwrap();
        assert_eq!(s.value("name"), "王");
        assert_eq!(s.problems.get("age"), Some(&Problem::NotText));
        assert!(read_json(b"[1]").is_err());
    }

    #[test]
    fn phones_keep_digits_as_identity() {
        assert_eq!(
            phone("＋86 138-0013-8000").as_deref(),
            Some("+86 138-0013-8000")
        );
        assert_eq!(
            kefu_core::keys::phone_key("+86 138-0013-8000").as_deref(),
            Some("13800138000")
        );
        assert_eq!(phone("abc12345"), None);
        assert_eq!(phone("1234"), None);
    }
}
