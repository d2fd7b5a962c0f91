//! Lenient accessors over `serde_json::Value`: exports written by different
//! tools put numbers in strings and strings in numbers, and a parser that
//! insisted on one form would reject good data.

use serde_json::Value;

/// A non-empty string field; numbers are turned into their text.
pub(crate) fn str_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer field, also from a numeric string or a whole float.
pub(crate) fn int_of(v: &Value, key: &str) -> Option<i64> {
    as_int(v.get(key)?)
}

pub(crate) fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// A list of strings (also accepts one string or numbers).
pub(crate) fn strs_of(v: &Value, key: &str) -> Vec<String> {
    match v.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

pub(crate) fn array_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Seconds to milliseconds, refusing values that would overflow.
pub(crate) fn secs_to_ms(s: i64) -> Option<i64> {
    s.checked_mul(1000)
}

/// Joins the non-empty parts with one space.
pub(crate) fn join_nonempty<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> String {
    parts
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `label` followed by the non-empty parts: `[位置] 名称 地址`.
pub(crate) fn labelled<'a>(
    label: &str,
    parts: impl IntoIterator<Item = Option<&'a str>>,
) -> String {
    let rest = join_nonempty(parts);
    if rest.is_empty() {
        label.to_string()
    } else {
        format!("{label} {rest}")
    }
}

pub(crate) fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_numbers() {
        let v = json!({"a": 5, "b": "6", "c": 7.0, "d": 7.5, "e": "x", "f": null});
        let cases = [
            ("a", Some(5)),
            ("b", Some(6)),
            ("c", Some(7)),
            ("d", None),
            ("e", None),
            ("f", None),
            ("z", None),
        ];
        for (k, want) in cases {
            assert_eq!(int_of(&v, k), want, "{k}");
        }
    }

    #[test]
    fn strings() {
        let v = json!({"a": "x", "b": 3, "c": "  ", "l": ["p", 1, null, ""]});
        assert_eq!(str_of(&v, "a").as_deref(), Some("x"));
        assert_eq!(str_of(&v, "b").as_deref(), Some("3"));
        assert_eq!(str_of(&v, "c"), None);
        assert_eq!(strs_of(&v, "l"), vec!["p".to_string(), "1".to_string()]);
        assert_eq!(labelled("[位置]", [Some("A"), None, Some(" ")]), "[位置] A");
    }
}
