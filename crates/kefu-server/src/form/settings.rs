//! A form inbox's `settings.form`: its address (slug), texts, the fields the
//! admin defined, the origins allowed to post from other sites, and upload
//! limits. Pure: parsed and checked here, used by the handlers. Checked when
//! an inbox is created or updated, so a broken form never goes live.

use kefu_core::ValidationError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Names the form itself uses in a submission; a field may not take them.
pub const RESERVED: &[&str] = &["website", "challenge_token", "challenge_answer"];
/// The honeypot: hidden from people, filled by bots that fill everything.
pub const HONEYPOT: &str = "website";

pub const MAX_FIELDS: usize = 30;
pub const MAX_FILES: u8 = 10;
pub const MAX_FILE_MB: u32 = 25;
/// A text field's own limit when the admin gives none.
pub const DEFAULT_MAX_LEN: usize = 200;
pub const DEFAULT_TEXTAREA_LEN: usize = 5_000;
pub const MAX_LEN: usize = 12_000;
/// All fields together: a submission becomes one message (at most 20,000
/// characters, metadata at most 64 KiB).
pub const MAX_TOTAL_LEN: usize = 12_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormSettings {
    /// The public address: `/f/{slug}`. Lower-case letters, digits, `-`.
    pub slug: String,
    pub title: Option<String>,
    /// Shown above the fields.
    pub intro: Option<String>,
    /// Shown with the ticket number after a submission.
    pub success_text: Option<String>,
    /// Empty: name, email, phone and message (email or phone required).
    #[serde(default)]
    pub fields: Vec<Field>,
    /// When true (the default), at least one email or phone field must be
    /// filled, so the team can reach the customer.
    #[serde(default = "yes")]
    pub require_email_or_phone: bool,
    /// Origins (`https://shop.example.cn`) whose pages may call the JSON API.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// At most this many files per submission (0–10, default 3).
    #[serde(default = "default_max_files")]
    pub max_files: u8,
    /// Each file at most this many MiB (1–25, default 10; never more than
    /// the server's `max_upload_bytes`).
    #[serde(default = "default_max_file_mb")]
    pub max_file_mb: u32,
    /// An email inbox whose address sends agents' replies to customers who
    /// gave an email address.
    pub reply_email_inbox: Option<Uuid>,
    /// Days a status link works after it was made (1–3650, default 180);
    /// an agent can revoke a conversation's links sooner.
    #[serde(default = "default_status_link_days")]
    pub status_link_days: u32,
}

pub const DEFAULT_STATUS_LINK_DAYS: u32 = 180;
fn default_status_link_days() -> u32 {
    DEFAULT_STATUS_LINK_DAYS
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The key in submissions: `[a-z][a-z0-9_]*`, at most 40 characters.
    pub name: String,
    /// Shown to the customer; the built-in fields (name, email, phone,
    /// message) have a Chinese and an English label when none is given.
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    /// The choices of a `select`.
    #[serde(default)]
    pub options: Vec<String>,
    /// Longest value in characters (text 200, textarea 5,000 by default).
    pub max_len: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    Text,
    Textarea,
    Select,
    Email,
    Phone,
    File,
}

fn yes() -> bool {
    true
}
fn default_max_files() -> u8 {
    3
}
fn default_max_file_mb() -> u32 {
    10
}

impl Field {
    fn new(name: &str, kind: FieldKind, required: bool) -> Field {
        Field {
            name: name.into(),
            label: None,
            kind,
            required,
            options: Vec::new(),
            max_len: None,
        }
    }

    pub fn max_len(&self) -> usize {
        self.max_len.unwrap_or(match self.kind {
            FieldKind::Textarea => DEFAULT_TEXTAREA_LEN,
            FieldKind::Phone => 40,
            FieldKind::Email => 254,
            _ => DEFAULT_MAX_LEN,
        })
    }
}

/// What a form asks when the admin defined nothing.
pub fn default_fields() -> Vec<Field> {
    vec![
        Field::new("name", FieldKind::Text, true),
        Field::new("email", FieldKind::Email, false),
        Field::new("phone", FieldKind::Phone, false),
        Field::new("message", FieldKind::Textarea, true),
    ]
}

impl FormSettings {
    /// The settings of a form inbox (`settings.form`), checked.
    pub fn of(settings: &Value) -> Result<FormSettings, ValidationError> {
        let raw = settings
            .get("form")
            .cloned()
            .ok_or_else(|| ValidationError::new("settings.form", "missing"))?;
        let mut s: FormSettings = serde_json::from_value(raw)
            .map_err(|e| ValidationError::new("settings.form", e.to_string()))?;
        s.check()?;
        Ok(s)
    }

    /// The fields as the customer sees them.
    pub fn fields(&self) -> Vec<Field> {
        if self.fields.is_empty() {
            default_fields()
        } else {
            self.fields.clone()
        }
    }

