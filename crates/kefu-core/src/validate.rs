//! Checks on user input. Each returns the cleaned value (trimmed, lower-cased
//! where that is the canonical form) or a [`ValidationError`] naming the field.

use crate::model::Identity;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

type R<T> = Result<T, ValidationError>;

/// Trimmed text whose length in characters lies in `min..=max`.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> R<String> {
    let t = value.trim();
    let n = t.chars().count();
    if n < min {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if n > max {
        return Err(ValidationError::new(
            field,
            format!("longer than {max} characters"),
        ));
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(ValidationError::new(field, "contains control characters"));
    }
    Ok(t.to_string())
}

pub fn opt_text(value: &mut Option<String>, field: &str, min: usize, max: usize) -> R<()> {
    if let Some(v) = value.as_deref() {
        *value = Some(text(field, v, min, max)?);
    }
    Ok(())
}

/// A plausible address: one `@`, something on both sides, a dot in the domain.
/// Full validation is the mail server's job; this catches typing mistakes.
/// The full-width ＠ that Chinese keyboards produce is accepted and normalised.
pub fn email(field: &str, value: &str) -> R<String> {
    let not_an_email = || ValidationError::new(field, "not an email address");
    // The key form (crate::keys) is the one the importer matches by too:
    // full-width letters and ＠ made ASCII, lower-cased, one @ between two
    // non-empty parts, no whitespace. What follows only adds typing checks.
    let e = crate::keys::email_key(value).ok_or_else(not_an_email)?;
    let domain = e.split_once('@').map_or("", |(_, d)| d);
    let ok = e.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !e.chars().any(char::is_control);
    if ok { Ok(e) } else { Err(not_an_email()) }
}

pub const MIN_PASSWORD_CHARS: usize = 10;

