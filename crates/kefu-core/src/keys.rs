//! Identity keys of phone numbers and email addresses: the one form a
//! number or address is stored in as a contact identity, so that the same
//! person written differently by two sources ("138 0013 8000" in a
//! spreadsheet, "+86-138-0013-8000" in WeCom, "８６１３８００１３８０００"
//! typed on a phone's full-width keyboard) is found as one contact.

/// A mainland mobile: 11 digits, `1[3-9]…`.
fn is_cn_mobile(digits: &str) -> bool {
    let b = digits.as_bytes();
    b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1])
}

/// Full-width forms (U+FF01–FF5E) → ASCII; other characters unchanged.
fn half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// The identity value of a phone number, or `None` when the text is not
/// one (letters, too few or too many digits).
///
/// Spaces, dashes, dots, slashes and parentheses go; full-width digits
/// become ASCII. A mainland mobile loses its country code however it was
/// written (`+86`, `0086`, `86`, `(+86)`), because WeChat and Chinese
/// spreadsheets mostly write it without one: `13800138000`. Other
/// international numbers keep it as `+` and digits (`+85291234567`);
/// national numbers stay their digits (`01012345678`, `0912345678`).
pub fn phone_key(text: &str) -> Option<String> {
    let mut digits = String::new();
    let mut plus = false;
    for c in text.trim().chars().map(half_width) {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            ' ' | '\u{a0}' | '\t' | '-' | '‐' | '‑' | '–' | '—' | '.' | '/' | '(' | ')' => {
            }
            _ => return None,
        }
    }
    if !(5..=20).contains(&digits.len()) {
        return None;
    }
    let international = match (plus, digits.strip_prefix("00")) {
        (true, _) => Some(digits.as_str()),
        (false, Some(rest)) => Some(rest),
        (false, None) => None,
    };
    Some(match international {
        Some(intl) => match intl.strip_prefix("86") {
            Some(national) if is_cn_mobile(national) => national.to_string(),
            _ => format!("+{intl}"),
        },
        None => match digits.strip_prefix("86") {
            Some(national) if is_cn_mobile(national) => national.to_string(),
            _ => digits,
        },
    })
}

/// The identity value of an email address: trimmed, full-width `＠` and
/// letters made ASCII, lower-cased. `None` without a `@` between two
/// non-empty parts.
pub fn email_key(text: &str) -> Option<String> {
    let key: String = text
        .trim()
        .chars()
        .map(half_width)
        .collect::<String>()
        .to_lowercase();
    let (local, domain) = key.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !key.chars().any(char::is_whitespace);
    ok.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        let cases = [
            ("13800138000", Some("13800138000")),
            ("138 0013 8000", Some("13800138000")),
            ("138-0013-8000", Some("13800138000")),
            ("+86-138-0013-8000", Some("13800138000")),
            ("+86 138 0013 8000", Some("13800138000")),
            ("(+86) 13800138000", Some("13800138000")),
            ("0086 138 0013 8000", Some("13800138000")),
            ("8613800138000", Some("13800138000")),
            ("８６１３８００１３８０００", Some("13800138000")),
            ("＋８６ １３８ ００１３ ８０００", Some("13800138000")),
            ("１３８－００１３－８０００", Some("13800138000")),
            ("010-6552 9988", Some("01065529988")),
            ("+86 10 6552 9988", Some("+861065529988")),
            ("+852 9123 4567", Some("+85291234567")),
            ("00852 9123 4567", Some("+85291234567")),
            ("0912-345-678", Some("0912345678")),
            ("+1 (415) 555-0100", Some("+14155550100")),
            ("8612345", Some("8612345")),
            ("138 0013 8000 转 8", None),
            ("tel:13800138000", None),
            ("1234", None),
            ("", None),
            ("+", None),
            ("1+2345678", None),
        ];
        for (text, want) in cases {
            assert_eq!(phone_key(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn emails() {
        let cases = [
            ("zhang.wei@example.com", Some("zhang.wei@example.com")),
            (" Zhang.Wei@Example.COM ", Some("zhang.wei@example.com")),
            ("zhang.wei＠example.com", Some("zhang.wei@example.com")),
            ("ｚｗ＠ｅｘａｍｐｌｅ．ｃｏｍ", Some("zw@example.com")),
            ("no-at.example.com", None),
            ("@example.com", None),
            ("a@", None),
            ("a@b@c", None),
            ("a b@c.com", None),
        ];
        for (text, want) in cases {
            assert_eq!(email_key(text).as_deref(), want, "{text}");
        }
    }
}