    pub fn has_files(&self) -> bool {
        self.fields().iter().any(|f| f.kind == FieldKind::File)
    }

    /// Largest file, in bytes, capped by the server's upload limit.
    pub fn max_file_bytes(&self, server_max: usize) -> usize {
        (self.max_file_mb as usize * 1024 * 1024).min(server_max)
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == origin)
    }

    fn check(&mut self) -> Result<(), ValidationError> {
        self.slug = slug(&self.slug)?;
        opt_text(&mut self.title, "settings.form.title", 200)?;
        opt_text(&mut self.intro, "settings.form.intro", 2_000)?;
        opt_text(&mut self.success_text, "settings.form.success_text", 2_000)?;
        if self.fields.len() > MAX_FIELDS {
            return Err(invalid(
                "settings.form.fields",
                format!("at most {MAX_FIELDS} fields"),
            ));
        }
        for (i, f) in self.fields.iter_mut().enumerate() {
            check_field(i, f)?;
        }
        for (i, f) in self.fields.iter().enumerate() {
            if self.fields[..i].iter().any(|g| g.name == f.name) {
                return Err(invalid(
                    format!("settings.form.fields[{i}].name"),
                    format!("{:?} is used twice", f.name),
                ));
            }
        }
        let total: usize = self.fields().iter().map(Field::max_len).sum();
        if total > MAX_TOTAL_LEN {
            return Err(invalid(
                "settings.form.fields",
                format!(
                    "the fields' max_len add up to {total}; at most {MAX_TOTAL_LEN} so that a submission fits in one message"
                ),
            ));
        }
        for o in &mut self.cors_origins {
            *o = origin(o)?;
        }
        if self.cors_origins.len() > 20 {
            return Err(invalid("settings.form.cors_origins", "at most 20 origins"));
        }
        if self.max_files > MAX_FILES {
            return Err(invalid(
                "settings.form.max_files",
                format!("at most {MAX_FILES}"),
            ));
        }
        if !(1..=MAX_FILE_MB).contains(&self.max_file_mb) {
            return Err(invalid(
                "settings.form.max_file_mb",
                format!("between 1 and {MAX_FILE_MB}"),
            ));
        }
        if !(1..=3650).contains(&self.status_link_days) {
            return Err(invalid(
                "settings.form.status_link_days",
                "between 1 and 3650",
            ));
        }
        Ok(())
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

fn opt_text(v: &mut Option<String>, field: &str, max: usize) -> Result<(), ValidationError> {
    *v = v
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string);
    kefu_core::validate::opt_text(v, field, 1, max)
}

/// `[a-z0-9][a-z0-9-]{1,62}`: safe in a URL as it is, and short to type.
pub fn slug(s: &str) -> Result<String, ValidationError> {
    let s = s.trim().to_ascii_lowercase();
    let ok = (2..=63).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-');
    if ok {
        Ok(s)
    } else {
        Err(invalid(
            "settings.form.slug",
            "2–63 characters: lower-case letters, digits and -, not starting with -",
        ))
    }
}

fn check_field(i: usize, f: &mut Field) -> Result<(), ValidationError> {
    let at = |what: &str| format!("settings.form.fields[{i}].{what}");
    let name_ok = (1..=40).contains(&f.name.len())
        && f.name.starts_with(|c: char| c.is_ascii_lowercase())
        && f.name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(invalid(
            at("name"),
            "1–40 characters: a-z first, then a-z, 0-9 and _",
        ));
    }
    if RESERVED.contains(&f.name.as_str()) {
        return Err(invalid(
            at("name"),
            format!("{:?} is used by the form itself", f.name),
        ));
    }
    opt_text(&mut f.label, &at("label"), 200)?;
    match (f.kind, f.options.len()) {
        (FieldKind::Select, 0) => return Err(invalid(at("options"), "a select needs options")),
        (FieldKind::Select, n) if n > 50 => return Err(invalid(at("options"), "at most 50")),
        (FieldKind::Select, _) => {}
        (_, 0) => {}
        (_, _) => return Err(invalid(at("options"), "only a select has options")),
    }
    for o in &mut f.options {
        *o = kefu_core::validate::text(&at("options"), o, 1, 200)?;
    }
    if let Some(n) = f.max_len
        && !(1..=MAX_LEN).contains(&n)
    {
        return Err(invalid(at("max_len"), format!("between 1 and {MAX_LEN}")));
    }
    Ok(())
}

/// `https://shop.example.cn` or `http://localhost:8080`: a scheme and a
/// host, no path — what browsers send in `Origin`.
fn origin(o: &str) -> Result<String, ValidationError> {
    let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                }) =>
        {
            Ok(o)
        }
        _ => Err(invalid(
            "settings.form.cors_origins",
            format!("{o:?} is not an origin like https://shop.example.cn"),
        )),
    }
}