pub fn password(p: &str) -> R<()> {
    let n = p.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(ValidationError::new(
            "password",
            format!("at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if n > 512 {
        return Err(ValidationError::new("password", "at most 512 characters"));
    }
    Ok(())
}

pub fn opt_url(value: &Option<String>, field: &str) -> R<()> {
    match value.as_deref() {
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2000 => {
            Err(ValidationError::new(field, "must be an http(s) URL"))
        }
        _ => Ok(()),
    }
}

pub fn object(field: &str, value: &Value) -> R<()> {
    if !value.is_object() {
        return Err(ValidationError::new(field, "must be a JSON object"));
    }
    if value.to_string().len() > 64 * 1024 {
        return Err(ValidationError::new(field, "larger than 64 KiB"));
    }
    Ok(())
}

pub fn tag_name(name: &str) -> R<String> {
    let t = text("tag", name, 1, 64)?;
    if t.contains(',') {
        return Err(ValidationError::new("tag", "must not contain a comma"));
    }
    Ok(t)
}

/// Tag names, cleaned and without repeats, in the order given.
pub fn tags(names: &[String]) -> R<Vec<String>> {
    if names.len() > 100 {
        return Err(ValidationError::new("tags", "at most 100 tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        let t = tag_name(n)?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

pub fn identity(i: &mut Identity) -> R<()> {
    i.kind = text("identities.kind", &i.kind, 1, 64)?;
    if !i
        .kind
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(ValidationError::new(
            "identities.kind",
            "use lower-case letters, digits and _",
        ));
    }
    // Emails and phones are stored in their key form (crate::keys), the one
    // every channel and the importer look them up by: "+86 138-0013-8000"
    // from a form and "138 0013 8000" from a spreadsheet are one customer.
    i.value = match i.kind.as_str() {
        "email" => email("identities.value", &i.value)?,
        "phone" => crate::keys::phone_key(&i.value)
            .ok_or_else(|| ValidationError::new("identities.value", "not a phone number"))?,
        _ => text("identities.value", &i.value, 1, 256)?,
    };
    Ok(())
}

pub fn opt_color(c: &Option<String>) -> R<()> {
    match c.as_deref() {
        Some(c)
            if !(c.len() == 7
                && c.starts_with('#')
                && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())) =>
        {
            Err(ValidationError::new("color", "use #rrggbb"))
        }
        _ => Ok(()),
    }
}

/// HTML from users or mail, made safe to show: scripts, event handlers,
/// `javascript:` links and unknown tags are removed (ammonia's allow-list);
/// links open with `rel="noopener noreferrer"`.
pub fn html(field: &str, value: &str) -> R<String> {
    if value.len() > 512 * 1024 {
        return Err(ValidationError::new(field, "larger than 512 KiB"));
    }
    Ok(ammonia::clean(value))
}

pub fn shortcut(s: &str) -> R<String> {
    let t = text("shortcut", s.trim_start_matches('/'), 1, 64)?;
    if t.chars().any(char::is_whitespace) {
        return Err(ValidationError::new("shortcut", "must not contain spaces"));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        let cases = [
            ("a@b.cn", Some("a@b.cn")),
            ("  Wang.Li@Example.COM ", Some("wang.li@example.com")),
            ("客服＠例子.中国", Some("客服@例子.中国")),
            // Typed on a full-width keyboard: the same key the importer makes.
            ("ｚｗ＠ｅｘａｍｐｌｅ．ｃｏｍ", Some("zw@example.com")),
            ("no-at.example.com", None),
            ("a@b", None),
            ("a@@b.cn", None),
            ("a b@c.cn", None),
            ("@b.cn", None),
            ("a@.cn", None),
        ];
        for (input, want) in cases {
            assert_eq!(email("email", input).ok().as_deref(), want, "{input}");
        }
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        assert_eq!(text("n", " 王小明 ", 1, 3).as_deref(), Ok("王小明"));
        assert!(text("n", "王小明", 1, 2).is_err());
        assert!(text("n", "   ", 1, 10).is_err());
        assert!(text("n", "a\u{0}b", 1, 10).is_err());
    }

    #[test]
    fn tags_are_cleaned_and_deduplicated() {
        let got = tags(&["VIP".into(), " VIP ".into(), "退款".into()]).unwrap();
        assert_eq!(got, vec!["VIP", "退款"]);
        assert!(tags(&["a,b".into()]).is_err());
    }

    #[test]
    fn identities() {
        let mut ok = Identity {
            kind: "wechat_openid".into(),
            value: " o6_bmjrPTlm6 ".into(),
        };
        identity(&mut ok).unwrap();
        assert_eq!(ok.value, "o6_bmjrPTlm6");
        let mut bad = Identity {
            kind: "WeChat".into(),
            value: "x".into(),
        };
        assert!(identity(&mut bad).is_err());
    }

    /// Phone identities take the key form whatever channel wrote them.
    #[test]
    fn phone_identities_take_their_key_form() {
        for (given, key) in [
            ("+86 138-0013-8000", Some("13800138000")),
            ("(+86) 138 0013 8000", Some("13800138000")),
            ("８６１３８００１３８０００", Some("13800138000")),
            ("+852 9123 4567", Some("+85291234567")),
            ("call me", None),
        ] {
            let mut i = Identity {
                kind: "phone".into(),
                value: given.into(),
            };
            let got = identity(&mut i).map(|()| i.value);
            assert_eq!(got.ok().as_deref(), key, "{given}");
        }
    }

    #[test]
    fn html_is_sanitized() {
        let dirty = r#"<p>您好<img src=x onerror=alert(1)><script>alert(2)</script><a href="javascript:alert(3)">链接</a><b>粗体</b></p>"#;
        let clean = html("html", dirty).unwrap();
        assert!(
            !clean.contains("onerror")
                && !clean.contains("script")
                && !clean.contains("javascript:"),
            "{clean}"
        );
        assert!(
            clean.contains("<b>粗体</b>") && clean.contains("您好"),
            "{clean}"
        );
    }

    #[test]
    fn colors_and_shortcuts() {
        assert!(opt_color(&Some("#a1b2c3".into())).is_ok());
        assert!(opt_color(&Some("red".into())).is_err());
        assert_eq!(shortcut("/退款").as_deref(), Ok("退款"));
        assert!(shortcut("two words").is_err());
    }
}