/// Before a form inbox is stored: gives it a random slug and the default
/// fields when it has none, and checks everything. Returns the settings as
/// checked and written back, so the caller reads typed values (the slug,
/// `reply_email_inbox`) instead of parsing the JSON again.
pub fn prepare(settings: &mut Value) -> Result<FormSettings, ValidationError> {
    let map = settings
        .as_object_mut()
        .ok_or_else(|| invalid("settings", "must be a JSON object"))?;
    let form = map.entry("form").or_insert_with(|| serde_json::json!({}));
    let Some(form_map) = form.as_object_mut() else {
        return Err(invalid("settings.form", "must be a JSON object"));
    };
    form_map
        .entry("slug")
        .or_insert_with(|| Value::String(random_slug()));
    let mut checked = FormSettings::of(settings)?;
    // Written out, so the admin sees (and edits) what the page asks.
    checked.fields = checked.fields();
    settings["form"] =
        serde_json::to_value(&checked).map_err(|e| invalid("settings.form", e.to_string()))?;
    Ok(checked)
}

fn random_slug() -> String {
    crate::auth::new_secret()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(10)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(form: Value) -> Result<FormSettings, ValidationError> {
        FormSettings::of(&json!({ "form": form }))
    }

    #[test]
    fn good_settings_are_cleaned() {
        let s = check(json!({
            "slug": " Support-1 ", "title": "售后服务", "intro": "",
            "fields": [
                { "name": "order_no", "label": "订单号", "type": "text", "required": true, "max_len": 30 },
                { "name": "kind", "type": "select", "options": [" 退款 ", "换货"] },
                { "name": "photo", "type": "file" },
            ],
            "cors_origins": ["https://Shop.example.cn/"],
        }))
        .unwrap();
        assert_eq!(s.slug, "support-1");
        assert_eq!(s.intro, None);
        assert_eq!(s.fields[1].options, ["退款", "换货"]);
        assert_eq!(s.cors_origins, ["https://shop.example.cn"]);
        assert!(s.has_files());
        assert!(s.allows_origin("https://shop.example.cn"));
        assert!(!s.allows_origin("https://evil.example"));
        assert_eq!((s.max_files, s.max_file_mb), (3, 10));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases = [
            (json!({ "slug": "a" }), "settings.form.slug"),
            (json!({ "slug": "有中文" }), "settings.form.slug"),
            (json!({ "slug": "-x" }), "settings.form.slug"),
            (
                json!({ "slug": "ok", "fields": [{ "name": "Bad", "type": "text" }] }),
                "settings.form.fields[0].name",
            ),
            (
                json!({ "slug": "ok", "fields": [{ "name": "website", "type": "text" }] }),
                "settings.form.fields[0].name",
            ),
            (
                json!({ "slug": "ok", "fields": [{ "name": "a", "type": "select" }] }),
                "settings.form.fields[0].options",
            ),
            (
                json!({ "slug": "ok", "fields": [{ "name": "a", "type": "text", "options": ["x"] }] }),
                "settings.form.fields[0].options",
            ),
            (
                json!({ "slug": "ok", "fields": [{ "name": "a", "type": "text" }, { "name": "a", "type": "email" }] }),
                "settings.form.fields[1].name",
            ),
            (
                json!({ "slug": "ok", "fields": [{ "name": "a", "type": "text", "max_len": 0 }] }),
                "settings.form.fields[0].max_len",
            ),
            (
                json!({ "slug": "ok", "fields": [{ "name": "a", "type": "date" }] }),
                "settings.form",
            ),
            (json!({ "slug": "ok", "colour": "red" }), "settings.form"),
            (
                json!({ "slug": "ok", "cors_origins": ["shop.example.cn"] }),
                "settings.form.cors_origins",
            ),
            (
                json!({ "slug": "ok", "cors_origins": ["https://a.cn/path"] }),
                "settings.form.cors_origins",
            ),
            (
                json!({ "slug": "ok", "max_files": 11 }),
                "settings.form.max_files",
            ),
            (
                json!({ "slug": "ok", "max_file_mb": 0 }),
                "settings.form.max_file_mb",
            ),
        ];
        for (form, field) in cases {
            let e = check(form.clone()).expect_err(&form.to_string());
            assert_eq!(e.field, field, "{form}: {e}");
        }
    }

    #[test]
    fn prepare_fills_a_slug_and_keeps_given_fields() {
        let mut v = json!({});
        let slug = prepare(&mut v).unwrap().slug;
        assert_eq!(slug.len(), 10);
        assert_eq!(v["form"]["slug"], slug);
        assert_eq!(FormSettings::of(&v).unwrap().fields(), default_fields());
        let mut v = json!({ "form": { "slug": "help", "fields": [{ "name": "q", "type": "textarea", "required": true }] } });
        assert_eq!(prepare(&mut v).unwrap().slug, "help");
        assert_eq!(v["form"]["fields"][0]["type"], "textarea");
        assert!(prepare(&mut json!({ "form": [] })).is_err());
    }
}
